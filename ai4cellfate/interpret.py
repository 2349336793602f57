"""Latent traversals and the features of generated images.

A traversal decodes latent vectors that differ along one dimension only and
measures the generated nuclei, turning "z0 follows intensity, z1 follows size"
(the preprint's reading of its figure 2) into numbers:

>>> table = latent_traversal(model)                     # doctest: +SKIP
>>> traversal_trends(table)                             # doctest: +SKIP
            area  max_intensity  mean_intensity  aspect_ratio  circularity
dimension
z0          0.1            1.0             1.0          ...          ...
z1          1.0            0.3             0.2          ...          ...

:func:`latent_traversal` varies one dimension at a time from a fixed point,
:func:`latent_grid_traversal` varies two at once, :func:`measure_images`
measures any stack of images, :func:`traversal_trends` gives the rank
correlation of every measurement with the latent value (does it follow?) and
:func:`traversal_effects` the size of the change (by how much?).
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
from scipy import stats
from skimage.measure import perimeter as _perimeter

__all__ = [
    "MEASUREMENTS",
    "measure_images",
    "latent_traversal",
    "latent_grid_traversal",
    "traversal_trends",
    "traversal_effects",
]

#: The measurements taken on every generated image, in table order.
MEASUREMENTS = ("area", "max_intensity", "mean_intensity", "aspect_ratio", "circularity")

#: Units of the measurements (for axis labels).
MEASUREMENT_UNITS = {
    "area": "pixels",
    "max_intensity": "a.u.",
    "mean_intensity": "a.u.",
    "aspect_ratio": "width / height",
    "circularity": "4\u03c0 area / perimeter\u00b2",
}

# The preprint's traversal ranges (dimension -> (start, stop)); other
# dimensions get _OTHER_RANGE.
_PREPRINT_RANGES = {0: (-2.5, 1.5), 1: (-3.0, 2.0)}
_OTHER_RANGE = (-2.5, 2.5)


# --------------------------------------------------------------------------
# Measuring images
# --------------------------------------------------------------------------


def _as_image_stack(images, name="images"):
    try:
        images = np.asarray(images, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array of images.") from exc
    if images.ndim == 2:
        images = images[None]
    if images.ndim == 4:
        # (n, H, W, C): measure the channel mean (the channel itself if C == 1).
        images = images.mean(axis=-1)
    if images.ndim != 3 or min(images.shape) < 1:
        raise ValueError(
            f"{name} must have shape (H, W), (n, H, W) or (n, H, W, C), got "
            f"{np.shape(images)}."
        )
    if not np.all(np.isfinite(images)):
        raise ValueError(f"{name} contain NaN or infinite values.")
    return images


def _measure_one(image, threshold):
    mask = image > threshold
    area = int(mask.sum())
    out = {
        "area": float(area),
        "max_intensity": float(image.max()),
        "mean_intensity": np.nan,
        "aspect_ratio": np.nan,
        "circularity": np.nan,
    }
    if area == 0:
        return out
    out["mean_intensity"] = float(image[mask].mean())
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    height = rows[-1] - rows[0] + 1
    width = cols[-1] - cols[0] + 1
    out["aspect_ratio"] = float(width / height)
    perim = float(_perimeter(mask, neighborhood=4))
    if perim > 0:
        out["circularity"] = float(4.0 * np.pi * area / perim**2)
    return out


def _check_threshold(threshold):
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold must be a number, got {threshold!r}.")
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold!r}.")
    return float(threshold)


def measure_images(images, *, threshold=0.1):
    """Measure the nucleus in each image.

    The foreground is every pixel brighter than ``threshold``.

    - ``area``: number of foreground pixels;
    - ``max_intensity``: the brightest pixel of the image;
    - ``mean_intensity``: mean intensity of the foreground pixels;
    - ``aspect_ratio``: width / height of the foreground's bounding box;
    - ``circularity``: ``4 pi area / perimeter**2`` (1 for a disc), with the
      perimeter of :func:`skimage.measure.perimeter` (4-connected boundary
      pixels, as in ``regionprops``; a ``h x w`` rectangle has perimeter
      ``2 (h + w) - 4``, so very small blobs can exceed 1).

    Measurements that need a foreground are NaN for an empty one, and
    circularity is NaN when the perimeter is 0 (a single pixel).

    Parameters
    ----------
    images : array-like of shape (H, W), (n, H, W) or (n, H, W, C)
        Images with intensities in [0, 1] as the decoder makes them. Images
        with several channels are measured on their channel mean.
    threshold : float, default=0.1
        Foreground threshold (the preprint's 0.1).

    Returns
    -------
    measurements : pandas.DataFrame
        One row per image, the columns of :data:`MEASUREMENTS`.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((10, 10))
    >>> img[2:5, 1:6] = 0.5        # 3 rows x 5 columns
    >>> m = measure_images(img)
    >>> m[["area", "max_intensity", "aspect_ratio"]].iloc[0].tolist()
    [15.0, 0.5, 1.6666666666666667]
    >>> round(float(m["circularity"][0]), 4)  # 4 pi 15 / (2 (3 + 5) - 4)**2
    1.309
    """
    threshold = _check_threshold(threshold)
    images = _as_image_stack(images)
    rows = [_measure_one(img, threshold) for img in images]
    return pd.DataFrame(rows, columns=list(MEASUREMENTS))


# --------------------------------------------------------------------------
# Planning and decoding traversals
# --------------------------------------------------------------------------


def _check_model(model, need_transform=False):
    if not callable(getattr(model, "decode", None)):
        raise TypeError(
            "model must have a decode(Z) method (a fitted CellFateAAE), got "
            f"{type(model).__name__}."
        )
    latent_dim = getattr(model, "latent_dim", None)
    if not isinstance(latent_dim, numbers.Integral) or latent_dim < 1:
        raise TypeError(
            "model must have an integer latent_dim attribute, got "
            f"{latent_dim!r}."
        )
    if need_transform and not callable(getattr(model, "transform", None)):
        raise TypeError(
            "model must have a transform(X) method to take ranges or the fixed "
            "point from data X."
        )
    return int(latent_dim)


def _check_dim(d, latent_dim, name):
    if isinstance(d, bool) or not isinstance(d, numbers.Integral):
        raise TypeError(f"{name} must hold integer latent dimensions, got {d!r}.")
    if not 0 <= d < latent_dim:
        raise ValueError(
            f"{name} holds dimension {d}, outside [0, {latent_dim}) for a "
            f"{latent_dim}-D latent space."
        )
    return int(d)


def _check_steps(n_steps, name="n_steps"):
    if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {n_steps!r}.")
    if n_steps < 2:
        raise ValueError(f"{name} must be at least 2, got {n_steps}.")
    return int(n_steps)


def _check_pair(pair, name):
    try:
        lo, hi = (float(v) for v in pair)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a (start, stop) pair of numbers, got {pair!r}."
        ) from None
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo == hi:
        raise ValueError(
            f"{name} must be two different finite numbers, got {pair!r}."
        )
    return lo, hi


def _latents(model, X, latent_dim):
    Z = np.asarray(model.transform(X), dtype=np.float64)
    if Z.ndim != 2 or Z.shape[1] != latent_dim or len(Z) < 1:
        raise ValueError(
            f"model.transform(X) must return shape (n, {latent_dim}), got {Z.shape}."
        )
    return Z


def _traversal_plan(model, dims, ranges, n_steps, fixed, X, quantiles):
    """Resolve the arguments of a traversal.

    Returns ``(dims, values, fixed)``: the traversed dimensions, one array of
    latent values per dimension, and the fixed latent point.
    """
    uses_data = (
        X is not None
        and (ranges is None or (isinstance(ranges, str) and ranges == "quantiles"))
    ) or isinstance(fixed, str)
    latent_dim = _check_model(model, need_transform=uses_data)
    dims = [_check_dim(d, latent_dim, "dims") for d in dims]
    if len(set(dims)) != len(dims):
        raise ValueError(f"dims must not repeat a dimension, got {dims}.")
    if isinstance(n_steps, numbers.Integral) and not isinstance(n_steps, bool):
        steps = [_check_steps(n_steps)] * len(dims)
    else:
        try:
            steps = [_check_steps(s) for s in n_steps]
        except TypeError:
            raise TypeError(
                f"n_steps must be an integer or one integer per dimension, got "
                f"{n_steps!r}."
            ) from None
        if len(steps) != len(dims):
            raise ValueError(
                f"n_steps must give one value per traversed dimension "
                f"({len(dims)}), got {len(steps)}."
            )

    Z = None
    if X is not None and uses_data:
        Z = _latents(model, X, latent_dim)
    elif isinstance(fixed, str) or (isinstance(ranges, str)):
        raise ValueError(
            "X (data to encode) is needed for ranges='quantiles' or a fixed "
            "point of 'mean' or 'median'."
        )

    # Fixed point.
    if fixed is None:
        point = np.zeros(latent_dim)
    elif isinstance(fixed, str):
        if fixed not in ("mean", "median"):
            raise ValueError(
                f"fixed must be None, 'mean', 'median' or a latent vector, got "
                f"{fixed!r}."
            )
        point = Z.mean(axis=0) if fixed == "mean" else np.median(Z, axis=0)
    else:
        try:
            point = np.asarray(fixed, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise TypeError(f"fixed must be a latent vector, got {fixed!r}.") from None
        if point.shape != (latent_dim,) or not np.all(np.isfinite(point)):
            raise ValueError(
                f"fixed must be a finite vector of length {latent_dim}, got "
                f"{fixed!r}."
            )

    # Ranges.
    if ranges is None and Z is not None:
        ranges = "quantiles"
    if isinstance(ranges, str):
        if ranges != "quantiles":
            raise ValueError(
                f"ranges must be None, 'quantiles', a (start, stop) pair, a dict "
                f"or one pair per dimension, got {ranges!r}."
            )
        q = _check_pair(quantiles, "quantiles")
        if not (0 <= q[0] <= 1 and 0 <= q[1] <= 1):
            raise ValueError(f"quantiles must lie in [0, 1], got {quantiles!r}.")
        pairs = [tuple(np.quantile(Z[:, d], q)) for d in dims]
        for d, (lo, hi) in zip(dims, pairs):
            if lo == hi:
                raise ValueError(
                    f"The latent quantiles {quantiles} of dimension {d} are equal "
                    f"({lo}); the traversal range would be empty."
                )
    elif ranges is None:
        pairs = [_PREPRINT_RANGES.get(d, _OTHER_RANGE) for d in dims]
    elif isinstance(ranges, dict):
        pairs = []
        for d in dims:
            default = _PREPRINT_RANGES.get(d, _OTHER_RANGE)
            pairs.append(_check_pair(ranges.get(d, default), f"ranges[{d}]"))
        unknown = set(ranges) - set(dims)
        if unknown:
            raise ValueError(
                f"ranges names dimensions {sorted(unknown)} that are not "
                f"traversed (dims={dims})."
            )
    else:
        arr = np.asarray(ranges, dtype=object)
        if arr.shape == (2,):
            pairs = [_check_pair(ranges, "ranges")] * len(dims)
        elif arr.ndim == 2 and arr.shape == (len(dims), 2):
            pairs = [_check_pair(r, f"ranges[{i}]") for i, r in enumerate(ranges)]
        else:
            raise ValueError(
                f"ranges must be a (start, stop) pair or one pair per traversed "
                f"dimension ({len(dims)}), got {ranges!r}."
            )
    values = [np.linspace(lo, hi, s) for (lo, hi), s in zip(pairs, steps)]
    return dims, values, point


def _decode(model, Z):
    images = np.asarray(model.decode(np.asarray(Z, dtype=np.float32)))
    if images.ndim not in (3, 4) or images.shape[0] != len(Z):
        raise ValueError(
            f"model.decode returned shape {images.shape} for {len(Z)} latent "
            "vectors; expected (n, H, W) or (n, H, W, C)."
        )
    return images


_TRAVERSAL_DOC_PARAMS = """
    model : fitted CellFateAAE or similar
        Needs ``decode(Z)`` and ``latent_dim``; ``transform(X)`` too when
        ``X`` is given.
    {dims_doc}
    ranges : None, "quantiles", (start, stop), dict or sequence of pairs
        The latent values of each traversed dimension run evenly from start to
        stop. ``None``: the preprint's ranges (dimension 0 over [-2.5, 1.5],
        dimension 1 over [-3, 2], others over [-2.5, 2.5]), or, when ``X`` is
        given, the ``quantiles`` of the latent vectors of ``X``.
        ``"quantiles"``: those latent quantiles (needs ``X``). A single pair
        applies to every traversed dimension; a dict maps a dimension to its
        pair (others keep their default); a sequence gives one pair per
        traversed dimension.
    n_steps : int{steps_pair}, default=5
        Number of latent values per dimension (the preprint's 5).
    fixed : None, "mean", "median" or array-like of shape (latent_dim,)
        The latent point the traversal starts from, held fixed in the other
        dimensions. ``None``: the zero vector (the preprint's choice);
        ``"mean"`` / ``"median"``: of the latent vectors of ``X`` (the
        reference code traverses around the latent mean).
    X : array-like of images, default=None
        Data whose latent vectors (``model.transform(X)``) set the ranges and
        / or the fixed point.
    quantiles : (float, float), default=(0.05, 0.95)
        Lower and upper latent quantiles used for the ranges from ``X``.
    threshold : float, default=0.1
        Foreground threshold of the measurements (:func:`measure_images`).
    return_images : bool, default=False
        Also return the decoded images."""


def latent_traversal(
    model,
    *,
    dims=None,
    ranges=None,
    n_steps=5,
    fixed=None,
    X=None,
    quantiles=(0.05, 0.95),
    threshold=0.1,
    return_images=False,
):
    """Decode along each latent dimension with the others fixed, and measure.

    For every traversed dimension ``d`` and each of ``n_steps`` evenly spaced
    values ``v``, the fixed point with its ``d``-th entry replaced by ``v`` is
    decoded and the generated image measured (:func:`measure_images`).

    Parameters
    ----------{params}

    Returns
    -------
    table : pandas.DataFrame
        Tidy: one row per (dimension, value, measurement), columns
        ``dimension`` (``"z0"``, ``"z1"``, ...), ``value`` (the latent value),
        ``measurement`` (one of :data:`MEASUREMENTS`) and ``result``.
    images : ndarray of shape (n_dims, n_steps, H, W) or (..., C)
        Only with ``return_images``: ``images[i, j]`` is decoded at the
        ``j``-th value of ``dims[i]`` (needs the same ``n_steps`` for all).

    See Also
    --------
    traversal_trends : rank correlation of each measurement with the value.
    latent_grid_traversal : two dimensions at once.

    Examples
    --------
    A stand-in decoder drawing a disc whose radius grows with ``z1`` and whose
    brightness grows with ``z0``:

    >>> import numpy as np
    >>> class Blob:
    ...     latent_dim = 2
    ...     def decode(self, Z):
    ...         yy, xx = np.mgrid[:20, :20] - 9.5
    ...         r = 4 + np.asarray(Z)[:, 1, None, None]
    ...         b = 0.6 + 0.1 * np.asarray(Z)[:, 0, None, None]
    ...         return b * (np.hypot(yy, xx) <= r)
    >>> table = latent_traversal(Blob())
    >>> table.columns.tolist()
    ['dimension', 'value', 'measurement', 'result']
    >>> table.query("dimension == 'z1' and measurement == 'area'")["result"].tolist()
    [4.0, 16.0, 32.0, 76.0, 112.0]
    >>> sorted(set(table.query("dimension == 'z0'")["value"]))
    [-2.5, -1.5, -0.5, 0.5, 1.5]
    >>> traversal_trends(table)[["area", "max_intensity"]].round(3).to_dict("index")
    {'z0': {'area': nan, 'max_intensity': 1.0}, 'z1': {'area': 1.0, 'max_intensity': nan}}
    """
    if dims is None:
        dims = range(_check_model(model))
    elif isinstance(dims, numbers.Integral):
        dims = [dims]
    dims, values, point = _traversal_plan(
        model, list(dims), ranges, n_steps, fixed, X, quantiles
    )
    threshold = _check_threshold(threshold)
    Z = []
    for d, vals in zip(dims, values):
        block = np.tile(point, (len(vals), 1))
        block[:, d] = vals
        Z.append(block)
    images = _decode(model, np.concatenate(Z))
    measures = measure_images(images, threshold=threshold)
    labels = np.concatenate(
        [[f"z{d}"] * len(vals) for d, vals in zip(dims, values)]
    )
    measures.insert(0, "value", np.concatenate(values))
    measures.insert(0, "dimension", labels)
    table = measures.melt(
        id_vars=["dimension", "value"],
        value_vars=list(MEASUREMENTS),
        var_name="measurement",
        value_name="result",
        ignore_index=False,
    )
    # Order rows by dimension, value, then measurement (MEASUREMENTS order).
    table["_image"] = table.index
    table["_m"] = table["measurement"].map({m: i for i, m in enumerate(MEASUREMENTS)})
    table = table.sort_values(["_image", "_m"]).drop(columns=["_image", "_m"])
    table = table.reset_index(drop=True)
    if not return_images:
        return table
    if len({len(v) for v in values}) != 1:
        raise ValueError("return_images needs the same n_steps for every dimension.")
    return table, images.reshape((len(dims), len(values[0])) + images.shape[1:])


def latent_grid_traversal(
    model,
    *,
    dims=(0, 1),
    ranges=None,
    n_steps=5,
    fixed=None,
    X=None,
    quantiles=(0.05, 0.95),
    threshold=0.1,
    return_images=False,
):
    """Decode a 2-D grid over two latent dimensions, and measure.

    Parameters
    ----------{params}

    Returns
    -------
    table : pandas.DataFrame
        Tidy: one row per (grid point, measurement), columns ``z<a>`` and
        ``z<b>`` (the latent values of ``dims = (a, b)``), ``measurement``
        and ``result``.
    images : ndarray of shape (n_a, n_b, H, W) or (..., C)
        Only with ``return_images``: ``images[i, j]`` is decoded at the
        ``i``-th value of ``dims[0]`` and the ``j``-th value of ``dims[1]``.

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
    >>> table, images = latent_grid_traversal(Blob(), n_steps=(3, 4),
    ...                                       return_images=True)
    >>> images.shape
    (3, 4, 20, 20)
    >>> table.columns.tolist()
    ['z0', 'z1', 'measurement', 'result']
    """
    try:
        dims = list(dims)
    except TypeError:
        raise TypeError(f"dims must be a pair of dimensions, got {dims!r}.") from None
    if len(dims) != 2:
        raise ValueError(f"dims must name exactly two dimensions, got {dims!r}.")
    dims, values, point = _traversal_plan(
        model, dims, ranges, n_steps, fixed, X, quantiles
    )
    threshold = _check_threshold(threshold)
    (a, b), (va, vb) = dims, values
    A, B = np.meshgrid(va, vb, indexing="ij")
    Z = np.tile(point, (A.size, 1))
    Z[:, a] = A.ravel()
    Z[:, b] = B.ravel()
    images = _decode(model, Z)
    measures = measure_images(images, threshold=threshold)
    measures.insert(0, f"z{b}", B.ravel())
    measures.insert(0, f"z{a}", A.ravel())
    table = measures.melt(
        id_vars=[f"z{a}", f"z{b}"],
        value_vars=list(MEASUREMENTS),
        var_name="measurement",
        value_name="result",
        ignore_index=False,
    )
    table["_image"] = table.index
    table["_m"] = table["measurement"].map({m: i for i, m in enumerate(MEASUREMENTS)})
    table = table.sort_values(["_image", "_m"]).drop(columns=["_image", "_m"])
    table = table.reset_index(drop=True)
    if not return_images:
        return table
    return table, images.reshape((len(va), len(vb)) + images.shape[1:])


_ONE_DIMS = """dims : int or sequence of int, default=None
        Dimensions to traverse, one at a time; all of them by default."""
_TWO_DIMS = """dims : (int, int), default=(0, 1)
        The two dimensions of the grid: rows follow ``dims[0]``, columns
        ``dims[1]``."""
if latent_traversal.__doc__:  # None under python -OO
    latent_traversal.__doc__ = latent_traversal.__doc__.replace(
        "{params}",
        _TRAVERSAL_DOC_PARAMS.format(dims_doc=_ONE_DIMS, steps_pair=""),
    )
    latent_grid_traversal.__doc__ = latent_grid_traversal.__doc__.replace(
        "{params}",
        _TRAVERSAL_DOC_PARAMS.format(dims_doc=_TWO_DIMS, steps_pair=" or (int, int)"),
    )


# --------------------------------------------------------------------------
# Trends
# --------------------------------------------------------------------------


def _dimension_key(name):
    """Sort key putting ``z2`` before ``z10``."""
    text = str(name)
    if text[:1] == "z" and text[1:].isdigit():
        return (0, int(text[1:]), text)
    return (1, 0, text)


def _rank_corr(x, y, method):
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return np.nan
    if method == "spearman":
        return float(stats.spearmanr(x, y).statistic)
    if method == "kendall":
        return float(stats.kendalltau(x, y).statistic)
    return float(stats.pearsonr(x, y).statistic)


def traversal_trends(traversal, *, method="spearman"):
    """Rank correlation of every measurement with the latent value.

    Parameters
    ----------
    traversal : pandas.DataFrame
        A table from :func:`latent_traversal` (columns ``dimension``,
        ``value``, ``measurement``, ``result``) or from
        :func:`latent_grid_traversal` (columns ``z<a>``, ``z<b>``,
        ``measurement``, ``result``; every grid image counts for both
        dimensions).
    method : {"spearman", "kendall", "pearson"}, default="spearman"
        Correlation coefficient; Spearman's rank correlation by default.

    Returns
    -------
    trends : pandas.DataFrame
        Index ``dimension`` (``"z0"``, ...), one column per measurement: the
        correlation in [-1, 1]. NaN where a measurement is constant or has
        fewer than three finite values along the dimension. +1: the
        measurement grows steadily with the latent value.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({
    ...     "dimension": ["z1"] * 4,
    ...     "value": [-1.0, 0.0, 1.0, 2.0],
    ...     "measurement": ["area"] * 4,
    ...     "result": [10.0, 12.0, 30.0, 31.0]})
    >>> traversal_trends(table).to_dict("index")
    {'z1': {'area': 1.0}}
    """
    if method not in ("spearman", "kendall", "pearson"):
        raise ValueError(
            f"method must be 'spearman', 'kendall' or 'pearson', got {method!r}."
        )
    return _per_dimension(
        traversal, lambda values, results, _: _rank_corr(values, results, method)
    )


def traversal_effects(traversal, *, relative=True):
    """Size of the change of every measurement along each latent dimension.

    Rank correlations (:func:`traversal_trends`) say whether a measurement
    follows a dimension, not by how much: a steady change of 1 % gives the
    same +1 as a doubling. This gives the change itself: the rise of a
    least-squares line of the measurement against the latent value over the
    traversed range (slope times range), by default relative to the mean of
    that measurement over every image of the table.

    Parameters
    ----------
    traversal : pandas.DataFrame
        A table from :func:`latent_traversal` or :func:`latent_grid_traversal`.
    relative : bool, default=True
        Divide by the mean absolute value of the measurement over the whole
        table (so 0.5 means "grows by half of its typical value"); with
        ``False`` the change is in the measurement's own unit (pixels for
        ``area``).

    Returns
    -------
    effects : pandas.DataFrame
        Index ``dimension``, one column per measurement; signed like the
        trend. NaN with fewer than two finite values or a single latent value.

    See Also
    --------
    traversal_trends : whether each measurement follows each dimension.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({
    ...     "dimension": ["z0"] * 4 + ["z1"] * 4,
    ...     "value": [0.0, 1.0, 2.0, 3.0] * 2,
    ...     "measurement": "area",
    ...     "result": [10.0, 12.0, 14.0, 16.0, 13.0, 13.0, 13.0, 13.0]})
    >>> traversal_effects(table, relative=False).round(6).to_dict("index")
    {'z0': {'area': 6.0}, 'z1': {'area': 0.0}}
    >>> round(float(traversal_effects(table).loc["z0", "area"]), 4)  # 6 / 13
    0.4615
    """
    if not isinstance(relative, (bool, np.bool_)):
        raise TypeError(f"relative must be True or False, got {relative!r}.")
    return _per_dimension(traversal, _line_change, relative=bool(relative))


def _line_change(values, results, scale):
    ok = np.isfinite(values) & np.isfinite(results)
    x, r = values[ok], results[ok]
    if len(x) < 2 or np.ptp(x) == 0:
        return np.nan
    if np.ptp(r) == 0:
        return 0.0
    slope = np.polyfit(x, r, 1)[0]
    change = float(slope * np.ptp(x))
    if scale is None:
        return change
    return change / scale if scale > 0 else np.nan


def _per_dimension(traversal, statistic, relative=None):
    """Apply ``statistic(values, results, scale)`` per dimension and measurement."""
    if not isinstance(traversal, pd.DataFrame):
        raise TypeError(
            f"traversal must be a pandas DataFrame from latent_traversal, got "
            f"{type(traversal).__name__}."
        )
    missing = {"measurement", "result"} - set(traversal.columns)
    if missing:
        raise ValueError(f"traversal lacks the columns {sorted(missing)}.")
    present = list(pd.unique(traversal["measurement"]))
    measurements = [m for m in MEASUREMENTS if m in present] + [
        m for m in present if m not in MEASUREMENTS
    ]
    if "dimension" in traversal.columns:
        if "value" not in traversal.columns:
            raise ValueError("traversal lacks the column 'value'.")
        groups = [
            (d, sub["value"], sub)
            for d, sub in sorted(
                traversal.groupby("dimension", sort=False),
                key=lambda item: _dimension_key(item[0]),
            )
        ]
    else:
        zcols = [c for c in traversal.columns if c not in ("measurement", "result")]
        if not zcols:
            raise ValueError(
                "traversal must have a 'dimension' and 'value' column, or the "
                "latent-value columns of a grid traversal."
            )
        groups = [(c, traversal[c], traversal) for c in zcols]
    scales = {}
    if relative:
        for m in measurements:
            r = traversal.loc[traversal["measurement"] == m, "result"].to_numpy(float)
            r = np.abs(r[np.isfinite(r)])
            scales[m] = float(r.mean()) if r.size else np.nan
    out = {}
    for name, values, sub in groups:
        row = {}
        for m in measurements:
            sel = (sub["measurement"] == m).to_numpy()
            row[m] = statistic(
                np.asarray(values, dtype=float)[sel],
                sub["result"].to_numpy(dtype=float)[sel],
                scales.get(m),
            )
        out[name] = row
    table = pd.DataFrame.from_dict(out, orient="index", columns=measurements)
    table.index.name = "dimension"
    return table
