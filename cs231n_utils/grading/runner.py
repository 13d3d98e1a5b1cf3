"""Run :func:`~cs231n_utils.grading.job.grade_submission` jobs in parallel, yielding results as they finish.

Two engines, one interface (:func:`run_jobs`):

* ``scheduler="tcp://host:8786"``: an existing Dask distributed cluster. Workers need this
  package and nbgrader installed; they need no shared filesystem, because a
  :class:`~cs231n_utils.grading.job.JobSpec` carries the files as bytes.
* otherwise ``workers`` local worker processes from :mod:`concurrent.futures` (the parent
  process never executes student code). A local Dask cluster would cost its start-up (about
  3 s of the 2-core machine for two workers) and give nothing more on one machine; each pool
  worker keeps its grading slot, and the slot's pre-warmed kernel (:mod:`.prewarm`), for all
  its jobs.

Pool workers fork from a single-threaded fork server: no worker is forked from the threaded
parent (see :func:`.pool.pool_context`). Jobs are submitted lazily, at most ``2 * workers`` in
flight, so 700 submissions never sit in memory at once. A job whose worker dies is retried once
(the pool's other jobs with it, each alone; a Dask cluster's ``allowed-failures`` should be 1);
lost again, it comes back as a failed :class:`~cs231n_utils.grading.job.JobResult` saying so,
and the batch always continues.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Iterable, Iterator

from .job import STATUS_FAILED, JobResult, JobSpec, grade_submission
from .pool import pool_context


def _lost(spec: JobSpec, error: BaseException, *, retried: bool = False) -> JobResult:
    again = " (retried once, lost again)" if retried else ""
    return JobResult(spec.assignment, spec.student, STATUS_FAILED,
                     [f"worker lost the job{again}: {type(error).__name__}: {error}"], [])


def _run_pool(specs: Iterator[JobSpec], workers: int) -> Iterator[JobResult]:
    """Grade on a process pool; when a worker dies, the pool breaks and every job it held is
    retried once, alone, in a fresh pool (recorded in its reasons); a job lost on its own
    retry is failed, so a job that kills its worker never costs a neighbour its grade."""
    context = pool_context()
    retries: deque[JobSpec] = deque()
    retried: set[tuple[str, str]] = set()
    exhausted = False
    while not exhausted or retries:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            pending: dict = {}
            broken = False
            while True:
                while not broken and not any((s.assignment, s.student) in retried for s in pending.values()):
                    if retries:  # a retried job runs alone: losing it again is then its own doing
                        if not pending:
                            spec = retries.popleft()
                            pending[pool.submit(grade_submission, spec)] = spec
                        break
                    if len(pending) >= 2 * workers:
                        break
                    spec = next(specs, None)
                    if spec is None:
                        exhausted = True
                        break
                    pending[pool.submit(grade_submission, spec)] = spec
                if not pending:
                    break
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for future in done:
                    spec = pending.pop(future)
                    key = (spec.assignment, spec.student)
                    try:
                        result = future.result()
                    except BrokenProcessPool as error:
                        broken = True
                        if key in retried:
                            yield _lost(spec, error, retried=True)
                        else:
                            retried.add(key)
                            retries.append(spec)
                        continue
                    except Exception as error:  # a job that cannot be pickled, ...
                        yield _lost(spec, error)
                        continue
                    if key in retried:
                        result.reasons.append("the first attempt lost its worker process; graded on the retry")
                    yield result
            if not broken:
                return


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
    except Exception as error:  # KilledWorker (retried once by the scheduler), CommClosedError, ...
        return _lost(spec, error, retried=type(error).__name__ == "KilledWorker")
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
    else:
        yield from _run_pool(specs, workers)
