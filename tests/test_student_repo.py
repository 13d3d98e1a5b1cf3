"""The public student repository (``python3 tasks.py student-repo DIR``): it holds no solution,
no hidden test and no trusted grading code, and the book builds from it alone."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import tasks
from tests.book_checks import REPO_ROOT, distinctive_hidden_lines, find_leaks, run_jupyter_book

SOLUTIONS_DIR = REPO_ROOT / "solutions"


@pytest.fixture(scope="module")
def student_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("student") / "repo"
    tasks.write_student_repo(target)
    return target


def _text_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file() and path.suffix in
            {".md", ".ipynb", ".py", ".txt", ".yml", ".toml", ".bib", ".in", ".css", ".svg", ""}]


def test_student_repo_has_no_solutions_tests_or_grader(student_repo: Path) -> None:
    for private in ("solutions", "tests", "nbgrader_config.py", "benchmarks", ".github",
                    "cs231n_utils/autograde", "cs231n_utils/grading"):
        assert not (student_repo / private).exists(), f"the student repository contains {private}"
    for public in ("README.md", "_config.yml", "_toc.yml", "chapters", "assignments", "binder/postBuild",
                   "cs231n_utils/optim.py", "pyproject.toml", "requirements.txt"):
        assert (student_repo / public).exists(), f"the student repository lacks {public}"
    assert "cs231n-grade" not in (student_repo / "pyproject.toml").read_text(), \
        "pyproject.toml still installs the grader's command, whose code is not shipped"


@pytest.mark.skipif(not SOLUTIONS_DIR.is_dir(), reason="no solutions/ in this checkout")
def test_student_repo_holds_no_solution_or_hidden_test_text(student_repo: Path) -> None:
    public_package = sorted((student_repo / "cs231n_utils").rglob("*.py"))
    hidden = distinctive_hidden_lines(SOLUTIONS_DIR, public_package)
    assert hidden, "found no hidden lines in solutions/: the leak check would check nothing"
    leaks = {str(path.relative_to(student_repo)): found for path in _text_files(student_repo)
             if (found := find_leaks(path.read_text(encoding="utf-8", errors="replace"), hidden))}
    assert not leaks, f"the student repository leaks solution or hidden-test text: {leaks}"


def test_student_repo_points_the_book_at_itself(student_repo: Path) -> None:
    url = tasks._config_value("url")
    assert url in (student_repo / "README.md").read_text()
    assert not url.rstrip("/").endswith("cs231n-optim-book"), "the book's buttons point at the private course repository"


def test_student_repo_refuses_a_file_with_nbgrader_markers(tmp_path: Path, monkeypatch) -> None:
    course = tmp_path / "course"
    (course / "chapters").mkdir(parents=True)
    (course / "cs231n_utils" / "grading").mkdir(parents=True)
    (course / "_config.yml").write_text("title: T\nrepository:\n  url: https://example.org/public\n")
    (course / "cs231n_utils" / "grading" / "checker.py").write_text("EXPECTED = 42\n")
    (course / "chapters" / "a.md").write_text("# A\n")
    subprocess.run(["git", "init", "-q", str(course)], check=True)
    monkeypatch.setattr(tasks, "ROOT", course)

    written = tasks.write_student_repo(tmp_path / "clean")
    assert sorted(p.as_posix() for p in written) == ["README.md", "_config.yml", "chapters/a.md"]

    (course / "chapters" / "b.md").write_text("x = 1  ### BEGIN SOLUTION\n")
    with pytest.raises(RuntimeError, match="chapters/b.md"):
        tasks.write_student_repo(tmp_path / "leaky")
    with pytest.raises(ValueError, match="not empty"):
        tasks.write_student_repo(tmp_path / "clean")


@pytest.mark.slow
def test_student_repo_builds_the_book(student_repo: Path, tmp_path: Path) -> None:
    """A cold build (every chapter executed) from the student files alone, warnings as errors."""
    build = run_jupyter_book(student_repo, tmp_path / "out")
    assert build.returncode == 0, build.log[-3000:]
    assert (build.html_dir / "index.html").is_file()
    assert not (build.html_dir / "solutions").exists()
