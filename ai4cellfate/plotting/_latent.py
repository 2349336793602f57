"""Figures of the latent space, traversals, training and metrics.

Shared conventions: one colour per fate in every figure (Okabe-Ito palette,
safe for colour-blind readers; :data:`FATE_COLORS`, :func:`fate_legend_handles`),
latent axes in units of the N(0, 1) prior's standard deviation, images on a
fixed 0-1 intensity scale.
"""

from __future__ import annotations

import numbers

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from .. import metrics as _metrics
from ..interpret import (
    MEASUREMENT_UNITS,
    MEASUREMENTS,
    _decode,
    _dimension_key,
    _traversal_plan,
    traversal_effects,
    traversal_trends,
)

__all__ = [
    "FATE_COLORS",
    "fate_label",
    "fate_legend_handles",
    "plot_latent_space",
    "plot_latent_traversal",
    "plot_traversal_grid",
    "plot_traversal_measurements",
    "plot_losses",
    "plot_stopping_criteria",
    "plot_training_curves",
    "plot_confusion_matrix",
    "plot_roc_curve",
]

# Okabe & Ito (2008), "Color Universal Design".
_OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
}

#: Colour of each fate in every figure: fate 0 (no division) blue, fate 1
#: (division) vermillion; further classes take the rest of the Okabe-Ito palette.
FATE_COLORS = {0: _OKABE_ITO["blue"], 1: _OKABE_ITO["vermillion"]}
_EXTRA_CLASS_COLORS = [
    _OKABE_ITO[k] for k in ("orange", "green", "purple", "sky_blue", "black")
]
_SERIES_COLORS = [
    _OKABE_ITO[k]
    for k in ("black", "orange", "sky_blue", "green", "purple", "blue", "vermillion")
]
_LINESTYLES = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1))]
_FATE_NAMES = {0: "no division", 1: "division"}
_LATENT_UNIT = "prior s.d."
_THRESHOLD_NAMES = ("min_centroid_distance", "max_kl", "min_accuracy", "min_precision")


# --------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------


def _is_int_label(c):
    if isinstance(c, (bool, np.bool_, numbers.Integral)):
        return True
    return isinstance(c, numbers.Real) and float(c).is_integer()


def _class_colors(classes):
    colors, extra = [], 0
    for c in classes:
        if _is_int_label(c) and int(c) in FATE_COLORS:
            colors.append(FATE_COLORS[int(c)])
        else:
            colors.append(_EXTRA_CLASS_COLORS[extra % len(_EXTRA_CLASS_COLORS)])
            extra += 1
    return colors


def fate_label(c, class_names=None):
    """Legend text of a fate.

    Parameters
    ----------
    c : label
        A class label.
    class_names : dict, default=None
        Overrides, label -> text.

    Returns
    -------
    text : str
        ``"fate 0: no division"``, ``"fate 1: division"``, ``"fate 2"`` for
        other integers, or the label itself.

    Examples
    --------
    >>> fate_label(1)
    'fate 1: division'
    >>> fate_label("A", {"A": "arrested"})
    'arrested'
    """
    if class_names is not None:
        if not isinstance(class_names, dict):
            raise TypeError(
                f"class_names must be a dict label -> name, got "
                f"{type(class_names).__name__}."
            )
        if c in class_names:
            return str(class_names[c])
    if _is_int_label(c):
        c = int(c)
        return f"fate {c}: {_FATE_NAMES[c]}" if c in _FATE_NAMES else f"fate {c}"
    return str(c)


def fate_legend_handles(classes=(0, 1), class_names=None):
    """Legend handles for the fates, the same in every figure.

    Parameters
    ----------
    classes : sequence, default=(0, 1)
        Class labels.
    class_names : dict, default=None
        Overrides of the legend text, label -> text.

    Returns
    -------
    handles : list of matplotlib.lines.Line2D
        Pass to ``ax.legend(handles=...)``.

    Examples
    --------
    >>> [h.get_label() for h in fate_legend_handles()]
    ['fate 0: no division', 'fate 1: division']
    """
    classes = list(classes)
    return [
        Line2D(
            [], [], linestyle="none", marker="o", markersize=7,
            markerfacecolor=color, markeredgecolor="white",
            label=fate_label(c, class_names),
        )
        for c, color in zip(classes, _class_colors(classes))
    ]


def _new_axes(ax, n=1, *, ncols=None, panel_size=(4.2, 3.4), name="ax"):
    """Return (figure, list of n axes), creating them when ax is None."""
    if ax is None:
        ncols = ncols or n
        nrows = int(np.ceil(n / ncols))
        fig, axes = plt.subplots(
            nrows, ncols,
            figsize=(panel_size[0] * ncols, panel_size[1] * nrows),
            squeeze=False, layout="constrained",
        )
        axes = list(axes.ravel())
        for extra in axes[n:]:
            extra.set_visible(False)
        return fig, axes[:n]
    axes = list(np.ravel(np.asarray(ax, dtype=object)))
    for a in axes:
        if not hasattr(a, "plot") or not hasattr(a, "figure"):
            raise TypeError(
                f"{name} must be a matplotlib Axes (or a sequence of {n}), got "
                f"{type(a).__name__}."
            )
    if len(axes) != n:
        raise ValueError(
            f"{name} must hold {n} Axes for this figure, got {len(axes)}."
        )
    return axes[0].figure, axes


def _latent_label(d):
    return f"latent feature z{d} ({_LATENT_UNIT})"


def _montage(tiles, pad_frac=0.1, text_rows=0.0):
    """Tile (rows, cols, H, W) images into one array with NaN gaps."""
    rows, cols, h, w = tiles.shape
    pad = max(1, int(round(pad_frac * max(h, w))))
    extra = int(round(text_rows * h))
    out = np.full((rows * (h + pad + extra) + pad, cols * (w + pad) + pad), np.nan)
    centres_x = pad + np.arange(cols) * (w + pad) + (w - 1) / 2
    centres_y = pad + np.arange(rows) * (h + pad + extra) + (h - 1) / 2
    for i in range(rows):
        for j in range(cols):
            y0 = pad + i * (h + pad + extra)
            x0 = pad + j * (w + pad)
            out[y0 : y0 + h, x0 : x0 + w] = tiles[i, j]
    return out, centres_x, centres_y, (h, w, pad, extra)


def _show_montage(ax, fig, mosaic, cmap, colorbar):
    cm = plt.get_cmap(cmap).with_extremes(bad="white")
    finite = mosaic[np.isfinite(mosaic)]
    lo, hi = float(finite.min()), float(finite.max())
    vmin = min(0.0, lo)
    vmax = 1.0 if hi <= 1.0 else hi
    im = ax.imshow(mosaic, cmap=cm, vmin=vmin, vmax=vmax, interpolation="nearest")
    for side in ax.spines.values():
        side.set_visible(False)
    if colorbar:
        cb = fig.colorbar(im, ax=ax, shrink=0.8, pad=0.02)
        cb.set_label("intensity (a.u., 0-1)")
    return im


def _format_change(v):
    return "n/a" if not np.isfinite(v) else f"{100 * v:+.0f} %"


def _format_value(v):
    return f"{v:.2f}".rstrip("0").rstrip(".") if abs(v) < 100 else f"{v:.3g}"


# --------------------------------------------------------------------------
# Latent space
# --------------------------------------------------------------------------


def _latent_proba_function(model, boundary):
    """The function Z -> class probabilities used for the decision boundary."""
    if callable(boundary) and not isinstance(boundary, (bool, np.bool_)):
        return boundary
    if not isinstance(boundary, (bool, np.bool_)):
        raise TypeError(
            f"boundary must be True, False or a function Z -> probabilities, "
            f"got {boundary!r}."
        )
    if not boundary or model is None:
        return None
    fn = getattr(model, "predict_latent_proba", None)
    if callable(fn):
        return fn
    clf = getattr(model, "classifier_", None)
    if clf is None:
        return None
    if callable(getattr(clf, "predict_proba", None)):
        return clf.predict_proba
    if callable(getattr(clf, "predict", None)):  # a Keras model
        return lambda Z: clf.predict(Z, verbose=0)
    return None


def plot_latent_space(
    model=None,
    X=None,
    y=None,
    *,
    Z=None,
    dims=(0, 1),
    centroids=True,
    boundary=True,
    class_names=None,
    grid_resolution=200,
    ax=None,
):
    """Scatter of the latent space coloured by fate.

    Parameters
    ----------
    model : fitted CellFateAAE or similar, default=None
        Encodes ``X`` (``transform``) and, for the decision boundary, gives
        ``predict_latent_proba`` and ``classes_``.
    X : array-like of images, default=None
        Cells to encode; or pass their latent vectors as ``Z``.
    y : array-like of shape (n_samples,), default=None
        Fates; without them all points are grey and no centroids are drawn.
    Z : array-like of shape (n_samples, latent_dim), default=None
        Latent vectors (instead of ``model`` and ``X``).
    dims : (int, int), default=(0, 1)
        The two latent dimensions on the x and y axes.
    centroids : bool, default=True
        Mark the class centroids and give their distance in the title.
    boundary : bool or callable, default=True
        Draw the latent classifier's decision boundary and shade the region
        of each predicted fate (other latent dimensions held at the median of
        ``Z``). The class probabilities of latent vectors come from, in this
        order: a callable given here (``Z -> (n, n_classes)`` probabilities);
        ``model.predict_latent_proba(Z)``; ``model.classifier_`` (a
        scikit-learn classifier with ``predict_proba`` or a Keras model).
        With ``boundary=True`` and none of them, no boundary is drawn.
    class_names : dict, default=None
        Legend text per label (see :func:`fate_label`).
    grid_resolution : int, default=200
        Points per axis of the grid on which the boundary is evaluated.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 50)
    >>> Z = rng.normal(size=(100, 2)) + np.c_[y, y]
    >>> fig = plot_latent_space(Z=Z, y=y)
    >>> fig.axes[0].get_xlabel()
    'latent feature z0 (prior s.d.)'
    """
    if Z is None:
        if model is None or X is None:
            raise ValueError("Give the latent vectors Z, or a model and images X.")
        if not callable(getattr(model, "transform", None)):
            raise TypeError("model must have a transform(X) method.")
        Z = model.transform(X)
    Z = _metrics._as_latent(Z)
    if Z.shape[1] < 2:
        raise ValueError(f"Z must have at least two dimensions, got {Z.shape[1]}.")
    try:
        a, b = (int(d) for d in dims)
    except (TypeError, ValueError):
        raise TypeError(f"dims must be a pair of integers, got {dims!r}.") from None
    if a == b or not (0 <= a < Z.shape[1] and 0 <= b < Z.shape[1]):
        raise ValueError(
            f"dims must be two different dimensions in [0, {Z.shape[1]}), got {dims!r}."
        )
    if y is not None:
        y = _metrics._as_labels(y, "y")
        if len(y) != len(Z):
            raise ValueError(
                f"y must have one label per latent vector, got {len(y)} for {len(Z)}."
            )
    if (
        isinstance(grid_resolution, (bool, np.bool_))
        or not isinstance(grid_resolution, numbers.Integral)
        or grid_resolution < 2
    ):
        raise ValueError(
            f"grid_resolution must be an integer >= 2, got {grid_resolution!r}."
        )
    latent_proba = _latent_proba_function(model, boundary)
    draw_boundary = latent_proba is not None
    fig, (ax,) = _new_axes(ax, panel_size=(5.4, 4.6))

    pad = 0.08 * (Z[:, [a, b]].max(axis=0) - Z[:, [a, b]].min(axis=0) + 1e-9)
    xlim = (Z[:, a].min() - pad[0], Z[:, a].max() + pad[0])
    ylim = (Z[:, b].min() - pad[1], Z[:, b].max() + pad[1])
    handles = []
    classes = None if y is None else np.unique(y)

    if draw_boundary:
        model_classes = getattr(model, "classes_", None)
        if model_classes is None:
            model_classes = classes if classes is not None else np.arange(2)
        model_classes = np.asarray(model_classes)
        gx = np.linspace(*xlim, grid_resolution)
        gy = np.linspace(*ylim, grid_resolution)
        GX, GY = np.meshgrid(gx, gy)
        G = np.tile(np.median(Z, axis=0), (GX.size, 1))
        G[:, a], G[:, b] = GX.ravel(), GY.ravel()
        proba = np.asarray(latent_proba(G.astype(np.float32)), dtype=np.float64)
        if proba.ndim != 2 or proba.shape[0] != len(G) or proba.shape[1] < 2:
            raise ValueError(
                f"The latent classifier returned probabilities of shape "
                f"{proba.shape} for {len(G)} latent vectors; expected "
                f"({len(G)}, n_classes >= 2)."
            )
        pred = proba.argmax(axis=1).reshape(GX.shape)
        if len(model_classes) != proba.shape[1]:
            model_classes = np.arange(proba.shape[1])
        colors = _class_colors(model_classes.tolist())
        ax.contourf(
            GX, GY, pred, levels=np.arange(proba.shape[1] + 1) - 0.5,
            colors=colors[: proba.shape[1]], alpha=0.12, zorder=0,
        )
        if len(np.unique(pred)) > 1:
            ax.contour(
                GX, GY, pred, levels=np.arange(proba.shape[1] - 1) + 0.5,
                colors="black", linestyles="--", linewidths=1.2, zorder=1,
            )
        handles.append(
            Line2D([], [], color="black", linestyle="--", label="decision boundary")
        )

    if y is None:
        ax.scatter(Z[:, a], Z[:, b], s=12, color="0.4", alpha=0.6, linewidths=0)
    else:
        for c, color in zip(classes.tolist(), _class_colors(classes.tolist())):
            sel = y == c
            ax.scatter(
                Z[sel, a], Z[sel, b], s=14, color=color, alpha=0.6,
                linewidths=0, zorder=2,
            )
        handles = fate_legend_handles(classes.tolist(), class_names) + handles

    title = "Latent space"
    if centroids and y is not None and len(classes) >= 2:
        for c, color in zip(classes.tolist(), _class_colors(classes.tolist())):
            m = Z[y == c][:, [a, b]].mean(axis=0)
            ax.scatter(
                *m, marker="X", s=160, color=color, edgecolors="black",
                linewidths=1.2, zorder=4,
            )
        handles.append(
            Line2D([], [], linestyle="none", marker="X", markersize=10,
                   markerfacecolor="white", markeredgecolor="black",
                   label="class centroid")
        )
        dist = _metrics.centroid_distance(Z, y)
        title += f"\ncentroid distance {dist:.2f} (all {Z.shape[1]} dims)"

    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    ax.set_xlabel(_latent_label(a))
    ax.set_ylabel(_latent_label(b))
    ax.set_title(title)
    if handles:
        ax.legend(handles=handles, loc="best", fontsize="small", framealpha=0.85)
    return fig


# --------------------------------------------------------------------------
# Traversals
# --------------------------------------------------------------------------


def plot_latent_traversal(
    model,
    *,
    dims=None,
    ranges=None,
    n_steps=5,
    fixed=None,
    X=None,
    quantiles=(0.05, 0.95),
    cmap="magma",
    colorbar=True,
    ax=None,
):
    """Traversal strips: images decoded along each latent dimension.

    One row per dimension; under each image its latent value. The arguments
    are those of :func:`ai4cellfate.interpret.latent_traversal`.

    Parameters
    ----------
    model : fitted CellFateAAE or similar
        Needs ``decode`` and ``latent_dim`` (and ``transform`` with ``X``).
    dims, ranges, n_steps, fixed, X, quantiles
        As in :func:`~ai4cellfate.interpret.latent_traversal` (the preprint's
        defaults: from the zero vector, z0 over [-2.5, 1.5], z1 over [-3, 2],
        5 values). ``n_steps`` must be one integer.
    cmap : str, default="magma"
        Colour map of the images (perceptually uniform).
    colorbar : bool, default=True
        Add an intensity colour bar.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> class Blob:
    ...     latent_dim = 2
    ...     def decode(self, Z):
    ...         yy, xx = np.mgrid[:20, :20] - 9.5
    ...         r = 4 + np.asarray(Z)[:, 1, None, None]
    ...         return 0.6 * (np.hypot(yy, xx) <= r)
    >>> fig = plot_latent_traversal(Blob())
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
    ['z0', 'z1']
    """
    if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Integral):
        raise TypeError(f"n_steps must be one integer here, got {n_steps!r}.")
    if dims is None:
        latent_dim = getattr(model, "latent_dim", None)
        if not isinstance(latent_dim, numbers.Integral):
            raise TypeError("model must have an integer latent_dim attribute.")
        dims = list(range(latent_dim))
    elif isinstance(dims, numbers.Integral):
        dims = [dims]
    dims, values, point = _traversal_plan(
        model, list(dims), ranges, n_steps, fixed, X, quantiles
    )
    Zs = []
    for d, vals in zip(dims, values):
        block = np.tile(point, (len(vals), 1))
        block[:, d] = vals
        Zs.append(block)
    images = _decode(model, np.concatenate(Zs)).astype(np.float64)
    if images.ndim == 4:
        images = images.mean(axis=-1)
    tiles = images.reshape((len(dims), n_steps) + images.shape[1:])
    mosaic, cx, cy, (h, w, pad, extra) = _montage(tiles, text_rows=0.45)

    fig, (ax,) = _new_axes(
        ax, panel_size=(1.1 * n_steps + 1.6, 1.25 * len(dims) + 1.0)
    )
    _show_montage(ax, fig, mosaic, cmap, colorbar)
    for i, vals in enumerate(values):
        for j, v in enumerate(vals):
            ax.text(
                cx[j], cy[i] + h / 2 + extra * 0.45, _format_value(v),
                ha="center", va="center", fontsize="small",
            )
    ax.set_xticks([])
    ax.set_yticks(cy, [f"z{d}" for d in dims])
    ax.tick_params(axis="y", length=0)
    fixed_txt = ", ".join(_format_value(v) for v in point)
    ax.set_xlabel(
        f"latent value ({_LATENT_UNIT}); other dimensions fixed at ({fixed_txt})"
    )
    ax.set_ylabel("traversed dimension")
    ax.set_title("Latent traversal")
    return fig


def plot_traversal_grid(
    model,
    *,
    dims=(0, 1),
    ranges=None,
    n_steps=5,
    fixed=None,
    X=None,
    quantiles=(0.05, 0.95),
    cmap="magma",
    colorbar=True,
    ax=None,
):
    """2-D traversal grid: images decoded over two latent dimensions.

    ``dims[0]`` runs along the x axis (left to right), ``dims[1]`` along the
    y axis (bottom to top), like the latent-space scatter.

    Parameters
    ----------
    model : fitted CellFateAAE or similar
        Needs ``decode`` and ``latent_dim`` (and ``transform`` with ``X``).
    dims : (int, int), default=(0, 1)
        Dimensions on the x and y axes.
    ranges, n_steps, fixed, X, quantiles
        As in :func:`~ai4cellfate.interpret.latent_grid_traversal`.
    cmap : str, default="magma"
        Colour map of the images.
    colorbar : bool, default=True
        Add an intensity colour bar.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> class Blob:
    ...     latent_dim = 2
    ...     def decode(self, Z):
    ...         yy, xx = np.mgrid[:20, :20] - 9.5
    ...         r = 4 + np.asarray(Z)[:, 1, None, None]
    ...         b = 0.6 + 0.1 * np.asarray(Z)[:, 0, None, None]
    ...         return b * (np.hypot(yy, xx) <= r)
    >>> fig = plot_traversal_grid(Blob(), n_steps=3)
    >>> fig.axes[0].get_xlabel()
    'latent feature z0 (prior s.d.)'
    """
    try:
        dims = list(dims)
    except TypeError:
        raise TypeError(f"dims must be a pair of dimensions, got {dims!r}.") from None
    if len(dims) != 2:
        raise ValueError(f"dims must name exactly two dimensions, got {dims!r}.")
    dims, (va, vb), point = _traversal_plan(
        model, dims, ranges, n_steps, fixed, X, quantiles
    )
    a, b = dims
    A, B = np.meshgrid(va, vb, indexing="ij")
    Z = np.tile(point, (A.size, 1))
    Z[:, a], Z[:, b] = A.ravel(), B.ravel()
    images = _decode(model, Z).astype(np.float64)
    if images.ndim == 4:
        images = images.mean(axis=-1)
    images = images.reshape((len(va), len(vb)) + images.shape[1:])
    # Tile rows: dims[1] from high (top) to low; columns: dims[0] low to high.
    tiles = np.transpose(images, (1, 0, 2, 3))[::-1]
    mosaic, cx, cy, _ = _montage(tiles)

    fig, (ax,) = _new_axes(
        ax, panel_size=(0.95 * len(va) + 2.2, 0.95 * len(vb) + 1.2)
    )
    _show_montage(ax, fig, mosaic, cmap, colorbar)
    ax.set_xticks(cx, [_format_value(v) for v in va])
    ax.set_yticks(cy, [_format_value(v) for v in vb[::-1]])
    ax.set_xlabel(_latent_label(a))
    ax.set_ylabel(_latent_label(b))
    others = [d for d in range(len(point)) if d not in (a, b)]
    title = "Latent traversal grid"
    if others:
        title += "\nother dimensions fixed at " + ", ".join(
            f"z{d} = {_format_value(point[d])}" for d in others
        )
    ax.set_title(title)
    return fig


def plot_traversal_measurements(traversal, *, measurements=None, ax=None):
    """Measurements of generated images against the latent value.

    One panel per measurement, one line per traversed dimension; the legend
    gives each dimension's rank correlation (:func:`traversal_trends`) and
    the change over the traversal relative to the measurement's mean
    (:func:`~ai4cellfate.interpret.traversal_effects`).

    Parameters
    ----------
    traversal : pandas.DataFrame
        A table from :func:`ai4cellfate.interpret.latent_traversal`.
    measurements : str or sequence of str, default=None
        Which measurements to plot; all by default.
    ax : matplotlib Axes or sequence of Axes, default=None
        One Axes per measurement; a new figure when None.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({
    ...     "dimension": ["z1"] * 3, "value": [-1.0, 0.0, 1.0],
    ...     "measurement": ["area"] * 3, "result": [10.0, 20.0, 35.0]})
    >>> fig = plot_traversal_measurements(table)
    >>> fig.axes[0].get_ylabel()
    'area (pixels)'
    """
    if not isinstance(traversal, pd.DataFrame):
        raise TypeError(
            f"traversal must be a DataFrame from latent_traversal, got "
            f"{type(traversal).__name__}."
        )
    missing = {"dimension", "value", "measurement", "result"} - set(traversal.columns)
    if missing:
        raise ValueError(
            f"traversal lacks the columns {sorted(missing)} (use a table from "
            "latent_traversal)."
        )
    present = list(pd.unique(traversal["measurement"]))
    if measurements is None:
        measurements = [m for m in MEASUREMENTS if m in present] + [
            m for m in present if m not in MEASUREMENTS
        ]
    elif isinstance(measurements, str):
        measurements = [measurements]
    else:
        measurements = list(measurements)
    unknown = [m for m in measurements if m not in present]
    if unknown or not measurements:
        raise ValueError(
            f"measurements must be among {present}, got {measurements!r}."
        )
    trends = traversal_trends(traversal)
    effects = traversal_effects(traversal)
    fig, axes = _new_axes(
        ax, len(measurements), ncols=min(3, len(measurements)), panel_size=(3.8, 3.0)
    )
    dimensions = sorted(pd.unique(traversal["dimension"]), key=_dimension_key)
    for m, a in zip(measurements, axes):
        for k, d in enumerate(dimensions):
            sub = traversal[(traversal["dimension"] == d) & (traversal["measurement"] == m)]
            sub = sub.sort_values("value")
            rho = trends.loc[d, m]
            rho_txt = "n/a" if not np.isfinite(rho) else f"{rho:+.2f}"
            a.plot(
                sub["value"], sub["result"], marker="o", markersize=4,
                color=_SERIES_COLORS[(k + 1) % len(_SERIES_COLORS)],
                linestyle=_LINESTYLES[k % len(_LINESTYLES)],
                label=f"{d} (\u03c1 = {rho_txt}, \u0394 = {_format_change(effects.loc[d, m])})",
            )
        unit = MEASUREMENT_UNITS.get(m)
        a.set_ylabel(f"{m.replace('_', ' ')} ({unit})" if unit else m)
        a.set_xlabel(f"latent value ({_LATENT_UNIT})")
        a.set_title(m.replace("_", " "))
        a.legend(fontsize="small", title="dimension (rank corr., change)",
                 title_fontsize="small")
    return fig


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------


def _history_and_thresholds(history, thresholds):
    model = None
    if not isinstance(history, pd.DataFrame):
        if hasattr(history, "history_"):
            model = history
            history = model.history_
        if not isinstance(history, pd.DataFrame):
            raise TypeError(
                "history must be a fitted CellFateAAE or its history_ DataFrame, "
                f"got {type(history).__name__}."
            )
    if "epoch" not in history.columns:
        raise ValueError("history lacks the column 'epoch'.")
    if thresholds is None and model is not None:
        thresholds = {
            k: getattr(model, k) for k in _THRESHOLD_NAMES if hasattr(model, k)
        }
    if thresholds is None:
        thresholds = {}
    if not isinstance(thresholds, dict):
        raise TypeError(
            f"thresholds must be a dict with keys among {_THRESHOLD_NAMES}, got "
            f"{type(thresholds).__name__}."
        )
    unknown = set(thresholds) - set(_THRESHOLD_NAMES)
    if unknown:
        raise ValueError(
            f"thresholds has unknown keys {sorted(unknown)}; expected some of "
            f"{list(_THRESHOLD_NAMES)}."
        )
    return history, thresholds


#: Title padding (points) that leaves room for the stage labels above a panel.
_STAGE_TITLE_PAD = 16


def _mark_stages(ax, history):
    """Mark the stage 1 / stage 2 boundary; returns whether it was drawn.

    The line runs through the panel; its labels sit just above the panel's
    top edge, outside the data area, where no curve can cover them (callers
    pad the title by ``_STAGE_TITLE_PAD``).
    """
    if "stage" not in history.columns:
        return False
    stage2 = history.loc[history["stage"] == 2, "epoch"]
    stage1 = history.loc[history["stage"] == 1, "epoch"]
    if len(stage2) == 0 or len(stage1) == 0:
        return False
    x = (stage1.max() + stage2.min()) / 2
    ax.axvline(x, color="0.35", linestyle=":", linewidth=1.2, zorder=0)
    trans = ax.get_xaxis_transform()
    for text, ha in (("stage 1 \u2190 ", "right"), (" \u2192 stage 2", "left")):
        ax.text(x, 1.01, text, ha=ha, va="bottom", transform=trans, clip_on=False,
                fontsize="x-small", color="0.3", gid="stage-label")
    return True


def _integer_epochs(ax):
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_losses(history, *, yscale="auto", ax=None):
    """Every training loss against the epoch, both stages.

    Parameters
    ----------
    history : fitted CellFateAAE or pandas.DataFrame
        The model or its ``history_`` (columns ``epoch``, ``stage`` and the
        ``*loss`` columns).
    yscale : {"auto", "linear", "log", "symlog"}, default="auto"
        ``"auto"``: logarithmic when every loss is positive (the losses span
        orders of magnitude), otherwise symmetric-log.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> h = pd.DataFrame({"epoch": range(4), "stage": [1, 1, 2, 2],
    ...                   "loss": [4.0, 3.0, 5.0, 4.5],
    ...                   "recon_loss": [0.5, 0.4, 0.35, 0.3]})
    >>> fig = plot_losses(h)
    >>> fig.axes[0].get_yscale()
    'log'
    """
    history, _ = _history_and_thresholds(history, None)
    if yscale not in ("auto", "linear", "log", "symlog"):
        raise ValueError(
            f"yscale must be 'auto', 'linear', 'log' or 'symlog', got {yscale!r}."
        )
    cols = [c for c in history.columns if str(c).endswith("loss")]
    if not cols:
        raise ValueError("history has no loss columns (names ending in 'loss').")
    fig, (ax,) = _new_axes(ax, panel_size=(5.6, 3.8))
    for k, c in enumerate(cols):
        ax.plot(
            history["epoch"], history[c], label=c.replace("_", " "),
            color=_SERIES_COLORS[k % len(_SERIES_COLORS)],
            linestyle=_LINESTYLES[k % len(_LINESTYLES)], linewidth=1.5,
        )
    vals = history[cols].to_numpy(dtype=float)
    vals = vals[np.isfinite(vals)]
    if yscale == "auto":
        yscale = "log" if vals.size and np.all(vals > 0) else "symlog"
    if yscale == "symlog":
        nz = np.abs(vals[vals != 0])
        ax.set_yscale("symlog", linthresh=float(nz.min()) if nz.size else 1.0)
    else:
        ax.set_yscale(yscale)
    staged = _mark_stages(ax, history)
    _integer_epochs(ax)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (weighted total and terms, a.u.)")
    ax.set_title("Training losses", pad=_STAGE_TITLE_PAD if staged else None)
    ax.legend(fontsize="small", ncols=3, loc="upper center",
              bbox_to_anchor=(0.5, -0.16))
    return fig


def plot_stopping_criteria(history, *, thresholds=None, yscale="auto", ax=None):
    """The stopping criteria against the epoch, with their thresholds.

    Centroid distance (must reach ``min_centroid_distance``), the KL
    divergence of every latent dimension (``kl_max`` must stay below
    ``max_kl``), and the validation balanced accuracy and precision (must
    reach ``min_accuracy`` and ``min_precision``). Dashed lines are the
    thresholds; triangles on top mark the epochs where all criteria held.

    Parameters
    ----------
    history : fitted CellFateAAE or pandas.DataFrame
        The model (thresholds then come from its parameters) or its
        ``history_``.
    thresholds : dict, default=None
        Keys among ``min_centroid_distance``, ``max_kl``, ``min_accuracy``,
        ``min_precision``; overrides the model's.
    yscale : {"auto", "linear", "log"}, default="auto"
        ``"auto"``: linear while every value stays below 3 (the usual range
        of the criteria), logarithmic when a spike (a KL divergence or a
        distance of several units) would flatten the rest against the
        thresholds.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> h = pd.DataFrame({"epoch": range(4), "stage": [1, 1, 2, 2],
    ...                   "centroid_distance": [np.nan, np.nan, 0.4, 0.7],
    ...                   "kl_max": [np.nan, np.nan, 0.3, 0.15]})
    >>> fig = plot_stopping_criteria(h, thresholds={"max_kl": 0.2})
    >>> len(fig.axes[0].get_lines()) >= 3
    True
    """
    history, thresholds = _history_and_thresholds(history, thresholds)
    if yscale not in ("auto", "linear", "log"):
        raise ValueError(f"yscale must be 'auto', 'linear' or 'log', got {yscale!r}.")
    fig, (ax,) = _new_axes(ax, panel_size=(5.6, 3.8))
    series = [
        ("centroid_distance", "centroid distance", "min_centroid_distance", "\u2265"),
        ("kl_max", "KL max", "max_kl", "\u2264"),
        ("val_balanced_accuracy", "val. balanced accuracy", "min_accuracy", "\u2265"),
        ("val_precision", "val. precision", "min_precision", "\u2265"),
    ]
    colors = [_OKABE_ITO[k] for k in ("green", "purple", "orange", "sky_blue")]
    drawn = False
    epoch = history["epoch"]
    kl_cols = [c for c in history.columns if str(c).startswith("kl_z")]
    for c in kl_cols:
        if history[c].notna().any():
            ax.plot(epoch, history[c], color=_OKABE_ITO["purple"], linewidth=0.8,
                    alpha=0.45, linestyle=":")
    for (col, name, key, sign), color in zip(series, colors):
        if col not in history.columns or not history[col].notna().any():
            continue
        drawn = True
        last = history[col].dropna().iloc[-1]
        label = f"{name} (last {last:.2f}"
        if key in thresholds and thresholds[key] is not None:
            label += f"; {sign} {thresholds[key]:g}"
            ax.axhline(thresholds[key], color=color, linestyle="--", linewidth=1.0)
        ax.plot(epoch, history[col], color=color, marker="o", markersize=3,
                linewidth=1.5, label=label + ")")
    if kl_cols and any(history[c].notna().any() for c in kl_cols):
        ax.plot([], [], color=_OKABE_ITO["purple"], linestyle=":", linewidth=0.8,
                label="KL per dimension")
    if "criteria_met" in history.columns:
        met = history["criteria_met"].fillna(False).astype(bool).to_numpy()
        if met.any():
            ax.plot(
                epoch[met], np.full(met.sum(), 0.97), linestyle="none", marker="v",
                color="black", markersize=6, transform=ax.get_xaxis_transform(),
                label="all criteria met",
            )
    if not drawn:
        ax.text(0.5, 0.5, "no stopping criteria recorded", ha="center",
                va="center", transform=ax.transAxes, color="0.4")
    if len(epoch):
        ax.set_xlim(epoch.min() - 0.5, epoch.max() + 0.5)
    cols = [col for col, *_ in series] + kl_cols
    vals = history[[c for c in cols if c in history.columns]].to_numpy(dtype=float)
    vals = vals[np.isfinite(vals)]
    if yscale == "auto":
        yscale = "log" if vals.size and vals.max() > 3 and np.all(vals > 0) else "linear"
    ax.set_yscale(yscale)
    staged = _mark_stages(ax, history)
    _integer_epochs(ax)
    ax.set_xlabel("epoch")
    ax.set_ylabel("criterion value\n(KL in nats, distance in prior s.d.)")
    ax.set_title("Stopping criteria (stage 2)", pad=_STAGE_TITLE_PAD if staged else None)
    if drawn:
        ax.legend(fontsize="small", ncols=2, loc="upper center",
                  bbox_to_anchor=(0.5, -0.16))
    return fig


def plot_training_curves(history, *, thresholds=None, ax=None):
    """Training curves: every loss, and the stopping criteria with thresholds.

    Two panels side by side, :func:`plot_losses` and
    :func:`plot_stopping_criteria`, both with the boundary between the two
    training stages marked.

    Parameters
    ----------
    history : fitted CellFateAAE or pandas.DataFrame
        The model (thresholds then come from its parameters
        ``min_centroid_distance``, ``max_kl``, ``min_accuracy``,
        ``min_precision``) or its ``history_``.
    thresholds : dict, default=None
        Threshold overrides (see :func:`plot_stopping_criteria`).
    ax : pair of matplotlib Axes, default=None
        Axes for the losses and the criteria; a new figure when None.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> h = pd.DataFrame({"epoch": range(4), "stage": [1, 1, 2, 2],
    ...                   "loss": [4.0, 3.0, 5.0, 4.5],
    ...                   "kl_max": [np.nan, np.nan, 0.3, 0.15]})
    >>> fig = plot_training_curves(h, thresholds={"max_kl": 0.2})
    >>> [a.get_title() for a in fig.axes]
    ['Training losses', 'Stopping criteria (stage 2)']
    """
    history, thresholds = _history_and_thresholds(history, thresholds)
    fig, (ax_loss, ax_crit) = _new_axes(ax, 2, panel_size=(5.6, 4.0))
    plot_losses(history, ax=ax_loss)
    plot_stopping_criteria(history, thresholds=thresholds, ax=ax_crit)
    return fig


# --------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------


def plot_confusion_matrix(
    y_true, y_pred, *, labels=None, class_names=None, cmap="Blues", ax=None
):
    """Row-normalised confusion matrix with counts.

    Each cell shows the fraction of its true fate (the row) and the number of
    cells; the title gives the balanced accuracy and the precision of every
    fate.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True fates.
    y_pred : array-like of shape (n_samples,)
        Predicted fates.
    labels : array-like, default=None
        Class order; the sorted labels by default.
    class_names : dict, default=None
        Tick text per label (see :func:`fate_label`).
    cmap : str, default="Blues"
        Colour map of the fractions (sequential, 0 to 1).
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_confusion_matrix([0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 0])
    >>> fig.axes[0].get_xlabel()
    'predicted fate'
    """
    cm = _metrics.confusion_matrix(y_true, y_pred, labels=labels)
    counts = _metrics.confusion_matrix(y_true, y_pred, labels=labels, normalize=None)
    if labels is None:
        labels = np.unique(np.concatenate([np.asarray(y_true), np.asarray(y_pred)]))
    labels = list(np.asarray(labels).tolist())
    k = len(labels)
    fig, (ax,) = _new_axes(ax, panel_size=(1.3 * k + 2.6, 1.2 * k + 1.9))
    im = ax.imshow(np.nan_to_num(cm), cmap=cmap, vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            frac = cm[i, j]
            txt = "n/a" if not np.isfinite(frac) else f"{frac:.2f}"
            ax.text(
                j, i, f"{txt}\n(n = {counts[i, j]})", ha="center", va="center",
                color="white" if np.isfinite(frac) and frac > 0.6 else "black",
            )
    names = [fate_label(c, class_names) for c in labels]
    ax.set_xticks(range(k), names)
    ax.set_yticks(range(k), names, rotation=90, va="center")
    ax.set_xlabel("predicted fate")
    ax.set_ylabel("true fate")
    cb = fig.colorbar(im, ax=ax, shrink=0.8)
    cb.set_label("fraction of true fate")
    report = _metrics.fate_report(y_true, y_pred, labels=labels)["value"]
    prec = ", ".join(
        f"{_metrics._label_name(c)} {report[f'precision_{_metrics._label_name(c)}']:.2f}"
        for c in labels
    )
    ax.set_title(
        f"balanced accuracy {report['balanced_accuracy']:.2f}\nprecision: {prec}",
        fontsize="medium",
    )
    return fig


def plot_roc_curve(y_true, scores, *, pos_label=None, ax=None):
    """ROC curves of one or more classifiers, with their AUC.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True fates. With more than two fates, ``pos_label`` against the rest.
    scores : array-like of shape (n_samples,) or dict of str to array-like
        Score of ``pos_label`` for every sample (a probability), or one such
        array per classifier, keyed by the name shown in the legend.
    pos_label : label, default=None
        The positive fate; 1 when present in ``y_true``, else the largest
        label.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_roc_curve([0, 0, 1, 1], {"model": [0.1, 0.4, 0.35, 0.8]})
    >>> fig.axes[0].get_legend().get_texts()[0].get_text()
    'model (AUC 0.75)'
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {y.shape}.")
    labels = np.unique(y)
    if pos_label is None:
        pos_label = 1 if 1 in labels.tolist() else labels[-1]
    if not isinstance(scores, dict):
        scores = {"classifier": scores}
    positive = y == pos_label
    if positive.all() or not positive.any():
        raise ValueError("y_true must hold both the positive fate and another one.")
    fig, (ax,) = _new_axes(ax, panel_size=(4.6, 4.2))
    ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1.0, label="chance (AUC 0.5)")
    for k, (name, s) in enumerate(scores.items()):
        s = np.asarray(s, dtype=float)
        if s.shape != y.shape:
            raise ValueError(f"scores[{name!r}] must have shape {y.shape}, got {s.shape}.")
        fpr, tpr, _ = roc_curve(positive, s)
        auc = roc_auc_score(positive, s)
        ax.plot(fpr, tpr, color=_SERIES_COLORS[k % len(_SERIES_COLORS)],
                linestyle=_LINESTYLES[k % len(_LINESTYLES)], linewidth=1.8,
                label=f"{name} (AUC {auc:.2f})")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    name = fate_label(pos_label)
    others = "the other fates" if len(labels) > 2 else "the other fate"
    ax.set_xlabel(f"false positive rate (1 - recall of {others})")
    ax.set_ylabel(f"true positive rate (recall of {name})")
    ax.set_title(f"ROC curve, positive: {name}", fontsize="medium")
    handles, texts = ax.get_legend_handles_labels()
    # classifiers first, chance last
    ax.legend(handles[1:] + handles[:1], texts[1:] + texts[:1], fontsize="small",
              loc="lower right")
    return fig
