"""The preprint's studies, each one call returning a tidy DataFrame.

Every study cross-validates: the crops are split into folds (by default
:class:`~sklearn.model_selection.StratifiedGroupKFold` when ``groups`` are
given, so that correlated cells of one lineage never sit on both sides of a
split, and :class:`~sklearn.model_selection.StratifiedKFold` otherwise), every
model is fitted on the training part of a fold only and scored on its test
part. Anything fitted (scalers, the choice of the best feature pair, the
autoencoder's validation split) sees the training part only. Folds (and
seeds, and settings) run in parallel with ``n_jobs`` through :mod:`joblib`.

The result has one row per model, setting, fold and seed, with at least the
columns ``model``, ``fold``, ``seed``, ``balanced_accuracy`` (the preprint's
"accuracy") and ``precision`` (of fate 1, "divides", unless ``pos_label``
says otherwise), ``n_train`` and ``n_test``, plus the study's own setting:

================================  ====================================
study                             setting column(s)
================================  ====================================
:func:`compare_models`            ``features``
:func:`ablation`                  ``setting``
:func:`latent_dim_study`          ``latent_dim`` (+ correlations)
:func:`label_budget_study`        ``budget``, ``n_labelled``
:func:`time_point_study`          ``time_point``
:func:`beyond_preprint`           ``variant``, ``dataset`` (+ AUC,
                                  prevalence-free precision, fit time,
                                  latent correlation and KL)
================================  ====================================

:func:`summarize` averages any of them over folds and seeds; :func:`spread`
separates the spread over folds from the spread over seeds and compares
every model with a reference on the same folds. Matching figures
are in :mod:`ai4cellfate.plotting` (``plot_model_comparison``,
``plot_ablation``, ``plot_latent_dim_study``, ``plot_label_budget``,
``plot_time_points``).
"""

from __future__ import annotations

import inspect
import itertools
import logging
import numbers
import time

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from . import metrics as _metrics

_log = logging.getLogger(__name__)

__all__ = [
    "ABLATIONS",
    "BEYOND_BASELINES",
    "BEYOND_VARIANTS",
    "COMPARE_MODELS",
    "ablation",
    "beyond_preprint",
    "compare_models",
    "label_budget_study",
    "latent_dim_study",
    "make_cv",
    "make_extended_latent",
    "make_hybrid",
    "make_latent_trajectory",
    "reselect",
    "spread",
    "summarize",
    "time_point_study",
]

#: Models of :func:`compare_models`, in the order they are reported.
COMPARE_MODELS = (
    "CellFateAAE",
    "CellFateAAE (no engineering)",
    "OptimisedMLP",
    "LogisticRegression",
    "SimpleClassifier (best pair)",
    "SimpleClassifier (pair)",
    "OptimisedMLP (best pair)",
    "OptimisedMLP (pair)",
)

#: Settings of :func:`ablation`: name -> CellFateAAE parameters changed.
ABLATIONS = {
    "full": {},
    "no reconstruction": {"lambda_recon": 0.0},
    "no adversarial": {"lambda_adv": 0.0},
    "no contrastive": {"lambda_contra": 0.0},
    "no covariance": {"lambda_cov": 0.0},
    "no engineering": {"lambda_contra": 0.0, "lambda_cov": 0.0},
    "reconstruction only": {"lambda_adv": 0.0, "lambda_contra": 0.0, "lambda_cov": 0.0},
}

_BUDGET_MODELS = ("CellFateAAE", "LogisticRegression")
_METRICS = (
    "balanced_accuracy",
    "auc",
    "precision",
    "balanced_precision",
    "max_abs_correlation",
    "mean_abs_correlation",
    "centroid_distance",
    "latent_abs_corr",
    "latent_kl",
    "fit_seconds",
    "inner_balanced_accuracy",
)
_SETTING_COLUMNS = ("model", "features", "setting", "latent_dim", "budget", "time_point",
                    "variant")

#: Variants of :func:`beyond_preprint`, in the order they are reported.
BEYOND_VARIANTS = ("preprint", "seed ensemble", "latent_dim 3", "latent_dim 5",
                   "2-D + 3 extra", "hybrid")

#: Hand-picked baselines :func:`beyond_preprint` can run on the same folds.
BEYOND_BASELINES = (
    "LogisticRegression",
    "SimpleClassifier (best pair)",
    "OptimisedMLP",
    "OptimisedMLP (best pair)",
)
_BEYOND_DEFAULT_BASELINES = ("LogisticRegression", "SimpleClassifier (best pair)")
_SELECTED = "selected"
_BEYOND_EXTRA = ("auc", "balanced_precision", "fit_seconds", "latent_abs_corr", "latent_kl",
                 "inner_balanced_accuracy", "chosen")


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _check_data(X, y, groups, pos_label):
    """Crops, binary labels and optional groups, checked before any work."""
    if isinstance(X, (str, bytes)) or not hasattr(X, "__len__"):
        raise TypeError(f"X must be an array of crops, got {type(X).__name__}.")
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"X must hold numbers, got dtype {X.dtype}.")
    if X.ndim not in (3, 4):
        raise ValueError(
            f"X must have shape (n, H, W) or (n, H, W, C), got shape {X.shape}."
        )
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or infinite values.")
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(X):
        raise ValueError(
            f"y must be a 1-D array with one label per crop ({len(X)}), got shape "
            f"{y.shape}."
        )
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(f"y must contain at least two fates, got {classes.tolist()}.")
    if len(classes) > 2 and pos_label is None:
        raise ValueError(
            f"y holds {len(classes)} classes {classes.tolist()}; the studies compare "
            "two fates (drop unknown outcomes first) or need pos_label for precision."
        )
    if pos_label is not None and pos_label not in classes.tolist():
        raise ValueError(f"pos_label={pos_label!r} is not a class of y {classes.tolist()}.")
    if groups is not None:
        groups = np.asarray(groups)
        if groups.ndim != 1 or len(groups) != len(X):
            raise ValueError(
                f"groups must be a 1-D array with one group per crop ({len(X)}), got "
                f"shape {groups.shape}."
            )
    return X, y, groups


def _check_seeds(seeds):
    if _is_int(seeds):
        seeds = (seeds,)
    try:
        seeds = tuple(seeds)
    except TypeError:
        raise TypeError(f"seeds must be an int or a sequence of ints, got {seeds!r}.") from None
    if not seeds or not all(_is_int(s) and s >= 0 for s in seeds):
        raise ValueError(
            f"seeds must be a non-empty sequence of non-negative ints, got {seeds!r}."
        )
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds!r}.")
    return tuple(int(s) for s in seeds)


def _check_n_jobs(n_jobs):
    if n_jobs is not None and (not _is_int(n_jobs) or n_jobs == 0):
        raise ValueError(f"n_jobs must be None or a non-zero int, got {n_jobs!r}.")


def _check_random_state(random_state):
    if random_state is not None and not (_is_int(random_state) and random_state >= 0):
        raise ValueError(
            f"random_state must be None or a non-negative int, got {random_state!r}."
        )


def _check_epochs(baseline_epochs):
    if not _is_int(baseline_epochs) or baseline_epochs < 1:
        raise ValueError(
            f"baseline_epochs must be a positive int, got {baseline_epochs!r}."
        )


def _check_models(models, allowed, name="models"):
    if models is None:
        return tuple(allowed)
    if isinstance(models, str):
        models = (models,)
    models = tuple(models)
    unknown = [m for m in models if m not in allowed]
    if unknown or not models:
        raise ValueError(f"{name} must name some of {list(allowed)}, got {list(models)}.")
    return tuple(m for m in allowed if m in models)


def _aae_template(aae, aae_params, study):
    """An unfitted CellFateAAE (or ``aae``) with ``aae_params`` set."""
    if aae is None:
        from .estimator import CellFateAAE  # lazy: keeps this module light

        aae = CellFateAAE()
    elif not all(hasattr(aae, m) for m in ("fit", "predict", "get_params", "set_params")):
        raise TypeError(
            f"aae must be an unfitted CellFateAAE-like estimator, got {type(aae).__name__}."
        )
    valid = aae.get_params(deep=False)
    unknown = sorted(set(aae_params) - set(valid))
    if unknown:
        raise TypeError(
            f"{study}() got unexpected keyword argument(s) {unknown}: extra keyword "
            f"arguments must be parameters of {type(aae).__name__}."
        )
    return clone(aae).set_params(**aae_params)


def _tabular(X, features, feature_names):
    """Region features of ``X`` (per-crop measurements: nothing is fitted)."""
    if features is None:
        from .features import RegionFeatures

        rf = RegionFeatures()
        F = rf.fit_transform(X)
        return F, [str(n) for n in rf.get_feature_names_out()]
    try:
        F = np.asarray(features, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError("features must be a numeric array (n_samples, n_features).") from None
    if F.ndim != 2 or len(F) != len(X) or F.shape[1] < 1:
        raise ValueError(
            f"features must have shape ({len(X)}, n_features), got {F.shape}."
        )
    if not np.all(np.isfinite(F)):
        raise ValueError("features contains NaN or infinite values.")
    if feature_names is None:
        names = [f"feature{i}" for i in range(F.shape[1])]
    else:
        names = [str(n) for n in feature_names]
        if len(names) != F.shape[1]:
            raise ValueError(
                f"feature_names has {len(names)} names for {F.shape[1]} feature columns."
            )
    return F, names


# --------------------------------------------------------------------------
# Cross-validation
# --------------------------------------------------------------------------


def make_cv(cv=5, groups=None, random_state=0):
    """The default splitter of the studies.

    Parameters
    ----------
    cv : int or splitter, default=5
        Number of folds; a splitter object (with ``split``) or an iterable of
        ``(train, test)`` index pairs is returned unchanged.
    groups : array-like, default=None
        Lineage (or cell) ids. When given, the folds are made by
        :class:`~sklearn.model_selection.StratifiedGroupKFold` so that no
        group is on both sides of a split; otherwise by
        :class:`~sklearn.model_selection.StratifiedKFold`.
    random_state : int or None, default=0
        Seed of the fold shuffling.

    Returns
    -------
    cv : splitter or iterable
        Something :func:`sklearn.model_selection.check_cv` understands.

    Examples
    --------
    >>> make_cv(3, groups=[0, 0, 1, 1, 2, 2])
    StratifiedGroupKFold(n_splits=3, random_state=0, shuffle=True)
    """
    if _is_int(cv):
        if cv < 2:
            raise ValueError(f"cv must be at least 2 folds, got {cv}.")
        if groups is not None:
            return StratifiedGroupKFold(n_splits=int(cv), shuffle=True, random_state=random_state)
        return StratifiedKFold(n_splits=int(cv), shuffle=True, random_state=random_state)
    if isinstance(cv, (str, bytes, float, bool)) or cv is None:
        raise TypeError(
            f"cv must be an int, a splitter or an iterable of (train, test) index pairs, "
            f"got {cv!r}."
        )
    if not (hasattr(cv, "split") or hasattr(cv, "__iter__")):
        raise TypeError(
            f"cv must be an int, a splitter or an iterable of (train, test) index pairs, "
            f"got {type(cv).__name__}."
        )
    return cv


def _folds(cv, y, groups, random_state, where=""):
    """Materialised, checked ``(train, test)`` index pairs."""
    splitter = make_cv(cv, groups, random_state)
    n = len(y)
    if hasattr(splitter, "split"):
        folds = list(splitter.split(np.zeros((n, 1)), y, groups))
    else:
        folds = list(splitter)
    if not folds:
        raise ValueError(f"cv gave no (train, test) splits{where}.")
    out = []
    for k, fold in enumerate(folds):
        try:
            train, test = (np.asarray(a, dtype=np.intp).ravel() for a in fold)
        except (TypeError, ValueError):
            raise TypeError(
                f"cv must give (train, test) index pairs; split {k} is {fold!r}."
            ) from None
        if len(train) == 0 or len(test) == 0:
            raise ValueError(f"cv split {k}{where} has an empty training or test set.")
        if train.min() < 0 or test.min() < 0 or max(train.max(), test.max()) >= n:
            raise ValueError(f"cv split {k}{where} has indices outside 0..{n - 1}.")
        if np.intersect1d(train, test).size:
            raise ValueError(f"cv split {k}{where} puts samples in training and test.")
        if len(np.unique(y[train])) < 2:
            raise ValueError(
                f"cv split {k}{where} has a single fate in its training set; use fewer "
                "folds."
            )
        if groups is not None:
            shared = np.intersect1d(groups[train], groups[test])
            if shared.size:
                raise ValueError(
                    f"cv split {k}{where} puts group(s) {shared[:5].tolist()} in both "
                    "training and test; with groups, use a group-aware splitter "
                    "(e.g. an int cv)."
                )
        out.append((train, test))
    return out


def _inner_split(y, groups, seed):
    """A stratified (group-aware) 3:1 split of a training set, for selection."""
    counts = np.unique(y, return_counts=True)[1]
    n_splits = int(min(4, counts.min()))
    if groups is not None:
        n_splits = min(n_splits, len(np.unique(groups)))
    if n_splits < 2:
        idx = np.arange(len(y))
        return idx, idx
    if groups is not None:
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    else:
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    train, val = next(splitter.split(np.zeros((len(y), 1)), y, groups))
    if len(np.unique(y[train])) < 2 or len(val) == 0:
        idx = np.arange(len(y))
        return idx, idx
    return train, val


def _run(function, tasks, n_jobs):
    """Run the (fold, seed, setting) tasks; log progress to ``ai4cellfate.studies``.

    One INFO line after the first task and then every 10 s or so (see
    :func:`ai4cellfate._logging.progress`), named after the calling study.
    """
    import sys

    from ._logging import progress

    tasks = list(tasks)
    study = sys._getframe(1).f_code.co_name  # the public study that called us
    if n_jobs is None or n_jobs == 1:
        results = (function(**task) for task in tasks)
    else:
        results = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(function)(**task) for task in tasks)
    results = list(progress(results, total=len(tasks), desc=study, log=_log,
                            unit="tasks"))
    return [row for rows in results for row in rows]


def _frame(rows, setting_columns, extra=()):
    columns = (
        ["model", *setting_columns, "fold", "seed", "balanced_accuracy", "precision"]
        + list(extra)
        + ["n_train", "n_test"]
    )
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=columns)
    return df[columns + [c for c in df.columns if c not in columns]]


# --------------------------------------------------------------------------
# Fitting and scoring inside one fold
# --------------------------------------------------------------------------


def _scores(y_true, y_pred, pos_label):
    return {
        "balanced_accuracy": _metrics.balanced_accuracy(y_true, y_pred),
        "precision": _metrics.precision(y_true, y_pred, pos_label=pos_label),
    }


def _logistic_regression(seed):
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed),
    )


def _fit_aae(template, seed, overrides, X, y, groups, train):
    est = clone(template).set_params(random_state=seed, **overrides)
    est.fit(X[train], y[train], groups=None if groups is None else groups[train])
    return est


def _latent_scores(Z, y):
    """Off-diagonal correlations and class separation of latent vectors."""
    out = {"max_abs_correlation": np.nan, "mean_abs_correlation": np.nan,
           "centroid_distance": np.nan}
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim == 2 and np.all(np.isfinite(Z)) and len(Z) >= 2:
        if Z.shape[1] >= 2:
            corr = _metrics.latent_correlation(Z)
            off = np.abs(corr[~np.eye(len(corr), dtype=bool)])
            if np.isfinite(off).any():
                out["max_abs_correlation"] = float(np.nanmax(off))
                out["mean_abs_correlation"] = float(np.nanmean(off))
        if len(np.unique(y)) >= 2:
            out["centroid_distance"] = _metrics.centroid_distance(Z, y)
    return out


def _compare_task(*, X, y, F, names, groups, train, test, fold, seed, models,
                  template, baseline_epochs, pos_label):
    rows = []
    y_test = y[test]

    def add(model, features, y_pred):
        rows.append({"model": model, "features": features, "fold": fold, "seed": seed,
                     **_scores(y_test, y_pred, pos_label),
                     "n_train": len(train), "n_test": len(test)})

    if "CellFateAAE" in models:
        est = _fit_aae(template, seed, {}, X, y, groups, train)
        add("CellFateAAE", "image", est.predict(X[test]))
    if "CellFateAAE (no engineering)" in models:
        est = _fit_aae(template, seed, ABLATIONS["no engineering"], X, y, groups, train)
        add("CellFateAAE (no engineering)", "image", est.predict(X[test]))
    if "OptimisedMLP" in models:
        from .baselines import OptimisedMLP

        clf = OptimisedMLP(epochs=baseline_epochs, random_state=seed).fit(F[train], y[train])
        add("OptimisedMLP", "region features", clf.predict(F[test]))
    if "LogisticRegression" in models:
        clf = _logistic_regression(seed).fit(F[train], y[train])
        add("LogisticRegression", "region features", clf.predict(F[test]))
    if F is not None and F.shape[1] >= 2:
        from .baselines import _PairOptimisedMLP, _PairSimpleClassifier

        pairs = list(itertools.combinations(range(F.shape[1]), 2))
        pair_names = [f"{names[a]} + {names[b]}" for a, b in pairs]
        for family, cls in (("SimpleClassifier", _PairSimpleClassifier),
                            ("OptimisedMLP", _PairOptimisedMLP)):
            wanted = {f"{family} (best pair)", f"{family} (pair)"} & set(models)
            if not wanted:
                continue

            def pair_model(cls=cls):
                return cls(pairs=pairs, epochs=baseline_epochs, random_state=seed)

            pred = pair_model().fit(F[train], y[train]).predict(F[test])  # (n_test, n_pairs)
            if f"{family} (best pair)" in wanted:
                # The pair is chosen on a split of the training data, never on test.
                g_train = None if groups is None else groups[train]
                inner_tr, inner_val = _inner_split(y[train], g_train, seed)
                F_tr, y_tr = F[train], y[train]
                inner = pair_model().fit(F_tr[inner_tr], y_tr[inner_tr]).predict(
                    F_tr[inner_val])
                val = [_metrics.balanced_accuracy(y_tr[inner_val], inner[:, p])
                       for p in range(len(pairs))]
                best = int(np.argmax(val))
                add(f"{family} (best pair)", pair_names[best], pred[:, best])
            if f"{family} (pair)" in wanted:
                for p, name in enumerate(pair_names):
                    add(f"{family} (pair)", name, pred[:, p])
    return rows


def _aae_setting_task(*, X, y, groups, train, test, fold, seed, template, overrides,
                      setting_column, setting, pos_label, latent=False):
    est = _fit_aae(template, seed, overrides, X, y, groups, train)
    row = {"model": "CellFateAAE", setting_column: setting, "fold": fold, "seed": seed,
           **_scores(y[test], est.predict(X[test]), pos_label)}
    if latent:
        row.update(_latent_scores(est.transform(X[test]), y[test]))
    row.update(n_train=len(train), n_test=len(test))
    return [row]


def _stratified_subsample(y, n, rng):
    """Indices of ``n`` of ``y``'s samples, class proportions kept (>= 1 each)."""
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    if n >= len(y):
        return np.arange(len(y))
    target = n * counts / counts.sum()
    alloc = np.minimum(np.maximum(1, np.floor(target).astype(int)), counts)
    while alloc.sum() < n:
        room = np.where(alloc < counts, target - alloc, -np.inf)
        alloc[int(np.argmax(room))] += 1
    while alloc.sum() > n:
        alloc[int(np.argmax(np.where(alloc > 1, alloc - target, -np.inf)))] -= 1
    picked = [rng.choice(np.flatnonzero(inverse == k), size=a, replace=False)
              for k, a in enumerate(alloc)]
    return np.sort(np.concatenate(picked))


def _budget_task(*, X, y, F, groups, train, test, fold, seed, budget, models, template,
                 pos_label, random_state):
    entropy = [seed, fold, 0 if budget is None else budget]
    if random_state is not None:
        entropy.append(random_state)
    rng = np.random.default_rng(entropy)
    sub = train if budget is None else train[_stratified_subsample(y[train], budget, rng)]
    rows = []
    base = {"budget": budget, "n_labelled": len(sub), "fold": fold, "seed": seed}
    if "CellFateAAE" in models:
        est = _fit_aae(template, seed, {}, X, y, groups, sub)
        rows.append({"model": "CellFateAAE", **base,
                     **_scores(y[test], est.predict(X[test]), pos_label),
                     "centroid_distance": _latent_scores(est.transform(X[test]), y[test])[
                         "centroid_distance"],
                     "n_train": len(sub), "n_test": len(test)})
    if "LogisticRegression" in models:
        clf = _logistic_regression(seed).fit(F[sub], y[sub])
        rows.append({"model": "LogisticRegression", **base,
                     **_scores(y[test], clf.predict(F[test]), pos_label),
                     "centroid_distance": np.nan,
                     "n_train": len(sub), "n_test": len(test)})
    return rows


def _time_point_task(*, X, y, F, groups, index, train, test, fold, seed, time_point,
                     models, template, pos_label):
    tr, te = index[train], index[test]
    rows = []
    base = {"time_point": time_point, "fold": fold, "seed": seed}
    if "CellFateAAE" in models:
        est = _fit_aae(template, seed, {}, X, y, groups, tr)
        rows.append({"model": "CellFateAAE", **base,
                     **_scores(y[te], est.predict(X[te]), pos_label),
                     "n_train": len(tr), "n_test": len(te)})
    if "LogisticRegression" in models:
        clf = _logistic_regression(seed).fit(F[tr], y[tr])
        rows.append({"model": "LogisticRegression", **base,
                     **_scores(y[te], clf.predict(F[te]), pos_label),
                     "n_train": len(tr), "n_test": len(te)})
    return rows


# --------------------------------------------------------------------------
# Studies
# --------------------------------------------------------------------------


def compare_models(
    X,
    y,
    groups=None,
    cv=5,
    seeds=(42,),
    n_jobs=None,
    *,
    models=None,
    features=None,
    feature_names=None,
    baseline_epochs=50,
    aae=None,
    pos_label=None,
    random_state=0,
    **aae_params,
):
    """CellFateAAE against hand-picked features, cross-validated (spec 7, 9).

    In every fold and for every seed, fits on the training part and scores on
    the test part:

    - ``"CellFateAAE"`` on the crops;
    - ``"CellFateAAE (no engineering)"``: the same without latent-space
      engineering (``lambda_contra = lambda_cov = 0``);
    - ``"OptimisedMLP"``: the tabular MLP of Supplementary Table 6
      (:class:`~ai4cellfate.baselines.OptimisedMLP`) on all region features;
    - ``"LogisticRegression"``: class-balanced logistic regression on the
      standardised region features;
    - ``"SimpleClassifier (pair)"``: the simple classifier
      (:class:`~ai4cellfate.baselines.SimpleClassifier`) on every pair of
      region features (78 pairs for 13 features), one row per pair;
    - ``"SimpleClassifier (best pair)"``: the pair chosen on a stratified
      (group-aware) quarter of the training part held out for validation,
      scored on the test part: an honest "best hand-picked pair" (picking
      the best of the per-pair rows by their test scores would be
      optimistic);
    - ``"OptimisedMLP (pair)"`` and ``"OptimisedMLP (best pair)"``: the same
      with the optimised MLP on each pair (spec section 7). All pairs of one
      family train together in one Keras model of independent per-pair
      networks, so 78 pairs cost about one fit.

    Parameters
    ----------
    X : array-like of shape (n_samples, H, W) or (n_samples, H, W, C)
        Crops, as for :class:`~ai4cellfate.CellFateAAE`.
    y : array-like of shape (n_samples,)
        Fates (two classes).
    groups : array-like of shape (n_samples,), default=None
        Lineage ids: folds never split a group, and CellFateAAE's validation
        split is group-aware too.
    cv : int, splitter or iterable of (train, test), default=5
        Folds (see :func:`make_cv`).
    seeds : int or sequence of int, default=(42,)
        Model seeds (``random_state`` of every model); the preprint uses
        42, 43, 44. The folds do not change with the seed.
    n_jobs : int, default=None
        Number of joblib workers over (fold, seed) pairs; ``None``: run in
        this process; ``-1``: all processors.
    models : sequence of str, default=None
        A subset of :data:`COMPARE_MODELS`; ``None`` runs them all.
    features : array-like of shape (n_samples, n_features), default=None
        Hand-picked features for the tabular models; ``None`` measures the
        crops with :class:`~ai4cellfate.features.RegionFeatures` (per-crop
        measurements, nothing fitted, so computing them once is leak-free).
    feature_names : sequence of str, default=None
        Names of the columns of ``features``.
    baseline_epochs : int, default=50
        Training epochs of the Keras baselines.
    aae : estimator, default=None
        Unfitted template for the autoencoder models, cloned in every fold;
        ``None`` means ``CellFateAAE()``.
    pos_label : label, default=None
        The fate ``precision`` refers to; ``None``: fate 1 ("divides").
    random_state : int or None, default=0
        Seed of the fold shuffling.
    **aae_params
        Parameters of every CellFateAAE fitted (e.g. ``max_epochs=60``).

    Returns
    -------
    results : pandas.DataFrame
        One row per model, feature set, fold and seed: ``model``,
        ``features`` (``"image"``, ``"region features"`` or ``"a + b"`` for a
        pair), ``fold``, ``seed``, ``balanced_accuracy``, ``precision``,
        ``n_train``, ``n_test``.

    See Also
    --------
    summarize : mean and standard deviation over folds and seeds.
    ai4cellfate.plotting.plot_model_comparison : the matching figure.

    Examples
    --------
    >>> from ai4cellfate.datasets import make_nuclei
    >>> X, y = make_nuclei(60, random_state=0)
    >>> res = compare_models(X, y, cv=3, models=["LogisticRegression"])
    >>> print(res[["model", "features", "fold", "seed"]].head(2).to_string(index=False))
                 model        features  fold  seed
    LogisticRegression region features     0    42
    LogisticRegression region features     1    42
    >>> bool(res["balanced_accuracy"].mean() > 0.8)
    True
    """
    X, y, groups = _check_data(X, y, groups, pos_label)
    seeds = _check_seeds(seeds)
    _check_n_jobs(n_jobs)
    _check_random_state(random_state)
    _check_epochs(baseline_epochs)
    asked = models
    models = _check_models(models, COMPARE_MODELS)
    needs_aae = any(m.startswith("CellFateAAE") for m in models)
    template = _aae_template(aae, aae_params, "compare_models") if needs_aae else None
    if aae_params and not needs_aae:
        _aae_template(aae, aae_params, "compare_models")  # still reject typos
    folds = _folds(cv, y, groups, random_state)
    needs_tabular = any(not m.startswith("CellFateAAE") for m in models)
    if needs_tabular:
        F, names = _tabular(X, features, feature_names)
    else:
        F, names = None, None
    pair_models = [m for m in models if m.startswith("SimpleClassifier")]
    if pair_models and F.shape[1] < 2:
        if asked is not None:
            raise ValueError(f"models {pair_models} need at least two features, got one.")
        models = tuple(m for m in models if m not in pair_models)
    tasks = [
        dict(X=X, y=y, F=F, names=names, groups=groups, train=train, test=test,
             fold=k, seed=seed, models=models, template=template,
             baseline_epochs=baseline_epochs, pos_label=pos_label)
        for k, (train, test) in enumerate(folds)
        for seed in seeds
    ]
    rows = _run(_compare_task, tasks, n_jobs)
    return _frame(rows, ["features"])


def ablation(
    X,
    y,
    groups=None,
    cv=5,
    seeds=(42,),
    n_jobs=None,
    *,
    settings=None,
    aae=None,
    pos_label=None,
    random_state=0,
    **aae_params,
):
    """CellFateAAE with each loss switched off in turn.

    Parameters
    ----------
    X, y, groups, cv, seeds, n_jobs, aae, pos_label, random_state
        As in :func:`compare_models`; ``n_jobs`` runs over (setting, fold,
        seed).
    settings : sequence of str or dict, default=None
        Names from :data:`ABLATIONS` (``None``: all of them: ``"full"``,
        ``"no reconstruction"``, ``"no adversarial"``, ``"no contrastive"``,
        ``"no covariance"``, ``"no engineering"`` (contrastive and covariance
        off) and ``"reconstruction only"``), or a dict mapping setting names
        to the CellFateAAE parameters they change.
    **aae_params
        Parameters shared by every setting.

    Returns
    -------
    results : pandas.DataFrame
        One row per setting, fold and seed: ``model`` (``"CellFateAAE"``),
        ``setting``, ``fold``, ``seed``, ``balanced_accuracy``,
        ``precision``, ``n_train``, ``n_test``.

    Notes
    -----
    A loss weight of 0 also applies to the first training stage, where
    CellFateAAE weights reconstruction by ``5 * lambda_adv``: with
    ``lambda_recon = 0`` neither stage trains reconstruction; with
    ``lambda_adv = 0`` the first stage trains reconstruction alone, weighted
    by ``lambda_recon``.

    Examples
    --------
    >>> res = ablation(X, y, groups, settings=["full", "no contrastive"])  # doctest: +SKIP
    """
    X, y, groups = _check_data(X, y, groups, pos_label)
    seeds = _check_seeds(seeds)
    _check_n_jobs(n_jobs)
    _check_random_state(random_state)
    if settings is None:
        settings = dict(ABLATIONS)
    elif isinstance(settings, dict):
        if not settings:
            raise ValueError("settings must not be empty.")
        for name, params in settings.items():
            if not isinstance(params, dict):
                raise TypeError(
                    f"settings[{name!r}] must be a dict of CellFateAAE parameters, got "
                    f"{type(params).__name__}."
                )
        settings = {str(k): dict(v) for k, v in settings.items()}
    else:
        names = _check_models(settings, tuple(ABLATIONS), name="settings")
        settings = {n: ABLATIONS[n] for n in names}
    template = _aae_template(aae, aae_params, "ablation")
    valid = template.get_params(deep=False)
    for name, params in settings.items():
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise ValueError(
                f"settings[{name!r}] changes unknown CellFateAAE parameter(s) {unknown}."
            )
    folds = _folds(cv, y, groups, random_state)
    tasks = [
        dict(X=X, y=y, groups=groups, train=train, test=test, fold=k, seed=seed,
             template=template, overrides=params, setting_column="setting",
             setting=name, pos_label=pos_label)
        for name, params in settings.items()
        for k, (train, test) in enumerate(folds)
        for seed in seeds
    ]
    return _frame(_run(_aae_setting_task, tasks, n_jobs), ["setting"])


def latent_dim_study(
    X,
    y,
    groups=None,
    cv=5,
    seeds=(42, 43, 44),
    n_jobs=None,
    *,
    latent_dims=(2, 3, 5, 10),
    aae=None,
    pos_label=None,
    random_state=0,
    **aae_params,
):
    """CellFateAAE with latent spaces of several sizes, and their correlations.

    Parameters
    ----------
    X, y, groups, cv, n_jobs, aae, pos_label, random_state
        As in :func:`compare_models`; ``n_jobs`` runs over (dimension, fold,
        seed).
    seeds : int or sequence of int, default=(42, 43, 44)
        Model seeds (the preprint's three).
    latent_dims : sequence of int, default=(2, 3, 5, 10)
        Latent sizes (``latent_dim`` of CellFateAAE).
    **aae_params
        Parameters shared by every model.

    Returns
    -------
    results : pandas.DataFrame
        One row per dimension, fold and seed: ``model``, ``latent_dim``,
        ``fold``, ``seed``, ``balanced_accuracy``, ``precision``,
        ``max_abs_correlation`` and ``mean_abs_correlation`` (largest and
        mean absolute Pearson correlation between two latent features of the
        test crops), ``centroid_distance`` (between the fates' test
        centroids), ``n_train``, ``n_test``.

    Examples
    --------
    >>> res = latent_dim_study(X, y, groups, latent_dims=(2, 5))  # doctest: +SKIP
    """
    X, y, groups = _check_data(X, y, groups, pos_label)
    seeds = _check_seeds(seeds)
    _check_n_jobs(n_jobs)
    _check_random_state(random_state)
    if _is_int(latent_dims):
        latent_dims = (latent_dims,)
    try:
        latent_dims = tuple(latent_dims)
    except TypeError:
        raise TypeError(f"latent_dims must be a sequence of ints, got {latent_dims!r}.") from None
    if not latent_dims or not all(_is_int(d) and d >= 1 for d in latent_dims):
        raise ValueError(
            f"latent_dims must be a non-empty sequence of positive ints, got {latent_dims!r}."
        )
    if "latent_dim" in aae_params:
        raise TypeError("latent_dim_study() sets latent_dim itself; use latent_dims.")
    template = _aae_template(aae, aae_params, "latent_dim_study")
    folds = _folds(cv, y, groups, random_state)
    tasks = [
        dict(X=X, y=y, groups=groups, train=train, test=test, fold=k, seed=seed,
             template=template, overrides={"latent_dim": int(d)},
             setting_column="latent_dim", setting=int(d), pos_label=pos_label,
             latent=True)
        for d in latent_dims
        for k, (train, test) in enumerate(folds)
        for seed in seeds
    ]
    return _frame(
        _run(_aae_setting_task, tasks, n_jobs),
        ["latent_dim"],
        extra=("max_abs_correlation", "mean_abs_correlation", "centroid_distance"),
    )


def label_budget_study(
    X,
    y,
    groups=None,
    cv=5,
    seeds=(42,),
    n_jobs=None,
    *,
    budgets=(50, 100, 200, 500, None),
    models=None,
    features=None,
    aae=None,
    pos_label=None,
    random_state=0,
    **aae_params,
):
    """Performance against the number of labelled training cells.

    In every fold, ``budget`` cells are drawn from the training part (class
    proportions kept, at least one cell of each fate; a new draw for every
    seed), the models are fitted on them and scored on the whole test part,
    which is the same for every budget.

    Parameters
    ----------
    X, y, groups, cv, seeds, n_jobs, aae, pos_label, random_state
        As in :func:`compare_models`; ``n_jobs`` runs over (budget, fold,
        seed).
    budgets : sequence of int or None, default=(50, 100, 200, 500, None)
        Numbers of labelled training cells; ``None`` (or a number above the
        training part's size) uses the whole training part.
    models : sequence of str, default=None
        Some of ``"CellFateAAE"`` and ``"LogisticRegression"`` (on region
        features, a cheap reference); ``None``: both.
    features : array-like of shape (n_samples, n_features), default=None
        Features of the logistic regression; ``None``: region features.
    **aae_params
        Parameters of every CellFateAAE fitted.

    Returns
    -------
    results : pandas.DataFrame
        One row per model, budget, fold and seed: ``model``, ``budget``
        (as asked; a nullable integer column, missing for "all"),
        ``n_labelled`` (cells used), ``fold``, ``seed``,
        ``balanced_accuracy``, ``precision``,
        ``centroid_distance`` (test crops in latent space, CellFateAAE only),
        ``n_train``, ``n_test``.

    Examples
    --------
    >>> res = label_budget_study(X, y, groups, budgets=(100, 500))  # doctest: +SKIP
    """
    X, y, groups = _check_data(X, y, groups, pos_label)
    seeds = _check_seeds(seeds)
    _check_n_jobs(n_jobs)
    _check_random_state(random_state)
    models = _check_models(models, _BUDGET_MODELS)
    if budgets is None or _is_int(budgets):
        budgets = (budgets,)
    try:
        budgets = tuple(budgets)
    except TypeError:
        raise TypeError(f"budgets must be a sequence of ints, got {budgets!r}.") from None
    n_classes = len(np.unique(y))
    if not budgets or not all(b is None or (_is_int(b) and b >= n_classes) for b in budgets):
        raise ValueError(
            f"budgets must be ints of at least {n_classes} (one cell per fate) or None, "
            f"got {budgets!r}."
        )
    budgets = tuple(None if b is None else int(b) for b in budgets)
    template = (
        _aae_template(aae, aae_params, "label_budget_study")
        if "CellFateAAE" in models or aae_params
        else None
    )
    F = _tabular(X, features, None)[0] if "LogisticRegression" in models else None
    folds = _folds(cv, y, groups, random_state)
    tasks = [
        dict(X=X, y=y, F=F, groups=groups, train=train, test=test, fold=k, seed=seed,
             budget=b, models=models, template=template, pos_label=pos_label,
             random_state=random_state)
        for b in budgets
        for k, (train, test) in enumerate(folds)
        for seed in seeds
    ]
    df = _frame(_run(_budget_task, tasks, n_jobs), ["budget", "n_labelled"],
                extra=("centroid_distance",))
    df["budget"] = pd.array(
        [None if pd.isna(b) else int(b) for b in df["budget"]], dtype="Int64"
    )
    return df


def time_point_study(
    X,
    y,
    time_point,
    groups=None,
    cv=5,
    seeds=(42,),
    n_jobs=None,
    *,
    models=None,
    features=None,
    aae=None,
    pos_label=None,
    random_state=0,
    **aae_params,
):
    """One model per relative time point of the cells' lifetimes.

    For data with several frames per cell, e.g. a
    :class:`~ai4cellfate.datasets.FateDataset` made with
    ``frames="lifetime"`` (11 frames per cell, at 0%, 10%, ..., 100% of its
    lifetime: ``time_point=data.table["time_point"]``). The crops of each
    time point are cross-validated on their own, with the same folds
    settings, so every model sees one frame per cell.

    Parameters
    ----------
    X, y, groups, cv, seeds, n_jobs, aae, pos_label, random_state
        As in :func:`compare_models`; ``n_jobs`` runs over (time point,
        fold, seed).
    time_point : array-like of shape (n_samples,)
        The time point of every crop (e.g. 0..10, or the relative time).
    models : sequence of str, default=None
        Some of ``"CellFateAAE"`` and ``"LogisticRegression"`` (on region
        features); ``None``: both.
    features : array-like of shape (n_samples, n_features), default=None
        Features of the logistic regression; ``None``: region features.
    **aae_params
        Parameters of every CellFateAAE fitted.

    Returns
    -------
    results : pandas.DataFrame
        One row per model, time point, fold and seed: ``model``,
        ``time_point``, ``fold``, ``seed``, ``balanced_accuracy``,
        ``precision``, ``n_train``, ``n_test``.

    Examples
    --------
    >>> res = time_point_study(data.X, data.y, data.table["time_point"],
    ...                        data.groups)  # doctest: +SKIP
    """
    X, y, groups = _check_data(X, y, groups, pos_label)
    time_point = np.asarray(time_point)
    if time_point.ndim != 1 or len(time_point) != len(X):
        raise ValueError(
            f"time_point must be a 1-D array with one value per crop ({len(X)}), got "
            f"shape {time_point.shape}."
        )
    if time_point.dtype.kind not in "biuf" or not np.all(np.isfinite(time_point)):
        raise ValueError("time_point must hold finite numbers.")
    seeds = _check_seeds(seeds)
    _check_n_jobs(n_jobs)
    _check_random_state(random_state)
    models = _check_models(models, _BUDGET_MODELS)
    template = (
        _aae_template(aae, aae_params, "time_point_study")
        if "CellFateAAE" in models or aae_params
        else None
    )
    F = _tabular(X, features, None)[0] if "LogisticRegression" in models else None
    tasks = []
    for t in np.unique(time_point):
        index = np.flatnonzero(time_point == t)
        g = None if groups is None else groups[index]
        folds = _folds(cv, y[index], g, random_state, where=f" (time point {t})")
        value = t.item()
        tasks += [
            dict(X=X, y=y, F=F, groups=groups, index=index, train=train, test=test,
                 fold=k, seed=seed, time_point=value, models=models, template=template,
                 pos_label=pos_label)
            for k, (train, test) in enumerate(folds)
            for seed in seeds
        ]
    return _frame(_run(_time_point_task, tasks, n_jobs), ["time_point"])


# --------------------------------------------------------------------------
# Beyond the preprint: variants of the model under one grouped CV
# --------------------------------------------------------------------------


def make_hybrid(aae=None, *, region_features=None, classifier=None):
    """The hybrid model: latent features and region features in one classifier.

    A plain scikit-learn :class:`~sklearn.pipeline.Pipeline`::

        Pipeline([
            ("features", FeatureUnion([("latent", aae),                # z0, z1
                                       ("region", RegionFeatures())])),
            ("scale", StandardScaler()),
            ("classifier", LogisticRegression(class_weight="balanced",
                                              max_iter=2000)),
        ])

    The autoencoder is fitted on the training crops and labels (the
    :class:`~sklearn.pipeline.FeatureUnion` passes ``y`` on), its latent
    features of the same crops are stacked with the hand-picked region
    features (per-crop measurements, nothing learned) and one class-balanced
    logistic regression is fitted on both.

    The autoencoder asks for ``groups`` through scikit-learn's metadata
    routing, so that its validation split stays group-aware::

        with sklearn.config_context(enable_metadata_routing=True):
            hybrid.fit(X, y, groups=groups)

    Without routing (the default), ``hybrid.fit(X, y)`` fits it without
    groups.

    Parameters
    ----------
    aae : estimator, default=None
        Unfitted autoencoder (a transformer fitted on crops and labels);
        ``None`` means ``CellFateAAE()``. It is cloned.
    region_features : transformer, default=None
        Unfitted hand-picked feature transformer; ``None`` means
        :class:`~ai4cellfate.features.RegionFeatures` with its defaults.
    classifier : estimator, default=None
        Unfitted classifier with ``predict_proba``; ``None`` means the
        class-balanced logistic regression above.

    Returns
    -------
    hybrid : sklearn.pipeline.Pipeline
        Unfitted; its steps are ``"features"`` (with ``"latent"`` and
        ``"region"``), ``"scale"`` and ``"classifier"``, so its parameters
        read e.g. ``features__latent__lambda_contra`` or ``classifier__C``.

    Examples
    --------
    >>> hybrid = make_hybrid()
    >>> [name for name, _ in hybrid.steps]
    ['features', 'scale', 'classifier']
    >>> hybrid.get_params()["features__latent__latent_dim"]
    2
    """
    from sklearn.pipeline import FeatureUnion, Pipeline

    if aae is None:
        from .estimator import CellFateAAE

        aae = CellFateAAE()
    aae = _routed_latent(aae)
    if region_features is None:
        from .features import RegionFeatures

        region_features = RegionFeatures()
    elif not all(hasattr(region_features, m) for m in ("fit", "transform", "get_params")):
        raise TypeError(
            f"region_features must be an unfitted transformer such as RegionFeatures, "
            f"got {type(region_features).__name__}.")
    classifier = _latent_classifier(classifier)
    return Pipeline([
        ("features", FeatureUnion([("latent", aae), ("region", clone(region_features))])),
        ("scale", StandardScaler()),
        ("classifier", classifier),
    ])


def _check_latent(aae, name="aae"):
    if not all(hasattr(aae, m) for m in ("fit", "transform", "get_params")):
        raise TypeError(
            f"{name} must be an unfitted transformer such as CellFateAAE, got "
            f"{type(aae).__name__}.")


def _latent_classifier(classifier):
    """A clone of ``classifier``; ``None``: the class-balanced logistic regression."""
    if classifier is None:
        return LogisticRegression(class_weight="balanced", max_iter=2000)
    if not all(hasattr(classifier, m) for m in ("fit", "predict_proba", "get_params")):
        raise TypeError(
            f"classifier must be an unfitted classifier with predict_proba, got "
            f"{type(classifier).__name__}.")
    return clone(classifier)


def _routed_latent(aae, name="aae"):
    """A clone of an unfitted autoencoder that asks for ``groups`` through routing."""
    import sklearn

    _check_latent(aae, name)
    aae = clone(aae)
    if hasattr(aae, "set_fit_request") and "groups" in _fit_parameters(aae):
        with sklearn.config_context(enable_metadata_routing=True):
            aae = aae.set_fit_request(groups=True)
    return aae


def make_extended_latent(aae=None, *, extra_dims=3, extra=None, classifier=None):
    """A 2-D interpretable latent plus extra latent dimensions used only for prediction.

    A plain scikit-learn :class:`~sklearn.pipeline.Pipeline`::

        Pipeline([
            ("features", FeatureUnion([
                ("latent", aae),                                  # z0, z1
                ("extra", clone(aae).set_params(latent_dim=extra_dims)),
            ])),
            ("scale", StandardScaler()),
            ("classifier", LogisticRegression(class_weight="balanced",
                                              max_iter=2000)),
        ])

    Two autoencoders are fitted on the same training crops and labels: the
    first is the preprint's model with its 2-D latent space, whose two axes
    stay the ones to plot and traverse (``features`` ->
    ``transformer_list[0]``, e.g. for
    :func:`~ai4cellfate.interpret.latent_traversal`); the second adds
    ``extra_dims`` latent features that only the classifier sees. Keeping
    the extra dimensions in a model of their own leaves the 2-D latent
    exactly as interpretable (decorrelated, traversable) as the preprint's,
    which one 5-D latent is not; the price is a second fit.

    The autoencoders ask for ``groups`` through scikit-learn's metadata
    routing (see :func:`make_hybrid`).

    Parameters
    ----------
    aae : estimator, default=None
        Unfitted autoencoder for the interpretable latent; ``None`` means
        ``CellFateAAE()``. It is cloned.
    extra_dims : int, default=3
        Latent dimensions of the second autoencoder (a clone of ``aae``
        with ``latent_dim=extra_dims``). Ignored when ``extra`` is given.
    extra : estimator, default=None
        Unfitted transformer for the extra features instead (e.g. a
        ``CellFateAAE(latent_dim=3, lambda_contra=0)`` without supervision).
    classifier : estimator, default=None
        Unfitted classifier with ``predict_proba``; ``None`` means the
        class-balanced logistic regression above.

    Returns
    -------
    model : sklearn.pipeline.Pipeline
        Unfitted; its steps are ``"features"`` (with ``"latent"`` and
        ``"extra"``), ``"scale"`` and ``"classifier"``, so its parameters
        read e.g. ``features__extra__latent_dim`` or ``classifier__C``.

    Raises
    ------
    ValueError
        ``extra_dims`` not an int >= 1.
    TypeError
        An argument that is not an unfitted transformer (or classifier).

    See Also
    --------
    make_hybrid : the latent plus the hand-picked region features.

    Examples
    --------
    >>> model = make_extended_latent(extra_dims=3)
    >>> params = model.get_params()
    >>> params["features__latent__latent_dim"], params["features__extra__latent_dim"]
    (2, 3)
    """
    from sklearn.pipeline import FeatureUnion, Pipeline

    if aae is None:
        from .estimator import CellFateAAE

        aae = CellFateAAE()
    latent = _routed_latent(aae)
    if extra is None:
        if not _is_int(extra_dims) or extra_dims < 1:
            raise ValueError(f"extra_dims must be an int >= 1, got {extra_dims!r}.")
        if "latent_dim" not in latent.get_params(deep=False):
            raise ValueError(
                f"extra_dims needs an aae with a latent_dim parameter; "
                f"{type(aae).__name__} has none: pass extra instead.")
        extra = clone(aae).set_params(latent_dim=int(extra_dims))
    extra = _routed_latent(extra, "extra")
    classifier = _latent_classifier(classifier)
    return Pipeline([
        ("features", FeatureUnion([("latent", latent), ("extra", extra)])),
        ("scale", StandardScaler()),
        ("classifier", classifier),
    ])


def make_latent_trajectory(aae=None, *, channels_per_frame=1, differences=True,
                           classifier=None):
    """Fate from the latent trajectory of temporal-context crops.

    A plain scikit-learn :class:`~sklearn.pipeline.Pipeline`::

        Pipeline([
            ("latents", FrameLatents(aae)),    # z of every frame, and its change
            ("scale", StandardScaler()),
            ("classifier", LogisticRegression(class_weight="balanced",
                                              max_iter=2000)),
        ])

    for crops made by :func:`ai4cellfate.datasets.temporal_context`: the
    autoencoder is fitted on the frame-``t`` crops (the preprint's model on
    the preprint's input) and encodes every frame; the classifier sees the
    latent vectors of all frames and their change from the oldest one
    (:class:`~ai4cellfate.temporal.FrameLatents`). ``groups`` reach the
    autoencoder through metadata routing (see :func:`make_hybrid`).

    Parameters
    ----------
    aae : estimator, default=None
        Unfitted autoencoder; ``None`` means ``CellFateAAE()``.
    channels_per_frame, differences
        See :class:`~ai4cellfate.temporal.FrameLatents`.
    classifier : estimator, default=None
        Unfitted classifier with ``predict_proba``; ``None`` means the
        class-balanced logistic regression above.

    Returns
    -------
    model : sklearn.pipeline.Pipeline
        Unfitted; steps ``"latents"``, ``"scale"``, ``"classifier"``.

    Examples
    --------
    >>> model = make_latent_trajectory()
    >>> model.get_params()["latents__aae__latent_dim"]
    2
    """
    import sklearn
    from sklearn.pipeline import Pipeline

    from .temporal import FrameLatents

    if aae is None:
        from .estimator import CellFateAAE

        aae = CellFateAAE()
    _check_latent(aae)
    classifier = _latent_classifier(classifier)
    latents = FrameLatents(clone(aae), channels_per_frame=channels_per_frame,
                           differences=differences)
    with sklearn.config_context(enable_metadata_routing=True):
        latents = latents.set_fit_request(groups=True)
    return Pipeline([("latents", latents), ("scale", StandardScaler()),
                     ("classifier", classifier)])


def _fit_parameters(est):
    try:
        return inspect.signature(est.fit).parameters
    except (TypeError, ValueError):
        return {}


def _routes_groups(estimator):
    """Whether a meta-estimator (a Pipeline...) routes ``groups`` to a step's fit."""
    import sklearn

    if not hasattr(estimator, "get_metadata_routing"):
        return False
    try:
        with sklearn.config_context(enable_metadata_routing=True):
            return "groups" in estimator.get_metadata_routing().consumes("fit", ["groups"])
    except Exception:  # an estimator without routing support
        return False


def _variant_spec(name, model, estimator, dataset="default", routed=None):
    """How to fit one variant: its estimator, seed parameters and groups.

    Every ``random_state`` of the estimator and of the estimators inside it
    gets the row's seed; ``groups`` go to ``fit`` when it takes them, or
    through metadata routing when a step asked for them (``routed``:
    ``None`` finds out).
    """
    params = estimator.get_params(deep=True) if hasattr(estimator, "get_params") else {}
    seed_params = [p for p in params if p == "random_state" or p.endswith("__random_state")]
    if "groups" in _fit_parameters(estimator):
        groups = "fit"
    elif routed if routed is not None else _routes_groups(estimator):
        groups = "route"
    else:
        groups = None
    return {"name": name, "model": model, "estimator": estimator, "dataset": dataset,
            "seed_params": seed_params, "groups": groups}


def _fit_variant(spec, X, y, groups, index, seed):
    """A fresh clone of the variant, seeded, fitted on ``index``; and its fit time."""
    est = clone(spec["estimator"])
    if spec["seed_params"]:
        est.set_params(**{p: seed for p in spec["seed_params"]})
    g = None if groups is None or spec["groups"] is None else groups[index]
    start = time.perf_counter()
    if g is None:
        est.fit(X[index], y[index])
    elif spec["groups"] == "route":
        import sklearn

        with sklearn.config_context(enable_metadata_routing=True):
            est.fit(X[index], y[index], groups=g)
    else:
        est.fit(X[index], y[index], groups=g)
    return est, time.perf_counter() - start


def _is_latent_model(est):
    """A classifier with a latent ``transform`` (CellFateAAE and alikes)."""
    return hasattr(est, "transform") and hasattr(est, "predict_proba")


def _latents_of(est, X):
    """The latent vectors of ``X`` in every autoencoder inside ``est``."""
    from sklearn.pipeline import FeatureUnion, Pipeline

    from .ensemble import SeedEnsemble
    from .temporal import FrameLatents

    if isinstance(est, SeedEnsemble):
        return [Z for member in est.estimators_ for Z in _latents_of(member, X)]
    if isinstance(est, Pipeline):
        Xt = X
        for _, step in est.steps:
            if step is None or step == "passthrough":
                continue
            if isinstance(step, FrameLatents):  # the latent of frame t, if one
                if not _is_latent_model(step.aae_):
                    return []  # e.g. region features of every frame
                return [step.aae_.transform(step._frames(Xt, fitting=False)[-1])]
            if isinstance(step, FeatureUnion):
                inner = [t for _, t in step.transformer_list if _is_latent_model(t)]
                if inner:
                    return [inner[0].transform(Xt)]
            elif _is_latent_model(step):
                return [step.transform(Xt)]
            if not hasattr(step, "transform"):
                break
            Xt = step.transform(Xt)
        return []
    if _is_latent_model(est):
        return [est.transform(X)]
    return []


def _latent_summary(est, X, bins):
    """Largest |correlation| between latent features and largest KL to N(0, 1)."""
    corrs, kls = [], []
    for Z in _latents_of(est, X):
        Z = np.asarray(Z, dtype=np.float64)
        if Z.ndim != 2 or len(Z) < 2 or not np.all(np.isfinite(Z)):
            continue
        if Z.shape[1] >= 2:
            c = _metrics.max_abs_correlation(Z)
            if np.isfinite(c):
                corrs.append(c)
        kls.append(float(np.max(_metrics.kl_divergence_to_normal(Z, bins=bins))))
    return {"latent_abs_corr": float(np.mean(corrs)) if corrs else np.nan,
            "latent_kl": float(np.mean(kls)) if kls else np.nan}


def _probability_scores(y_true, y_pred, proba, classes, pos_label):
    """Balanced accuracy, both precisions and the AUC of ``pos_label``."""
    from sklearn.metrics import roc_auc_score

    classes = np.asarray(classes)
    pos = _metrics._default_pos_label(classes) if pos_label is None else pos_label
    out = {
        "balanced_accuracy": _metrics.balanced_accuracy(y_true, y_pred),
        "precision": _metrics.precision(y_true, y_pred, pos_label=pos_label),
        "auc": np.nan,
        "balanced_precision": _metrics.precision(y_true, y_pred, pos_label=pos_label,
                                                 balanced=True),
    }
    truth = np.asarray(y_true) == pos
    if truth.any() and not truth.all() and pos in classes.tolist():
        column = classes.tolist().index(pos)
        out["auc"] = float(roc_auc_score(truth, np.asarray(proba)[:, column]))
    return out


def _beyond_variant_task(*, spec, X, y, groups, train, test, fold, seed, pos_label, kl_bins):
    est, seconds = _fit_variant(spec, X, y, groups, train, seed)
    row = {"model": spec["model"], "variant": spec["name"], "dataset": spec["dataset"],
           "fold": fold, "seed": seed}
    row.update(_probability_scores(y[test], est.predict(X[test]), est.predict_proba(X[test]),
                                   est.classes_, pos_label))
    row.update(fit_seconds=seconds, **_latent_summary(est, X[test], kl_bins),
               n_train=len(train), n_test=len(test))
    return [row]


def _beyond_inner_task(*, spec, X, y, groups, train, fold, seed):
    """Inner-validation score of one variant: it sees the training part only."""
    g = None if groups is None else groups[train]
    inner_train, inner_val = _inner_split(y[train], g, seed)
    est, seconds = _fit_variant(spec, X, y, groups, train[inner_train], seed)
    val = train[inner_val]
    return [{"_inner": True, "variant": spec["name"], "fold": fold, "seed": seed,
             "inner_balanced_accuracy": _metrics.balanced_accuracy(y[val], est.predict(X[val])),
             "inner_seconds": seconds}]


def _beyond_baseline_task(*, F, names, y, groups, train, test, fold, seed, baselines,
                          baseline_epochs, pos_label):
    rows = []
    y_test = y[test]

    def add(model, variant, clf_classes, y_pred, proba, seconds, chosen=np.nan,
            inner=np.nan):
        rows.append({"model": model, "variant": variant, "dataset": "default",
                     "fold": fold, "seed": seed,
                     **_probability_scores(y_test, y_pred, proba, clf_classes, pos_label),
                     "fit_seconds": seconds, "latent_abs_corr": np.nan, "latent_kl": np.nan,
                     "inner_balanced_accuracy": inner, "chosen": chosen,
                     "n_train": len(train), "n_test": len(test)})

    if "LogisticRegression" in baselines:
        start = time.perf_counter()
        clf = _logistic_regression(seed).fit(F[train], y[train])
        seconds = time.perf_counter() - start
        add("LogisticRegression", "LogisticRegression", clf.classes_, clf.predict(F[test]),
            clf.predict_proba(F[test]), seconds)
    if "OptimisedMLP" in baselines:
        from .baselines import OptimisedMLP

        start = time.perf_counter()
        clf = OptimisedMLP(epochs=baseline_epochs, random_state=seed).fit(F[train], y[train])
        seconds = time.perf_counter() - start
        add("OptimisedMLP", "OptimisedMLP", clf.classes_, clf.predict(F[test]),
            clf.predict_proba(F[test]), seconds)
    pair_families = [f for f in ("SimpleClassifier", "OptimisedMLP")
                     if f"{f} (best pair)" in baselines]
    if pair_families:
        from .baselines import _PairOptimisedMLP, _PairSimpleClassifier

        pairs = list(itertools.combinations(range(F.shape[1]), 2))
        pair_names = [f"{names[a]} + {names[b]}" for a, b in pairs]
        g_train = None if groups is None else groups[train]
        inner_train, inner_val = _inner_split(y[train], g_train, seed)
        F_tr, y_tr = F[train], y[train]
    for family in pair_families:
        cls = _PairSimpleClassifier if family == "SimpleClassifier" else _PairOptimisedMLP
        start = time.perf_counter()
        # As compare_models: the pair is chosen on a split of the training part.
        inner = cls(pairs=pairs, epochs=baseline_epochs, random_state=seed).fit(
            F_tr[inner_train], y_tr[inner_train]).predict(F_tr[inner_val])
        val = [_metrics.balanced_accuracy(y_tr[inner_val], inner[:, p])
               for p in range(len(pairs))]
        best = int(np.argmax(val))
        clf = cls(pairs=pairs, epochs=baseline_epochs, random_state=seed).fit(F_tr, y_tr)
        seconds = time.perf_counter() - start
        proba = clf.predict_proba(F[test])[:, best, :]
        add(family, f"{family} (best pair)", clf.classes_, clf.predict(F[test])[:, best],
            proba, seconds, chosen=pair_names[best], inner=val[best])
    return rows


def _beyond_task(*, kind, **task):
    if kind == "variant":
        return _beyond_variant_task(**task)
    if kind == "inner":
        return _beyond_inner_task(**task)
    return _beyond_baseline_task(**task)


def _check_datasets(datasets, X, y, groups, pos_label, taken):
    """Named crops of the same samples: name -> checked X."""
    if datasets is None:
        return {}
    if not isinstance(datasets, dict):
        raise TypeError(
            f"datasets must be a dict mapping names to crops X or to (X, y, groups), got "
            f"{type(datasets).__name__}.")
    out = {}
    for name, value in datasets.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"datasets keys must be non-empty strings, got {name!r}.")
        if name in taken or name == "default":
            raise ValueError(
                f"datasets name {name!r} is already the name of a variant or baseline; "
                "choose another.")
        y_d, g_d = y, groups
        if isinstance(value, tuple):
            if not 1 <= len(value) <= 3:
                raise ValueError(
                    f"datasets[{name!r}] must be X or a tuple (X, y, groups), got a tuple "
                    f"of {len(value)}.")
            X_d = value[0]
            if len(value) > 1 and value[1] is not None:
                y_d = value[1]
            if len(value) > 2 and value[2] is not None:
                g_d = value[2]
        else:
            X_d = value
        if hasattr(X_d, "__len__") and not isinstance(X_d, (str, bytes)) and len(X_d) != len(X):
            raise ValueError(
                f"datasets[{name!r}] has {len(X_d)} crops, X has {len(X)}: the datasets "
                "must hold the same samples in the same order.")
        try:
            X_d, y_d, g_d = _check_data(X_d, y_d, g_d, pos_label)
        except (TypeError, ValueError) as err:
            raise type(err)(f"datasets[{name!r}]: {err}") from None
        if not np.array_equal(y_d, y):
            raise ValueError(
                f"datasets[{name!r}] has labels that differ from y: the datasets must hold "
                "the same samples in the same order.")
        if (g_d is None) != (groups is None) or (
                groups is not None and not np.array_equal(g_d, groups)):
            raise ValueError(
                f"datasets[{name!r}] has groups that differ from groups: the datasets must "
                "hold the same samples in the same order.")
        out[name] = X_d
    return out


def beyond_preprint(
    X,
    y,
    groups=None,
    *,
    variants=None,
    datasets=None,
    baselines=None,
    cv=5,
    seeds=(0, 1, 2),
    aae=None,
    aae_params=None,
    n_ensemble=5,
    region_features=None,
    baseline_epochs=50,
    select=True,
    kl_bins=100,
    pos_label=None,
    n_jobs=None,
    random_state=0,
):
    """Variants of CellFateAAE against the best hand-picked baselines, on the same folds.

    Every variant and every baseline is fitted on the training part of every
    fold, for every seed, and scored on the test part: the same grouped
    cross-validation (by default 5 folds of
    :class:`~sklearn.model_selection.StratifiedGroupKFold` by lineage, so
    each test part is made of lineages the models have never seen) and the
    same training data for all, whatever their capacity. The variants
    (:data:`BEYOND_VARIANTS`):

    - ``"preprint"``: CellFateAAE with the preprint's defaults (and
      ``aae_params``), the reference;
    - ``"seed ensemble"``: :class:`~ai4cellfate.ensemble.SeedEnsemble` of
      ``n_ensemble`` such models, seeded from the row's seed, averaging
      their ``predict_proba``;
    - ``"latent_dim 3"`` and ``"latent_dim 5"``: the same model with a 3-
      or 5-dimensional latent space and the same latent classifier;
    - ``"2-D + 3 extra"``: the preprint's 2-D latent plus the 3-D latent of
      a second such model, in one logistic regression
      (:func:`make_extended_latent`): the 2-D latent stays interpretable,
      the extra dimensions are used only for prediction; its latent
      columns describe the 2-D latent;
    - ``"hybrid"``: the latent features and the hand-picked region features
      in one logistic regression (:func:`make_hybrid`);
    - one more variant per entry of ``datasets``: the preprint's model on
      other crops of the same cells (full-resolution crops, crops of a fixed
      size in micrometres, several frames as channels for temporal
      context...), made by the dataset readers and passed in.

    The baselines (:data:`BEYOND_BASELINES`; by default the first two) are
    those of :func:`compare_models`: ``"LogisticRegression"`` on all region
    features and ``"SimpleClassifier (best pair)"``, the best pair of region
    features chosen on a held-out quarter of the training part (and
    optionally ``"OptimisedMLP"`` and ``"OptimisedMLP (best pair)"``).

    With ``select=True`` a ``"selected"`` row per fold and seed guards
    against choosing the variant by its test score: inside the training part
    of each fold, every variant is fitted again on a stratified, group-aware
    three quarters (:func:`_inner_split`, seeded by the row's seed) and
    scored on the remaining quarter; the variant of highest inner-validation
    balanced accuracy (ties: the earlier variant) is the fold's choice, and
    its test scores (of the model fitted on the whole training part, which
    is the variant's own row) are the ``"selected"`` row's. The test part
    is never passed to the inner fits. ``summarize(res)`` of the
    ``"selected"`` rows is what one may honestly claim for "the best
    variant"; the best of the variants' test means is optimistic.

    Parameters
    ----------
    X : array-like of shape (n_samples, H, W) or (n_samples, H, W, C)
        Crops, as for :class:`~ai4cellfate.CellFateAAE`.
    y : array-like of shape (n_samples,)
        Fates (two classes).
    groups : array-like of shape (n_samples,), default=None
        Lineage ids: no fold splits a lineage, and the autoencoders'
        validation splits and the inner selection split are group-aware.
    variants : sequence of str or dict, default=None
        Names from :data:`BEYOND_VARIANTS` (``None``: all), or a dict mapping
        names to unfitted classifiers on the crops (with ``predict_proba``;
        every ``random_state`` in them, nested ones of a Pipeline too, gets
        the row's seed; ``groups`` go to their ``fit`` when it takes them,
        or through metadata routing when a step asked for them, as in
        :func:`make_latent_trajectory`); ``None`` as a value stands for the built-in
        variant of that name. An empty sequence runs the datasets' variants
        and the baselines only.
    datasets : dict, default=None
        Further crops of the same samples, in the same order: name -> ``X``
        or ``(X, y, groups)`` (``y`` and ``groups``, when given, must equal
        the main ones). Each adds a variant of that name (column ``dataset``
        too): the preprint's model fitted on those crops, on the same folds.
    baselines : sequence of str, default=None
        Names from :data:`BEYOND_BASELINES`; ``None``: ``"LogisticRegression"``
        and ``"SimpleClassifier (best pair)"``; ``()``: none.
    cv : int, splitter or iterable of (train, test), default=5
        Folds (see :func:`make_cv`).
    seeds : int or sequence of int, default=(0, 1, 2)
        Model seeds: ``random_state`` of every model (of the ensemble: the
        seed of its members' seeds). The folds do not change with the seed.
    aae : estimator, default=None
        Unfitted autoencoder template; ``None`` means ``CellFateAAE()``.
    aae_params : dict, default=None
        CellFateAAE parameters of every variant (e.g. a shorter schedule);
        ``latent_dim`` and ``random_state`` are set by the study.
    n_ensemble : int, default=5
        Members of the seed ensemble.
    region_features : transformer, default=None
        Unfitted hand-picked features for the baselines and the hybrid;
        ``None`` means :class:`~ai4cellfate.features.RegionFeatures` (per-crop
        measurements, nothing fitted, so measuring all crops once is
        leak-free).
    baseline_epochs : int, default=50
        Training epochs of the Keras baselines.
    select : bool, default=True
        Add the ``"selected"`` rows (this fits every variant a second time,
        inside each training part).
    kl_bins : int, default=100
        Histogram bins of the KL estimate
        (:func:`ai4cellfate.metrics.kl_divergence_to_normal`; biased upwards
        on small test parts, so compare variants at equal test size).
    pos_label : label, default=None
        The fate precision and AUC refer to; ``None``: fate 1 ("divides").
    n_jobs : int, default=None
        joblib workers over (variant, fold, seed) tasks; ``None``: run in
        this process.
    random_state : int or None, default=0
        Seed of the fold shuffling.

    Returns
    -------
    results : pandas.DataFrame
        One row per variant, baseline and ``"selected"``, fold and seed:

        - ``model`` (``"CellFateAAE"``, ``"SeedEnsemble"``,
          ``"CellFateAAE + RegionFeatures"``, the baseline's family, or
          ``"selected"``), ``variant``, ``dataset`` (``"default"`` for ``X``);
        - ``fold``, ``seed``;
        - ``balanced_accuracy``, ``precision`` (ordinary, ``TP / (TP + FP)``
          of ``pos_label``), ``auc`` (ROC AUC of the predicted probability of
          ``pos_label``; NaN when the test part holds one fate),
          ``balanced_precision`` (prevalence-free:
          ``metrics.precision(..., balanced=True)``);
        - ``fit_seconds``: wall time of the fit on the training part (the
          best pair: its inner choice too; ``"selected"``: every variant's
          inner fit plus the chosen variant's fit);
        - ``latent_abs_corr`` (largest absolute Pearson correlation between
          two latent features) and ``latent_kl`` (largest per-dimension KL
          divergence to N(0, 1)), both of the test crops' latents; averaged
          over the members of the ensemble; NaN without a latent space;
        - ``inner_balanced_accuracy``: the inner-validation score used for
          the selection (NaN for ``LogisticRegression`` or without
          ``select``), ``chosen``: the chosen variant (``"selected"``) or
          feature pair (best pair), NaN otherwise;
        - ``n_train``, ``n_test``.

    See Also
    --------
    summarize : mean and standard deviation over folds and seeds.
    spread : spread over folds and over seeds; paired wins against a
        baseline on the same folds.
    ai4cellfate.ensemble.SeedEnsemble, make_hybrid : the new models.

    Examples
    --------
    >>> res = beyond_preprint(X, y, groups, aae_params={"max_epochs": 60})  # doctest: +SKIP
    >>> summarize(res)  # doctest: +SKIP
    >>> spread(res, reference="LogisticRegression")  # doctest: +SKIP
    """
    X, y, groups = _check_data(X, y, groups, pos_label)
    seeds = _check_seeds(seeds)
    _check_n_jobs(n_jobs)
    _check_random_state(random_state)
    _check_epochs(baseline_epochs)
    if not _is_int(n_ensemble) or n_ensemble < 1:
        raise ValueError(f"n_ensemble must be an int >= 1, got {n_ensemble!r}.")
    if not _is_int(kl_bins) or kl_bins < 2:
        raise ValueError(f"kl_bins must be an int >= 2, got {kl_bins!r}.")
    if not isinstance(select, (bool, np.bool_)):
        raise TypeError(f"select must be True or False, got {select!r}.")
    if aae_params is None:
        aae_params = {}
    elif not isinstance(aae_params, dict):
        raise TypeError(
            f"aae_params must be a dict of CellFateAAE parameters, got "
            f"{type(aae_params).__name__}.")
    for name in ("latent_dim", "random_state"):
        if name in aae_params:
            raise ValueError(
                f"aae_params must not set {name!r}: beyond_preprint sets it "
                "(latent_dim through the variants, random_state through seeds).")
    template = _aae_template(aae, {}, "beyond_preprint")
    unknown = sorted(set(aae_params) - set(template.get_params(deep=False)))
    if unknown:
        raise ValueError(
            f"aae_params has unknown {type(template).__name__} parameter(s) {unknown}.")
    template.set_params(**aae_params)
    if baselines is None:
        baselines = _BEYOND_DEFAULT_BASELINES
    elif isinstance(baselines, (list, tuple)) and len(baselines) == 0:
        baselines = ()
    else:
        baselines = _check_models(baselines, BEYOND_BASELINES, name="baselines")

    # The variants: name -> (model, estimator), in the order asked.
    if variants is None:
        asked = {name: None for name in BEYOND_VARIANTS}
    elif isinstance(variants, dict):
        asked = dict(variants)
    elif isinstance(variants, str):
        asked = {variants: None}
    else:
        try:
            variants = list(variants)
        except TypeError:
            raise TypeError(
                f"variants must be a sequence of names or a dict, got {variants!r}.") from None
        asked = {name: None for name in variants}
        if len(asked) != len(variants):
            raise ValueError(f"variants must be distinct, got {variants!r}.")
    specs = []
    for name, est in asked.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"variant names must be non-empty strings, got {name!r}.")
        if name == _SELECTED or name in BEYOND_BASELINES:
            raise ValueError(f"{name!r} is reserved; name the variant otherwise.")
        if est is None:
            if name not in BEYOND_VARIANTS:
                raise ValueError(
                    f"variants must name some of {list(BEYOND_VARIANTS)} (or map new "
                    f"names to estimators), got {name!r}.")
            specs.append(_builtin_variant(name, template, n_ensemble, region_features))
        else:
            if not all(hasattr(est, m) for m in ("fit", "predict", "predict_proba",
                                                  "get_params")):
                raise TypeError(
                    f"variants[{name!r}] must be an unfitted classifier with "
                    f"predict_proba, got {type(est).__name__}.")
            specs.append(_variant_spec(name, type(est).__name__, est))
    taken = {s["name"] for s in specs} | set(BEYOND_BASELINES) | {_SELECTED}
    data = {"default": X, **_check_datasets(datasets, X, y, groups, pos_label, taken)}
    specs += [_variant_spec(name, type(template).__name__, template, dataset=name)
              for name in data if name != "default"]
    if not specs and not baselines:
        raise ValueError("beyond_preprint has nothing to run: no variants, datasets or "
                         "baselines.")

    F = names = None
    if baselines:
        from .features import RegionFeatures

        rf = RegionFeatures() if region_features is None else clone(region_features)
        F = np.asarray(rf.fit_transform(X), dtype=np.float64)
        names = [str(n) for n in rf.get_feature_names_out()]
        if any(b.endswith("(best pair)") for b in baselines) and F.shape[1] < 2:
            raise ValueError("the best-pair baselines need at least two region features.")
    folds = _folds(cv, y, groups, random_state)

    tasks = [
        dict(kind="variant", spec=spec, X=data[spec["dataset"]], y=y, groups=groups,
             train=train, test=test, fold=k, seed=seed, pos_label=pos_label,
             kl_bins=int(kl_bins))
        for spec in specs
        for k, (train, test) in enumerate(folds)
        for seed in seeds
    ]
    if baselines:
        tasks += [
            dict(kind="baselines", F=F, names=names, y=y, groups=groups, train=train,
                 test=test, fold=k, seed=seed, baselines=baselines,
                 baseline_epochs=baseline_epochs, pos_label=pos_label)
            for k, (train, test) in enumerate(folds)
            for seed in seeds
        ]
    if select and specs:
        tasks += [
            dict(kind="inner", spec=spec, X=data[spec["dataset"]], y=y, groups=groups,
                 train=train, fold=k, seed=seed)
            for spec in specs
            for k, (train, _) in enumerate(folds)
            for seed in seeds
        ]
    rows = _run(_beyond_task, tasks, n_jobs)
    inner = {(r["variant"], r["fold"], r["seed"]): r for r in rows if r.get("_inner")}
    rows = [r for r in rows if not r.get("_inner")]
    variant_names = [s["name"] for s in specs]
    for row in rows:
        if row["variant"] in variant_names:
            row["inner_balanced_accuracy"] = inner.get(
                (row["variant"], row["fold"], row["seed"]), {}).get(
                    "inner_balanced_accuracy", np.nan)
            row["chosen"] = np.nan
    if select and specs:
        outer = {(r["variant"], r["fold"], r["seed"]): r for r in rows}
        for k in range(len(folds)):
            for seed in seeds:
                scores = [inner[(name, k, seed)]["inner_balanced_accuracy"]
                          for name in variant_names]
                best = variant_names[int(np.argmax(np.nan_to_num(scores, nan=-np.inf)))]
                row = dict(outer[(best, k, seed)])
                row.update(
                    model=_SELECTED, variant=_SELECTED, chosen=best,
                    fit_seconds=row["fit_seconds"] + sum(
                        inner[(name, k, seed)]["inner_seconds"] for name in variant_names))
                rows.append(row)
    return _frame(rows, ["variant", "dataset"], extra=_BEYOND_EXTRA)


def reselect(results, variants=None):
    """The ``"selected"`` rows of :func:`beyond_preprint` again, over other variants.

    A study of many variants takes long; it may run in pieces (one call per
    group of variants, on the same data, folds and seeds) whose tables are
    concatenated. Each piece's ``"selected"`` rows chose among that piece's
    variants only. This recomputes them from the stored inner-validation
    scores: per fold and seed, the variant of highest
    ``inner_balanced_accuracy`` (ties: the earlier in ``variants``) is
    chosen, and its test row becomes the ``"selected"`` row. The test folds
    play no part, as in the study itself.

    Parameters
    ----------
    results : pandas.DataFrame
        Rows of :func:`beyond_preprint` (one or several calls, concatenated).
    variants : sequence of str, default=None
        Variants to choose among, in order of preference for ties; ``None``:
        every variant of ``results`` that is neither a baseline
        (:data:`BEYOND_BASELINES`) nor ``"selected"``, in order of first
        appearance.

    Returns
    -------
    pandas.DataFrame
        ``results`` without its old ``"selected"`` rows, plus one new
        ``"selected"`` row per fold and seed. Its ``fit_seconds`` is NaN: the
        inner fits' times are not in the table (the study's own rows count
        them).

    Raises
    ------
    ValueError
        A variant without an inner-validation score (run with
        ``select=False``), a (variant, fold, seed) given twice (the same
        variant in two pieces: drop one), or variants that were not run on
        the same folds and seeds.

    Examples
    --------
    >>> both = pd.concat([first_piece, second_piece])  # doctest: +SKIP
    >>> reselect(both)  # doctest: +SKIP
    """
    if not isinstance(results, pd.DataFrame):
        raise TypeError(f"results must be a DataFrame, got {type(results).__name__}.")
    missing = [c for c in ("variant", "fold", "seed", "inner_balanced_accuracy", "chosen",
                           "fit_seconds") if c not in results.columns]
    if missing:
        raise ValueError(f"results lack column(s) {missing}: pass what beyond_preprint "
                         "returned.")
    rest = results[results["variant"] != _SELECTED]
    if variants is None:
        variants = [v for v in pd.unique(rest["variant"])
                    if v not in BEYOND_BASELINES]
    else:
        variants = list([variants] if isinstance(variants, str) else variants)
        unknown = [v for v in variants if v not in set(rest["variant"])]
        if unknown or not variants:
            raise ValueError(f"variants must name variants of results, got {unknown or variants}.")
    rows = rest[rest["variant"].isin(variants)]
    dup = rows.duplicated(["variant", "fold", "seed"])
    if dup.any():
        v, k, seed = rows.loc[dup, ["variant", "fold", "seed"]].iloc[0]
        raise ValueError(f"results hold variant {v!r} twice for fold {k}, seed {seed}: "
                         "drop one of the pieces' rows.")
    scores = rows.pivot(index=["fold", "seed"], columns="variant",
                        values="inner_balanced_accuracy").reindex(columns=variants)
    if scores.isna().all().any():
        raise ValueError(
            f"variant(s) {list(scores.columns[scores.isna().all()])} have no inner-"
            "validation score (run with select=True).")
    if scores.isna().any().any():
        raise ValueError("the variants were not run on the same folds and seeds: "
                         f"{int(scores.isna().sum().sum())} (variant, fold, seed) missing.")
    tests = rows.groupby(["fold", "seed"])["n_test"].nunique() if "n_test" in rows else None
    if tests is not None and (tests > 1).any():
        raise ValueError("the variants were not run on the same folds: test sizes differ.")
    best = scores.to_numpy().argmax(axis=1)  # first maximum: the earlier variant
    by_key = rows.set_index(["variant", "fold", "seed"])
    new = []
    for (k, seed), j in zip(scores.index, best):
        row = by_key.loc[(variants[j], k, seed)].to_dict()
        row.update(variant=_SELECTED, model=_SELECTED, fold=k, seed=seed,
                   chosen=variants[j], fit_seconds=np.nan)
        new.append(row)
    out = pd.concat([rest, pd.DataFrame(new)], ignore_index=True)
    return out[list(results.columns)]


def _builtin_variant(name, template, n_ensemble, region_features):
    from .ensemble import SeedEnsemble

    model = type(template).__name__
    if name == "preprint":
        return _variant_spec(name, model, template)
    if name == "seed ensemble":
        return _variant_spec(name, "SeedEnsemble",
                             SeedEnsemble(template, n_estimators=int(n_ensemble)))
    if name.startswith("latent_dim "):
        return _variant_spec(name, model, clone(template).set_params(
            latent_dim=int(name.split()[1])))
    if name.startswith("2-D + "):
        extra_dims = int(name.split()[2])
        return _variant_spec(name, f"{model} + {model} ({extra_dims}-D)",
                             make_extended_latent(template, extra_dims=extra_dims),
                             routed=True)
    return _variant_spec(name, f"{model} + RegionFeatures",
                         make_hybrid(template, region_features=region_features), routed=True)


def _grouping(results, by):
    """``by`` as a list of columns of ``results`` (default: its setting columns)
    and the grouping keys, with missing settings shown as ``"all"``."""
    if by is None:
        by = [c for c in _SETTING_COLUMNS if c in results.columns]
    elif isinstance(by, str):
        by = [by]
    else:
        by = list(by)
    missing = [c for c in by if c not in results.columns]
    if missing or not by:
        raise ValueError(f"by names columns not in results: {missing or by}.")
    return by, results[by].astype(object).where(results[by].notna(), "all")


def summarize(results, by=None):
    """Mean and standard deviation of a study's metrics over folds and seeds.

    Parameters
    ----------
    results : pandas.DataFrame
        What a study returned.
    by : str or list of str, default=None
        Columns to group by; ``None``: those of ``model``, ``features``,
        ``setting``, ``latent_dim``, ``budget``, ``time_point`` and
        ``variant`` present.

    Returns
    -------
    summary : pandas.DataFrame
        One row per group: the ``by`` columns, ``<metric>_mean`` and
        ``<metric>_std`` for every metric present and ``n`` (rows averaged).
        Sorted as the groups first appear in ``results``. A missing
        ``budget`` reads ``"all"``; the features of a model that has one row
        per fold and seed but different features in different folds (the
        best pair of :func:`compare_models`) read ``"chosen per fold"``.

    Examples
    --------
    >>> import pandas as pd
    >>> res = pd.DataFrame({"model": ["a", "a", "b"], "fold": [0, 1, 0],
    ...                     "seed": [42, 42, 42], "balanced_accuracy": [0.6, 0.8, 0.5],
    ...                     "precision": [0.5, 0.7, 0.5]})
    >>> summarize(res)[["model", "balanced_accuracy_mean", "n"]].round(2).values.tolist()
    [['a', 0.7, 2], ['b', 0.5, 1]]
    """
    if not isinstance(results, pd.DataFrame):
        raise TypeError(f"results must be a pandas DataFrame, got {type(results).__name__}.")
    by, keys = _grouping(results, by)
    values = [m for m in _METRICS if m in results.columns]
    if not values:
        raise ValueError(f"results has none of the metric columns {list(_METRICS)}.")
    if "features" in by and "model" in by and {"fold", "seed"} <= set(results.columns):
        # A model with one row per fold and seed whose feature set changes
        # between folds (the best pair, chosen in each fold) is one group.
        for model, rows in results.groupby("model", sort=False):
            once = not rows.duplicated(["fold", "seed"]).any()
            if once and rows["features"].nunique() > 1:
                keys.loc[rows.index, "features"] = "chosen per fold"
    grouped = results[values].groupby([keys[c] for c in by], sort=False, dropna=False)
    out = grouped.agg(["mean", "std"])
    out.columns = [f"{m}_{stat}" for m, stat in out.columns]
    out["n"] = grouped.size().to_numpy()
    out = out.reset_index()
    return out


def spread(results, metric="balanced_accuracy", by=None, reference=None):
    """Spread of one metric over folds and over seeds, and wins against a reference.

    :func:`summarize`'s standard deviation mixes two sources of variation:
    the folds (which cells are tested) and the seeds (how the model
    happened to train). This table separates them and, with ``reference``,
    compares every model with a reference model on the same folds and
    seeds (paired differences), which is how "beats the hand-picked
    features" should be read.

    Parameters
    ----------
    results : pandas.DataFrame
        What a study returned (with ``fold`` and ``seed`` columns).
    metric : str, default="balanced_accuracy"
        The metric column.
    by : str or list of str, default=None
        Columns to group by; ``None``: as :func:`summarize`.
    reference : str, default=None
        A value of one of the ``by`` columns (the first that holds it), e.g.
        ``"LogisticRegression"``: the rows compared with.

    Returns
    -------
    table : pandas.DataFrame
        One row per group: the ``by`` columns, ``mean``, ``std_over_folds``
        (standard deviation over folds of the seed-averaged metric),
        ``std_over_seeds`` (standard deviation over seeds within a fold,
        averaged over folds; NaN with one seed), ``min``, ``max``, ``n``
        (rows); with ``reference``: ``diff_mean`` and ``diff_std`` (of the
        group's metric minus the reference's, paired by fold and seed),
        ``wins`` (fraction of those pairs where the group is higher) and
        ``n_pairs``.

    Examples
    --------
    >>> import pandas as pd
    >>> res = pd.DataFrame({"model": ["a"] * 4 + ["b"] * 4,
    ...                     "fold": [0, 0, 1, 1] * 2, "seed": [0, 1] * 4,
    ...                     "balanced_accuracy": [.7, .8, .6, .7, .6, .6, .6, .6]})
    >>> out = spread(res, reference="b")
    >>> out[["model", "mean", "diff_mean", "wins"]].round(3).values.tolist()
    [['a', 0.7, 0.1, 0.75], ['b', 0.6, 0.0, 0.0]]
    """
    if not isinstance(results, pd.DataFrame):
        raise TypeError(f"results must be a pandas DataFrame, got {type(results).__name__}.")
    if metric not in results.columns:
        raise ValueError(f"metric {metric!r} is not a column of results.")
    missing = [c for c in ("fold", "seed") if c not in results.columns]
    if missing:
        raise ValueError(f"results must have fold and seed columns; it lacks {missing}.")
    by, keys = _grouping(results, by)
    ref = None
    if reference is not None:
        column = next((c for c in by if (keys[c] == reference).any()), None)
        if column is None:
            raise ValueError(f"reference {reference!r} is not a value of the columns {by}.")
        ref = (results.loc[keys[column] == reference]
               .groupby(["fold", "seed"])[metric].mean())
    out = []
    for key, rows in results.groupby([keys[c] for c in by], sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        values = rows[metric].astype(float)
        per_fold = values.groupby(rows["fold"]).mean()
        within = values.groupby(rows["fold"]).std()
        entry = dict(zip(by, key))
        entry.update(
            mean=float(values.mean()),
            std_over_folds=float(per_fold.std()) if len(per_fold) > 1 else np.nan,
            std_over_seeds=float(within.mean()) if within.notna().any() else np.nan,
            min=float(values.min()), max=float(values.max()), n=int(len(rows)))
        if ref is not None:
            mine = values.groupby([rows["fold"], rows["seed"]]).mean()
            paired = pd.concat([mine, ref], axis=1, join="inner").dropna()
            diff = paired.iloc[:, 0] - paired.iloc[:, 1]
            entry.update(diff_mean=float(diff.mean()) if len(diff) else np.nan,
                         diff_std=float(diff.std()) if len(diff) > 1 else np.nan,
                         wins=float((diff > 0).mean()) if len(diff) else np.nan,
                         n_pairs=int(len(diff)))
        out.append(entry)
    return pd.DataFrame(out)
