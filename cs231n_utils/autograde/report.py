"""The result of grading one student answer: per-property credit, named mistakes and feedback.

nbgrader awards partial credit for an autograder test cell whose *last expression* is a number
between 0 and the cell's points (``nbgrader.utils.determine_grade``): hidden tests therefore end
with ``report.award(points)``, which prints the feedback (it appears in the notebook and in
nbgrader's feedback HTML) and returns :math:`\\text{points} \\cdot \\sum_p w_p c_p / \\sum_p w_p`
as a plain Python ``float``, where :math:`c_p \\in [0, 1]` is the share of property :math:`p`
earned (1 or 0 for a pass/fail property; a value on a slope for a measured one, e.g. accuracy).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..validation import check_positive

__all__ = ["PropertyResult", "GradeReport"]

DEFAULT_FALLBACK = "compare your code with the formulas."


@dataclass(frozen=True)
class PropertyResult:
    """One graded property of an answer, e.g. "the first step matches the reference".

    ``credit`` is the share of ``weight`` earned (None: all of it when ``passed``, else none);
    ``explains`` marks a failure whose ``detail`` already says what to fix, so the feedback
    does not add "no common mistake matches" under it.
    """

    description: str
    weight: float
    passed: bool
    detail: str = ""
    credit: float | None = None
    explains: bool = False

    @classmethod
    def from_problem(cls, description: str, weight: float, problem: str | None, *,
                     explains: bool = False) -> "PropertyResult":
        """The property passes when no problem was found; otherwise the problem is the detail."""
        return cls(description, weight, problem is None, problem or "", explains=explains)

    @property
    def earned(self) -> float:
        """Share of the weight earned, in [0, 1]."""
        if self.credit is not None:
            return min(max(float(self.credit), 0.0), 1.0)
        return 1.0 if self.passed else 0.0


@dataclass(frozen=True)
class GradeReport:
    """Per-property results for one answer, the mistakes recognised, or the reason for zero credit.

    ``zero_reason`` (e.g. "calls the reference implementation", "not implemented yet") overrides
    the properties: the answer gets no credit and the feedback says why. ``fallback`` ends the
    sentence printed when a property fails and no known mistake explains it.
    """

    subject: str
    properties: tuple[PropertyResult, ...] = ()
    likely_mistakes: tuple[str, ...] = ()
    zero_reason: str | None = None
    fallback: str = DEFAULT_FALLBACK

    @property
    def fraction(self) -> float:
        """Weighted share earned, :math:`\\sum_p w_p c_p / \\sum_p w_p` in [0, 1]; 0 when ``zero_reason`` is set."""
        total = sum(p.weight for p in self.properties)
        if self.zero_reason is not None or total == 0:
            return 0.0
        return sum(p.weight * p.earned for p in self.properties) / total

    def feedback(self) -> str:
        """Readable feedback: one line per property, failure details, and the likely mistakes.

        "No common mistake matches" appears only when a property failed, no mistake was
        recognised and no failed property's detail already explains the problem."""
        if self.zero_reason is not None:
            return f"{self.subject}: no credit. {self.zero_reason}"
        lines = [f"{self.subject}: {self.fraction:.0%} of the checks (by weight) passed"]
        for prop in self.properties:
            mark = "ok" if prop.passed else "FAIL" if prop.earned == 0 else f"{prop.earned:.0%}"
            lines.append(f"  [{mark}] {prop.description}")
            if not prop.passed and prop.detail:
                lines.append(f"         {prop.detail}")
        for mistake in self.likely_mistakes:
            lines.append(f"  Likely mistake: {mistake}")
        failed = [p for p in self.properties if not p.passed]
        if failed and not self.likely_mistakes and not any(p.explains for p in failed):
            lines.append(f"  No common mistake matches your results exactly; {self.fallback}")
        return "\n".join(lines)

    def award(self, points: float) -> float:
        """Print the feedback and return the credit ``points * fraction`` (a plain float, 2 decimals).

        Use it as the last expression of an nbgrader test cell worth ``points`` points.
        """
        points = check_positive(points, "points")
        credit = min(points, round(points * self.fraction, 2))
        print(self.feedback())
        print(f"Score: {credit:g} / {points:g}")
        return float(credit)

    def __str__(self) -> str:
        return self.feedback()
