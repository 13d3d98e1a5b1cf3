"""The figures the chapters share: optimizer paths over a landscape's contours, loss curves, a
side-by-side grid of landscapes, and an animation of paths that plays in the static HTML book."""
from __future__ import annotations

import re
from html import escape
from typing import Mapping, Protocol, Sequence, runtime_checkable

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.animation import FuncAnimation
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter, MaxNLocator, NullLocator

from .landscapes import Landscape
from .validation import check_positive


@runtime_checkable
class RecordedRun(Protocol):
    """What the plots need of a run: the iterates ``path`` (steps + 1, dim) and the ``losses``.
    Both :class:`cs231n_utils.landscapes.Trajectory` and the second-order solvers' results have them."""

    path: np.ndarray
    losses: np.ndarray


__all__ = [
    "plot_landscape",
    "plot_trajectories",
    "plot_losses",
    "plot_trajectory_grid",
    "animate_trajectories",
    "animation_to_html",
]

Colors = Mapping[str, str]


def plot_landscape(landscape: Landscape, ax: Axes | None = None, resolution: int = 200, levels: int = 30) -> Axes:
    """Filled contours of a 2-D landscape on a log colour scale, with its minimum marked."""
    if landscape.dim != 2:
        raise ValueError(f"landscape must be 2-D to plot, got dim={landscape.dim}")
    ax = ax if ax is not None else plt.gca()
    (x_lo, x_hi), (y_lo, y_hi) = landscape.plot_bounds
    xs, ys = np.linspace(x_lo, x_hi, resolution), np.linspace(y_lo, y_hi, resolution)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1)
    values = np.asarray(landscape.value(grid), dtype=float)
    shifted = values - values.min() + 1e-3  # log scale needs positive values (the saddle goes below 0)
    ax.contourf(xs, ys, shifted, levels=np.geomspace(shifted.min(), shifted.max(), levels), norm=LogNorm(), cmap="Greys_r", alpha=0.6)
    ax.plot(*landscape.minimum[:2], marker="*", color="gold", markersize=14, markeredgecolor="k", zorder=5)
    ax.set(xlim=(x_lo, x_hi), ylim=(y_lo, y_hi), xlabel="$w_1$", ylabel="$w_2$")
    ax.set_aspect("equal", adjustable="box")
    return ax


def plot_trajectories(
    landscape: Landscape,
    trajectories: Mapping[str, RecordedRun],
    ax: Axes | None = None,
    title: str | None = None,
    colors: Colors | None = None,
) -> Axes:
    """Each trajectory's path, labelled by its key, over the landscape's contours.

    ``colors`` maps labels to matplotlib colours (labels it lacks take the next colour of the
    cycle), so that one method keeps one colour across figures.
    """
    _check_trajectories(trajectories)
    ax = plot_landscape(landscape, ax)
    for label, trajectory in trajectories.items():
        path = trajectory.path
        ax.plot(path[:, 0], path[:, 1], marker="o", markersize=2, linewidth=1.2, label=label, **_color(colors, label))
    ax.plot(*next(iter(trajectories.values())).path[0, :2], marker="o", color="k", markersize=6)
    ax.legend(loc="best", fontsize="small")
    ax.set_title(title if title is not None else landscape.name)
    return ax


def plot_losses(
    trajectories: Mapping[str, RecordedRun],
    ax: Axes | None = None,
    minimum_value: float = 0.0,
    log: bool = True,
    colors: Colors | None = None,
) -> Axes:
    """Loss minus ``minimum_value`` against step, one curve per trajectory."""
    _check_trajectories(trajectories)
    ax = ax if ax is not None else plt.gca()
    for label, trajectory in trajectories.items():
        ax.plot(trajectory.losses - minimum_value, label=label, **_color(colors, label))
    if log:
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="loss" if minimum_value == 0 else "loss − minimum")
    ax.legend(loc="best", fontsize="small")
    return ax


def plot_trajectory_grid(
    panels: Sequence[tuple[Landscape, Mapping[str, RecordedRun]]],
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
    panel_size: float = 4.0,
    colors: Colors | None = None,
) -> Figure:
    """Several landscapes side by side, each with its trajectories, one colour per label throughout.

    ``panels`` is a sequence of ``(landscape, {label: trajectory})`` pairs, drawn left to right in
    rows of ``ncols`` (default: all in one row). Labels without a colour in ``colors`` get one from
    the colour cycle, in order of first appearance, so that the same label has the same colour in
    every panel. The legend is drawn once, below the panels.
    """
    if len(panels) == 0:
        raise ValueError("panels must contain at least one (landscape, trajectories) pair")
    if titles is not None and len(titles) != len(panels):
        raise ValueError(f"titles has {len(titles)} entries, but panels has {len(panels)}")
    ncols = len(panels) if ncols is None else ncols
    if isinstance(ncols, bool) or not isinstance(ncols, (int, np.integer)) or ncols < 1:
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}")
    panel_size = check_positive(panel_size, "panel_size")
    palette = _palette([label for _, trajectories in panels for label in trajectories], colors)
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size * ncols, panel_size * nrows + 0.4), squeeze=False)
    for index, (landscape, trajectories) in enumerate(panels):
        ax = axes.flat[index]
        plot_trajectories(landscape, trajectories, ax=ax, title=None if titles is None else titles[index], colors=palette)
        ax.get_legend().remove()
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    handles = [plt.Line2D([], [], color=color, marker="o", markersize=3, label=label) for label, color in palette.items()]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), frameon=False)
    fig.tight_layout(rect=(0, 0.08 if nrows == 1 else 0.04, 1, 1))
    return fig


def animate_trajectories(
    landscape: Landscape,
    trajectories: Mapping[str, RecordedRun],
    title: str | None = None,
    colors: Colors | None = None,
    interval: float = 80.0,
    frame_step: int = 1,
    show_loss: bool = True,
    dpi: float = 72.0,
) -> FuncAnimation:
    """An animation of the paths being traced step by step, with the loss curves alongside.

    Frame ``k`` shows every path up to its iterate ``k * frame_step`` and a dot at that iterate; a
    path that is shorter than the longest one stays at its last iterate. ``interval`` is the delay
    between frames in milliseconds. With ``show_loss`` a second panel draws the loss minus the
    landscape's minimum value on a log scale as it is traced. ``dpi`` sets the frame resolution
    (and so the size of the embedded frames).

    The figure is closed before returning, so a notebook shows only the animation: display it
    with ``IPython.display.HTML(animation_to_html(animation))``, which embeds the frames and a
    player in the page and so also works in the static HTML book.
    """
    _check_trajectories(trajectories)
    interval = check_positive(interval, "interval")
    if isinstance(frame_step, bool) or not isinstance(frame_step, (int, np.integer)) or frame_step < 1:
        raise ValueError(f"frame_step must be a positive integer, got {frame_step!r}")
    dpi = check_positive(dpi, "dpi")
    palette = _palette(list(trajectories), colors)
    fig, axes = plt.subplots(1, 2 if show_loss else 1, figsize=(9.5 if show_loss else 5, 4.2), dpi=dpi, squeeze=False)
    # Every frame redraws the whole figure, and tick labels dominate that time: keep them few.
    map_ax = plot_landscape(landscape, axes[0, 0], resolution=100, levels=20)
    map_ax.xaxis.set_major_locator(MaxNLocator(5))
    map_ax.yaxis.set_major_locator(MaxNLocator(5))
    map_ax.set_title(title if title is not None else landscape.name)
    map_ax.plot(*next(iter(trajectories.values())).path[0, :2], marker="o", color="k", markersize=6)
    paths, heads, loss_lines, loss_heads = {}, {}, {}, {}
    floor = float(landscape.value(landscape.minimum))
    for label in trajectories:
        (paths[label],) = map_ax.plot([], [], linewidth=1.5, color=palette[label], label=label)
        (heads[label],) = map_ax.plot([], [], marker="o", markersize=7, color=palette[label], markeredgecolor="k")
    map_ax.legend(loc="upper right", fontsize="small")  # "best" would be recomputed every frame
    if show_loss:
        loss_ax = axes[0, 1]
        gaps = {label: np.maximum(t.losses - floor, 1e-16) for label, t in trajectories.items()}
        for label, gap in gaps.items():
            loss_ax.plot(gap, color=palette[label], alpha=0.15)  # the whole curve, faint, as a preview
            (loss_lines[label],) = loss_ax.plot([], [], color=palette[label], linewidth=1.5)
            (loss_heads[label],) = loss_ax.plot([], [], marker="o", markersize=6, color=palette[label], markeredgecolor="k")
        loss_ax.set(yscale="log", xlabel="step", ylabel="loss − minimum")
        loss_ax.xaxis.set_major_locator(MaxNLocator(5))
        loss_ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=True))  # plain text, not mathtext
        loss_ax.yaxis.set_minor_locator(NullLocator())
    longest = max(t.steps for t in trajectories.values())
    frames = list(range(0, longest + 1, frame_step))
    if frames[-1] != longest:
        frames.append(longest)

    def draw(step: int) -> list:
        for label, trajectory in trajectories.items():
            k = min(step, trajectory.steps)
            paths[label].set_data(trajectory.path[: k + 1, 0], trajectory.path[: k + 1, 1])
            heads[label].set_data([trajectory.path[k, 0]], [trajectory.path[k, 1]])
            if show_loss:
                loss_lines[label].set_data(np.arange(k + 1), gaps[label][: k + 1])
                loss_heads[label].set_data([k], [gaps[label][k]])
        return [*paths.values(), *heads.values(), *loss_lines.values(), *loss_heads.values()]

    fig.tight_layout()
    animation = FuncAnimation(fig, draw, frames=frames, interval=interval, blit=False)
    plt.close(fig)
    return animation


def animation_to_html(animation: FuncAnimation, default_mode: str = "once", frame_format: str = "jpeg",
                      alt: str | None = None) -> str:
    """The animation as a self-contained HTML player (frames embedded, plain JavaScript).

    This is :meth:`~matplotlib.animation.Animation.to_jshtml` with a choice of frame format:
    JPEG frames are about half the size of PNG ones for these contour plots. ``default_mode`` is
    what the player does at the end: ``"once"``, ``"loop"`` or ``"reflect"``. ``alt`` is the
    frame image's text for screen readers (what the animation shows); the frame slider is
    labelled in any case.
    """
    if alt is not None and (not isinstance(alt, str) or not alt.strip()):
        raise ValueError(f"alt must be a non-empty string saying what the animation shows, got {alt!r}")
    if not isinstance(animation, FuncAnimation):
        raise ValueError(f"animation must be a FuncAnimation, got {type(animation).__name__}")
    if default_mode not in ("once", "loop", "reflect"):
        raise ValueError(f"default_mode must be 'once', 'loop' or 'reflect', got {default_mode!r}")
    if frame_format not in ("png", "jpeg"):
        raise ValueError(f"frame_format must be 'png' or 'jpeg', got {frame_format!r}")
    with plt.rc_context({"animation.frame_format": frame_format}):
        html = animation.to_jshtml(default_mode=default_mode)
    html = html.replace('<input id="_anim_slider', '<input aria-label="animation frame" id="_anim_slider', 1)
    if alt is not None:
        html = html.replace('<img id="_anim_img', f'<img alt="{escape(alt, quote=True)}" id="_anim_img', 1)
    return _without_icon_font(html)


# matplotlib's player draws its buttons with Font Awesome 4 loaded from a CDN: the book must work
# offline (and its pages load nothing from other hosts), so the icons become plain characters.
_PLAYER_ICONS = {
    "fa fa-minus": "\u2212",
    "fa fa-fast-backward": "\u21e4",
    "fa fa-step-backward": "\u25c1",
    "fa fa-play fa-flip-horizontal": "\u25c0",
    "fa fa-pause": "\u2016",
    "fa fa-play": "\u25b6",
    "fa fa-step-forward": "\u25b7",
    "fa fa-fast-forward": "\u21e5",
    "fa fa-plus": "+",
}
_ICON_FONT_LINK = re.compile(r'<link rel="stylesheet"\s+href="https://[^"]*font-awesome[^"]*">\s*')


def _without_icon_font(html: str) -> str:
    html = _ICON_FONT_LINK.sub("", html)
    for css_class, character in _PLAYER_ICONS.items():
        html = html.replace(f'<i class="{css_class}"></i>', character)
    return html


def _check_trajectories(trajectories: Mapping[str, RecordedRun]) -> None:
    if not isinstance(trajectories, Mapping) or len(trajectories) == 0:
        raise ValueError("trajectories must be a non-empty mapping of label -> RecordedRun")
    for label, trajectory in trajectories.items():
        if not isinstance(trajectory, RecordedRun) or trajectory.path is None:
            raise ValueError(
                f"trajectories[{label!r}] must record a path and losses (a Trajectory or a SolverResult "
                f"with record_path=True), got {type(trajectory).__name__}"
            )


def _color(colors: Colors | None, label: str) -> dict[str, str]:
    return {"color": colors[label]} if colors is not None and label in colors else {}


def _palette(labels: Sequence[str], colors: Colors | None) -> dict[str, str]:
    """A colour for every distinct label: the given one, else the next unused colour of the cycle."""
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    given = dict(colors or {})
    spare = iter(c for c in cycle if c not in given.values())
    palette: dict[str, str] = {}
    for label in labels:
        if label not in palette:
            palette[label] = given[label] if label in given else next(spare, "k")
    return palette
