"""The data of one fit: validation split, augmentation and class balancing.

Everything here sees the training data of the fit only: the validation split
is carved from it (stratified, group-aware when groups are given), and the
augmented, balanced images the networks train on come from the remaining
part alone.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

__all__ = ["validation_split", "training_images"]


def validation_split(y_enc, groups, seed, validation_fraction):
    """Indices of the training and validation parts (stratified, group-aware).

    Parameters
    ----------
    y_enc : ndarray of int
        Class indices.
    groups : ndarray or None
        Group labels (e.g. lineages): a group stays on one side.
    seed : int
        Seed of the split.
    validation_fraction : float
        Fraction held out; 0 returns the same indices twice.

    Returns
    -------
    train, val : ndarray of int
        Sorted indices (``val is train`` when ``validation_fraction`` is 0).

    Raises
    ------
    ValueError
        Too few samples or groups to keep every class on both sides.
    """
    n = len(y_enc)
    index = np.arange(n)
    vf = validation_fraction
    if vf == 0:
        return index, index
    counts = np.bincount(y_enc)
    n_classes = len(counts)
    if groups is not None:
        n_splits = max(2, int(round(1.0 / vf)))
        n_groups = len(np.unique(groups))
        if n_groups < n_splits:
            raise ValueError(
                f"groups has {n_groups} distinct groups, too few to hold out "
                f"validation_fraction={vf:g} of them (need at least {n_splits})."
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            folds = list(cv.split(np.zeros(n), y_enc, groups))
        # The first fold whose validation part holds every class.
        usable = [f for f in folds if len(np.unique(y_enc[f[1]])) == n_classes
                  and len(np.unique(y_enc[f[0]])) == n_classes]
        if not usable:
            raise ValueError(
                f"No group-aware validation split of validation_fraction={vf:g} keeps "
                f"every class on both sides ({n_groups} groups, class counts "
                f"{counts.tolist()}); give more groups per class or set "
                "validation_fraction=0."
            )
        train, val = usable[0]
    else:
        n_val = int(math.ceil(vf * n))
        if counts.min() < 2 or n_val < n_classes or n - n_val < n_classes:
            raise ValueError(
                f"Too few samples to carve a stratified validation split of "
                f"validation_fraction={vf:g}: {n} samples with class counts "
                f"{counts.tolist()}. Each class needs at least 2 samples and the "
                f"split at least one sample per class; lower validation_fraction, "
                "set it to 0, or give more data."
            )
        train, val = train_test_split(index, test_size=n_val, stratify=y_enc, random_state=seed)
    return np.sort(train), np.sort(val)


def training_images(images, y_enc, *, augment, balance, seed):
    """The images the networks train on: augmented, then balanced.

    Parameters
    ----------
    images : ndarray of shape (n, H, W, C)
        The training part of the fit (after the validation split).
    y_enc : ndarray of int
        Its class indices.
    augment : bool
        Add the seven flipped and rotated copies of every image.
    balance : bool
        Subsample every class to the size of the smallest.
    seed : int
        Seed of the subsampling.

    Returns
    -------
    X : ndarray of shape (m, H, W, C), float32, C-contiguous
    y : ndarray of shape (m,), float32
        Each image once: epochs draw their own order (and drop the remainder
        that does not fill a batch), so no image is repeated within an epoch.
    """
    X_tr, y_tr = images, y_enc
    if augment:
        from ..augmentation import augment_dihedral

        X_tr, y_tr = augment_dihedral(X_tr, y_tr)
    if balance:
        from ..augmentation import balance_classes

        keep = balance_classes(y_tr, np.random.default_rng(seed))
        X_tr, y_tr = X_tr[keep], y_tr[keep]
    return np.ascontiguousarray(X_tr, dtype=np.float32), np.asarray(y_tr, dtype=np.float32)
