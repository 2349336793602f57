"""Hand-picked per-cell region features, the preprint's tabular baseline.

:class:`RegionFeatures` measures every crop with scikit-image's
:func:`~skimage.measure.regionprops` (shape) and the pixels under the cell
mask (intensity), giving the per-cell features that the preprint feeds to its
hand-picked baselines (spec section 7).
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from scipy import ndimage
from skimage.measure import regionprops
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

__all__ = ["RegionFeatures", "SHAPE_FEATURES"]

#: Shape features, in the order they are reported.
SHAPE_FEATURES = (
    "area",
    "perimeter",
    "major_axis_length",
    "minor_axis_length",
    "eccentricity",
    "equivalent_diameter",
    "aspect_ratio",
    "solidity",
    "circularity",
)
_INTENSITY = ("intensity_mean", "intensity_std", "integrated_intensity")
# The preprint's seven shape features (no solidity or circularity).
_PREPRINT_SHAPE = (
    "major_axis_length",
    "minor_axis_length",
    "eccentricity",
    "equivalent_diameter",
    "perimeter",
    "area",
    "aspect_ratio",
)
_COMPONENTS = ("centre", "largest")
_STRUCTURE = np.ones((3, 3), dtype=bool)  # 8-connectivity


def _available_features(n_channels, channel_names):
    """All feature names for ``n_channels`` channels, in output order."""
    names = []
    if n_channels > 1:
        for c in channel_names:
            names += [f"{c}_{f}" for f in _INTENSITY]
        if n_channels == 2:
            names.append("intensity_ratio")
    names += list(_INTENSITY)
    names += list(SHAPE_FEATURES)
    return names


def _default_features(n_channels, channel_names):
    if n_channels == 1:
        return list(_INTENSITY) + list(SHAPE_FEATURES)
    if n_channels == 2:
        c0, c1 = channel_names
        return [
            f"{c0}_intensity_mean",
            f"{c0}_intensity_std",
            f"{c1}_intensity_mean",
            f"{c1}_intensity_std",
            "intensity_ratio",
            "intensity_mean",
            *_PREPRINT_SHAPE,
        ]
    return _available_features(n_channels, channel_names)


def _select_component(mask, component):
    """Boolean mask of the cell: one 8-connected component of ``mask``."""
    labels, n = ndimage.label(mask, structure=_STRUCTURE)
    if n <= 1:
        return labels.astype(np.uint8), n
    if component == "centre":
        h, w = mask.shape
        rows = {(h - 1) // 2, h // 2}
        cols = {(w - 1) // 2, w // 2}
        for r in sorted(rows):
            for c in sorted(cols):
                if labels[r, c]:
                    return (labels == labels[r, c]).astype(np.uint8), n
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return (labels == int(np.argmax(sizes))).astype(np.uint8), n


def _measure_chunk(X, masks, threshold, component, index, need):
    """Measure crops ``X`` (n, H, W, C); returns (values (n, len(index)), n_empty)."""
    n, _, _, n_channels = X.shape
    out = np.zeros((n, len(index)), dtype=np.float64)
    n_empty = 0
    need_moments = need & {
        "major_axis_length",
        "minor_axis_length",
        "eccentricity",
        "aspect_ratio",
    }
    need_perimeter = need & {"perimeter", "circularity"}
    for i in range(n):
        img = X[i]
        if masks is None:
            fg = (img > threshold).any(axis=-1)
        else:
            fg = masks[i]
        if not fg.any():
            n_empty += 1
            continue
        cell, _ = _select_component(fg, component)
        values = {}
        pix = img[cell.astype(bool)]  # (n_pixels, C)
        area = float(pix.shape[0])
        total = pix.sum(axis=1)
        values["intensity_mean"] = total.mean()
        values["intensity_std"] = total.std()
        values["integrated_intensity"] = total.sum()
        if n_channels > 1:
            means = pix.mean(axis=0)
            stds = pix.std(axis=0)
            sums = pix.sum(axis=0)
            for c in range(n_channels):
                values[("ch", c, "intensity_mean")] = means[c]
                values[("ch", c, "intensity_std")] = stds[c]
                values[("ch", c, "integrated_intensity")] = sums[c]
            if n_channels == 2:
                values["intensity_ratio"] = means[0] / means[1] if means[1] > 0 else 0.0
        region = regionprops(cell)[0]
        values["area"] = float(region.area)
        if "equivalent_diameter" in need:
            values["equivalent_diameter"] = region.equivalent_diameter_area
        if need_perimeter:
            perimeter = float(region.perimeter)
            values["perimeter"] = perimeter
            values["circularity"] = (
                4.0 * np.pi * area / perimeter**2 if perimeter > 0 else 1.0
            )
        if need_moments:
            major = float(region.axis_major_length)
            minor = float(region.axis_minor_length)
            values["major_axis_length"] = major
            values["minor_axis_length"] = minor
            values["eccentricity"] = float(region.eccentricity)
            values["aspect_ratio"] = major / max(minor, 1.0)
        if "solidity" in need:
            values["solidity"] = float(region.solidity)
        for j, key in enumerate(index):
            out[i, j] = values[key]
    return out, n_empty


class RegionFeatures(TransformerMixin, BaseEstimator):
    """Hand-picked per-cell features of nucleus crops (regionprops-style).

    Every crop is reduced to one cell: the pixels of its mask (the given
    ``masks``, or the pixels above ``threshold`` in any channel: crops are
    background-zeroed) are split into 8-connected components and the
    component at the crop centre is kept (the largest one when none covers
    the centre, or always with ``component="largest"``). Shape features come
    from :func:`skimage.measure.regionprops` on that component, intensity
    features from the crop's pixels under it.

    Features (``get_feature_names_out``), lengths in pixels:

    - ``intensity_mean``, ``intensity_std`` (population std) and
      ``integrated_intensity`` (sum) of the cell's pixel intensities; with
      several channels they are computed on the sum of the channels, and
      ``<channel>_intensity_mean`` / ``_intensity_std`` /
      ``_integrated_intensity`` on each channel;
    - ``intensity_ratio`` (two channels only): the cell-wide ratio of the
      first to the second channel's mean intensity (CFP / YFP in the
      preprint, the "FRET" feature; 0 when the second channel is 0);
    - ``area`` (pixel count), ``perimeter``, ``major_axis_length``,
      ``minor_axis_length``, ``eccentricity``, ``equivalent_diameter``
      (of the circle with the same area) and ``solidity`` (area over convex
      area), as in :func:`~skimage.measure.regionprops`;
    - ``aspect_ratio`` = major / minor axis length (the minor axis floored at
      one pixel so that one-pixel-wide regions stay finite);
    - ``circularity`` = 4 pi area / perimeter^2 (1 for a single pixel).

    By default (``features=None``) one-channel crops give all twelve of
    these; two-channel crops (e.g. CFP and YFP) give the preprint's 13:
    both channels' mean and std, ``intensity_ratio``, ``intensity_mean``
    and the seven shape features ``major_axis_length``,
    ``minor_axis_length``, ``eccentricity``, ``equivalent_diameter``,
    ``perimeter``, ``area``, ``aspect_ratio``; more channels give every
    available feature. ``features="all"`` asks for every available
    feature, a list of names for those.

    A crop whose mask is empty gets zeros for every feature and a
    :class:`RuntimeWarning` with the number of such crops, so that
    downstream classifiers still run. Without ``masks`` the crops must have a
    background (pixels at or below ``threshold``): when most crops have none,
    the "cell" is the whole window and a :class:`UserWarning` gives the
    fraction of such crops.

    Parameters
    ----------
    features : None, "all" or list of str, default=None
        Which features to return, in this order (see above).
    channel_names : sequence of str, default=None
        Prefixes of the per-channel features for multi-channel crops
        (e.g. ``("cfp", "yfp")``); ``None`` gives ``ch0``, ``ch1``, ...
    threshold : float, default=0.0
        Without ``masks``, a pixel belongs to a cell when its value exceeds
        ``threshold`` in any channel.
    component : {"centre", "largest"}, default="centre"
        Which connected component of the mask is the cell.
    n_jobs : int, default=None
        Number of joblib workers measuring chunks of crops in parallel
        (``None``: one; ``-1``: all processors).

    Attributes
    ----------
    n_channels_ : int
        Number of channels seen in :meth:`fit`.
    image_shape_ : tuple of int
        ``(height, width)`` seen in :meth:`fit`.
    feature_names_out_ : ndarray of str
        The names of the output features.

    Examples
    --------
    >>> from ai4cellfate.datasets import make_nuclei
    >>> from ai4cellfate.features import RegionFeatures
    >>> X, y = make_nuclei(20, random_state=0)
    >>> rf = RegionFeatures()
    >>> F = rf.fit_transform(X)
    >>> F.shape
    (20, 12)
    >>> list(rf.get_feature_names_out()[:4])
    ['intensity_mean', 'intensity_std', 'integrated_intensity', 'area']

    Two channels give the preprint's 13 features:

    >>> import numpy as np
    >>> X2 = np.stack([X, 0.5 * X], axis=-1)
    >>> rf2 = RegionFeatures(channel_names=("cfp", "yfp")).fit(X2)
    >>> len(rf2.get_feature_names_out()), rf2.get_feature_names_out()[4]
    (13, 'intensity_ratio')
    """

    def __init__(
        self,
        features=None,
        *,
        channel_names=None,
        threshold=0.0,
        component="centre",
        n_jobs=None,
    ):
        self.features = features
        self.channel_names = channel_names
        self.threshold = threshold
        self.component = component
        self.n_jobs = n_jobs

    # -- validation -------------------------------------------------------
    @staticmethod
    def _check_images(X, name="X"):
        if isinstance(X, (str, bytes)) or not hasattr(X, "__len__"):
            raise TypeError(f"{name} must be an array of crops, got {type(X).__name__}.")
        try:
            X = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be a numeric array of crops: {err}") from None
        if X.ndim == 3:
            X = X[..., None]
        if X.ndim != 4:
            raise ValueError(
                f"{name} must have shape (n, H, W) or (n, H, W, C), got {X.shape}."
            )
        if X.shape[0] < 1 or X.shape[1] < 2 or X.shape[2] < 2 or X.shape[3] < 1:
            raise ValueError(
                f"{name} must hold at least one crop of at least 2 x 2 pixels and one "
                f"channel, got shape {X.shape}."
            )
        if not np.all(np.isfinite(X)):
            raise ValueError(f"{name} contains NaN or infinite values.")
        return X

    def _check_params(self, n_channels):
        if not isinstance(self.threshold, numbers.Real) or not np.isfinite(
            self.threshold
        ):
            raise ValueError(f"threshold must be a finite number, got {self.threshold!r}.")
        if self.component not in _COMPONENTS:
            raise ValueError(
                f"component must be one of {_COMPONENTS}, got {self.component!r}."
            )
        if self.n_jobs is not None and (
            not isinstance(self.n_jobs, numbers.Integral) or self.n_jobs == 0
        ):
            raise ValueError(f"n_jobs must be None or a non-zero int, got {self.n_jobs!r}.")
        if self.channel_names is None:
            channel_names = [f"ch{c}" for c in range(n_channels)]
        else:
            if isinstance(self.channel_names, str):
                raise TypeError(
                    "channel_names must be a sequence of strings, not a single string."
                )
            channel_names = [str(c) for c in self.channel_names]
            if len(channel_names) != n_channels:
                raise ValueError(
                    f"channel_names has {len(channel_names)} names but X has "
                    f"{n_channels} channels."
                )
            if len(set(channel_names)) != n_channels:
                raise ValueError(f"channel_names must be unique, got {channel_names}.")
        available = _available_features(n_channels, channel_names)
        if self.features is None:
            names = _default_features(n_channels, channel_names)
        elif isinstance(self.features, str):
            if self.features != "all":
                raise ValueError(
                    f'features must be None, "all" or a list of feature names, got '
                    f"{self.features!r}."
                )
            names = available
        else:
            names = [str(f) for f in self.features]
            unknown = [f for f in names if f not in available]
            if unknown:
                raise ValueError(
                    f"features has unknown names {unknown}; available for "
                    f"{n_channels} channel(s): {available}."
                )
            if len(set(names)) != len(names):
                raise ValueError(f"features has duplicate names: {names}.")
            if not names:
                raise ValueError("features must name at least one feature.")
        return channel_names, names

    # -- sklearn API ------------------------------------------------------
    def fit(self, X, y=None, masks=None):
        """Check the crops and fix the output features.

        Parameters
        ----------
        X : array-like of shape (n_samples, H, W) or (n_samples, H, W, C)
            Crops.
        y : ignored
        masks : ignored
            Accepted for symmetry with :meth:`transform`.

        Returns
        -------
        self : RegionFeatures
            The fitted transformer.
        """
        X = self._check_images(X)
        channel_names, names = self._check_params(X.shape[3])
        self.n_channels_ = X.shape[3]
        self.image_shape_ = tuple(X.shape[1:3])
        self.channel_names_ = channel_names
        self.feature_names_out_ = np.asarray(names, dtype=object)
        return self

    def transform(self, X, masks=None):
        """Measure every crop.

        Parameters
        ----------
        X : array-like of shape (n_samples, H, W) or (n_samples, H, W, C)
            Crops with as many channels as in :meth:`fit`.
        masks : array-like of shape (n_samples, H, W), default=None
            Cell masks (nonzero = cell); ``None`` uses ``X > threshold``.

        Returns
        -------
        F : ndarray of shape (n_samples, n_features_out)
            The features, float64, in the order of
            :meth:`get_feature_names_out`.
        """
        check_is_fitted(self, "feature_names_out_")
        X = self._check_images(X)
        if X.shape[3] != self.n_channels_:
            raise ValueError(
                f"X has {X.shape[3]} channels but RegionFeatures was fitted on "
                f"{self.n_channels_}."
            )
        if masks is not None:
            masks = np.asarray(masks)
            if masks.shape != X.shape[:3]:
                raise ValueError(
                    f"masks must have shape {X.shape[:3]} (one mask per crop), got "
                    f"{masks.shape}."
                )
            masks = masks != 0
        else:
            self._warn_if_no_background(X)
        index = []
        names = list(self.feature_names_out_)
        prefix = {f"{c}_": k for k, c in enumerate(self.channel_names_)}
        for name in names:
            key = name
            if self.n_channels_ > 1:
                for p, k in prefix.items():
                    if name.startswith(p) and name[len(p):] in _INTENSITY:
                        key = ("ch", k, name[len(p):])
                        break
            index.append(key)
        need = {k for k in index if isinstance(k, str)}
        n = X.shape[0]
        n_workers = 1 if self.n_jobs is None else effective_n_jobs(self.n_jobs)
        n_chunks = min(n_workers, max(1, n // 256))
        bounds = np.linspace(0, n, n_chunks + 1).astype(int)
        args = (float(self.threshold), self.component, index, need)
        if n_chunks == 1:
            results = [_measure_chunk(X, masks, *args)]
        else:
            results = Parallel(n_jobs=n_chunks)(
                delayed(_measure_chunk)(
                    X[a:b], None if masks is None else masks[a:b], *args
                )
                for a, b in zip(bounds[:-1], bounds[1:])
            )
        F = np.concatenate([r[0] for r in results], axis=0)
        n_empty = sum(r[1] for r in results)
        if n_empty:
            warnings.warn(
                f"{n_empty} of {n} crops have an empty mask; their features are set "
                "to 0.",
                RuntimeWarning,
                stacklevel=2,
            )
        return F

    def _warn_if_no_background(self, X):
        """Warn when most crops have no background pixel (at or below threshold)."""
        threshold = float(self.threshold)
        no_background = (X > threshold).any(axis=-1).all(axis=(1, 2))
        n_full, n = int(no_background.sum()), len(X)
        if n_full > n / 2:
            warnings.warn(
                f"{n_full} of {n} crops ({n_full / n:.0%}) have no background pixel "
                f"(none at or below threshold={threshold:g}), so RegionFeatures "
                "measures the whole window instead of the cell. Zero the background "
                "around the cell (as the crops of ai4cellfate.datasets are), raise "
                "threshold, or pass masks.",
                UserWarning,
                stacklevel=3,
            )

    def fit_transform(self, X, y=None, masks=None):
        """Fit, then measure every crop (see :meth:`transform`).

        Parameters
        ----------
        X : array-like of shape (n_samples, H, W) or (n_samples, H, W, C)
            Crops.
        y : ignored
        masks : array-like of shape (n_samples, H, W), default=None
            Cell masks (nonzero = cell).

        Returns
        -------
        F : ndarray of shape (n_samples, n_features_out)
            The features.
        """
        return self.fit(X).transform(X, masks=masks)

    def get_feature_names_out(self, input_features=None):
        """Names of the output features.

        Parameters
        ----------
        input_features : ignored
            Crops have no input feature names.

        Returns
        -------
        names : ndarray of str
            One name per output column.
        """
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.requires_fit = True
        return tags
