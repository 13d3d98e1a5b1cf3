"""Figures with sliders that work in the static HTML book, with no kernel and nothing from a CDN.

Every combination of the slider values is computed at build time. The page gets one matplotlib
drawing of the axes (a PNG: ticks, labels, contours, legends), an SVG ``<polyline>`` per curve on
top of it, the points of every curve for every combination (JSON), and a few lines of plain
JavaScript that swap the points when the reader moves a slider.

A data point :math:`(x, y)` of axes ``a`` is drawn at the pixel

.. math:: (p_x, H - p_y) = \\bigl(T_a(x, y)_1,\\; H - T_a(x, y)_2\\bigr),

where :math:`T_a` is matplotlib's data-to-display transform of ``a`` (``a.transData``, which
knows about log scales) and :math:`H` the figure's height in pixels: matplotlib counts pixels up
from the bottom, SVG down from the top. Points outside an axes are clamped to its edge, and
non-finite values (a diverged run) are drawn on the far edge, so a diverging curve runs along the
top of its panel instead of leaving the picture.

Accessibility: each slider has a ``<label for>``, an ``<output>`` and an ``aria-valuetext`` with
its current value; the SVG is a ``role="img"`` whose title is the figure's description and whose
``<desc>``, like the text line under the figure (``aria-live``), states what the current curves
show.
"""
from __future__ import annotations

import base64
import html
import io
import itertools
import json
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from matplotlib import colors as mcolors
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

__all__ = ["Slider", "Curve", "Frame", "slider_figure", "to_pixels", "MAX_FRAMES"]

#: The most slider combinations one figure may precompute (each is stored in the page).
MAX_FRAMES = 400
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Slider:
    """A slider over a fixed grid of ``values``; ``texts`` (default ``str(value)``) is what the
    reader sees for each, and ``start`` the index of the value shown first."""

    name: str
    label: str
    values: Sequence[object]
    texts: Sequence[str] | None = None
    start: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _IDENTIFIER.match(self.name):
            raise ValueError(f"name must be a lower-case identifier (letters, digits, '_'), got {self.name!r}")
        if not isinstance(self.label, str) or not self.label.strip():
            raise ValueError(f"label must be a non-empty string, got {self.label!r}")
        if len(self.values) < 2:
            raise ValueError(f"values of slider {self.name!r} must hold at least two entries, got {len(self.values)}")
        if self.texts is not None and len(self.texts) != len(self.values):
            raise ValueError(f"texts of slider {self.name!r} has {len(self.texts)} entries for {len(self.values)} values")
        if isinstance(self.start, bool) or not isinstance(self.start, int) or not 0 <= self.start < len(self.values):
            raise ValueError(f"start of slider {self.name!r} must be an index into values, got {self.start!r}")

    @property
    def value_texts(self) -> list[str]:
        return [str(v) for v in (self.texts if self.texts is not None else self.values)]


@dataclass(frozen=True)
class Curve:
    """How one curve is drawn: on ``fig.axes[axes]``, in ``color``, with a legend ``label``."""

    axes: int
    color: str
    label: str | None = None
    width: float = 2.0
    dashed: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.axes, bool) or not isinstance(self.axes, int) or self.axes < 0:
            raise ValueError(f"axes must be a non-negative index into fig.axes, got {self.axes!r}")
        if not mcolors.is_color_like(self.color):
            raise ValueError(f"color must be a matplotlib colour, got {self.color!r}")
        if not self.width > 0:
            raise ValueError(f"width must be positive, got {self.width!r}")


@dataclass(frozen=True)
class Frame:
    """What one combination of slider values shows: ``(x, y)`` arrays for every curve, in the
    order of the ``curves`` given to :func:`slider_figure`, and a one-line ``summary`` in words."""

    data: Sequence[tuple[Sequence[float], Sequence[float]]]
    summary: str


def to_pixels(fig: Figure, axes_index: int, x: Sequence[float], y: Sequence[float]) -> np.ndarray:
    """SVG pixel coordinates ``(n, 2)`` of the data points ``(x, y)`` of ``fig.axes[axes_index]``,
    clamped to that axes' box; non-finite values land on the far edge (see the module docstring).
    Call after the figure's layout is final."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"x and y must be 1-D arrays of one length, got shapes {x.shape} and {y.shape}")
    ax = fig.axes[axes_index]
    (x_lo, x_hi), (y_lo, y_hi) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    x = np.clip(np.nan_to_num(x, nan=x_hi, posinf=x_hi, neginf=x_lo), x_lo, x_hi)
    y = np.clip(np.nan_to_num(y, nan=y_hi, posinf=y_hi, neginf=y_lo), y_lo, y_hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        display = ax.transData.transform(np.column_stack([x, y]))
    box = ax.bbox
    display[:, 0] = np.clip(display[:, 0], box.x0, box.x1)
    display[:, 1] = np.clip(display[:, 1], box.y0, box.y1)
    height = fig.bbox.height
    return np.column_stack([display[:, 0], height - display[:, 1]])


def slider_figure(
    fig: Figure,
    curves: Sequence[Curve],
    sliders: Sequence[Slider],
    frame: Callable[..., Frame],
    name: str,
    description: str,
    legend_loc: str = "upper right",
) -> str:
    """An HTML figure whose curves follow the sliders, for ``IPython.display.HTML``.

    ``fig`` holds the axes with their final limits, scales, labels and any static content;
    ``frame(**values)`` is called once for every combination of slider values (keyword
    arguments named after the sliders) and returns the curves to draw. ``name`` makes the
    element ids unique on the page; ``description`` says what the figure shows (its accessible
    name). Curves with a label get a legend entry on their axes. The figure is closed.
    """
    if not isinstance(fig, Figure):
        raise ValueError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"name must be lower-case letters, digits and '-', got {name!r}")
    if not isinstance(description, str) or not description.strip():
        raise ValueError("description must say what the figure shows, got an empty string")
    if not curves:
        raise ValueError("curves must hold at least one Curve")
    if not sliders:
        raise ValueError("sliders must hold at least one Slider")
    if len({s.name for s in sliders}) != len(sliders):
        raise ValueError(f"sliders must have distinct names, got {[s.name for s in sliders]}")
    for curve in curves:
        if curve.axes >= len(fig.axes):
            raise ValueError(f"curves: axes index {curve.axes} but the figure has {len(fig.axes)} axes")
    shape = [len(s.values) for s in sliders]
    if int(np.prod(shape)) > MAX_FRAMES:
        raise ValueError(f"sliders span {int(np.prod(shape))} combinations, more than MAX_FRAMES = {MAX_FRAMES}")
    if not callable(frame):
        raise ValueError(f"frame must be callable, got {type(frame).__name__}")

    _add_legends(fig, curves, legend_loc)
    fig.canvas.draw()  # fixes the layout, and so the data-to-pixel transforms
    frames = {}
    for index in itertools.product(*(range(n) for n in shape)):
        values = {s.name: s.values[i] for s, i in zip(sliders, index)}
        result = frame(**values)
        if not isinstance(result, Frame) or len(result.data) != len(curves):
            raise ValueError(f"frame({values}) must return a Frame with data for each of the {len(curves)} curves")
        points = [_points(to_pixels(fig, c.axes, x, y)) for c, (x, y) in zip(curves, result.data)]
        frames[",".join(map(str, index))] = {"points": points, "summary": str(result.summary)}
    background = _png(fig)
    width, height = fig.bbox.width, fig.bbox.height
    start = ",".join(str(s.start) for s in sliders)
    return _render(name, description, sliders, curves, frames, start, background, width, height)


def _add_legends(fig: Figure, curves: Sequence[Curve], loc: str) -> None:
    for index, ax in enumerate(fig.axes):
        labelled = [c for c in curves if c.axes == index and c.label]
        if labelled:
            handles = [Line2D([], [], color=c.color, linewidth=c.width, linestyle="--" if c.dashed else "-",
                              label=c.label) for c in labelled]
            ax.legend(handles=handles, loc=loc, fontsize="small")


def _points(pixels: np.ndarray) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in pixels)


def _png(fig: Figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi)  # no bbox_inches: pixels must match the transforms
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _render(name, description, sliders, curves, frames, start, background, width, height) -> str:
    esc = html.escape
    first = frames[start]
    controls = []
    for s in sliders:
        texts = s.value_texts
        slider_id = f"{name}-{s.name}"
        controls.append(
            f'<span class="slider-figure-control"><label for="{slider_id}">{esc(s.label)}</label> '
            f'<input type="range" id="{slider_id}" min="0" max="{len(texts) - 1}" step="1" value="{s.start}" '
            f'aria-valuetext="{esc(texts[s.start])}"> '
            f'<output id="{slider_id}-value" for="{slider_id}">{esc(texts[s.start])}</output></span>'
        )
    lines = []
    for c, points in zip(curves, first["points"]):
        dash = ' stroke-dasharray="6,4"' if c.dashed else ""
        lines.append(f'<polyline class="slider-figure-curve" points="{points}" fill="none" '
                     f'stroke="{mcolors.to_hex(c.color)}" stroke-width="{c.width:g}"{dash}/>')
    data = {"sliders": [{"name": s.name, "texts": s.value_texts} for s in sliders], "frames": frames}
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return f"""<div class="slider-figure" id="{name}">
<div class="slider-figure-controls">{" ".join(controls)}</div>
<svg viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-labelledby="{name}-title {name}-desc"
 style="width:100%;max-width:{width:.0f}px;height:auto;display:block">
<title id="{name}-title">{esc(description)}</title>
<desc id="{name}-desc">{esc(first["summary"])}</desc>
<image href="data:image/png;base64,{background}" x="0" y="0" width="{width:.0f}" height="{height:.0f}"/>
{"".join(lines)}
</svg>
<p class="slider-figure-summary" id="{name}-summary" aria-live="polite">{esc(first["summary"])}</p>
<script type="application/json" id="{name}-data">{payload}</script>
<script>{_SCRIPT.replace("NAME", name)}</script>
</div>"""


# Reads the precomputed frames and redraws on every slider move; no library, no network.
_SCRIPT = """(function () {
  var root = document.getElementById("NAME");
  var data = JSON.parse(document.getElementById("NAME-data").textContent);
  var inputs = data.sliders.map(function (s) { return document.getElementById("NAME-" + s.name); });
  var lines = root.querySelectorAll("polyline.slider-figure-curve");
  function redraw() {
    var key = inputs.map(function (input) { return input.value; }).join(",");
    var frame = data.frames[key];
    inputs.forEach(function (input, i) {
      var text = data.sliders[i].texts[Number(input.value)];
      input.setAttribute("aria-valuetext", text);
      document.getElementById(input.id + "-value").textContent = text;
    });
    frame.points.forEach(function (points, i) { lines[i].setAttribute("points", points); });
    document.getElementById("NAME-desc").textContent = frame.summary;
    document.getElementById("NAME-summary").textContent = frame.summary;
  }
  inputs.forEach(function (input) { input.addEventListener("input", redraw); });
})();"""
