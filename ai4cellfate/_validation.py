"""Input checks shared by the estimator, the command line and the studies.

Every check raises before any work starts, with a message that names the
argument and what is wrong with it.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["check_images", "check_number", "check_int", "check_random_state_param",
           "check_labels"]

MIN_SIDE = 4


def check_number(value, name, *, low=None, high=None, low_open=False, high_open=False):
    """Return ``value`` as float after checking it is a finite real in range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r} ({type(value).__name__}).")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value!r}.")
    if low is not None and (value < low or (low_open and value == low)):
        op = ">" if low_open else ">="
        raise ValueError(f"{name} must be {op} {low}; got {value!r}.")
    if high is not None and (value > high or (high_open and value == high)):
        op = "<" if high_open else "<="
        raise ValueError(f"{name} must be {op} {high}; got {value!r}.")
    return value


def check_int(value, name, *, low=None):
    """Return ``value`` as int after checking it is an integer >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r} ({type(value).__name__}).")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}; got {value}.")
    return value


def check_images(X, *, image_shape=None, name="X", value_range=(0.0, 1.0)):
    """Validate an image stack and return it as ``(n, H, W, C)`` float32.

    Parameters
    ----------
    X : array-like
        ``(n, H, W)``, ``(n, H, W, C)``, or flat ``(n, H * W * C)`` when
        ``image_shape`` is given.
    image_shape : tuple of int, optional
        ``(H, W)`` or ``(H, W, C)``: required for flat input, checked
        against otherwise.
    name : str, default="X"
        Argument name used in error messages.
    value_range : tuple of float or None, default=(0, 1)
        Inclusive range the pixel values must lie in; ``None`` skips the check.

    Returns
    -------
    images : ndarray of shape (n, H, W, C), float32
    layout : {"hw", "hwc", "flat"}
        The layout ``X`` came in, so outputs can be returned the same way.

    Raises
    ------
    TypeError
        Non-numeric or integer data.
    ValueError
        Wrong number of dimensions, empty, non-finite or out-of-range values,
        images smaller than 4 x 4, or a shape that differs from ``image_shape``.
    """
    if hasattr(X, "tocsr") or hasattr(X, "toarray"):  # scipy.sparse
        raise TypeError(
            f"{name} is a sparse matrix; sparse input is not supported. Pass dense "
            "images, e.g. X.toarray() reshaped to (n, height, width)."
        )
    if hasattr(X, "to_numpy"):  # pandas
        if getattr(X, "ndim", 2) == 1 and len(X) and isinstance(X.iloc[0], (np.ndarray, list)):
            # A Series holding one image per row: stack them.
            try:
                X = np.stack([np.asarray(v) for v in X.to_list()])
            except ValueError:
                raise ValueError(
                    f"{name} is a pandas Series of images of different shapes; every "
                    "image must have the same shape (height, width[, channels])."
                ) from None
        else:
            X = X.to_numpy()
    try:
        A = np.asarray(X)
    except Exception as exc:  # ragged nested lists and the like
        raise ValueError(
            f"{name} could not be converted to an array (are the images or rows of "
            f"different sizes?): {exc}"
        ) from None
    if A.dtype == object or A.dtype.kind in "USV":
        try:
            A = A.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"{name} must be numeric image data; got an array of dtype {A.dtype} "
                "with non-numeric entries."
            ) from None
    if A.dtype.kind == "c":
        raise TypeError(f"{name} must be real-valued; got complex dtype {A.dtype}.")
    if A.dtype.kind in "iu":
        raise TypeError(
            f"{name} has integer dtype {A.dtype}; CellFateAAE expects float intensities "
            "in [0, 1]. Convert first, e.g. X / 255 for 8-bit or X / 65535 for 16-bit "
            "images, or use ai4cellfate.preprocessing.MaxNormalizer."
        )
    if A.dtype.kind == "b":
        A = A.astype(np.float32)
    if A.dtype.kind != "f":
        raise TypeError(f"{name} must be numeric image data; got dtype {A.dtype}.")

    shape = None
    if image_shape is not None:
        shape = tuple(int(s) for s in image_shape)
        if len(shape) == 2:
            shape = shape + (1,)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(
                f"image_shape must be (height, width) or (height, width, channels); "
                f"got {image_shape!r}."
            )
    if A.ndim == 2:
        if shape is None:
            raise ValueError(
                f"{name} is 2-D with shape {A.shape}: pass images as (n, height, width) "
                "or (n, height, width, channels), or set image_shape to read flat rows "
                "as images."
            )
        if A.shape[1] != int(np.prod(shape)):
            raise ValueError(
                f"{name} has {A.shape[1]} features per sample but image_shape {shape} "
                f"needs {int(np.prod(shape))}."
            )
        layout = "flat"
        A = A.reshape((A.shape[0],) + shape)
    elif A.ndim == 3:
        layout = "hw"
        A = A[..., None]
    elif A.ndim == 4:
        layout = "hwc"
    else:
        raise ValueError(
            f"{name} must have 3 dimensions (n, height, width) or 4 (n, height, width, "
            f"channels); got {A.ndim} dimensions with shape {A.shape}."
        )
    if A.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 samples.")
    if A.size == 0:
        raise ValueError(f"{name} has images of shape {A.shape[1:]}, which hold no pixels.")
    if shape is not None and A.shape[1:] != shape:
        raise ValueError(
            f"{name} has images of shape {A.shape[1:]} (height, width, channels), "
            f"but {shape} was expected."
        )
    if min(A.shape[1:3]) < MIN_SIDE:
        raise ValueError(
            f"{name} has images of {A.shape[1]} x {A.shape[2]} pixels; the network needs "
            f"at least {MIN_SIDE} x {MIN_SIDE}."
        )
    finite = np.isfinite(A)
    if not finite.all():
        bad = int(A.size - finite.sum())
        raise ValueError(f"{name} contains {bad} NaN or infinite values.")
    if A.dtype.itemsize > 4:
        big = float(np.max(np.abs(A)))
        if big > float(np.finfo(np.float32).max):
            raise ValueError(
                f"{name} has values up to {big:g}, beyond the float32 range (3.4e38) the "
                "network computes in; intensities must lie in [0, 1]."
            )
    A = A.astype(np.float32, copy=False)
    if value_range is not None:
        lo, hi = value_range
        amin, amax = float(A.min()), float(A.max())
        if amin < lo or amax > hi:
            raise ValueError(
                f"{name} has values in [{amin:g}, {amax:g}] but intensities must lie in "
                f"[{lo:g}, {hi:g}]; rescale first (e.g. "
                "ai4cellfate.preprocessing.MaxNormalizer or IntensityStretch)."
            )
    return A, layout


def check_random_state_param(value, name="random_state"):
    """Check a ``random_state`` before any work: None, an int in [0, 2**32 - 1],
    or a NumPy ``RandomState``."""
    if value is None or isinstance(value, np.random.RandomState):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be None, an integer in [0, 2**32 - 1] or a numpy RandomState; "
            f"got {value!r} ({type(value).__name__})."
        )
    if not 0 <= int(value) <= 2**32 - 1:
        raise ValueError(f"{name} must be in [0, 2**32 - 1]; got {int(value)}.")
    return int(value)


def check_labels(y, name="y"):
    """Refuse labels that are missing (None, NaN) or mix types (e.g. str and int)."""
    y = np.asarray(y)
    if y.dtype == object:
        missing = [i for i, v in enumerate(y.tolist()) if v is None
                   or (isinstance(v, float) and v != v)]
        if missing:
            raise ValueError(
                f"{name} contains {len(missing)} missing labels (None or NaN), first at "
                f"position {missing[0]}; drop those samples or give them a label."
            )
        kinds = sorted({("number" if isinstance(v, numbers.Number) else type(v).__name__)
                        for v in y.tolist()})
        if len(kinds) > 1:
            raise ValueError(
                f"{name} mixes label types ({', '.join(kinds)}); use one type for every "
                "label, e.g. all strings or all integers."
            )
    elif y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise ValueError(f"{name} contains NaN or infinite labels.")
    return y
