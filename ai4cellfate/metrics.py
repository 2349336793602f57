"""Metrics and latent-space diagnostics.

Classification metrics in the preprint's sense and the latent diagnostics that
AI4CellFate uses as stopping criteria.

Classification
    :func:`balanced_accuracy` (the preprint's "accuracy": the mean of the
    diagonal of the row-normalised confusion matrix), :func:`precision` (which
    class it refers to is an argument, ``pos_label``), :func:`confusion_matrix`
    (row-normalised by default) and :func:`fate_report`, a table of all of them.
    :data:`balanced_accuracy_scorer`, :func:`make_precision_scorer` and
    :func:`fate_scorers` make them usable wherever scikit-learn takes a
    ``scoring`` argument.

Latent diagnostics
    :func:`kl_divergence_to_normal` (the preprint's histogram estimate),
    :func:`latent_correlation` and :func:`max_abs_correlation` (Pearson
    correlation between latent features), :func:`centroid_distance` (distance
    between class centroids), :func:`normality_test` (per dimension) and
    :func:`latent_diagnostics`, all of them at once.

A note on "precision"
    The preprint's precision is ``TP / (TP + FP)``; the reference code reports
    the precision of class 0 computed from the *row-normalised* confusion
    matrix, ``C[0, 0] / (C[0, 0] + C[1, 0])`` with ``C`` normalised per true
    class. That quantity is the precision one would get if both classes were
    equally frequent; it differs from the ordinary precision whenever the
    classes are imbalanced. Here :func:`precision` is the ordinary precision of
    the class ``pos_label`` (fate 1, "divides", by default);
    ``precision(..., pos_label=0, balanced=True)`` reproduces the reference
    code's number.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import pdist
from sklearn import metrics as _sk_metrics
from sklearn.metrics import make_scorer

__all__ = [
    "balanced_accuracy",
    "precision",
    "confusion_matrix",
    "fate_report",
    "balanced_accuracy_scorer",
    "make_precision_scorer",
    "fate_scorers",
    "kl_divergence_to_normal",
    "latent_correlation",
    "max_abs_correlation",
    "centroid_distance",
    "normality_test",
    "latent_diagnostics",
]


# --------------------------------------------------------------------------
# Input checking
# --------------------------------------------------------------------------


def _as_labels(y, name):
    try:
        y = np.asarray(y)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name} must be array-like of class labels.") from exc
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D array of class labels, got shape {y.shape}."
        )
    if y.dtype.kind == "O" or y.dtype.kind in "US":
        return y
    if y.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold class labels, got dtype {y.dtype}.")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)):
            raise ValueError(f"{name} contains NaN or infinite values.")
        if not np.all(y == np.round(y)):
            raise ValueError(
                f"{name} holds non-integer numbers; pass class labels "
                "(for example model.predict(X)), not probabilities."
            )
    return y


def _check_targets(y_true, y_pred):
    y_true = _as_labels(y_true, "y_true")
    y_pred = _as_labels(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise ValueError(
            f"y_true and y_pred must have the same length, got {len(y_true)} "
            f"and {len(y_pred)}."
        )
    if len(y_true) == 0:
        raise ValueError("y_true and y_pred are empty.")
    if (y_true.dtype.kind in "US") != (y_pred.dtype.kind in "US") and (
        "O" not in (y_true.dtype.kind, y_pred.dtype.kind)
    ):
        raise TypeError(
            "y_true and y_pred must hold labels of one comparable type "
            f"(all numbers or all strings), got {y_true.dtype} and {y_pred.dtype}."
        )
    try:
        labels = np.unique(np.concatenate([y_true, y_pred]))
    except TypeError as exc:
        raise TypeError(
            "y_true and y_pred must hold labels of one comparable type "
            "(all numbers or all strings)."
        ) from exc
    return y_true, y_pred, labels


def _check_labels_arg(labels, present):
    if labels is None:
        return present
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) == 0:
        raise ValueError(f"labels must be a non-empty 1-D sequence, got {labels!r}.")
    if len(np.unique(labels)) != len(labels):
        raise ValueError(f"labels must not repeat a class, got {labels.tolist()}.")
    missing = [c for c in present.tolist() if c not in labels.tolist()]
    if missing:
        raise ValueError(
            f"labels {labels.tolist()} does not contain the classes {missing} "
            "found in y_true or y_pred."
        )
    return labels


def _default_pos_label(labels):
    values = set(labels.tolist())
    if values <= {0, 1}:
        return 1
    if len(labels) == 2:
        return labels[1].item() if hasattr(labels[1], "item") else labels[1]
    raise ValueError(
        f"pos_label must be given when the labels are {sorted(values)!r}: "
        "the default (fate 1, the second class) is only defined for binary "
        "labels."
    )


def _label_name(label):
    """Name of a class in report keys: ``fate0``, ``fate1``, or the label itself."""
    if isinstance(label, (bool, np.bool_)):
        return f"fate{int(label)}"
    if isinstance(label, numbers.Integral):
        return f"fate{int(label)}"
    if isinstance(label, numbers.Real) and float(label).is_integer():
        return f"fate{int(label)}"
    return str(label)


# --------------------------------------------------------------------------
# Classification metrics
# --------------------------------------------------------------------------


def confusion_matrix(y_true, y_pred, *, labels=None, normalize="true"):
    """Confusion matrix, row-normalised by default.

    Entry ``[i, j]`` counts the cells of true class ``labels[i]`` predicted as
    ``labels[j]``. With ``normalize="true"`` (the default, as in the preprint)
    every row is divided by its sum, so the diagonal holds the per-class
    recall and its mean is the :func:`balanced_accuracy`. The counts come
    from :func:`sklearn.metrics.confusion_matrix`; unlike there, normalised
    rows (columns) of classes that never occur are NaN rather than 0.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True fates.
    y_pred : array-like of shape (n_samples,)
        Predicted fates (class labels, not probabilities).
    labels : array-like, default=None
        Class order of the rows and columns; by default the sorted union of
        the labels in ``y_true`` and ``y_pred``. It must contain every label
        that occurs.
    normalize : {"true", "pred", "all"} or None, default="true"
        ``"true"``: divide each row by its sum (rows of classes that never
        occur in ``y_true`` are NaN); ``"pred"``: divide each column by its
        sum; ``"all"``: divide by the number of samples; ``None``: counts.

    Returns
    -------
    cm : ndarray of shape (n_classes, n_classes)
        Float array when normalised, integer counts otherwise.

    Examples
    --------
    >>> y_true = [0, 0, 0, 0, 1, 1]
    >>> y_pred = [0, 0, 0, 1, 1, 0]
    >>> confusion_matrix(y_true, y_pred, normalize=None)
    array([[3, 1],
           [1, 1]])
    >>> confusion_matrix(y_true, y_pred)
    array([[0.75, 0.25],
           [0.5 , 0.5 ]])
    """
    y_true, y_pred, present = _check_targets(y_true, y_pred)
    labels = _check_labels_arg(labels, present)
    if normalize not in ("true", "pred", "all", None):
        raise ValueError(
            f"normalize must be 'true', 'pred', 'all' or None, got {normalize!r}."
        )
    with warnings.catch_warnings():
        # ``labels`` is always passed, so a 1 x 1 matrix is the one asked for.
        warnings.filterwarnings("ignore", "A single label was found")
        cm = _sk_metrics.confusion_matrix(y_true, y_pred, labels=labels)
    cm = cm.astype(np.int64)
    if normalize is None:
        return cm
    # Normalised here rather than by scikit-learn, which turns the rows (or
    # columns) of absent classes into 0; here they are NaN, as documented.
    cm = cm.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if normalize == "true":
            return cm / cm.sum(axis=1, keepdims=True)
        if normalize == "pred":
            return cm / cm.sum(axis=0, keepdims=True)
        return cm / cm.sum()


def balanced_accuracy(y_true, y_pred):
    """Balanced accuracy: the preprint's "accuracy".

    The mean over the classes present in ``y_true`` of the fraction of that
    class predicted correctly, i.e. the mean of the diagonal of the
    row-normalised :func:`confusion_matrix`. Chance level is ``1 / n_classes``
    whatever the class balance (0.5 for two fates). Computed by
    :func:`sklearn.metrics.balanced_accuracy_score`, after this module's
    checks of the labels (predicted classes absent from ``y_true`` are
    ignored without a warning).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True fates.
    y_pred : array-like of shape (n_samples,)
        Predicted fates.

    Returns
    -------
    score : float
        Between 0 and 1.

    Examples
    --------
    >>> balanced_accuracy([0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 0])
    0.625
    """
    y_true, y_pred, _ = _check_targets(y_true, y_pred)
    with warnings.catch_warnings():
        # Predicted classes absent from y_true do not count (documented above).
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", "A single label was found")
        return float(_sk_metrics.balanced_accuracy_score(y_true, y_pred))


def precision(y_true, y_pred, *, pos_label=None, balanced=False, zero_division=0.0):
    """Precision of one fate: of the cells predicted as ``pos_label``, the
    fraction that truly are.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True fates.
    y_pred : array-like of shape (n_samples,)
        Predicted fates.
    pos_label : label, default=None
        The class the precision refers to. ``None`` means fate 1 ("divides")
        for 0/1 labels, or the second of the two sorted labels otherwise.
    balanced : bool, default=False
        If true, compute the precision from the row-normalised confusion
        matrix, ``C[p, p] / sum_c C[c, p]``: the precision one would observe
        if every true class were equally frequent. The preprint's reference
        code reports ``precision(..., pos_label=0, balanced=True)``; the
        ordinary precision (``balanced=False``) depends on class prevalence
        and is what ``TP / (TP + FP)`` in the preprint's text means
        (:func:`sklearn.metrics.precision_score` computes it).
    zero_division : float, default=0.0
        Value returned when no cell is predicted as ``pos_label``.

    Returns
    -------
    score : float
        Between 0 and 1.

    See Also
    --------
    fate_report : all classes' precisions at once, named by class.

    Examples
    --------
    >>> y_true = [0, 0, 0, 0, 1, 1]
    >>> y_pred = [0, 0, 0, 1, 1, 0]
    >>> precision(y_true, y_pred)  # fate 1: 1 of 2 predicted divisions is right
    0.5
    >>> precision(y_true, y_pred, pos_label=0)
    0.75
    >>> round(precision(y_true, y_pred, pos_label=0, balanced=True), 4)
    0.6
    """
    y_true, y_pred, labels = _check_targets(y_true, y_pred)
    if not isinstance(balanced, (bool, np.bool_)):
        raise TypeError(f"balanced must be True or False, got {balanced!r}.")
    if pos_label is None:
        pos_label = _default_pos_label(labels)
    elif len(labels) >= 2 and pos_label not in labels.tolist():
        raise ValueError(
            f"pos_label={pos_label!r} is not one of the labels {labels.tolist()}."
        )
    if not np.any(y_pred == pos_label):
        return float(zero_division)
    if not balanced:
        return float(
            _sk_metrics.precision_score(
                y_true, y_pred, labels=[pos_label], average=None, zero_division=0.0
            )[0]
        )
    # Column pos_label of the row-normalised matrix, over the true classes
    # (rows of classes absent from y_true are NaN and do not count).
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    p = labels.tolist().index(pos_label)
    if not np.isfinite(cm[p, p]):  # pos_label never occurs in y_true
        return 0.0
    return float(cm[p, p] / np.nansum(cm[:, p]))


def fate_report(y_true, y_pred, *, labels=None):
    """Table of the fate-classification metrics.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True fates.
    y_pred : array-like of shape (n_samples,)
        Predicted fates.
    labels : array-like, default=None
        Classes to report, in order; by default the sorted union of the
        labels in ``y_true`` and ``y_pred``.

    Returns
    -------
    report : pandas.DataFrame
        Index ``metric``, one column ``value``. Rows: ``balanced_accuracy``;
        ``precision_<class>`` for every class (``precision_fate1`` is the
        precision of fate 1, ``TP / (TP + FP)`` with fate 1 as positive);
        ``confusion_true_<a>_pred_<b>``, the row-normalised confusion matrix;
        ``n_<class>``, the number of true cells of every class. Integer labels
        are named ``fate0``, ``fate1``, ...; other labels by their string.

    Examples
    --------
    >>> report = fate_report([0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 0])
    >>> report.loc["balanced_accuracy", "value"]
    np.float64(0.625)
    >>> report.loc["precision_fate1", "value"]
    np.float64(0.5)
    >>> report.loc["confusion_true_fate0_pred_fate1", "value"]
    np.float64(0.25)
    """
    y_true, y_pred, present = _check_targets(y_true, y_pred)
    labels = _check_labels_arg(labels, present)
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    names = [_label_name(c) for c in labels.tolist()]
    rows = {"balanced_accuracy": balanced_accuracy(y_true, y_pred)}
    for c, name in zip(labels.tolist(), names):
        rows[f"precision_{name}"] = precision(
            y_true, y_pred, pos_label=c, zero_division=np.nan
        )
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            rows[f"confusion_true_{a}_pred_{b}"] = cm[i, j]
    for c, name in zip(labels.tolist(), names):
        rows[f"n_{name}"] = float(np.sum(y_true == c))
    report = pd.DataFrame({"value": pd.Series(rows, dtype=float)})
    report.index.name = "metric"
    return report


#: Scikit-learn scorer for :func:`balanced_accuracy` (pass as ``scoring=``).
balanced_accuracy_scorer = make_scorer(balanced_accuracy)


def make_precision_scorer(pos_label=1, *, balanced=False):
    """Scikit-learn scorer for the :func:`precision` of one fate.

    Parameters
    ----------
    pos_label : label, default=1
        The class the precision refers to (fate 1, "divides", by default).
    balanced : bool, default=False
        Compute it from the row-normalised confusion matrix (see
        :func:`precision`).

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y)``, as made by
        :func:`sklearn.metrics.make_scorer`.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import cross_val_score
    >>> X = np.r_[np.zeros(10), np.ones(10)][:, None]
    >>> y = np.r_[np.zeros(10, int), np.ones(10, int)]
    >>> cross_val_score(LogisticRegression(), X, y, cv=2,
    ...                 scoring=make_precision_scorer(pos_label=1)).tolist()
    [1.0, 1.0]
    """
    if not isinstance(balanced, (bool, np.bool_)):
        raise TypeError(f"balanced must be True or False, got {balanced!r}.")
    return make_scorer(precision, pos_label=pos_label, balanced=bool(balanced))


def fate_scorers(labels=(0, 1)):
    """Scorers for :func:`sklearn.model_selection.cross_validate`.

    Parameters
    ----------
    labels : sequence, default=(0, 1)
        The classes for which to score precision.

    Returns
    -------
    scorers : dict
        ``{"balanced_accuracy": ..., "precision_fate0": ...,
        "precision_fate1": ...}`` (keys named as in :func:`fate_report`).

    Examples
    --------
    >>> sorted(fate_scorers())
    ['balanced_accuracy', 'precision_fate0', 'precision_fate1']
    """
    labels = list(np.atleast_1d(np.asarray(labels)).tolist())
    if not labels:
        raise ValueError("labels must name at least one class.")
    scorers = {"balanced_accuracy": balanced_accuracy_scorer}
    for c in labels:
        scorers[f"precision_{_label_name(c)}"] = make_precision_scorer(c)
    return scorers


# --------------------------------------------------------------------------
# Latent diagnostics
# --------------------------------------------------------------------------


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

    Notes
    -----
    The estimate is biased upwards for small samples: with 100 bins, a sample
    drawn from N(0, 1) itself scores on average about 0.53 for 100 samples,
    0.34 for 160, 0.13 for 400, 0.05 for 1,000 and 0.01 for 4,000. A
    threshold such as the preprint's 0.2 is therefore only reachable with a
    few hundred samples or more; use fewer ``bins`` for small sets, and
    compare values computed on sets of similar size.

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
    return float(pdist(centroids).min())


def _as_latent(Z, min_samples=2):
    try:
        Z = np.asarray(Z, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError("Z must be a numeric array of latent vectors.") from exc
    if Z.ndim == 1:
        Z = Z[:, None]
    if Z.ndim != 2 or Z.shape[0] < min_samples or Z.shape[1] < 1:
        raise ValueError(
            f"Z must be a 2-D array (n_samples, n_dims) with at least "
            f"{min_samples} samples, got shape {Z.shape}."
        )
    if not np.all(np.isfinite(Z)):
        raise ValueError("Z contains NaN or infinite values.")
    return Z


def latent_correlation(Z):
    """Pearson correlation matrix between latent features.

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_dims)
        Latent vectors.

    Returns
    -------
    corr : ndarray of shape (n_dims, n_dims)
        ``corr[i, j]`` is the Pearson correlation of dimensions ``i`` and
        ``j``. Rows and columns of a constant (collapsed) dimension are NaN.

    See Also
    --------
    max_abs_correlation : the largest off-diagonal magnitude, one number.

    Examples
    --------
    >>> latent_correlation([[1, 1], [2, 3], [3, 2], [4, 4]])
    array([[1. , 0.8],
           [0.8, 1. ]])
    """
    Z = _as_latent(Z)
    norm = np.sqrt(((Z - Z.mean(axis=0)) ** 2).sum(axis=0))
    # Dimensions whose spread is rounding noise count as constant.
    constant = norm <= 1e-12 * np.maximum(np.abs(Z).max(axis=0), 1.0) * np.sqrt(
        len(Z)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.atleast_2d(np.corrcoef(Z, rowvar=False))
    corr = np.clip(corr, -1.0, 1.0)
    np.fill_diagonal(corr, 1.0)
    corr[constant, :] = np.nan
    corr[:, constant] = np.nan
    return corr


def max_abs_correlation(Z):
    """Largest absolute Pearson correlation between two latent features.

    The preprint reports 0.06 between its two engineered features.

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_dims)
        Latent vectors.

    Returns
    -------
    value : float
        ``max |corr[i, j]|`` over ``i != j``, ignoring constant dimensions;
        NaN with fewer than two (non-constant) dimensions.

    Examples
    --------
    >>> round(max_abs_correlation([[1, 1], [2, 3], [3, 2], [4, 4]]), 6)
    0.8
    """
    corr = latent_correlation(Z)
    off = corr[~np.eye(len(corr), dtype=bool)]
    off = off[np.isfinite(off)]
    if off.size == 0:
        return float("nan")
    return float(np.abs(off).max())


_NORMALITY_MIN_SAMPLES = {"normaltest": 8, "shapiro": 3, "ks": 1}


def normality_test(Z, *, method="normaltest"):
    """Test every latent dimension for normality.

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_dims)
        Latent vectors.
    method : {"normaltest", "shapiro", "ks"}, default="normaltest"
        ``"normaltest"``: D'Agostino and Pearson's omnibus test
        (:func:`scipy.stats.normaltest`, at least 8 samples; any mean and
        variance); ``"shapiro"``: Shapiro-Wilk (:func:`scipy.stats.shapiro`,
        at least 3 samples); ``"ks"``: Kolmogorov-Smirnov against the prior
        N(0, 1) itself (:func:`scipy.stats.kstest`), which also rejects a
        shifted or scaled Gaussian.

    Returns
    -------
    result : pandas.DataFrame
        Index ``dimension`` (``z0``, ``z1``, ...), columns ``statistic`` and
        ``pvalue``. A small p-value is evidence against normality. Both are
        NaN for a constant dimension with ``"normaltest"`` and ``"shapiro"``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> Z = np.c_[rng.normal(size=500), rng.exponential(size=500)]
    >>> (normality_test(Z)["pvalue"] < 0.01).tolist()
    [False, True]
    """
    if method not in _NORMALITY_MIN_SAMPLES:
        raise ValueError(
            f"method must be one of {sorted(_NORMALITY_MIN_SAMPLES)}, got {method!r}."
        )
    n_min = _NORMALITY_MIN_SAMPLES[method]
    Z = _as_latent(Z, min_samples=1)
    if len(Z) < n_min:
        raise ValueError(
            f"normality_test with method={method!r} needs at least {n_min} "
            f"samples, Z has {len(Z)}."
        )
    out = np.full((Z.shape[1], 2), np.nan)
    for d in range(Z.shape[1]):
        z = Z[:, d]
        if method == "ks":
            res = stats.kstest(z, "norm")
        elif np.ptp(z) <= 1e-12 * max(np.abs(z).max(), 1.0):
            continue
        elif method == "normaltest":
            res = stats.normaltest(z)
        else:
            res = stats.shapiro(z)
        out[d] = float(res.statistic), float(res.pvalue)
    index = pd.Index([f"z{d}" for d in range(Z.shape[1])], name="dimension")
    return pd.DataFrame(out, index=index, columns=["statistic", "pvalue"])


def latent_diagnostics(Z, y=None, *, bins=100, normality="normaltest"):
    """All latent-space diagnostics of a set of latent vectors.

    The stopping criteria of AI4CellFate's second training stage are
    ``centroid_distance`` (class separation) and ``kl_max`` (near-Gaussian
    latent); the correlation between features and the normality tests
    describe the latent space further.

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_dims)
        Latent vectors.
    y : array-like of shape (n_samples,), default=None
        Fates; needed for ``centroid_distance`` (NaN without it).
    bins : int, default=100
        Histogram bins of the KL estimate (:func:`kl_divergence_to_normal`).
    normality : {"normaltest", "shapiro", "ks"}, default="normaltest"
        Test used for the ``normality_pvalue_z*`` entries
        (:func:`normality_test`); they are NaN when there are too few samples.

    Returns
    -------
    diagnostics : pandas.Series of float
        ``kl_z0``, ``kl_z1``, ... (one per dimension), ``kl_max``,
        ``centroid_distance``, ``max_abs_correlation``, ``corr_z<i>_z<j>``
        for every pair ``i < j``, and ``normality_pvalue_z0``, ... .

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 500)
    >>> Z = rng.normal(size=(1000, 2)) + np.c_[y, y] * 0.6
    >>> d = latent_diagnostics(Z, y)
    >>> d.index.tolist()  # doctest: +NORMALIZE_WHITESPACE
    ['kl_z0', 'kl_z1', 'kl_max', 'centroid_distance', 'max_abs_correlation',
     'corr_z0_z1', 'normality_pvalue_z0', 'normality_pvalue_z1']
    >>> bool(0.7 < d["centroid_distance"] < 1.0)
    True
    """
    Z = _as_latent(Z)
    if normality not in _NORMALITY_MIN_SAMPLES:
        raise ValueError(
            f"normality must be one of {sorted(_NORMALITY_MIN_SAMPLES)}, "
            f"got {normality!r}."
        )
    n_dims = Z.shape[1]
    out = {}
    kl = kl_divergence_to_normal(Z, bins=bins)
    for d in range(n_dims):
        out[f"kl_z{d}"] = kl[d]
    out["kl_max"] = float(np.max(kl))
    if y is None:
        out["centroid_distance"] = np.nan
    else:
        y = _as_labels(y, "y")
        if len(y) != len(Z):
            raise ValueError(
                f"y must have one label per row of Z, got {len(y)} labels for "
                f"{len(Z)} rows."
            )
        out["centroid_distance"] = centroid_distance(Z, y)
    corr = latent_correlation(Z)
    out["max_abs_correlation"] = max_abs_correlation(Z)
    for i in range(n_dims):
        for j in range(i + 1, n_dims):
            out[f"corr_z{i}_z{j}"] = corr[i, j]
    if len(Z) >= _NORMALITY_MIN_SAMPLES[normality]:
        with warnings.catch_warnings():
            # scipy warns that kurtosistest is approximate for n < 20.
            warnings.simplefilter("ignore")
            pvalues = normality_test(Z, method=normality)["pvalue"].to_numpy()
    else:
        pvalues = np.full(n_dims, np.nan)
    for d in range(n_dims):
        out[f"normality_pvalue_z{d}"] = pvalues[d]
    return pd.Series(out, dtype=float)
