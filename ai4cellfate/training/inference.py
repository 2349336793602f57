"""Fast inference: a network in inference mode as one compiled call per batch."""

from __future__ import annotations

import weakref

import numpy as np

from .model import backend_module

__all__ = ["PREDICT_BATCH", "padded_rows", "predict"]

#: Largest inference batch (batch sizes are powers of two up to this).
PREDICT_BATCH = 4096

_PREDICT_FUNCTIONS = weakref.WeakKeyDictionary()


def _batch(n):
    return min(PREDICT_BATCH, 1 << max(0, (n - 1).bit_length()))


def padded_rows(n):
    """Rows :func:`predict` computes for ``n`` inputs (padding included).

    Parameters
    ----------
    n : int
        Number of inputs.

    Returns
    -------
    int

    Examples
    --------
    >>> padded_rows(1424), padded_rows(365), padded_rows(1789), padded_rows(5000)
    (2048, 512, 2048, 8192)
    """
    if n <= 0:
        return 0
    batch = _batch(n)
    return -(-n // batch) * batch


def predict(net, A):
    """Run ``net`` in inference mode in fixed-size batches.

    One compiled call per batch (a jitted function on JAX, a ``tf.function``
    on TensorFlow, no autograd on PyTorch) instead of ``Model.predict``'s
    per-call machinery; batch sizes are powers of two up to ``PREDICT_BATCH``
    so few shapes are ever compiled.
    """
    backend = backend_module()
    fn = _PREDICT_FUNCTIONS.get(net)
    if fn is None:
        fn = _PREDICT_FUNCTIONS[net] = backend.predict_function(net)
    n = len(A)
    batch = _batch(n)
    out = []
    with backend.cpu_threads():
        for start in range(0, n, batch):
            chunk = A[start:start + batch]
            if len(chunk) < batch:
                chunk = np.concatenate([chunk, np.zeros((batch - len(chunk),) + A.shape[1:],
                                                        A.dtype)])
            out.append(np.asarray(fn(np.ascontiguousarray(chunk, dtype=np.float32))))
    return np.concatenate(out)[:n]
