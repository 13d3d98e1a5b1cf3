"""Layers: forward passes against torch, backward passes against numerical gradients, dropout statistics."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cs231n_utils import layers
from cs231n_utils.gradcheck import eval_numerical_gradient, eval_numerical_gradient_array, rel_error


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(231)


# ------------------------------------------------------------------------------------ affine
def test_affine_forward_matches_torch_linear(rng):
    x, w, b = rng.standard_normal((4, 2, 3)), rng.standard_normal((6, 5)), rng.standard_normal(5)
    out, _ = layers.affine_forward(x, w, b)
    expected = torch.nn.functional.linear(torch.from_numpy(x).reshape(4, 6), torch.from_numpy(w).T, torch.from_numpy(b))
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-12, atol=1e-12)


def test_affine_backward_matches_numerical_gradients(rng):
    x, w, b = rng.standard_normal((4, 2, 3)), rng.standard_normal((6, 5)), rng.standard_normal(5)
    dout = rng.standard_normal((4, 5))
    dx, dw, db = layers.affine_backward(dout, layers.affine_forward(x, w, b)[1])
    assert dx.shape == x.shape
    assert rel_error(dx, eval_numerical_gradient_array(lambda v: layers.affine_forward(v, w, b)[0], x, dout)) < 1e-8
    assert rel_error(dw, eval_numerical_gradient_array(lambda v: layers.affine_forward(x, v, b)[0], w, dout)) < 1e-8
    assert rel_error(db, eval_numerical_gradient_array(lambda v: layers.affine_forward(x, w, v)[0], b, dout)) < 1e-8


@pytest.mark.parametrize(
    "shapes, message",
    [(((4, 6), (5, 5), (5,)), "w has 5 rows"), (((4, 6), (6, 5), (4,)), "b must have shape"), (((4, 6), (6,), (6,)), "w must be a 2-D")],
)
def test_affine_forward_rejects_mismatched_shapes(shapes, message):
    with pytest.raises(ValueError, match=message):
        layers.affine_forward(*(np.ones(s) for s in shapes))


def test_affine_rejects_nan_and_bad_dout(rng):
    with pytest.raises(ValueError, match="x contains NaN"):
        layers.affine_forward(np.full((2, 3), np.nan), np.ones((3, 2)), np.ones(2))
    _, cache = layers.affine_forward(np.ones((2, 3)), np.ones((3, 2)), np.ones(2))
    with pytest.raises(ValueError, match="dout must have shape"):
        layers.affine_backward(np.ones((2, 3)), cache)


# -------------------------------------------------------------------------------------- relu
def test_relu_forward_matches_torch_and_backward_matches_numerical(rng):
    x = rng.standard_normal((5, 7))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the kink so centred differences are exact
    out, cache = layers.relu_forward(x)
    np.testing.assert_array_equal(out, torch.relu(torch.from_numpy(x)).numpy())
    dout = rng.standard_normal(x.shape)
    dx = layers.relu_backward(dout, cache)
    assert rel_error(dx, eval_numerical_gradient_array(lambda v: layers.relu_forward(v)[0], x, dout)) < 1e-9


def test_relu_backward_rejects_mismatched_dout():
    _, cache = layers.relu_forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match="dout"):
        layers.relu_backward(np.ones((3, 2)), cache)


# ------------------------------------------------------------------------------- softmax loss
def test_softmax_loss_matches_torch_cross_entropy_and_numerical_gradient(rng):
    x, y = rng.standard_normal((8, 5)), rng.integers(0, 5, 8)
    loss, dx = layers.softmax_loss(x, y)
    x_t = torch.from_numpy(x).requires_grad_(True)
    expected = torch.nn.functional.cross_entropy(x_t, torch.from_numpy(y))
    expected.backward()
    assert loss == pytest.approx(expected.item(), rel=1e-12)
    np.testing.assert_allclose(dx, x_t.grad.numpy(), rtol=1e-10, atol=1e-14)
    assert rel_error(dx, eval_numerical_gradient(lambda v: layers.softmax_loss(v, y)[0], x)) < 1e-7


def test_softmax_loss_of_equal_scores_is_log_num_classes_and_stable_for_huge_scores():
    assert layers.softmax_loss(np.zeros((3, 10)), np.array([0, 4, 9]))[0] == pytest.approx(math.log(10))
    loss, dx = layers.softmax_loss(np.array([[1e4, 0.0]]), np.array([1]))
    assert loss == pytest.approx(1e4) and np.isfinite(dx).all()


@pytest.mark.parametrize(
    "y, message",
    [(np.array([0, 5]), r"y must lie in \[0, 5\)"), (np.array([0.0, 1.0]), "integer class labels"), (np.array([0]), r"y must have shape \(2,\)")],
)
def test_softmax_loss_rejects_bad_labels(y, message):
    with pytest.raises(ValueError, match=message):
        layers.softmax_loss(np.zeros((2, 5)), y)


# ------------------------------------------------------------------------------------ dropout
def test_dropout_test_mode_is_the_identity_forward_and_backward(rng):
    x, dout = rng.standard_normal((20, 30)), rng.standard_normal((20, 30))
    out, cache = layers.dropout_forward(x, {"p": 0.3, "mode": "test"})
    np.testing.assert_array_equal(out, x)
    np.testing.assert_array_equal(layers.dropout_backward(dout, cache), dout)
    assert cache[1] is None


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_train_mode_preserves_the_mean_within_binomial_tolerance(p):
    n = 200_000
    x = np.ones(n)
    out, (_, mask) = layers.dropout_forward(x, {"p": p, "mode": "train", "seed": 7})
    # Each output is Bernoulli(p) / p: mean 1, std sqrt((1 - p) / p); the sample mean's std is that / sqrt(n).
    tolerance = 5 * math.sqrt((1 - p) / p) / math.sqrt(n)
    assert abs(out.mean() - 1.0) < tolerance
    kept = np.count_nonzero(out)
    assert abs(kept - n * p) < 5 * math.sqrt(n * p * (1 - p))
    assert set(np.unique(out)) == {0.0, 1 / p}
    np.testing.assert_array_equal(out, x * mask)


def test_dropout_mask_is_stored_and_used_by_backward(rng):
    x, dout = rng.standard_normal((6, 9)), rng.standard_normal((6, 9))
    out, cache = layers.dropout_forward(x, {"p": 0.6, "mode": "train", "seed": 3})
    mask = cache[1]
    assert mask.shape == x.shape and set(np.unique(mask)) <= {0.0, 1 / 0.6}
    np.testing.assert_array_equal(out, x * mask)
    np.testing.assert_array_equal(layers.dropout_backward(dout, cache), dout * mask)


def test_dropout_backward_matches_numerical_gradient_with_a_fixed_seed(rng):
    x, dout = rng.standard_normal((5, 8)), rng.standard_normal((5, 8))
    param = {"p": 0.4, "mode": "train", "seed": 11}
    dx = layers.dropout_backward(dout, layers.dropout_forward(x, param)[1])
    assert rel_error(dx, eval_numerical_gradient_array(lambda v: layers.dropout_forward(v, param)[0], x, dout)) < 1e-9


def test_dropout_seed_is_reproducible_and_keep_probability_one_is_the_identity(rng):
    x = rng.standard_normal((50, 50))
    a, _ = layers.dropout_forward(x, {"p": 0.5, "mode": "train", "seed": 1})
    b, _ = layers.dropout_forward(x, {"p": 0.5, "mode": "train", "seed": 1})
    c, _ = layers.dropout_forward(x, {"p": 0.5, "mode": "train", "seed": 2})
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(layers.dropout_forward(x, {"p": 1.0, "mode": "train"})[0], x)


def test_dropout_does_not_modify_its_input(rng):
    x = rng.standard_normal((4, 4))
    before = x.copy()
    layers.dropout_forward(x, {"p": 0.5, "mode": "train", "seed": 0})
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize(
    "param, message",
    [
        ({"p": 0.0, "mode": "train"}, r"dropout_param\['p'\] must lie in \(0, 1\]"),
        ({"p": 1.5, "mode": "train"}, r"dropout_param\['p'\]"),
        ({"p": -0.2, "mode": "train"}, r"dropout_param\['p'\]"),
        ({"p": float("nan"), "mode": "train"}, r"dropout_param\['p'\]"),
        ({"p": "0.5", "mode": "train"}, r"dropout_param\['p'\]"),
        ({"p": 0.5, "mode": "eval"}, r"dropout_param\['mode'\]"),
        ({"p": 0.5}, "needs the keys"),
        ({"p": 0.5, "mode": "train", "seed": -1}, r"dropout_param\['seed'\]"),
        ({"p": 0.5, "mode": "train", "keep": 0.5}, "unknown key"),
        ([0.5, "train"], "dropout_param must be a dict"),
    ],
)
def test_dropout_validates_its_parameters(param, message):
    with pytest.raises(ValueError, match=message):
        layers.dropout_forward(np.ones((2, 2)), param)
