"""The NumPy reference rules against torch.optim, plus their contract and input validation."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from cs231n_utils import optim
from cs231n_utils.gradcheck import rel_error
from cs231n_utils.validation import maybe_non_finite

STEPS = 50

# (NumPy rule, its config, torch.optim class, its kwargs) describing the same algorithm.
EQUIVALENT_PAIRS = {
    "sgd": (optim.sgd, {"learning_rate": 0.05}, torch.optim.SGD, {"lr": 0.05}),
    "sgd_momentum": (
        optim.sgd_momentum,
        {"learning_rate": 0.05, "momentum": 0.9},
        torch.optim.SGD,
        {"lr": 0.05, "momentum": 0.9},
    ),
    "nesterov_momentum": (
        optim.nesterov_momentum,
        {"learning_rate": 0.05, "momentum": 0.8},
        torch.optim.SGD,
        {"lr": 0.05, "momentum": 0.8, "nesterov": True},
    ),
    "adagrad": (
        optim.adagrad,
        {"learning_rate": 0.1, "epsilon": 1e-10},
        torch.optim.Adagrad,
        {"lr": 0.1, "eps": 1e-10},
    ),
    "rmsprop": (
        optim.rmsprop,
        {"learning_rate": 0.01, "decay_rate": 0.95, "epsilon": 1e-8},
        torch.optim.RMSprop,
        {"lr": 0.01, "alpha": 0.95, "eps": 1e-8},
    ),
    "adam": (
        optim.adam,
        {"learning_rate": 0.01, "beta1": 0.85, "beta2": 0.99, "epsilon": 1e-8},
        torch.optim.Adam,
        {"lr": 0.01, "betas": (0.85, 0.99), "eps": 1e-8},
    ),
}


@pytest.mark.parametrize("name", sorted(EQUIVALENT_PAIRS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rule_matches_torch_optim_over_50_steps(name: str, seed: int) -> None:
    rule, config, torch_class, torch_kwargs = EQUIVALENT_PAIRS[name]
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 6, size=rng.integers(1, 4)))
    w0 = rng.standard_normal(shape)
    # Gradients that change every step and depend on the iterate, like a real loss (a quadratic
    # with random curvature plus noise), so that state mistakes cannot cancel out.
    curvature = rng.uniform(0.1, 3.0, size=shape)
    noises = rng.standard_normal((STEPS, *shape))

    param = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    torch_opt = torch_class([param], **torch_kwargs)
    w, cfg = w0.copy(), dict(config)
    for step in range(STEPS):
        dw = curvature * w + 0.1 * noises[step]
        w, cfg = rule(w, dw, cfg)
        param.grad = torch.tensor(curvature * param.detach().numpy() + 0.1 * noises[step])
        torch_opt.step()
        assert rel_error(w, param.detach().numpy()) < 1e-6, f"{name} diverged from torch.optim at step {step}"


@pytest.mark.parametrize("name", sorted(optim.UPDATE_RULES))
def test_rule_does_not_mutate_inputs_and_returns_the_config(name: str) -> None:
    rule = optim.UPDATE_RULES[name]
    rng = np.random.default_rng(0)
    w, dw = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    w_before, dw_before = w.copy(), dw.copy()
    config: dict = {}
    next_w, returned = rule(w, dw, config)
    assert returned is config
    assert next_w.shape == w.shape and next_w is not w
    np.testing.assert_array_equal(w, w_before)
    np.testing.assert_array_equal(dw, dw_before)
    assert not np.allclose(next_w, w), "a step with a non-zero gradient must move the weights"


@pytest.mark.parametrize("name", sorted(optim.UPDATE_RULES))
def test_rule_defaults_follow_cs231n(name: str) -> None:
    _, config = optim.UPDATE_RULES[name](np.ones(3), np.ones(3), None)
    expected = {
        "sgd": {"learning_rate": 1e-2},
        "sgd_momentum": {"learning_rate": 1e-2, "momentum": 0.9},
        "nesterov_momentum": {"learning_rate": 1e-2, "momentum": 0.9},
        "adagrad": {"learning_rate": 1e-2, "epsilon": 1e-8},
        "rmsprop": {"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8},
        "adam": {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
    }[name]
    for key, value in expected.items():
        assert config[key] == value


def test_adam_first_step_is_learning_rate_sized_thanks_to_bias_correction() -> None:
    # With bias correction, m_hat / sqrt(v_hat) = g / |g| on step 1, so every coordinate moves by lr.
    dw = np.array([1e-4, -3.0, 250.0])
    next_w, config = optim.adam(np.zeros(3), dw, {"learning_rate": 1e-3})
    np.testing.assert_allclose(next_w, -1e-3 * np.sign(dw), rtol=1e-3)
    assert config["t"] == 1


def test_state_is_carried_in_the_config() -> None:
    w, dw = np.ones(4), np.full(4, 0.5)
    w1, config = optim.sgd_momentum(w, dw, {"learning_rate": 0.1, "momentum": 0.9})
    np.testing.assert_allclose(config["velocity"], -0.05)
    w2, config = optim.sgd_momentum(w1, dw, config)
    np.testing.assert_allclose(config["velocity"], 0.9 * -0.05 - 0.05)
    np.testing.assert_allclose(w2, w1 + config["velocity"])


def test_float32_weights_stay_float32() -> None:
    w = np.ones(5, dtype=np.float32)
    for rule in optim.UPDATE_RULES.values():
        next_w, config = rule(w, w, None)
        assert next_w.dtype == np.float32, rule.__name__


BAD_INPUTS = [
    ({"w": np.ones(3), "dw": np.ones(4)}, "dw"),
    ({"w": np.array([1.0, np.nan]), "dw": np.ones(2)}, "w"),
    ({"w": np.ones(2), "dw": np.array([np.inf, 0.0])}, "dw"),
    ({"w": np.array(["a", "b"]), "dw": np.ones(2)}, "w"),
    ({"config": {"learning_rate": -1.0}}, "learning_rate"),
    ({"config": {"learning_rate": 0.0}}, "learning_rate"),
    ({"config": {"learning_rate": float("nan")}}, "learning_rate"),
    ({"config": {"learning_rate": "0.1"}}, "learning_rate"),
    ({"config": {"lr": 0.1}}, "unknown"),
    ({"config": [("learning_rate", 0.1)]}, "config"),
]


@pytest.mark.parametrize("name", sorted(optim.UPDATE_RULES))
@pytest.mark.parametrize("bad, needle", BAD_INPUTS)
def test_bad_inputs_raise_value_error_naming_the_argument(name: str, bad: dict, needle: str) -> None:
    kwargs = {"w": np.ones(3), "dw": np.ones(3), "config": None, **copy.deepcopy(bad)}
    with pytest.raises(ValueError, match=needle):
        optim.UPDATE_RULES[name](**kwargs)


@pytest.mark.parametrize(
    "name, key, value",
    [
        ("sgd_momentum", "momentum", 1.0),
        ("nesterov_momentum", "momentum", -0.1),
        ("rmsprop", "decay_rate", 1.5),
        ("adam", "beta1", 1.0),
        ("adam", "beta2", -0.5),
        ("adam", "epsilon", -1e-8),
        ("adagrad", "epsilon", 0.0),
        ("adam", "t", -1),
        ("adam", "t", 1.5),
    ],
)
def test_bad_hyperparameters_raise(name: str, key: str, value: float) -> None:
    with pytest.raises(ValueError, match=key):
        optim.UPDATE_RULES[name](np.ones(3), np.ones(3), {key: value})


def test_state_of_the_wrong_shape_raises() -> None:
    with pytest.raises(ValueError, match="velocity"):
        optim.sgd_momentum(np.ones(3), np.ones(3), {"velocity": np.zeros(4)})


@pytest.mark.parametrize("name", sorted(EQUIVALENT_PAIRS))
@pytest.mark.parametrize("layout", ["several blocks", "transposed", "float32 weights"])
def test_rules_match_torch_on_large_and_non_contiguous_arrays(name: str, layout: str) -> None:
    """The rules apply their formula block by block; every block and every layout must agree."""
    rule, config, torch_class, torch_kwargs = EQUIVALENT_PAIRS[name]
    rng = np.random.default_rng(7)
    if layout == "several blocks":
        w0 = rng.standard_normal(3 * optim.BLOCK_SIZE + 5)
    elif layout == "transposed":
        w0 = rng.standard_normal((300, 500)).T  # not C-contiguous: no flat view
    else:
        w0 = rng.standard_normal(optim.BLOCK_SIZE + 17).astype(np.float32)
    param = torch.tensor(w0, requires_grad=True)  # same dtype as w0
    torch_opt = torch_class([param], **torch_kwargs)
    w, cfg = w0, dict(config)
    for _ in range(3):
        dw = np.sin(w) + 0.5  # depends on the iterate, differs per element
        w, cfg = rule(w, dw, cfg)
        param.grad = torch.sin(param.detach()) + 0.5
        torch_opt.step()
    assert w.shape == w0.shape and w.dtype == w0.dtype
    if w0.dtype == np.float32:  # float32 rounding differs between NumPy's and torch's kernels
        np.testing.assert_allclose(w, param.detach().numpy(), rtol=1e-5, atol=1e-6)
    else:
        assert rel_error(w, param.detach().numpy()) < 1e-9


@pytest.mark.parametrize("name", sorted(optim.UPDATE_RULES))
@pytest.mark.parametrize(("argument", "value"), [("w", np.nan), ("w", -np.inf), ("dw", np.nan), ("dw", np.inf)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_input_in_a_late_block_raises_naming_it(name: str, argument: str, value: float, dtype) -> None:
    """The finiteness check runs block by block inside the update: a bad value in the last block of a
    multi-block array, or in a non-contiguous array, must still raise."""
    rng = np.random.default_rng(5)
    for w in (rng.standard_normal(3 * optim.BLOCK_SIZE + 7), rng.standard_normal((40, 30)).T):
        w = w.astype(dtype)
        inputs = {"w": w.copy(), "dw": rng.standard_normal(w.shape).astype(dtype)}
        inputs[argument][-1, ...] = value  # the last element: in the last block
        with pytest.raises(ValueError, match=rf"^{argument} contains NaN or infinity"):
            optim.UPDATE_RULES[name](inputs["w"], inputs["dw"], None)


def test_overflow_of_finite_inputs_is_not_reported_as_a_bad_input() -> None:
    w = np.full(4, 3e38, dtype=np.float32)
    with np.errstate(over="ignore"):
        next_w, _ = optim.sgd(w, np.full(4, -3e38, dtype=np.float32), {"learning_rate": 10.0})
    assert np.isinf(next_w).all()  # float32 overflowed, but w and dw were valid


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_maybe_non_finite_sees_nan_and_infinity_anywhere(dtype: type) -> None:
    values = np.linspace(-100, 100, 1 << 16).astype(dtype)  # squares sum to far more than float16's range
    assert not maybe_non_finite(values)
    for bad in (np.nan, np.inf, -np.inf):
        for index in (0, 500, values.size - 1):
            broken = values.copy()
            broken[index] = bad
            assert maybe_non_finite(broken)
    assert not maybe_non_finite(np.arange(5))  # integers are always finite
    with pytest.raises(ValueError, match="flat"):
        maybe_non_finite(np.zeros((2, 2), dtype=dtype))


def test_maybe_non_finite_says_maybe_only_for_squares_beyond_the_dtype() -> None:
    assert not maybe_non_finite(np.full(1 << 16, 1e16, dtype=np.float32))
    with pytest.warns(RuntimeWarning, match="overflow"):
        assert maybe_non_finite(np.full(1 << 16, 1e18, dtype=np.float32))
    assert not maybe_non_finite(np.full(1 << 16, 1e18))  # float64 squares fit
