"""Helpers for the book-level tests: build the Jupyter Book, read what it produced, find leaks.

Kept apart from ``test_book.py`` so that each check is a plain function with its own unit test
(the leak checker is exercised on a fake ``solutions/`` notebook, see ``test_book.py``).
"""
from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
from bs4 import BeautifulSoup
from myst_nb.core.read import is_myst_markdown_notebook
from sphinx_external_toc.parsing import parse_toc_yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT_S = 900
SOURCE_SUFFIXES = (".md", ".ipynb", ".rst")
IMAGE_MIME_TYPES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")
TEXT_SUFFIXES = {".html", ".md", ".ipynb", ".py", ".txt", ".js", ".json"}
HIDING_TAGS = {"remove-output", "remove_output", "remove-cell", "remove_cell"}
INPUT_HIDING_TAGS = {"remove-input", "remove_input", "remove-cell", "remove_cell", "hide-input", "hide-cell"}
# A code line longer than this does not fit the content column at 1280 px.
MAX_LINE_CHARS = 80

# nbgrader's delimiters (ClearSolutions / ClearHiddenTests match them as substrings of a line).
REGION_DELIMITERS = (("BEGIN SOLUTION", "END SOLUTION"), ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS"))
MARKER_STRINGS = tuple(marker for pair in REGION_DELIMITERS for marker in pair)
# A hidden line shorter than this (whitespace removed) is too generic to call a leak ("pass", "else:").
MIN_DISTINCTIVE_CHARS = 16
IMPORT_LINE = re.compile(r"\s*(import\s|from\s+\S+\s+import\s)")


# --------------------------------------------------------------------------- build
@dataclass(frozen=True)
class BookBuild:
    """One ``jupyter-book build`` run: where it wrote, how it ended, what it printed."""

    source: Path
    output: Path
    returncode: int
    seconds: float
    log: str

    @property
    def build_dir(self) -> Path:
        return self.output / "_build"

    @property
    def html_dir(self) -> Path:
        return self.build_dir / "html"

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "source": str(self.source), "output": str(self.output)})

    @classmethod
    def from_json(cls, text: str) -> BookBuild:
        data = json.loads(text)
        return cls(**{**data, "source": Path(data["source"]), "output": Path(data["output"])})


def jupyter_book_executable() -> Path:
    """The ``jupyter-book`` script of the Python environment running the tests."""
    return Path(sys.executable).parent / ("jupyter-book.exe" if os.name == "nt" else "jupyter-book")


def run_jupyter_book(source: Path, output: Path, *extra: str) -> BookBuild:
    """``jupyter-book build SOURCE --path-output OUTPUT --warningiserror --keep-going [EXTRA]``.

    The source tree goes first on ``PYTHONPATH`` so that the chapters import the checkout's
    ``cs231n_utils``, not another installed copy.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(source), env.get("PYTHONPATH", "")) if p)
    command = [str(jupyter_book_executable()), "build", str(source), "--path-output", str(output),
               "--warningiserror", "--keep-going", *extra]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=source, env=env, capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT_S)
    return BookBuild(source=source, output=output, returncode=done.returncode,
                     seconds=time.perf_counter() - started, log=done.stdout + done.stderr)


# --------------------------------------------------------------------------- table of contents
def toc_docnames(source: Path) -> list[str]:
    """Docnames listed in ``_toc.yml`` (root first), parsed as jupyter-book parses them."""
    site_map = parse_toc_yaml(source / "_toc.yml")
    if site_map.globs():
        raise ValueError(f"_toc.yml uses glob entries {sorted(site_map.globs())}; list files explicitly")
    return list(site_map)


def toc_root(source: Path) -> str:
    """The root docname of ``_toc.yml`` (the book's landing page)."""
    return parse_toc_yaml(source / "_toc.yml").root.docname


def source_file(source: Path, docname: str) -> Path:
    """The source file of ``docname`` (tries the suffixes jupyter-book reads)."""
    for suffix in SOURCE_SUFFIXES:
        candidate = source / f"{docname}{suffix}"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no source file for toc entry {docname!r} under {source}")


def is_executed_chapter(path: Path) -> bool:
    """True for a MyST-markdown notebook (jupytext front matter with a kernelspec).

    These are the chapters that must execute at build time; ``.ipynb`` pages (the student
    assignments) may be excluded from execution.
    """
    return path.suffix == ".md" and is_myst_markdown_notebook(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- execution
def execution_reports(build: BookBuild) -> dict[str, dict]:
    """myst-nb's execution report per docname (``succeeded``, ``method``, ``runtime``, ``error``).

    myst-nb keeps it in the Sphinx environment (the data behind its ``nb-exec-table``).
    """
    with open(build.build_dir / ".doctrees" / "environment.pickle", "rb") as handle:
        env = pickle.load(handle)
    return {doc: meta["exec_data"] for doc, meta in getattr(env, "nb_metadata", {}).items()
            if meta.get("exec_data")}


def failure_log(build: BookBuild, docname: str) -> str | None:
    """The traceback myst-nb saved under ``html/reports/`` when ``docname`` failed to execute."""
    log = build.html_dir / "reports" / f"{docname}.err.log"
    return log.read_text(encoding="utf-8") if log.is_file() else None


def error_outputs(html: str) -> list[str]:
    """Error outputs (tracebacks) shown in a page's code cells.

    A cell tagged ``raises-exception`` shows its error on purpose and is skipped.
    """
    soup = BeautifulSoup(html, "html.parser")
    found = []
    for cell in soup.select("div.cell"):
        if "tag_raises-exception" in cell.get("class", []):
            continue
        for output in cell.select("div.cell_output"):
            text = output.get_text()
            if output.select(".traceback") or "Traceback (most recent call last)" in text:
                found.append(text.strip()[:500])
    return found


def shown_image_outputs(notebook: Path) -> int:
    """How many image outputs of an executed notebook the page should show."""
    count = 0
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type != "code" or HIDING_TAGS & set(cell.metadata.get("tags", [])):
            continue
        count += sum(any(m in out.get("data", {}) for m in IMAGE_MIME_TYPES) for out in cell.outputs)
    return count


def long_lines(notebook: Path, limit: int = MAX_LINE_CHARS) -> list[str]:
    """Shown code lines of a notebook longer than ``limit`` characters, as ``"cell N: line"``.

    Printed output may be longer: the book's stylesheet wraps it (``_static/book.css``).
    """
    found = []
    for number, cell in enumerate(nbformat.read(notebook, as_version=4).cells):
        if cell.cell_type != "code" or set(cell.metadata.get("tags", [])) & INPUT_HIDING_TAGS:
            continue
        found += [f"cell {number}: {line}" for line in cell.source.splitlines() if len(line) > limit]
    return found


def image_sources(html: str) -> list[str]:
    """``src`` of every ``<img>`` with one (animation frames get theirs from JavaScript)."""
    soup = BeautifulSoup(html, "html.parser")
    return [img["src"] for img in soup.find_all("img") if img.get("src")]


def missing_images(page: Path, html_dir: Path) -> list[str]:
    """Image sources of ``page`` that are neither inline data nor a non-empty file in the build."""
    missing = []
    for src in image_sources(page.read_text(encoding="utf-8")):
        parts = urlsplit(src)
        if parts.scheme == "data":
            continue
        target = (page.parent / unquote(parts.path)).resolve()
        if parts.scheme or parts.netloc or not target.is_relative_to(html_dir.resolve()) \
                or not target.is_file() or target.stat().st_size == 0:
            missing.append(src)
    return missing


def external_references(html: str) -> list[str]:
    """Scripts and stylesheets a page loads from another host (a CDN)."""
    soup = BeautifulSoup(html, "html.parser")
    urls = [tag.get("src") for tag in soup.find_all("script")]
    urls += [tag.get("href") for tag in soup.find_all("link") if "stylesheet" in tag.get("rel", [])]
    return [url for url in urls if url and urlsplit(url).netloc]


# --------------------------------------------------------------------------- solution leaks
def _squash(text: str) -> str:
    """Text with all whitespace removed, so re-wrapping or re-indenting hides nothing."""
    return re.sub(r"\s+", "", text)


def split_hidden_lines(notebook: Path) -> tuple[list[str], list[str]]:
    """(hidden, public) source lines of an nbgrader source notebook.

    Hidden: lines strictly inside ``BEGIN SOLUTION``/``END SOLUTION`` and ``BEGIN HIDDEN TESTS``/
    ``END HIDDEN TESTS`` regions, and the whole source of a solution cell without a region
    (nbgrader replaces such a cell by a stub). Public: every other line.
    """
    hidden, public = [], []
    for cell in nbformat.read(notebook, as_version=4).cells:
        lines = cell.source.splitlines()
        has_region = any(begin in line for line in lines for begin, _ in REGION_DELIMITERS)
        is_solution = cell.metadata.get("nbgrader", {}).get("solution", False)  # nbgrader's test
        if is_solution and not has_region:
            hidden.extend(lines)
            continue
        closing = None
        for line in lines:
            if closing is None:
                closing = next((end for begin, end in REGION_DELIMITERS if begin in line), None)
                if closing is None:
                    public.append(line)
            elif closing in line:
                closing = None
            else:
                hidden.append(line)
    return hidden, public


def distinctive_hidden_lines(solutions_dir: Path, public_files: Iterable[Path] = ()) -> dict[str, str]:
    """Hidden lines of every notebook under ``solutions_dir`` that would betray a leak.

    Returns ``{squashed line: "notebook: original line"}`` for the hidden lines with at least
    ``MIN_DISTINCTIVE_CHARS`` non-space characters, except import statements and lines that
    students can read anyway: the public part of any source notebook (what the release shows)
    and the lines of ``public_files`` (e.g. the installed ``cs231n_utils`` sources).
    """
    hidden: dict[str, str] = {}
    public = {_squash(line) for path in public_files for line in path.read_text(encoding="utf-8").splitlines()}
    for notebook in sorted(solutions_dir.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in notebook.parts:
            continue
        notebook_hidden, notebook_public = split_hidden_lines(notebook)
        public.update(_squash(line) for line in notebook_public)
        for line in notebook_hidden:
            key = _squash(line)
            if len(key) >= MIN_DISTINCTIVE_CHARS and not IMPORT_LINE.match(line):
                hidden.setdefault(key, f"{notebook.relative_to(solutions_dir)}: {line.strip()}")
    return {key: where for key, where in hidden.items() if key not in public}


def find_leaks(text: str, hidden: dict[str, str]) -> list[str]:
    """Marker strings and hidden lines (from :func:`distinctive_hidden_lines`) found in ``text``."""
    leaks = [f"marker {marker!r}" for marker in MARKER_STRINGS
             if re.search(r"\s+".join(marker.split()), text)]
    squashed = _squash(text)
    return leaks + [where for key, where in hidden.items() if key in squashed]


def content_files(html_dir: Path) -> list[Path]:
    """Built files a reader can open: pages, page sources, downloads, the search index.

    ``_static`` (theme and MathJax assets) and binary files are left out.
    """
    return sorted(p for p in html_dir.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES
                  and "_static" not in p.relative_to(html_dir).parts)


def page_text(path: Path) -> str:
    """All text of a built file: an HTML page's text (hidden toggles included), other files raw."""
    raw = path.read_text(encoding="utf-8", errors="replace")
    return BeautifulSoup(raw, "html.parser").get_text() if path.suffix == ".html" else raw
