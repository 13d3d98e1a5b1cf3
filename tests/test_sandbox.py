"""The sandbox's parts: notebook repair, bwrap arguments, the allowlisted environment, worker
retries, the refusal to grade unisolated, and figures kept through grading."""
from __future__ import annotations

import copy
import os

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from cs231n_utils.grading import demo_course as dc
from cs231n_utils.grading import runner
from cs231n_utils.grading.job import STATUS_GRADED, JobResult, JobSpec
from cs231n_utils.grading.repair import repair_notebook
from cs231n_utils.grading.sandbox import (SandboxLimits, _with_parent_dirs, describe_exit, isolation_problem,
                                          sandbox_environment)


def _nbgrader(cell, grade_id=None):
    cell.metadata["nbgrader"] = {"grade": False, "locked": True, "schema_version": 3, "solution": False}
    if grade_id is not None:
        cell.metadata["nbgrader"]["grade_id"] = grade_id
    return cell


def test_repair_strips_copies_unknown_ids_and_missing_ids_but_keeps_the_instructor_cells():
    nb = new_notebook(cells=[
        _nbgrader(new_markdown_cell("my notes (copied)"), "intro"),  # a copy placed before the original
        _nbgrader(new_code_cell("setup()"), "setup"),
        _nbgrader(new_markdown_cell("intro"), "intro"),
        _nbgrader(new_code_cell("test()"), "test_double"),
        _nbgrader(new_code_cell("test()"), "test_double"),
        _nbgrader(new_markdown_cell("other notes"), "cell-unknown"),
        _nbgrader(new_markdown_cell("no id")),
    ])
    known = {"intro": "markdown", "setup": "code", "test_double": "code"}
    repairs = repair_notebook(nb, known)
    kept = [cell.metadata.get("nbgrader", {}).get("grade_id") for cell in nb.cells]
    # the first cell of the right type keeps each id; copies, unknown ids and id-less cells lose it
    assert kept == ["intro", "setup", None, "test_double", None, None, None]
    assert len(repairs) == 4 and "unknown grade_id 'cell-unknown'" in " ".join(repairs)
    assert repair_notebook(nb, known) == []  # idempotent


def test_repair_prefers_the_cell_of_the_gradebook_type():
    nb = new_notebook(cells=[_nbgrader(new_code_cell("x = 1"), "intro"), _nbgrader(new_markdown_cell("i"), "intro")])
    repair_notebook(nb, {"intro": "markdown"})
    assert "nbgrader" not in nb.cells[0].metadata and nb.cells[1].metadata["nbgrader"]["grade_id"] == "intro"
    with pytest.raises(ValueError, match="known"):
        repair_notebook(nb, ["intro"])


def test_every_mount_point_gets_walkable_parent_folders():
    arguments = _with_parent_dirs(["--tmpfs", "/tmp", "--ro-bind", "/src/a", "/opt/x/pkg/a.py",
                                   "--bind", "/h", "/tmp/job/kernel"])
    text = " ".join(arguments)
    for folder in ("/opt", "/opt/x", "/opt/x/pkg", "/tmp/job"):
        assert f"--perms 0755 --dir {folder} " in text
    assert text.index("--dir /tmp/job") > text.index("--tmpfs /tmp")  # made inside the private /tmp
    assert "--dir /tmp " not in text


def test_sandbox_environment_is_an_allowlist_without_a_forced_backend(monkeypatch):
    monkeypatch.setenv("CS231N_GRADEBOOK_URL", "sqlite:////course/gradebook.db")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    env = sandbox_environment({"CS231N_CHANNEL": "/run/channel"})
    assert "CS231N_GRADEBOOK_URL" not in env and "MPLBACKEND" not in env
    assert env["HOME"] == env["PWD"] == "/home/student" and env["CS231N_CHANNEL"] == "/run/channel"
    assert set(env) - {"CS231N_CHANNEL"} <= {
        "PATH", "HOME", "PWD", "USER", "LOGNAME", "LANG", "LC_ALL", "TMPDIR", "IPYTHONDIR", "MPLCONFIGDIR",
        "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONNOUSERSITE", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS", "JPY_PARENT_PID"}


def test_bwrap_exit_status_of_a_signalled_kernel_names_the_signal():
    assert "SIGSEGV" in describe_exit(128 + 11, sandboxed=True)
    assert "status 3" in describe_exit(3, sandboxed=True)


def test_limits_validate_processes_and_isolation():
    with pytest.raises(ValueError, match="max_processes"):
        SandboxLimits(max_processes=0)
    with pytest.raises(ValueError, match="isolate"):
        SandboxLimits(isolate="yes")


def _fake_grade(spec: JobSpec) -> JobResult:
    if spec.student == "killer":
        os._exit(9)  # takes its worker process down, like a job that kills the worker
    return JobResult(spec.assignment, spec.student, STATUS_GRADED, [], [])


def test_a_job_that_kills_its_worker_is_retried_once_and_recorded(monkeypatch):
    monkeypatch.setattr(runner, "grade_submission", _fake_grade)
    specs = [JobSpec("ps1", name, {}, {}, b"") for name in ("steady", "killer", "after")]
    results = {r.student: r for r in runner.run_jobs(specs, workers=1)}
    assert set(results) == {"steady", "killer", "after"}
    assert results["killer"].status == "failed"
    assert "retried once, lost again" in results["killer"].reasons[0]
    assert results["steady"].status == results["after"].status == STATUS_GRADED


needs_isolation = pytest.mark.skipif(isolation_problem() is not None, reason=f"no OS isolation: {isolation_problem()}")


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return dc.build_course(tmp_path_factory.mktemp("course"))


def test_grading_refuses_to_run_unisolated_unless_told(course, monkeypatch, capsys):
    from cs231n_utils.grading import autograde_batch
    from cs231n_utils.grading.cli import main

    monkeypatch.setattr(autograde_batch, "isolation_problem", lambda: "bubblewrap is not installed")
    dc.write_submission(course, "plain", dc.ANSWER)
    args = ["--course", str(course), "--quiet", "autograde", dc.ASSIGNMENT, "--student", "plain",
            "--timeout", "60", "--cell-timeout", "30"]
    assert main(args) == 2
    assert "refusing to grade without OS isolation: bubblewrap is not installed" in capsys.readouterr().err
    assert main([*args, "--unsafe-no-isolation"]) == 0


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")
@needs_isolation
def test_figures_and_copied_cells_survive_sandboxed_grading(course):
    from cs231n_utils.grading.autograde_batch import autograde

    plot = ("import matplotlib.pyplot as plt\nplt.plot([3, 1, 2])\nplt.title('training curve')\nplt.show()\n"
            + dc.ANSWER)
    dc.write_submission(course, "plotter", plot)
    nb = dc.released_notebook(course)
    copied = copy.deepcopy([c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_double"][0])
    notes = _nbgrader(new_markdown_cell("my notes"), "cell-copied-from-elsewhere")
    nb.cells[1:1] = [notes, copy.deepcopy(notes)]
    nb.cells.append(copied)
    dc.write_submission(course, "copier", dc.ANSWER, notebook=nb)
    results = {r.student: r for r in autograde(course, dc.ASSIGNMENT, students=["plotter", "copier"], workers=1,
                                                limits=SandboxLimits(timeout_s=120, cell_timeout_s=60))}
    assert results["plotter"].score == 3.0 and results["copier"].score == 3.0
    graded = nbformat.reads(results["plotter"].notebooks[0].autograded_json, as_version=4)
    images = [o for c in graded.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 1
    on_disk = nbformat.read(str(course / "autograded" / "plotter" / dc.ASSIGNMENT / f"{dc.NOTEBOOK}.ipynb"),
                            as_version=4)
    assert any("image/png" in o.get("data", {}) for c in on_disk.cells for o in c.get("outputs", []))
    assert sum("copied nbgrader metadata" in r for r in results["copier"].reasons) == 3


@needs_isolation
def test_extra_binds_and_env_reach_the_sandboxed_kernel_and_nothing_else_does(tmp_path):
    """The contract the checker's channel uses: ``extra_binds_json`` and ``extra_env_json``."""
    import asyncio
    import json

    from cs231n_utils.grading.sandbox import JobSandbox, SandboxedKernelManager

    channel = tmp_path / "channel"
    channel.mkdir()
    (channel / "hello.txt").write_text("from the checker")
    code = ("import os\n"
            "open('/run/channel/reply.txt', 'w').write(open('/run/channel/hello.txt').read())\n"
            f"print(os.environ['CS231N_CHANNEL'], os.path.exists({str(channel / 'hello.txt')!r}), os.getuid() != 0)")

    async def run(config: dict) -> str:
        km = SandboxedKernelManager(kernel_name="python3", **config["SandboxedKernelManager"],
                                    extra_binds_json=json.dumps([[str(channel), "/run/channel"]]),
                                    extra_env_json=json.dumps({"CS231N_CHANNEL": "/run/channel"}))
        await km.start_kernel(cwd=str(work))
        client = km.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=60)
            printed = []
            await client.execute_interactive(code, timeout=60, output_hook=lambda m: printed.append(
                m["content"].get("text", "")))
            return "".join(printed)
        finally:
            client.stop_channels()
            await km.shutdown_kernel(now=True)

    work = tmp_path / "job"
    work.mkdir()
    with JobSandbox(SandboxLimits(), work) as sandbox:
        printed = asyncio.run(run(sandbox.kernel_config()))
    assert printed.split() == ["/run/channel", "False", "True"]
    assert (channel / "reply.txt").read_text() == "from the checker"
