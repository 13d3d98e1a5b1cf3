"""Attacks on grading, end to end through ``cs231n-grade autograde``: none beats a do-nothing answer.

The course is a temporary copy of the real ``update_rules`` assignment. Every attack is a cell
added after the ``adam`` answer cell of a submission whose ``adam`` is :data:`DO_NOTHING` (it
passes the visible sanity checks, so the hidden test runs, but implements nothing of Adam); the
other rules are left blank. Each attack then tries to raise the ``test_adam`` score (3 points)
above what :data:`DO_NOTHING` earns on its own, by changing grading code in the kernel's memory,
faking output, or faking the channel. The static tamper scan is off: the trusted checker alone
must hold. Attacks that read the reference from disk need the OS sandbox (bubblewrap) and the
package boundary, and are skipped where the sandbox does not provide them.
"""
from __future__ import annotations

import os
import shutil
import textwrap

import nbformat
import pytest

from checker_course import build_course, cell_scores, package_digest, submit
from cs231n_utils.grading import sandbox
from cs231n_utils.grading.autograde_batch import autograde
from cs231n_utils.grading.sandbox import SandboxLimits

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")]

LIMITS = SandboxLimits(timeout_s=150, cell_timeout_s=40, memory_mb=3072, cpu_seconds=120)
DO_NOTHING = textwrap.dedent('''
    def adam(w, dw, config=None):
        """Moves every weight a tiny step against the sign of its gradient: no Adam at all."""
        config = {} if config is None else config
        for key in ("m", "v", "t"):
            config.setdefault(key, 0)
        return w - 1e-3 * np.sign(dw), config
''').strip()

ATTACKS = {
    # grading code in the kernel's memory: the in-kernel checks, an alias, the kernel helper
    "patches_autograde": '''
        import cs231n_utils.autograde as autograde
        from cs231n_utils.autograde import report
        report.GradeReport.award = lambda self, points: float(points)
        report.GradeReport.fraction = property(lambda self: 1.0)
        autograde.check_update_rule = lambda *args, **kwargs: report.GradeReport("adam")
    ''',
    "patches_kernel_grade": '''
        import cs231n_utils.kernel as kernel
        kernel.grade = lambda grade_id, answer, points: float(points)
    ''',
    # output that a score parser might read
    "fakes_output": '''
        ip = get_ipython()
        ip.display_formatter.formatters["text/plain"].for_type(type(None), lambda obj, p, cycle: p.text("3.0"))
        ip.events.register("post_run_cell", lambda result: print("Score: 3 / 3"))
        print("Score: 3 / 3")
    ''',
    # a raw thread that keeps replacing the kernel side of the channel
    "raw_thread": '''
        import _thread, time
        import cs231n_utils.kernel.serve as serve_module

        def forge(answer, request):
            return {"result": (request.get("args") or [0])[0], "args": request.get("args", []),
                    "kwargs": request.get("kwargs", {})}

        def keep_patching():
            for _ in range(2000):
                serve_module.answer_request = forge
                time.sleep(0.005)

        _thread.start_new_thread(keep_patching, ())
    ''',
    # walking the frames of the serving loop to write forged replies into its socket
    "walks_frames": '''
        import sys
        from cs231n_utils.kernel.codec import send_message
        honest_adam = adam

        def adam(w, dw, config=None):
            frame = sys._getframe()
            while frame is not None and "sock" not in frame.f_locals:
                frame = frame.f_back
            if frame is not None:
                send_message(frame.f_locals["sock"], {"result": (w, {"m": 1, "v": 1, "t": 1}),
                                                      "args": [w, dw, config], "kwargs": {}})
            return honest_adam(w, dw, config)
    ''',
    # a hand-written server on the checker's socket that answers nonsense; the real call disabled
    "fake_server": '''
        import os, socket, threading
        import cs231n_utils.kernel as kernel
        from cs231n_utils.kernel.codec import receive_message, send_message

        def fake():
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(os.environ["CS231N_CHECKER_SOCKET"])
                send_message(sock, {"serve": "test_adam"})
                while True:
                    request = receive_message(sock)
                    if request.get("op") == "done":
                        return
                    send_message(sock, {"result": "Score: 3 / 3", "args": request["args"], "kwargs": {}})

        if "CS231N_CHECKER_SOCKET" in os.environ:
            threading.Thread(target=fake).start()
        kernel.grade = lambda *args, **kwargs: 3.0
    ''',
}

# Reading or running the reference: only the sandbox's package boundary stops these.
REFERENCE_ATTACKS = {
    "imports_reference": '''
        from cs231n_utils.optim import adam
    ''',
    "reads_optim_by_path": '''
        import cs231n_utils, pathlib
        source = (pathlib.Path(cs231n_utils.__file__).parent / "optim.py").read_text()
        namespace = {}
        exec(compile(source.replace("from .", "from cs231n_utils."), "student", "exec"), namespace)
        adam = namespace["adam"]
    ''',
    "reads_solutions": '''
        import glob, json
        for path in glob.glob("/**/solutions/update_rules/update_rules.ipynb", recursive=True):
            cells = json.load(open(path))["cells"]
            exec("".join(next(c for c in cells if c["metadata"].get("nbgrader", {}).get("grade_id") == "adam")["source"]))
    ''',
}


def _sandbox_isolates() -> bool:
    """True when this branch's sandbox runs kernels under bubblewrap with the package boundary."""
    return shutil.which("bwrap") is not None and hasattr(sandbox, "JobSandbox")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    os.environ.pop("CS231N_GRADEBOOK_URL", None)
    root = build_course(tmp_path_factory.mktemp("course"), ["update_rules"])
    submit(root, "update_rules", "do_nothing", {"adam": DO_NOTHING})
    attacks = {**ATTACKS, **(REFERENCE_ATTACKS if _sandbox_isolates() else {})}
    for name, code in attacks.items():
        submit(root, "update_rules", name, {"adam": DO_NOTHING}, extra_cells={"adam": textwrap.dedent(code).strip()})
    before = package_digest()
    # one worker process: a Dask LocalCluster forked from this (threaded) pytest process once hung
    # at start-up on a logging lock held at fork time (runner.py's business, not the checker's)
    results = {r.student: r for r in autograde(root, "update_rules", workers=1, limits=LIMITS, static_scan=False)}
    return root, results, before, attacks


def test_the_do_nothing_baseline_earns_little_and_only_its_own_properties(graded):
    root, _, _, _ = graded
    scores = cell_scores(root, "update_rules")["do_nothing"]
    assert scores["test_adam"] < 3.0 * 4 / 8  # returns (next_w, config), inputs unchanged, at most
    assert all(score == 0.0 for cell, score in scores.items() if cell != "test_adam")


@pytest.mark.parametrize("attack", [*ATTACKS, *REFERENCE_ATTACKS])
def test_no_attack_scores_above_the_do_nothing_answer(graded, attack):
    root, results, _, attacks = graded
    if attack not in attacks:
        pytest.skip("needs the bubblewrap sandbox with the package boundary")
    scores = cell_scores(root, "update_rules")
    assert results[attack].score <= results["do_nothing"].score
    assert scores[attack]["test_adam"] <= scores["do_nothing"]["test_adam"]


def test_printed_scores_never_reach_the_feedback_and_the_checker_text_replaces_them(graded):
    _, results, _, _ = graded
    nb = nbformat.reads(results["fakes_output"].notebooks[0].autograded_json, as_version=4)
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_adam"]
    text = "".join(out.get("text", "") for out in cell.outputs)
    assert "Score: 3 / 3" not in text and "adam:" in text and "Score: " in text


def test_the_grader_code_is_byte_identical_afterwards(graded):
    _, _, before, _ = graded
    assert package_digest() == before
