"""Batch normalisation of channels-last images with a hand-written
gradient for the JAX backend.

XLA on CPUs sums a ``(batch, height, width, channels)`` array over all but
its few channels slowly: the channels are the innermost, contiguous axis, so
each of the 2 or 8 sums reads every 2nd or 8th number (30-45 us for a
batch of 30 20 x 20 x 2 images on two cores, against a few us for the same
numbers summed as a wide matrix). A batch norm and autodiff's gradient of
it make five such sums per layer and training step. The functions here
compute the same values, and their sums run over the ``(batch * height,
width * channels)`` view of the array first (a free reshape), then over the
``width`` groups of the channels.

They are used by :mod:`ai4cellfate.networks` on the JAX backend only
(``networks._phase_convs()``); values equal Keras' up to the order of the
float sums. (The convolutions' bias gradients are such sums too; summed the
same way they took 0.99-1.02 of the time of a step with the batch norms
alone, so they stay autodiff's.)
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

__all__ = ["batch_norm_train", "channel_sum"]


def channel_sum(x):
    """Sum of a channels-last ``(batch, height, width, channels)`` array
    over all but its last axis, through the wide ``(batch * height, width *
    channels)`` view.

    Parameters
    ----------
    x : jax.Array
        Rank 4, static shape.

    Returns
    -------
    jax.Array
        Shape ``(channels,)``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(24, dtype="float32").reshape(1, 2, 3, 4)
    >>> np.asarray(channel_sum(x)).tolist()
    [60.0, 66.0, 72.0, 78.0]
    """
    n, h, w, c = x.shape
    rows = jnp.sum(jnp.reshape(x, (n * h, w * c)), axis=0)
    return jnp.sum(jnp.reshape(rows, (w, c)), axis=0)


def _moments(x):
    count = x.shape[0] * x.shape[1] * x.shape[2]
    mean = channel_sum(x) / count
    variance = channel_sum(jnp.square(x - mean)) / count
    return mean, variance


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def batch_norm_train(x, gamma, beta, epsilon):
    """Training-mode batch normalisation of a channels-last image batch, as
    Keras' ``BatchNormalization`` computes it on JAX.

    Parameters
    ----------
    x : jax.Array
        ``(batch, height, width, channels)``.
    gamma, beta : jax.Array
        ``(channels,)`` scale and offset.
    epsilon : float
        Added to the variance.

    Returns
    -------
    y : jax.Array
        ``x * inv + (beta - mean * inv)`` with ``inv = gamma / sqrt(variance
        + epsilon)`` (Keras' formula, element for element).
    mean, variance : jax.Array
        ``(channels,)`` batch statistics (biased variance), for the moving
        averages; gradients flow through them too.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(4, 2, 2, 3)).astype("float32")
    >>> y, mean, var = batch_norm_train(x, np.ones(3, "float32"), np.zeros(3, "float32"), 1e-3)
    >>> bool(np.allclose(np.asarray(y).mean(axis=(0, 1, 2)), 0, atol=1e-6))
    True
    """
    return _batch_norm_forward(x, gamma, beta, epsilon)


def _batch_norm_forward(x, gamma, beta, epsilon):
    mean, variance = _moments(x)
    inv = jax.lax.rsqrt(variance + epsilon) * gamma
    return x * inv + (-mean * inv + beta), mean, variance


def _batch_norm_fwd(x, gamma, beta, epsilon):
    y, mean, variance = _batch_norm_forward(x, gamma, beta, epsilon)
    return (y, mean, variance), (x, gamma, mean, variance)


def _batch_norm_bwd(epsilon, saved, cotangents):
    x, gamma, mean, variance = saved
    dy, dmean, dvariance = cotangents
    count = x.shape[0] * x.shape[1] * x.shape[2]
    r = jax.lax.rsqrt(variance + epsilon)
    centred = x - mean
    xhat = centred * r
    dbeta = channel_sum(dy)
    dgamma = channel_sum(dy * xhat)
    # d/dx of sum(dy * y): the usual batch-norm backward; then the batch
    # statistics' own cotangents (d mean/dx = 1/n, d var/dx = 2 (x - mean)/n).
    dx = (gamma * r) * (dy - dbeta / count - xhat * (dgamma / count))
    dx = dx + dmean / count + centred * (2.0 * dvariance / count)
    return dx, dgamma, dbeta


batch_norm_train.defvjp(_batch_norm_fwd, _batch_norm_bwd)
