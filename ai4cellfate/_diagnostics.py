"""Checks of a latent space, and plain-language readings of its features.

:func:`latent_warnings` is shared by ``CellFateAAE.fit`` and the report: the
same thresholds, the same words. :func:`latent_feature_readings` turns a
traversal (:mod:`ai4cellfate.interpret`) into one sentence per latent feature.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "MAX_LATENT_CORRELATION",
    "READING_MIN_CHANGE",
    "READING_MIN_TREND",
    "FATE_AXIS_MIN_D",
    "fate_separation",
    "latent_feature_readings",
    "latent_warnings",
]

#: Latent features whose Pearson |r| exceeds this are reported as correlated:
#: the covariance loss aims at |r| near 0 (the preprint reports 0.06).
MAX_LATENT_CORRELATION = 0.5

#: A latent feature "changes" a measurement in the readings when the
#: measurement's rank correlation with the latent value is at least
#: READING_MIN_TREND in magnitude and its change over the traversal is at least
#: READING_MIN_CHANGE of its typical value.
READING_MIN_TREND = 0.7
READING_MIN_CHANGE = 0.10

#: A latent feature is the "fate axis" when its standardised difference between
#: the fates (|Cohen's d|) is at least this, and at least twice every other's.
FATE_AXIS_MIN_D = 0.5

_KL_BINS = 100


def _null_kl(n, bins=_KL_BINS, repeats=20, seed=0):
    """Mean histogram-KL of ``n`` draws from N(0, 1) itself (the estimate's bias)."""
    from .metrics import kl_divergence_to_normal

    rng = np.random.default_rng(seed)
    return float(np.mean(kl_divergence_to_normal(rng.normal(size=(n, repeats)), bins=bins)))


def latent_warnings(Z, max_kl=None, *, max_correlation=MAX_LATENT_CORRELATION,
                    bins=_KL_BINS):
    """Warnings about a latent space that make its features hard to read.

    Three checks, each giving one sentence saying what was found and what it
    means for interpretation:

    - a latent feature is constant (the latent space collapsed);
    - two latent features are correlated, ``|r| > max_correlation``
      (:data:`MAX_LATENT_CORRELATION`, 0.5): they encode overlapping image
      properties, so a traversal of one changes what the other shows;
    - the largest per-feature KL divergence to N(0, 1) exceeds ``max_kl``
      (the model's stopping threshold): the latent values are not on the
      prior's scale, so traversal ranges and decoded grids in prior s.d. may
      leave the region the cells occupy. With fewer than 1,000 latent vectors
      the sentence also gives what a sample of that size drawn from N(0, 1)
      itself scores (the histogram estimate is biased upwards for small sets).

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_dims)
        Latent vectors (at least two).
    max_kl : float, optional
        KL threshold; no KL check when None.
    max_correlation : float, default=MAX_LATENT_CORRELATION
        Correlation threshold.
    bins : int, default=100
        Histogram bins of the KL estimate
        (:func:`~ai4cellfate.metrics.kl_divergence_to_normal`).

    Returns
    -------
    list of str
        Empty when no check fires.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=5000)
    >>> latent_warnings(np.c_[z, rng.normal(size=5000)], max_kl=0.2)
    []
    >>> msgs = latent_warnings(np.c_[z, z + 0.5 * rng.normal(size=5000)])
    >>> msgs[0].startswith("Latent features z0 and z1 are correlated (r = 0.89")
    True
    """
    from .metrics import kl_divergence_to_normal, latent_correlation

    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim == 1:
        Z = Z[:, None]
    if Z.ndim != 2 or len(Z) < 2 or not np.all(np.isfinite(Z)):
        raise ValueError(f"Z must be a finite 2-D array with at least 2 rows, got {Z.shape}.")
    out = []
    std = Z.std(axis=0)
    constant = np.flatnonzero(std < 1e-6)
    if constant.size:
        names = ", ".join(f"z{d}" for d in constant)
        out.append(
            f"The latent space collapsed: {names} {'is' if constant.size == 1 else 'are'} "
            "constant over these cells, so it carries no information and its traversal "
            "shows nothing. Check the crops (are they informative?) or the loss weights."
        )
        return out
    if Z.shape[1] > 1:
        corr = latent_correlation(Z)
        pairs = [(abs(corr[i, j]), i, j, corr[i, j])
                 for i in range(Z.shape[1]) for j in range(i + 1, Z.shape[1])
                 if np.isfinite(corr[i, j]) and abs(corr[i, j]) > max_correlation]
        for _, i, j, r in sorted(pairs, reverse=True):
            out.append(
                f"Latent features z{i} and z{j} are correlated (r = {r:.2f}; |r| > "
                f"{max_correlation:g}): they encode overlapping image properties, so a "
                f"traversal along z{i} also moves cells along what z{j} encodes, and the "
                "reading of each feature mixes the two."
            )
    if max_kl is not None:
        kl = kl_divergence_to_normal(Z, bins=bins)
        d = int(np.argmax(kl))
        if kl[d] > max_kl:
            text = (
                f"The latent space is far from the N(0, 1) prior (KL divergence of z{d} "
                f"{kl[d]:.2f} > max_kl = {max_kl:g}): latent values are not on the prior's "
                "scale, so traversals and decoded grids in prior s.d. may reach regions "
                "where no cells lie, and images decoded there can be unrealistic."
            )
            if len(Z) < 1000:
                text += (
                    f" Estimated from {len(Z)} cells: a sample of that size drawn from "
                    f"N(0, 1) itself scores about {_null_kl(len(Z), bins):.2f}."
                )
            out.append(text)
    return out


def fate_separation(Z, y, pos_label=None):
    """Standardised difference between the fates along each latent feature.

    Cohen's d: (mean of the positive fate - mean of the others) / pooled
    standard deviation, per latent dimension.

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_dims)
        Latent vectors.
    y : array-like of shape (n_samples,)
        Fates.
    pos_label : label, optional
        The positive fate; 1 when present, else the largest label.

    Returns
    -------
    numpy.ndarray of shape (n_dims,)
        NaN where a fate has fewer than two cells or the spread is zero.
    """
    Z = np.asarray(Z, dtype=np.float64)
    y = np.asarray(y)
    labels = np.unique(y)
    if pos_label is None:
        pos_label = 1 if 1 in labels.tolist() else labels[-1]
    a, b = Z[y == pos_label], Z[y != pos_label]
    if len(a) < 2 or len(b) < 2:
        return np.full(Z.shape[1], np.nan)
    pooled = np.sqrt(((len(a) - 1) * a.var(axis=0, ddof=1) + (len(b) - 1) * b.var(axis=0, ddof=1))
                     / (len(a) + len(b) - 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        d = (a.mean(axis=0) - b.mean(axis=0)) / pooled
    d[~np.isfinite(d)] = np.nan
    return d


_WORDS = {  # measurement -> (word when it grows, word when it shrinks)
    "area": ("larger", "smaller"),
    "mean_intensity": ("brighter", "dimmer"),
    "aspect_ratio": ("wider", "narrower"),
    "circularity": ("rounder", "less round"),
}


def latent_feature_readings(trends, effects, separation=None, *,
                            min_trend=READING_MIN_TREND, min_change=READING_MIN_CHANGE,
                            positive="fate 1"):
    """One sentence per latent feature from its traversal.

    Parameters
    ----------
    trends : pandas.DataFrame
        :func:`~ai4cellfate.interpret.traversal_trends` (rank correlation per
        dimension and measurement).
    effects : pandas.DataFrame
        :func:`~ai4cellfate.interpret.traversal_effects` with
        ``relative=True`` (change over the traversal / typical value).
    separation : array-like of shape (n_dims,), optional
        :func:`fate_separation` of the evaluated cells; adds the fate
        association and marks the "fate axis".
    min_trend, min_change : float
        See :data:`READING_MIN_TREND`, :data:`READING_MIN_CHANGE`.
    positive : str, default="fate 1"
        Name of the positive fate (that of :func:`fate_separation`).

    Returns
    -------
    dict of str to str
        ``{"z0": "z0: larger, brighter nuclei as z0 grows; fate axis ...", ...}``.

    Examples
    --------
    >>> import pandas as pd
    >>> trends = pd.DataFrame({"area": [0.98, 0.1], "mean_intensity": [0.9, -0.2]},
    ...                       index=["z0", "z1"])
    >>> effects = pd.DataFrame({"area": [0.8, 0.02], "mean_intensity": [0.3, -0.01]},
    ...                        index=["z0", "z1"])
    >>> r = latent_feature_readings(trends, effects, separation=[1.4, 0.1])
    >>> print(r["z0"])
    z0: larger, brighter nuclei as z0 grows; the fate axis: fate 1 cells lie at higher z0 (d = 1.40).
    >>> r["z1"]
    'z1: no clear change in size, intensity or shape; unrelated to fate (d = 0.10).'
    """
    dims = list(trends.index)
    sep = None if separation is None else np.asarray(separation, dtype=float)
    axis = None
    if sep is not None and np.isfinite(sep).any():
        mag = np.where(np.isfinite(sep), np.abs(sep), -np.inf)
        order = np.argsort(mag)[::-1]
        best = order[0]
        second = mag[order[1]] if len(order) > 1 else 0.0
        if mag[best] >= FATE_AXIS_MIN_D and mag[best] >= 2 * max(second, 0.0):
            axis = best
    pos = positive
    out = {}
    for k, d in enumerate(dims):
        words = []
        for m, (up, down) in _WORDS.items():
            if m not in trends.columns or m not in effects.columns:
                continue
            rho, change = trends.loc[d, m], effects.loc[d, m]
            if np.isfinite(rho) and np.isfinite(change) and abs(rho) >= min_trend \
                    and abs(change) >= min_change:
                words.append(up if change > 0 else down)
        text = (f"{d}: {', '.join(words)} nuclei as {d} grows" if words
                else f"{d}: no clear change in size, intensity or shape")
        if sep is not None and k < len(sep) and np.isfinite(sep[k]):
            s = sep[k]
            side = "higher" if s > 0 else "lower"
            if axis == k:
                text += f"; the fate axis: {pos} cells lie at {side} {d} (d = {s:.2f})"
            elif abs(s) >= FATE_AXIS_MIN_D:
                text += f"; separates the fates: {pos} cells lie at {side} {d} (d = {s:.2f})"
            elif abs(s) >= 0.2:
                text += f"; weakly related to fate (d = {s:.2f})"
            else:
                text += f"; unrelated to fate (d = {s:.2f})"
        out[str(d)] = text + "."
    return out
