"""Instructor grading at class scale, built on nbgrader: ``cs231n-grade`` (see :mod:`.cli`).

Modules, one job each:

- ``course``: open a course directory (``nbgrader_config.py``, paths, gradebook URL)
- ``collect``: LMS zips / folders -> ``submitted/<student>/<assignment>/``
- ``sandbox``: resource-limited kernel in an empty temporary directory; ``prewarm``: its pre-warmed
  zygote per worker; ``processes``: a slot's processes, found and signalled from ``/proc``
- ``tamper``: static scan of student cells; ``guard``: pristine state before instructor cells
- ``job``: autograde one submission in a private throw-away course (runs on workers)
- ``runner``: a process pool of local workers (``pool``: their fork server), or an existing Dask scheduler
- ``gradebook``: gradebook template and serial merges into the course gradebook
- ``autograde_batch``: plan, run and merge a whole assignment
- ``feedback``, ``export``: nbgrader feedback per student; CSV, histogram, failure table
- ``demo_course``: a tiny nbgrader course for the tests and the benchmark
"""
