"""Book-level tests: the Jupyter Book builds with warnings as errors, every chapter executes and
shows its figures, and a headless Chromium finds rendered maths, loaded images, no console
errors and no solution or hidden-test text on any page.

The book is built once per session (``book_build`` in ``conftest.py``); the pages checked are
whatever ``_toc.yml`` lists. The browser is Debian's ``chromium`` driven by playwright (never
``playwright install``: there is no network); it is installed here when missing and we are root.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import pytest
from filelock import FileLock

from tests.book_checks import (
    MARKER_STRINGS,
    REPO_ROOT,
    BookBuild,
    content_files,
    distinctive_hidden_lines,
    error_outputs,
    execution_reports,
    external_references,
    failure_log,
    find_leaks,
    image_sources,
    is_executed_chapter,
    long_lines,
    missing_images,
    page_text,
    run_jupyter_book,
    shown_image_outputs,
    source_file,
    split_hidden_lines,
    toc_docnames,
    toc_root,
)

TOC_DOCNAMES = toc_docnames(REPO_ROOT)
SOLUTIONS_DIR = REPO_ROOT / "solutions"
CACHED_REBUILD_LIMIT_S = 20.0

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGE_TIMEOUT_MS = 30_000
# Console errors of the theme stack that do no harm, each with the reason.
HARMLESS_CONSOLE_ERRORS = (
    # Chromium's line for a failed request; failed and blocked requests are checked one by one below.
    re.compile(r"^Failed to load resource"),
)
# The reader's window: a laptop screen with the book's sidebars open.
VIEWPORT = {"width": 1280, "height": 900}
# A figure shown below this share of its natural (pixel) width has unreadable ticks and labels.
MIN_FIGURE_SCALE = 0.6
# axe-core runs the WCAG 2.1 A and AA rules; a violation of these impacts fails the page.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
AXE_FAILING_IMPACTS = {"serious", "critical"}
# WCAG 2.1 rules that axe 4.12 still marks experimental (off by default): 2.5.3 "label in name".
AXE_EXTRA_RULES = ["label-content-name-mismatch"]
# Objectives and takeaways: 3-5 points each, found by the classes of the chapter convention.
BOX_CLASSES = {"objectives": "learning-objectives", "takeaways": "key-takeaways"}
BOX_POINTS = range(3, 6)
RAW_TEX = r"/\$\$|\\\(|\\\[|\$[^$\n]*\\[A-Za-z]+[^$\n]*\$/"


# Code and output blocks of the page body that scroll sideways: (longest line, overflow in px).
OVERFLOWING_BLOCKS_JS = """() => Array.from(document.querySelectorAll(
        '#main-content pre, #main-content div.cell_output > div.output'))
    .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
    .map(e => {
        const longest = e.textContent.split('\\n').reduce((a, b) => b.length > a.length ? b : a, '');
        return `${e.scrollWidth - e.clientWidth} px too wide: ${longest.trim().slice(0, 90)}`;
    })"""
# Every content image, with its natural and displayed width and its alt text.
CONTENT_IMAGES_JS = """async () => {
    const images = Array.from(document.querySelectorAll('#main-content img'));
    images.forEach(img => { img.loading = 'eager'; });
    await Promise.all(images.map(img => img.decode().catch(() => null)));
    return images.filter(img => img.offsetParent !== null).map(img => ({
        src: img.currentSrc || img.getAttribute('src') || '',
        alt: img.getAttribute('alt'),
        natural: img.naturalWidth,
        shown: img.getBoundingClientRect().width,
    }));
}"""
# Objectives and takeaways boxes: their points, and where they stand among the section headings.
BOXES_JS = """(classes) => {
    const article = document.querySelector('#main-content article') || document.querySelector('#main-content');
    const headings = Array.from(article.querySelectorAll('h2, h3'));
    const before = (a, b) => Boolean(a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING);
    const found = {};
    for (const [key, cls] of Object.entries(classes)) {
        found[key] = Array.from(article.querySelectorAll(`.admonition.${cls}`)).map(box => ({
            points: box.querySelectorAll(':scope > ul > li').length,
            headings_before: headings.filter(h => before(h, box)).length,
            headings_after: headings.filter(h => before(box, h)).length,
        }));
    }
    return found;
}"""
# An alt text that is a file name or path (what Sphinx writes when the source gave none).
FILE_NAME_ALT = re.compile(r"(^|/)[^\s/]+\.(png|jpe?g|gif|svg|webp)$|_images/", re.IGNORECASE)


def _html_page(build: BookBuild, docname: str) -> Path:
    return build.html_dir / f"{docname}.html"


@pytest.fixture(scope="session")
def hidden_lines() -> dict[str, str]:
    """Distinctive solution and hidden-test lines of the nbgrader sources (none without solutions/);
    lines of the public ``cs231n_utils`` package do not count as secret."""
    if not SOLUTIONS_DIR.is_dir():
        return {}
    return distinctive_hidden_lines(SOLUTIONS_DIR, sorted((REPO_ROOT / "cs231n_utils").rglob("*.py")))


def _skip_or_fail(reason: str) -> None:
    """Fail in CI (a missing tool there is a broken set-up), skip on a developer's machine."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(reason)
    pytest.skip(reason)


# =========================================================================== unit tests (fast)
def _fake_source_notebook(path: Path) -> None:
    """An nbgrader source notebook with one solution region, one hidden-test region and one
    solution cell without a region, shaped like the course's assignments."""
    answer = nbformat.v4.new_code_cell(
        "def sgd_step(w, dw, learning_rate):\n"
        "    ### BEGIN SOLUTION\n"
        "    return w - learning_rate * dw\n"
        "    ### END SOLUTION\n",
        metadata={"nbgrader": {"grade_id": "sgd_step", "solution": True, "grade": False}})
    tests = nbformat.v4.new_code_cell(
        "assert sgd_step(1.0, 1.0, 0.5) == 0.5\n"
        "### BEGIN HIDDEN TESTS\n"
        "autograde.compare_rule(sgd_step, reference='sgd', steps=7)\n"
        "pass\n"
        "### END HIDDEN TESTS\n",
        metadata={"nbgrader": {"grade_id": "test_sgd_step", "grade": True, "points": 1}})
    essay = nbformat.v4.new_markdown_cell(
        "Momentum averages the gradients of past steps, so oscillations cancel out.",
        metadata={"nbgrader": {"grade_id": "why_momentum", "solution": True, "grade": True}})
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[answer, tests, essay]), path)


def test_split_hidden_lines_follows_nbgrader_regions(tmp_path: Path) -> None:
    notebook = tmp_path / "solutions" / "optimizers" / "optimizers.ipynb"
    _fake_source_notebook(notebook)
    hidden, public = split_hidden_lines(notebook)
    assert [line.strip() for line in hidden] == [
        "return w - learning_rate * dw",
        "autograde.compare_rule(sgd_step, reference='sgd', steps=7)",
        "pass",
        "Momentum averages the gradients of past steps, so oscillations cancel out.",
    ]
    assert "def sgd_step(w, dw, learning_rate):" in public
    assert "assert sgd_step(1.0, 1.0, 0.5) == 0.5" in public
    assert not any(marker in line for line in hidden + public for marker in MARKER_STRINGS)


def test_leak_checker_finds_hidden_lines_and_markers(tmp_path: Path) -> None:
    _fake_source_notebook(tmp_path / "solutions" / "optimizers" / "optimizers.ipynb")
    hidden = distinctive_hidden_lines(tmp_path / "solutions")
    assert sorted(where.split(": ", 1)[1] for where in hidden.values()) == [
        "Momentum averages the gradients of past steps, so oscillations cancel out.",
        "autograde.compare_rule(sgd_step, reference='sgd', steps=7)",
        "return w - learning_rate * dw",
    ]  # "pass" is too short to be distinctive

    release = "def sgd_step(w, dw, learning_rate):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    assert find_leaks(release, hidden) == []
    # a leak is found however the page re-wraps or highlights the code
    leaked_page = tmp_path / "page.html"
    leaked_page.write_text('<pre><span class="k">return</span>  w -\n <span class="n">learning_rate</span>*dw</pre>')
    assert find_leaks(page_text(leaked_page), hidden) == [
        "optimizers/optimizers.ipynb: return w - learning_rate * dw"]
    assert find_leaks("x = 1  ### BEGIN  HIDDEN TESTS", hidden) == ["marker 'BEGIN HIDDEN TESTS'"]


def test_leak_checker_ignores_imports_and_lines_students_can_read_anyway(tmp_path: Path) -> None:
    cell = nbformat.v4.new_code_cell(
        "lr_default = config.get('learning_rate', 1e-2)\n"
        "### BEGIN SOLUTION\n"
        "from cs231n_utils import autograde\n"  # an import reveals nothing
        "lr_default = config.get('learning_rate', 1e-2)\n"  # shown by the release
        "config.setdefault('momentum', 0.9)\n"  # in the public package
        "velocity = momentum * velocity - learning_rate * dw\n"
        "### END SOLUTION\n",
        metadata={"nbgrader": {"grade_id": "setup", "solution": True, "grade": False}})
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), tmp_path / "a.ipynb")
    package_source = tmp_path / "optim.py"
    package_source.write_text("def f(config):\n    config.setdefault( 'momentum', 0.9 )\n")
    assert list(distinctive_hidden_lines(tmp_path, [package_source]).values()) == [
        "a.ipynb: velocity = momentum * velocity - learning_rate * dw"]


def test_page_assets_drops_repeated_scripts_and_broken_list_roles() -> None:
    """The book's Sphinx extension (``_ext/page_assets.py``) on a fake page context."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("page_assets", REPO_ROOT / "_ext" / "page_assets.py")
    page_assets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(page_assets)

    class Script:  # the shape of Sphinx's _JavaScript
        def __init__(self, filename: str | None, body: str = "") -> None:
            self.filename, self.attributes = filename, {"body": body} if body else {}

    config, other = Script(None, 'const THEBE_JS_URL = "x"'), Script(None, "const y = 1")
    context = {"script_files": [config, "a.js", Script("", 'const THEBE_JS_URL = "x"'), "a.js", other],
               "body": '<div role="list" class="citation-list"><div class="citation" role="doc-biblioentry">'
                       'A</div></div><div role="list" class="other">'}
    page_assets.drop_repeated_scripts(None, "p", "page.html", context, None)
    page_assets.drop_broken_list_roles(None, "p", "page.html", context, None)
    assert context["script_files"] == [config, "a.js", other]
    assert context["body"] == ('<div class="citation-list"><div class="citation">A</div></div>'
                               '<div role="list" class="other">')
    theme = ('<button class="btn search-button-field x" title="Search" aria-label="Search" data-b="1">'
             '<i class="theme-switch fa-sun" data-mode="light" title="Light"></i>'
             '<button class="btn other" aria-label="Keep">')
    assert page_assets.fix_theme_button_markup(theme) == (
        '<button class="btn search-button-field x" title="Search" data-b="1">'
        '<i class="theme-switch fa-sun" data-mode="light" aria-hidden="true"></i>'
        '<button class="btn other" aria-label="Keep">')


def test_error_outputs_skips_cells_that_raise_on_purpose() -> None:
    traceback = ('<div class="cell_output docutils container"><div class="output traceback '
                 'highlight-ipythontb"><pre>ValueError: learning_rate must be positive</pre></div></div>')
    plain = '<div class="cell_output docutils container"><pre>loss 0.1</pre></div>'
    assert error_outputs(f'<div class="cell docutils container">{plain}</div>') == []
    assert error_outputs(f'<div class="cell docutils container">{traceback}</div>') == [
        "ValueError: learning_rate must be positive"]
    assert error_outputs(f'<div class="cell tag_raises-exception docutils container">{traceback}</div>') == []


def test_missing_images_resolves_sources_against_the_page(tmp_path: Path) -> None:
    (tmp_path / "_images").mkdir()
    (tmp_path / "_images" / "ok.png").write_bytes(b"\x89PNG")
    (tmp_path / "_images" / "empty.png").write_bytes(b"")
    page = tmp_path / "chapters" / "page.html"
    page.parent.mkdir()
    page.write_text('<img src="../_images/ok.png"><img src="../_images/empty.png">'
                    '<img src="../_images/gone.png"><img src="data:image/png;base64,AA==">'
                    '<img src="https://example.org/x.png"><img id="_anim_img">')
    assert missing_images(page, tmp_path) == ["../_images/empty.png", "../_images/gone.png",
                                              "https://example.org/x.png"]


# =========================================================================== the built book
@pytest.mark.slow
def test_book_builds_with_warnings_as_errors(book_build: BookBuild) -> None:
    log = re.sub(r"\x1b\[[0-9;]*m", "", book_build.log)  # drop terminal colours
    problems = [line for line in log.splitlines() if re.search(r": (WARNING|ERROR|CRITICAL):|^Traceback", line)]
    assert book_build.returncode == 0, (
        f"jupyter-book build -W failed (exit {book_build.returncode}) after {book_build.seconds:.0f} s:\n"
        + "\n".join(problems[:40]) + "\n--- end of log ---\n" + log[-3000:])
    assert (book_build.html_dir / "index.html").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("docname", TOC_DOCNAMES)
def test_toc_page_is_built(book_build: BookBuild, docname: str) -> None:
    page = _html_page(book_build, docname)
    assert page.is_file(), f"_toc.yml lists {docname!r} but the build has no {page.relative_to(book_build.output)}"


@pytest.mark.slow
@pytest.mark.parametrize("docname", TOC_DOCNAMES)
def test_toc_page_executed_without_errors(book_build: BookBuild, docname: str) -> None:
    report = execution_reports(book_build).get(docname)
    if is_executed_chapter(source_file(REPO_ROOT, docname)):
        assert report is not None, f"{docname} is a notebook chapter but myst-nb did not execute it"
    if report is not None:
        assert report["succeeded"], f"{docname} failed to execute: {report['error']}\n{report['traceback']}"
    saved = failure_log(book_build, docname)
    assert saved is None, f"myst-nb saved a traceback for {docname}:\n{saved}"
    errors = error_outputs(_html_page(book_build, docname).read_text(encoding="utf-8"))
    assert not errors, f"{docname} shows error output (tag the cell raises-exception if on purpose):\n{errors}"


def test_long_lines_finds_shown_code_lines_over_the_limit(tmp_path: Path) -> None:
    short, long = "x = 1", "y = '" + "a" * 80 + "'"
    shown = nbformat.v4.new_code_cell(f"{short}\n{long}", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text=f"{'b' * 81}\n")])  # wrapped by CSS
    hidden = nbformat.v4.new_code_cell(long, metadata={"tags": ["remove-input"]})
    notebook = tmp_path / "n.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[shown, hidden]), notebook)
    assert long_lines(notebook) == [f"cell 0: {long}"]


@pytest.mark.slow
@pytest.mark.parametrize("docname", TOC_DOCNAMES)
def test_chapter_code_lines_fit_the_column(book_build: BookBuild, docname: str) -> None:
    if not is_executed_chapter(source_file(REPO_ROOT, docname)):
        pytest.skip(f"{docname} is not an executed chapter")
    found = long_lines(book_build.build_dir / "jupyter_execute" / f"{docname}.ipynb")
    assert not found, f"{docname}: code lines over 80 characters:\n" + "\n".join(found)


@pytest.mark.slow
@pytest.mark.parametrize("docname", TOC_DOCNAMES)
def test_toc_page_shows_its_figures(book_build: BookBuild, docname: str) -> None:
    page = _html_page(book_build, docname)
    assert not missing_images(page, book_build.html_dir), f"{docname} has images that are not in the build"
    if is_executed_chapter(source_file(REPO_ROOT, docname)):
        expected = shown_image_outputs(book_build.build_dir / "jupyter_execute" / f"{docname}.ipynb")
        shown = len(image_sources(page.read_text(encoding="utf-8")))
        assert expected >= 1, f"{docname} is a chapter without a single figure"
        assert shown >= expected, f"{docname}: the notebook made {expected} figures, the page shows {shown}"


@pytest.mark.slow
def test_pages_load_nothing_from_a_cdn(book_build: BookBuild) -> None:
    """The book must work offline: MathJax and every script or stylesheet come from the build.

    For MathJax: ``sphinx: extra_extensions: [sphinx-mathjax-offline]`` in ``_config.yml``."""
    external = {str(page.relative_to(book_build.html_dir)): refs for page in book_build.html_dir.rglob("*.html")
                if "_static" not in page.parts and (refs := external_references(page.read_text(encoding="utf-8")))}
    assert not external, f"pages load assets from other hosts: {external}"


@pytest.mark.slow
def test_built_book_contains_no_solution_or_hidden_test_text(
        book_build: BookBuild, hidden_lines: dict[str, str]) -> None:
    """Every page, page source and download, hidden toggles included."""
    leaks = {str(path.relative_to(book_build.html_dir)): found for path in content_files(book_build.html_dir)
             if (found := find_leaks(page_text(path), hidden_lines))}
    assert not leaks, f"built files contain solution or hidden-test text: {leaks}"


@pytest.mark.slow
def test_cached_rebuild_is_fast(book_build: BookBuild, tmp_path: Path) -> None:
    """A full re-render (``--all``) of a copy of the session build runs no notebook again."""
    assert book_build.returncode == 0, "the session build failed; see test_book_builds_with_warnings_as_errors"
    copy = tmp_path / "book"
    shutil.copytree(book_build.output, copy, symlinks=True)
    rebuild = run_jupyter_book(REPO_ROOT, copy, "--all")
    assert rebuild.returncode == 0, rebuild.log[-3000:]
    executed = [line for line in rebuild.log.splitlines() if "Executing notebook" in line]
    assert not executed, "the execution cache missed:\n" + "\n".join(executed)
    assert rebuild.seconds < CACHED_REBUILD_LIMIT_S, (
        f"cached rebuild took {rebuild.seconds:.0f} s (cold build {book_build.seconds:.0f} s), "
        f"limit {CACHED_REBUILD_LIMIT_S:.0f} s")


# =========================================================================== in a real browser
class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
        pass


@pytest.fixture(scope="session")
def book_url(book_build: BookBuild) -> Iterator[str]:
    """The built HTML served on 127.0.0.1 (a free port) by a background thread."""
    handler = functools.partial(_QuietHandler, directory=str(book_build.html_dir))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def chromium(shared_tmp_path: Path) -> Path:
    """Debian's chromium; installed with apt-get when missing and we are root (as in CI)."""
    with FileLock(str(shared_tmp_path / "chromium-install.lock")):
        if CHROMIUM.exists():
            return CHROMIUM
        if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
            _skip_or_fail(f"{CHROMIUM} is missing; install Debian's browser: sudo apt-get install -y chromium")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                pytest.fail(f"`{' '.join(command)}` failed (exit {done.returncode}):\n"
                            f"{(done.stdout + done.stderr)[-3000:]}")
        if not CHROMIUM.exists():
            pytest.fail(f"apt-get installed chromium but {CHROMIUM} does not exist")
        return CHROMIUM


@pytest.fixture(scope="session")
def axe_script() -> Path:
    """axe-core's ``axe.min.js`` as bundled by the pinned ``axe-playwright-python`` (no CDN)."""
    try:
        import axe_playwright_python
    except ImportError:
        _skip_or_fail("axe-playwright-python is not installed: pip install -r requirements.txt")
    script = Path(axe_playwright_python.__file__).parent / "axe.min.js"
    if not script.is_file():
        pytest.fail(f"axe-playwright-python no longer ships {script.name}")
    return script


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[object]:
    """A headless Chromium driven by playwright (never ``playwright install``: no network).

    Module scope: while playwright's sync API is open, its event loop runs in this thread, and a
    later test file on the same pytest-xdist worker could neither ``asyncio.run`` nor start
    playwright itself."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_or_fail("playwright is not installed: pip install -r requirements.txt")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _visit(browser, base_url: str, path: str, landing: str, axe_script: Path) -> dict:
    """Open ``base_url + path`` in a fresh 1280×900 browser window, wait until it shows ``landing``
    and MathJax has typeset it, and report what a reader would meet, including the serious and
    critical WCAG 2.1 AA violations that axe-core (``axe_script``, injected from disk) finds.

    Requests to any other host are blocked and reported: they fail without network.
    """
    report: dict = {"external": [], "failed_requests": [], "console_errors": [], "mathjax_error": None}

    def route(request_route) -> None:
        if request_route.request.url.startswith(base_url):
            request_route.continue_()
        else:
            report["external"].append(request_route.request.url)
            request_route.abort()

    def harmless(text: str) -> bool:
        return any(pattern.search(text) for pattern in HARMLESS_CONSOLE_ERRORS)

    def on_console(message) -> None:
        if message.type == "error" and not harmless(message.text):
            report["console_errors"].append(message.text)

    def on_page_error(error) -> None:
        if not harmless(str(error)):
            report["console_errors"].append(f"uncaught: {error}")

    def on_response(response) -> None:
        if response.status >= 400:
            report["failed_requests"].append(f"{response.status} {response.url}")

    def on_request_failed(request) -> None:
        if request.url.startswith(base_url):
            report["failed_requests"].append(f"{request.failure} {request.url}")

    context = browser.new_context(viewport=VIEWPORT)
    try:
        context.route("**/*", route)
        page = context.new_page()
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        page.on("console", on_console)
        page.on("pageerror", on_page_error)
        page.on("response", on_response)
        page.on("requestfailed", on_request_failed)
        page.goto(base_url + path, wait_until="load")
        page.wait_for_url(base_url + landing, wait_until="load")
        if page.locator(".math").count():
            try:
                page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
                page.evaluate("() => MathJax.startup.promise")
            except Exception as error:  # playwright's TimeoutError or a MathJax failure: a finding
                report["mathjax_error"] = f"MathJax did not start: {str(error).splitlines()[0]}"
        report["untypeset"] = page.evaluate(
            "() => Array.from(document.querySelectorAll('.math'))"
            ".filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 80))")
        report["tex_errors"] = page.evaluate(
            "() => Array.from(document.querySelectorAll('mjx-merror'))"
            ".map(e => e.getAttribute('data-mjx-error') || e.textContent)")
        report["raw_tex"] = page.evaluate(f"""() => {{
            const skip = 'pre, code, script, style, textarea, mjx-container, .highlight';
            const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
            const found = [];
            while (walker.nextNode()) {{
                const node = walker.currentNode;
                if (node.parentElement && node.parentElement.closest(skip)) continue;
                if ({RAW_TEX}.test(node.textContent)) found.push(node.textContent.trim().slice(0, 120));
            }}
            return found;
        }}""")
        report["broken_images"] = page.evaluate("""async () => {
            const images = Array.from(document.images);
            images.forEach(img => { img.loading = 'eager'; });
            await Promise.all(images.map(img => img.decode().catch(() => null)));
            return images.filter(img => !(img.complete && img.naturalWidth > 0))
                         .map(img => img.currentSrc || img.outerHTML.slice(0, 120));
        }""")
        report["text"] = page.evaluate("() => document.body.textContent")
        report["overflowing_blocks"] = page.evaluate(OVERFLOWING_BLOCKS_JS)
        report["images"] = page.evaluate(CONTENT_IMAGES_JS)
        report["boxes"] = page.evaluate(BOXES_JS, BOX_CLASSES)
        # axe fetches stylesheets itself (and their @imports relative to the page): its requests
        # and their console lines are not the page's
        for event, handler in (("console", on_console), ("response", on_response),
                               ("requestfailed", on_request_failed)):
            page.remove_listener(event, handler)
        page.add_script_tag(path=str(axe_script))
        report["axe"] = page.evaluate(
            """async ([tags, extra]) => (await axe.run(document, {
                    runOnly: {type: 'tag', values: tags},
                    rules: Object.fromEntries(extra.map(id => [id, {enabled: true}])),
                    resultTypes: ['violations']}))
                .violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                       where: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))""",
            [AXE_TAGS, AXE_EXTRA_RULES])
    finally:
        context.close()
    return report


def _assert_page_is_sound(report: dict, where: str, hidden: dict[str, str]) -> None:
    assert not report["external"], f"{where} requested other hosts (no network here): {report['external']}"
    assert not report["failed_requests"], f"{where}: failed requests {report['failed_requests']}"
    assert report["mathjax_error"] is None, f"{where}: {report['mathjax_error']}"
    assert not report["untypeset"], f"{where}: maths MathJax did not typeset: {report['untypeset']}"
    assert not report["tex_errors"], f"{where}: MathJax TeX errors: {report['tex_errors']}"
    assert not report["raw_tex"], f"{where}: raw TeX left in the text: {report['raw_tex']}"
    assert not report["broken_images"], f"{where}: images that did not load: {report['broken_images']}"
    assert not report["console_errors"], f"{where}: JavaScript errors: {report['console_errors']}"
    leaks = find_leaks(report["text"], hidden)
    assert not leaks, f"{where} shows solution or hidden-test text: {leaks}"
    assert not report["overflowing_blocks"], (
        f"{where}: code or output blocks scroll sideways at {VIEWPORT['width']} px "
        f"(keep lines to 80 characters): {report['overflowing_blocks']}")
    images = [image for image in report["images"] if image["natural"] > 0]
    shrunk = [f"{image['alt']!r}: shown {image['shown']:.0f} of {image['natural']} px" for image in images
              if image["shown"] < MIN_FIGURE_SCALE * image["natural"]]
    assert not shrunk, (f"{where}: figures shown below {MIN_FIGURE_SCALE:.0%} of their size "
                        f"(narrow the figure or split its panels): {shrunk}")
    bad_alt = [f"{image['src']}: alt {image['alt']!r}" for image in report["images"]
               if not (image["alt"] or "").strip() or FILE_NAME_ALT.search(image["alt"].strip())]
    assert not bad_alt, f"{where}: images without an alt text that says what they show: {bad_alt}"
    serious = [violation for violation in report["axe"] if violation["impact"] in AXE_FAILING_IMPACTS]
    assert not serious, f"{where}: axe-core finds serious or critical WCAG 2.1 AA violations: {serious}"


def _assert_chapter_boxes(report: dict, where: str) -> None:
    """One objectives box before the first section and one takeaways box after the last, 3-5
    points each (the chapter convention)."""
    for key, boxes in report["boxes"].items():
        assert len(boxes) == 1, f"{where}: expected one {BOX_CLASSES[key]} box, found {len(boxes)}"
        box = boxes[0]
        assert box["points"] in BOX_POINTS, (
            f"{where}: the {BOX_CLASSES[key]} box has {box['points']} points, expected 3 to 5")
    objectives, takeaways = report["boxes"]["objectives"][0], report["boxes"]["takeaways"][0]
    assert objectives["headings_before"] == 0, f"{where}: the learning objectives must come before the first section"
    assert takeaways["headings_after"] == 0, f"{where}: the key takeaways must come after the last section"


@pytest.mark.slow
def test_browser_index_opens_the_book(browser, book_url: str, hidden_lines: dict[str, str],
                                      axe_script: Path) -> None:
    report = _visit(browser, book_url, "index.html", f"{toc_root(REPO_ROOT)}.html", axe_script)
    _assert_page_is_sound(report, "index.html", hidden_lines)


@pytest.mark.slow
@pytest.mark.parametrize("docname", TOC_DOCNAMES)
def test_browser_renders_toc_page(browser, book_url: str, hidden_lines: dict[str, str], axe_script: Path,
                                  docname: str) -> None:
    """Every page of the toc, chapters added later included."""
    report = _visit(browser, book_url, f"{docname}.html", f"{docname}.html", axe_script)
    _assert_page_is_sound(report, f"{docname}.html", hidden_lines)
    if is_executed_chapter(source_file(REPO_ROOT, docname)):
        _assert_chapter_boxes(report, f"{docname}.html")
