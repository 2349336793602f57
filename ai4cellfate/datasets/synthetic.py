"""Synthetic nucleus crops whose fate depends on size and brightness."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
from scipy import ndimage
from sklearn.utils import check_random_state

__all__ = ["make_nuclei"]


def _as_image_size(image_size):
    if isinstance(image_size, numbers.Integral):
        image_size = (int(image_size), int(image_size))
    try:
        h, w = (int(s) for s in image_size)
    except (TypeError, ValueError):
        raise ValueError(
            f"image_size must be an int or a pair of ints, got {image_size!r}."
        ) from None
    if h < 8 or w < 8:
        raise ValueError(f"image_size must be at least 8 x 8 pixels, got {h} x {w}.")
    return h, w


def make_nuclei(
    n_samples=200,
    image_size=20,
    *,
    class_sep=3.3,
    direction=(1.0, 1.0),
    weights=None,
    texture=0.15,
    return_params=False,
    random_state=None,
):
    """Generate nucleus-like crops whose fate depends on size and brightness.

    In the spirit of :func:`sklearn.datasets.make_classification`: every sample
    is a textured elliptical blob on a zero background (as after masking with a
    segmentation), intensities in [0, 1]. Two hidden traits, nucleus size and
    brightness, are drawn from unit-variance Gaussians whose means differ
    between the two fates; cells that will divide (fate 1) are larger and
    brighter on average.

    With the defaults the task is clear but not trivial: the two classes are
    ``class_sep`` standard deviations apart in the (size, brightness) plane, so
    the Bayes-optimal balanced accuracy is ``Phi(class_sep / 2)`` (about 0.95
    for ``class_sep=3.3``), and a logistic regression on the measured area and
    mean intensity gets close to it.

    Parameters
    ----------
    n_samples : int, default=200
        Number of crops.
    image_size : int or (int, int), default=20
        Crop height and width in pixels (at least 8). Nucleus size scales with
        the smaller side (a 20-px crop holds a nucleus of radius about 4.5 px).
    class_sep : float, default=3.3
        Distance between the class means of the standardised traits. Smaller
        values give more overlap (0 makes fate independent of the image).
    direction : (float, float), default=(1, 1)
        Direction of the class separation in the (size, brightness) plane of
        the standardised traits, normalised to unit length: ``(1, 1)`` moves
        both traits equally, ``(1, 0)`` makes only size carry the fate, and
        ``(2, 1)`` makes size carry more of it than brightness (then size
        and brightness are the principal axes of the data more nearly, which
        helps a 2-D latent space give each trait its own dimension).
    weights : sequence of two floats, default=None
        Class proportions ``(fate 0, fate 1)``; ``None`` gives balanced
        classes. The preprint's data are about ``(0.83, 0.17)``.
    texture : float, default=0.15
        Relative amplitude of the smooth intensity texture inside a nucleus.
    return_params : bool, default=False
        Also return a DataFrame with each sample's hidden traits and its true
        ``area`` (pixels) and ``mean_intensity``.
    random_state : int, RandomState instance or None, default=None
        Seed for reproducible output.

    Returns
    -------
    X : ndarray of shape (n_samples, height, width), float32
        The crops, values in [0, 1], background exactly 0.
    y : ndarray of shape (n_samples,), int64
        Fate labels, 0 (no division) or 1 (division).
    params : pandas.DataFrame
        Only when ``return_params`` is true: columns ``size_trait``,
        ``brightness_trait``, ``radius``, ``brightness``, ``area``,
        ``mean_intensity``.

    Examples
    --------
    >>> from ai4cellfate.datasets import make_nuclei
    >>> X, y = make_nuclei(100, random_state=0)
    >>> X.shape, X.dtype.name, sorted(set(y.tolist()))
    ((100, 20, 20), 'float32', [0, 1])
    >>> bool(X.min() >= 0 and X.max() <= 1)
    True
    """
    if not isinstance(n_samples, numbers.Integral) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
    h, w = _as_image_size(image_size)
    if not np.isfinite(class_sep) or class_sep < 0:
        raise ValueError(f"class_sep must be a finite number >= 0, got {class_sep!r}.")
    direction = np.asarray(direction, dtype=float) if np.ndim(direction) == 1 else None
    if direction is None or direction.shape != (2,) or not np.all(np.isfinite(direction)) \
            or not np.any(direction):
        raise ValueError(
            "direction must be two finite numbers, not both 0 (size and brightness "
            "weights of the class separation)."
        )
    direction = direction / np.linalg.norm(direction)
    if not np.isfinite(texture) or not 0 <= texture < 1:
        raise ValueError(f"texture must be in [0, 1), got {texture!r}.")
    if weights is None:
        p1 = 0.5
    else:
        weights = np.asarray(weights, dtype=float)
        if weights.shape != (2,) or np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError(
                f"weights must be two non-negative class proportions, got {weights!r}."
            )
        p1 = float(weights[1] / weights.sum())
    rng = check_random_state(random_state)

    n1 = int(round(n_samples * p1))
    y = np.r_[np.zeros(n_samples - n1, dtype=np.int64), np.ones(n1, dtype=np.int64)]
    rng.shuffle(y)

    # Hidden traits: unit-variance Gaussians, class means class_sep apart
    # along ``direction`` in the (size, brightness) plane.
    shift = (y - 0.5)[:, None] * class_sep * direction[None, :]
    traits = rng.normal(size=(n_samples, 2)) + shift
    scale = min(h, w) / 20.0
    radius = np.clip(4.5 + 0.6 * traits[:, 0], 2.0, 7.5) * scale
    brightness = np.clip(0.55 + 0.12 * traits[:, 1], 0.12, 0.92)

    # Elliptical masks with random orientation, elongation and a small jitter.
    elong = rng.uniform(1.0, 1.35, size=n_samples)
    theta = rng.uniform(0, np.pi, size=n_samples)
    cy = (h - 1) / 2 + rng.uniform(-1, 1, size=n_samples) * scale
    cx = (w - 1) / 2 + rng.uniform(-1, 1, size=n_samples) * scale
    a = radius * np.sqrt(elong)  # semi-axes with area pi * radius^2
    b = radius / np.sqrt(elong)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    dy = yy[None] - cy[:, None, None]
    dx = xx[None] - cx[:, None, None]
    c, s = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    u = (dx * c + dy * s) / a[:, None, None]
    v = (-dx * s + dy * c) / b[:, None, None]
    r2 = u**2 + v**2
    mask = r2 <= 1.0

    # Smooth texture (chromatin-like) and a gentle radial falloff.
    noise = ndimage.gaussian_filter(
        rng.normal(size=(n_samples, h, w)), sigma=(0, 1.2 * scale, 1.2 * scale)
    )
    noise /= noise.std(axis=(1, 2), keepdims=True) + 1e-12
    profile = 1.0 - 0.2 * r2
    img = brightness[:, None, None] * profile * (1.0 + texture * noise)
    X = np.where(mask, np.clip(img, 0.02, 1.0), 0.0).astype(np.float32)

    if not return_params:
        return X, y
    area = mask.sum(axis=(1, 2))
    mean_int = X.sum(axis=(1, 2)) / np.maximum(area, 1)
    params = pd.DataFrame(
        {
            "size_trait": traits[:, 0],
            "brightness_trait": traits[:, 1],
            "radius": radius,
            "brightness": brightness,
            "area": area,
            "mean_intensity": mean_int,
        }
    )
    return X, y, params
