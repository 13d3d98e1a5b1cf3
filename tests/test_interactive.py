"""Slider figures (cs231n_utils.interactive): the generator's HTML, its pixel mapping and its
checks, and in a real browser (Debian's chromium, as in tests/test_book.py) that moving a slider
redraws the figure, both on a generated page and on the chapters of the built book."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from bs4 import BeautifulSoup  # noqa: E402

from cs231n_utils.interactive import MAX_FRAMES, Curve, Frame, Slider, slider_figure, to_pixels  # noqa: E402
from tests.test_book import CHROMIUM_ARGS, HARMLESS_CONSOLE_ERRORS, book_url, chromium  # noqa: E402,F401 (fixtures)

#: The chapters that carry slider figures, and how many each has.
SLIDER_PAGES = {"chapters/momentum_theory": 1, "chapters/adam": 1, "chapters/schedules": 1}


def _figure(dpi: float = 50.0):
    fig, (left, right) = plt.subplots(1, 2, figsize=(6, 3), dpi=dpi)
    left.set(xlim=(0, 10), ylim=(-1, 1))
    right.set(xlim=(1, 100), ylim=(1e-3, 1e3), xscale="log", yscale="log")
    return fig


def _line_frame(slope: float, shift: int) -> Frame:
    x = np.linspace(0, 10, 5)
    summary = f"slope {slope}, shift {'on' if shift else 'off'}"
    return Frame([(x, slope * x / 10), ([1, 100], [10.0**shift, 1.0])], summary)


def _html(**overrides) -> str:
    arguments = dict(
        fig=_figure(),
        curves=[Curve(0, "C0", "line"), Curve(1, "k", dashed=True)],
        sliders=[Slider("slope", "slope a", [-1.0, 0.0, 1.0], start=2), Slider("shift", "shift", [0, 1], texts=["off", "on"])],
        frame=_line_frame,
        name="test-figure",
        description="Two test lines.",
    )
    arguments.update(overrides)
    return slider_figure(**arguments)


def _payload(soup: BeautifulSoup) -> dict:
    return json.loads(soup.find("script", type="application/json").string)


# ------------------------------------------------------------------------------ generator
def test_every_combination_is_precomputed_with_its_summary() -> None:
    soup = BeautifulSoup(_html(), "html.parser")
    frames = _payload(soup)["frames"]
    assert sorted(frames) == ["0,0", "0,1", "1,0", "1,1", "2,0", "2,1"]
    assert frames["0,1"]["summary"] == "slope -1.0, shift on"
    assert all(len(frame["points"]) == 2 for frame in frames.values())


def test_initial_drawing_is_the_start_frame() -> None:
    soup = BeautifulSoup(_html(), "html.parser")
    start = _payload(soup)["frames"]["2,0"]
    lines = soup.find_all("polyline")
    assert [line["points"] for line in lines] == start["points"]
    assert soup.find(id="test-figure-summary").string == "slope 1.0, shift off"
    assert soup.find("desc").string == "slope 1.0, shift off"


def test_controls_are_labelled_and_say_their_value() -> None:
    soup = BeautifulSoup(_html(), "html.parser")
    for slider_id, text, maximum in (("test-figure-slope", "1.0", "2"), ("test-figure-shift", "off", "1")):
        control = soup.find("input", id=slider_id)
        assert control["type"] == "range" and control["max"] == maximum and control["min"] == "0"
        assert control["aria-valuetext"] == text
        assert soup.find("label", attrs={"for": slider_id}) is not None
        assert soup.find("output", attrs={"for": slider_id}).string == text
    svg = soup.find("svg")
    assert svg["role"] == "img"
    assert soup.find("title").string == "Two test lines."


def test_points_land_on_the_axes_corners() -> None:
    """Data corners map to the axes' box; the box is computed here from the figure geometry."""
    fig = _figure(dpi=50)
    fig.canvas.draw()
    width, height = fig.get_size_inches() * 50
    box = fig.axes[0].get_position()  # figure fractions, origin bottom-left
    pixels = to_pixels(fig, 0, [0, 10], [-1, 1])
    expected = [[box.x0 * width, height - box.y0 * height], [box.x1 * width, height - box.y1 * height]]
    np.testing.assert_allclose(pixels, expected, atol=1e-6)
    log_box = fig.axes[1].get_position()
    middle = to_pixels(fig, 1, [10], [1.0])  # log axes: 10 is halfway between 1 and 100
    np.testing.assert_allclose(middle[0], [(log_box.x0 + log_box.x1) / 2 * width,
                                           height - (log_box.y0 + log_box.y1) / 2 * height], atol=1e-6)
    plt.close(fig)


def test_values_outside_or_not_finite_stay_on_the_panel() -> None:
    fig = _figure()
    fig.canvas.draw()
    top = to_pixels(fig, 1, [1, 1, 1], [1e9, np.inf, np.nan])
    edge = to_pixels(fig, 1, [1], [1e3])
    np.testing.assert_allclose(top, np.repeat(edge, 3, axis=0))
    bottom = to_pixels(fig, 1, [1, 1], [-5.0, 0.0])  # not positive on a log axis
    np.testing.assert_allclose(bottom, np.repeat(to_pixels(fig, 1, [1], [1e-3]), 2, axis=0))
    plt.close(fig)


def test_json_cannot_close_its_script_tag() -> None:
    html = _html(frame=lambda slope, shift: Frame(_line_frame(slope, shift).data, "</script><b>x</b>"))
    payload = html.split('type="application/json"', 1)[1].split("</script>", 1)[0]
    assert "</" not in payload


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "Bad Name"}, "name"),
        ({"description": " "}, "description"),
        ({"curves": []}, "curves"),
        ({"curves": [Curve(2, "k")]}, "axes index 2"),
        ({"sliders": []}, "sliders"),
        ({"sliders": [Slider("a", "a", [0, 1]), Slider("a", "b", [0, 1])]}, "distinct"),
        ({"sliders": [Slider("slope", "s", list(range(MAX_FRAMES + 1)))]}, "MAX_FRAMES"),
        ({"frame": lambda slope, shift: Frame([], "no curves")}, "each of the 2 curves"),
        ({"fig": "not a figure"}, "fig"),
    ],
)
def test_bad_arguments_are_named(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _html(**overrides)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("eta-1", "x", [0, 1]), "identifier"),
        (("eta", "", [0, 1]), "label"),
        (("eta", "x", [0]), "at least two"),
        (("eta", "x", [0, 1], ["a"]), "texts"),
        (("eta", "x", [0, 1], None, 2), "start"),
    ],
)
def test_bad_sliders_are_named(arguments: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Slider(*arguments)


@pytest.mark.parametrize(("arguments", "message"), [((-1, "k"), "axes"), ((0, "not-a-colour"), "color"),
                                                     ((0, "k", None, 0.0), "width")])
def test_bad_curves_are_named(arguments: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Curve(*arguments)


# ------------------------------------------------------------------------------ in a browser
# The browser runs in a child process: playwright's sync API allows one instance per process, and
# tests/test_book.py may hold its session-wide one in this process (pytest-xdist --dist loadfile
# can put both files on one worker).
_BROWSER_SCRIPT = r"""
import json, sys
from playwright.sync_api import sync_playwright

chromium, url = sys.argv[1], sys.argv[2]
args = json.loads(sys.argv[3])
report = {"errors": [], "figures": {}}
with sync_playwright() as playwright:
    browser = playwright.chromium.launch(executable_path=chromium, args=args)
    page = browser.new_page()
    page.on("pageerror", lambda error: report["errors"].append(str(error)))
    page.goto(url)
    page.wait_for_load_state("load")
    points = "els => els.map(e => e.getAttribute('points'))"
    for figure in page.eval_on_selector_all(".slider-figure", "els => els.map(e => e.id)"):
        moves = report["figures"][figure] = []
        sliders = page.eval_on_selector_all(f"#{figure} input[type=range]", "els => els.map(e => e.id)")
        for slider in sliders:
            move = {"slider": slider, "before": page.eval_on_selector_all(f"#{figure} polyline", points),
                    "summary_before": page.inner_text(f"#{figure}-summary")}
            page.focus(f"#{slider}")
            value, maximum = page.eval_on_selector(f"#{slider}", "e => [e.value, e.max]")
            page.keyboard.press("Home" if value == maximum else "End")  # a key, as a reader would
            move.update(after=page.eval_on_selector_all(f"#{figure} polyline", points),
                        summary=page.inner_text(f"#{figure}-summary"),
                        output=page.inner_text(f"#{slider}-value"),
                        key=",".join(page.eval_on_selector_all(f"#{figure} input[type=range]",
                                                               "els => els.map(e => e.value)")),
                        frames=json.loads(page.inner_text(f"#{figure}-data"))["frames"])
            moves.append(move)
    browser.close()
print(json.dumps(report))
"""


def _drive(chromium_path: Path, url: str) -> dict:
    """Open ``url``, press End (or Home) on every slider of every figure, report what changed."""
    done = subprocess.run([sys.executable, "-c", _BROWSER_SCRIPT, str(chromium_path), url,
                           json.dumps(CHROMIUM_ARGS)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _assert_moves_redraw(report: dict) -> None:
    for figure, moves in report["figures"].items():
        assert moves, f"{figure} has no slider"
        for move in moves:
            where = f"{figure}, slider {move['slider']}"
            assert move["before"] != move["after"], f"{where} did not change the figure"
            assert move["after"] == move["frames"][move["key"]]["points"], f"{where}: not the frame of {move['key']}"
            assert move["summary"] != move["summary_before"], f"{where} did not change the text"
            assert move["output"] in move["summary"], f"{where}: {move['summary']!r} lacks {move['output']!r}"


def test_slider_redraws_a_generated_page(chromium: Path, tmp_path: Path) -> None:  # noqa: F811
    page_file = tmp_path / "figure.html"
    page_file.write_text(f"<!DOCTYPE html><html lang='en'><body>{_html()}</body></html>")
    report = _drive(chromium, page_file.as_uri())
    assert not report["errors"]
    assert list(report["figures"]) == ["test-figure"]
    _assert_moves_redraw(report)
    last = report["figures"]["test-figure"][-1]
    assert last["summary"] == "slope -1.0, shift on" and last["output"] == "on"


@pytest.mark.parametrize("docname", sorted(SLIDER_PAGES))
def test_slider_redraws_in_the_built_book(chromium: Path, book_url: str, docname: str) -> None:  # noqa: F811
    report = _drive(chromium, f"{book_url}{docname}.html")
    assert len(report["figures"]) == SLIDER_PAGES[docname], f"{docname}: slider figures {list(report['figures'])}"
    _assert_moves_redraw(report)
    ours = [e for e in report["errors"] if not any(p.search(e) for p in HARMLESS_CONSOLE_ERRORS)]
    assert not ours, f"{docname}: JavaScript errors {ours}"
