"""Fixtures shared by several test files."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch
from filelock import FileLock

if TYPE_CHECKING:  # imported lazily below: runs that never build the book skip its imports
    from tests.book_checks import BookBuild


@pytest.fixture(scope="session")
def shared_tmp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary folder for this test session, the same for all pytest-xdist workers.

    Guard what you create there with a ``filelock.FileLock`` beside it.
    """
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def book_build(shared_tmp_path: Path) -> BookBuild:
    """The book built once per test session into a temporary folder (warnings are errors).

    Under pytest-xdist the workers share one build: the first one to take the lock builds,
    the others read the recorded result.
    """
    from tests.book_checks import REPO_ROOT, BookBuild, run_jupyter_book

    record = shared_tmp_path / "book-build.json"
    with FileLock(str(shared_tmp_path / "book-build.lock")):
        if record.exists():
            return BookBuild.from_json(record.read_text())
        build = run_jupyter_book(REPO_ROOT, shared_tmp_path / "book")
        record.write_text(build.to_json())
        return build


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's torch code on one thread. Its tensors are tiny and gain nothing from threads,
    and on a loaded 2-core machine waiting for a descheduled OpenMP thread made a 100-step test
    take 10 s instead of 0.05 s. Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
