"""Tests of ai4cellfate.interpret: measurements, traversals and their trends.

The models are small stand-ins with the estimator's interface (``decode``,
``latent_dim``, ``transform``): a synthetic decoder draws a disc whose radius
grows with z1 and whose brightness grows with z0.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ai4cellfate.interpret import (
    MEASUREMENTS,
    latent_grid_traversal,
    latent_traversal,
    measure_images,
    traversal_effects,
    traversal_trends,
)


class BlobDecoder:
    """z0 -> brightness, z1 -> radius; records every decode call."""

    def __init__(self, latent_dim=2, channels=None):
        self.latent_dim = latent_dim
        self.channels = channels
        self.calls = []

    def decode(self, Z):
        Z = np.asarray(Z, dtype=float)
        self.calls.append(Z.copy())
        yy, xx = np.mgrid[:24, :24] - 11.5
        radius = np.clip(5.0 + 1.2 * Z[:, 1], 1.0, 11.0)[:, None, None]
        bright = np.clip(0.55 + 0.1 * Z[:, 0], 0.15, 1.0)[:, None, None]
        img = bright * (np.hypot(yy, xx) <= radius)
        img = img.astype(np.float32)
        if self.channels:
            img = np.repeat(img[..., None], self.channels, axis=-1)
        return img


class EncoderDecoder(BlobDecoder):
    """Adds transform(X): the latent code is read from the first pixels."""

    def transform(self, X):
        X = np.asarray(X, dtype=float)
        return X[:, 0, : self.latent_dim]


# --------------------------------------------------------------------------
# measure_images
# --------------------------------------------------------------------------


def test_measure_rectangle_hand_computed():
    img = np.zeros((12, 12))
    img[2:5, 1:6] = 0.5  # 3 rows x 5 columns
    img[3, 3] = 0.9
    m = measure_images(img).iloc[0]
    assert m["area"] == 15
    assert m["max_intensity"] == pytest.approx(0.9)
    assert m["mean_intensity"] == pytest.approx((14 * 0.5 + 0.9) / 15)
    assert m["aspect_ratio"] == pytest.approx(5 / 3)
    # skimage perimeter of an h x w rectangle: 2 (h + w) - 4 = 12.
    assert m["circularity"] == pytest.approx(4 * np.pi * 15 / 12**2)


def test_measure_threshold_is_strict_and_tall_box():
    img = np.zeros((10, 10))
    img[1:9, 4:6] = 0.1  # exactly at the threshold: background
    assert measure_images(img)["area"][0] == 0
    img[1:9, 4:6] = 0.3  # 8 rows x 2 columns
    m = measure_images(img).iloc[0]
    assert m["area"] == 16 and m["aspect_ratio"] == pytest.approx(2 / 8)
    assert measure_images(img, threshold=0.5)["area"][0] == 0


def test_measure_disc_circularity_near_one():
    yy, xx = np.mgrid[:40, :40] - 19.5
    disc = (np.hypot(yy, xx) <= 8).astype(float)
    m = measure_images(disc).iloc[0]
    assert m["area"] == pytest.approx(np.pi * 64, rel=0.05)
    assert 0.85 < m["circularity"] < 1.05
    assert m["aspect_ratio"] == pytest.approx(1.0)


def test_measure_empty_stack_and_channels():
    stack = np.zeros((3, 8, 8))
    stack[1, 2:4, 2:4] = 1.0
    m = measure_images(stack)
    assert list(m.columns) == list(MEASUREMENTS) and len(m) == 3
    assert m["area"].tolist() == [0, 4, 0]
    assert m.loc[0, ["mean_intensity", "aspect_ratio", "circularity"]].isna().all()
    # (n, H, W, C): measured on the channel mean.
    four = np.stack([stack, 0.5 * stack], axis=-1)
    m4 = measure_images(four)
    assert m4["max_intensity"][1] == pytest.approx(0.75)
    single = measure_images(stack[1])
    assert len(single) == 1 and single["area"][0] == 4


@pytest.mark.parametrize(
    "images, kwargs, exc, match",
    [
        (np.zeros(5), {}, ValueError, "shape"),
        (np.full((2, 4, 4), np.nan), {}, ValueError, "NaN"),
        (np.zeros((2, 4, 4)), {"threshold": "0.1"}, TypeError, "threshold"),
        (np.zeros((2, 4, 4)), {"threshold": np.inf}, ValueError, "threshold"),
    ],
)
def test_measure_bad_input(images, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        measure_images(images, **kwargs)


# --------------------------------------------------------------------------
# latent_traversal
# --------------------------------------------------------------------------


def test_traversal_preprint_defaults():
    model = BlobDecoder()
    table = latent_traversal(model)
    assert list(table.columns) == ["dimension", "value", "measurement", "result"]
    assert len(table) == 2 * 5 * len(MEASUREMENTS)
    (Z,) = model.calls
    expected = np.zeros((10, 2))
    expected[:5, 0] = [-2.5, -1.5, -0.5, 0.5, 1.5]
    expected[5:, 1] = [-3.0, -1.75, -0.5, 0.75, 2.0]
    np.testing.assert_allclose(Z, expected)
    z1 = table[table["dimension"] == "z1"]
    np.testing.assert_allclose(sorted(z1["value"].unique()), expected[5:, 1])
    # Row order: dimension, value, then the measurements in MEASUREMENTS order.
    assert table["measurement"].tolist()[: len(MEASUREMENTS)] == list(MEASUREMENTS)


def test_traversal_results_are_measurements_of_decoded_images():
    model = BlobDecoder()
    table, images = latent_traversal(model, return_images=True, n_steps=4)
    assert images.shape == (2, 4, 24, 24)
    decoded = model.decode(model.calls[0]).reshape(2, 4, 24, 24)
    np.testing.assert_array_equal(images, decoded)
    m = measure_images(images[1, 2])
    got = table.query("dimension == 'z1' and measurement == 'area'")["result"].iloc[2]
    assert got == m["area"][0]


def test_traversal_trends_synthetic_blob():
    trends = traversal_trends(latent_traversal(BlobDecoder(), n_steps=7))
    assert list(trends.index) == ["z0", "z1"] and trends.index.name == "dimension"
    assert trends.loc["z1", "area"] == pytest.approx(1.0)
    assert trends.loc["z0", "max_intensity"] == pytest.approx(1.0)
    assert trends.loc["z0", "mean_intensity"] == pytest.approx(1.0)
    assert np.isnan(trends.loc["z0", "area"])  # constant along z0
    assert np.isnan(trends.loc["z1", "max_intensity"])


def test_traversal_ranges_fixed_and_dims():
    model = BlobDecoder(latent_dim=3)
    latent_traversal(
        model, dims=[2, 0], ranges=[(-1, 1), (0, 2)], n_steps=3, fixed=[0.5, -0.5, 0.0]
    )
    Z = model.calls[-1]
    np.testing.assert_allclose(Z[:3, 2], [-1, 0, 1])
    np.testing.assert_allclose(Z[:3, :2], [[0.5, -0.5]] * 3)
    np.testing.assert_allclose(Z[3:, 0], [0, 1, 2])
    np.testing.assert_allclose(Z[3:, 1:], [[-0.5, 0.0]] * 3)
    # One pair for all, a dict for some, defaults for the others (dim 2: +-2.5).
    latent_traversal(model, ranges=(-1, 1), n_steps=2)
    np.testing.assert_allclose(model.calls[-1][[0, 1, 2, 3, 4, 5]].max(axis=1), [0, 1, 0, 1, 0, 1])
    table = latent_traversal(model, ranges={1: (4, 5)}, n_steps=2)
    got = table.groupby("dimension")["value"].agg(["min", "max"])
    np.testing.assert_allclose(got.to_numpy(), [[-2.5, 1.5], [4, 5], [-2.5, 2.5]])
    table = latent_traversal(model, dims=1, n_steps=3)
    assert set(table["dimension"]) == {"z1"}


def test_traversal_ranges_from_latent_quantiles():
    model = EncoderDecoder()
    rng = np.random.default_rng(0)
    codes = np.c_[rng.uniform(-1, 3, 101), rng.normal(size=101)]
    X = np.zeros((101, 4, 4))
    X[:, 0, :2] = codes
    table = latent_traversal(model, X=X, quantiles=(0.1, 0.9), n_steps=3)
    for d in range(2):
        vals = np.sort(table[table["dimension"] == f"z{d}"]["value"].unique())
        lo, hi = np.quantile(codes[:, d], [0.1, 0.9])
        np.testing.assert_allclose(vals, [lo, (lo + hi) / 2, hi])
    np.testing.assert_allclose(model.calls[-1][:3, 1], 0.0)  # fixed point still 0
    latent_traversal(model, X=X, ranges=(-1, 1), fixed="median", n_steps=2)
    np.testing.assert_allclose(model.calls[-1][:2, 1], np.median(codes[:, 1]))
    latent_traversal(model, X=X, fixed="mean", ranges=(-1, 1), n_steps=2)
    np.testing.assert_allclose(model.calls[-1][:2, 1], codes[:, 1].mean())


def test_traversal_multichannel_decoder():
    table, images = latent_traversal(BlobDecoder(channels=2), return_images=True)
    assert images.shape == (2, 5, 24, 24, 2)
    assert traversal_trends(table).loc["z1", "area"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"dims": [2]}, ValueError, "dims"),
        ({"dims": [0, 0]}, ValueError, "repeat"),
        ({"dims": ["z0"]}, TypeError, "dims"),
        ({"n_steps": 1}, ValueError, "n_steps"),
        ({"n_steps": 2.5}, TypeError, "n_steps"),
        ({"ranges": (1, 1)}, ValueError, "ranges"),
        ({"ranges": [(0, 1)] * 3}, ValueError, "ranges"),
        ({"ranges": {5: (0, 1)}}, ValueError, "ranges"),
        ({"ranges": "quantiles"}, ValueError, "X"),
        ({"fixed": "median"}, ValueError, "X"),
        ({"fixed": [0, 0, 0]}, ValueError, "fixed"),
        ({"threshold": True}, TypeError, "threshold"),
    ],
)
def test_traversal_bad_arguments(kwargs, exc, match):
    model = EncoderDecoder()
    with pytest.raises(exc, match=match):
        latent_traversal(model, **kwargs)


def test_traversal_bad_models():
    with pytest.raises(TypeError, match="decode"):
        latent_traversal(object())

    class NoDim:
        def decode(self, Z):
            return np.zeros((len(Z), 4, 4))

    with pytest.raises(TypeError, match="latent_dim"):
        latent_traversal(NoDim())

    class Wrong(BlobDecoder):
        def decode(self, Z):
            return np.zeros((3, 4, 4))

    with pytest.raises(ValueError, match="decode returned"):
        latent_traversal(Wrong())
    with pytest.raises(TypeError, match="transform"):
        latent_traversal(BlobDecoder(), X=np.zeros((3, 4, 4)))


# --------------------------------------------------------------------------
# Grid traversal
# --------------------------------------------------------------------------


def test_grid_traversal_layout():
    model = BlobDecoder()
    table, images = latent_grid_traversal(model, n_steps=(3, 4), return_images=True)
    assert images.shape == (3, 4, 24, 24)
    assert list(table.columns) == ["z0", "z1", "measurement", "result"]
    assert len(table) == 12 * len(MEASUREMENTS)
    va = np.linspace(-2.5, 1.5, 3)
    vb = np.linspace(-3, 2, 4)
    # images[i, j] decoded at (va[i], vb[j]).
    np.testing.assert_array_equal(images[2, 1], model.decode([[va[2], vb[1]]])[0])
    row = table.query("measurement == 'area'").iloc[2 * 4 + 1]
    assert (row["z0"], row["z1"]) == pytest.approx((va[2], vb[1]))
    assert row["result"] == measure_images(images[2, 1])["area"][0]


def test_grid_traversal_trends_and_swapped_dims():
    model = BlobDecoder(latent_dim=3)
    table = latent_grid_traversal(model, dims=(1, 2), n_steps=4)
    assert list(table.columns[:2]) == ["z1", "z2"]
    trends = traversal_trends(table)
    assert list(trends.index) == ["z1", "z2"]
    assert trends.loc["z1", "area"] == pytest.approx(1.0)
    assert trends.loc["z2", "area"] == pytest.approx(0.0, abs=1e-12)  # balanced grid
    with pytest.raises(ValueError, match="two dimensions"):
        latent_grid_traversal(model, dims=(0, 1, 2))


# --------------------------------------------------------------------------
# traversal_trends
# --------------------------------------------------------------------------


def _table(values, results, measurement="area", dimension="z0"):
    return pd.DataFrame(
        {
            "dimension": dimension,
            "value": values,
            "measurement": measurement,
            "result": results,
        }
    )


def test_trends_hand_computed():
    t = _table([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0])
    # Ranks equal the values: rho = r = 0.8; Kendall: 5 concordant, 1 discordant.
    assert traversal_trends(t).loc["z0", "area"] == pytest.approx(0.8)
    assert traversal_trends(t, method="kendall").loc["z0", "area"] == pytest.approx(4 / 6)
    assert traversal_trends(t, method="pearson").loc["z0", "area"] == pytest.approx(0.8)
    # Rank correlation ignores the scale: any decreasing curve gives -1.
    t2 = _table([0.0, 1.0, 2.0, 3.0], [100.0, 10.0, 1.0, 0.1], dimension="z1")
    assert traversal_trends(t2).loc["z1", "area"] == pytest.approx(-1.0)


def test_trends_random_matches_scipy(rng):
    v = np.linspace(-2, 2, 9)
    r = rng.normal(size=9)
    expected = stats.spearmanr(v, r).statistic
    assert traversal_trends(_table(v, r)).loc["z0", "area"] == pytest.approx(expected)


def test_trends_nan_and_constant():
    t = _table([0.0, 1.0, 2.0, 3.0], [1.0, np.nan, 2.0, 3.0])
    assert traversal_trends(t).loc["z0", "area"] == pytest.approx(1.0)
    t = _table([0.0, 1.0, 2.0], [1.0, np.nan, 2.0])  # two finite points
    assert np.isnan(traversal_trends(t).loc["z0", "area"])
    t = _table([0.0, 1.0, 2.0], [5.0, 5.0, 5.0])
    assert np.isnan(traversal_trends(t).loc["z0", "area"])


def test_trends_bad_input():
    with pytest.raises(TypeError, match="DataFrame"):
        traversal_trends({"value": [1]})
    with pytest.raises(ValueError, match="method"):
        traversal_trends(_table([0, 1, 2], [0, 1, 2]), method="pearsonr")
    with pytest.raises(ValueError, match="result"):
        traversal_trends(pd.DataFrame({"dimension": ["z0"], "measurement": ["area"]}))


def test_trends_order_dimensions_numerically():
    model = BlobDecoder(latent_dim=12)
    table = latent_traversal(model, dims=[10, 2, 0], n_steps=3)
    assert list(traversal_trends(table).index) == ["z0", "z2", "z10"]


# --------------------------------------------------------------------------
# traversal_effects
# --------------------------------------------------------------------------


def test_effects_hand_computed():
    t = pd.concat([
        _table([0.0, 1.0, 2.0, 3.0], [10.0, 12.0, 14.0, 16.0], dimension="z0"),
        _table([0.0, 1.0, 2.0, 3.0], [13.0, 13.0, 13.0, 13.0], dimension="z1"),
        # noisy line: least-squares slope 1.4 over a range of 3 -> 4.2
        _table([0.0, 1.0, 2.0, 3.0], [1.0, 3.0, 2.0, 6.0], "circularity", "z0"),
    ])
    raw = traversal_effects(t, relative=False)
    assert raw.loc["z0", "area"] == pytest.approx(6.0)
    assert raw.loc["z1", "area"] == pytest.approx(0.0)
    assert raw.loc["z0", "circularity"] == pytest.approx(4.2)
    assert np.isnan(raw.loc["z1", "circularity"])  # not measured along z1
    rel = traversal_effects(t)
    assert rel.loc["z0", "area"] == pytest.approx(6.0 / 13.0)  # mean area 13
    assert rel.loc["z0", "circularity"] == pytest.approx(4.2 / 3.0)
    with pytest.raises(TypeError, match="relative"):
        traversal_effects(t, relative="yes")
    with pytest.raises(TypeError, match="DataFrame"):
        traversal_effects([1, 2])


def test_effects_tell_apart_strong_and_weak_trends():
    # Both dimensions raise the area steadily (rank correlation +1 each), but
    # z1 by 10x more: the effects tell them apart, the trends do not.
    v = np.linspace(-1, 1, 5)
    t = pd.concat([
        _table(v, 50 + 1.0 * v, dimension="z0"),
        _table(v, 50 + 10.0 * v, dimension="z1"),
    ])
    np.testing.assert_allclose(traversal_trends(t)["area"], [1.0, 1.0])
    eff = traversal_effects(t, relative=False)["area"]
    np.testing.assert_allclose(eff, [2.0, 20.0])


def test_effects_synthetic_blob_and_grid():
    table = latent_traversal(BlobDecoder(), n_steps=7)
    eff = traversal_effects(table)
    assert eff.loc["z1", "area"] > 1.0 and eff.loc["z0", "area"] == 0.0
    assert eff.loc["z0", "max_intensity"] > 0.5 and eff.loc["z1", "max_intensity"] == 0.0
    # A constant measurement changes by exactly 0, not by rounding noise.
    assert traversal_effects(table, relative=False).loc["z0", "area"] == 0.0
    grid = latent_grid_traversal(BlobDecoder(), n_steps=4)
    geff = traversal_effects(grid)
    assert geff.loc["z1", "area"] > 1.0 and geff.loc["z0", "area"] == pytest.approx(0.0)
