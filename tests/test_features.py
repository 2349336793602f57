"""RegionFeatures: numbers checked against shapes drawn with known geometry."""

import warnings

import numpy as np
import pytest
from joblib import parallel_config
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from ai4cellfate.datasets import make_nuclei
from ai4cellfate.features import SHAPE_FEATURES, RegionFeatures

ONE_CHANNEL = [
    "intensity_mean",
    "intensity_std",
    "integrated_intensity",
    *SHAPE_FEATURES,
]


def ellipse(size, a, b, value=1.0, centre=None, angle=0.0):
    """Filled ellipse with semi-axes ``a`` (along x after rotation) and ``b``."""
    cy, cx = ((size - 1) / 2, (size - 1) / 2) if centre is None else centre
    yy, xx = np.mgrid[:size, :size].astype(float)
    c, s = np.cos(angle), np.sin(angle)
    u = (xx - cx) * c + (yy - cy) * s
    v = -(xx - cx) * s + (yy - cy) * c
    return np.where((u / a) ** 2 + (v / b) ** 2 <= 1.0, value, 0.0)


def features(crops, **kwargs):
    rf = RegionFeatures(**kwargs)
    F = rf.fit_transform(np.asarray(crops))
    return {n: F[:, i] for i, n in enumerate(rf.get_feature_names_out())}


def test_one_channel_names_and_shape():
    X, _ = make_nuclei(12, random_state=0)
    rf = RegionFeatures().fit(X)
    assert list(rf.get_feature_names_out()) == ONE_CHANNEL
    F = rf.transform(X)
    assert F.shape == (12, 12) and F.dtype == np.float64
    # (n, H, W, 1) is the same as (n, H, W)
    np.testing.assert_array_equal(RegionFeatures().fit_transform(X[..., None]), F)


def test_disk_geometry_matches_independent_computation():
    r = 6.0
    disk = ellipse(31, r, r, value=0.7)
    f = features([disk])
    area = disk.astype(bool).sum()  # pixels drawn
    assert f["area"][0] == area
    assert abs(area - np.pi * r**2) / (np.pi * r**2) < 0.05
    np.testing.assert_allclose(f["equivalent_diameter"][0], np.sqrt(4 * area / np.pi))
    np.testing.assert_allclose(f["major_axis_length"][0], 2 * r, rtol=0.05)
    np.testing.assert_allclose(f["minor_axis_length"][0], 2 * r, rtol=0.05)
    assert f["eccentricity"][0] < 0.2
    np.testing.assert_allclose(f["aspect_ratio"][0], 1.0, atol=0.02)
    np.testing.assert_allclose(f["perimeter"][0], 2 * np.pi * r, rtol=0.12)
    np.testing.assert_allclose(f["circularity"][0], 1.0, atol=0.2)
    assert f["solidity"][0] > 0.9
    np.testing.assert_allclose(f["intensity_mean"][0], 0.7)
    np.testing.assert_allclose(f["intensity_std"][0], 0.0, atol=1e-12)
    np.testing.assert_allclose(f["integrated_intensity"][0], 0.7 * area)


def test_rotated_ellipse_axes_and_eccentricity():
    a, b = 9.0, 4.0
    crop = ellipse(31, a, b, angle=np.pi / 6)
    f = features([crop])
    np.testing.assert_allclose(f["major_axis_length"][0], 2 * a, rtol=0.05)
    np.testing.assert_allclose(f["minor_axis_length"][0], 2 * b, rtol=0.08)
    np.testing.assert_allclose(f["eccentricity"][0], np.sqrt(1 - (b / a) ** 2), atol=0.03)
    np.testing.assert_allclose(
        f["aspect_ratio"][0], f["major_axis_length"][0] / f["minor_axis_length"][0]
    )
    np.testing.assert_allclose(f["area"][0], np.pi * a * b, rtol=0.05)
    # A thin shape is less circular than a disk, a concave one less solid.
    disk = features([ellipse(31, 6, 6)])
    assert f["circularity"][0] < disk["circularity"][0]
    ell = np.zeros((31, 31))
    ell[5:25, 5:10] = 1
    ell[20:25, 5:25] = 1
    assert features([ell])["solidity"][0] < 0.7


def test_intensity_features_match_numpy_over_the_mask(rng):
    crop = ellipse(25, 7, 5) * rng.uniform(0.2, 1.0, size=(25, 25))
    f = features([crop])
    pix = crop[crop > 0]
    np.testing.assert_allclose(f["intensity_mean"][0], pix.mean())
    np.testing.assert_allclose(f["intensity_std"][0], pix.std())
    np.testing.assert_allclose(f["integrated_intensity"][0], pix.sum())
    np.testing.assert_allclose(f["area"][0], pix.size)


def test_centre_component_threshold_and_masks():
    crop = ellipse(31, 4, 4, value=0.5)  # centre cell, area ~ 49
    crop += ellipse(31, 3, 3, value=0.9, centre=(4, 4))  # a neighbour in a corner
    big = ellipse(31, 4, 4).astype(bool).sum()
    small = ellipse(31, 3, 3, centre=(4, 4)).astype(bool).sum()
    assert features([crop])["area"][0] == big
    np.testing.assert_allclose(features([crop])["intensity_mean"][0], 0.5)
    # A neighbour larger than the centre cell: "largest" picks it.
    crop2 = ellipse(31, 3, 3, value=0.5) + ellipse(31, 5, 5, value=0.9, centre=(6, 6))
    assert features([crop2], component="largest")["area"][0] == ellipse(
        31, 5, 5, centre=(6, 6)
    ).astype(bool).sum()
    # threshold drops the dimmer cell
    assert features([crop], threshold=0.6)["area"][0] == small
    # an explicit mask wins over the pixel values
    mask = ellipse(31, 3, 3, centre=(4, 4)) > 0
    rf = RegionFeatures().fit(crop[None])
    F = rf.transform(crop[None], masks=mask[None])
    assert F[0, ONE_CHANNEL.index("area")] == small
    np.testing.assert_allclose(F[0, 0], 0.9)


def test_two_channels_give_the_preprint_13_features(rng):
    cell = ellipse(21, 5, 4)
    cfp = cell * rng.uniform(0.4, 0.8, size=cell.shape)
    yfp = cell * 0.5
    X = np.stack([cfp, yfp], axis=-1)[None]
    rf = RegionFeatures(channel_names=("cfp", "yfp")).fit(X)
    names = list(rf.get_feature_names_out())
    assert len(names) == 13
    assert names[:6] == [
        "cfp_intensity_mean",
        "cfp_intensity_std",
        "yfp_intensity_mean",
        "yfp_intensity_std",
        "intensity_ratio",
        "intensity_mean",
    ]
    f = dict(zip(names, rf.transform(X)[0]))
    inside = cell > 0
    np.testing.assert_allclose(f["cfp_intensity_mean"], cfp[inside].mean())
    np.testing.assert_allclose(f["yfp_intensity_std"], 0.0, atol=1e-12)
    np.testing.assert_allclose(f["intensity_ratio"], cfp[inside].mean() / 0.5)
    np.testing.assert_allclose(f["intensity_mean"], (cfp + yfp)[inside].mean())
    assert f["area"] == inside.sum()
    all_names = RegionFeatures(features="all").fit(X).get_feature_names_out()
    assert {"ch0_integrated_intensity", "solidity", "circularity"} <= set(all_names)


def test_feature_subset_order():
    X, _ = make_nuclei(5, random_state=1)
    full = RegionFeatures().fit(X)
    sub = RegionFeatures(features=["area", "intensity_mean"]).fit(X)
    assert list(sub.get_feature_names_out()) == ["area", "intensity_mean"]
    np.testing.assert_array_equal(
        sub.transform(X), full.transform(X)[:, [ONE_CHANNEL.index("area"), 0]]
    )


def test_empty_crop_gives_zeros_and_a_warning():
    X = np.zeros((3, 12, 12))
    X[1] = ellipse(12, 3, 3)
    with pytest.warns(RuntimeWarning, match="2 of 3 crops"):
        F = RegionFeatures().fit_transform(X)
    assert np.all(F[[0, 2]] == 0) and F[1, ONE_CHANNEL.index("area")] > 0


def test_crops_without_zero_background_warn_with_the_fraction():
    X, _ = make_nuclei(8, image_size=12, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # background-zeroed crops: no warning
        zeroed = RegionFeatures(features=["area"]).fit_transform(X)
    raw = X + 0.05  # an unmasked background offset: every pixel is "cell"
    raw[:2] = X[:2]  # two of eight crops still have a zero background
    with pytest.warns(UserWarning, match=r"6 of 8 crops \(75%\) have no background"):
        whole = RegionFeatures(features=["area"]).fit_transform(raw)
    assert np.all(whole[2:, 0] == 12 * 12) and np.all(whole[:2] == zeroed[:2])
    # a threshold above the offset, or masks, measure the cells again
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RegionFeatures(features=["area"], threshold=0.05 + 1e-6).fit_transform(raw)
        masked = RegionFeatures(features=["area"]).fit(raw).transform(raw, masks=X > 0)
    np.testing.assert_array_equal(masked, zeroed)
    # a minority of such crops is left alone
    half = X.copy()
    half[:4] += 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RegionFeatures(features=["area"]).fit_transform(half)


def test_parallel_chunks_match_serial():
    X, _ = make_nuclei(520, image_size=12, random_state=2)
    serial = RegionFeatures().fit_transform(X)
    with parallel_config(backend="threading"):
        parallel = RegionFeatures(n_jobs=2).fit_transform(X)
    np.testing.assert_array_equal(serial, parallel)


def test_sklearn_contract():
    rf = RegionFeatures(features=["area"], threshold=0.1)
    assert clone(rf).get_params() == rf.get_params()
    with pytest.raises(NotFittedError):
        rf.get_feature_names_out()
    with pytest.raises(NotFittedError):
        rf.transform(np.zeros((1, 5, 5)))


@pytest.mark.parametrize(
    "kwargs, X, exc, match",
    [
        ({}, np.zeros((4, 5)), ValueError, "shape"),
        ({}, "crops", TypeError, "array of crops"),
        ({}, np.full((1, 5, 5), np.nan), ValueError, "NaN"),
        ({"features": ["volume"]}, np.zeros((1, 5, 5)), ValueError, "unknown"),
        ({"features": "some"}, np.zeros((1, 5, 5)), ValueError, "features"),
        ({"component": "middle"}, np.zeros((1, 5, 5)), ValueError, "component"),
        ({"threshold": "low"}, np.zeros((1, 5, 5)), ValueError, "threshold"),
        ({"n_jobs": 0}, np.zeros((1, 5, 5)), ValueError, "n_jobs"),
        ({"channel_names": ("a",)}, np.zeros((1, 5, 5, 2)), ValueError, "channel_names"),
        ({"channel_names": "ab"}, np.zeros((1, 5, 5, 2)), TypeError, "channel_names"),
    ],
)
def test_invalid_arguments(kwargs, X, exc, match):
    with pytest.raises(exc, match=match):
        RegionFeatures(**kwargs).fit(X)


def test_transform_checks_channels_and_masks():
    rf = RegionFeatures().fit(np.zeros((1, 6, 6)))
    with pytest.raises(ValueError, match="channels"):
        rf.transform(np.zeros((1, 6, 6, 2)))
    with pytest.raises(ValueError, match="masks"):
        rf.transform(np.ones((2, 6, 6)), masks=np.ones((1, 6, 6)))
