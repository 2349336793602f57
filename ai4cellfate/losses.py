"""The four AI4CellFate losses, written with ``keras.ops`` only.

Every function takes and returns backend tensors (or array-likes), so the same
code runs on TensorFlow, JAX and PyTorch. Method specification, section 3:

* reconstruction: ``1 - MS-SSIM(x, x_hat)`` (:func:`ms_ssim`,
  :func:`reconstruction_loss`);
* adversarial: binary cross-entropy of the discriminator on encoded latents,
  with smoothed targets (:func:`adversarial_loss`, :func:`discriminator_loss`);
* supervised contrastive (Khosla et al. 2020) with temperature
  (:func:`supervised_contrastive_loss`);
* covariance: squared off-diagonal batch covariance (:func:`covariance_loss`).
"""

from __future__ import annotations

import math

import functools

import keras
import numpy as np
from keras import ops

__all__ = [
    "MS_SSIM_WEIGHTS",
    "gaussian_window",
    "ms_ssim",
    "reconstruction_loss",
    "supervised_contrastive_loss",
    "covariance_loss",
    "binary_crossentropy",
    "adversarial_loss",
    "discriminator_loss",
]

#: Per-scale weights of MS-SSIM (Wang et al. 2003), coarsest scale last.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

_EPS_TERM = 1e-6  # floor of per-scale MS-SSIM terms before fractional powers


def _namespace(*tensors):
    """``keras.ops``, or its torch-native subset (``ai4cellfate._torch_ops``)
    when the backend is PyTorch and every input is already a torch tensor:
    there each ``keras.ops`` call's argument handling cost several times the
    operation (a training step's losses 3-4x slower)."""
    if keras.backend.backend() == "torch":
        import torch

        if all(isinstance(t, torch.Tensor) for t in tensors):
            from . import _torch_ops

            return _torch_ops
    return ops


def gaussian_window(size, sigma):
    """Normalised 1-D Gaussian window of ``size`` taps centred on the middle.

    Parameters
    ----------
    size : int
        Number of taps (>= 1).
    sigma : float
        Standard deviation in pixels (> 0).

    Returns
    -------
    window : ndarray of shape (size,), float64
        Non-negative weights summing to one.

    Examples
    --------
    >>> gaussian_window(3, 1.0).round(4).tolist()
    [0.2741, 0.4519, 0.2741]
    """
    size = int(size)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}.")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}.")
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(t**2) / (2.0 * sigma**2))
    return g / g.sum()


def _blur_matrix(n, g, padding="valid"):
    """Matrix of a 1-D convolution of length-``n`` signals with ``g``.

    ``"valid"``: ``(n - len(g) + 1, n)``; ``"same"``: ``(n, n)`` with zero
    padding placed as TensorFlow's ``SAME`` places it (``(len(g) - 1) // 2``
    before, the rest after). Cached: the array is shared, not to be written to.
    """
    return _blur_matrix_cached(int(n), tuple(float(v) for v in g), padding)


@functools.lru_cache(maxsize=64)
def _blur_matrix_cached(n, g, padding):
    size = len(g)
    if padding == "valid":
        m = np.zeros((n - size + 1, n), dtype="float32")
        for i in range(n - size + 1):
            m[i, i : i + size] = g
        return m
    before = (size - 1) // 2
    m = np.zeros((n, n), dtype="float32")
    for i in range(n):
        for k in range(size):
            j = i - before + k
            if 0 <= j < n:
                m[i, j] = g[k]
    return m


def _authors_window(size, sigma):
    """The authors' Gaussian taps: ``range(-size // 2 + 1, size // 2 + 1)``.

    Same as :func:`gaussian_window` for odd sizes; shifted by half a pixel
    for even ones, as in their ``gaussian_filter``.
    """
    t = np.arange(-size // 2 + 1, size // 2 + 1, dtype=np.float64)
    g = np.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def _window(kind, size, sigma):
    """The Gaussian taps of ``kind`` ``"centred"`` (:func:`gaussian_window`)
    or ``"authors"`` (:func:`_authors_window`)."""
    return (gaussian_window if kind == "centred" else _authors_window)(size, sigma)


def _blur_tensor(xp, n, window, padding, dtype):
    """:func:`_blur_matrix` of ``window = (kind, size, sigma)`` as a tensor.

    On PyTorch it comes from ``_torch_ops.constant``'s cache, so that a
    step compiled with ``torch.compile`` finds a ready tensor instead of
    tracing NumPy (which broke its graph).
    """
    key = ("blur", int(n), window, padding)

    def make():
        return _blur_matrix(n, _window(*window), padding)

    if xp is ops:
        return ops.convert_to_tensor(make(), dtype=dtype)
    return xp.constant(key, make, dtype)


def _ssim_maps(xp, x, y, window, c1, c2, padding):
    """Per-pixel SSIM and contrast-structure maps of one scale.

    The Gaussian window (``(kind, size, sigma)``, see :func:`_window`) is
    separable, so the blur of each map is two small matrix products (rows,
    then columns): on CPUs these run many times faster, forwards and
    backwards, than a depthwise convolution over maps with one or a few
    channels. The five maps are blurred together.
    """
    h, w = int(x.shape[1]), int(x.shape[2])
    channels = int(x.shape[3])
    rows = _blur_tensor(xp, h, window, padding, x.dtype)
    cols = _blur_tensor(xp, w, window, padding, x.dtype)
    maps = xp.concatenate([x, y, x * x, y * y, x * y], axis=-1)
    blurred = xp.einsum("jw,biwc->bijc", cols, xp.einsum("ih,bhwc->biwc", rows, maps))
    mu_x = blurred[..., :channels]
    mu_y = blurred[..., channels : 2 * channels]
    e_xx = blurred[..., 2 * channels : 3 * channels]
    e_yy = blurred[..., 3 * channels : 4 * channels]
    e_xy = blurred[..., 4 * channels :]
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x = e_xx - mu_xx
    var_y = e_yy - mu_yy
    cov = e_xy - mu_xy
    luminance = (2.0 * mu_xy + c1) / (mu_xx + mu_yy + c1)
    cs = (2.0 * cov + c2) / (var_x + var_y + c2)
    return luminance * cs, cs


def _ssim_terms(xp, x, y, window_size, sigma, c1, c2):
    """Mean SSIM and mean cs of one scale, per image ('valid' blur, window
    shrunk to the image)."""
    h, w = int(x.shape[1]), int(x.shape[2])
    size = max(1, min(int(window_size), h, w))
    ssim_map, cs = _ssim_maps(xp, x, y, ("centred", size, float(sigma)), c1, c2, "valid")
    return xp.mean(ssim_map, axis=(1, 2, 3)), xp.mean(cs, axis=(1, 2, 3))


def _check_images(x, name):
    if len(x.shape) != 4:
        raise ValueError(
            f"{name} must be a batch of images (batch, height, width, channels); "
            f"got shape {tuple(x.shape)}."
        )


def ms_ssim(
    x,
    x_hat,
    *,
    max_val=1.0,
    window_size=5,
    sigma=1.0,
    weights=MS_SSIM_WEIGHTS,
    form="product",
    k1=0.01,
    k2=0.03,
):
    """Multi-scale structural similarity of two image batches, per image.

    SSIM uses a Gaussian window of ``window_size`` taps (shrunk to the image
    where a scale is smaller than the window, so every scale down to 1x1 is
    defined), ``C1 = (k1 * max_val)^2`` and ``C2 = (k2 * max_val)^2``, and 2x2
    average pooling between scales (20 -> 10 -> 5 -> 2 -> 1 px for the
    preprint's crops). Images too small for all scales use as many scales as
    fit, with the weights renormalised.

    Parameters
    ----------
    x, x_hat : tensor of shape (batch, height, width, channels)
        Images with values in ``[0, max_val]``.
    max_val : float, default=1.0
        Dynamic range ``L`` of the images.
    window_size : int, default=5
        Gaussian window size (preprint: 5; the authors' code: 3).
    sigma : float, default=1.0
        Gaussian window standard deviation.
    weights : sequence of float, default=MS_SSIM_WEIGHTS
        Per-scale exponents (``"product"``) or weights (``"sum"``), finest
        scale first.
    form : {"product", "sum"}, default="product"
        ``"product"`` is the standard MS-SSIM of the preprint,
        ``prod_j cs_j^w_j * l_M^w_M`` (luminance only at the coarsest scale),
        with every term floored at 1e-6 so that anti-correlated images stay
        finite. ``"sum"`` is the authors' ``loss_functions.ms_ssim``:
        ``sum_j w_j * mean(clip(SSIM_j, 0, 1))`` with the full SSIM map
        (luminance times contrast-structure) at every scale, each pixel
        clipped to [0, 1], the Gaussian blur zero-padded ('SAME', the window
        never shrunk) and the weights as given (renormalised only when an
        image is too small for all scales).
    k1, k2 : float, default=0.01, 0.03
        SSIM stabilising constants.

    Returns
    -------
    score : tensor of shape (batch,)
        MS-SSIM of each image pair, 1 for identical images.

    Examples
    --------
    >>> import numpy as np
    >>> from keras import ops
    >>> x = np.random.default_rng(0).random((2, 20, 20, 1)).astype("float32")
    >>> np.allclose(ops.convert_to_numpy(ms_ssim(x, x)), 1.0, atol=1e-5)
    True
    """
    if form not in ("product", "sum"):
        raise ValueError(f"form must be 'product' or 'sum', got {form!r}.")
    xp = _namespace(x, x_hat)
    x = xp.convert_to_tensor(x)
    x_hat = xp.cast(xp.convert_to_tensor(x_hat), x.dtype)
    _check_images(x, "x")
    _check_images(x_hat, "x_hat")
    h, w = int(x.shape[1]), int(x.shape[2])
    n_scales = min(len(weights), int(math.floor(math.log2(min(h, w)))) + 1)
    # Python floats, not NumPy: a torch.compile'd step traces this function.
    wts = [float(v) for v in weights[:n_scales]]
    if form == "product" or n_scales < len(weights):
        total = sum(wts)
        wts = [v / total for v in wts]
    c1 = (k1 * max_val) ** 2
    c2 = (k2 * max_val) ** 2

    if form == "sum":
        window = ("authors", int(window_size), float(sigma))
        score = 0.0
        for j in range(n_scales):
            ssim_map, _ = _ssim_maps(xp, x, x_hat, window, c1, c2, "same")
            score = score + wts[j] * xp.mean(xp.clip(ssim_map, 0.0, 1.0), axis=(1, 2, 3))
            if j < n_scales - 1:
                x = xp.average_pool(x, 2, strides=2, padding="valid")
                x_hat = xp.average_pool(x_hat, 2, strides=2, padding="valid")
        return score

    terms = []
    for j in range(n_scales):
        ssim_j, cs_j = _ssim_terms(xp, x, x_hat, window_size, sigma, c1, c2)
        last = j == n_scales - 1
        terms.append(ssim_j if last else cs_j)
        if not last:
            x = xp.average_pool(x, 2, strides=2, padding="valid")
            x_hat = xp.average_pool(x_hat, 2, strides=2, padding="valid")

    log_score = 0.0
    for wj, t in zip(wts, terms):
        log_score = log_score + wj * xp.log(xp.clip(t, _EPS_TERM, 1.0))
    return xp.exp(log_score)


def reconstruction_loss(x, x_hat, **kwargs):
    """Reconstruction loss ``mean(1 - MS-SSIM(x, x_hat))`` over the batch.

    Parameters
    ----------
    x, x_hat : tensor of shape (batch, height, width, channels)
        Input images and their reconstructions, values in [0, 1].
    **kwargs
        Passed to :func:`ms_ssim` (``window_size``, ``sigma``, ``form``, ...).

    Returns
    -------
    loss : scalar tensor
        0 for perfect reconstructions.

    Examples
    --------
    >>> import numpy as np
    >>> from keras import ops
    >>> x = np.random.default_rng(0).random((2, 20, 20, 1)).astype("float32")
    >>> float(ops.convert_to_numpy(reconstruction_loss(x, x))) < 1e-5
    True
    """
    return _namespace(x, x_hat).mean(1.0 - ms_ssim(x, x_hat, **kwargs))


def supervised_contrastive_loss(z, labels, temperature=0.5):
    """Supervised contrastive loss (Khosla et al. 2020) on L2-normalised latents.

    ``L = mean_i -log( sum_{p in P(i)} exp(z_i.z_p / tau) /
    sum_{a in A(i)} exp(z_i.z_a / tau) )`` with ``P(i)`` the other samples of
    the anchor's class and ``A(i)`` all samples but the anchor. Anchors with
    no other sample of their class in the batch are left out of the mean.
    Works for any number of classes.

    Parameters
    ----------
    z : tensor of shape (batch, latent_dim)
        Latent vectors (normalised to unit length inside).
    labels : tensor of shape (batch,)
        Integer class labels.
    temperature : float, default=0.5
        Softmax temperature ``tau`` (> 0).

    Returns
    -------
    loss : scalar tensor
        0 when no anchor has a positive in the batch.

    Examples
    --------
    >>> import numpy as np
    >>> from keras import ops
    >>> z = np.array([[1.0, 0.0], [1.0, 0.1], [-1.0, 0.0], [-1.0, -0.1]], "float32")
    >>> good = supervised_contrastive_loss(z, np.array([0, 0, 1, 1]))
    >>> bad = supervised_contrastive_loss(z, np.array([0, 1, 0, 1]))
    >>> bool(ops.convert_to_numpy(good) < ops.convert_to_numpy(bad))
    True
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}.")
    xp = _namespace(z, labels)
    z = xp.convert_to_tensor(z)
    labels = xp.reshape(xp.convert_to_tensor(labels), (-1,))
    z = z / xp.sqrt(xp.sum(z * z, axis=1, keepdims=True) + 1e-12)
    sim = xp.matmul(z, xp.transpose(z)) / temperature
    n = xp.shape(z)[0]
    eye = xp.cast(xp.eye(n), "bool")
    same = xp.equal(xp.expand_dims(labels, 1), xp.expand_dims(labels, 0))
    positives = xp.logical_and(same, xp.logical_not(eye))
    neg_big = xp.cast(-1e9, sim.dtype)
    log_denom = xp.logsumexp(xp.where(eye, neg_big, sim), axis=1)
    log_num = xp.logsumexp(xp.where(positives, sim, neg_big), axis=1)
    has_pos = xp.cast(xp.any(positives, axis=1), sim.dtype)
    per_anchor = (log_denom - log_num) * has_pos
    return xp.sum(per_anchor) / xp.maximum(xp.sum(has_pos), 1.0)


def covariance_loss(z):
    """Sum of squared off-diagonal entries of the batch covariance of ``z``.

    The VICReg-style decorrelation term of the preprint: it pushes latent
    features to carry different information. Uses the unbiased covariance
    (divides by ``batch - 1``).

    Parameters
    ----------
    z : tensor of shape (batch, latent_dim)
        Latent vectors.

    Returns
    -------
    loss : scalar tensor
        0 for uncorrelated features (and always for ``latent_dim == 1``).

    Examples
    --------
    >>> import numpy as np
    >>> from keras import ops
    >>> z = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], "float32")
    >>> float(ops.convert_to_numpy(covariance_loss(z)))
    2.0
    """
    xp = _namespace(z)
    z = xp.convert_to_tensor(z)
    n = xp.cast(xp.shape(z)[0], z.dtype)
    zc = z - xp.mean(z, axis=0, keepdims=True)
    cov = xp.matmul(xp.transpose(zc), zc) / xp.maximum(n - 1.0, 1.0)
    return xp.sum(cov * cov) - xp.sum(xp.square(xp.diagonal(cov)))


def binary_crossentropy(target, prob, epsilon=1e-7):
    """Mean binary cross-entropy of probabilities ``prob`` against ``target``.

    Parameters
    ----------
    target : float or tensor
        Target probability (a smoothed label such as 0.9 is allowed).
    prob : tensor
        Predicted probabilities, clipped to ``[epsilon, 1 - epsilon]``.
    epsilon : float, default=1e-7
        Clipping constant.

    Returns
    -------
    loss : scalar tensor

    Examples
    --------
    >>> import numpy as np
    >>> from keras import ops
    >>> round(float(ops.convert_to_numpy(binary_crossentropy(1.0, np.array([0.5])))), 4)
    0.6931
    """
    xp = _namespace(prob)
    prob = xp.clip(xp.convert_to_tensor(prob), epsilon, 1.0 - epsilon)
    target = xp.cast(target, prob.dtype)
    return xp.mean(-(target * xp.log(prob) + (1.0 - target) * xp.log(1.0 - prob)))


def adversarial_loss(d_fake, real_label=0.9):
    """Encoder-side adversarial loss: make encoded latents look like the prior.

    Parameters
    ----------
    d_fake : tensor
        Discriminator probabilities on encoded latents ``D(z)``.
    real_label : float, default=0.9
        Smoothed "real" target (the authors' code; 1.0 disables smoothing).

    Returns
    -------
    loss : scalar tensor
        ``BCE(D(z), real_label)``.

    Examples
    --------
    >>> import numpy as np
    >>> from keras import ops
    >>> round(float(ops.convert_to_numpy(adversarial_loss(np.array([0.9])))), 4)
    0.3251
    """
    return binary_crossentropy(real_label, d_fake)


def discriminator_loss(d_real, d_fake, real_label=0.9, fake_label=0.1):
    """Discriminator loss on prior samples (real) and encoded latents (fake).

    Parameters
    ----------
    d_real : tensor
        Discriminator probabilities on samples of the N(0, I) prior.
    d_fake : tensor
        Discriminator probabilities on encoded latents.
    real_label, fake_label : float, default=0.9, 0.1
        Smoothed targets.

    Returns
    -------
    loss : scalar tensor
        ``0.5 * BCE(D(z_prior), real_label) + 0.5 * BCE(D(z), fake_label)``.

    Examples
    --------
    >>> import numpy as np
    >>> from keras import ops
    >>> round(float(ops.convert_to_numpy(
    ...     discriminator_loss(np.array([0.9]), np.array([0.1])))), 4)
    0.3251
    """
    return 0.5 * binary_crossentropy(real_label, d_real) + 0.5 * binary_crossentropy(
        fake_label, d_fake
    )
