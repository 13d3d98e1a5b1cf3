"""Fast tests of the grading tool's pure parts: tamper scan, LMS name matching, limits, tables."""
from __future__ import annotations

import io
import zipfile
from pathlib import PurePosixPath

import pytest

from cs231n_utils.grading.collect import match_entry
from cs231n_utils.grading.export import failure_table
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
    ("setattr(np, 'allclose', print)", "uses setattr"),
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
    ("doejane_12345_678_ps1.ipynb", ["ps1"], ("12345", "ps1", 678)),
    ("doejane_late_12345_679_ps1-2.ipynb", ["ps1", "ps2"], ("12345", "ps1", 679)),
    ("doejane_12345_678_my work.ipynb", ["ps1"], ("12345", "ps1", 678)),
    ("alice/ps2.ipynb", ["ps1", "ps2"], ("alice", "ps2", 0)),
    ("bob.ipynb", ["ps1"], ("bob", "ps1", 0)),
])
def test_lms_and_folder_names_are_matched(name, notebooks, expected):
    assert match_entry(PurePosixPath(name), notebooks) == expected


@pytest.mark.parametrize("name, notebooks, why", [
    ("doejane_12345_678_notes.pdf", ["ps1"], "not a notebook"),
    ("doejane_12345_678_other.ipynb", ["ps1", "ps2"], "not one of the released notebooks"),
    ("bob.ipynb", ["ps1", "ps2"], "several notebooks"),
    ("__MACOSX/alice/ps1.ipynb", ["ps1"], "hidden or system file"),
])
def test_unmatched_names_give_a_reason(name, notebooks, why):
    assert why in match_entry(PurePosixPath(name), notebooks)


def test_student_id_can_be_the_name_part():
    assert match_entry(PurePosixPath("doejane_12345_678_ps1.ipynb"), ["ps1"], "name")[0] == "doejane"
    with pytest.raises(ValueError, match="student_id"):
        match_entry(PurePosixPath("a.ipynb"), ["ps1"], "email")


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
    assert limits == {"RLIMIT_AS": 3 * 2**20, "RLIMIT_CPU": 7, "RLIMIT_FSIZE": 2 * 2**20, "RLIMIT_CORE": 0}


def test_exit_descriptions_name_the_cause():
    assert "SIGXCPU" in describe_exit(-24)
    assert "SIGSEGV" in describe_exit(-11)
    assert "status 3" in describe_exit(3)


def test_run_jobs_validates_its_engine_arguments():
    with pytest.raises(ValueError, match="workers"):
        list(run_jobs([], workers=0))
    with pytest.raises(ValueError, match="scheduler"):
        list(run_jobs([], scheduler=8786))


def test_failure_table_counts_lost_points_per_test():
    rows = [
        {"student_id": "a", "notebook": "ps1", "test": "t1", "score": 1.0, "max_score": 1.0, "error": ""},
        {"student_id": "b", "notebook": "ps1", "test": "t1", "score": 0.0, "max_score": 1.0, "error": "AssertionError"},
        {"student_id": "c", "notebook": "ps1", "test": "t1", "score": 0.0, "max_score": 1.0, "error": "AssertionError"},
        {"student_id": "a", "notebook": "ps1", "test": "t2", "score": 0.0, "max_score": 2.0, "error": ""},
    ]
    table = {row["test"]: row for row in failure_table(rows)}
    assert table["t1"]["failed"] == 2 and table["t1"]["submissions"] == 3
    assert table["t1"]["fail_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert table["t1"]["errors"] == "AssertionError x2"
    assert table["t2"]["errors"] == "no error output x1"


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
    assert [(str(rel), data) for _, rel, data in _entries(path)] == [("doejane_1_2_ps1.ipynb", b"{}")]
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
