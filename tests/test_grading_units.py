"""Fast tests of the grading tool's pure parts: tamper scan, LMS names, rosters, limits, tables."""
from __future__ import annotations

import io
import unicodedata
import zipfile
from pathlib import PurePosixPath

import nbformat
import pytest

from cs231n_utils.autograde.report import GradeReport, PropertyResult
from cs231n_utils.grading.collect import RANK_EXACT, RANK_FOLDED, RANK_RENAMED, match_entry, match_notebook, notebook_problem
from cs231n_utils.grading.export import failure_table, lms_rows, named_mistakes
from cs231n_utils.grading.roster import Roster, RosterEntry, read_roster
from cs231n_utils.grading.job import read_files
from cs231n_utils.grading.runner import run_jobs
from cs231n_utils.grading.sandbox import SandboxLimits, describe_exit
from cs231n_utils.grading.tamper import bound_names, scan_cells

INSTRUCTOR = [
    "import numpy as np\nfrom cs231n_utils import autograde\n\ndef check_close(a, b):\n    assert np.allclose(a, b)\n\ndata = np.arange(3)",
    "assert double(2) == 4",
]


def _flags(source: str) -> list[str]:
    return [f.message for f in scan_cells({"double": source}, INSTRUCTOR)]


@pytest.mark.parametrize("source", [
    "def double(x):\n    return 2 * x",
    "import numpy as np\ndef double(x):\n    return np.multiply(2, x)",
    "%matplotlib inline\nimport matplotlib.pyplot as plt\ndef double(x):\n    return x + x",
    "from cs231n_utils import autograde\ndef double(x):\n    print('Loading...')\n    return 2 * x",
    "class Doubler:\n    def __init__(self):\n        super().__init__()\n\ndef double(x):\n    return 2 * x",
    "def double(x):\n    with open('data.txt') as f:\n        pass\n    return 2 * x",
    "import torch\nnet = torch.nn.Linear(2, 2)\nfor m in net.modules():\n    m.requires_grad_(False)",
    "config = {}\nconfig['velocity'] = config.get('velocity', 0)\nconfig.setdefault('m', 0)",
    "import os\npath = os.path.join('data', 'x.npy')",
    "data = [1, 2]  # reusing the name of instructor data is not tampering\ndef double(x):\n    return 2 * x",
    "def replace_head(model, head, attribute='fc'):\n    setattr(model, attribute, head)\n    return model",
    "def drop(model):\n    delattr(model.encoder, 'cache')",
])
def test_honest_code_is_not_flagged(source):
    assert _flags(source) == []


@pytest.mark.parametrize("source, expected", [
    ("np.allclose = lambda *a, **k: True", "patches numpy.allclose"),
    ("import numpy\nnumpy.testing.assert_allclose = print", "patches numpy.testing.assert_allclose"),
    ("import numpy.testing as t\nt.assert_allclose = print", "patches numpy.testing.assert_allclose"),
    ("def double(x):\n    np.allclose = lambda *a: True\n    return x", "patches numpy.allclose"),
    ("def check_close(a, b):\n    pass", "redefines instructor name 'check_close'"),
    ("check_close = print", "rebinds instructor name 'check_close'"),
    ("import fake as autograde", "rebinds instructor name 'autograde' by an import"),
    ("import cs231n_utils.autograde\ncs231n_utils.autograde.compare = None", "patches cs231n_utils.autograde.compare"),
    ("import sys\nsys.modules['cs231n_utils.autograde'] = object()", "uses sys.modules"),
    ("from sys import modules\nmodules.clear()", "imports sys.modules"),
    ("import os as o\nprint(o.listdir('.'))", "uses os.listdir"),
    ("import sys\nsys.stdout = open('x', 'w')", "uses sys.stdout"),
    ("get_ipython().input_transformers_post.append(lambda l: ['pass'])", "uses get_ipython"),
    ("!cat ../../gradebook.db", "uses get_ipython"),
    ("setattr(np, 'allclose', print)", "uses setattr on numpy"),
    ("setattr(check_close, '__code__', None)", "uses setattr on check_close"),
    ("import sys\nsetattr(sys.modules['numpy'], 'allclose', print)", "uses setattr on sys.modules"),
    ("delattr(__import__('numpy'), 'allclose')", "uses delattr on an expression"),
    ("patch = setattr\npatch(np, 'allclose', print)", "uses setattr"),
    ("import builtins\nbuiltins.AssertionError = Exception", "imports builtins"),
    ("text = open('ps1.ipynb').read()", "string mentions '.ipynb'"),
    ("import os\nfor r, d, f in os.walk('/'):\n    pass", "uses os.walk"),
    ("from pathlib import Path\nfiles = list(Path('/').rglob('*'))", "uses attribute rglob"),
    ("import gc", "imports gc"),
    ("f = (lambda: 0).__globals__", "uses attribute __globals__"),
    ("exec('np.allclose = print')", "uses exec"),
])
def test_tampering_is_flagged(source, expected):
    assert expected in _flags(source)


def test_reimporting_the_instructors_module_is_allowed():
    assert _flags("import numpy as np\nfrom cs231n_utils import autograde") == []


def test_scan_rejects_a_non_dict():
    with pytest.raises(ValueError, match="student_cells"):
        scan_cells(["x = 1"], INSTRUCTOR)


def test_bound_names_of_a_cell():
    assert bound_names(INSTRUCTOR[0]) == {"np", "autograde", "check_close", "data"}
    assert bound_names(INSTRUCTOR[0], callables_only=True) == {"np", "autograde", "check_close"}
    assert bound_names("x, (y, z) = 1, (2, 3)\nfor i in []: pass") == {"x", "y", "z"}


@pytest.mark.parametrize("name, notebooks, expected", [
    ("doejane_12345_678_ps1.ipynb", ["ps1"], ("12345", "ps1", 678, RANK_EXACT, False)),
    ("doejane_late_12345_679_ps1-2.ipynb", ["ps1", "ps2"], ("12345", "ps1", 679, RANK_EXACT, True)),
    ("doejane_LATE_12345_679_ps2 (1).ipynb", ["ps1", "ps2"], ("12345", "ps2", 679, RANK_EXACT, True)),
    ("doejane_12345_678_my work.ipynb", ["ps1"], ("12345", "ps1", 678, RANK_RENAMED, False)),
    ("müllerjosé_1002_2002_update rules.ipynb", ["update_rules"], ("1002", "update_rules", 2002, RANK_FOLDED, False)),
    ("müllerjosé_1002_2002_Update-Rules.ipynb", ["ps1", "update_rules"],
     ("1002", "update_rules", 2002, RANK_FOLDED, False)),
    ("alice/ps2.ipynb", ["ps1", "ps2"], ("alice", "ps2", 0, RANK_EXACT, False)),
    ("bob.ipynb", ["ps1"], ("bob", "ps1", 0, RANK_EXACT, False)),
])
def test_lms_and_folder_names_are_matched(name, notebooks, expected):
    match = match_entry(PurePosixPath(name), notebooks)
    assert (match.student, match.notebook, match.submission, match.rank, match.late) == expected


def test_decomposed_unicode_and_fullwidth_names_match_the_composed_release():
    decomposed = unicodedata.normalize("NFD", "müllerjosé_1002_7_Übung 1.ipynb")
    match = match_entry(PurePosixPath(decomposed), ["übung_1", "ps2"], "name")
    assert (match.student, match.notebook, match.rank) == ("müllerjosé", "übung_1", RANK_FOLDED)
    assert match_notebook("ｕｐｄａｔｅ_rules.ipynb", ["update_rules", "ps2"]) == ("update_rules", RANK_FOLDED)
    assert match_notebook("workings.ipynb", ["update_rules", "ps2"]) is None


@pytest.mark.parametrize("name, notebooks, why", [
    ("doejane_12345_678_notes.pdf", ["ps1"], "not a notebook"),
    ("doejane_12345_678_other.ipynb", ["ps1", "ps2"], "not one of the released notebooks"),
    ("bob.ipynb", ["ps1", "ps2"], "several notebooks"),
    ("__MACOSX/alice/ps1.ipynb", ["ps1"], "hidden or system file"),
])
def test_unmatched_names_give_a_reason(name, notebooks, why):
    assert why in match_entry(PurePosixPath(name), notebooks)


def test_student_id_can_be_the_name_part():
    assert match_entry(PurePosixPath("doejane_12345_678_ps1.ipynb"), ["ps1"], "name").student == "doejane"
    with pytest.raises(ValueError, match="student_id"):
        match_entry(PurePosixPath("a.ipynb"), ["ps1"], "email")


def test_notebook_problem_names_non_json_and_accepts_a_notebook():
    assert notebook_problem(nbformat.writes(nbformat.v4.new_notebook()).encode()) == ""
    assert "not a valid notebook" in notebook_problem(b"%PDF-1.4 binary")
    assert "not a valid notebook" in notebook_problem(b'{"cells": [')


def test_zip_names_without_the_utf8_flag_are_decoded_as_utf8(tmp_path):
    from cs231n_utils.grading.collect import _entries

    name = "müllerjosé_1002_2002_update rules.ipynb"
    path = tmp_path / "legacy.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(name, "{}")
    raw = bytearray(path.read_bytes())
    # clear the UTF-8 flag (general purpose bit 11) in the local and the central header
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = raw.index(signature) + offset
        raw[at:at + 2] = (int.from_bytes(raw[at:at + 2], "little") & ~0x800).to_bytes(2, "little")
    path.write_bytes(bytes(raw))
    with zipfile.ZipFile(path) as archive:
        assert archive.infolist()[0].filename != name  # zipfile alone reads it as cp437
    assert [str(rel) for _, rel, _, _ in _entries(path)] == [name]


def test_canvas_roster_is_read_with_names_emails_and_assignment_columns(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text(
        "\ufeffStudent,ID,SIS User ID,SIS Login ID,Section,Update rules (4321),Final Score\n"
        "    Points Possible,,,,,13,\n"
        "\"Müller, José\",1002,S1002,jose@uni.example,Sec A,,\n"
        "\"Doe, Jane\",1001,S1001,jdoe,Sec B,,\n", encoding="utf-8")
    roster = read_roster(path)
    assert sorted(roster.students) == ["1001", "1002"]
    jose = roster.students["1002"]
    assert (jose.first_name, jose.last_name, jose.email, jose.section) == ("José", "Müller", "jose@uni.example", "Sec A")
    assert roster.students["1001"].email is None  # a login that is not an email address
    assert jose.display_name == "Müller, José"
    assert roster.assignment_column("update_rules") == "Update rules (4321)"
    assert roster.assignment_column("second_order") is None


def test_plain_roster_and_roster_errors(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("id,First Name,Last_Name,Email\n7,Ann,Lee,ann@x.example\n", encoding="utf-8")
    entry = read_roster(path).students["7"]
    assert (entry.first_name, entry.last_name, entry.email) == ("Ann", "Lee", "ann@x.example")
    (tmp_path / "bad.csv").write_text("name,email\nAnn,a@x\n")
    with pytest.raises(ValueError, match="ID column"):
        read_roster(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="roster"):
        read_roster(tmp_path / "missing.csv")


@pytest.mark.parametrize("kwargs, argument", [
    ({"timeout_s": 0}, "timeout_s"), ({"cell_timeout_s": -1}, "cell_timeout_s"),
    ({"memory_mb": 0}, "memory_mb"), ({"cpu_seconds": 1.5}, "cpu_seconds"), ({"file_size_mb": True}, "file_size_mb"),
    ({"timeout_s": float("nan")}, "timeout_s"),
])
def test_limits_are_validated(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        SandboxLimits(**kwargs)


def test_rlimits_are_in_bytes_and_seconds():
    limits = SandboxLimits(memory_mb=3, cpu_seconds=7, file_size_mb=2).rlimits()
    assert limits == {"RLIMIT_AS": 3 * 2**20, "RLIMIT_CPU": 7, "RLIMIT_FSIZE": 2 * 2**20, "RLIMIT_CORE": 0,
                      "RLIMIT_MSGQUEUE": 0}


def test_exit_descriptions_name_the_cause():
    assert "SIGXCPU" in describe_exit(-24)
    assert "SIGSEGV" in describe_exit(-11)
    assert "status 3" in describe_exit(3)


def test_run_jobs_validates_its_engine_arguments():
    with pytest.raises(ValueError, match="workers"):
        list(run_jobs([], workers=0))
    with pytest.raises(ValueError, match="scheduler"):
        list(run_jobs([], scheduler=8786))


def test_failure_table_counts_named_mistakes_and_a_failed_submission_once():
    def row(student, test, score, mistakes=(), status="graded", max_score=2.0):
        return {"student_id": student, "status": status, "notebook": "ps1", "test": test, "score": score,
                "max_score": max_score, "mistakes": list(mistakes)}

    rows = [
        row("a", "t1", 2.0),
        row("b", "t1", 1.0, ["likely mistake: no bias correction"]),
        row("c", "t1", 0.0, ["likely mistake: no bias correction", "error: AssertionError"]),
        row("d", "t1", 1.5),
        row("a", "t2", 0.0, ["no credit: calls the reference"], max_score=1.0),
        row("z", "t1", 0.0, ["error: ValueError"], status="failed"),
        row("z", "t2", 0.0, status="failed", max_score=1.0),
    ]
    table = {r["test"]: r for r in failure_table(rows)}
    assert (table["t1"]["submissions"], table["t1"]["lost_points"]) == (4, 3)
    assert table["t1"]["fail_rate"] == 0.75 and table["t1"]["mean_score"] == 1.125
    assert table["t1"]["mistakes"] == ("likely mistake: no bias correction x2; error: AssertionError x1; "
                                       "no mistake named x1")
    assert table["t2"]["submissions"] == 1 and table["t2"]["mistakes"] == "no credit: calls the reference x1"
    assert table["(submission failed)"]["lost_points"] == 1 and table["(submission failed)"]["submissions"] == 5


def test_named_mistakes_are_read_from_the_checks_feedback():
    report = GradeReport("adam", (PropertyResult("first step matches", 1.0, True),
                                  PropertyResult("bias correction", 2.0, False, "off by 1e-1")),
                         likely_mistakes=("t not incremented before bias correction",))
    assert named_mistakes(report.feedback()) == ["likely mistake: t not incremented before bias correction"]
    failed_only = GradeReport("adam", (PropertyResult("bias correction", 2.0, False),))
    assert named_mistakes(failed_only.feedback()) == ["failed check: bias correction"]
    zero = GradeReport("adam", zero_reason="calls the reference implementation")
    assert named_mistakes(zero.feedback()) == ["no credit: calls the reference implementation"]
    assert named_mistakes("all good\nScore: 3 / 3") == []


def test_lms_rows_follow_the_roster_and_leave_non_submitters_blank():
    roster = Roster({"1": RosterEntry("1", "Ann", "Lee", None, "S1", "alee", "A"),
                     "2": RosterEntry("2", "Bo", "Ng", None, "S2", "bng", "B")}, ())
    submissions = [{"student_id": "1", "lms_user_id": "1", "score": 7.5}]
    rows = lms_rows(submissions, roster, "PS1 (99)", 13.0)
    assert rows[0] == {"Student": "Points Possible", "ID": "", "SIS User ID": "", "SIS Login ID": "",
                       "Section": "", "PS1 (99)": "13"}
    assert rows[1] == {"Student": "Lee, Ann", "ID": "1", "SIS User ID": "S1", "SIS Login ID": "alee",
                       "Section": "A", "PS1 (99)": "7.5"}
    assert rows[2]["PS1 (99)"] == ""


def test_formgrader_exporter_refuses_with_the_sandboxed_command():
    from types import SimpleNamespace

    from cs231n_utils.grading.formgrader import RefuseUnsandboxedAutograde, UnsandboxedAutogradeRefused

    parent = SimpleNamespace(coursedir=SimpleNamespace(assignment_id="ps1", student_id="1001"))
    with pytest.raises(UnsandboxedAutogradeRefused, match="cs231n-grade autograde ps1 --student 1001"):
        RefuseUnsandboxedAutograde(parent=parent)


def test_read_files_skips_notebooks_when_asked(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "data.npy").write_bytes(b"123")
    (tmp_path / "ps1.ipynb").write_text("{}")
    assert read_files(tmp_path, notebooks=False) == {"sub/data.npy": b"123"}
    assert set(read_files(tmp_path)) == {"sub/data.npy", "ps1.ipynb"}


def test_zip_entries_are_read(tmp_path):
    from cs231n_utils.grading.collect import _entries

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("doejane_1_2_ps1.ipynb", "{}")
        archive.writestr("folder/", "")
    path = tmp_path / "download.zip"
    path.write_bytes(buffer.getvalue())
    assert [(str(rel), data) for _, rel, data, _ in _entries(path)] == [("doejane_1_2_ps1.ipynb", b"{}")]
    with pytest.raises(ValueError, match="inputs"):
        list(_entries(tmp_path / "missing.txt"))


def test_kernel_command_goes_through_the_limit_launcher_and_prefix():
    import json
    import sys

    from cs231n_utils.grading.sandbox import SandboxedKernelManager

    limits = SandboxLimits(memory_mb=64, cpu_seconds=3).rlimits()
    km = SandboxedKernelManager(kernel_name="python3", limits_json=json.dumps(limits),
                                kernel_prefix_json=json.dumps(["env", "SANDBOX=1"]))
    command = km.format_kernel_cmd()
    assert command[:3] == [sys.executable, "-I", "-S"]
    assert json.loads(command[5]) == limits
    assert command[6:8] == ["env", "SANDBOX=1"]
    assert "ipykernel_launcher" in " ".join(command[8:])


def test_launcher_really_applies_the_limits():
    import json
    import subprocess
    import sys

    from cs231n_utils.grading.sandbox import _LAUNCHER

    limits = json.dumps(SandboxLimits(memory_mb=300, cpu_seconds=2).rlimits())
    probe = "import resource; print(resource.getrlimit(resource.RLIMIT_AS)[0], resource.getrlimit(resource.RLIMIT_CPU)[0])"
    out = subprocess.run([sys.executable, "-I", "-S", "-c", _LAUNCHER, limits, sys.executable, "-c", probe],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(300 * 2**20), "2"]
    bomb = subprocess.run([sys.executable, "-I", "-S", "-c", _LAUNCHER, limits, sys.executable, "-c",
                           "x = bytearray(600 * 2**20)"], capture_output=True, text=True)
    assert bomb.returncode != 0 and "MemoryError" in bomb.stderr


def test_deadline_argument_is_read_as_naive_utc():
    import argparse
    import datetime

    from cs231n_utils.grading.cli import _utc

    assert _utc("2026-03-01T23:59Z") == datetime.datetime(2026, 3, 1, 23, 59)
    assert _utc("2026-03-02T01:59:30+02:00") == datetime.datetime(2026, 3, 1, 23, 59, 30)
    assert _utc("2026-03-01 23:59") == datetime.datetime(2026, 3, 1, 23, 59)
    with pytest.raises(argparse.ArgumentTypeError, match="ISO 8601"):
        _utc("March 1st")


def test_a_course_without_an_exchange_setting_gets_a_writable_one_inside_it(tmp_path):
    from cs231n_utils.grading.course import load_course_config

    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\nc.CourseDirectory.course_id = 'x'\n")
    config = load_course_config(tmp_path)
    assert config.Exchange.root == str(tmp_path.resolve() / "exchange")
    assert (tmp_path / "exchange").is_dir()


def test_a_tampered_notebook_is_written_with_its_reasons_on_top(tmp_path):
    from cs231n_utils.grading.gradebook import write_autograded
    from cs231n_utils.grading.job import JobResult, NotebookResult

    executed = nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]))
    tampered = JobResult("ps1", "eve", "tampered", ["ps1: tampering: patches numpy.allclose", "other: x"],
                         [NotebookResult("ps1", {}, autograded_json=executed)])
    write_autograded(tmp_path / "eve", tampered)
    cells = nbformat.read(str(tmp_path / "eve" / "ps1.ipynb"), as_version=4).cells
    assert [c.cell_type for c in cells] == ["markdown", "code"]
    assert "tampered" in cells[0].source and "- tampering: patches numpy.allclose" in cells[0].source
    assert "other: x" not in cells[0].source
    honest = JobResult("ps1", "ann", "graded", [], [NotebookResult("ps1", {}, autograded_json=executed)])
    write_autograded(tmp_path / "ann", honest)
    assert (tmp_path / "ann" / "ps1.ipynb").read_text() == executed


def test_histogram_counts_are_whole_submissions():
    from cs231n_utils.grading.export import histogram_figure

    figure = histogram_figure([0.0, 3.0, 3.0], 3.0, "ps1")
    ticks = figure.axes[0].get_yticks()
    assert len(ticks) >= 2 and all(float(tick).is_integer() for tick in ticks)
