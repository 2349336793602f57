"""PyTorch-native forward passes of the networks' layers (train step on torch).

A training step of the preprint's networks on a 2-core CPU spends most of its
time in ``keras.ops`` argument handling (dtype standardisation and tensor
conversion of every operand, about 30 us an op), not in arithmetic: a
spectrally normalised convolution, whose power iteration is a dozen small ops,
cost about 0.6 ms a call. Each function here computes what the layer's
``call`` computes, with ``torch`` operations on the layer's own variables:
the same values up to float rounding, the same state updates (batch
statistics, power-iteration vectors, seed-generator states) and the same
random draws (Keras' PyTorch recipe, seeded from the layer's
:class:`keras.random.SeedGenerator`). :func:`kernel_for` picks one for a
layer whose configuration it covers and returns None otherwise, and the layer
is then called the ordinary way.
"""

from __future__ import annotations

import keras
import torch
import torch.nn.functional as F
from keras import layers

from .._random import CounterDropout, CounterGaussianNoise, torch_dropout, torch_generator
from ..networks import BatchNormalization as _BatchNormalization
from ..networks import SpectralConv2D, SpectralDense

__all__ = ["kernel_for"]

_ACTIVATIONS = {
    keras.activations.linear: None,
    keras.activations.relu: torch.relu,
    keras.activations.sigmoid: torch.sigmoid,
    keras.activations.swish: F.silu,
    keras.activations.silu: F.silu,
}


def _float32(layer):
    return keras.backend.standardize_dtype(layer.compute_dtype) == "float32"


def _activation(layer):
    """The torch function of ``layer.activation``; KeyError when unknown."""
    if layer.activation is None:
        return None
    return _ACTIVATIONS[layer.activation]


def _apply(act, y):
    return y if act is None else act(y)


# -- random draws, from the layer's SeedGenerator ----------------------------
def _gaussian_noise(layer, x, training):
    """Keras' PyTorch draw (``torch.normal`` with a seeded generator)."""
    if not (training and layer.stddev > 0):
        return x
    noise = torch.normal(0.0, float(layer.stddev), size=tuple(x.shape),
                         generator=torch_generator(layer.seed_generator, x.device),
                         dtype=x.dtype, device=x.device)
    return x + noise


def _dropout(layer, x, training):
    """``CounterDropout.call``: :func:`ai4cellfate._random.torch_dropout`."""
    if not (training and 0 < layer.rate < 1):
        return x
    return torch_dropout(x, layer.rate, layer.seed_generator)


# -- spectral normalisation and convolutions ---------------------------------
def _normalized_kernel(layer, training):
    """``layer._normalized_kernel(training)`` in torch: one power iteration."""
    kernel = layer.kernel.value
    w = kernel.reshape(-1, kernel.shape[-1])
    u = layer.sn_u.value
    with torch.no_grad():
        v = u @ w.t()
        v = v / torch.sqrt(torch.sum(v * v) + 1e-12)
        u_new = v @ w
        u_new = u_new / torch.sqrt(torch.sum(u_new * u_new) + 1e-12)
        if training:
            u.copy_(u_new)
    sigma = torch.sum((v @ w) * u_new)
    return kernel / sigma


def _same_padding(length, k, stride, dilation):
    effective = (k - 1) * dilation + 1
    if stride == 1:
        total = effective - 1
    else:
        total = max(0, ((length + stride - 1) // stride - 1) * stride + effective - length)
    return total // 2, total - total // 2


def _conv_nhwc(x, kernel, strides, padding, dilation, bias=None):
    """``ops.conv`` of a channels-last image with an HWIO kernel (plus
    ``bias``)."""
    xs = x.permute(0, 3, 1, 2)
    w = kernel.permute(3, 2, 0, 1)
    pad = 0
    if padding == "same":
        pads = [_same_padding(int(xs.shape[2 + i]), int(w.shape[2 + i]), strides[i], dilation[i])
                for i in range(2)]
        if all(a == b for a, b in pads):
            pad = [a for a, _ in pads]
        else:
            xs = F.pad(xs, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
    y = F.conv2d(xs, w, bias, stride=strides, padding=pad, dilation=dilation)
    return y.permute(0, 2, 3, 1)


def _spectral_conv(layer, x, training):
    kernel = _normalized_kernel(layer, bool(training))
    act = _activation(layer)
    strides = tuple(layer.strides)
    bias = layer.bias.value if layer.use_bias else None
    one_by_one = tuple(layer.kernel_size) == (1, 1)
    if layer.upsample == 2 and one_by_one:
        y = _apply(act, _conv_nhwc(x, kernel, (1, 1), "valid", (1, 1), bias))
        return y.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
    if layer.upsample == 2:
        x = x.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
    elif one_by_one and strides != (1, 1):
        # as SpectralConv2D._conv: slice, then a stride-1 convolution
        x = x[:, :: strides[0], :: strides[1], :]
        strides = (1, 1)
    y = _conv_nhwc(x, kernel, strides, layer.padding, tuple(layer.dilation_rate), bias)
    return _apply(act, y)


def _dense_kernel(layer, kernel, x):
    y = x @ kernel
    if layer.use_bias:
        y = y + layer.bias.value
    return _apply(_activation(layer), y)


def _spectral_dense(layer, x, training):
    return _dense_kernel(layer, _normalized_kernel(layer, bool(training)), x)


def _dense(layer, x, training):
    return _dense_kernel(layer, layer.kernel.value, x)


# -- normalisation, activations, merging and reshaping ------------------------
def _batch_norm(layer, x, training):
    """One fused ``F.batch_norm`` (one autograd node instead of about ten).

    In training its batch mean and (unbiased) variance come back through
    scratch running-statistics buffers with momentum 1, and the moving
    statistics move as Keras moves them, with the biased variance.
    """
    channels = int(x.shape[-1])
    if x.ndim > 2:
        xs = x.permute(0, x.ndim - 1, *range(1, x.ndim - 1))
        if channels < 4:  # a channels-last view is slow for 1-3 channels
            xs = xs.contiguous()
    else:
        xs = x
    gamma = layer.gamma.value if layer.scale else None
    beta = layer.beta.value if layer.center else None
    moving_mean, moving_variance = layer.moving_mean.value, layer.moving_variance.value
    if training and layer.trainable:
        mean = torch.zeros_like(moving_mean)
        variance = torch.zeros_like(moving_variance)
        y = F.batch_norm(xs, mean, variance, gamma, beta, training=True, momentum=1.0,
                         eps=layer.epsilon)
        n = x.numel() // channels
        m = layer.momentum
        with torch.no_grad():
            biased = variance * ((n - 1) / n)  # as Keras' moments
            moving_mean.copy_(moving_mean * m + mean * (1.0 - m))
            moving_variance.copy_(moving_variance * m + biased * (1.0 - m))
    else:
        y = F.batch_norm(xs, moving_mean, moving_variance, gamma, beta, training=False,
                         eps=layer.epsilon)
    return y.permute(0, *range(2, x.ndim), 1) if x.ndim > 2 else y


def _relu(layer, x, training):
    return torch.relu(x)


def _leaky_relu(layer, x, training):
    return F.leaky_relu(x, float(layer.negative_slope))


def _activation_layer(layer, x, training):
    return _apply(_activation(layer), x)


def _add(layer, xs, training):
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


def _flatten(layer, x, training):
    return x.reshape(x.shape[0], -1)


def _reshape(layer, x, training):
    return x.reshape((x.shape[0],) + tuple(layer.target_shape))


def _covers(layer):
    """The kernel for ``layer``'s class and configuration, or None."""
    if not _float32(layer):
        return None
    kind = type(layer)
    try:
        if kind is SpectralConv2D:
            _activation(layer)
            ok = (layer.data_format == "channels_last" and layer.groups == 1
                  and layer.rank == 2 and layer.padding in ("same", "valid"))
            return _spectral_conv if ok else None
        if kind is SpectralDense:
            _activation(layer)
            return _spectral_dense if not layer.lora_enabled else None
        if kind is layers.Dense:
            _activation(layer)
            ok = not layer.lora_enabled and layer.quantization_mode is None
            return _dense if ok else None
        if kind is layers.Activation:
            _activation(layer)
            return _activation_layer
    except KeyError:  # an activation without a torch counterpart here
        return None
    if kind is layers.BatchNormalization or kind is _BatchNormalization:
        axes = list(layer._reduction_axes)
        ok = (axes == list(range(len(axes))) and not layer.renorm
              and not layer.synchronized)
        return _batch_norm if ok else None
    if kind is layers.ReLU:
        ok = layer.max_value is None and layer.negative_slope == 0 and layer.threshold == 0
        return _relu if ok else None
    if kind is layers.LeakyReLU:
        return _leaky_relu
    if kind is layers.Add:
        return _add
    if kind is layers.Flatten:
        return _flatten if layer.data_format == "channels_last" else None
    if kind is layers.Reshape:
        return _reshape if -1 not in tuple(layer.target_shape) else None
    if kind in (CounterGaussianNoise, layers.GaussianNoise):
        return _gaussian_noise
    if kind is CounterDropout:
        return _dropout if layer.noise_shape is None else None
    return None


def kernel_for(layer):
    """A torch function ``f(layer, inputs, training)`` computing
    ``layer.call(inputs, training=training)``, or None.

    Parameters
    ----------
    layer : keras.layers.Layer
        A built layer of a functional model.

    Returns
    -------
    f : callable or None
        None for layer types or configurations not covered here (mixed
        precision, unseeded draws, renormalisation, ...).
    """
    try:
        return _covers(layer)
    except AttributeError:  # a Keras version whose layer lacks an attribute
        return None
