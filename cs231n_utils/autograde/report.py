"""The result of grading one student answer: per-property credit, named mistakes and feedback.

nbgrader awards partial credit for an autograder test cell whose *last expression* is a number
between 0 and the cell's points (``nbgrader.utils.determine_grade``): hidden tests therefore end
with ``report.award(points)``, which prints the feedback (it appears in the notebook and in
nbgrader's feedback HTML) and returns :math:`\\text{points} \\cdot \\sum_{p\\ \\text{passed}} w_p / \\sum_p w_p`
as a plain Python ``float``.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..validation import check_positive

__all__ = ["PropertyResult", "GradeReport"]


@dataclass(frozen=True)
class PropertyResult:
    """One graded property of an answer, e.g. "the first step matches the reference"."""

    description: str
    weight: float
    passed: bool
    detail: str = ""

    @classmethod
    def from_problem(cls, description: str, weight: float, problem: str | None) -> "PropertyResult":
        """The property passes when no problem was found; otherwise the problem is the detail."""
        return cls(description, weight, problem is None, problem or "")


@dataclass(frozen=True)
class GradeReport:
    """Per-property results for one answer, the mistakes recognised, or the reason for zero credit.

    ``zero_reason`` (e.g. "calls the reference implementation", "not implemented yet") overrides
    the properties: the answer gets no credit and the feedback says why.
    """

    subject: str
    properties: tuple[PropertyResult, ...] = ()
    likely_mistakes: tuple[str, ...] = ()
    zero_reason: str | None = None

    @property
    def fraction(self) -> float:
        """Weighted share of the properties that passed, in [0, 1]; 0 when ``zero_reason`` is set."""
        total = sum(p.weight for p in self.properties)
        if self.zero_reason is not None or total == 0:
            return 0.0
        return sum(p.weight for p in self.properties if p.passed) / total

    def feedback(self) -> str:
        """Readable feedback: one line per property, failure details, and the likely mistakes."""
        if self.zero_reason is not None:
            return f"{self.subject}: no credit. {self.zero_reason}"
        lines = [f"{self.subject}: {self.fraction:.0%} of the checks (by weight) passed"]
        for prop in self.properties:
            lines.append(f"  [{'ok' if prop.passed else 'FAIL'}] {prop.description}")
            if not prop.passed and prop.detail:
                lines.append(f"         {prop.detail}")
        for mistake in self.likely_mistakes:
            lines.append(f"  Likely mistake: {mistake}")
        if self.fraction < 1 and not self.likely_mistakes:
            lines.append("  No common mistake matches your results exactly; compare your code with the formulas.")
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
