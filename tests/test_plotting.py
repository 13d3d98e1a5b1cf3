"""Tests of the shared figures: colours stay with their labels, animations end where the paths end."""
from __future__ import annotations

import gc
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from cs231n_utils import landscapes, optim  # noqa: E402
from cs231n_utils.plotting import (  # noqa: E402
    animate_trajectories,
    animation_to_html,
    plot_losses,
    plot_trajectories,
    plot_trajectory_grid,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def runs():
    saddle = landscapes.Saddle()
    return saddle, {
        "SGD": landscapes.run_trajectory(optim.sgd, saddle, [1.0, 0.1], 9, {"learning_rate": 0.1}),
        "momentum": landscapes.run_trajectory(optim.sgd_momentum, saddle, [1.0, 0.1], 5, {"learning_rate": 0.1}),
    }


def _path_colors(ax) -> dict[str, str]:
    return {line.get_label(): to_hex(line.get_color()) for line in ax.get_lines() if not line.get_label().startswith("_")}


def test_default_colors_follow_the_cycle_as_before(runs):
    landscape, trajectories = runs
    ax = plot_trajectories(landscape, trajectories)
    assert _path_colors(ax) == {"SGD": to_hex("C0"), "momentum": to_hex("C1")}
    _, ax = plt.subplots()
    plot_losses(trajectories, ax=ax)
    assert _path_colors(ax) == {"SGD": to_hex("C0"), "momentum": to_hex("C1")}


def test_given_colors_are_used(runs):
    landscape, trajectories = runs
    ax = plot_trajectories(landscape, trajectories, colors={"momentum": "red"})
    assert _path_colors(ax)["momentum"] == to_hex("red")


def test_grid_keeps_one_color_per_label_across_panels(runs):
    landscape, trajectories = runs
    reversed_order = dict(reversed(list(trajectories.items())))
    fig = plot_trajectory_grid([(landscape, trajectories), (landscape, reversed_order), (landscape, trajectories)], ncols=2)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 3 and len(fig.axes) == 4
    colors = [_path_colors(ax) for ax in visible]
    assert colors[0] == colors[1] == colors[2]
    assert colors[0]["SGD"] != colors[0]["momentum"]
    assert all(ax.get_legend() is None for ax in visible) and len(fig.legends) == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [({"panels": []}, "panels"), ({"titles": ["one"]}, "titles"), ({"ncols": 0}, "ncols"), ({"panel_size": -1.0}, "panel_size")],
)
def test_grid_rejects_bad_arguments(runs, kwargs, message):
    landscape, trajectories = runs
    arguments = {"panels": [(landscape, trajectories), (landscape, trajectories)], **kwargs}
    with pytest.raises(ValueError, match=message):
        plot_trajectory_grid(**arguments)


def test_animation_frames_end_at_each_paths_last_iterate(runs):
    landscape, trajectories = runs
    animation = animate_trajectories(landscape, trajectories, frame_step=2)
    html = animation_to_html(animation, frame_format="png")
    # steps 0, 2, 4, 6, 8 and the last one, 9: six frames embedded as images
    assert len(re.findall(r"data:image/png;base64", html)) == 6
    map_ax = animation._fig.axes[0]  # after rendering, the figure shows the last frame
    heads = [line for line in map_ax.get_lines() if line.get_marker() == "o" and len(line.get_xdata()) == 1]
    last_points = {tuple(np.round(np.ravel(line.get_xydata()), 12)) for line in heads}
    expected = {tuple(np.round(t.path[-1], 12)) for t in trajectories.values()}
    assert expected <= last_points  # the shorter path waits at its end


def test_animation_to_html_defaults_to_jpeg_frames(runs):
    landscape, trajectories = runs
    html = animation_to_html(animate_trajectories(landscape, trajectories, show_loss=False, dpi=20))
    assert "data:image/jpeg;base64" in html and "<img" in html


@pytest.mark.parametrize(
    "kwargs, message",
    [({"frame_step": 0}, "frame_step"), ({"interval": 0}, "interval"), ({"dpi": float("nan")}, "dpi"), ({"trajectories": {}}, "trajectories")],
)
def test_animation_rejects_bad_arguments(runs, kwargs, message):
    landscape, trajectories = runs
    with pytest.raises(ValueError, match=message):
        animate_trajectories(landscape, **{"trajectories": trajectories, **kwargs})


@pytest.mark.filterwarnings("ignore:Animation was deleted without rendering")
def test_animation_to_html_rejects_bad_arguments(runs):
    landscape, trajectories = runs
    animation = animate_trajectories(landscape, trajectories, dpi=20)
    with pytest.raises(ValueError, match="frame_format"):
        animation_to_html(animation, frame_format="gif")
    with pytest.raises(ValueError, match="default_mode"):
        animation_to_html(animation, default_mode="bounce")
    with pytest.raises(ValueError, match="animation"):
        animation_to_html("not an animation")
    del animation
    gc.collect()  # the never-rendered animation warns when collected: let that happen here


def test_plots_reject_a_3d_landscape():
    cube = landscapes.Quadratic(np.ones(3))
    trajectory = landscapes.run_trajectory(optim.sgd, cube, np.ones(3), 2)
    with pytest.raises(ValueError, match="2-D"):
        animate_trajectories(cube, {"SGD": trajectory})


def test_animation_player_loads_nothing_from_other_hosts(runs):
    landscape, trajectories = runs
    html = animation_to_html(animate_trajectories(landscape, trajectories, show_loss=False, dpi=20))
    assert "https://" not in html and "http://" not in html
    assert 'class="fa ' not in html, "every Font Awesome icon is replaced by a character"
    for title in ("Play", "Pause", "First frame", "Last frame"):
        assert f'title="{title}"' in html


def test_animation_player_has_an_alt_text_and_a_labelled_slider(runs):
    landscape, trajectories = runs
    animation = animate_trajectories(landscape, trajectories, show_loss=False, dpi=20)
    html = animation_to_html(animation, alt='Two paths "racing" to the minimum')
    assert '<img alt="Two paths &quot;racing&quot; to the minimum" id="_anim_img' in html
    assert '<input aria-label="animation frame" id="_anim_slider' in html
    with pytest.raises(ValueError, match="alt"):
        animation_to_html(animation, alt="  ")
