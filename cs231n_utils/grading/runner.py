"""Run :func:`~cs231n_utils.grading.job.grade_submission` jobs in parallel, yielding results as they finish.

Three engines, one interface (:func:`run_jobs`):

* ``scheduler="tcp://host:8786"``: an existing Dask distributed cluster. Workers need this
  package and nbgrader installed; they need no shared filesystem, because a
  :class:`~cs231n_utils.grading.job.JobSpec` carries the files as bytes.
* ``workers > 1`` (default when no scheduler is given): a Dask ``LocalCluster`` of ``workers``
  single-threaded worker processes.
* ``workers == 1``: one worker process from :mod:`concurrent.futures` (no Dask start-up cost,
  and the parent process still never executes student code).

Worker processes are forked where the platform allows it (see :func:`_start_method`); the
parent opens no gradebook before they start. Jobs are submitted lazily, at most ``2 * workers`` in flight, so 700 submissions never sit in
memory at once. A job that dies with its worker comes back as a failed
:class:`~cs231n_utils.grading.job.JobResult`, so the batch always continues.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Iterable, Iterator

from .job import STATUS_FAILED, JobResult, JobSpec, grade_submission


def _lost(spec: JobSpec, error: BaseException) -> JobResult:
    return JobResult(spec.assignment, spec.student, STATUS_FAILED,
                     [f"worker lost the job: {type(error).__name__}: {error}"], [])


def _start_method() -> str:
    """``fork`` where there is one: workers start in milliseconds with nbgrader already imported
    (``spawn`` re-imports it in every worker, seconds on a busy machine)."""
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


def _run_pool(specs: Iterator[JobSpec], workers: int) -> Iterator[JobResult]:
    context = multiprocessing.get_context(_start_method())
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: dict = {}
        for spec in specs:
            pending[pool.submit(grade_submission, spec)] = spec
            if len(pending) >= 2 * workers:
                yield from _collect_pool(pending, FIRST_COMPLETED)
        while pending:
            yield from _collect_pool(pending, FIRST_COMPLETED)


def _collect_pool(pending: dict, return_when: str) -> Iterator[JobResult]:
    done, _ = wait(list(pending), return_when=return_when)
    for future in done:
        spec = pending.pop(future)
        try:
            yield future.result()
        except Exception as error:  # BrokenProcessPool and friends
            yield _lost(spec, error)


def _run_dask(specs: Iterator[JobSpec], client, workers: int) -> Iterator[JobResult]:
    from distributed import as_completed

    futures = as_completed()
    owners: dict = {}
    for spec in specs:
        future = client.submit(grade_submission, spec, pure=False, retries=0)
        owners[future.key] = spec
        futures.add(future)
        if futures.count() >= 2 * workers:
            yield _dask_result(next(futures), owners)
    for future in futures:
        yield _dask_result(future, owners)


def _dask_result(future, owners: dict) -> JobResult:
    spec = owners.pop(future.key)
    try:
        return future.result()
    except Exception as error:  # KilledWorker, CommClosedError, ...
        return _lost(spec, error)
    finally:
        future.release()


def run_jobs(specs: Iterable[JobSpec], *, workers: int = 1, scheduler: str | None = None) -> Iterator[JobResult]:
    """Grade ``specs`` on the chosen engine; yield each :class:`JobResult` as it completes."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if scheduler is not None and not isinstance(scheduler, str):
        raise ValueError(f"scheduler must be an address string, got {scheduler!r}")
    specs = iter(specs)
    if scheduler:
        from distributed import Client

        with Client(scheduler) as client:
            slots = max(1, sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()))
            yield from _run_dask(specs, client, slots)
    elif workers == 1:
        yield from _run_pool(specs, 1)
    else:
        import dask
        from distributed import Client, LocalCluster

        with dask.config.set({"distributed.worker.multiprocessing-method": _start_method()}):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, memory_limit=0)
        with cluster, Client(cluster) as client:
            yield from _run_dask(specs, client, workers)
