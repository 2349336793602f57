"""The ``keras.ops`` functions :mod:`ai4cellfate.losses` uses, for torch tensors.

On the PyTorch backend every ``keras.ops`` call converts and checks each
operand (dtype standardisation, device placement, symbolic-tensor checks):
about 20 us an op on a 2-core CPU against 2-5 us for the torch operation,
and the losses of one training step are a few hundred ops. The losses run
on this namespace instead when all their inputs are torch tensors
(:func:`ai4cellfate.losses` picks it); each function does what its
``keras.ops`` namesake does for the arguments the losses pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from keras.src.backend.torch.core import get_device as _device

_DTYPES = {
    "bool": torch.bool,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
    "int32": torch.int32,
    "int64": torch.int64,
}


def _dtype(dtype):
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    return _DTYPES[str(dtype)]


def _dims(axis):
    return axis if axis is None or isinstance(axis, int) else tuple(axis)


def convert_to_tensor(x, dtype=None):
    dtype = _dtype(dtype)
    if isinstance(x, torch.Tensor):
        return x if dtype is None or x.dtype == dtype else x.to(dtype)
    return torch.as_tensor(x, dtype=dtype, device=_device())


def cast(x, dtype):
    return convert_to_tensor(x, dtype)


def shape(x):
    return tuple(x.shape)


def reshape(x, new_shape):
    return torch.reshape(x, tuple(new_shape))


def transpose(x, axes=None):
    if axes is None:
        return x.permute(*reversed(range(x.ndim)))
    return x.permute(*axes)


def expand_dims(x, axis):
    return torch.unsqueeze(x, axis)


def concatenate(xs, axis=0):
    return torch.cat(list(xs), dim=axis)


def einsum(subscripts, *operands):
    return torch.einsum(subscripts, *operands)


def matmul(a, b):
    return torch.matmul(a, b)


def mean(x, axis=None, keepdims=False):
    if axis is None:
        return torch.mean(x)
    return torch.mean(x, dim=_dims(axis), keepdim=keepdims)


def sum(x, axis=None, keepdims=False):  # noqa: A001 - keras.ops' name
    if axis is None:
        return torch.sum(x)
    return torch.sum(x, dim=_dims(axis), keepdim=keepdims)


def any(x, axis=None):  # noqa: A001 - keras.ops' name
    if axis is None:
        return torch.any(x)
    return torch.any(x, dim=axis)


def logsumexp(x, axis=None):
    return torch.logsumexp(x, dim=tuple(range(x.ndim)) if axis is None else axis)


def log(x):
    return torch.log(x)


def exp(x):
    return torch.exp(x)


def sqrt(x):
    return torch.sqrt(x)


def square(x):
    return torch.square(x)


def clip(x, x_min, x_max):
    return torch.clamp(x, x_min, x_max)


def maximum(a, b):
    if not isinstance(b, torch.Tensor):
        return torch.clamp(a, min=b)
    return torch.maximum(a, b)


def where(condition, a, b):
    return torch.where(condition, a, b)


def equal(a, b):
    return torch.eq(a, b)


def logical_and(a, b):
    return torch.logical_and(a, b)


def logical_not(x):
    return torch.logical_not(x)


def eye(n):
    return torch.eye(int(n), device=_device())


def diagonal(x):
    return torch.diagonal(x)


def average_pool(x, pool_size, strides=None, padding="valid"):
    """Channels-last ``pool_size`` x ``pool_size`` average pooling
    (``padding="valid"`` only, as the losses use it)."""
    if padding != "valid":
        raise ValueError("only padding='valid' is implemented here")
    y = F.avg_pool2d(x.permute(0, 3, 1, 2), pool_size, strides or pool_size)
    return y.permute(0, 2, 3, 1)


#: Tensors made by :func:`constant`, by ``(key, dtype, device)``.
_CONSTANTS = {}


def constant(key, make, dtype):
    """``torch.as_tensor(make(), dtype)`` on Keras' device, made once per
    ``key`` and kept.

    For constants the losses build with NumPy (MS-SSIM's blur matrices):
    :mod:`torch._dynamo` reads a kept tensor as a constant of a compiled
    step, where tracing the NumPy code that makes it would break the graph.
    The tensor is shared; nothing may write to it.
    """
    dtype = _dtype(dtype)
    device = _device()
    full_key = (key, dtype, str(device))
    value = _CONSTANTS.get(full_key)
    if value is None:
        value = torch.as_tensor(make(), dtype=dtype, device=device)
        _CONSTANTS[full_key] = value
    return value
