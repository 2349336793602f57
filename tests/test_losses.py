"""Losses against independent NumPy/SciPy computations on fixed inputs."""

import math

import numpy as np
import pytest
from keras import ops
from scipy.signal import correlate2d

from ai4cellfate import losses

pytestmark = pytest.mark.backend


def np_(t):
    return np.asarray(ops.convert_to_numpy(t), dtype=np.float64)


# ---------------------------------------------------------------- MS-SSIM
def _ref_ssim_scale(a, b, size, sigma=1.0, c1=1e-4, c2=9e-4):
    size = max(1, min(size, a.shape[0], a.shape[1]))
    t = np.arange(size) - (size - 1) / 2
    g = np.exp(-(t**2) / (2 * sigma**2))
    k = np.outer(g, g)
    k /= k.sum()

    def blur(m):
        return correlate2d(m, k, mode="valid")

    mx, my = blur(a), blur(b)
    vx = blur(a * a) - mx**2
    vy = blur(b * b) - my**2
    cxy = blur(a * b) - mx * my
    lum = (2 * mx * my + c1) / (mx**2 + my**2 + c1)
    cs = (2 * cxy + c2) / (vx + vy + c2)
    return (lum * cs).mean(), cs.mean()


def _ref_pool(m):
    h, w = (m.shape[0] // 2) * 2, (m.shape[1] // 2) * 2
    m = m[:h, :w]
    return 0.25 * (m[0::2, 0::2] + m[1::2, 0::2] + m[0::2, 1::2] + m[1::2, 1::2])


def _ref_ms_ssim(a, b, form="product", size=5):
    w = np.array(losses.MS_SSIM_WEIGHTS)
    n = min(5, int(math.floor(math.log2(min(a.shape)))) + 1)
    w = w[:n] / w[:n].sum()
    terms = []
    for j in range(n):
        s, cs = _ref_ssim_scale(a, b, size)
        terms.append(s if j == n - 1 else cs)
        a, b = _ref_pool(a), _ref_pool(b)
    terms = np.array(terms)
    return float(np.prod(np.clip(terms, 1e-6, 1) ** w))


def _ref_authors_ms_ssim(a, b, size=3, sigma=1.0, c1=1e-4, c2=9e-4):
    """The authors' loss_functions.ms_ssim, written again with SciPy.

    Full SSIM map per scale from a zero-padded ('SAME') Gaussian blur, each
    pixel clipped to [0, 1], mean per scale, weighted sum with the raw weights.
    """
    from scipy.ndimage import correlate

    t = np.arange(size) - (size - 1) / 2
    g = np.exp(-0.5 * (t / sigma) ** 2)
    g /= g.sum()
    k = np.outer(g, g)

    def blur(m):
        return correlate(m, k, mode="constant", cval=0.0)

    total = 0.0
    for j, wj in enumerate(losses.MS_SSIM_WEIGHTS):
        mx, my = blur(a), blur(b)
        vx = blur(a * a) - mx**2
        vy = blur(b * b) - my**2
        cxy = blur(a * b) - mx * my
        ssim = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        total += wj * np.clip(ssim, 0, 1).mean()
        if j < len(losses.MS_SSIM_WEIGHTS) - 1:
            a, b = _ref_pool(a), _ref_pool(b)
    return total


@pytest.mark.parametrize("size", [3, 5])
@pytest.mark.parametrize("noise", [0.05, 0.3])
def test_ms_ssim_sum_form_is_the_authors(size, noise):
    rng = np.random.default_rng(2)
    x = rng.random((4, 20, 20)).astype("float32")
    y = np.clip(x + rng.normal(0, noise, x.shape), 0, 1).astype("float32")
    got = np_(losses.ms_ssim(x[..., None], y[..., None], form="sum", window_size=size))
    want = [_ref_authors_ms_ssim(x[i].astype(float), y[i].astype(float), size) for i in range(4)]
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)
    # Identical images score the sum of the raw weights (the authors do not renormalise).
    same = np_(losses.ms_ssim(x[..., None], x[..., None], form="sum", window_size=size))
    np.testing.assert_allclose(same, sum(losses.MS_SSIM_WEIGHTS), atol=1e-5)


@pytest.mark.parametrize("shape", [(20, 20), (16, 24), (7, 9)])
def test_ms_ssim_matches_numpy(shape):
    form = "product"
    rng = np.random.default_rng(1)
    x = rng.random((3,) + shape).astype("float32")
    y = np.clip(x + rng.normal(0, 0.2, x.shape), 0, 1).astype("float32")
    got = np_(losses.ms_ssim(x[..., None], y[..., None], form=form))
    want = [_ref_ms_ssim(x[i].astype(float), y[i].astype(float), form) for i in range(3)]
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)


def test_ms_ssim_scale_count_for_20px():
    # 20 -> 10 -> 5 -> 2 -> 1: five scales, the last one 1x1 (window shrunk).
    x = np.random.default_rng(0).random((1, 20, 20, 1)).astype("float32")
    assert np.isclose(np_(losses.ms_ssim(x, x))[0], 1.0, atol=1e-5)


@pytest.mark.parametrize("form", ["product", "sum"])
def test_ms_ssim_finite_on_degenerate_inputs(form):
    rng = np.random.default_rng(2)
    x = rng.random((2, 20, 20, 1)).astype("float32")
    cases = [
        (np.zeros_like(x), np.zeros_like(x)),  # constant, identical
        (np.full_like(x, 0.5), np.zeros_like(x)),  # constant, different
        (x, 1.0 - x),  # anti-correlated
        (x, np.zeros_like(x)),
    ]
    # The authors' weights (the "sum" form) add up to 1.0001.
    top = sum(losses.MS_SSIM_WEIGHTS) if form == "sum" else 1.0
    for a, b in cases:
        s = np_(losses.ms_ssim(a, b, form=form))
        assert np.all(np.isfinite(s)) and np.all(s >= 0) and np.all(s <= top + 1e-6)
    # identical constant images are perfectly similar
    assert np.allclose(np_(losses.ms_ssim(cases[0][0], cases[0][1], form=form)), top, atol=1e-5)
    # anti-correlated images score far below identical ones (the authors'
    # zero-padded coarse scales of 2 x 2 and 1 x 1 px keep the sum form higher)
    assert np.all(np_(losses.ms_ssim(x, 1.0 - x, form=form)) < (0.5 if form == "product" else 0.7))


def test_ms_ssim_gradient_finite_for_anticorrelated():
    import keras

    x = np.random.default_rng(3).random((2, 20, 20, 1)).astype("float32")
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        g = jax.grad(lambda y: losses.reconstruction_loss(x, y))(1.0 - x)
        g = np.asarray(g)
    elif backend == "torch":
        import torch

        y = torch.tensor(1.0 - x, requires_grad=True)
        losses.reconstruction_loss(torch.tensor(x), y).backward()
        g = y.grad.numpy()
    else:
        import tensorflow as tf

        y = tf.Variable(1.0 - x)
        with tf.GradientTape() as tape:
            loss = losses.reconstruction_loss(x, y)
        g = tape.gradient(loss, y).numpy()
    assert np.all(np.isfinite(g))


def test_reconstruction_loss_is_mean_of_one_minus_ms_ssim():
    rng = np.random.default_rng(4)
    x = rng.random((4, 20, 20, 1)).astype("float32")
    y = rng.random((4, 20, 20, 1)).astype("float32")
    want = np.mean([1 - _ref_ms_ssim(x[i, ..., 0], y[i, ..., 0]) for i in range(4)])
    assert np.isclose(float(np_(losses.reconstruction_loss(x, y))), want, rtol=1e-4)


def test_ms_ssim_rejects_bad_form_and_shape():
    x = np.zeros((1, 8, 8, 1), "float32")
    with pytest.raises(ValueError, match="form"):
        losses.ms_ssim(x, x, form="mean")
    with pytest.raises(ValueError, match="x must be a batch"):
        losses.ms_ssim(x[0], x[0])


# ------------------------------------------------------ supervised contrastive
def _ref_supcon(z, y, tau):
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    s = z @ z.T / tau
    n = len(z)
    out = []
    for i in range(n):
        others = [a for a in range(n) if a != i]
        pos = [p for p in others if y[p] == y[i]]
        if not pos:
            continue
        denom = np.sum(np.exp(s[i, others]))
        num = np.sum(np.exp(s[i, pos]))
        out.append(-np.log(num / denom))
    return float(np.mean(out)) if out else 0.0


@pytest.mark.parametrize("n_classes", [2, 3, 5])
@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_supcon_matches_numpy(n_classes, tau):
    rng = np.random.default_rng(n_classes)
    z = rng.normal(size=(12, 3)).astype("float32")
    y = np.arange(12) % n_classes
    y[-1] = 99 if n_classes == 5 else y[-1]  # an anchor without positives
    got = float(np_(losses.supervised_contrastive_loss(z, y, tau)))
    assert np.isclose(got, _ref_supcon(z.astype(float), y, tau), rtol=1e-4, atol=1e-5)


def test_supcon_no_positives_is_zero_and_bad_temperature():
    z = np.eye(3, dtype="float32")
    assert float(np_(losses.supervised_contrastive_loss(z, np.array([0, 1, 2])))) == 0.0
    with pytest.raises(ValueError, match="temperature"):
        losses.supervised_contrastive_loss(z, np.array([0, 0, 1]), 0.0)


# ----------------------------------------------------------------- covariance
def test_covariance_loss_matches_numpy():
    z = np.random.default_rng(5).normal(size=(30, 4)).astype("float32")
    c = np.cov(z.astype(float), rowvar=False)
    want = (c**2).sum() - (np.diag(c) ** 2).sum()
    assert np.isclose(float(np_(losses.covariance_loss(z))), want, rtol=1e-4)
    assert float(np_(losses.covariance_loss(z[:, :1]))) == 0.0


# ---------------------------------------------------------------- adversarial
def test_adversarial_and_discriminator_bce():
    p_fake = np.array([[0.2], [0.7], [0.5]], "float32")
    p_real = np.array([[0.9], [0.4], [0.6]], "float32")

    def bce(t, p):
        return float(np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p))))

    assert np.isclose(float(np_(losses.adversarial_loss(p_fake))), bce(0.9, p_fake), rtol=1e-5)
    want = 0.5 * bce(0.9, p_real) + 0.5 * bce(0.1, p_fake)
    assert np.isclose(float(np_(losses.discriminator_loss(p_real, p_fake))), want, rtol=1e-5)
    # saturated probabilities stay finite
    sat = np.array([[0.0], [1.0]], "float32")
    assert np.isfinite(float(np_(losses.discriminator_loss(sat, sat))))
