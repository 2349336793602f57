"""Intensity transforms for nucleus crops, as scikit-learn transformers.

The preprint's image preprocessing after cropping and masking (method-spec
section 1, steps 6-7): a ratio of two channels (the CFP / YFP "FRET-like"
image), division by the dataset-wide maximum, and an intensity stretch over the
nonzero (nucleus) pixels with the background kept at 0. Each is a transformer
whose statistics are learnt in ``fit`` on training data only, so that they can
sit in a :class:`~sklearn.pipeline.Pipeline` in front of ``CellFateAAE``
without leaking test-set statistics into training::

    Pipeline([("ratio", ChannelRatio(0, 1)), ("max", MaxNormalizer()),
              ("stretch", IntensityStretch()), ("aae", CellFateAAE())])

Images are arrays of shape ``(n, h, w)`` (one channel) or ``(n, h, w, c)``
(channels last, as :class:`~ai4cellfate.datasets.FateDataset` stores them).
Every transform returns float32 and leaves background pixels (exactly 0)
at 0.

Flat pixels and DataFrames
    scikit-learn's ``set_output(transform="pandas")`` (or ``"polars"``, or
    ``sklearn.set_config(transform_output=...)``) needs 2-D output, so with a
    DataFrame output configured every transformer returns its images
    flattened (C order: row, column, channel), one column per pixel, named by
    ``get_feature_names_out`` as ``pixel_<row>_<col>`` or
    ``pixel_<row>_<col>_<channel>``. Every transformer reads such flat rows
    back: a DataFrame whose columns carry those names, or any 2-D array
    ``(n, h * w * c)`` when ``image_shape`` is given (in ``fit``; ``transform``
    uses the shape seen in ``fit``). Flat rows in give flat rows out.
    ``CellFateAAE(image_shape=(h, w))`` reads the same flat rows, so a whole
    pipeline can produce DataFrames::

        pipe = Pipeline([("max", MaxNormalizer()), ("stretch", IntensityStretch()),
                         ("aae", CellFateAAE(image_shape=(20, 20)))])
        pipe.set_output(transform="pandas").fit(X, y)
        pipe.transform(X)           # DataFrame with columns z0, z1
        pipe[:-1].transform(X)      # DataFrame with columns pixel_0_0, ...
"""

from __future__ import annotations

import numbers
import re
import warnings

import numpy as np
import sklearn
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

__all__ = ["ChannelRatio", "MaxNormalizer", "IntensityStretch"]


_PIXEL_NAME = re.compile(r"pixel_(\d+)_(\d+)(?:_(\d+))?")


def _pixel_names(shape):
    """Names of the flat pixels of images of ``shape`` (C order)."""
    index = np.indices(shape).reshape(len(shape), -1).T
    return np.asarray(["pixel_" + "_".join(map(str, i)) for i in index], dtype=object)


def _shape_from_names(columns):
    """Image shape encoded by ``pixel_<row>_<col>[_<channel>]`` column names, or None."""
    if not columns:
        return None
    first = _PIXEL_NAME.fullmatch(columns[-1])
    if first is None:
        return None
    shape = tuple(int(g) + 1 for g in first.groups() if g is not None)
    if len(columns) != int(np.prod(shape)) or list(_pixel_names(shape)) != columns:
        return None
    return shape


def _check_image_shape(image_shape):
    if image_shape is None:
        return None
    try:
        shape = tuple(image_shape)
        ok = len(shape) in (2, 3) and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1
            for v in shape
        )
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(
            "image_shape must be (height, width) or (height, width, channels) of "
            f"positive integers, got {image_shape!r}."
        )
    return tuple(int(v) for v in shape)


def _dataframe_output(est):
    """Whether ``set_output`` or ``sklearn.set_config`` asks ``est`` for DataFrames."""
    config = getattr(est, "_sklearn_output_config", {}).get("transform")
    if config is None:
        config = sklearn.get_config()["transform_output"]
    return config != "default"


def _check_images(X, name="X", *, channels_required=False, flat_shape=None):
    """Validate a stack of images; return it as a float array (no copy if possible).

    Also returns whether ``X`` came as flat rows (2-D) and its column names
    (for a DataFrame; else None). Flat rows are reshaped to ``flat_shape``, or
    to the shape their ``pixel_<row>_<col>[_<channel>]`` column names encode.
    """
    columns = None
    if hasattr(X, "columns") and hasattr(X, "to_numpy"):  # pandas / polars
        columns = [str(c) for c in X.columns]
        X = X.to_numpy()
    if hasattr(X, "__array__") or isinstance(X, (list, tuple)):
        try:
            arr = np.asarray(X)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be an array of numbers.") from None
    else:
        raise TypeError(
            f"{name} must be an array of images (n, h, w) or (n, h, w, c), "
            f"got {type(X).__name__}."
        )
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == bool
    ):
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}.")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}.")
    flat = arr.ndim == 2
    if flat:
        shape = flat_shape if flat_shape is not None else _shape_from_names(columns)
        if shape is None:
            raise ValueError(
                f"{name} must have shape (n, h, w) or (n, h, w, c), got shape "
                f"{arr.shape}; to read flat rows of pixels, set image_shape=(h, w) or "
                "(h, w, c), or pass a DataFrame whose columns are named "
                "pixel_<row>_<col>[_<channel>] (as get_feature_names_out names them)."
            )
        if arr.shape[1] != int(np.prod(shape)):
            raise ValueError(
                f"{name} has {arr.shape[1]} pixels per row but images of shape "
                f"{tuple(shape)} have {int(np.prod(shape))}."
            )
        arr = arr.reshape((arr.shape[0],) + tuple(shape))
    if channels_required and arr.ndim != 4:
        raise ValueError(
            f"{name} must have shape (n, h, w, c) with channels last, got shape "
            f"{arr.shape}."
        )
    if arr.ndim not in (3, 4):
        raise ValueError(
            f"{name} must have shape (n, h, w) or (n, h, w, c), got shape {arr.shape}."
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one image, got shape {arr.shape}.")
    arr = arr.astype(np.float32, copy=False) if arr.dtype != np.float64 else arr
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must not contain NaN or infinite values.")
    return arr, flat, columns


def _check_same_channels(est, X):
    n_c = X.shape[3] if X.ndim == 4 else None
    if n_c != est.n_channels_in_:
        def describe(c):
            return "(n, h, w)" if c is None else f"(n, h, w, {c})"

        raise ValueError(
            f"X has shape {X.shape} but {type(est).__name__} was fitted on images "
            f"{describe(est.n_channels_in_)}."
        )


def _check_eps(eps):
    if (
        isinstance(eps, bool)
        or not isinstance(eps, numbers.Real)
        or not np.isfinite(eps)
        or not 0 <= eps < 1
    ):
        raise ValueError(f"eps must be a number in [0, 1), got {eps!r}.")
    return float(eps)


def _reduce_axes(X):
    """Axes over which dataset statistics pool: all but the channel axis."""
    return (0, 1, 2) if X.ndim == 4 else None


class _ImageTransformer(TransformerMixin, BaseEstimator):
    """Image input and output shared by the transformers of this module."""

    _channels_required = False

    def _fit_images(self, X):
        """Validate the training images and remember their shape."""
        shape = _check_image_shape(self.image_shape)
        X, _, columns = _check_images(
            X, channels_required=self._channels_required, flat_shape=shape
        )
        if shape is not None and X.shape[1:] != shape:
            raise ValueError(
                f"X holds images of shape {X.shape[1:]} but image_shape is {shape}."
            )
        self.image_shape_ = tuple(int(v) for v in X.shape[1:])
        self.n_features_in_ = int(np.prod(self.image_shape_))
        if columns is not None:
            self.feature_names_in_ = np.asarray(columns, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return X

    def _transform_images(self, X):
        """Validate images to transform; flat rows take the shape seen in fit."""
        X, flat, _ = _check_images(
            X, channels_required=self._channels_required, flat_shape=self.image_shape_
        )
        _check_same_channels(self, X)
        return X, flat

    def _output(self, out, flat):
        """Images, or flat rows for flat input and for DataFrame output."""
        if not (flat or _dataframe_output(self)):
            return out
        if out.shape[1:] != self._output_shape():
            raise ValueError(
                f"{type(self).__name__} was fitted on images of shape "
                f"{self.image_shape_}; with flat or DataFrame output (set_output) "
                f"it transforms images of that shape only, got {out.shape[1:]}."
            )
        return out.reshape(len(out), -1)

    def _output_shape(self):
        return self.image_shape_

    def get_feature_names_out(self, input_features=None):
        """Names of the output pixels, ``pixel_<row>_<col>[_<channel>]``.

        With a DataFrame output (``set_output(transform="pandas")``) these
        name the columns of the flattened output images.

        Parameters
        ----------
        input_features : array-like of str, default=None
            Ignored apart from its length, which must be the number of input
            pixels: pixels are named by their position.

        Returns
        -------
        names : ndarray of str
        """
        check_is_fitted(self, "image_shape_")
        if input_features is not None and len(input_features) != self.n_features_in_:
            raise ValueError(
                f"input_features has {len(input_features)} names but "
                f"{type(self).__name__} was fitted on {self.n_features_in_} pixels."
            )
        return _pixel_names(self._output_shape())


class ChannelRatio(_ImageTransformer):
    """Ratio of two channels, ``X[..., numerator] / X[..., denominator]``.

    The preprint's "FRET-like" image is CFP / YFP (inverse of ERK activity).
    Where the denominator is 0 (the masked background, or a dark pixel) the
    result is ``fill_value`` instead of a division by zero, so the background
    stays 0. Stateless apart from remembering the number of channels.

    Parameters
    ----------
    numerator : int, default=0
        Channel index of the numerator (negative counts from the end).
    denominator : int, default=1
        Channel index of the denominator.
    fill_value : float, default=0.0
        Value where the denominator is 0.
    keepdims : bool, default=False
        Return ``(n, h, w, 1)`` instead of ``(n, h, w)``.
    image_shape : tuple of int, default=None
        ``(h, w, c)`` used to read flat ``(n, h * w * c)`` rows as images in
        ``fit`` (see the module documentation); not needed for image arrays
        or for DataFrames with ``pixel_<row>_<col>_<channel>`` columns.

    Attributes
    ----------
    n_channels_in_ : int
        Number of channels of the images seen in ``fit``.
    image_shape_ : tuple of int
        ``(h, w, c)`` of the images seen in ``fit``.
    n_features_in_ : int
        Pixels per image seen in ``fit``, ``h * w * c``.

    Examples
    --------
    >>> import numpy as np
    >>> from ai4cellfate.preprocessing import ChannelRatio
    >>> X = np.zeros((1, 2, 2, 2), np.float32)
    >>> X[0, 0, 0] = [3.0, 2.0]          # one nucleus pixel; the rest is background
    >>> ChannelRatio(0, 1).fit_transform(X)[0]
    array([[1.5, 0. ],
           [0. , 0. ]], dtype=float32)
    """

    _channels_required = True

    def __init__(
        self, numerator=0, denominator=1, *, fill_value=0.0, keepdims=False, image_shape=None
    ):
        self.numerator = numerator
        self.denominator = denominator
        self.fill_value = fill_value
        self.keepdims = keepdims
        self.image_shape = image_shape

    def _output_shape(self):
        return self.image_shape_[:2] + ((1,) if self.keepdims else ())

    def _check_params(self, n_c):
        for name in ("numerator", "denominator"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise TypeError(f"{name} must be an int channel index, got {v!r}.")
            if not -n_c <= v < n_c:
                raise ValueError(
                    f"{name}={v}: channel {v} does not exist, the images have "
                    f"{n_c} channels."
                )
        if int(self.numerator) % n_c == int(self.denominator) % n_c:
            raise ValueError(
                f"numerator and denominator must be different channels, both are "
                f"channel {int(self.numerator) % n_c}."
            )
        if (
            isinstance(self.fill_value, bool)
            or not isinstance(self.fill_value, numbers.Real)
            or not np.isfinite(self.fill_value)
        ):
            raise ValueError(f"fill_value must be a finite number, got {self.fill_value!r}.")

    def fit(self, X, y=None):
        """Check the channel indices against ``X``.

        Parameters
        ----------
        X : array-like of shape (n, h, w, c) or (n, h * w * c)
            Images, channels last, ``c >= 2``, or flat rows of them.
        y : ignored

        Returns
        -------
        self
        """
        X = self._fit_images(X)
        self._check_params(X.shape[3])
        self.n_channels_in_ = int(X.shape[3])
        return self

    def transform(self, X):
        """Divide one channel by another.

        Parameters
        ----------
        X : array-like of shape (n, h, w, c) or (n, h * w * c)
            Images with the number of channels seen in ``fit``, or flat rows
            of images of the shape seen in ``fit``.

        Returns
        -------
        ndarray of shape (n, h, w) or (n, h, w, 1), float32
            Flat ``(n, h * w)`` rows for flat input or a DataFrame output.
        """
        check_is_fitted(self, "n_channels_in_")
        X, flat = self._transform_images(X)
        self._check_params(X.shape[3])
        num = X[..., self.numerator].astype(np.float64)
        den = X[..., self.denominator].astype(np.float64)
        out = np.full(num.shape, float(self.fill_value))
        np.divide(num, den, out=out, where=den != 0)
        out = out.astype(np.float32)
        return self._output(out[..., None] if self.keepdims else out, flat)


class MaxNormalizer(_ImageTransformer):
    """Divide images by the maximum learnt from the training images.

    The preprint's "divide by the dataset-wide maximum" (method-spec section
    1, step 6), fitted on training data only. The scale is the largest
    absolute pixel value seen in ``fit`` (the maximum, for the non-negative
    images of microscopy), per channel or over all channels. Test images
    brighter than every training image give values above 1 unless ``clip``.

    Parameters
    ----------
    per_channel : bool, default=False
        For ``(n, h, w, c)`` images: one maximum per channel instead of one
        over all channels.
    clip : bool, default=False
        Clip the result to [-1, 1].
    image_shape : tuple of int, default=None
        ``(h, w)`` or ``(h, w, c)`` used to read flat ``(n, h * w * c)`` rows
        as images in ``fit`` (see the module documentation).

    Attributes
    ----------
    max_ : float or ndarray of shape (c,)
        The scale learnt in ``fit``.
    n_channels_in_ : int or None
        Channels of the images seen in ``fit`` (None for ``(n, h, w)``).
    image_shape_ : tuple of int
        ``(h, w)`` or ``(h, w, c)`` of the images seen in ``fit``.
    n_features_in_ : int
        Pixels per image seen in ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from ai4cellfate.preprocessing import MaxNormalizer
    >>> train = np.array([[[0.0, 2.0], [4.0, 1.0]]])
    >>> norm = MaxNormalizer().fit(train)
    >>> float(norm.max_), norm.transform(train)[0].tolist()
    (4.0, [[0.0, 0.5], [1.0, 0.25]])
    >>> float(norm.transform(train * 2)[0, 1, 0])   # new data: the training scale
    2.0
    """

    def __init__(self, *, per_channel=False, clip=False, image_shape=None):
        self.per_channel = per_channel
        self.clip = clip
        self.image_shape = image_shape

    def fit(self, X, y=None):
        """Learn the maximum absolute pixel value of the training images.

        Parameters
        ----------
        X : array-like of shape (n, h, w), (n, h, w, c) or (n, h * w * c)
            Training images, or flat rows of them.
        y : ignored

        Returns
        -------
        self
        """
        if not isinstance(self.per_channel, (bool, np.bool_)):
            raise TypeError(f"per_channel must be a bool, got {self.per_channel!r}.")
        if not isinstance(self.clip, (bool, np.bool_)):
            raise TypeError(f"clip must be a bool, got {self.clip!r}.")
        X = self._fit_images(X)
        axes = _reduce_axes(X) if self.per_channel else None
        m = np.max(np.abs(X), axis=axes).astype(np.float64)
        if np.any(m == 0):
            warnings.warn(
                "MaxNormalizer: the training images are all zero"
                + (" in some channel" if np.ndim(m) else "")
                + "; that scale is set to 1.",
                UserWarning,
                stacklevel=2,
            )
            m = np.where(m == 0, 1.0, m)
        self.max_ = float(m) if np.ndim(m) == 0 else m
        self.n_channels_in_ = int(X.shape[3]) if X.ndim == 4 else None
        return self

    def transform(self, X):
        """Divide by the learnt maximum.

        Parameters
        ----------
        X : array-like of shape (n, h, w), (n, h, w, c) or (n, h * w * c)
            Images shaped like the training images, or flat rows of them.

        Returns
        -------
        ndarray of the same shape, float32
            Flat rows for a DataFrame output (``set_output``).
        """
        check_is_fitted(self, "max_")
        X, flat = self._transform_images(X)
        out = (X / np.asarray(self.max_)).astype(np.float32)
        if self.clip:
            np.clip(out, -1.0, 1.0, out=out)
        return self._output(out, flat)


class IntensityStretch(_ImageTransformer):
    """Stretch nonzero (nucleus) pixels to ``[eps, 1]``; background stays 0.

    The preprint's intensity stretch (method-spec section 1, step 7)::

        x' = (x - lo) / (hi - lo) * (1 - eps) + eps    for x != 0
        x' = 0                                          for x == 0

    so that the dimmest nucleus pixel maps to ``eps`` (still distinct from the
    background) and the brightest to 1. Where ``lo`` and ``hi`` come from:

    - ``mode="dataset"``: the minimum and maximum over the nonzero pixels of
      all training images, learnt in ``fit`` (per channel for
      ``(n, h, w, c)``). This is the leak-free version of the reference
      code's stretch, which pooled train and test images. To stretch each
      time point separately as the reference did, fit one transformer per
      time point (e.g. per value of ``FateDataset.table["time_point"]``).
    - ``mode="image"``: each image's own nonzero minimum and maximum, so
      every crop spans ``[eps, 1]`` (nothing is learnt; only the shape is
      checked).

    Parameters
    ----------
    mode : {"dataset", "image"}, default="dataset"
        Where the stretch range comes from, see above.
    eps : float, default=0.001
        Value of the dimmest nucleus pixel, in [0, 1).
    clip : bool, default=True
        In ``"dataset"`` mode, clip nonzero pixels of new images that fall
        outside the training range to ``[eps, 1]``.
    image_shape : tuple of int, default=None
        ``(h, w)`` or ``(h, w, c)`` used to read flat ``(n, h * w * c)`` rows
        as images in ``fit`` (see the module documentation).

    Attributes
    ----------
    data_min_, data_max_ : float or ndarray of shape (c,)
        Nonzero minimum and maximum of the training images (``"dataset"``
        mode; NaN in ``"image"`` mode).
    n_channels_in_ : int or None
        Channels of the images seen in ``fit`` (None for ``(n, h, w)``).
    image_shape_ : tuple of int
        ``(h, w)`` or ``(h, w, c)`` of the images seen in ``fit``.
    n_features_in_ : int
        Pixels per image seen in ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from ai4cellfate.preprocessing import IntensityStretch
    >>> train = np.array([[[0.0, 0.2], [0.6, 1.0]]])
    >>> st = IntensityStretch(eps=0.0).fit(train)
    >>> st.transform(train)[0].round(2).tolist()
    [[0.0, 0.0], [0.5, 1.0]]
    >>> IntensityStretch(mode="image", eps=0.0).fit_transform(train / 2)[0].round(2).tolist()
    [[0.0, 0.0], [0.5, 1.0]]
    """

    def __init__(self, mode="dataset", *, eps=0.001, clip=True, image_shape=None):
        self.mode = mode
        self.eps = eps
        self.clip = clip
        self.image_shape = image_shape

    def _check_params(self):
        if self.mode not in ("dataset", "image"):
            raise ValueError(f"mode must be 'dataset' or 'image', got {self.mode!r}.")
        if not isinstance(self.clip, (bool, np.bool_)):
            raise TypeError(f"clip must be a bool, got {self.clip!r}.")
        return _check_eps(self.eps)

    def fit(self, X, y=None):
        """Learn the nonzero intensity range of the training images.

        Parameters
        ----------
        X : array-like of shape (n, h, w), (n, h, w, c) or (n, h * w * c)
            Training images, background exactly 0, or flat rows of them.
        y : ignored

        Returns
        -------
        self
        """
        self._check_params()
        X = self._fit_images(X)
        self.n_channels_in_ = int(X.shape[3]) if X.ndim == 4 else None
        if self.mode == "image":
            self.data_min_ = self.data_max_ = np.nan
            return self
        axes = _reduce_axes(X)
        nz = X != 0
        if not nz.any(axis=axes).all():
            raise ValueError(
                "IntensityStretch(mode='dataset') needs nonzero pixels in the training "
                "images" + (" in every channel" if X.ndim == 4 else "") + "; X is all zero."
            )
        lo = np.min(np.where(nz, X, np.inf), axis=axes).astype(np.float64)
        hi = np.max(np.where(nz, X, -np.inf), axis=axes).astype(np.float64)
        self.data_min_ = float(lo) if np.ndim(lo) == 0 else lo
        self.data_max_ = float(hi) if np.ndim(hi) == 0 else hi
        return self

    def transform(self, X):
        """Stretch the nonzero pixels; keep the background at 0.

        Parameters
        ----------
        X : array-like of shape (n, h, w), (n, h, w, c) or (n, h * w * c)
            Images shaped like the training images, or flat rows of them.

        Returns
        -------
        ndarray of the same shape, float32
            Flat rows for a DataFrame output (``set_output``).
        """
        check_is_fitted(self, "n_channels_in_")
        eps = self._check_params()
        X, flat = self._transform_images(X)
        X = X.astype(np.float64)
        nz = X != 0
        if self.mode == "dataset":
            lo, hi = np.asarray(self.data_min_), np.asarray(self.data_max_)
        else:
            # per image (and channel): reduce over the spatial axes only
            axes = (1, 2)
            lo = np.min(np.where(nz, X, np.inf), axis=axes, keepdims=True)
            hi = np.max(np.where(nz, X, -np.inf), axis=axes, keepdims=True)
            empty = ~np.isfinite(lo)
            lo = np.where(empty, 0.0, lo)
            hi = np.where(empty, 1.0, hi)
        span = hi - lo
        # a constant range maps every nonzero pixel to 1
        safe = np.where(span > 0, span, 1.0)
        scaled = np.where(span > 0, (X - lo) / safe, 1.0) * (1.0 - eps) + eps
        if self.clip or self.mode == "image":
            scaled = np.clip(scaled, eps, 1.0)
        return self._output(np.where(nz, scaled, 0.0).astype(np.float32), flat)
