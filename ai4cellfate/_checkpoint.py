"""Training checkpoints: one ``.npz`` file per checkpoint folder, written atomically.

A checkpoint holds everything needed to continue a fit exactly where it
stopped: every model variable (weights, batch-norm statistics, spectral-norm
vectors, random-seed states, loss weights), the optimizer's variables (step
count and moments), the history so far, the stopping-criteria records, the
seed of the run and a fingerprint of the data and parameters it belongs to.
Arrays are stored without pickling and the metadata as JSON, so reading a
checkpoint executes no code.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile

import numpy as np

from ._io import atomic_path

CHECKPOINT_NAME = "ai4cellfate-checkpoint.npz"
CHECKPOINT_FORMAT = 1

__all__ = ["CHECKPOINT_NAME", "checkpoint_path", "data_fingerprint", "read_checkpoint",
           "write_checkpoint"]


def checkpoint_path(folder):
    """Path of the checkpoint file inside ``folder``."""
    return os.path.join(os.fspath(folder), CHECKPOINT_NAME)


def data_fingerprint(images, y, groups):
    """SHA-256 of the training images, labels and groups (hex string)."""
    h = hashlib.sha256()
    images = np.ascontiguousarray(images)
    h.update(str((images.shape, images.dtype.str)).encode())
    h.update(memoryview(images).cast("B"))
    h.update(np.ascontiguousarray(np.asarray(y, dtype=np.int64)).tobytes())
    if groups is not None:
        import pandas as pd

        h.update(pd.util.hash_array(np.asarray(groups, dtype=object)).tobytes())
    return h.hexdigest()


def write_checkpoint(path, meta, model_values, optimizer_values, best_values=None):
    """Write a checkpoint atomically (temporary file in the same folder, then rename).

    Parameters
    ----------
    path : str
        Destination ``.npz`` file.
    meta : dict
        JSON-serialisable state (epoch, history rows, criteria records, seed,
        fingerprint).
    model_values, optimizer_values : list of ndarray
        Values of ``model.variables`` and ``model.optimizer.variables``, in order.
    best_values : list of ndarray, optional
        Weights of the best validated epoch so far (``model.get_weights()``).
    """
    arrays = {"meta": np.array(json.dumps(dict(meta, checkpoint_format=CHECKPOINT_FORMAT)))}
    arrays.update({f"model_{i:05d}": np.asarray(v) for i, v in enumerate(model_values)})
    arrays.update({f"optim_{i:05d}": np.asarray(v) for i, v in enumerate(optimizer_values)})
    arrays.update({f"best_{i:05d}": np.asarray(v) for i, v in enumerate(best_values or [])})
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())


def read_checkpoint(path, *, with_best=False):
    """Read a checkpoint written by :func:`write_checkpoint`.

    Parameters
    ----------
    path : str
        The checkpoint file.
    with_best : bool, default=False
        Also return the best epoch's weights.

    Returns
    -------
    meta : dict
    model_values, optimizer_values : list of ndarray
    best_values : list of ndarray
        Only with ``with_best=True`` (empty when none were saved).

    Raises
    ------
    ValueError
        The file is not a readable checkpoint of this format.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            model_keys = sorted(k for k in data.files if k.startswith("model_"))
            optim_keys = sorted(k for k in data.files if k.startswith("optim_"))
            model_values = [data[k] for k in model_keys]
            optimizer_values = [data[k] for k in optim_keys]
            best_values = [data[k] for k in sorted(k for k in data.files
                                                   if k.startswith("best_"))]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile,
            json.JSONDecodeError) as exc:
        raise ValueError(
            f"{path} is not a readable ai4cellfate checkpoint (truncated or corrupted?): "
            f"{exc}. Delete it to start the fit afresh."
        ) from None
    version = meta.get("checkpoint_format") if isinstance(meta, dict) else None
    if version != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path} is a checkpoint of format {version!r}; this version of ai4cellfate "
            f"reads format {CHECKPOINT_FORMAT}. Delete it to start the fit afresh."
        )
    if with_best:
        return meta, model_values, optimizer_values, best_values
    return meta, model_values, optimizer_values
