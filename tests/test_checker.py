"""Unit tests of the trusted checker's pieces: the data-only codec, the remote answer proxy,
the registry of hidden tests and the checker's socket server (kernel side simulated in a thread)."""
from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

from autograde_answers import FUNCTION_ANSWERS, TORCH_ANSWERS, UPDATE_RULE_ANSWERS
from cs231n_utils import layers, optim
from cs231n_utils.autograde.registry import REGISTRY, award_in_kernel, hidden_test
from cs231n_utils.autograde.remote import ChannelFailure, RemoteAnswer
from cs231n_utils.grading.checker import TrustedChecker
from cs231n_utils.kernel import codec
from cs231n_utils.kernel.codec import MAGIC, Opaque, ProtocolError, decode, encode, receive_message, send_message
from cs231n_utils.kernel.serve import answer_request, serve

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------ codec
def _message(header: object, blobs: list[bytes] = ()) -> bytes:
    """A message written by hand, the way a hostile kernel could."""
    head = json.dumps(header).encode()
    body = head + b"".join(struct.pack(">Q", len(b)) + b for b in blobs)
    return MAGIC + struct.pack(">QI", 12 + len(body), len(head)) + body


def _pickle_blob(value: object) -> bytes:
    import pickle

    return pickle.dumps(value)


def test_values_round_trip_with_their_container_types():
    value = {"w": np.arange(6.0).reshape(2, 3), "mask": np.array([True, False]), "t": 3, "lr": 1e-3,
             "pair": (np.int32(4), [None, "text", float("nan"), float("-inf")]), "nested": {"a": []}}
    back = decode(encode(value))
    assert isinstance(back["pair"], tuple) and isinstance(back["pair"][1], list)
    assert back["pair"][0] == 4 and back["pair"][1][:2] == [None, "text"]
    assert np.isnan(back["pair"][1][2]) and back["pair"][1][3] == float("-inf")
    assert back["w"].dtype == np.float64 and np.array_equal(back["w"], value["w"])
    assert back["mask"].dtype == bool and back["t"] == 3 and back["nested"] == {"a": []}


def test_a_generator_crosses_as_its_state_and_continues_the_same_stream():
    sent = np.random.default_rng(7)
    sent.random(3)
    received = decode(encode(sent))
    assert np.array_equal(received.random(5), sent.random(5))


def test_objects_that_are_not_data_arrive_as_named_placeholders():
    class Secret:
        pass

    back = decode(encode([Secret(), {1: 2}, np.array([object()], dtype=object)]))
    assert back == [Opaque("Secret"), Opaque("dict with non-str keys"), Opaque("ndarray")]
    assert Opaque("Secret") != 0


class _Boom:
    def __reduce__(self):
        return (exec, ("raise SystemExit('unpickled')",))


@pytest.mark.parametrize("dtype", ["|O8", "|O", "<U4", "|V8", "|S4", "<c16", "<f3", "f8", "<f8,<f8", "<M8[s]", None, 8])
def test_a_pickled_or_non_numeric_array_is_rejected_and_never_unpickled(dtype):
    blob = _pickle_blob(np.array([_Boom()], dtype=object))
    with pytest.raises(ProtocolError, match="not allowed"):
        decode(_message({"t": "array", "i": 0, "d": dtype, "s": [len(blob) // 8]}, [blob]))


@pytest.mark.parametrize("shape", [[3], [-1], [2, 3, 1], [True], ["3"], None, 3])
def test_an_array_whose_shape_does_not_match_its_bytes_is_rejected(shape):
    with pytest.raises(ProtocolError, match="shape"):
        decode(_message({"t": "array", "i": 0, "d": "<f8", "s": shape}, [np.zeros(2).tobytes()]))


def test_arrays_arrive_writable_in_their_dtype_and_byte_order():
    sent = [np.arange(6, dtype=">i4").reshape(3, 2), np.zeros((0, 4), dtype=np.float32), np.array(True)]
    back = decode(encode(sent))
    for original, received in zip(sent, back):
        assert received.dtype == original.dtype and received.shape == original.shape
        assert np.array_equal(received, original) and received.flags.writeable


_ZEROS = {"t": "array", "i": 0, "d": "<f8", "s": [2]}


@pytest.mark.parametrize("header, blobs, words", [
    ({"t": "dict", "v": [[1, 2]]}, [], "str key"),
    ({"t": "set", "v": []}, [], "unknown tag"),
    ([1, 2], [], "unexpected list"),
    (_ZEROS, [], "bad array reference"),
    ({"t": "list", "v": [_ZEROS, _ZEROS]}, [np.zeros(2)], "bad array reference"),
    (None, [np.zeros(2)], "no value refers to"),
    ({**_ZEROS, "d": "<U1"}, [np.array(["text"])], "not allowed"),
    ({**_ZEROS, "d": "|V16"}, [np.zeros(2, dtype=[("a", "f8")])], "not allowed"),
    ({"t": "generator", "state": {"bit_generator": "MT19937"}}, [], "PCG64"),
])
def test_malformed_values_are_rejected(header, blobs, words):
    with pytest.raises(ProtocolError, match=words):
        decode(_message(header, [b.tobytes() for b in blobs]))


def test_deep_nesting_and_broken_framing_are_rejected():
    deep: object = 1
    for _ in range(codec.MAX_DEPTH + 2):
        deep = {"t": "list", "v": [deep]}
    with pytest.raises(ProtocolError, match="nested too deeply"):
        decode(_message(deep))
    good = encode([1, 2])
    with pytest.raises(ProtocolError, match="not a cs231n message"):
        decode(b"PICKLE" + good[6:])
    with pytest.raises(ProtocolError, match="disagree"):
        decode(good[:-1])


def test_an_oversized_message_is_refused_from_its_length_field(monkeypatch):
    monkeypatch.setattr(codec, "MAX_MESSAGE_BYTES", 1000)
    with pytest.raises(ValueError, match="too large"):
        encode(np.zeros(1000))
    left, right = socket.socketpair()
    with left, right:
        left.sendall(MAGIC + struct.pack(">QI", 10**9, 10))  # announces 1 GB, sends nothing more
        right.settimeout(2)
        with pytest.raises(ProtocolError, match="exceeds"):
            receive_message(right)


# ------------------------------------------------------------------------- remote answers
def _kernel_thread(sock: socket.socket, answer, *, reply=None) -> threading.Thread:
    """Answer requests on ``sock`` like a kernel (``reply`` overrides the honest reply)."""
    def run():
        try:
            while True:
                request = receive_message(sock)
                if request.get("op") == "done":
                    return
                send_message(sock, reply(request) if reply else answer_request(answer, request))
        except (OSError, ProtocolError):
            return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _remote(answer, *, reply=None, timeout: float = 5.0):
    checker_side, kernel_side = socket.socketpair()
    _kernel_thread(kernel_side, answer, reply=reply)
    return RemoteAnswer(checker_side, "test_x", call_timeout_s=timeout), (checker_side, kernel_side)


def test_a_remote_call_returns_the_result_and_mirrors_in_place_changes():
    def rule(w, dw, config=None):
        w += dw  # modifies its input in place
        config["t"] = config.get("t", 0) + 1
        return w * 2, config

    remote, sockets = _remote(rule)
    w, dw, config = np.ones(3), np.full(3, 0.5), {"lr": 0.1}
    next_w, new_config = remote(w, dw, config)
    assert np.array_equal(next_w, np.full(3, 3.0)) and new_config == {"lr": 0.1, "t": 1}
    assert np.array_equal(w, np.full(3, 1.5)) and config == {"lr": 0.1, "t": 1}
    remote.finish()
    for s in sockets:
        s.close()


def test_student_exceptions_keep_their_names_and_not_implemented_stays_itself():
    def broken(x):
        raise KeyError("velocity")

    remote, _ = _remote(broken)
    with pytest.raises(Exception, match="velocity") as caught:
        remote(np.zeros(2))
    assert type(caught.value).__name__ == "KeyError" and not isinstance(caught.value, ChannelFailure)

    def blank(x):
        raise NotImplementedError()

    remote, _ = _remote(blank)
    with pytest.raises(NotImplementedError):
        remote(np.zeros(2))


def test_a_silent_or_lying_kernel_raises_a_channel_failure_that_checks_cannot_swallow():
    remote, _ = _remote(None, reply=lambda request: (time.sleep(2), {"result": 1})[1], timeout=0.3)
    with pytest.raises(ChannelFailure, match="did not answer"):
        remote(np.zeros(2))
    assert not issubclass(ChannelFailure, Exception)
    remote, _ = _remote(None, reply=lambda request: {"result": np.zeros(2), "args": [], "kwargs": {}})
    with pytest.raises(ChannelFailure, match="arguments"):
        remote(np.zeros(2))
    remote, _ = _remote(None, reply=lambda request: "Score: 3 / 3")
    with pytest.raises(ChannelFailure, match="not an answer"):
        remote(np.zeros(2))


# -------------------------------------------------------------------------------- registry
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)


def _solution_test_cells():
    for path in sorted((ROOT / "solutions").glob("*/*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade") and cell.cell_type == "code":
                yield path.parent.name, meta, cell.source


def test_registry_points_and_assignments_equal_the_notebooks_metadata():
    seen = {}
    for assignment, meta, _ in _solution_test_cells():
        seen[meta["grade_id"]] = (assignment, float(meta["points"]))
    assert seen == {gid: (t.assignment, float(t.points)) for gid, t in REGISTRY.items()}


def test_every_hidden_test_only_serves_its_answer_to_the_registry():
    for _, meta, source in _solution_test_cells():
        test = REGISTRY[meta["grade_id"]]
        (hidden,) = HIDDEN.findall(source)
        assert hidden.strip() == ("from cs231n_utils.kernel import grade\n\n"
                                  f'grade("{test.grade_id}", {test.answer_name}, points={test.points:g})')


def test_the_in_kernel_path_awards_the_registered_points_and_refuses_other_points(capsys):
    namespace = {"np": np}
    exec(UPDATE_RULE_ANSWERS["adam"]["correct"].source, namespace)
    assert award_in_kernel("test_adam", namespace["adam"], 3) == 3.0
    assert "Score: 3 / 3" in capsys.readouterr().out
    with pytest.raises(ValueError, match="points must be 3"):
        award_in_kernel("test_adam", optim.adam, 30)
    with pytest.raises(ValueError, match="grade_id must be one of"):
        hidden_test("test_everything")


# --------------------------------------------------------------------------------- checker
def _serve_in_thread(path: Path, grade_id: str, answer) -> threading.Thread:
    thread = threading.Thread(target=serve, args=(str(path), grade_id, answer), daemon=True)
    thread.start()
    return thread


def _wrong_dropout(x, param):
    return x.copy(), (param, None)


def test_the_checker_grades_served_answers_and_keeps_the_reference_on_its_side(tmp_path):
    with TrustedChecker(tmp_path / "channel", call_timeout_s=10) as checker:
        assert oct(checker.socket_path.stat().st_mode & 0o777) == "0o666"
        for grade_id, answer in [("test_adam", optim.adam), ("test_dropout_forward", layers.dropout_forward),
                                 ("test_dropout_backward", _wrong_dropout)]:
            _serve_in_thread(checker.socket_path, grade_id, answer).join(60)
    records = checker.snapshot()
    assert records["test_adam"].score == 3.0 and "Score: 3 / 3" in records["test_adam"].feedback
    assert records["test_dropout_forward"].score == 3.0
    assert records["test_dropout_backward"].score < 2.0
    assert not checker.socket_path.exists()


def test_a_hand_written_server_that_answers_nonsense_scores_zero(tmp_path):
    def fake_kernel(path):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(path))
            send_message(sock, {"serve": "test_adam"})
            try:
                while receive_message(sock).get("op") != "done":
                    send_message(sock, {"result": (np.zeros(1), {}), "args": ["3/3"], "kwargs": {}})
            except (OSError, ProtocolError):
                pass

    with TrustedChecker(tmp_path / "channel", call_timeout_s=5) as checker:
        thread = threading.Thread(target=fake_kernel, args=(checker.socket_path,), daemon=True)
        thread.start()
        thread.join(30)
    record = checker.snapshot()["test_adam"]
    assert record.score == 0.0 and "could not finish" in record.feedback


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_unknown_tests_silent_connections_and_hung_answers_earn_nothing(tmp_path):
    def hangs(w, dw, config=None):
        time.sleep(3)

    with TrustedChecker(tmp_path / "channel", grade_ids={"test_adam"}, call_timeout_s=0.5,
                        hello_timeout_s=0.5) as checker:
        _serve_in_thread(checker.socket_path, "test_Adam", optim.adam)
        silent = socket.socket(socket.AF_UNIX)
        silent.connect(str(checker.socket_path))
        time.sleep(1.5)
        silent.close()
        _serve_in_thread(checker.socket_path, "test_adam", hangs)
        time.sleep(2)
    records = checker.snapshot()
    assert set(records) == {"test_adam"} and records["test_adam"].score == 0.0
    assert "did not answer within 0.5 s" in records["test_adam"].feedback
    assert any("unknown test 'test_Adam'" in r for r in checker.rejected)
    assert any("did not say" in r for r in checker.rejected)


SERVED_MISTAKES = {
    "test_Adam": [TORCH_ANSWERS["global_step_counter"], TORCH_ANSWERS["reads_self_defaults"]],
    "test_freeze": [FUNCTION_ANSWERS["transfer_learning"]["freeze"]["freeze_and_eval"]],
    "test_replace_head": [FUNCTION_ANSWERS["transfer_learning"]["replace_head"]["hard_coded_in_features"]],
}


@pytest.mark.parametrize("grade_id, index", [(g, i) for g, answers in SERVED_MISTAKES.items()
                                             for i in range(len(answers))])
def test_served_scenario_answers_get_their_hand_derived_credit_and_named_mistake(tmp_path, one_torch_thread,
                                                                               grade_id, index):
    """The checks that run an answer inside scenarios (an Optimizer subclass, functions on
    modules) read only the data the kernel-side runner returns, yet name the mistake."""
    import torch
    from torch import nn

    answer = SERVED_MISTAKES[grade_id][index]
    namespace = {"np": np, "torch": torch, "nn": nn}
    exec(answer.source, namespace)  # noqa: S102 - the test's own answer
    served = namespace[REGISTRY[grade_id].answer_name]
    with TrustedChecker(tmp_path / "channel", call_timeout_s=60) as checker:
        _serve_in_thread(checker.socket_path, grade_id, served).join(300)
    record = checker.snapshot()[grade_id]
    assert record.score == round(REGISTRY[grade_id].points * answer.fraction, 2), record.feedback
    assert answer.keyword in record.feedback

