"""FrameLatents: the latent of every frame of temporal-context crops."""

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin, clone

from ai4cellfate.temporal import FrameLatents

FITS = []


class Projection(TransformerMixin, BaseEstimator):
    """A seeded random projection of the pixels that records what it was fitted on."""

    def __init__(self, latent_dim=2, random_state=0):
        self.latent_dim = latent_dim
        self.random_state = random_state

    def fit(self, X, y, groups=None):
        X = np.asarray(X)
        FITS.append((X.copy(), None if groups is None else np.asarray(groups)))
        rng = np.random.default_rng(self.random_state)
        self.proj_ = rng.normal(size=(X[0].size, self.latent_dim))
        self.mean_ = X.reshape(len(X), -1).mean(0)
        return self

    def transform(self, X):
        X = np.asarray(X)
        return (X.reshape(len(X), -1) - self.mean_) @ self.proj_


class NoGroups(Projection):
    def fit(self, X, y):
        return super().fit(X, y)


@pytest.fixture(autouse=True)
def clear():
    FITS.clear()


def _stacks(n=20, frames=3, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 6, 6, frames * channels)), np.arange(n) % 2


def test_latents_of_every_frame_from_the_frame_t_model_and_their_change():
    X, y = _stacks(frames=3)
    groups = np.arange(20) // 4
    fl = FrameLatents(Projection(latent_dim=2)).fit(X, y, groups=groups)
    (seen, got_groups), = FITS
    np.testing.assert_array_equal(seen, X[..., 2])  # fitted on frame t only
    np.testing.assert_array_equal(got_groups, groups)
    ref = Projection(latent_dim=2).fit(X[..., 2], y)
    Z = [ref.transform(X[..., f]) for f in range(3)]
    np.testing.assert_allclose(fl.transform(X), np.hstack(Z + [Z[2] - Z[0]]))
    assert fl.n_frames_ == 3 and fl.latent_dim_ == 2 and fl.n_features_in_ == 3
    assert fl.get_feature_names_out().tolist() == [
        "frame0_z0", "frame0_z1", "frame1_z0", "frame1_z1", "frame2_z0", "frame2_z1",
        "change_z0", "change_z1"]
    plain = FrameLatents(Projection(), differences=False).fit(X, y)
    np.testing.assert_allclose(plain.transform(X), np.hstack(Z))
    assert len(plain.get_feature_names_out()) == 6
    # the template is cloned, never fitted itself
    template = Projection()
    FrameLatents(template).fit(X, y)
    assert not hasattr(template, "proj_")
    assert clone(fl).get_params()["aae__latent_dim"] == 2


def test_multichannel_frames_stay_together():
    X, y = _stacks(frames=2, channels=3)
    fl = FrameLatents(Projection(), channels_per_frame=3).fit(X, y)
    (seen, _), = FITS
    np.testing.assert_array_equal(seen, X[..., 3:])
    ref = Projection().fit(X[..., 3:], y)
    np.testing.assert_allclose(fl.transform(X)[:, :2], ref.transform(X[..., :3]))


def test_an_autoencoder_without_groups_is_fitted_without():
    X, y = _stacks()
    FrameLatents(NoGroups()).fit(X, y, groups=np.arange(20))
    assert FITS[0][1] is None


@pytest.mark.parametrize("make, kwargs, match", [
    (lambda: np.zeros((4, 6, 6)), {}, "shape \\(n, height, width, frames"),
    (lambda: np.zeros((4, 6, 6, 1)), {}, "not at least 2 frames"),
    (lambda: np.zeros((4, 6, 6, 5)), {"channels_per_frame": 2}, "not at least 2 frames"),
    (lambda: np.zeros((4, 6, 6, 2)), {"channels_per_frame": 0}, "channels_per_frame"),
])
def test_bad_stacks_fail_before_fitting(make, kwargs, match):
    with pytest.raises(ValueError, match=match):
        FrameLatents(Projection(), **kwargs).fit(make(), np.arange(4) % 2)
    assert not FITS


def test_bad_settings_and_inputs():
    X, y = _stacks(frames=2)
    with pytest.raises(TypeError, match="aae must be an unfitted transformer"):
        FrameLatents("nope").fit(X, y)
    with pytest.raises(TypeError, match="differences must be True or False"):
        FrameLatents(Projection(), differences="yes").fit(X, y)
    fl = FrameLatents(Projection()).fit(X, y)
    with pytest.raises(ValueError, match="fitted on 2"):
        fl.transform(_stacks(frames=3)[0])
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        FrameLatents(Projection()).transform(X)
