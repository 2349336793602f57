"""Counter-based random numbers for the training-time noise and dropout layers.

A training step of the preprint's networks draws about 8,000 random numbers
per image (Gaussian noise after every convolution, dropout after every block).
Keras draws them with each backend's generator: on JAX that is threefry
(about 80 integer operations per 32-bit word, run as XLA while loops), which
took a third of a stage-2 step on a 2-core CPU. Here each word is a hash of its
position and of the layer's seed state instead: two rounds of Chris Wellons'
``lowbias32`` integer hash (about 20 integer operations per word, fused by XLA
into the loop that uses the noise), then

* Gaussian noise by the inverse normal CDF, ``sqrt(2) * erfinv(2u - 1)`` with
  ``u = (k + 0.5) / 2**23`` and ``k`` the top 23 bits (so ``u`` is exact in
  float32 and never 0 or 1; draws are bounded by about 5.3 standard
  deviations, where a float32 inverse CDF ends anyway);
* dropout by keeping a unit when its word is at least ``rate * 2**32`` (the
  kept fraction is ``1 - rate`` to within ``2**-32``), scaled by
  ``1 / (1 - rate)`` as in Keras.

The seed state is the layer's :class:`keras.random.SeedGenerator`
(``[seed, calls]``, advanced once per call), so draws are reproducible from
``random_state``, differ between layers and between steps, and a checkpoint
that stores the variables resumes the same stream.

This is a statistical generator for regularisation noise, not a
cryptographic one. TensorFlow uses it too (same words as JAX; no speed
difference measurable there). PyTorch keeps its own generator: its draws are
single C++ calls that cost little there, and some 20 separate eager
operations would cost more (:func:`torch_generator`, seeded from the same
seed state; dropout by one uniform draw, :func:`torch_dropout`).
"""

from __future__ import annotations

import functools
import math
import operator

import keras
import numpy as np
from keras import layers, ops

__all__ = ["uses_counter_rng", "random_bits", "normal", "dropout", "torch_generator",
           "torch_dropout", "CounterGaussianNoise", "CounterDropout"]

_M1 = np.uint32(0x7FEB352D)
_M2 = np.uint32(0x846CA68B)
_GOLDEN = np.uint32(0x9E3779B9)
_OFFSET = np.uint32(0x632BE5AB)
_SQRT2 = float(math.sqrt(2.0))


def uses_counter_rng():
    """True on the backends whose layers draw with this module (JAX, TensorFlow)."""
    return keras.backend.backend() in ("jax", "tensorflow")


def _torch():
    return keras.backend.backend() == "torch"


def _wrap(x):
    """Reduce modulo 2**32 where words are held in int64 (PyTorch)."""
    return ops.bitwise_and(x, 0xFFFFFFFF) if _torch() else x


def _mul(x, m):
    return _wrap(ops.multiply(x, int(m) if _torch() else m))


def _mix(x):
    """``lowbias32`` (C. Wellons): a bijective 32-bit integer hash."""
    x = ops.bitwise_xor(x, ops.right_shift(x, 16))
    x = _mul(x, _M1)
    x = ops.bitwise_xor(x, ops.right_shift(x, 15))
    x = _mul(x, _M2)
    return ops.bitwise_xor(x, ops.right_shift(x, 16))


def random_bits(shape, seed):
    """Uniform 32-bit words of ``shape`` from a seed state ``[seed, counter]``.

    Parameters
    ----------
    shape : tuple
        Shape of the result (``ops.shape(x)``: a dimension may be a scalar
        tensor in a TensorFlow graph).
    seed : tensor of shape (2,)
        A seed state, e.g. ``SeedGenerator.next()``.

    Returns
    -------
    bits : tensor of ``shape``
        uint32; on PyTorch, which lacks uint32 arithmetic, int64 holding the
        same values.

    Examples
    --------
    >>> import numpy as np
    >>> from keras import ops
    >>> a = ops.convert_to_numpy(random_bits((4,), np.array([1, 0])))
    >>> b = ops.convert_to_numpy(random_bits((4,), np.array([1, 0])))
    >>> c = ops.convert_to_numpy(random_bits((4,), np.array([1, 1])))
    >>> bool((a == b).all()), bool((a == c).any())
    (True, False)
    >>> a.astype("uint32").tolist()
    [1502645243, 2925253264, 1850928290, 3155052392]
    """
    dtype = "int64" if _torch() else "uint32"
    seed = _wrap(ops.cast(seed, dtype))
    key = _mix(ops.bitwise_xor(_mix(_wrap(_mul(seed[0], _GOLDEN) + _OFFSET.item())), seed[1]))
    shape = tuple(shape)
    n = functools.reduce(operator.mul, shape, 1)  # a tensor where a dim is dynamic (TF)
    counter = ops.cast(ops.arange(n, dtype="int32"), dtype)
    x = _mix(_wrap(ops.add(_mix(ops.bitwise_xor(counter, key)), key)))
    return ops.reshape(x, shape)


def normal(shape, seed, dtype="float32"):
    """Standard normal draws of ``shape`` (see the module docstring).

    Parameters
    ----------
    shape : tuple of int
    seed : tensor of shape (2,)
    dtype : str, default="float32"

    Returns
    -------
    z : tensor of ``shape``

    Examples
    --------
    >>> import numpy as np
    >>> from keras import ops
    >>> z = ops.convert_to_numpy(normal((100_000,), np.array([7, 0])))
    >>> bool(abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01)
    True
    """
    k = ops.right_shift(random_bits(shape, seed), 9)  # 23 bits: k + 0.5 exact
    v = ops.cast(k, dtype) * (2.0 ** -22) + (2.0 ** -23 - 1.0)  # 2u - 1 in (-1, 1)
    return ops.erfinv(v) * _SQRT2


def dropout(inputs, rate, seed):
    """``inputs`` with each unit zeroed with probability ``rate``, the rest
    scaled by ``1 / (1 - rate)`` (Keras' inverted dropout)."""
    threshold = min(int(round(float(rate) * 2.0 ** 32)), 2**32 - 1)
    threshold = threshold if _torch() else np.uint32(threshold)
    keep = ops.greater_equal(random_bits(ops.shape(inputs), seed), threshold)
    return ops.where(keep, inputs / (1.0 - float(rate)), ops.zeros_like(inputs))


def torch_generator(seed_generator, device):
    """A ``torch.Generator`` seeded from a :class:`keras.random.SeedGenerator`
    as ``keras.random`` seeds one on PyTorch (from the sum of the two state
    words), the state moved on by one draw (PyTorch only).

    Parameters
    ----------
    seed_generator : keras.random.SeedGenerator
        The layer's seed state.
    device : torch.device
        Device of the draw.

    Returns
    -------
    generator : torch.Generator or None
        None on the ``meta`` device (symbolic shape inference), which has no
        generators.
    """
    import torch

    state = seed_generator.state.value
    first, second = (int(s) for s in state.tolist())
    with torch.no_grad():
        state[1] += 1
    if torch.device(device).type == "meta":
        return None
    generator = torch.Generator(device=device)
    generator.manual_seed((first + second) & 0xFFFFFFFF)
    return generator


def torch_dropout(inputs, rate, seed_generator):
    """Inverted dropout on PyTorch: a unit is kept where a uniform draw of a
    :func:`torch_generator` is at least ``rate`` and scaled by
    ``1 / (1 - rate)``. One ``torch.rand`` call: about 3x faster than the
    Bernoulli draw ``keras.random.dropout`` makes there.

    Parameters
    ----------
    inputs : torch.Tensor
        Values to drop.
    rate : float
        Fraction to drop, in (0, 1).
    seed_generator : keras.random.SeedGenerator
        The layer's seed state (moves on by one draw).

    Returns
    -------
    outputs : torch.Tensor
    """
    import torch

    generator = torch_generator(seed_generator, inputs.device)
    u = torch.rand(tuple(inputs.shape), generator=generator, device=inputs.device,
                   dtype=inputs.dtype)
    return torch.where(u >= float(rate), inputs / (1.0 - float(rate)), torch.zeros_like(inputs))


@keras.saving.register_keras_serializable(package="ai4cellfate")
class CounterGaussianNoise(layers.GaussianNoise):
    """:class:`keras.layers.GaussianNoise` drawing from :func:`normal` on JAX
    and TensorFlow (Keras' own draw on PyTorch). Takes the arguments of
    :class:`keras.layers.GaussianNoise` (``stddev``, ``seed``, ...).

    Examples
    --------
    >>> import numpy as np
    >>> layer = CounterGaussianNoise(0.5, seed=0)
    >>> x = np.zeros((2, 3), "float32")
    >>> bool((np.asarray(layer(x, training=False)) == 0).all())
    True
    """

    def call(self, inputs, training=False):
        if training and self.stddev > 0 and uses_counter_rng():
            noise = normal(ops.shape(inputs), self.seed_generator.next(),
                           dtype=self.compute_dtype)
            return inputs + ops.cast(self.stddev, self.compute_dtype) * noise
        return super().call(inputs, training=training)


@keras.saving.register_keras_serializable(package="ai4cellfate")
class CounterDropout(layers.Dropout):
    """:class:`keras.layers.Dropout` drawing from :func:`random_bits` on JAX
    and TensorFlow and by :func:`torch_dropout` on PyTorch (Keras' own draw
    when ``noise_shape`` is set).
    Takes the arguments of :class:`keras.layers.Dropout` (``rate``,
    ``noise_shape``, ``seed``, ...).

    Examples
    --------
    >>> import numpy as np
    >>> layer = CounterDropout(0.3, seed=0)
    >>> x = np.ones((4, 5), "float32")
    >>> bool((np.asarray(layer(x, training=False)) == 1).all())
    True
    """

    def call(self, inputs, training=False):
        if (training and 0 < self.rate < 1 and self.noise_shape is None
                and uses_counter_rng()):
            return dropout(inputs, self.rate, self.seed_generator.next())
        if training and 0 < self.rate < 1 and self.noise_shape is None and _torch():
            return torch_dropout(inputs, self.rate, self.seed_generator)
        return super().call(inputs, training=training)
