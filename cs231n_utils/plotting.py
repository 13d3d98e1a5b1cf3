"""The figures the chapters share: optimizer paths over a landscape's contours, and loss curves."""
from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm

from .landscapes import Landscape, Trajectory

__all__ = ["plot_landscape", "plot_trajectories", "plot_losses"]


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
    landscape: Landscape, trajectories: Mapping[str, Trajectory], ax: Axes | None = None, title: str | None = None
) -> Axes:
    """Each trajectory's path, labelled by its key, over the landscape's contours."""
    ax = plot_landscape(landscape, ax)
    for label, trajectory in trajectories.items():
        path = trajectory.path
        ax.plot(path[:, 0], path[:, 1], marker="o", markersize=2, linewidth=1.2, label=label)
    ax.plot(*next(iter(trajectories.values())).path[0, :2], marker="o", color="k", markersize=6)
    ax.legend(loc="best", fontsize="small")
    ax.set_title(title if title is not None else landscape.name)
    return ax


def plot_losses(
    trajectories: Mapping[str, Trajectory], ax: Axes | None = None, minimum_value: float = 0.0, log: bool = True
) -> Axes:
    """Loss minus ``minimum_value`` against step, one curve per trajectory."""
    ax = ax if ax is not None else plt.gca()
    for label, trajectory in trajectories.items():
        ax.plot(trajectory.losses - minimum_value, label=label)
    if log:
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="loss" if minimum_value == 0 else "loss − minimum")
    ax.legend(loc="best", fontsize="small")
    return ax
