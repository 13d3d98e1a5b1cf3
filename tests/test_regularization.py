"""Regularization: L2 penalty, augmentations (NumPy and torch agree), ensembles, parameter averaging."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from cs231n_utils import regularization as reg
from cs231n_utils.gradcheck import eval_numerical_gradient, rel_error


@pytest.fixture
def images() -> np.ndarray:
    """Six 2-channel 5x7 images whose pixels are all distinct, so every output pixel says where it came from."""
    return (np.arange(6 * 2 * 5 * 7, dtype=np.float64).reshape(6, 2, 5, 7) + 1) / 500


# --------------------------------------------------------------------------------------- L2
def test_l2_penalty_matches_the_frobenius_norm_and_numerical_gradient():
    rng = np.random.default_rng(0)
    weights = {"W1": rng.standard_normal((3, 4)), "W2": rng.standard_normal(5)}
    penalty, grads = reg.l2_penalty(weights, 0.3)
    assert penalty == pytest.approx(0.15 * (np.linalg.norm(weights["W1"], "fro") ** 2 + np.linalg.norm(weights["W2"]) ** 2))
    for name, w in weights.items():
        numerical = eval_numerical_gradient(lambda v, name=name: reg.l2_penalty({**weights, name: v}, 0.3)[0], w)
        assert rel_error(grads[name], numerical) < 1e-8
    assert reg.l2_penalty(weights, 0.0)[0] == 0.0


def test_l2_penalty_validates_its_inputs():
    with pytest.raises(ValueError, match="reg must be >= 0"):
        reg.l2_penalty({"W": np.ones(2)}, -0.1)
    with pytest.raises(ValueError, match=r"weights\['W'\] contains NaN"):
        reg.l2_penalty({"W": np.array([np.nan])}, 0.1)
    with pytest.raises(ValueError, match="weights must be a mapping"):
        reg.l2_penalty([np.ones(2)], 0.1)


# ------------------------------------------------------------------------------ augmentation
AUGMENTATIONS = {
    "random_crop": lambda x, rng: reg.random_crop(x, 2, rng=rng),
    "horizontal_flip": lambda x, rng: reg.horizontal_flip(x, 0.5, rng=rng),
    "color_jitter": lambda x, rng: reg.color_jitter(x, 0.4, 0.4, rng=rng, clip=(0.0, 1.0)),
    "cutout": lambda x, rng: reg.cutout(x, 3, rng=rng),
}


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_augmentations_keep_shape_dtype_are_seeded_and_numpy_equals_torch(images, name):
    augment = AUGMENTATIONS[name]
    for dtype in (np.float64, np.float32):
        x = images.astype(dtype)
        out = augment(x, 0)
        assert out.shape == x.shape and out.dtype == x.dtype
        np.testing.assert_array_equal(out, augment(x, 0))
        np.testing.assert_array_equal(out, augment(x, np.random.default_rng(0)))
        assert not np.array_equal(out, augment(x, 1))
        out_t = augment(torch.from_numpy(x), 0)
        assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.from_numpy(x).dtype
        np.testing.assert_allclose(out_t.numpy(), out, rtol=1e-6 if dtype == np.float32 else 1e-12)
    np.testing.assert_array_equal(images, (np.arange(images.size).reshape(images.shape) + 1) / 500)  # input untouched


def test_random_crop_is_a_window_of_the_padded_image(images):
    padding = 2
    out = reg.random_crop(images, padding, rng=3)
    padded = np.pad(images, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = [(a, b) for a in range(2 * padding + 1) for b in range(2 * padding + 1)]
    for n in range(len(images)):
        matches = [ab for ab in windows if np.array_equal(out[n], padded[n, :, ab[0] : ab[0] + 5, ab[1] : ab[1] + 7])]
        assert len(matches) == 1
    np.testing.assert_array_equal(reg.random_crop(images, 0, rng=0), images)


def test_random_crop_offsets_cover_all_shifts():
    x = np.zeros((400, 1, 1, 1))
    x[:, 0, 0, 0] = 1.0
    out = reg.random_crop(x, 1, rng=0)  # a 1x1 image padded to 3x3: the pixel survives only for offset (1, 1)
    assert abs(out.mean() - 1 / 9) < 5 * np.sqrt((1 / 9) * (8 / 9) / 400)


def test_horizontal_flip_flips_each_image_or_leaves_it(images):
    np.testing.assert_array_equal(reg.horizontal_flip(images, p=0.0, rng=0), images)
    np.testing.assert_array_equal(reg.horizontal_flip(images, p=1.0, rng=0), images[..., ::-1])
    many = np.repeat(images[:1], 2000, axis=0)
    out = reg.horizontal_flip(many, p=0.5, rng=0)
    flipped = np.all(out == many[..., ::-1], axis=(1, 2, 3))
    kept = np.all(out == many, axis=(1, 2, 3))
    assert np.all(flipped ^ kept)
    assert abs(flipped.mean() - 0.5) < 5 * np.sqrt(0.25 / 2000)


def test_color_jitter_identity_mean_preservation_and_range(images):
    np.testing.assert_allclose(reg.color_jitter(images, 0.0, 0.0, rng=0), images, rtol=1e-12)
    contrast_only = reg.color_jitter(images, 0.0, 0.5, rng=0)
    np.testing.assert_allclose(contrast_only.mean(axis=(1, 2, 3)), images.mean(axis=(1, 2, 3)), rtol=1e-12)
    brightness_only = reg.color_jitter(images, 0.5, 0.0, rng=0)
    ratio = brightness_only / images
    assert np.allclose(ratio, ratio[:, :1, :1, :1]) and np.all((ratio >= 0.5) & (ratio <= 1.5))
    clipped = reg.color_jitter(images * 2, 0.9, 0.9, rng=0, clip=(0.0, 1.0))
    assert clipped.min() >= 0.0 and clipped.max() <= 1.0


def test_cutout_zeroes_one_square_clipped_at_the_border():
    x = np.ones((300, 3, 8, 8))
    out = reg.cutout(x, 4, rng=0, fill=0.0)
    holes = out == 0
    assert np.all(holes == holes[:, :1])  # same square in every channel
    for hole in holes[:, 0]:
        rows, cols = np.flatnonzero(hole.any(axis=1)), np.flatnonzero(hole.any(axis=0))
        assert 1 <= len(rows) <= 4 and 1 <= len(cols) <= 4
        assert hole.sum() == len(rows) * len(cols)  # a rectangle
        assert np.all(np.diff(rows) == 1) and np.all(np.diff(cols) == 1)
    # Centres uniform over the 8x8 pixels with s = 4: the square covers rows r-2..r+1 clipped to [0, 8).
    expected_area = np.mean([min(r + 2, 8) - max(r - 2, 0) for r in range(8)]) ** 2
    assert abs(holes[:, 0].sum(axis=(1, 2)).mean() - expected_area) < 0.8


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda x: reg.random_crop(x, -1), "padding must be an integer >= 0"),
        (lambda x: reg.random_crop(x[0], 1), r"shape \(N, C, H, W\)"),
        (lambda x: reg.horizontal_flip(x, 1.5), "p must be a probability"),
        (lambda x: reg.color_jitter(x, brightness=1.0), "brightness"),
        (lambda x: reg.color_jitter(x, clip=(1.0, 0.0)), "clip"),
        (lambda x: reg.cutout(x, 0), "size must be an integer >= 1"),
        (lambda x: reg.cutout(x.astype(int), 2), "floating-point"),
        (lambda x: reg.cutout(np.full_like(x, np.nan), 2), "x contains NaN"),
        (lambda x: reg.random_crop(x, 1, rng="seed"), "rng must be"),
        (lambda x: reg.random_crop(list(x), 1), "numpy array or a torch tensor"),
    ],
)
def test_augmentations_validate_their_inputs(images, call, message):
    with pytest.raises(ValueError, match=message):
        call(images)


# ------------------------------------------------------------------------------------- mixup
def test_mixup_blends_each_example_with_its_permuted_partner():
    n = 8
    x, y = np.eye(n), np.arange(n) % 3
    batch = reg.mixup(x, y, alpha=0.4, rng=0)
    assert 0 < batch.lam < 1
    perm = np.argmax(batch.inputs - batch.lam * x, axis=1)  # row i is lam e_i + (1 - lam) e_perm(i)
    assert sorted(perm) == list(range(n))
    np.testing.assert_allclose(batch.inputs, batch.lam * x + (1 - batch.lam) * x[perm])
    np.testing.assert_array_equal(batch.labels_a, y)
    np.testing.assert_array_equal(batch.labels_b, y[perm])
    soft = batch.soft_labels(3)
    expected = np.zeros((n, 3))
    for i in range(n):
        expected[i, y[i]] += batch.lam
        expected[i, y[perm[i]]] += 1 - batch.lam
    np.testing.assert_allclose(soft, expected)


def test_mixup_coefficient_follows_a_beta_distribution():
    rng = np.random.default_rng(0)
    lams = [reg.mixup(np.zeros((4, 2)), np.zeros(4, dtype=int), alpha=0.3, rng=rng).lam for _ in range(400)]
    assert stats.kstest(lams, stats.beta(0.3, 0.3).cdf).pvalue > 1e-3


def test_mixup_numpy_equals_torch_and_soft_labels_match(images):
    y = np.array([0, 1, 2, 0, 1, 2])
    a = reg.mixup(images, y, alpha=1.0, rng=5)
    b = reg.mixup(torch.from_numpy(images), torch.from_numpy(y), alpha=1.0, rng=5)
    assert a.lam == b.lam
    np.testing.assert_allclose(b.inputs.numpy(), a.inputs, rtol=1e-12)
    np.testing.assert_array_equal(b.labels_b.numpy(), a.labels_b)
    np.testing.assert_allclose(b.soft_labels(3).numpy(), a.soft_labels(3), rtol=1e-12)


def test_mixup_validates_its_inputs(images):
    with pytest.raises(ValueError, match="alpha must be > 0"):
        reg.mixup(images, np.zeros(6, dtype=int), alpha=0.0)
    with pytest.raises(ValueError, match=r"y must have shape \(6,\)"):
        reg.mixup(images, np.zeros(5, dtype=int))
    with pytest.raises(ValueError, match="integer class labels"):
        reg.mixup(images, np.zeros(6))


# ---------------------------------------------------------------------------------- ensembles
def test_ensemble_averages_probabilities_not_scores():
    scores = [np.array([[2.0, 0.0], [0.0, 0.0]]), np.array([[0.0, 4.0], [1.0, -1.0]])]
    members = [lambda X, s=s: s for s in scores]
    probs = reg.ensemble_probabilities(members, None)

    def manual_softmax(s):
        e = np.exp(s)
        return e / e.sum(axis=1, keepdims=True)

    np.testing.assert_allclose(probs, (manual_softmax(scores[0]) + manual_softmax(scores[1])) / 2)
    assert not np.allclose(probs, manual_softmax((scores[0] + scores[1]) / 2))


def test_ensemble_of_torch_modules_runs_in_eval_mode_and_restores_the_mode():
    torch.manual_seed(0)
    modules = [torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.5), torch.nn.Linear(4, 2)) for _ in range(3)]
    modules[1].eval()
    x = torch.randn(5, 3)
    probs = reg.ensemble_probabilities(modules, x)
    with torch.no_grad():
        expected = sum(torch.softmax(m.eval()(x), dim=1) for m in modules) / 3
    torch.testing.assert_close(probs, expected)
    assert not probs.requires_grad
    modules[0].train()
    reg.ensemble_probabilities(modules, x)
    assert modules[0].training and not modules[1].training


def test_ensemble_validates_its_members():
    with pytest.raises(ValueError, match="at least one model"):
        reg.ensemble_probabilities([], np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"models\[1\] gives scores of shape"):
        reg.ensemble_probabilities([lambda X: np.zeros((2, 3)), lambda X: np.zeros((2, 4))], None)


# --------------------------------------------------------------------------- Polyak and EMA
def _parameter_sequence(steps: int = 6) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [{"w": rng.standard_normal((2, 3)), "b": rng.standard_normal(3)} for _ in range(steps)]


def test_ema_matches_its_closed_form():
    beta, thetas = 0.8, _parameter_sequence()
    averager = reg.ParameterAverager(decay=beta)
    for theta in thetas:
        averager.update(theta)
    t = len(thetas) - 1
    for name in ("w", "b"):
        closed_form = beta**t * thetas[0][name] + (1 - beta) * sum(beta ** (t - k) * thetas[k][name] for k in range(1, t + 1))
        np.testing.assert_allclose(averager.averaged[name], closed_form, rtol=1e-12)
    assert averager.num_averaged == len(thetas)


def test_polyak_average_is_the_running_mean():
    thetas = _parameter_sequence()
    averager = reg.ParameterAverager()
    for theta in thetas:
        averager.update(theta)
    np.testing.assert_allclose(averager.averaged["w"], np.mean([th["w"] for th in thetas], axis=0), rtol=1e-12)


@pytest.mark.parametrize("decay", [None, 0.7])
def test_torch_averaged_model_agrees_with_the_numpy_averager(decay):
    thetas = _parameter_sequence()
    module = torch.nn.Linear(2, 3).double()
    averaged = reg.torch_averaged_model(module, decay=decay)
    averager = reg.ParameterAverager(decay=decay)
    for theta in thetas:
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(theta["w"].T))
            module.bias.copy_(torch.from_numpy(theta["b"]))
        averaged.update_parameters(module)
        averager.update(theta)
    np.testing.assert_allclose(averaged.module.weight.detach().numpy(), averager.averaged["w"].T, rtol=1e-12)
    np.testing.assert_allclose(averaged.module.bias.detach().numpy(), averager.averaged["b"], rtol=1e-12)


def test_averagers_validate_their_inputs():
    with pytest.raises(ValueError, match="decay must lie in"):
        reg.ParameterAverager(decay=1.0)
    averager = reg.ParameterAverager(decay=0.5)
    with pytest.raises(ValueError, match="call update"):
        _ = averager.averaged
    averager.update({"w": np.ones(2)})
    with pytest.raises(ValueError, match="params has keys"):
        averager.update({"v": np.ones(2)})
    with pytest.raises(ValueError, match=r"params\['w'\] has shape"):
        averager.update({"w": np.ones(3)})
    with pytest.raises(ValueError, match="module must be"):
        reg.torch_averaged_model(object())
    with pytest.raises(ValueError, match="decay"):
        reg.torch_averaged_model(torch.nn.Linear(1, 1), decay=-0.1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_augmentations_on_cuda_tensors_match_numpy(images, name):
    out = AUGMENTATIONS[name](torch.from_numpy(images).cuda(), 0)
    assert out.device.type == "cuda"
    np.testing.assert_allclose(out.cpu().numpy(), AUGMENTATIONS[name](images, 0), rtol=1e-12)
    batch = reg.mixup(torch.from_numpy(images).cuda(), torch.arange(6).cuda(), alpha=0.5, rng=0)
    np.testing.assert_allclose(batch.inputs.cpu().numpy(), reg.mixup(images, np.arange(6), alpha=0.5, rng=0).inputs, rtol=1e-12)


def test_mixup_rejects_labels_of_another_kind(images):
    with pytest.raises(ValueError, match="y must be a torch tensor when x is one"):
        reg.mixup(torch.from_numpy(images), np.arange(6))
    with pytest.raises(ValueError, match="integer class labels"):
        reg.mixup(torch.from_numpy(images), torch.zeros(6))
