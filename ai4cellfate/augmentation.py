"""Flips, rotations and class balancing applied to the training part inside ``fit``.

Method specification, section 1: every training crop is augmented by horizontal
and vertical flips and 90/180/270 degree rotations; the classes are then
balanced by subsampling every class to the size of the smallest one.
"""

from __future__ import annotations

import numpy as np

__all__ = ["augment_dihedral", "balance_classes"]


def augment_dihedral(X, *arrays):
    """Original, flipped and rotated copies of every image.

    Square images get six versions (original, horizontal flip, vertical flip,
    rotations by 90, 180 and 270 degrees); non-square images get the four
    that keep their shape (original, both flips, 180 degrees).

    Parameters
    ----------
    X : ndarray of shape (n_samples, height, width, channels)
        Images.
    *arrays : ndarray of shape (n_samples, ...)
        Per-sample arrays (labels, groups) repeated alongside the images.

    Returns
    -------
    X_aug : ndarray of shape (n_versions * n_samples, height, width, channels)
        Versions stacked version by version: ``X_aug[k * n:(k + 1) * n]`` is
        version ``k`` of all samples.
    *arrays_aug : ndarray
        The per-sample arrays tiled to match.

    Examples
    --------
    >>> X = np.arange(8, dtype=float).reshape(2, 2, 2, 1)
    >>> X_aug, y_aug = augment_dihedral(X, np.array([0, 1]))
    >>> X_aug.shape, y_aug.tolist()
    ((12, 2, 2, 1), [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1])
    """
    X = np.asarray(X)
    if X.ndim != 4:
        raise ValueError(f"X must have shape (n, height, width, channels); got {X.shape}.")
    versions = [X, X[:, :, ::-1], X[:, ::-1, :], np.rot90(X, 2, axes=(1, 2))]
    if X.shape[1] == X.shape[2]:
        versions += [np.rot90(X, 1, axes=(1, 2)), np.rot90(X, 3, axes=(1, 2))]
    X_aug = np.concatenate(versions, axis=0)
    tiled = [np.concatenate([np.asarray(a)] * len(versions), axis=0) for a in arrays]
    return (X_aug, *tiled)


def balance_classes(y, rng):
    """Indices that subsample every class to the size of the smallest class.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Class labels.
    rng : numpy.random.Generator
        Source of randomness for the subsample.

    Returns
    -------
    index : ndarray of int
        Sorted indices into ``y``, ``n_classes * min_count`` of them.

    Examples
    --------
    >>> idx = balance_classes(np.array([0, 0, 0, 1]), np.random.default_rng(0))
    >>> np.bincount(np.array([0, 0, 0, 1])[idx]).tolist()
    [1, 1]
    """
    y = np.asarray(y)
    classes, counts = np.unique(y, return_counts=True)
    n = counts.min()
    keep = [rng.choice(np.flatnonzero(y == c), size=n, replace=False) for c in classes]
    return np.sort(np.concatenate(keep))
