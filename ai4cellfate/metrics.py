"""Metrics and latent-space diagnostics.

Classification metrics in the preprint's sense (its "accuracy" is balanced
accuracy) and the latent diagnostics that AI4CellFate uses as stopping
criteria: per-dimension KL divergence to N(0, 1), class-centroid distance and
the correlation between latent features.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = [
    "kl_divergence_to_normal",
    "centroid_distance",
]


def kl_divergence_to_normal(Z, bins=100):
    """Per-dimension KL divergence between the latent distribution and N(0, 1).

    The preprint's histogram estimate: for every latent dimension, a density
    histogram with ``bins`` bins is compared with the standard normal density at
    the bin centres; both get ``1e-10`` added, are normalised to sum to one and
    compared with :func:`scipy.stats.entropy` (``KL(histogram || normal)``).

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_dims)
        Latent vectors.
    bins : int, default=100
        Number of histogram bins per dimension.

    Returns
    -------
    kl : ndarray of shape (n_dims,)
        KL divergence of each dimension (0 for a perfect match).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> kl = kl_divergence_to_normal(rng.normal(size=(20000, 2)))
    >>> bool((kl < 0.05).all())
    True
    """
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim == 1:
        Z = Z[:, None]
    if Z.ndim != 2 or Z.shape[0] < 2:
        raise ValueError(
            f"Z must be a 2-D array with at least 2 samples, got shape {Z.shape}."
        )
    if not np.all(np.isfinite(Z)):
        raise ValueError("Z contains NaN or infinite values.")
    bins = int(bins)
    if bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins}.")
    out = np.empty(Z.shape[1])
    for d in range(Z.shape[1]):
        hist, edges = np.histogram(Z[:, d], bins=bins, density=True)
        centres = 0.5 * (edges[:-1] + edges[1:])
        p = hist + 1e-10
        q = stats.norm.pdf(centres) + 1e-10
        out[d] = stats.entropy(p / p.sum(), q / q.sum())
    return out


def centroid_distance(Z, y):
    """Euclidean distance between class centroids in latent space.

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_dims)
        Latent vectors.
    y : array-like of shape (n_samples,)
        Class labels (at least two classes).

    Returns
    -------
    distance : float
        The distance between the two centroids; with more than two classes,
        the smallest distance over all pairs of class centroids (the
        separation of the closest pair).

    Examples
    --------
    >>> centroid_distance([[0, 0], [0, 0], [3, 4], [3, 4]], [0, 0, 1, 1])
    5.0
    """
    Z = np.asarray(Z, dtype=np.float64)
    y = np.asarray(y)
    if Z.ndim != 2 or len(Z) != len(y):
        raise ValueError(
            f"Z must be 2-D with one row per label; got Z shape {Z.shape} and "
            f"{len(y)} labels."
        )
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError("centroid_distance needs at least two classes in y.")
    centroids = np.stack([Z[y == c].mean(axis=0) for c in classes])
    diff = centroids[:, None, :] - centroids[None, :, :]
    dist = np.sqrt((diff**2).sum(-1))
    iu = np.triu_indices(len(classes), k=1)
    return float(dist[iu].min())
