"""A report people can read: what was predicted, how well, and what the latent features mean.

:func:`write_report` evaluates a fitted :class:`~ai4cellfate.CellFateAAE` on
labelled crops and writes, into one folder,

``index.html``
    One self-contained page (images by relative path, no scripts, no network)
    in three parts: *what was predicted* (fate definition, horizon in frames
    and hours, crop size in px and um, numbers of cell-frames, cells,
    lineages and frames, which cells are evaluated); *how good it is*
    (balanced accuracy with a bootstrap interval resampled by lineage,
    precision, recall, ROC AUC, and a hand-picked-feature baseline, logistic
    regression on :class:`~ai4cellfate.features.RegionFeatures`, scored on the
    same cells); *what each latent feature means* (its measured effect on the
    decoded nucleus's area, intensity, aspect ratio and circularity, one
    sentence per feature, and warnings when the latent features are
    correlated or far from the prior). Then the training curves.
``summary.md``
    The same in Markdown.
``metrics.json``
    Every number of the page, the classification metrics
    (:func:`~ai4cellfate.metrics.fate_report`), the latent diagnostics
    (:func:`~ai4cellfate.metrics.latent_diagnostics`) and how the model was
    trained.
``latent_space.png``, ``traversal_grid.png``, ``roc_curve.png``, ``confusion_matrix.png``, ``training_curves.png``
    The figures of :mod:`ai4cellfate.plotting`.
``predictions.csv``
    One row per sample (:func:`prediction_table`).
``latent_features.csv``
    The latent-feature table, one row per latent feature.

Everything is written to a temporary folder beside ``out_dir`` and moved into
place at the end, so a failure leaves no half-written report. This is what
``ai4cellfate report`` and ``ai4cellfate demo`` write.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import math
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ._io import publish_mode
from ._version import __version__

__all__ = ["REPORT_FILES", "bootstrap_balanced_accuracy", "prediction_table", "write_report"]

#: Names of the files :func:`write_report` writes into its folder.
REPORT_FILES = (
    "index.html",
    "summary.md",
    "metrics.json",
    "predictions.csv",
    "latent_features.csv",
    "latent_space.png",
    "traversal_grid.png",
    "roc_curve.png",
    "confusion_matrix.png",
    "training_curves.png",
)

_PREDICTION_KEYS = {"track": ("track", "track_id"), "frame": ("frame", "t")}


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def _class_name(label):
    """Column-friendly name of a class label: ``fate0`` for the integer 0."""
    if isinstance(label, (bool, np.bool_)):
        return str(label)
    if isinstance(label, (int, np.integer)):
        return f"fate{int(label)}"
    if isinstance(label, (float, np.floating)) and float(label).is_integer():
        return f"fate{int(label)}"
    return str(label)


def _jsonable(obj):
    """``obj`` with numpy types converted and NaN / infinity as ``None``."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _fmt(value, digits=3):
    """A number for a table: fixed digits, ``n/a`` for missing values."""
    if value is None:
        return "n/a"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(value):
        return "n/a"
    if value.is_integer() and abs(value) >= 10:
        return str(int(value))
    return f"{value:.{digits}f}"


def _check_labels(y, n):
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"y must hold one label per image ({n}); got shape {y.shape}.")
    return y


@contextlib.contextmanager
def _staged_output(out_dir, names, *, overwrite=False):
    """Write into a temporary folder, then move the files into ``out_dir``.

    The temporary folder lies beside ``out_dir`` (same file system, so moves
    are renames). A new ``out_dir`` is created by renaming the whole folder;
    into an existing one each file is renamed into place, and files other
    than ``names`` are left alone. On any error the temporary folder is
    removed and ``out_dir`` is untouched.

    Parameters
    ----------
    out_dir : path-like
        The destination folder.
    names : iterable of str
        The file names that will be written (checked against existing files).
    overwrite : bool, default=False
        Replace existing files of those names.

    Yields
    ------
    pathlib.Path
        The temporary folder to write into.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a folder.")
    if out_dir.is_dir() and not overwrite:
        clash = sorted(n for n in names if (out_dir / n).exists())
        if clash:
            raise FileExistsError(
                f"{out_dir} already holds {', '.join(clash)}; pass overwrite=True to "
                "replace them."
            )
    parent = out_dir.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.absolute().name}.tmp-", dir=parent))
    try:
        yield tmp
        for item in tmp.iterdir():  # mkstemp files are private (0600)
            if item.is_file():
                publish_mode(item)
        if not out_dir.exists():
            publish_mode(tmp, directory=True)
            os.rename(tmp, out_dir)
        else:
            for item in sorted(tmp.iterdir()):
                os.replace(item, out_dir / item.name)
            tmp.rmdir()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --------------------------------------------------------------------------
# Predictions
# --------------------------------------------------------------------------


def prediction_table(model, X, *, table=None, y=None):
    """One row per sample: identifiers, predicted fate, probabilities, latents.

    Parameters
    ----------
    model : fitted CellFateAAE
        The model to apply.
    X : array-like of shape (n_samples, height, width[, channels])
        Crops shaped like the training images.
    table : pandas.DataFrame, optional
        The dataset's per-sample table
        (:attr:`~ai4cellfate.datasets.FateDataset.table`); its ``track_id``
        and ``t`` columns become ``track`` and ``frame``.
    y : array-like of shape (n_samples,), optional
        True fates, written as ``true_fate``.

    Returns
    -------
    pandas.DataFrame
        Columns ``sample`` (row number), ``track`` and ``frame`` (when the
        table has them), ``true_fate`` (when ``y`` is given),
        ``predicted_fate``, ``p_<class>`` for every class in
        ``model.classes_`` (``p_fate0``, ``p_fate1`` for 0/1 labels) and the
        latent coordinates ``z0``, ``z1``, ... .

    Examples
    --------
    >>> from ai4cellfate import CellFateAAE
    >>> from ai4cellfate.datasets import make_nuclei
    >>> from ai4cellfate.report import prediction_table
    >>> X, y = make_nuclei(120, random_state=0)
    >>> model = CellFateAAE(stage1_epochs=1, min_epochs=1, max_epochs=1,
    ...                     random_state=0).fit(X, y)
    >>> prediction_table(model, X[:2], y=y[:2]).columns.tolist()
    ['sample', 'true_fate', 'predicted_fate', 'p_fate0', 'p_fate1', 'z0', 'z1']
    """
    Z = np.asarray(model.transform(X))
    n = len(Z)
    proba = np.asarray(model.predict_latent_proba(Z))
    classes = np.asarray(model.classes_)
    out = pd.DataFrame({"sample": np.arange(n)})
    if table is not None:
        if not isinstance(table, pd.DataFrame):
            raise TypeError(f"table must be a pandas DataFrame; got {type(table).__name__}.")
        if len(table) != n:
            raise ValueError(f"table must have one row per image ({n}); it has {len(table)}.")
        for name, keys in _PREDICTION_KEYS.items():
            for key in keys:
                if key in table.columns:
                    out[name] = table[key].to_numpy()
                    break
    if y is not None:
        out["true_fate"] = _check_labels(y, n)
    out["predicted_fate"] = classes[np.argmax(proba, axis=1)]
    for j, c in enumerate(classes.tolist()):
        out[f"p_{_class_name(c)}"] = proba[:, j]
    for d in range(Z.shape[1]):
        out[f"z{d}"] = Z[:, d]
    return out


# --------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------


log = logging.getLogger(__name__)

#: Bootstrap resamples behind the confidence intervals, and their level.
N_BOOTSTRAP = 1000
CI_LEVEL = 0.95

#: Name of the hand-picked-feature baseline on the page.
BASELINE_NAME = "Region features + logistic regression"
MODEL_NAME = "AI4CellFate"

# The traversal behind the latent-feature table: from the median cell, over
# the 5th-95th percentile of the evaluated cells, 9 values per feature.
_TRAVERSAL = dict(fixed="median", quantiles=(0.05, 0.95), n_steps=9)
_TABLE_MEASUREMENTS = (
    ("area", "area"),
    ("mean_intensity", "mean intensity"),
    ("aspect_ratio", "aspect ratio"),
    ("circularity", "circularity"),
)


def _model_facts(model):
    params = model.get_params()
    if not (params.get("random_state") is None or isinstance(params["random_state"], int)):
        params["random_state"] = repr(params["random_state"])
    try:
        import keras

        backend = keras.backend.backend()
    except Exception:  # pragma: no cover - keras is a dependency
        backend = None
    history = getattr(model, "history_", None)
    return {
        "keras_backend": backend,
        "n_epochs": int(getattr(model, "n_epochs_", 0) or 0),
        "stop_reason": getattr(model, "stop_reason_", None),
        "classes": np.asarray(model.classes_).tolist(),
        "image_shape": list(getattr(model, "image_shape_", ()) or ()),
        "params": params,
        "final_epoch": (
            history.iloc[-1].to_dict()
            if isinstance(history, pd.DataFrame) and len(history) else {}
        ),
    }


def _pretty(name):
    """``fate1`` -> ``fate 1 (division)``; other names unchanged."""
    names = {"fate0": "fate 0 (no division)", "fate1": "fate 1 (division)"}
    if name in names:
        return names[name]
    if name.startswith("fate") and name[4:].isdigit():
        return f"fate {name[4:]}"
    return name


def _positive_label(classes):
    classes = list(np.asarray(classes).tolist())
    return 1 if 1 in classes else classes[-1]


# --------------------------------------------------------------------------
# What was predicted
# --------------------------------------------------------------------------


def _time_text(seconds):
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


def _positive_number(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def _prediction_facts(*, y, groups, table, meta, pixel_size, frame_interval, image_shape,
                      split):
    """What was predicted, as a dict (for metrics.json) and table rows."""
    meta = dict(meta or {})
    source = meta.get("source") if isinstance(meta.get("source"), dict) else {}
    synthetic = source.get("format") == "synthetic"
    pixel_size = _positive_number(pixel_size if pixel_size is not None
                                  else meta.get("pixel_size"))
    frame_interval = _positive_number(frame_interval if frame_interval is not None
                                      else meta.get("frame_interval"))
    facts = {"pixel_size_um": pixel_size, "frame_interval_s": frame_interval}
    rows = []

    # Fate definition and horizon.
    horizon = meta.get("horizon")
    facts["horizon_frames"] = horizon
    facts["horizon_hours"] = (horizon * frame_interval / 3600
                              if horizon is not None and frame_interval else None)
    if synthetic:
        definition = ("Synthetic nuclei (make_nuclei): fate 1 (division) nuclei are drawn "
                      "larger and brighter on average than fate 0 (no division). There is "
                      "no movie, so no time horizon.")
        horizon_text = "none (synthetic data)"
    elif "horizon" in meta and horizon is None:
        definition = ("Fate 1 (division): the cell divides before the movie ends. Fate 0 "
                      "(no division): it is still present in the last frame without having "
                      "divided.")
        horizon_text = "the rest of the movie"
        if meta.get("n_frames"):
            horizon_text += f" ({meta['n_frames']} frames in all)"
    elif horizon is not None:
        when = f"{horizon} frames"
        if frame_interval:
            when += f" ({_time_text(horizon * frame_interval)})"
        definition = (f"Fate 1 (division): the cell divides within {when} of the frame it is "
                      f"seen in. Fate 0 (no division): it is still present {horizon} frames "
                      "later without having divided.")
        horizon_text = f"{horizon} frames"
        horizon_text += (f" = {_time_text(horizon * frame_interval)} at "
                         f"{_time_text(frame_interval)} per frame" if frame_interval
                         else " (frame interval unknown, so no time in hours)")
    else:
        definition = ("The fate labels stored in the data file (how they were defined is "
                      "not recorded).")
        horizon_text = "not recorded"
    unknown = meta.get("unknown")
    dropped = meta.get("dropped") or {}
    n_unknown = sum(int(v) for k, v in dropped.items() if str(k).startswith("unknown_"))
    if unknown == "drop":
        definition += (" Cell-frames whose outcome is unknown (the track ends early, or the "
                       "horizon runs past the movie's end) are left out"
                       + (f" ({n_unknown} of them)." if n_unknown else "."))
    elif unknown == "keep":
        definition += " Cell-frames whose outcome is unknown are kept as fate 2."
    elif unknown == "negative":
        definition += " Cell-frames whose outcome is unknown are counted as fate 0."
    facts["definition"] = definition
    rows += [("Fate definition", definition), ("Horizon", horizon_text)]

    frames = meta.get("frames")
    sampled = {
        "all": "every frame in which a tracked cell is seen is one sample, so one cell "
               "gives several correlated samples",
        "first": "the first frame of each cell",
        "lifetime": "11 time points spread over each cell's lifetime",
    }.get(frames)
    if sampled:
        if meta.get("first_generation"):
            sampled += "; only cells present in the first frame"
        rows.append(("Frames used as input", sampled))
    facts["frames"] = frames

    # Crop geometry.
    shape = [int(s) for s in (image_shape or ())][:2]
    crop_px = meta.get("crop_size_px")
    out_px = meta.get("output_size_px") or (shape[0] if shape else None)
    facts["crop_size_px"] = crop_px
    facts["output_size_px"] = out_px
    out_um = None
    if pixel_size:
        out_um = pixel_size * (crop_px / out_px if crop_px and out_px else 1.0)
    facts["output_pixel_um"] = out_um
    if crop_px and out_px:
        text = f"a {crop_px} \u00d7 {crop_px} px window"
        if pixel_size:
            text += f" ({crop_px * pixel_size:.1f} \u00d7 {crop_px * pixel_size:.1f} \u00b5m)"
        text += (f" binned to {out_px} \u00d7 {out_px} px" if out_px != crop_px
                 else ", kept at that size")
        if out_um:
            text += f" ({out_um:.2f} \u00b5m per pixel)"
    elif shape:
        text = f"{shape[0]} \u00d7 {shape[1]} px crops"
        if out_um:
            text += f" ({out_um:.2f} \u00b5m per pixel)"
    else:
        text = "not recorded"
    if not pixel_size and not synthetic:
        text += "; pixel size unknown, so no \u00b5m (prepare --pixel-size gives it)"
    rows.append(("Input crop", text))

    # Counts.
    n = len(y)
    classes, counts = np.unique(y, return_counts=True)
    count_text = ", ".join(f"{_pretty(_class_name(c))}: {k}" for c, k in
                           zip(classes.tolist(), counts.tolist()))
    facts["n_samples"] = int(n)
    facts["class_counts"] = {_class_name(c): int(k) for c, k in zip(classes.tolist(), counts)}
    rows.append(("Samples (cell-frames)",
                 f"{n} ({count_text}); a sample is one cell seen in one frame"))
    n_lineages = None
    if groups is not None:
        n_lineages = int(len(np.unique(np.asarray(groups))))
        if n_lineages < n:
            rows.append(("Lineages", f"{n_lineages} (a lineage is a cell with its "
                         "relatives; its samples are correlated)"))
        elif not synthetic:
            rows.append(("Lineages", f"{n_lineages}: every sample is its own group "
                         "(no lineage information)"))
    facts["n_lineages"] = n_lineages
    n_cells = n_frames = None
    if isinstance(table, pd.DataFrame):
        for col in ("cell_id", "track_id"):
            if col in table.columns:
                n_cells = int(table[col].nunique())
                rows.append(("Cells", f"{n_cells} distinct cells (tracks)"))
                break
        if "t" in table.columns and len(table):
            t = table["t"].to_numpy()
            n_frames = int(len(np.unique(t)))
            text = f"{n_frames} distinct frames (frames {int(t.min())}\u2013{int(t.max())}"
            if meta.get("n_frames"):
                text += f" of the movie's {meta['n_frames']}"
            text += ")"
            if frame_interval:
                text += f"; {_time_text(frame_interval)} per frame"
            rows.append(("Frames", text))
    facts["n_cells"] = n_cells
    facts["n_frames"] = n_frames
    facts["split"] = split
    rows.append(("Evaluated cells", split or "as given (whether the model saw them in "
                 "training is not known to the report)"))
    return facts, rows


# --------------------------------------------------------------------------
# How good it is: baseline, ROC, bootstrap
# --------------------------------------------------------------------------


def _baseline_estimator(seed):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        StandardScaler(),
        LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed),
    )


def _region_features(X, notes):
    from .features import RegionFeatures

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        rf = RegionFeatures()
        F = rf.fit_transform(np.asarray(X))
    for w in caught:
        notes.append(f"Region features: {w.message}")
    return F, [str(n) for n in rf.get_feature_names_out()]


def _as_training_data(train):
    """``train`` -> (X, y, groups or None); accepts a tuple or a FateDataset-like."""
    if train is None:
        return None
    if hasattr(train, "X") and hasattr(train, "y"):
        return np.asarray(train.X), np.asarray(train.y), getattr(train, "groups", None)
    parts = tuple(train)
    if len(parts) not in (2, 3):
        raise ValueError("train must be (X, y), (X, y, groups) or a FateDataset.")
    X, y = np.asarray(parts[0]), np.asarray(parts[1])
    if len(X) != len(y):
        raise ValueError(f"train has {len(X)} images but {len(y)} labels.")
    return X, y, (parts[2] if len(parts) == 3 else None)


def _baseline(X, y, groups, train, pos_label, seed):
    """Fit the baseline; return a dict with predictions, scores and how it was done."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    notes = []
    out = {"name": BASELINE_NAME, "notes": notes}
    F, names = _region_features(X, notes)
    out["features"] = names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if train is not None:
            X_tr, y_tr, _ = train
            if len(np.unique(y_tr)) < 2:
                out["unavailable"] = "the training data hold a single fate"
                return out
            F_tr, _ = _region_features(X_tr, notes)
            est = _baseline_estimator(seed).fit(F_tr, y_tr)
            y_pred = est.predict(F)
            proba = est.predict_proba(F)
            classes = est.classes_.tolist()
            out["mode"] = "training data"
            out["n_train"] = int(len(y_tr))
            out["how"] = (
                f"Logistic regression (class_weight='balanced', standardised inputs) on "
                f"{len(names)} region features measured on each crop (area, perimeter, axis "
                f"lengths, eccentricity, solidity, circularity, intensity mean, s.d. and sum), "
                f"fitted on the model's {len(y_tr)} training cell-frames and evaluated on the "
                "same cell-frames as the model. Leak-free: the features are per-crop "
                "measurements (nothing is fitted on the evaluated cells) and the scaler and "
                "the regression see the training cells only."
            )
        else:
            labels, counts = np.unique(y, return_counts=True)
            n_splits = int(min(5, counts.min()))
            grouped = groups is not None and len(np.unique(groups)) < len(y)
            if grouped:
                n_splits = min(n_splits, len(np.unique(groups)))
            if len(labels) < 2 or n_splits < 2:
                out["unavailable"] = ("too few cells of each fate for a cross-validated "
                                      "baseline")
                return out
            if grouped:
                splitter = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed)
            else:
                splitter = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
            y_pred = np.empty(len(y), dtype=y.dtype)
            classes = labels.tolist()
            proba = np.zeros((len(y), len(classes)))
            for tr, te in splitter.split(F, y, groups if grouped else None):
                if len(np.unique(y[tr])) < 2:
                    out["unavailable"] = "a cross-validation fold held a single fate"
                    return out
                est = _baseline_estimator(seed).fit(F[tr], y[tr])
                y_pred[te] = est.predict(F[te])
                cols = [classes.index(c) for c in est.classes_.tolist()]
                proba[np.ix_(te, cols)] = est.predict_proba(F[te])
            out["mode"] = "cross-validation"
            out["n_train"] = None
            out["how"] = (
                f"Logistic regression (class_weight='balanced', standardised inputs) on "
                f"{len(names)} region features measured on each crop, {n_splits}-fold "
                f"cross-validated on the evaluated cell-frames"
                + (", split by lineage" if grouped else "")
                + ": each cell-frame is predicted by a regression fitted on the other folds "
                "only. The model's training data were not available to the report, so the "
                "baseline learned from fewer, and different, cells than the model; both are "
                "scored on exactly the same cell-frames."
            )
    out["y_pred"] = y_pred
    out["score"] = (proba[:, classes.index(pos_label)] if pos_label in classes
                    else np.zeros(len(y)))
    return out


def _roc_auc(y, score, pos_label):
    from sklearn.metrics import roc_auc_score

    positive = np.asarray(y) == pos_label
    if positive.all() or not positive.any() or score is None:
        return None
    return float(roc_auc_score(positive, np.asarray(score, dtype=float)))


def bootstrap_balanced_accuracy(y, predictions, *, groups=None, n_resamples=N_BOOTSTRAP,
                                level=CI_LEVEL, random_state=0):
    """Bootstrap confidence intervals of balanced accuracy, by lineage when known.

    Resamples whole groups (lineages) with replacement, so that correlated
    cell-frames of one lineage stay together, and recomputes every
    classifier's balanced accuracy on each resample (the same resamples for
    all, so that their difference gets an interval too).

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        True fates.
    predictions : dict of str to array-like of shape (n_samples,)
        Predicted fates of each classifier.
    groups : array-like of shape (n_samples,), optional
        Lineage ids; every sample is its own group when None.
    n_resamples : int, default=1000
        Number of bootstrap resamples.
    level : float, default=0.95
        Coverage of the percentile intervals.
    random_state : int, default=0
        Seed of the resampling.

    Returns
    -------
    dict
        ``{name: (low, high)}`` per classifier, and with two classifiers
        ``"difference"``: the interval of the first minus the second.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.repeat([0, 1], 50)
    >>> ci = bootstrap_balanced_accuracy(y, {"perfect": y, "chance": np.zeros(100)})
    >>> ci["perfect"], ci["chance"]
    ((1.0, 1.0), (0.5, 0.5))
    >>> ci["difference"]
    (0.5, 0.5)
    """
    y = np.asarray(y)
    n = len(y)
    if groups is None:
        g = np.arange(n)
    else:
        g = np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
    n_groups = int(g.max()) + 1 if n else 0
    classes, c = np.unique(y, return_inverse=True)
    c = c.ravel()
    counts = np.zeros((n_groups, len(classes)))
    np.add.at(counts, (g, c), 1.0)
    hits = {}
    for name, pred in predictions.items():
        h = np.zeros((n_groups, len(classes)))
        np.add.at(h, (g, c), (np.asarray(pred) == y).astype(float))
        hits[name] = h
    rng = np.random.default_rng(random_state)
    p = np.full(n_groups, 1.0 / n_groups)
    scores = {name: [] for name in predictions}
    chunk = max(1, min(n_resamples, 2_000_000 // max(n_groups, 1)))
    done = 0
    while done < n_resamples:
        k = min(chunk, n_resamples - done)
        draws = rng.multinomial(n_groups, p, size=k).astype(float)
        N = draws @ counts
        with np.errstate(invalid="ignore", divide="ignore"):
            for name, h in hits.items():
                recall = (draws @ h) / N
                recall[N == 0] = np.nan
                scores[name].append(np.nanmean(recall, axis=1))
        done += k
    alpha = (1 - level) / 2
    out = {}
    arrays = {name: np.concatenate(v) for name, v in scores.items()}
    for name, a in arrays.items():
        lo, hi = np.nanquantile(a, [alpha, 1 - alpha])
        out[name] = (round(float(lo), 6), round(float(hi), 6))
    names = list(arrays)
    if len(names) == 2:
        diff = arrays[names[0]] - arrays[names[1]]
        lo, hi = np.nanquantile(diff, [alpha, 1 - alpha])
        out["difference"] = (round(float(lo), 6), round(float(hi), 6))
    return out


def _quality(y, y_pred, score, labels, groups, baseline, pos_label, n_bootstrap, seed):
    """Metrics of the model and the baseline on the same cells, with intervals."""
    from . import metrics as m

    model = {
        "classification": m.fate_report(y, y_pred, labels=labels)["value"].to_dict(),
        "roc_auc": _roc_auc(y, score, pos_label),
    }
    out = {"model": model, "positive_fate": _class_name(pos_label)}
    preds = {MODEL_NAME: y_pred}
    if "y_pred" in baseline:
        baseline["classification"] = m.fate_report(
            y, baseline["y_pred"], labels=labels)["value"].to_dict()
        baseline["roc_auc"] = _roc_auc(y, baseline["score"], pos_label)
        preds[BASELINE_NAME] = baseline["y_pred"]
    grouped = groups is not None and len(np.unique(groups)) < len(y)
    ci = bootstrap_balanced_accuracy(y, preds, groups=groups if grouped else None,
                                     n_resamples=n_bootstrap, random_state=seed)
    out["bootstrap"] = {
        "n_resamples": int(n_bootstrap),
        "level": CI_LEVEL,
        "unit": "lineage" if grouped else "cell-frame",
        "random_state": seed,
        "balanced_accuracy": {
            "model": ci[MODEL_NAME],
            "baseline": ci.get(BASELINE_NAME),
            "difference": ci.get("difference"),
        },
    }
    out["baseline"] = {k: v for k, v in baseline.items() if k not in ("y_pred", "score")}
    return out


# --------------------------------------------------------------------------
# What each latent feature means
# --------------------------------------------------------------------------


def _latent_features(model, X, Z, y, pos_label, out_pixel_um):
    """Traversal trend table and one reading per latent feature."""
    from ._diagnostics import fate_separation, latent_feature_readings
    from .interpret import latent_traversal, traversal_effects, traversal_trends

    traversal = latent_traversal(model, X=X, **_TRAVERSAL)
    trends = traversal_trends(traversal)
    change = traversal_effects(traversal, relative=False)
    relative = traversal_effects(traversal, relative=True)
    sep = fate_separation(Z, y, pos_label=pos_label)
    readings = latent_feature_readings(trends, relative, sep,
                                       positive=_pretty(_class_name(pos_label)))
    rows = []
    for k, d in enumerate(trends.index):
        values = traversal.loc[traversal["dimension"] == d, "value"]
        row = {"feature": str(d), "from": float(values.min()), "to": float(values.max()),
               "fate_d": None if not np.isfinite(sep[k]) else float(sep[k]),
               "reading": readings[str(d)]}
        for key, _ in _TABLE_MEASUREMENTS:
            row[f"{key}_change"] = float(change.loc[d, key])
            row[f"{key}_trend"] = float(trends.loc[d, key])
        row["area_change_um2"] = (row["area_change"] * out_pixel_um ** 2
                                  if out_pixel_um else None)
        rows.append(row)
    return rows


def _change_text(row, key, out_pixel_um):
    v, rho = row[f"{key}_change"], row[f"{key}_trend"]
    if v is None or not math.isfinite(v):
        return "n/a"
    if key == "area":
        text = f"{v:+.1f} px\u00b2"
        if out_pixel_um:
            text += f" ({row['area_change_um2']:+.1f} \u00b5m\u00b2)"
    elif key == "mean_intensity":
        text = f"{v:+.3f} a.u."
    else:
        text = f"{v:+.3f}"
    rho_text = "n/a" if rho is None or not math.isfinite(rho) else f"{rho:+.2f}"
    return f"{text}, \u03c1 {rho_text}"


def _latent_table(rows, out_pixel_um):
    """Header and rows of the latent-feature table, as text."""
    area_unit = "px\u00b2" + (" and \u00b5m\u00b2" if out_pixel_um else "")
    header = ["feature", "traversed (prior s.d.)", f"area ({area_unit})",
              "mean intensity (a.u., 0\u20131)", "aspect ratio (width / height)",
              "circularity (4\u03c0 area / perimeter\u00b2)", "fate separation (d)"]
    body = []
    for r in rows:
        body.append([
            r["feature"], f"{r['from']:+.2f} to {r['to']:+.2f}",
            *(_change_text(r, key, out_pixel_um) for key, _ in _TABLE_MEASUREMENTS),
            "n/a" if r["fate_d"] is None else f"{r['fate_d']:+.2f}",
        ])
    return header, body


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------


#: Definitions printed on the page and in summary.md.
DEFINITIONS = (
    "Balanced accuracy: the mean of the recalls of all fates (0.5 is chance for two "
    "fates). Precision of a fate: of the cell-frames predicted to have it, the fraction "
    "that truly have it. Recall of a fate: of the cell-frames that have it, the fraction "
    "predicted to have it. ROC AUC: the probability that a random cell-frame of the "
    "positive fate gets a higher score than a random one of the other fate (0.5 is "
    "chance). The 95% intervals are percentile bootstrap intervals over {unit}s "
    "({n} resamples, seed {seed}). Latent diagnostics are computed on the evaluated "
    "cell-frames."
)


def _definitions(quality):
    b = quality["bootstrap"]
    return DEFINITIONS.format(unit=b["unit"], n=b["n_resamples"], seed=b["random_state"])


def _ci_text(ci):
    if not ci:
        return "n/a"
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _quality_rows(quality):
    """(metric, model, baseline) rows of the comparison table."""
    mc = quality["model"]["classification"]
    base = quality["baseline"]
    bc = base.get("classification") or {}
    ba_ci = quality["bootstrap"]["balanced_accuracy"]
    rows = [
        ("Balanced accuracy", _fmt(mc.get("balanced_accuracy")),
         _fmt(bc.get("balanced_accuracy")) if bc else "n/a"),
        (f"{int(CI_LEVEL * 100)}% interval of balanced accuracy", _ci_text(ba_ci["model"]),
         _ci_text(ba_ci["baseline"])),
        (f"ROC AUC (positive: {_pretty(quality['positive_fate'])})",
         _fmt(quality["model"]["roc_auc"]), _fmt(base.get("roc_auc")) if bc else "n/a"),
    ]
    for key, value in mc.items():
        if key.startswith("precision_"):
            rows.append((f"Precision of {_pretty(key[len('precision_'):])}", _fmt(value),
                         _fmt(bc.get(key)) if bc else "n/a"))
    for key, value in mc.items():
        if key.startswith("confusion_true_"):
            a, b = key[len("confusion_true_"):].split("_pred_")
            if a == b:
                rows.append((f"Recall of {_pretty(a)}", _fmt(value),
                             _fmt(bc.get(key)) if bc else "n/a"))
    return rows


def _verdict(quality):
    """One sentence comparing the model with the baseline."""
    diff = quality["bootstrap"]["balanced_accuracy"]["difference"]
    base = quality["baseline"]
    if "unavailable" in base:
        return f"No baseline: {base['unavailable']}."
    if not diff:
        return ""
    lo, hi = diff
    unit = quality["bootstrap"]["unit"]
    text = (f"Balanced accuracy of AI4CellFate minus the baseline: {_ci_text(diff)} "
            f"({int(CI_LEVEL * 100)}% bootstrap interval over {unit}s, the same resamples "
            "for both). ")
    if lo > 0:
        text += "AI4CellFate is better than the hand-picked features on these cells."
    elif hi < 0:
        text += "The hand-picked features are better than AI4CellFate on these cells."
    else:
        text += "The difference is within the uncertainty: neither is clearly better."
    return text


def _training_rows(metrics):
    lat = metrics["latent"]
    tr = metrics["training"]
    return [
        ("Latent class-centroid distance (prior s.d.)", _fmt(lat.get("centroid_distance"))),
        ("Largest KL divergence of a latent feature to N(0, 1)", _fmt(lat.get("kl_max"))),
        ("Largest |correlation| between latent features",
         _fmt(lat.get("max_abs_correlation"))),
        ("Training epochs (both stages)", _fmt(tr.get("n_epochs"))),
        ("Training stopped because", str(tr.get("stop_reason"))),
        ("Keras backend", str(tr.get("keras_backend"))),
    ]


def _glance(metrics):
    """The two-sentence answer at the top of the page."""
    q = metrics["quality"]
    p = metrics["prediction"]
    mc = q["model"]["classification"]
    ci = q["bootstrap"]["balanced_accuracy"]
    n = p["n_samples"]
    where = f"{n} cell-frames"
    if p.get("n_lineages") and p["n_lineages"] < n:
        where += f" of {p['n_lineages']} lineages"
    text = (f"On {where}, AI4CellFate predicts the fate from one frame with balanced "
            f"accuracy {_fmt(mc.get('balanced_accuracy'))} ({int(CI_LEVEL * 100)}% interval "
            f"{_ci_text(ci['model'])}) and ROC AUC {_fmt(q['model']['roc_auc'])}.")
    bc = q["baseline"].get("classification")
    if bc:
        text += (f" Hand-picked region features with a logistic regression score "
                 f"{_fmt(bc.get('balanced_accuracy'))} (interval "
                 f"{_ci_text(ci['baseline'])}) and "
                 f"ROC AUC {_fmt(q['baseline'].get('roc_auc'))} on the same cell-frames.")
    return text


_FIGURE_TEXT = {
    "roc_curve.png": (
        "ROC curve",
        "True against false positive rate as the decision threshold moves, for the model "
        "(probability of the positive fate) and the baseline, on the same cell-frames."),
    "confusion_matrix.png": (
        "Confusion matrix",
        "Rows: true fate; columns: predicted fate; each row sums to 1."),
    "latent_space.png": (
        "Latent space",
        "Each dot is one cell-frame, placed by its latent features and coloured by its "
        "true fate; crosses mark the class centroids and the dashed line is the latent "
        "classifier's decision boundary."),
    "traversal_grid.png": (
        "Latent traversal",
        "Nuclei generated by the decoder over a grid of latent values spanning the "
        "evaluated cells (5th to 95th percentile): how the image changes along each "
        "latent feature."),
    "training_curves.png": (
        "Training curves",
        "Losses of both training stages (left) and the stopping criteria on the "
        "validation split with their thresholds (right)."),
}


def _md_table(header, rows):
    def cell(v):
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def _markdown(title, metrics, notes, source):
    q = metrics["quality"]
    lines = [f"# {title}", ""]
    if source:
        lines += [source, ""]
    for note in notes:
        lines += [f"> {note}", ""]
    lines += [_glance(metrics), ""]
    lines += ["## What was predicted", ""]
    lines += _md_table(["", ""], metrics["_prediction_rows"]) + [""]
    lines += ["## How good it is", ""]
    lines += _md_table(["metric", MODEL_NAME, "baseline"], _quality_rows(q)) + [""]
    if q["baseline"].get("how"):
        lines += [f"Baseline: {q['baseline']['how']}", ""]
    verdict = _verdict(q)
    if verdict:
        lines += [verdict, ""]
    lines += ["## What each latent feature means", ""]
    for w in metrics["warnings"]:
        lines += [f"> **Warning.** {w}", ""]
    lines += [f"- {r['reading']}" for r in metrics["latent_features"]] + [""]
    header, body = _latent_table(metrics["latent_features"],
                                 metrics["prediction"]["output_pixel_um"])
    lines += ["Change of each measurement of the decoded nucleus over the traversal "
              "(and its rank correlation \u03c1 with the latent value):", ""]
    lines += _md_table(header, body) + [""]
    lines += ["## Training and latent diagnostics", ""]
    lines += _md_table(["metric", "value"], _training_rows(metrics)) + [""]
    lines += [_definitions(q), ""]
    return "\n".join(lines)


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       margin: 2rem auto; max-width: 1200px; padding: 0 1rem; color: #222; }
h1 { margin-bottom: 0.2rem; }
h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
.meta { color: #666; margin-top: 0; }
.glance { font-size: 1.1rem; max-width: 60rem; }
.note { background: #fff6e0; border-left: 4px solid #e69f00; padding: 0.5rem 1rem; }
.warning { background: #fdecea; border-left: 4px solid #d55e00; padding: 0.5rem 1rem; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.7rem; text-align: left;
         vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.facts td:first-child { white-space: nowrap; font-weight: 600; }
.facts td { max-width: 52rem; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr));
        gap: 1.5rem; }
figure { margin: 0; }
figure.wide { grid-column: 1 / -1; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.9rem; }
.defs { color: #555; font-size: 0.9rem; max-width: 60rem; }
footer { color: #888; font-size: 0.85rem; margin-top: 2rem; }
"""


def _html_table(header, rows, *, cls=None, numeric_from=1):
    esc = html.escape
    out = [f'<table class="{cls}">' if cls else "<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{esc(str(h))}</th>" for h in header) + "</tr>")
    for row in rows:
        cells = []
        for k, v in enumerate(row):
            attr = ' class="num"' if k >= numeric_from else ""
            cells.append(f"<td{attr}>{esc(str(v))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return out


def _html_figures(names):
    esc = html.escape
    out = ['<div class="grid">']
    for fname in names:
        heading, caption = _FIGURE_TEXT[fname]
        wide = ' class="wide"' if fname == "training_curves.png" else ""
        out += [
            f"<figure{wide}>",
            f"<h3>{esc(heading)}</h3>",
            f'<img src="{esc(fname)}" alt="{esc(heading)}">',
            f"<figcaption>{esc(caption)}</figcaption>",
            "</figure>",
        ]
    out.append("</div>")
    return out


def _html(title, metrics, notes, source):
    esc = html.escape
    q = metrics["quality"]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta">{esc(source)}</p>',
    ]
    for note in notes:
        out.append(f'<p class="note">{esc(note)}</p>')
    out.append(f'<p class="glance">{esc(_glance(metrics))}</p>')
    if metrics["warnings"]:
        out.append(f'<p class="warning">{len(metrics["warnings"])} warning(s) about the '
                   'latent space: see <a href="#latent">what each latent feature '
                   "means</a>.</p>")

    out += ['<h2 id="predicted">What was predicted</h2>']
    out += _html_table(None, metrics["_prediction_rows"], cls="facts", numeric_from=9)

    out += ['<h2 id="quality">How good it is</h2>']
    out += _html_table(["metric", MODEL_NAME, f"baseline: {BASELINE_NAME}"],
                       _quality_rows(q), cls="quality")
    if q["baseline"].get("how"):
        out.append(f'<p class="defs"><b>Baseline.</b> {esc(q["baseline"]["how"])}</p>')
    for note in q["baseline"].get("notes", []):
        out.append(f'<p class="defs">{esc(note)}</p>')
    verdict = _verdict(q)
    if verdict:
        out.append(f"<p>{esc(verdict)}</p>")
    out += _html_figures([f for f in ("roc_curve.png", "confusion_matrix.png")
                          if f in metrics["files"]])

    out += ['<h2 id="latent">What each latent feature means</h2>']
    for w in metrics["warnings"]:
        out.append(f'<p class="warning"><b>Warning.</b> {esc(w)}</p>')
    out.append('<ul class="readings">')
    out += [f"<li>{esc(r['reading'])}</li>" for r in metrics["latent_features"]]
    out.append("</ul>")
    header, body = _latent_table(metrics["latent_features"],
                                 metrics["prediction"]["output_pixel_um"])
    out.append(
        '<p class="defs">Each latent feature is traversed from the median evaluated cell '
        "over the 5th to 95th percentile of the evaluated cells (the other features held "
        "fixed), the decoded nuclei are measured (pixels above 0.1), and each entry gives "
        "the change of the measurement over the traversal (least-squares line) and its rank "
        "correlation \u03c1 with the latent value. Fate separation: Cohen's d of the "
        "evaluated cells along the feature (positive fate minus the other).</p>")
    out += _html_table(header, body, cls="trends")
    out += _html_figures(["latent_space.png", "traversal_grid.png"])

    out += ['<h2 id="training">Training and latent diagnostics</h2>']
    out += _html_table(["metric", "value"], _training_rows(metrics))
    out += _html_figures(["training_curves.png"])
    out += [
        f'<p class="defs">{esc(_definitions(q))}</p>',
        "<h2>Files</h2>",
        "<ul>",
        '<li><a href="metrics.json">metrics.json</a>: every metric and the training set-up</li>',
        '<li><a href="summary.md">summary.md</a>: this page in Markdown</li>',
        '<li><a href="predictions.csv">predictions.csv</a>: one row per cell-frame</li>',
        '<li><a href="latent_features.csv">latent_features.csv</a>: the latent-feature '
        "table</li>",
        "</ul>",
        f"<footer>Written by ai4cellfate {esc(__version__)}.</footer>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(out)


def _save_figure(fig, path, dpi=110):
    import matplotlib.pyplot as plt

    try:
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)


def _latent_1d_figure(Z, y):
    """Histogram of a one-dimensional latent space, per fate."""
    import matplotlib.pyplot as plt

    from .plotting import FATE_COLORS, fate_label

    fig, ax = plt.subplots(figsize=(5.4, 4.0), layout="constrained")
    bins = np.histogram_bin_edges(Z[:, 0], bins=30)
    for c in np.unique(y).tolist():
        ax.hist(Z[y == c, 0], bins=bins, alpha=0.6, label=fate_label(c),
                color=FATE_COLORS.get(c))
    ax.set_xlabel("latent feature z0 (prior s.d.)")
    ax.set_ylabel("cell-frames")
    ax.set_title("Latent space")
    ax.legend(fontsize="small")
    return fig


def _no_roc_figure(reason):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 4.2), layout="constrained")
    ax.text(0.5, 0.5, f"no ROC curve:\n{reason}", ha="center", va="center",
            transform=ax.transAxes, color="0.4")
    ax.set_axis_off()
    return fig


def _write_report_files(model, X, y, folder, *, table=None, title=None, notes=(),
                        source=None, groups=None, meta=None, pixel_size=None,
                        frame_interval=None, split=None, train=None,
                        n_bootstrap=N_BOOTSTRAP, random_state=0):
    """Write every report file into ``folder`` (which must exist)."""
    from . import metrics as m
    from . import plotting
    from ._diagnostics import latent_warnings

    folder = Path(folder)
    notes = [str(n) for n in notes]
    X = np.asarray(X)
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (len(X),):
            raise ValueError(f"groups must have one entry per image ({len(X)}); got shape "
                             f"{groups.shape}.")
    train = _as_training_data(train)
    log.info("report: encoding %d cell-frames", len(X))
    pred = prediction_table(model, X, table=table, y=y)
    zcols = [c for c in pred.columns if c.startswith("z") and c[1:].isdigit()]
    Z = pred[zcols].to_numpy()
    y = np.asarray(pred["true_fate"])
    y_pred = np.asarray(pred["predicted_fate"])
    model_classes = np.asarray(model.classes_)
    labels = np.unique(np.concatenate([model_classes, y]))
    pos_label = _positive_label(model_classes)
    score_col = f"p_{_class_name(pos_label)}"
    score = pred[score_col].to_numpy() if score_col in pred.columns else None
    extra = sorted(set(np.unique(y).tolist()) - set(model_classes.tolist()))
    if extra:
        notes.append(
            f"The data hold fates the model was not trained on ({extra}); those cells "
            "are always misclassified."
        )
    image_shape = getattr(model, "image_shape_", None) or X.shape[1:]
    facts, fact_rows = _prediction_facts(
        y=y, groups=groups, table=table, meta=meta, pixel_size=pixel_size,
        frame_interval=frame_interval, image_shape=image_shape, split=split)

    log.info("report: fitting the region-feature baseline")
    baseline = _baseline(X, y, groups, train, pos_label, random_state)
    log.info("report: bootstrap intervals (%d resamples)", n_bootstrap)
    quality = _quality(y, y_pred, score, labels, groups, baseline, pos_label, n_bootstrap,
                       random_state)
    latent = m.latent_diagnostics(Z, y) if len(np.unique(y)) > 1 else m.latent_diagnostics(Z)
    warn = latent_warnings(Z, getattr(model, "max_kl", None)) if len(Z) >= 2 else []
    log.info("report: latent traversals")
    features = _latent_features(model, X, Z, y, pos_label, facts["output_pixel_um"])

    files = list(REPORT_FILES)
    metrics = {
        "ai4cellfate_version": __version__,
        "source": source,
        "notes": notes,
        "data": {"n_samples": int(len(y)), "class_counts": facts["class_counts"]},
        "prediction": facts,
        "classification": quality["model"]["classification"],
        "quality": quality,
        "latent": latent.to_dict(),
        "latent_features": features,
        "warnings": warn,
        "training": _model_facts(model),
        "files": files,
    }
    metrics = _jsonable(metrics)
    title = title or "AI4CellFate report"
    source = source or f"{len(y)} cell-frames evaluated"
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    metrics["_prediction_rows"] = fact_rows
    (folder / "summary.md").write_text(_markdown(title, metrics, notes, source))
    pred.to_csv(folder / "predictions.csv", index=False)
    pd.DataFrame(features).to_csv(folder / "latent_features.csv", index=False)

    log.info("report: figures")
    if Z.shape[1] >= 2:
        fig = plotting.plot_latent_space(model, Z=Z, y=y)
        _save_figure(fig, folder / "latent_space.png")
        fig = plotting.plot_traversal_grid(model, X=X)
    else:
        _save_figure(_latent_1d_figure(Z, y), folder / "latent_space.png")
        fig = plotting.plot_latent_traversal(model, X=X)
    _save_figure(fig, folder / "traversal_grid.png")
    _save_figure(plotting.plot_training_curves(model), folder / "training_curves.png")
    _save_figure(plotting.plot_confusion_matrix(y, y_pred, labels=labels),
                 folder / "confusion_matrix.png")
    scores = {}
    if score is not None:
        scores[MODEL_NAME] = score
    if "score" in baseline:
        scores["baseline (region features)"] = baseline["score"]
    positive = y == pos_label
    if scores and positive.any() and not positive.all():
        fig = plotting.plot_roc_curve(y, scores, pos_label=pos_label)
    else:
        fig = _no_roc_figure("the evaluated cells hold a single fate")
    _save_figure(fig, folder / "roc_curve.png")
    (folder / "index.html").write_text(_html(title, metrics, notes, source),
                                       encoding="utf-8")
    del metrics["_prediction_rows"]
    return metrics


def write_report(model, X, y, out_dir, *, groups=None, table=None, meta=None,
                 pixel_size=None, frame_interval=None, split=None, train=None,
                 overwrite=False, title=None, notes=(), source=None,
                 n_bootstrap=N_BOOTSTRAP, random_state=0):
    """Evaluate a fitted model and write a readable report into a folder.

    The page answers three questions: what was predicted (fate definition,
    horizon in frames and hours, crop size in px and um, the numbers of
    cell-frames, cells, lineages and frames, and which cells are evaluated);
    how good the prediction is (balanced accuracy with a bootstrap interval,
    precision, recall, ROC AUC, and a hand-picked-feature baseline scored on
    the same cells); and what each latent feature means (its measured effect
    on the decoded nucleus and one sentence per feature), with warnings when
    the latent features are correlated or far from the prior.

    Parameters
    ----------
    model : fitted CellFateAAE
        The model to evaluate (its ``history_`` gives the training curves).
    X : array-like of shape (n_samples, height, width[, channels])
        Crops to evaluate on, shaped like the training images. Use cells the
        model was not trained on, or the metrics are optimistic.
    y : array-like of shape (n_samples,)
        Their true fates.
    out_dir : str or path-like
        Folder to write into; created (with its parents) if missing. Files
        in it other than the report's are left alone.
    groups : array-like of shape (n_samples,), optional
        Lineage ids (``FateDataset.groups``): counted on the page, and the
        bootstrap resamples whole lineages. Every sample is its own group
        when None.
    table : pandas.DataFrame, optional
        Per-sample table of the dataset (``FateDataset.table``); its track
        and frame columns are copied into ``predictions.csv`` and counted.
    meta : dict, optional
        ``FateDataset.meta`` of the data: the fate definition (``horizon``,
        ``unknown``, ``frames``) and crop geometry (``crop_size_px``,
        ``output_size_px``, ``pixel_size``).
    pixel_size : float, optional
        Micrometres per movie pixel; default ``meta["pixel_size"]``.
    frame_interval : float, optional
        Seconds between frames; default ``meta["frame_interval"]``.
    split : str, optional
        One sentence saying which cells these are (e.g. held out from
        training by lineage), shown on the page.
    train : (X, y), (X, y, groups) or FateDataset, optional
        The model's training data. The baseline is then fitted on it; without
        it the baseline is cross-validated on the evaluated cells (by
        lineage when ``groups`` are given). Either way it is scored on
        exactly the evaluated cells.
    overwrite : bool, default=False
        Replace report files already in ``out_dir``. Otherwise any of them
        existing raises :class:`FileExistsError` before anything is written.
    title : str, optional
        Page title; ``"AI4CellFate report"`` by default.
    notes : sequence of str, default=()
        Sentences shown highlighted at the top of the summary and the page
        (for example, which cells were evaluated).
    source : str, optional
        One line saying what was evaluated, shown under the title.
    n_bootstrap : int, default=1000
        Bootstrap resamples of the confidence intervals.
    random_state : int, default=0
        Seed of the bootstrap and the baseline.

    Returns
    -------
    paths : dict of str to pathlib.Path
        The path of every file written, keyed by file name (the names in
        :data:`REPORT_FILES`).

    Raises
    ------
    FileExistsError
        A report file exists in ``out_dir`` and ``overwrite`` is false, or
        ``out_dir`` is a file.
    sklearn.exceptions.NotFittedError
        ``model`` is not fitted.

    Notes
    -----
    The files are written into a temporary folder beside ``out_dir`` and
    moved into place only when all of them are complete, so a failure
    leaves no half-written report. Progress goes to the ``"ai4cellfate"``
    logger (INFO).

    Examples
    --------
    >>> import tempfile
    >>> from ai4cellfate import CellFateAAE
    >>> from ai4cellfate.datasets import make_nuclei
    >>> from ai4cellfate.report import write_report
    >>> X, y = make_nuclei(160, random_state=0)
    >>> model = CellFateAAE(stage1_epochs=1, min_epochs=1, max_epochs=1,
    ...                     random_state=0).fit(X[:120], y[:120])
    >>> paths = write_report(model, X[120:], y[120:], tempfile.mkdtemp() + "/report",
    ...                      train=(X[:120], y[:120]))
    >>> sorted(paths)[:3]
    ['confusion_matrix.png', 'index.html', 'latent_features.csv']
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model, "model_")
    y = _check_labels(y, len(np.asarray(X)) if not hasattr(X, "shape") else X.shape[0])
    out_dir = Path(out_dir)
    with _staged_output(out_dir, REPORT_FILES, overwrite=overwrite) as tmp:
        _write_report_files(model, X, y, tmp, table=table, title=title, notes=notes,
                            source=source, groups=groups, meta=meta, pixel_size=pixel_size,
                            frame_interval=frame_interval, split=split, train=train,
                            n_bootstrap=n_bootstrap, random_state=random_state)
    return {name: out_dir / name for name in REPORT_FILES}
