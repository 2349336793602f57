"""Network builders of AI4CellFate (method specification, section 2).

The encoder and decoder are derived from the input shape: one residual block
per halving of the image until the bottleneck is at most 5 px on its shorter
side (20 x 20 -> 10 -> 5: two blocks of 8 and 16 filters, as in the authors'
20-px model), filters doubling from 8 per block. Convolutions and dense layers
of the autoencoder are spectrally normalised with :class:`SpectralConv2D` and
:class:`SpectralDense`, which keep the power-iteration vector as state and
divide the kernel on the fly, so they behave the same on every backend.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

from ._random import CounterDropout, CounterGaussianNoise

__all__ = [
    "HostConstant",
    "BatchNormalization",
    "SeededGlorotUniform",
    "SeededNormal",
    "SpectralConv2D",
    "SpectralDense",
    "block_plan",
    "build_encoder",
    "build_decoder",
    "build_discriminator",
    "build_latent_classifier",
]

_PACKAGE = "ai4cellfate"
#: Offset between a layer's spectral-norm seed and its kernel initialiser's seed.
_KERNEL_SEED_OFFSET = 104_729
#: ``_PHASE_TAPS[a, u, p]``: tap ``p`` (offset ``p - 1``) of a 3 x 3 "same"
#: convolution of an image upsampled 2x (nearest) reads input offset ``u - 1``
#: for output pixels of phase ``a`` (even ``a = 0``, odd ``a = 1``).
_PHASE_TAPS = np.array([[[1, 0, 0], [0, 1, 1], [0, 0, 0]],
                        [[0, 0, 0], [1, 1, 0], [0, 0, 1]]], dtype="float32")
#: ``_BLOCK_TAPS[a, p, u, q]``: in a 3 x 3 "same" convolution of an image cut
#: into 2 x 2 blocks, tap ``p`` of an output pixel of phase ``a`` reads the
#: input pixel of phase ``q`` in the block at offset ``u - 1``.
_BLOCK_TAPS = np.zeros((2, 3, 3, 2), dtype="float32")
for _a in range(2):
    for _p in range(3):
        _BLOCK_TAPS[_a, _p, (_a + _p - 1) // 2 + 1, (_a + _p - 1) % 2] = 1
#: Largest ``c_in * filters`` convolved block-wise on JAX (see SpectralConv2D).
_BLOCKED_MAX_CHANNELS = 16


def _glorot(seed):
    """Glorot-uniform initialiser with an explicit seed. Without one, Keras draws
    the seed from Python's global ``random``, which other threads (a Dask
    worker's event loop) also draw from: fits would not be reproducible there."""
    return SeededGlorotUniform(seed=int(seed))


def _fans(shape):
    """Fan-in and fan-out of a kernel shape, as Keras computes them."""
    shape = tuple(int(d) for d in shape)
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _host_to_backend(values):
    """``values`` (a NumPy array) as the running backend's array: on JAX
    placed with ``jax.device_put``, since Keras' conversion (``jnp.asarray``)
    compiles one XLA program per shape, about 15 ms each on two cores; other
    backends convert NumPy arrays without compiling, so they get them as is."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.device_put(values)
    return values


@keras.saving.register_keras_serializable(package=_PACKAGE)
class HostConstant(keras.initializers.Initializer):
    """A constant filled on the host (the values of
    :class:`keras.initializers.Constant` for a scalar).

    Keras' ``"zeros"`` and ``"ones"`` fill a variable with a backend
    operation, and on JAX each new shape compiles its own small XLA program
    (about 20-25 ms on two cores): the biases and batch-norm variables of the
    networks and Adam's slots made about 25 of them in every new process. The
    values come as :class:`SeededGlorotUniform` returns its values (NumPy;
    on JAX a device array).

    Parameters
    ----------
    value : float, default=0.0
        The constant.

    Examples
    --------
    >>> HostConstant(1.0)((2, 3)).tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """

    def __init__(self, value=0.0):
        self.value = float(value)

    def __call__(self, shape, dtype=None):
        dtype = keras.backend.standardize_dtype(dtype or "float32")
        return _host_to_backend(np.full(tuple(shape), self.value, dtype=dtype))

    def get_config(self):
        return {"value": self.value}


def _zeros():
    return HostConstant(0.0)


def _batch_norm(name):
    """:class:`BatchNormalization` (ours) with its variables filled on the host."""
    return BatchNormalization(
        name=name, beta_initializer=_zeros(), gamma_initializer=HostConstant(1.0),
        moving_mean_initializer=_zeros(), moving_variance_initializer=HostConstant(1.0))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SeededGlorotUniform(keras.initializers.Initializer):
    """Glorot-uniform initial values drawn with NumPy from a fixed seed.

    The distribution of :class:`keras.initializers.GlorotUniform`
    (``U(-l, l)``, ``l = sqrt(6 / (fan_in + fan_out))``), drawn on the host:
    on JAX, Keras' own initialisers compile one random-number program per
    kernel shape, which made building a model the slowest part of a process's
    first fit (about 30 s of XLA compiles on two cores). The values come as a
    NumPy array, on JAX as a device array (``jax.device_put``), which Keras
    keeps as it is instead of converting it with a program compiled per shape.

    Parameters
    ----------
    seed : int
        Seed of the draw; the same seed gives the same values on every call.

    Examples
    --------
    >>> init = SeededGlorotUniform(seed=0)
    >>> w = init((3, 3, 1, 2))
    >>> w.shape, bool(abs(w).max() <= (6 / (9 + 18)) ** 0.5)
    ((3, 3, 1, 2), True)
    """

    def __init__(self, seed):
        self.seed = int(seed)

    def __call__(self, shape, dtype=None):
        fan_in, fan_out = _fans(shape)
        limit = math.sqrt(6.0 / max(1, fan_in + fan_out))
        values = np.random.default_rng(self.seed).uniform(-limit, limit, size=tuple(shape))
        return _host_to_backend(values.astype(keras.backend.standardize_dtype(dtype or "float32")))

    def get_config(self):
        return {"seed": self.seed}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SeededNormal(keras.initializers.Initializer):
    """Standard-normal initial values drawn with NumPy from a fixed seed
    (returned as :class:`SeededGlorotUniform` returns its values).

    Parameters
    ----------
    seed : int
        Seed of the draw.
    stddev : float, default=1.0
        Standard deviation.

    Examples
    --------
    >>> SeededNormal(seed=0)((1, 4)).shape
    (1, 4)
    """

    def __init__(self, seed, stddev=1.0):
        self.seed = int(seed)
        self.stddev = float(stddev)

    def __call__(self, shape, dtype=None):
        values = np.random.default_rng(self.seed).normal(0.0, self.stddev, size=tuple(shape))
        return _host_to_backend(values.astype(keras.backend.standardize_dtype(dtype or "float32")))

    def get_config(self):
        return {"seed": self.seed, "stddev": self.stddev}


class _SpectralNormMixin:
    """Spectral normalisation of ``self.kernel`` by one power iteration per
    training call; ``u`` is a non-trainable variable updated in training."""

    def _build_sn(self, n_out):
        self.sn_u = self.add_weight(
            name="sn_u",
            shape=(1, n_out),
            initializer=(keras.initializers.RandomNormal(stddev=1.0)
                         if self._sn_seed is None else SeededNormal(self._sn_seed)),
            trainable=False,
        )

    # Conv2D and Dense save only kernel and bias (their quantisation-aware
    # format); save every variable, power-iteration vector included.
    def save_own_variables(self, store):
        layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        layers.Layer.load_own_variables(self, store)

    def _normalized_kernel(self, training):
        kernel = self.kernel
        w = ops.reshape(kernel, (-1, kernel.shape[-1]))
        u = ops.convert_to_tensor(self.sn_u)
        v = ops.matmul(u, ops.transpose(w))
        v = v / ops.sqrt(ops.sum(v * v) + 1e-12)
        u_new = ops.matmul(v, w)
        u_new = u_new / ops.sqrt(ops.sum(u_new * u_new) + 1e-12)
        u_new = ops.stop_gradient(u_new)
        v = ops.stop_gradient(v)
        sigma = ops.sum(ops.matmul(v, w) * u_new)
        if training:
            self.sn_u.assign(ops.cast(u_new, self.sn_u.dtype))
        return kernel / sigma


def _phase_convs():
    """Whether small convolutions run in the phase / block form (JAX: XLA
    compiles them several times faster than the plain ones on CPUs)."""
    return keras.backend.backend() == "jax"


def _channel_ops(x):
    """:mod:`ai4cellfate._jax_ops` when per-channel operations on ``x`` run
    in its forms (JAX, a float32 rank-4 channels-last array of static
    shape), else None."""
    if not _phase_convs() or len(x.shape) != 4 or not all(
            isinstance(d, int) for d in x.shape) or str(x.dtype) != "float32":
        return None
    from . import _jax_ops

    return _jax_ops


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BatchNormalization(layers.BatchNormalization):
    """:class:`keras.layers.BatchNormalization` whose training-mode pass over
    channels-last images runs as :func:`ai4cellfate._jax_ops.batch_norm_train`
    on JAX.

    Same variables, configuration, moving-average updates and formula as
    Keras' layer; on JAX, in training, the batch statistics and the
    gradient sum through a wide view of the images instead of over their
    1-16 channels, which XLA does several times faster on CPUs (a training
    step about 4% faster). Statistics equal Keras' up to the order of the
    float sums. Other backends, inference and other configurations (masks,
    renormalisation, synchronisation, no centre or scale, other axes) run
    Keras' code.

    The class keeps Keras' name because Keras files store a layer's weights
    under its class name: models saved before and after this class existed
    load each other's weights.

    Parameters
    ----------
    **kwargs
        As :class:`keras.layers.BatchNormalization`.

    Examples
    --------
    >>> import numpy as np
    >>> layer = BatchNormalization()
    >>> x = np.random.default_rng(0).normal(3.0, 2.0, size=(8, 4, 4, 2)).astype("float32")
    >>> y = keras.ops.convert_to_numpy(layer(x, training=True))
    >>> bool(np.allclose(y.mean(axis=(0, 1, 2)), 0.0, atol=1e-4))
    True
    """

    def __init__(self, **kwargs):
        # Keras' arguments, unchanged (an explicit signature for the API docs).
        super().__init__(**kwargs)

    def call(self, inputs, training=None, mask=None):
        fast = _channel_ops(inputs)
        if (fast is None or not (training and self.trainable) or mask is not None
                or self.renorm or self.synchronized or not (self.center and self.scale)
                or list(self._reduction_axes) != [0, 1, 2] or self.compute_dtype != "float32"):
            return super().call(inputs, training=training, mask=mask)
        outputs, mean, variance = fast.batch_norm_train(
            inputs, ops.convert_to_tensor(self.gamma), ops.convert_to_tensor(self.beta),
            self.epsilon)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return outputs


def _interleave(y, h, w, f):
    """``(batch, h, w, 2 * 2 * f)`` phases (row phase, column phase, channel)
    to the ``(batch, 2h, 2w, f)`` image."""
    y = ops.reshape(y, (-1, h, w, 2, 2, f))
    return ops.reshape(ops.transpose(y, (0, 1, 3, 2, 4, 5)), (-1, 2 * h, 2 * w, f))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SpectralConv2D(_SpectralNormMixin, layers.Conv2D):
    """2-D convolution with a spectrally normalised kernel (channels last).

    With ``upsample=2`` the layer convolves its input upsampled 2x by
    nearest-neighbour repetition (``UpSampling2D(2)`` then this convolution,
    one layer). A 1 x 1 convolution runs at the input's resolution and its
    output is repeated. On JAX a 3 x 3 ``"same"`` convolution becomes one
    3 x 3 convolution of the input with ``4 * filters`` outputs, one per
    output pixel phase (each phase's kernel sums the taps that read the same
    input pixel), and the phases are interleaved into the 2x image: XLA runs
    that several times faster on CPUs than the decoder's 1-2-channel 20 x 20
    convolutions, which vectorise poorly (a stage-2 training step about 25%
    faster). TensorFlow and PyTorch upsample and convolve, which measured as
    fast there. Same result up to float rounding and the same kernel on
    every backend.

    For the same reason, on JAX a stride-1 3 x 3 ``"same"`` convolution of an
    image with even sides and at most 16 = ``c_in * filters`` (the 20 x 20
    layers with 1 or 2 channels) runs on the image cut into 2 x 2 blocks:
    one convolution over the block grid from ``4 * c_in`` to ``4 * filters``
    channels, whose kernel holds the 3 x 3 taps at their block offsets (2-3x
    faster forwards and backwards than the convolution of the image).

    Parameters
    ----------
    *args, **kwargs
        As :class:`keras.layers.Conv2D`; ``sn_seed`` seeds the power-iteration
        vector.
    upsample : {1, 2}, default=1
        Nearest-neighbour upsampling of the input before the convolution;
        2 needs ``strides=1``, ``dilation_rate=1``, channels last and a 1 x 1
        kernel or a 3 x 3 kernel with ``padding="same"``.

    Examples
    --------
    >>> import numpy as np
    >>> layer = SpectralConv2D(4, 3, padding="same", sn_seed=0)
    >>> tuple(layer(np.zeros((1, 8, 8, 2), "float32")).shape)
    (1, 8, 8, 4)
    >>> tuple(SpectralConv2D(4, 3, padding="same", upsample=2)(
    ...     np.zeros((1, 8, 8, 2), "float32")).shape)
    (1, 16, 16, 4)
    """

    def __init__(self, *args, sn_seed=None, upsample=1, **kwargs):
        if sn_seed is not None and "kernel_initializer" not in kwargs:
            kwargs["kernel_initializer"] = _glorot(sn_seed + _KERNEL_SEED_OFFSET)
        kwargs.setdefault("bias_initializer", _zeros())
        super().__init__(*args, **kwargs)
        self._sn_seed = sn_seed
        self.upsample = int(upsample)
        if self.upsample not in (1, 2):
            raise ValueError(f"upsample must be 1 or 2, got {upsample!r}.")
        if self.upsample == 2:
            kernel = tuple(self.kernel_size)
            if (tuple(self.strides) != (1, 1) or tuple(self.dilation_rate) != (1, 1)
                    or self.data_format != "channels_last"
                    or not (kernel == (1, 1) or (kernel == (3, 3) and self.padding == "same"))):
                raise ValueError(
                    "upsample=2 needs strides=1, dilation_rate=1, channels_last and a 1x1 "
                    f"kernel or a 3x3 kernel with padding='same'; got kernel_size={kernel}, "
                    f"strides={tuple(self.strides)}, padding={self.padding!r}."
                )

    def build(self, input_shape):
        super().build(input_shape)
        self._build_sn(self.filters)

    def compute_output_shape(self, input_shape):
        if self.upsample == 1:
            return super().compute_output_shape(input_shape)
        b, h, w, c = input_shape
        return super().compute_output_shape(
            (b, None if h is None else 2 * h, None if w is None else 2 * w, c))

    def _upsampled_conv(self, inputs, kernel):
        if tuple(self.kernel_size) == (1, 1):
            outputs = ops.conv(inputs, kernel, padding="valid", data_format="channels_last")
            if self.use_bias:
                outputs = outputs + self.bias
            if self.activation is not None:
                outputs = self.activation(outputs)
            return ops.repeat(ops.repeat(outputs, 2, axis=1), 2, axis=2)
        if not _phase_convs():
            # Eager PyTorch and TensorFlow graphs gain nothing from the phase
            # form (measured): upsample, then the ordinary convolution.
            return self._conv(ops.repeat(ops.repeat(inputs, 2, axis=1), 2, axis=2), kernel,
                              (1, 1))
        c_in, f = int(kernel.shape[2]), self.filters
        # phase_kernel[u, v, i, a, b, o]: input offset (u - 1, v - 1) of output
        # pixel (2y + a, 2x + b), summed over the taps that read that input pixel.
        taps = ops.convert_to_tensor(_PHASE_TAPS, dtype=kernel.dtype)
        phase_kernel = ops.einsum("aup,bvq,pqio->uviabo", taps, taps, kernel)
        phase_kernel = ops.reshape(phase_kernel, (3, 3, c_in, 4 * f))
        y = ops.conv(inputs, phase_kernel, padding="same", data_format="channels_last")
        return self._phases_to_image(y, ops.shape(inputs)[1], ops.shape(inputs)[2])

    def _blocked(self, inputs, strides):
        """Whether ``_conv`` runs block-wise: JAX, a stride-1 3 x 3 "same"
        convolution of an image with even sides and few channels."""
        h, w, c_in = inputs.shape[1], inputs.shape[2], inputs.shape[3]
        return (_phase_convs() and tuple(self.kernel_size) == (3, 3)
                and strides == (1, 1) and tuple(self.dilation_rate) == (1, 1)
                and self.padding == "same" and self.data_format == "channels_last"
                and isinstance(h, int) and isinstance(w, int) and h % 2 == 0 and w % 2 == 0
                and int(c_in) * self.filters <= _BLOCKED_MAX_CHANNELS)

    def _blocked_conv(self, inputs, kernel):
        """The convolution of ``inputs`` cut into 2 x 2 blocks: one 3 x 3
        convolution over the block grid, from ``4 * c_in`` to ``4 * filters``
        channels, then the output blocks put back together."""
        h, w, c_in, f = inputs.shape[1] // 2, inputs.shape[2] // 2, int(inputs.shape[3]), self.filters
        x = ops.reshape(inputs, (-1, h, 2, w, 2, c_in))
        x = ops.reshape(ops.transpose(x, (0, 1, 3, 2, 4, 5)), (-1, h, w, 4 * c_in))
        taps = ops.convert_to_tensor(_BLOCK_TAPS, dtype=kernel.dtype)
        block_kernel = ops.einsum("apuq,bsvr,psio->uvqriabo", taps, taps, kernel)
        block_kernel = ops.reshape(block_kernel, (3, 3, 4 * c_in, 4 * f))
        y = ops.conv(x, block_kernel, padding="same", data_format="channels_last")
        return self._phases_to_image(y, h, w)

    def _phases_to_image(self, y, h, w):
        """Bias and activation on ``(batch, h, w, 4 * filters)`` outputs of
        the four pixel phases, then the ``(batch, 2h, 2w, filters)`` image."""
        if self.use_bias:
            y = y + ops.tile(self.bias, (4,))
        if self.activation is not None:
            y = self.activation(y)
        return _interleave(y, h, w, self.filters)

    def call(self, inputs, training=None):
        kernel = self._normalized_kernel(bool(training))
        if self.upsample == 2:
            return self._upsampled_conv(inputs, kernel)
        return self._conv(inputs, kernel, tuple(self.strides))

    def _conv(self, inputs, kernel, strides):
        if self._blocked(inputs, strides):
            return self._blocked_conv(inputs, kernel)
        if (
            tuple(self.kernel_size) == (1, 1)
            and strides != (1, 1)
            and self.data_format == "channels_last"
        ):
            # A strided 1x1 convolution reads every s-th pixel: slice, then
            # convolve with stride 1. Same result; and PyTorch 2.13's CPU
            # backward of strided 1x1 convolutions on channels-last input
            # corrupts the heap (hangs or "corrupted size vs. prev_size").
            inputs = inputs[:, :: strides[0], :: strides[1], :]
            strides = (1, 1)
        outputs = ops.conv(
            inputs,
            kernel,
            strides=strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )
        if self.use_bias:
            outputs = outputs + self.bias
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        return {**super().get_config(), "sn_seed": self._sn_seed, "upsample": self.upsample}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SpectralDense(_SpectralNormMixin, layers.Dense):
    """Dense layer with a spectrally normalised kernel.

    Parameters
    ----------
    *args, **kwargs
        As :class:`keras.layers.Dense`; ``sn_seed`` seeds the power-iteration
        vector.

    Examples
    --------
    >>> import numpy as np
    >>> tuple(SpectralDense(3, sn_seed=0)(np.zeros((2, 5), "float32")).shape)
    (2, 3)
    """

    def __init__(self, *args, sn_seed=None, **kwargs):
        if sn_seed is not None and "kernel_initializer" not in kwargs:
            kwargs["kernel_initializer"] = _glorot(sn_seed + _KERNEL_SEED_OFFSET)
        kwargs.setdefault("bias_initializer", _zeros())
        super().__init__(*args, **kwargs)
        self._sn_seed = sn_seed

    def build(self, input_shape):
        super().build(input_shape)
        self._build_sn(self.units)

    def call(self, inputs, training=None):
        kernel = self._normalized_kernel(bool(training))
        outputs = ops.matmul(inputs, kernel)
        if self.use_bias:
            outputs = outputs + self.bias
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        return {**super().get_config(), "sn_seed": self._sn_seed}


def block_plan(image_shape, base_filters=8, max_bottleneck=5):
    """Residual blocks, filters and bottleneck size for an input shape.

    Parameters
    ----------
    image_shape : tuple (height, width, channels)
        Input crop shape; both sides at least 4 px.
    base_filters : int, default=8
        Filters of the first residual block; doubled per further block.
    max_bottleneck : int, default=5
        Halve the image (stride-2 blocks, rounding up) until its shorter side
        is at most this many pixels.

    Returns
    -------
    plan : dict
        ``filters`` (one entry per down block), ``bottleneck`` (height,
        width) and ``decoded`` (height, width before the final crop).

    Examples
    --------
    >>> block_plan((20, 20, 1))
    {'filters': [8, 16], 'bottleneck': (5, 5), 'decoded': (20, 20)}
    >>> block_plan((64, 64, 1))["filters"]
    [8, 16, 32, 64]
    """
    h, w = int(image_shape[0]), int(image_shape[1])
    if h < 4 or w < 4:
        raise ValueError(
            f"Images must be at least 4 x 4 pixels for the encoder; got {h} x {w}."
        )
    filters = []
    while min(h, w) > max_bottleneck or not filters:
        filters.append(base_filters * 2 ** len(filters))
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    scale = 2 ** len(filters)
    return {"filters": filters, "bottleneck": (h, w), "decoded": (h * scale, w * scale)}


def _res_down(x, filters, noise_std, seed, name):
    skip = SpectralConv2D(filters, 1, strides=2, name=f"{name}_skip", sn_seed=seed)(x)
    y = _batch_norm(f"{name}_bn1")(x)
    y = layers.ReLU()(y)
    y = SpectralConv2D(
        filters, 3, strides=2, padding="same", name=f"{name}_conv1", sn_seed=seed + 1
    )(y)
    y = CounterGaussianNoise(noise_std, seed=seed + 2)(y)
    y = _batch_norm(f"{name}_bn2")(y)
    y = layers.ReLU()(y)
    y = SpectralConv2D(
        filters, 3, strides=1, padding="same", name=f"{name}_conv2", sn_seed=seed + 3
    )(y)
    y = CounterGaussianNoise(noise_std, seed=seed + 4)(y)
    return layers.Add(name=f"{name}_add")([y, skip])


def _res_up(x, filters, noise_std, seed, name):
    # UpSampling2D(2) -> conv, as one layer each (SpectralConv2D(upsample=2)).
    skip = SpectralConv2D(filters, 1, upsample=2, name=f"{name}_skip", sn_seed=seed)(x)
    y = _batch_norm(f"{name}_bn1")(x)
    y = layers.ReLU()(y)
    y = SpectralConv2D(
        filters, 3, padding="same", upsample=2, name=f"{name}_conv1", sn_seed=seed + 1
    )(y)
    y = CounterGaussianNoise(noise_std, seed=seed + 2)(y)
    y = _batch_norm(f"{name}_bn2")(y)
    y = layers.ReLU()(y)
    y = SpectralConv2D(
        filters, 3, padding="same", name=f"{name}_conv2", sn_seed=seed + 3
    )(y)
    y = CounterGaussianNoise(noise_std, seed=seed + 4)(y)
    return layers.Add(name=f"{name}_add")([y, skip])


def build_encoder(image_shape, latent_dim=2, noise_std=0.003, dropout=0.3, seed=0):
    """Residual, spectrally normalised image encoder.

    ``SN(Conv2D 2, 3x3, relu) -> [ResDown(f) -> Dropout]* -> Flatten -> GN ->
    swish -> SN(Dense latent_dim) -> GN`` with the blocks of
    :func:`block_plan` (built as ``GN -> swish -> Flatten``, the same
    function: both act element by element).

    Parameters
    ----------
    image_shape : tuple (height, width, channels)
        Input shape.
    latent_dim : int, default=2
        Size of the latent space (>= 1).
    noise_std : float, default=0.003
        Standard deviation of the Gaussian-noise layers (training only).
    dropout : float, default=0.3
        Dropout rate after each residual block.
    seed : int, default=0
        Seed of the layers' random state.

    Returns
    -------
    encoder : keras.Model
        Maps ``(batch, *image_shape)`` to ``(batch, latent_dim)``.

    Examples
    --------
    >>> enc = build_encoder((20, 20, 1))
    >>> enc.output_shape
    (None, 2)
    """
    plan = block_plan(image_shape)
    inputs = keras.Input(shape=tuple(int(s) for s in image_shape), name="image")
    x = SpectralConv2D(
        2, 3, padding="same", activation="relu", name="stem", sn_seed=seed
    )(inputs)
    for i, f in enumerate(plan["filters"]):
        x = _res_down(x, f, noise_std, seed + 10 * (i + 1), name=f"down{i}")
        x = CounterDropout(dropout, seed=seed + 10 * (i + 1) + 5)(x)
    # Noise and swish act element by element, and the noise's counters are
    # positions in row-major order, so noise -> swish -> Flatten is the
    # spec's Flatten -> GN -> swish bit for bit. In this order XLA fuses
    # them with the block before at its (h, w, c) shape; after the Flatten,
    # one loop fused the block's noise, dropout and this noise at the
    # (batch, h * w * c) shape and ran several times slower per element (a
    # JAX training step 3% slower).
    x = CounterGaussianNoise(noise_std, seed=seed + 1)(x)
    x = layers.Activation("swish")(x)
    x = layers.Flatten()(x)
    x = SpectralDense(latent_dim, name="to_latent", sn_seed=seed + 2)(x)
    z = CounterGaussianNoise(noise_std, seed=seed + 3, name="latent")(x)
    return keras.Model(inputs, z, name="encoder")


def build_decoder(image_shape, latent_dim=2, noise_std=0.003, dropout=0.3, seed=0):
    """Residual, spectrally normalised decoder mirroring :func:`build_encoder`.

    ``SN(Dense) -> GN -> Reshape(bottleneck) -> [ResUp(f) -> Dropout]* ->
    crop -> SN(Conv2D channels, 3x3, sigmoid)`` (built as ``Reshape -> GN``,
    the same function); the last block has 2 filters
    as in the authors' model, and the output is cropped to the input size when
    halving rounded up.

    Parameters
    ----------
    image_shape : tuple (height, width, channels)
        Shape of the images to generate.
    latent_dim : int, default=2
        Size of the latent space.
    noise_std : float, default=0.003
        Standard deviation of the Gaussian-noise layers (training only).
    dropout : float, default=0.3
        Dropout rate after each residual block.
    seed : int, default=0
        Seed of the layers' random state.

    Returns
    -------
    decoder : keras.Model
        Maps ``(batch, latent_dim)`` to ``(batch, *image_shape)`` in [0, 1].

    Examples
    --------
    >>> build_decoder((20, 20, 1)).output_shape
    (None, 20, 20, 1)
    """
    plan = block_plan(image_shape)
    h0, w0 = plan["bottleneck"]
    f0 = plan["filters"][-1]
    up_filters = list(reversed(plan["filters"][:-1])) + [2]
    inputs = keras.Input(shape=(int(latent_dim),), name="latent")
    x = SpectralDense(h0 * w0 * f0, name="from_latent", sn_seed=seed)(inputs)
    # Reshape before the noise: the same values (see build_encoder), and
    # XLA fuses the noise with the first block at the block's shape.
    x = layers.Reshape((h0, w0, f0))(x)
    x = CounterGaussianNoise(noise_std, seed=seed + 1)(x)
    for i, f in enumerate(up_filters):
        x = _res_up(x, f, noise_std, seed + 10 * (i + 1), name=f"up{i}")
        x = CounterDropout(dropout, seed=seed + 10 * (i + 1) + 5)(x)
    hd, wd = plan["decoded"]
    h, w = int(image_shape[0]), int(image_shape[1])
    if (hd, wd) != (h, w):
        top, left = (hd - h) // 2, (wd - w) // 2
        x = layers.Cropping2D(((top, hd - h - top), (left, wd - w - left)))(x)
    outputs = SpectralConv2D(
        int(image_shape[2]),
        3,
        padding="same",
        activation="sigmoid",
        name="to_image",
        sn_seed=seed + 2,
    )(x)
    return keras.Model(inputs, outputs, name="decoder")


def build_discriminator(latent_dim=2, dropout=0.3, seed=0):
    """Discriminator telling prior samples from encoded latents.

    ``Dense(32) -> LeakyReLU(0.2) -> Dense(16) -> LeakyReLU(0.2) ->
    Dropout(0.3) -> Dense(1, sigmoid)``.

    Parameters
    ----------
    latent_dim : int, default=2
        Size of the latent space.
    dropout : float, default=0.3
        Dropout rate.
    seed : int, default=0
        Seed of the dropout layer.

    Returns
    -------
    discriminator : keras.Model
        Maps ``(batch, latent_dim)`` to probabilities ``(batch, 1)``.

    Examples
    --------
    >>> build_discriminator(2).output_shape
    (None, 1)
    """
    inputs = keras.Input(shape=(int(latent_dim),), name="latent")
    x = layers.Dense(32, kernel_initializer=_glorot(seed + 1),
                     bias_initializer=_zeros())(inputs)
    x = layers.LeakyReLU(0.2)(x)
    x = layers.Dense(16, kernel_initializer=_glorot(seed + 2),
                     bias_initializer=_zeros())(x)
    x = layers.LeakyReLU(0.2)(x)
    x = CounterDropout(dropout, seed=seed)(x)
    outputs = layers.Dense(1, activation="sigmoid", kernel_initializer=_glorot(seed + 3),
                           bias_initializer=_zeros())(x)
    return keras.Model(inputs, outputs, name="discriminator")


def build_latent_classifier(latent_dim=2, n_classes=2, dropout=0.3, l2=1e-4, seed=0):
    """The preprint's "simple" classifier on latent vectors.

    ``Dropout(0.3) -> Dense(n_classes, softmax, L2 1e-4)``: a regularised
    multinomial logistic regression.

    Parameters
    ----------
    latent_dim : int, default=2
        Input size.
    n_classes : int, default=2
        Number of classes.
    dropout : float, default=0.3
        Input dropout rate (training only).
    l2 : float, default=1e-4
        L2 penalty on the kernel.
    seed : int, default=0
        Seed of the dropout layer.

    Returns
    -------
    classifier : keras.Model
        Maps ``(batch, latent_dim)`` to class probabilities.

    Examples
    --------
    >>> build_latent_classifier(2, 3).output_shape
    (None, 3)
    """
    inputs = keras.Input(shape=(int(latent_dim),), name="latent")
    x = CounterDropout(dropout, seed=seed)(inputs)
    outputs = layers.Dense(
        int(n_classes),
        activation="softmax",
        kernel_regularizer=keras.regularizers.L2(l2),
        kernel_initializer=_glorot(seed + 1),
        bias_initializer=_zeros(),
        name="logits",
    )(x)
    return keras.Model(inputs, outputs, name="latent_classifier")
