"""Latent trajectories: the engineered latent of every frame of a temporal-context crop.

:func:`ai4cellfate.datasets.temporal_context` stacks the crops of a cell at
earlier frames onto its crop at frame ``t``, as channels. A model can take
those channels as one image; :class:`FrameLatents` instead encodes each frame
on its own with one autoencoder fitted on the frame-``t`` crops (the
preprint's model, on the preprint's input) and returns the sequence of
latent vectors and their change, the way trajectory models of cell fate
(e.g. Soelistyo et al., Nature Machine Intelligence 2022, from the Lowe lab)
encode each frame and then model the sequence. The latent axes stay those of
one 2-D model, so they can still be plotted and traversed.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils.validation import check_is_fitted

from .studies import _fit_parameters, _is_int

__all__ = ["FrameLatents"]


class FrameLatents(TransformerMixin, BaseEstimator):
    """Latent vectors of every frame of temporal-context crops, and their change.

    Parameters
    ----------
    aae : estimator, default=None
        Unfitted autoencoder with ``fit(X, y)`` and ``transform`` (``None``:
        ``CellFateAAE()``). A clone is fitted on the crops of the last frame
        (frame ``t``) only, so it is the preprint's model on the preprint's
        input, and is then applied to every frame.
    channels_per_frame : int, default=1
        Channels of one frame in the stack (the crops' own channels).
    differences : bool, default=True
        Append the change of the latent from the oldest frame to frame ``t``.

    Attributes
    ----------
    aae_ : estimator
        The fitted autoencoder.
    n_frames_ : int
        Frames per sample, oldest first, frame ``t`` last.
    latent_dim_ : int
        Latent features per frame.
    n_features_in_ : int
        Channels of the stacks seen in ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.decomposition import PCA
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> flat = make_pipeline(FunctionTransformer(lambda X: X.reshape(len(X), -1)),
    ...                      PCA(2))
    >>> X = np.random.default_rng(0).random((30, 8, 8, 2))   # frames t-k and t
    >>> y = np.arange(30) % 2
    >>> Z = FrameLatents(flat).fit(X, y).transform(X)
    >>> Z.shape        # 2 latent features x 2 frames + their change
    (30, 6)
    >>> FrameLatents(flat).fit(X, y).get_feature_names_out()[:3].tolist()
    ['frame0_z0', 'frame0_z1', 'frame1_z0']
    """

    def __init__(self, aae=None, *, channels_per_frame=1, differences=True):
        self.aae = aae
        self.channels_per_frame = channels_per_frame
        self.differences = differences

    def _frames(self, X, fitting):
        c = self.channels_per_frame
        if not _is_int(c) or c < 1:
            raise ValueError(f"channels_per_frame must be an int >= 1, got {c!r}.")
        X = np.asarray(X)
        if X.ndim != 4:
            raise ValueError(
                f"X must be temporal-context crops of shape (n, height, width, frames * "
                f"channels), got shape {X.shape}.")
        if X.shape[-1] % c or X.shape[-1] // c < 2:
            raise ValueError(
                f"X has {X.shape[-1]} channels: not at least 2 frames of "
                f"channels_per_frame={c}.")
        if not fitting and X.shape[-1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[-1]} channels, but FrameLatents was fitted on "
                f"{self.n_features_in_}.")
        frames = [X[..., f * c:(f + 1) * c] for f in range(X.shape[-1] // c)]
        return [fr[..., 0] if c == 1 else fr for fr in frames]

    def fit(self, X, y, groups=None):
        """Fit the autoencoder on the last frame's crops.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width, frames * channels)
            Temporal-context crops, oldest frame first.
        y : array-like of shape (n_samples,)
            Fate labels (of the last frame).
        groups : array-like of shape (n_samples,), default=None
            Lineage groups, passed to the autoencoder's ``fit`` when it takes
            them.

        Returns
        -------
        self : FrameLatents
        """
        if not isinstance(self.differences, (bool, np.bool_)):
            raise TypeError(f"differences must be True or False, got {self.differences!r}.")
        frames = self._frames(X, fitting=True)
        if self.aae is None:
            from .estimator import CellFateAAE

            aae = CellFateAAE()
        elif not all(hasattr(self.aae, m) for m in ("fit", "transform", "get_params")):
            raise TypeError(
                f"aae must be an unfitted transformer such as CellFateAAE, got "
                f"{type(self.aae).__name__}.")
        else:
            aae = clone(self.aae)
        if groups is not None and "groups" in _fit_parameters(aae):
            aae.fit(frames[-1], y, groups=groups)
        else:
            aae.fit(frames[-1], y)
        self.aae_ = aae
        self.n_frames_ = len(frames)
        self.n_features_in_ = int(np.asarray(X).shape[-1])
        self.latent_dim_ = int(np.asarray(aae.transform(frames[-1][:1])).shape[1])
        return self

    def transform(self, X):
        """Latent vector of every frame, oldest first, then their change.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width, frames * channels)

        Returns
        -------
        Z : ndarray of shape (n_samples, latent_dim * (frames + differences))
        """
        check_is_fitted(self, "aae_")
        frames = self._frames(X, fitting=False)
        Z = [np.asarray(self.aae_.transform(fr), dtype=np.float64) for fr in frames]
        if self.differences:
            Z.append(Z[-1] - Z[0])
        return np.hstack(Z)

    def get_feature_names_out(self, input_features=None):
        """``frame<f>_z<j>`` for every frame ``f`` (0 = oldest), then ``change_z<j>``.

        Returns
        -------
        names : ndarray of str
        """
        check_is_fitted(self, "aae_")
        dim = self.latent_dim_
        names = [f"frame{f}_z{j}" for f in range(self.n_frames_) for j in range(dim)]
        if self.differences:
            names += [f"change_z{j}" for j in range(dim)]
        return np.asarray(names, dtype=object)
