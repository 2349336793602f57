"""Figures of the preprint studies (:mod:`ai4cellfate.studies`).

One figure per study, drawn from the tidy table the study returns: every
fold and seed as a dot, the mean over them with an error bar of one
standard deviation (or a line with a band for numeric settings).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._latent import _LINESTYLES, _SERIES_COLORS, _new_axes

__all__ = [
    "plot_model_comparison",
    "plot_ablation",
    "plot_latent_dim_study",
    "plot_label_budget",
    "plot_time_points",
]

_METRIC_LABELS = {
    "balanced_accuracy": "balanced accuracy",
    "precision": "precision",
    "max_abs_correlation": "max |correlation| between latent features",
    "mean_abs_correlation": "mean |correlation| between latent features",
    "centroid_distance": "distance between fate centroids",
}
_MODEL_ORDER = (
    "CellFateAAE",
    "CellFateAAE (no engineering)",
    "OptimisedMLP",
    "LogisticRegression",
    "SimpleClassifier (best pair)",
    "SimpleClassifier (pair)",
    "OptimisedMLP (best pair)",
    "OptimisedMLP (pair)",
)


def _check_results(results, required, metrics):
    if not isinstance(results, pd.DataFrame):
        raise TypeError(
            f"results must be the DataFrame a study returns, got {type(results).__name__}."
        )
    missing = [c for c in required if c not in results.columns]
    if missing:
        raise ValueError(f"results lacks the column(s) {missing} of this study.")
    if len(results) == 0:
        raise ValueError("results is empty.")
    if isinstance(metrics, str):
        metrics = [metrics]
    metrics = list(metrics)
    bad = [m for m in metrics if m not in results.columns]
    if bad or not metrics:
        numeric = [c for c in _METRIC_LABELS if c in results.columns]
        raise ValueError(f"metric(s) {bad or metrics} not in results; choose from {numeric}.")
    return metrics


def _label(metric):
    return _METRIC_LABELS.get(metric, metric.replace("_", " "))


def _categories(ax, labels, values, metric, chance, reference=None):
    """Horizontal dot-and-error-bar plot: one row per label, top to bottom."""
    rng = np.random.default_rng(0)
    ys = np.arange(len(labels))[::-1]
    for y, v in zip(ys, values):
        v = np.asarray(v, dtype=float)
        v = v[np.isfinite(v)]
        if v.size == 0:
            continue
        jitter = rng.uniform(-0.15, 0.15, size=v.size) if v.size > 1 else np.zeros(1)
        ax.scatter(v, y + jitter, s=14, color=_SERIES_COLORS[2], alpha=0.7, zorder=2,
                   linewidths=0)
        std = float(v.std(ddof=1)) if v.size > 1 else 0.0
        ax.errorbar(float(v.mean()), y, xerr=std, fmt="D", color=_SERIES_COLORS[0],
                    capsize=4, markersize=6, zorder=3)
        ax.annotate(f"{v.mean():.3f}", (float(v.mean()), y), xytext=(0, 7),
                    textcoords="offset points", ha="center", fontsize="small")
    ax.set_yticks(ys, labels)
    ax.set_ylim(-0.7, len(labels) - 0.3)
    if chance and metric == "balanced_accuracy":
        ax.axvline(0.5, color="0.5", linestyle=":", linewidth=1, label="chance")
    if reference is not None:
        ax.axvline(reference[1], color=_SERIES_COLORS[1], linestyle="--", linewidth=1,
                   label=reference[0])
    ax.set_xlabel(f"{_label(metric)} (test folds)")
    ax.grid(axis="x", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", loc="lower right")


def plot_model_comparison(results, *, metric="balanced_accuracy", chance=True, ax=None):
    """Figure of :func:`~ai4cellfate.studies.compare_models`.

    One row per model: each fold and seed as a dot, the mean (diamond,
    annotated) with one standard deviation. For the ``"... (pair)"`` models
    each dot is one feature pair (its mean over folds and seeds), so the row
    shows the spread of all hand-picked pairs.

    Parameters
    ----------
    results : pandas.DataFrame
        What :func:`~ai4cellfate.studies.compare_models` returned.
    metric : str, default="balanced_accuracy"
        Column to plot (e.g. ``"precision"``).
    chance : bool, default=True
        Mark chance level (0.5) for balanced accuracy.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> res = pd.DataFrame({"model": ["CellFateAAE", "LogisticRegression"] * 2,
    ...                     "features": ["image", "region features"] * 2,
    ...                     "fold": [0, 0, 1, 1], "seed": 42,
    ...                     "balanced_accuracy": [0.8, 0.7, 0.75, 0.72],
    ...                     "precision": [0.6, 0.5, 0.55, 0.5]})
    >>> fig = plot_model_comparison(res)
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
    ['CellFateAAE', 'LogisticRegression']
    """
    (metric,) = _check_results(results, ["model"], [metric])
    present = list(dict.fromkeys(results["model"]))
    models = [m for m in _MODEL_ORDER if m in present] + [
        m for m in present if m not in _MODEL_ORDER
    ]
    labels, values = [], []
    for m in models:
        rows = results[results["model"] == m]
        if m.endswith(" (pair)") and "features" in rows.columns:
            per_pair = rows.groupby("features", sort=False)[metric].mean()
            labels.append(f"{m}\n(each of {len(per_pair)} pairs)")
            values.append(per_pair.to_numpy())
        else:
            label = m
            if m.endswith(" (best pair)") and "features" in rows.columns:
                counts = rows["features"].value_counts(sort=True)
                if len(counts) == 1:
                    label = f"{m}\n({counts.index[0]})"
                elif len(counts):
                    label = (f"{m}\n(most often {counts.index[0]}: "
                             f"{counts.iloc[0]} of {len(rows)})")
            labels.append(label)
            values.append(rows[metric].to_numpy())
    fig, (ax,) = _new_axes(ax, panel_size=(6.4, 0.75 * len(labels) + 1.4))
    _categories(ax, labels, values, metric, chance)
    ax.set_title("CellFateAAE against hand-picked features")
    return fig


def plot_ablation(results, *, metric="balanced_accuracy", chance=True, ax=None):
    """Figure of :func:`~ai4cellfate.studies.ablation`.

    One row per setting (dots: folds and seeds; diamond: mean with one
    standard deviation); a dashed line marks the full model's mean.

    Parameters
    ----------
    results : pandas.DataFrame
        What :func:`~ai4cellfate.studies.ablation` returned.
    metric : str, default="balanced_accuracy"
        Column to plot.
    chance : bool, default=True
        Mark chance level (0.5) for balanced accuracy.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> res = pd.DataFrame({"model": "CellFateAAE", "setting": ["full", "no contrastive"],
    ...                     "fold": 0, "seed": 42, "balanced_accuracy": [0.72, 0.56],
    ...                     "precision": [0.5, 0.3]})
    >>> fig = plot_ablation(res)
    """
    (metric,) = _check_results(results, ["setting"], [metric])
    settings = list(dict.fromkeys(results["setting"]))
    values = [results.loc[results["setting"] == s, metric].to_numpy() for s in settings]
    reference = None
    if "full" in settings:
        reference = ("full model (mean)", float(np.nanmean(values[settings.index("full")])))
    fig, (ax,) = _new_axes(ax, panel_size=(6.0, 0.55 * len(settings) + 1.4))
    _categories(ax, settings, values, metric, chance, reference)
    ax.set_title("Ablation: one loss switched off at a time")
    return fig


def _lines(ax, results, x, metrics, *, x_values=None):
    """Mean +- s.d. lines against a numeric setting: colour per model,
    line style per metric."""
    models = list(dict.fromkeys(results["model"]))
    for i, model in enumerate(models):
        rows = results[results["model"] == model]
        for j, metric in enumerate(metrics):
            stats = rows.groupby(x, sort=True)[metric].agg(["mean", "std"])
            if x_values is not None:
                xs = rows.groupby(x, sort=True)[x_values].mean().to_numpy(dtype=float)
            else:
                xs = stats.index.to_numpy(dtype=float)
            mean = stats["mean"].to_numpy(dtype=float)
            std = stats["std"].fillna(0.0).to_numpy(dtype=float)
            k = j if len(models) == 1 else i  # colour per metric for one model
            color = _SERIES_COLORS[k % len(_SERIES_COLORS)]
            label = _label(metric) if len(models) == 1 else f"{model}, {_label(metric)}"
            ax.plot(xs, mean, marker="o", color=color,
                    linestyle=_LINESTYLES[j % len(_LINESTYLES)], label=label)
            ax.fill_between(xs, mean - std, mean + std, color=color, alpha=0.15,
                            linewidth=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")


def plot_latent_dim_study(
    results,
    *,
    metrics=("balanced_accuracy", "precision", "max_abs_correlation"),
    ax=None,
):
    """Figure of :func:`~ai4cellfate.studies.latent_dim_study`.

    Mean (line) and one standard deviation (band) over folds and seeds of
    each metric against the latent dimension.

    Parameters
    ----------
    results : pandas.DataFrame
        What :func:`~ai4cellfate.studies.latent_dim_study` returned.
    metrics : sequence of str, default=("balanced_accuracy", "precision", "max_abs_correlation")
        Columns to plot, one line style each.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> res = pd.DataFrame({"model": "CellFateAAE", "latent_dim": [2, 2, 5, 5],
    ...                     "fold": [0, 1, 0, 1], "seed": 42,
    ...                     "balanced_accuracy": [0.7, 0.72, 0.66, 0.7],
    ...                     "precision": [0.5, 0.5, 0.4, 0.45],
    ...                     "max_abs_correlation": [0.06, 0.1, 0.3, 0.35]})
    >>> fig = plot_latent_dim_study(res)
    """
    metrics = _check_results(results, ["model", "latent_dim"], metrics)
    fig, (ax,) = _new_axes(ax, panel_size=(5.4, 3.8))
    _lines(ax, results, "latent_dim", metrics)
    dims = np.unique(results["latent_dim"].to_numpy(dtype=float))
    ax.set_xticks(dims, [f"{d:g}" for d in dims])
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("score (test folds)")
    ax.set_title("Size of the latent space")
    return fig


def plot_label_budget(results, *, metrics=("balanced_accuracy",), xscale="log", ax=None):
    """Figure of :func:`~ai4cellfate.studies.label_budget_study`.

    Each metric against the number of labelled training cells actually used
    (mean over folds of ``n_labelled``), one colour per model, mean and one
    standard deviation over folds and seeds.

    Parameters
    ----------
    results : pandas.DataFrame
        What :func:`~ai4cellfate.studies.label_budget_study` returned.
    metrics : sequence of str, default=("balanced_accuracy",)
        Columns to plot, one line style each.
    xscale : {"log", "linear"}, default="log"
        Scale of the budget axis.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> res = pd.DataFrame({"model": "LogisticRegression", "budget": [50, 500],
    ...                     "n_labelled": [50, 500], "fold": 0, "seed": 42,
    ...                     "balanced_accuracy": [0.6, 0.7], "precision": [0.4, 0.5]})
    >>> fig = plot_label_budget(res)
    """
    metrics = _check_results(results, ["model", "budget", "n_labelled"], metrics)
    if xscale not in ("log", "linear"):
        raise ValueError(f"xscale must be 'log' or 'linear', got {xscale!r}.")
    data = results.assign(
        _budget=results["budget"].astype("Float64").fillna(np.inf).astype(float)
    )
    fig, (ax,) = _new_axes(ax, panel_size=(5.4, 3.8))
    _lines(ax, data, "_budget", metrics, x_values="n_labelled")
    ax.set_xscale(xscale)
    ticks = np.unique(np.round(data.groupby("_budget")["n_labelled"].mean().to_numpy()))
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("labelled training cells")
    ax.set_ylabel("score (test folds)")
    ax.set_title("Label budget")
    return fig


def plot_time_points(results, *, metrics=("balanced_accuracy", "precision"), ax=None):
    """Figure of :func:`~ai4cellfate.studies.time_point_study`.

    Each metric against the relative time point of the frame the models were
    trained and tested on, one colour per model (mean and one standard
    deviation over folds and seeds).

    Parameters
    ----------
    results : pandas.DataFrame
        What :func:`~ai4cellfate.studies.time_point_study` returned. Time
        points in [0, 1] that are not all whole numbers (relative times)
        are labelled as percentages of the lifetime.
    metrics : sequence of str, default=("balanced_accuracy", "precision")
        Columns to plot, one line style each.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> res = pd.DataFrame({"model": "CellFateAAE", "time_point": [0, 5, 10],
    ...                     "fold": 0, "seed": 42,
    ...                     "balanced_accuracy": [0.7, 0.75, 0.9],
    ...                     "precision": [0.5, 0.55, 0.8]})
    >>> fig = plot_time_points(res)
    """
    metrics = _check_results(results, ["model", "time_point"], metrics)
    fig, (ax,) = _new_axes(ax, panel_size=(5.4, 3.8))
    _lines(ax, results, "time_point", metrics)
    tps = np.unique(results["time_point"].to_numpy(dtype=float))
    if tps.min() >= 0 and tps.max() <= 1 and np.any(tps != np.round(tps)):
        # relative times (FateDataset's rel_time): fractions of the lifetime
        ax.set_xticks(tps, [f"{100 * t:.0f}%" for t in tps])
        ax.set_xlabel("relative time in the cell's lifetime")
    else:
        ax.set_xticks(tps, [f"{t:g}" for t in tps])
        ax.set_xlabel("time point")
    ax.set_ylabel("score (test folds)")
    ax.set_title("Prediction from one frame along the lifetime")
    return fig
