"""The start method of the grading workers, and starting their fork server early.

Workers fork from a single-threaded *fork server* that imported the grading code once
(:func:`pool_context`): they start fast, and none inherits a lock that one of the parent's
threads held at fork time (a plain ``fork`` of the threaded parent once hung a worker on the
logging lock). Importing the grading code (nbgrader, nbformat, jsonschema) costs about 2 s of
CPU; :func:`start_pool_server` starts the server before the parent's own imports, so the two
run side by side on a machine with two cores instead of one after the other. This module
imports nothing heavy.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver

__all__ = ["WORKER_MODULE", "pool_context", "start_pool_server"]

WORKER_MODULE = "cs231n_utils.grading.job"
"""What every worker runs; the fork server imports it once."""


def pool_context() -> multiprocessing.context.BaseContext:
    """``forkserver`` preloading :data:`WORKER_MODULE` where there is one; ``spawn`` elsewhere."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([WORKER_MODULE])
    return context


def start_pool_server() -> None:
    """Start the fork server now (it imports :data:`WORKER_MODULE` in the background)."""
    if pool_context().get_start_method() == "forkserver":
        multiprocessing.forkserver.ensure_running()
