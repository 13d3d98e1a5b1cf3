"""cs231n_utils.torch_optim against torch.optim and the NumPy rules, plus its checks and helpers.

References are independent of the code under test: torch.optim's own optimizers, the NumPy rules
of cs231n_utils.optim, and plain bookkeeping (tensor_blocks must cover every element exactly once).
Comparisons run in float64, where both sides agree to rounding.
"""
from __future__ import annotations

import copy
import importlib.util
import io
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cs231n_utils import optim as numpy_rules
from cs231n_utils import fused_kernels, tensor_blocks, torch_optim
from cs231n_utils.piece_formula import PieceFormula

ROOT = Path(__file__).resolve().parents[1]
STEPS = 100

# (our class, torch.optim class, keyword arguments both take)
TORCH_PAIRS = {
    "sgd": (torch_optim.SGD, torch.optim.SGD, {"lr": 0.1}),
    "sgd-momentum": (torch_optim.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}),
    "sgd-momentum-decay": (torch_optim.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}),
    "sgd-nesterov-decay": (
        torch_optim.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01}
    ),
    "sgd-decay": (torch_optim.SGD, torch.optim.SGD, {"lr": 0.1, "weight_decay": 0.05}),
    "adagrad": (torch_optim.Adagrad, torch.optim.Adagrad, {"lr": 0.1}),
    "rmsprop": (torch_optim.RMSprop, torch.optim.RMSprop, {"lr": 0.01, "alpha": 0.9}),
    "adam": (torch_optim.Adam, torch.optim.Adam, {"lr": 0.01}),
    "adam-decay": (torch_optim.Adam, torch.optim.Adam, {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1}),
    "adamw": (torch_optim.AdamW, torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1}),
    "adamw-defaults": (torch_optim.AdamW, torch.optim.AdamW, {}),
}
FOREACH = [pytest.param(False, id="per-tensor"), pytest.param(True, id="foreach")]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_model(device: str = "cpu", dtype: torch.dtype = torch.float64) -> torch.nn.Module:
    """The same small MLP every time it is called."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    return model.to(device=device, dtype=dtype)


def make_data(device: str = "cpu", dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(64, 6, generator=generator, dtype=dtype)
    y = torch.randint(0, 3, (64,), generator=generator)
    return x.to(device), y.to(device)


def train(model: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: int, data) -> None:
    x, y = data
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


def flat_params(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def assert_same_training(ours: type, theirs: type, kwargs: dict, foreach: bool, device: str = "cpu") -> None:
    data = make_data(device)
    expected_model, model = make_model(device), make_model(device)
    train(expected_model, theirs(expected_model.parameters(), **kwargs), STEPS, data)
    train(model, ours(model.parameters(), foreach=foreach, **kwargs), STEPS, data)
    assert not torch.equal(flat_params(model), flat_params(make_model(device)))  # it did train
    torch.testing.assert_close(flat_params(model), flat_params(expected_model), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("foreach", FOREACH)
@pytest.mark.parametrize("case", list(TORCH_PAIRS))
def test_matches_torch_optim_over_100_steps(case: str, foreach: bool) -> None:
    ours, theirs, kwargs = TORCH_PAIRS[case]
    assert_same_training(ours, theirs, kwargs, foreach)


@pytest.mark.parametrize("case", ["sgd-nesterov-decay", "rmsprop", "adam-decay", "adamw"])
def test_foreach_matches_torch_when_tensors_are_cut_into_blocks(case: str, monkeypatch) -> None:
    # 40-byte blocks: the MLP's tensors are cut into 5-element slices and small ones packed together.
    monkeypatch.setattr(tensor_blocks, "CPU_BLOCK_BYTES", 40)
    ours, theirs, kwargs = TORCH_PAIRS[case]
    assert_same_training(ours, theirs, kwargs, foreach=True)


@pytest.mark.parametrize("block_bytes", [tensor_blocks.CPU_BLOCK_BYTES, 40], ids=["whole-tensors", "5-element-pieces"])
@pytest.mark.parametrize("case", sorted(TORCH_PAIRS))
def test_per_tensor_traced_pieces_match_torch(case: str, block_bytes: int, monkeypatch) -> None:
    # The MLP's tensors are small, so the per-tensor path would run the formula eagerly: force its
    # traced out= form on every piece, whole tensors or 5-element slices.
    monkeypatch.setattr(torch_optim, "TRACED_PIECE_BYTES", 0)
    monkeypatch.setattr(tensor_blocks, "CPU_BLOCK_BYTES", block_bytes)
    ours, theirs, kwargs = TORCH_PAIRS[case]
    assert_same_training(ours, theirs, kwargs, foreach=False)


def test_piece_formula_equals_the_eager_formula_and_reuses_buffers() -> None:
    """Numbers on the left of - and /, an operation without an out= form (exp), a method call, a
    result that can overwrite its operand and one that cannot (its operand is read after it)."""

    def formula(w, g, s, *, a, b):
        w_new = w + b / (torch.exp(g) + s.abs())
        s_new = a - s * b + w  # reads the old w after w_new exists: w_new must not overwrite w
        return w_new, s_new  # s is dead before s_new is made: s_new may overwrite it

    program = PieceFormula(formula, 3, ("a", "b"), {}, targets=[0, 2])
    rng = torch.Generator().manual_seed(3)
    w, g, s = (torch.randn(7, 3, generator=rng, dtype=torch.float64) for _ in range(3))
    expected = formula(w.clone(), g.clone(), s.clone(), a=0.5, b=2.0)
    buffers = [torch.empty(21, dtype=torch.float64) for _ in range(program.buffer_count)]
    operands = [w.clone(), g.clone(), s.clone()]
    new_w, new_s = program(operands, {"a": 0.5, "b": 2.0}, buffers)
    torch.testing.assert_close(new_w, expected[0], rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(new_s, expected[1], rtol=1e-15, atol=1e-15)
    assert new_s is operands[2] and new_w is not operands[0]  # written in place / left for the caller
    torch.testing.assert_close(operands[1], g, rtol=0, atol=0)  # the gradient is only read
    assert program.buffer_count < 5  # 6 tensor steps, buffers reused


# (our class and kwargs, NumPy rule and its config) for the same update
NUMPY_PAIRS = {
    "sgd": (torch_optim.SGD, {"lr": 0.1}, numpy_rules.sgd, {"learning_rate": 0.1}),
    "sgd_momentum": (
        torch_optim.SGD, {"lr": 0.05, "momentum": 0.9}, numpy_rules.sgd_momentum,
        {"learning_rate": 0.05, "momentum": 0.9},
    ),
    "nesterov_momentum": (
        torch_optim.SGD, {"lr": 0.05, "momentum": 0.8, "nesterov": True}, numpy_rules.nesterov_momentum,
        {"learning_rate": 0.05, "momentum": 0.8},
    ),
    "adagrad": (
        torch_optim.Adagrad, {"lr": 0.1, "eps": 1e-8}, numpy_rules.adagrad, {"learning_rate": 0.1, "epsilon": 1e-8}
    ),
    "rmsprop": (
        torch_optim.RMSprop, {"lr": 0.01, "alpha": 0.95, "eps": 1e-7}, numpy_rules.rmsprop,
        {"learning_rate": 0.01, "decay_rate": 0.95, "epsilon": 1e-7},
    ),
    "adam": (
        torch_optim.Adam, {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-7}, numpy_rules.adam,
        {"learning_rate": 0.01, "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-7},
    ),
}


@pytest.mark.parametrize("foreach", FOREACH)
@pytest.mark.parametrize("rule", list(NUMPY_PAIRS))
def test_matches_numpy_rule_on_the_same_gradients(rule: str, foreach: bool) -> None:
    ours, kwargs, numpy_rule, config = NUMPY_PAIRS[rule]
    config = dict(config)  # the rule stores its state in the config
    rng = np.random.default_rng(2)
    w = rng.standard_normal((5, 4))
    gradients = rng.standard_normal((50, 5, 4)) * np.linspace(0.01, 3, 50)[:, None, None]
    param = torch.tensor(w, requires_grad=True)
    optimizer = ours([param], foreach=foreach, **kwargs)
    for dw in gradients:
        w, config = numpy_rule(w, dw, config)
        param.grad = torch.from_numpy(dw)
        optimizer.step()
    np.testing.assert_allclose(param.detach().numpy(), w, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("foreach", FOREACH)
@pytest.mark.parametrize("case", ["sgd-nesterov-decay", "adagrad", "rmsprop", "adam-decay", "adamw"])
def test_state_dict_round_trip_resumes_identically(case: str, foreach: bool) -> None:
    ours, _, kwargs = TORCH_PAIRS[case]
    data = make_data()
    model = make_model()
    optimizer = ours(model.parameters(), foreach=foreach, **kwargs)
    train(model, optimizer, 10, data)
    checkpoint = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, checkpoint)
    train(model, optimizer, 10, data)

    checkpoint.seek(0)
    saved = torch.load(checkpoint)
    resumed_model = make_model()
    resumed_model.load_state_dict(saved["model"])
    resumed = ours(resumed_model.parameters(), foreach=foreach, **kwargs)
    resumed.load_state_dict(saved["optimizer"])
    train(resumed_model, resumed, 10, data)
    assert torch.equal(flat_params(resumed_model), flat_params(model))


@pytest.mark.parametrize("case", ["sgd-momentum-decay", "adagrad", "rmsprop", "adam-decay", "adamw"])
def test_resumes_from_a_torch_optim_checkpoint(case: str) -> None:
    ours, theirs, kwargs = TORCH_PAIRS[case]
    data = make_data()
    expected_model, model = make_model(), make_model()
    expected = theirs(expected_model.parameters(), **kwargs)
    train(expected_model, expected, 10, data)
    model.load_state_dict(expected_model.state_dict())
    optimizer = ours(model.parameters(), **kwargs)
    optimizer.load_state_dict(copy.deepcopy(expected.state_dict()))  # a state_dict shares the live tensors
    train(expected_model, expected, 20, data)
    train(model, optimizer, 20, data)
    torch.testing.assert_close(flat_params(model), flat_params(expected_model), atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("foreach", FOREACH)
@pytest.mark.parametrize("case", ["sgd-momentum", "adagrad", "rmsprop", "adam", "adamw"])
def test_param_groups_with_different_learning_rates(case: str, foreach: bool) -> None:
    ours, theirs, kwargs = TORCH_PAIRS[case]
    data = make_data()
    base_lr = kwargs.get("lr", 1e-3)

    def groups(model):
        return [
            {"params": model[0].parameters(), "lr": 10 * base_lr},
            {"params": model[2].parameters()},
        ]

    expected_model, model = make_model(), make_model()
    train(expected_model, theirs(groups(expected_model), **kwargs), STEPS, data)
    optimizer = ours(groups(model), foreach=foreach, **kwargs)
    assert [group["lr"] for group in optimizer.param_groups] == [10 * base_lr, base_lr]
    train(model, optimizer, STEPS, data)
    torch.testing.assert_close(flat_params(model), flat_params(expected_model), atol=1e-6, rtol=1e-6)


def test_foreach_handles_mixed_dtypes_like_the_per_tensor_path() -> None:
    generator = torch.Generator().manual_seed(3)
    values = [torch.randn(7, generator=generator, dtype=dtype) for dtype in (torch.float32, torch.float64) * 2]
    grads = [[torch.randn(7, generator=generator, dtype=v.dtype) for v in values] for _ in range(5)]
    results = []
    for foreach in (False, True):
        params = [v.clone().requires_grad_() for v in values]
        optimizer = torch_optim.Adam(params, lr=0.1, foreach=foreach)
        for step_grads in grads:
            for param, grad in zip(params, step_grads):
                param.grad = grad
            optimizer.step()
        assert [optimizer.state[p]["exp_avg"].dtype for p in params] == [v.dtype for v in values]
        results.append(params)
    for per_tensor, foreach in zip(*results):
        torch.testing.assert_close(foreach, per_tensor)


@pytest.mark.parametrize("foreach", FOREACH)
def test_parameters_without_gradient_are_left_alone(foreach: bool) -> None:
    used, unused = torch.ones(3, requires_grad=True), torch.ones(3, requires_grad=True)
    optimizer = torch_optim.Adam([used, unused], lr=0.1, foreach=foreach)
    used.grad = torch.ones(3)
    optimizer.step()
    assert torch.equal(unused, torch.ones(3)) and unused not in optimizer.state
    assert optimizer.state[used]["step"] == 1 and not torch.equal(used, torch.ones(3))


def test_step_evaluates_the_closure_with_gradients_enabled() -> None:
    model, data = make_model(), make_data()
    optimizer = torch_optim.SGD(model.parameters(), lr=0.1)

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(data[0]), data[1])
        loss.backward()
        return loss

    before = flat_params(model)
    loss = optimizer.step(closure)
    assert isinstance(loss, torch.Tensor) and loss.requires_grad
    assert not torch.equal(flat_params(model), before)


BAD_HYPERPARAMETERS = [
    (torch_optim.SGD, {"lr": -0.1}, "lr"),
    (torch_optim.SGD, {"lr": float("nan")}, "lr"),
    (torch_optim.SGD, {"lr": "0.1"}, "lr"),
    (torch_optim.SGD, {"lr": 0.1, "momentum": 1.0}, "momentum"),
    (torch_optim.SGD, {"lr": 0.1, "momentum": -0.5}, "momentum"),
    (torch_optim.SGD, {"lr": 0.1, "nesterov": True}, "nesterov"),
    (torch_optim.SGD, {"lr": 0.1, "nesterov": 1, "momentum": 0.9}, "nesterov"),
    (torch_optim.SGD, {"lr": 0.1, "weight_decay": -1e-4}, "weight_decay"),
    (torch_optim.SGD, {"lr": 0.1, "foreach": "yes"}, "foreach"),
    (torch_optim.Adagrad, {"eps": -1e-10}, "eps"),
    (torch_optim.Adagrad, {"lr": float("inf")}, "lr"),
    (torch_optim.RMSprop, {"alpha": 1.0}, "alpha"),
    (torch_optim.RMSprop, {"eps": -1.0}, "eps"),
    (torch_optim.Adam, {"betas": (1.0, 0.999)}, r"betas\[0\]"),
    (torch_optim.Adam, {"betas": (0.9, -0.1)}, r"betas\[1\]"),
    (torch_optim.Adam, {"betas": 0.9}, "betas"),
    (torch_optim.Adam, {"eps": -1e-8}, "eps"),
    (torch_optim.Adam, {"weight_decay": -0.1}, "weight_decay"),
    (torch_optim.AdamW, {"lr": -1e-3}, "lr"),
    (torch_optim.AdamW, {"weight_decay": float("nan")}, "weight_decay"),
]


@pytest.mark.parametrize(("cls", "kwargs", "name"), BAD_HYPERPARAMETERS)
def test_bad_hyperparameters_raise_naming_the_argument(cls: type, kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        cls([torch.zeros(2, requires_grad=True)], **kwargs)


def test_bad_hyperparameter_in_a_param_group_raises_naming_the_group() -> None:
    optimizer = torch_optim.Adam([torch.zeros(2, requires_grad=True)])
    with pytest.raises(ValueError, match=r"param_groups\[1\]\['lr'\]"):
        optimizer.add_param_group({"params": [torch.zeros(2, requires_grad=True)], "lr": -1.0})
    with pytest.raises(ValueError, match=r"param_groups\[0\]\['betas'\]\[1\]"):
        torch_optim.Adam([{"params": [torch.zeros(2, requires_grad=True)], "betas": (0.9, 1.5)}])
    assert len(optimizer.param_groups) == 1


def test_loading_a_state_dict_with_bad_hyperparameters_raises() -> None:
    optimizer = torch_optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1, momentum=0.9)
    saved = optimizer.state_dict()
    saved["param_groups"][0]["momentum"] = 2.0
    with pytest.raises(ValueError, match="momentum"):
        optimizer.load_state_dict(saved)
    assert optimizer.param_groups[0]["momentum"] == 0.9


ALL_OPTIMIZERS = [
    pytest.param(lambda params, foreach: cls(params, lr=0.1, foreach=foreach), id=cls.__name__)
    for cls in (torch_optim.SGD, torch_optim.Adagrad, torch_optim.RMSprop, torch_optim.Adam, torch_optim.AdamW)
]


@pytest.mark.parametrize("foreach", FOREACH)
@pytest.mark.parametrize("make_optimizer", ALL_OPTIMIZERS)
def test_sparse_gradient_raises_naming_the_parameter(make_optimizer, foreach: bool) -> None:
    dense, embedding = torch.zeros(2, requires_grad=True), torch.zeros(4, 3, requires_grad=True)
    no_grad = torch.zeros(1, requires_grad=True)
    optimizer = make_optimizer([{"params": [dense]}, {"params": [no_grad, embedding]}], foreach)
    dense.grad = torch.ones(2)
    embedding.grad = torch.sparse_coo_tensor([[1, 3]], torch.ones(2, 3), (4, 3), check_invariants=True)
    with pytest.raises(RuntimeError, match=r"param_groups\[1\]\['params'\]\[1\] has a sparse gradient"):
        optimizer.step()
    assert torch.equal(dense, torch.zeros(2))  # nothing was updated


@pytest.mark.parametrize("make_optimizer", ALL_OPTIMIZERS)
def test_complex_parameter_raises_naming_the_parameter(make_optimizer) -> None:
    param = torch.zeros(3, dtype=torch.complex128, requires_grad=True)
    optimizer = make_optimizer([("weights", param)], True)
    param.grad = torch.ones(3, dtype=torch.complex128)
    with pytest.raises(RuntimeError, match=r"param_groups\[0\]\['params'\]\[0\] \('weights'\).*complex"):
        optimizer.step()


def test_group_by_device_and_dtype_keeps_first_seen_order_with_one_group_or_several() -> None:
    f32, f64 = torch.zeros(2), torch.zeros(3, dtype=torch.float64)
    cpu = torch.device("cpu")
    assert tensor_blocks.group_by_device_and_dtype([f32, f32, f32]) == {(cpu, torch.float32): [0, 1, 2]}
    mixed = tensor_blocks.group_by_device_and_dtype([f64, f32, f64, f32])
    assert mixed == {(cpu, torch.float64): [0, 2], (cpu, torch.float32): [1, 3]}
    assert list(mixed) == [(cpu, torch.float64), (cpu, torch.float32)]
    assert tensor_blocks.group_by_device_and_dtype([]) == {}


def test_cache_blocks_cover_every_element_once_and_write_through() -> None:
    shapes = [(3, 4), (25,), (1,), (2, 2, 2), (0,), (40,)]
    params = [torch.zeros(shape) for shape in shapes]
    grads = [torch.arange(p.numel(), dtype=torch.float32).reshape(p.shape) + 100 * i for i, p in enumerate(params)]
    seen = [0] * len(shapes)
    for (p_pieces, g_pieces), owners in tensor_blocks.cache_blocks([params, grads], block_numel=10):
        assert sum(piece.numel() for piece in p_pieces) <= 10
        assert len(p_pieces) == len(g_pieces) == len(owners)
        for p_piece, g_piece, owner in zip(p_pieces, g_pieces, owners):
            assert p_piece.shape == g_piece.shape
            p_piece.add_(g_piece + 1)  # each element is written exactly once if blocks don't overlap
            seen[owner] += p_piece.numel()
    assert seen == [p.numel() for p in params]
    for param, grad in zip(params, grads):
        assert torch.equal(param, grad + 1)


def test_cache_blocks_keep_non_contiguous_tensors_whole() -> None:
    transposed = torch.zeros(6, 5).t()
    blocks = list(tensor_blocks.cache_blocks([[transposed], [torch.zeros(5, 6)]], block_numel=4))
    assert len(blocks) == 1 and blocks[0][0][0][0] is transposed and blocks[0][1] == [0]


def test_cache_blocks_without_block_size_yield_one_block_and_reject_bad_input() -> None:
    tensors = [torch.zeros(5), torch.zeros(7)]
    assert [(len(b[0]), owners) for b, owners in tensor_blocks.cache_blocks([tensors], None)] == [(2, [0, 1])]
    with pytest.raises(ValueError, match="tensor_lists"):
        list(tensor_blocks.cache_blocks([tensors, tensors[:1]], 4))
    with pytest.raises(ValueError, match="block_numel"):
        list(tensor_blocks.cache_blocks([tensors], 0))


def load_benchmark():
    spec = importlib.util.spec_from_file_location("optim_step", ROOT / "benchmarks" / "optim_step.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("rule", ["sgd_momentum", "adam"])
def test_benchmark_numpy_forms_compute_the_reference_rule(rule: str) -> None:
    bench = load_benchmark()
    rng = np.random.default_rng(4)
    w = w_naive = rng.standard_normal(30)
    m, v = np.zeros(30), np.zeros(30)
    config = {"learning_rate": 0.01}
    for t in range(1, 6):
        dw = rng.standard_normal(30)
        w, config = getattr(numpy_rules, rule)(w, dw, config)
        if rule == "adam":
            w_naive, m, v = bench.naive_adam(w_naive, dw, m, v, t, 0.01, 0.9, 0.999, 1e-8)
        else:
            w_naive, v = bench.naive_sgd_momentum(w_naive, dw, v, 0.01, 0.9)
    np.testing.assert_allclose(w_naive, w, rtol=1e-12)


def test_benchmark_quick_run_prints_every_table(capsys) -> None:
    bench = load_benchmark()
    threads = torch.get_num_threads()
    args = [
        "--quick", "--layout", "3000:3", "--layout", "2000:1", "--numpy-numel", "1000", "--threads", "1", "--no-fused"
    ]
    assert bench.main(args) == 0
    assert torch.get_num_threads() == threads
    out = capsys.readouterr().out
    for title in ("Adam, 3,000 params in 3 tensors", "AdamW, 2,000 params in 1 tensor", "NumPy Adam"):
        assert title in out
    assert out.count("\nours foreach=True ") == 6 and "ours fused" not in out
    assert out.count("\ncs231n_utils.optim ") == 2 and out.count("\ncheck: clocked inside ") == 2
    assert out.count("\ncheck: with - without ") == 2 and out.count("\ntarget: check <= 5 % of the step: ") == 2
    assert "each repeat 1 step in a row" in out  # no bursts on the CPU


def test_benchmark_bursts_time_consecutive_calls_and_synchronise_once_per_sample(monkeypatch) -> None:
    bench = load_benchmark()
    events: list[str] = []
    clock = iter(range(1000))
    steps = {"a": lambda: events.append("a"), "b": lambda: events.append("b")}
    monkeypatch.setattr(bench.time, "perf_counter", lambda: float(next(clock)))
    seconds = bench.time_round_robin(steps, repeats=2, warmup=1, sync=lambda: events.append("sync"), burst=3)
    assert events == ["a", "b", "sync"] + (["a"] * 3 + ["sync"] + ["b"] * 3 + ["sync"]) * 2
    assert seconds == {"a": pytest.approx(1 / 3), "b": pytest.approx(1 / 3)}  # one clock tick per burst of 3


def test_benchmark_clocked_check_share_is_the_time_spent_inside_the_check(monkeypatch) -> None:
    bench = load_benchmark()
    slow = bench.maybe_non_finite

    def slow_check(flat):  # a check that takes most of a tiny step
        bench.time.sleep(0.002)
        return slow(flat)

    monkeypatch.setattr(numpy_rules, "maybe_non_finite", numpy_rules.maybe_non_finite)  # undone after the test
    monkeypatch.setattr(bench, "maybe_non_finite", slow_check)
    shares: list[float] = []
    steps = bench.numpy_steps("Adam", 100, np.float32, shares)
    steps[bench.TIMED_CHECK]()
    steps["cs231n_utils.optim"]()  # only the clocked form reports a share
    assert len(shares) == 1 and 0.5 < shares[0] <= 1.0
    assert numpy_rules.maybe_non_finite is bench.maybe_non_finite  # restored after the clocked step


def test_benchmark_resnet18_layout_has_torchvisions_62_shapes() -> None:
    layout = load_benchmark().Layout.parse("resnet18")
    assert len(layout.shapes) == 62 and layout.numel == 11_689_512  # torchvision's parameter count
    assert layout.shapes[0] == (64, 3, 7, 7) and layout.shapes[-2:] == ((1000, 512), (1000,))


def load_fused_variants():
    load_benchmark()  # fused_variants imports optim_step by name
    spec = importlib.util.spec_from_file_location("fused_variants", ROOT / "benchmarks" / "fused_variants.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fused_variants_prints_a_table_and_goes_on_after_a_failing_variant(capsys, monkeypatch) -> None:
    variants = load_fused_variants()
    monkeypatch.setitem(variants.VARIANTS, "broken", {"no_such_inductor_option": True})
    saved = dict(fused_kernels.INDUCTOR_OPTIONS)
    args = [
        "--device", "cpu", "--layout", "64:2", "--rule", "SGD-momentum", "--variant", "broken", "--variant", "default",
        "--repeats", "2", "--warmup", "1", "--threads", "1",
    ]
    assert variants.main(args) == 0
    out = capsys.readouterr().out
    assert "ours broken: FAILED" in out and "no_such_inductor_option" in out
    assert "check ours default: matches torch.optim after 5 steps" in out and "check ours broken: FAILED" in out
    assert "SGD-momentum, 64 params in 2 tensors" in out
    assert "\ntorch fused " in out and "\nours default " in out and "\nours broken " not in out
    assert fused_kernels.INDUCTOR_OPTIONS == saved  # each variant's options are set for its compile only


def test_fused_variants_check_reports_a_variant_that_computes_something_else(monkeypatch) -> None:
    variants = load_fused_variants()

    def twice_the_rate(params, **kwargs):
        return torch_optim.SGD(params, **{**kwargs, "lr": 2 * kwargs["lr"]})

    monkeypatch.setitem(variants.RULES, "SGD-momentum", (torch.optim.SGD, twice_the_rate, {"lr": 0.1, "momentum": 0.9}))
    lines = variants.check_against_torch("SGD-momentum", torch.device("cpu"), ["default"])
    assert len(lines) == 1 and lines[0].startswith("check ours default: DIFFERS from torch.optim")


def test_fused_with_cuda_graph_options_marks_weights_and_state_static(monkeypatch) -> None:
    # On the CPU Inductor records no CUDA graph, but the static marking runs and must not change results.
    monkeypatch.setitem(fused_kernels.INDUCTOR_OPTIONS, "cpu", {"size_asserts": False, "triton.cudagraphs": True})
    ours, theirs, kwargs = TORCH_PAIRS["adam-decay"]
    data = make_data()
    expected_model, model = make_model(), make_model()
    train(expected_model, theirs(expected_model.parameters(), **kwargs), 10, data)
    optimizer = ours(model.parameters(), fused=True, **kwargs)
    train(model, optimizer, 10, data)
    torch.testing.assert_close(flat_params(model), flat_params(expected_model), atol=1e-9, rtol=1e-9)
    optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))  # new state tensors, same weights
    train(model, optimizer, 1, data)
    for param in model.parameters():
        for tensor in (param, optimizer.state[param]["exp_avg"], optimizer.state[param]["exp_avg_sq"]):
            assert getattr(tensor, "_dynamo_static_input_type", None) is not None
        assert getattr(param.grad, "_dynamo_static_input_type", None) is None


def test_benchmark_fused_rows_and_target_line(capsys) -> None:
    bench = load_benchmark()
    args = ["--quick", "--layout", "64:2", "--rule", "SGD-momentum", "--numpy-numel", "1000", "--threads", "1"]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    assert out.count("\nours fused ") == 1 and out.count("\ntarget: ours fused / torch fused = ") == 1
    assert "(<= 1.5 " in out  # 32-element tensors are "small": the overhead target applies
    assert "ours fused: first step (compile or cache load)" in out


# --- fused=True: the formula compiled by torch.compile -----------------------------------------------
# Compiling costs seconds per kernel, so the tests share kernels: every case trains the same MLP
# (same shapes, so Inductor's on-disk FX graph cache serves repeats), and one module-scoped run per
# case feeds several checks.

FUSED_CASES = [
    "sgd", "sgd-momentum-decay", "sgd-nesterov-decay", "adagrad", "rmsprop", "adam", "adam-decay", "adamw",
]


@pytest.fixture(scope="module")
def fused_runs() -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.optim.Optimizer]]:
    """For each fused case: our fused weights and torch.optim's after 100 steps, and our optimizer."""
    runs = {}
    data = make_data()
    for case in FUSED_CASES:
        ours, theirs, kwargs = TORCH_PAIRS[case]
        expected_model, model = make_model(), make_model()
        train(expected_model, theirs(expected_model.parameters(), **kwargs), STEPS, data)
        optimizer = ours(model.parameters(), fused=True, **kwargs)
        train(model, optimizer, STEPS, data)
        runs[case] = (flat_params(model), flat_params(expected_model), optimizer)
    return runs


@pytest.mark.parametrize("case", FUSED_CASES)
def test_fused_matches_torch_optim_over_100_steps(case: str, fused_runs) -> None:
    ours, expected, _ = fused_runs[case]
    assert not torch.equal(ours, flat_params(make_model()))  # it did train
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("case", ["sgd-nesterov-decay", "adam-decay", "adamw"])
def test_fused_does_not_recompile_when_steps_and_learning_rates_change(case: str, fused_runs) -> None:
    # The case's optimizer compiled at its first step; a schedule that changes lr every step, and
    # Adam's step count, must reuse that kernel ("fail_on_recompile" raises on any new compile).
    _, _, optimizer = fused_runs[case]
    params = [p for group in optimizer.param_groups for p in group["params"]]
    before = [p.detach().clone() for p in params]
    with torch.compiler.set_stance("fail_on_recompile"):
        for step in range(3):
            optimizer.param_groups[0]["lr"] *= 0.5
            for param in params:
                param.grad = torch.full_like(param, 0.1 * (step + 1))
            optimizer.step()
    assert all(not torch.equal(p, b) for p, b in zip(params, before))


@pytest.mark.parametrize("case", ["sgd-momentum-decay", "adam-decay", "adamw"])
def test_fused_follows_a_schedule_and_parameters_that_skip_steps(case: str) -> None:
    """The learning rate changes every other step and the last layer gets no gradient on every third
    step, so its step counts lag (Adam's tensors then need different coefficient rows): the fused
    kernel's kept coefficients must follow both, as torch.optim does."""
    ours, theirs, kwargs = TORCH_PAIRS[case]
    x, y = make_data()
    models = [make_model(), make_model()]
    optimizers = [theirs(models[0].parameters(), **kwargs), ours(models[1].parameters(), fused=True, **kwargs)]
    for step in range(30):
        for model, optimizer in zip(models, optimizers):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            if step % 3 == 2:
                for param in model[2].parameters():
                    param.grad = None
            optimizer.param_groups[0]["lr"] = kwargs["lr"] * (1 + step // 2 % 2)
            optimizer.step()
    torch.testing.assert_close(flat_params(models[1]), flat_params(models[0]), atol=1e-9, rtol=1e-9)


def test_fused_param_groups_and_state_dict_round_trip_across_paths() -> None:
    """Two groups with their own lr and weight decay; 10 fused steps, a checkpoint, 10 more steps on
    the per-tensor and multi-tensor paths: every run equals torch.optim.AdamW's."""
    data = make_data()

    def groups(model):
        return [{"params": model[0].parameters(), "lr": 0.05, "weight_decay": 0.2}, {"params": model[2].parameters()}]

    expected_model, model = make_model(), make_model()
    expected = torch.optim.AdamW(groups(expected_model), lr=0.01, weight_decay=0.1)
    fused = torch_optim.AdamW(groups(model), lr=0.01, weight_decay=0.1, fused=True)
    train(expected_model, expected, 10, data)
    train(model, fused, 10, data)
    torch.testing.assert_close(flat_params(model), flat_params(expected_model), atol=1e-9, rtol=1e-9)
    saved = copy.deepcopy({"model": model.state_dict(), "optimizer": fused.state_dict()})
    train(expected_model, expected, 10, data)
    for foreach in (False, True):
        resumed_model = make_model()
        resumed_model.load_state_dict(saved["model"])
        resumed = torch_optim.AdamW(groups(resumed_model), lr=0.01, weight_decay=0.1, foreach=foreach)
        resumed.load_state_dict(copy.deepcopy(saved["optimizer"]))
        train(resumed_model, resumed, 10, data)
        torch.testing.assert_close(flat_params(resumed_model), flat_params(expected_model), atol=1e-9, rtol=1e-9)
    # and back: an unfused checkpoint resumed fused
    unfused_state = resumed.state_dict()
    fused.load_state_dict(copy.deepcopy(unfused_state))
    model.load_state_dict(resumed_model.state_dict())
    train(expected_model, expected, 5, data)
    train(model, fused, 5, data)
    torch.testing.assert_close(flat_params(model), flat_params(expected_model), atol=1e-9, rtol=1e-9)


ALL_CLASSES = [torch_optim.SGD, torch_optim.Adagrad, torch_optim.RMSprop, torch_optim.Adam, torch_optim.AdamW]


@pytest.mark.parametrize(
    ("param", "needle"),
    [
        (torch.zeros(3, dtype=torch.float16), "dtype torch.float16"),
        (torch.zeros(3, dtype=torch.bfloat16), "dtype torch.bfloat16"),
        (torch.zeros(3, device="meta"), "on meta"),
    ],
    ids=["float16", "bfloat16", "meta-device"],
)
@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_fused_rejects_unsupported_device_or_dtype_naming_the_parameter(cls: type, param, needle: str) -> None:
    good = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match=rf"param_groups\[0\]\['params'\]\[1\].*{needle}"):
        cls([good, param.requires_grad_()], lr=0.1, fused=True)
    optimizer = cls([good], lr=0.1, fused=True)
    with pytest.raises(ValueError, match=rf"param_groups\[1\]\['params'\]\[0\].*{needle}"):
        optimizer.add_param_group({"params": [param]})
    assert len(optimizer.param_groups) == 1


def test_fused_and_foreach_together_raise() -> None:
    with pytest.raises(ValueError, match="fused=True and foreach=True"):
        torch_optim.Adam([torch.zeros(2, requires_grad=True)], fused=True, foreach=True)
    with pytest.raises(ValueError, match="fused"):
        torch_optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1, fused=1)


def bytes_allocated_per_step(optimizer: torch.optim.Optimizer) -> tuple[int, int]:
    """The largest single CPU allocation during one ``step``, and the sum of all of them (profiler)."""
    with torch.profiler.profile(profile_memory=True) as profile:
        optimizer.step()
    sizes = [event.self_cpu_memory_usage for event in profile.events() if event.self_cpu_memory_usage > 0]
    return max(sizes, default=0), sum(sizes)


def test_fused_step_allocates_only_its_coefficients(fused_runs) -> None:
    # The eager formula would allocate several temporaries the size of every parameter.
    optimizer = fused_runs["adam-decay"][2]
    params = [p for group in optimizer.param_groups for p in group["params"]]
    param_bytes = sum(p.numel() * p.element_size() for p in params)
    _, total = bytes_allocated_per_step(optimizer)
    coefficient_bytes = len(params) * 8 * 8  # one row of 8 float64 coefficients per tensor
    assert total <= 2 * coefficient_bytes and total < param_bytes / 2  # the row and its copy per tensor


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_per_tensor_path_makes_no_full_size_temporary(cls: type) -> None:
    param = torch.zeros(1 << 21, requires_grad=True)
    param.grad = torch.ones_like(param)
    optimizer = cls([param], lr=0.1, foreach=False)
    optimizer.step()  # creates the state and the per-tensor path's scratch buffers
    largest, _ = bytes_allocated_per_step(optimizer)
    # the traced form runs every 1 MiB piece in reused buffers: nothing the size of a piece is allocated
    assert largest < 4096 < param.numel() * param.element_size() // 4


gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("foreach", FOREACH)
@pytest.mark.parametrize("case", ["sgd-nesterov-decay", "adagrad", "rmsprop", "adam-decay", "adamw"])
def test_matches_torch_optim_on_gpu(case: str, foreach: bool) -> None:
    ours, theirs, kwargs = TORCH_PAIRS[case]
    assert_same_training(ours, theirs, kwargs, foreach, device="cuda")


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("foreach", FOREACH)
def test_gpu_state_lives_on_the_gpu_and_loads_from_a_cpu_checkpoint(foreach: bool) -> None:
    data = make_data()
    cpu_model = make_model()
    cpu_optimizer = torch_optim.Adam(cpu_model.parameters(), lr=0.01, foreach=foreach)
    train(cpu_model, cpu_optimizer, 5, data)

    model = make_model("cuda")
    model.load_state_dict(cpu_model.state_dict())
    optimizer = torch_optim.Adam(model.parameters(), lr=0.01, foreach=foreach)
    optimizer.load_state_dict(cpu_optimizer.state_dict())
    for param in model.parameters():
        assert optimizer.state[param]["exp_avg"].device == param.device
    train(cpu_model, cpu_optimizer, 5, data)
    train(model, optimizer, 5, make_data("cuda"))
    for param in model.parameters():
        assert optimizer.state[param]["exp_avg_sq"].device.type == "cuda"
    torch.testing.assert_close(flat_params(model).cpu(), flat_params(cpu_model), atol=1e-9, rtol=1e-9)


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("case", ["sgd-nesterov-decay", "adagrad", "rmsprop", "adam-decay", "adamw"])
def test_fused_matches_torch_optim_on_gpu(case: str) -> None:
    ours, theirs, kwargs = TORCH_PAIRS[case]
    data = make_data("cuda")
    expected_model, model = make_model("cuda"), make_model("cuda")
    train(expected_model, theirs(expected_model.parameters(), **kwargs), STEPS, data)
    train(model, ours(model.parameters(), fused=True, **kwargs), STEPS, data)
    torch.testing.assert_close(flat_params(model), flat_params(expected_model), atol=1e-6, rtol=1e-6)
