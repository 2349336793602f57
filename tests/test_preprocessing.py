"""Intensity transforms: ratio, dataset-maximum normalisation, intensity stretch."""

import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline

from ai4cellfate.preprocessing import ChannelRatio, IntensityStretch, MaxNormalizer


def _crops(n=6, size=8, seed=0, channels=None, scale=1.0):
    """Masked crops: a random-intensity nucleus (a square) on a zero background."""
    rng = np.random.default_rng(seed)
    shape = (n, size, size) + (() if channels is None else (channels,))
    X = np.zeros(shape, np.float32)
    X[:, 2:6, 2:6] = scale * rng.uniform(0.5, 2.0, size=(n, 4, 4) + shape[3:])
    return X


# ---------------------------------------------------------------- ratio
def test_channel_ratio_values_and_zero_denominator():
    X = _crops(channels=2)
    X[0, 3, 3, 1] = 0.0  # a dark denominator pixel inside the nucleus
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero RuntimeWarning
        with np.errstate(all="raise"):
            out = ChannelRatio(0, 1).fit_transform(X)
    assert out.shape == (6, 8, 8) and out.dtype == np.float32
    inside = X[..., 1] != 0
    np.testing.assert_allclose(out[inside], X[..., 0][inside] / X[..., 1][inside], rtol=1e-6)
    assert np.all(out[~inside] == 0)  # background and the dark pixel
    kept = ChannelRatio(1, 0, keepdims=True, fill_value=-1.0).fit_transform(X)
    assert kept.shape == (6, 8, 8, 1) and kept[0, 0, 0, 0] == -1.0


def test_channel_ratio_errors():
    X = _crops(channels=2)
    with pytest.raises(ValueError, match="numerator=2: channel 2 does not exist"):
        ChannelRatio(2, 0).fit(X)
    with pytest.raises(ValueError, match="denominator=-3"):
        ChannelRatio(0, -3).fit(X)
    with pytest.raises(ValueError, match="must be different channels"):
        ChannelRatio(1, -1).fit(X)
    with pytest.raises(TypeError, match="numerator must be an int"):
        ChannelRatio("CFP", 1).fit(X)
    with pytest.raises(ValueError, match=r"shape \(n, h, w, c\)"):
        ChannelRatio().fit(X[..., 0])
    with pytest.raises(NotFittedError):
        ChannelRatio().transform(X)
    fitted = ChannelRatio().fit(X)
    with pytest.raises(ValueError, match=r"fitted on images \(n, h, w, 2\)"):
        fitted.transform(np.concatenate([X, X], axis=-1))


# ------------------------------------------------------------ max scaler
def test_max_normalizer_uses_training_maximum_only():
    train, test = _crops(seed=0), _crops(seed=1, scale=3.0)
    norm = MaxNormalizer().fit(train)
    assert norm.max_ == pytest.approx(float(train.max()))
    assert norm.transform(train).max() == pytest.approx(1.0)
    out = norm.transform(test)
    np.testing.assert_allclose(out, test / train.max(), rtol=1e-6)
    assert out.max() > 1.0  # brighter test data is not re-fitted
    assert MaxNormalizer(clip=True).fit(train).transform(test).max() == 1.0
    assert np.all(out[test == 0] == 0)


def test_max_normalizer_per_channel_and_errors():
    X = _crops(channels=2)
    X[..., 1] *= 10
    norm = MaxNormalizer(per_channel=True).fit(X)
    assert norm.max_.shape == (2,)
    out = norm.transform(X)
    np.testing.assert_allclose(out.max(axis=(0, 1, 2)), [1.0, 1.0], rtol=1e-6)
    assert MaxNormalizer().fit(X).transform(X)[..., 0].max() < 0.25
    with pytest.raises(NotFittedError):
        MaxNormalizer().transform(X)
    with pytest.raises(ValueError, match=r"fitted on images \(n, h, w, 2\)"):
        norm.transform(X[..., 0])
    with pytest.raises(ValueError, match="must not contain NaN"):
        MaxNormalizer().fit(np.full((2, 4, 4), np.nan))
    with pytest.raises(ValueError, match=r"X must have shape \(n, h, w\)"):
        MaxNormalizer().fit(np.ones((4, 4)))
    with pytest.raises(TypeError, match="X must hold numbers"):
        MaxNormalizer().fit(np.array([[["a"]]]))
    with pytest.raises(TypeError, match="per_channel must be a bool"):
        MaxNormalizer(per_channel="yes").fit(X)
    with pytest.warns(UserWarning, match="all zero"):
        zero = MaxNormalizer().fit(np.zeros((2, 4, 4)))
    assert zero.max_ == 1.0


# --------------------------------------------------------------- stretch
def test_intensity_stretch_formula_background_kept():
    eps = 0.001
    train = _crops(seed=0)
    st = IntensityStretch(eps=eps).fit(train)
    nz = train[train != 0]
    assert st.data_min_ == pytest.approx(nz.min()) and st.data_max_ == pytest.approx(nz.max())
    out = st.transform(train)
    expected = (train - nz.min()) / (nz.max() - nz.min()) * (1 - eps) + eps
    np.testing.assert_allclose(out[train != 0], expected[train != 0], rtol=1e-5)
    assert np.all(out[train == 0] == 0)
    assert out[train != 0].min() == pytest.approx(eps) and out.max() == pytest.approx(1.0)


def test_intensity_stretch_fitted_on_training_data_only():
    train, test = _crops(seed=0), _crops(seed=1, scale=3.0)
    st = IntensityStretch().fit(train)
    lo, hi = st.data_min_, st.data_max_
    out = st.transform(test)
    assert (st.data_min_, st.data_max_) == (lo, hi)
    # out-of-range test pixels are clipped to [eps, 1], never to the background
    assert out[test != 0].min() >= 0.001 and out.max() == 1.0
    assert np.all(out[test == 0] == 0)
    free = IntensityStretch(clip=False).fit(train).transform(test)
    assert free.max() > 1.0


def test_intensity_stretch_per_image_and_per_channel():
    X = _crops(seed=0)
    X[1] *= 50
    out = IntensityStretch(mode="image", eps=0.0).fit(X[:1]).transform(X)
    for img, src in zip(out, X):
        nz = src != 0
        assert img[nz].min() == pytest.approx(0.0, abs=1e-6) and img[nz].max() == 1.0
        assert np.all(img[~nz] == 0)
    # an all-background image stays all zero; a constant nucleus maps to 1
    special = np.zeros((2, 4, 4), np.float32)
    special[1, 1:3, 1:3] = 5.0
    out = IntensityStretch(mode="image").fit_transform(special)
    assert np.all(out[0] == 0) and np.all(out[1][special[1] != 0] == 1.0)
    X2 = _crops(channels=2)
    X2[..., 1] *= 10
    st = IntensityStretch().fit(X2)
    assert st.data_max_.shape == (2,)
    np.testing.assert_allclose(st.transform(X2).max(axis=(0, 1, 2)), [1.0, 1.0])


def test_intensity_stretch_errors():
    X = _crops()
    with pytest.raises(ValueError, match="mode must be 'dataset' or 'image'"):
        IntensityStretch(mode="frame").fit(X)
    for bad in (1.0, -0.1, "0.01"):
        with pytest.raises(ValueError, match="eps must be a number in"):
            IntensityStretch(eps=bad).fit(X)
    with pytest.raises(ValueError, match="needs nonzero pixels"):
        IntensityStretch().fit(np.zeros((2, 4, 4)))
    with pytest.raises(NotFittedError):
        IntensityStretch().transform(X)
    with pytest.raises(ValueError, match=r"fitted on images \(n, h, w\)"):
        IntensityStretch().fit(X).transform(X[..., None])


# -------------------------------------------------------------- pipeline
def test_preprint_chain_in_a_pipeline():
    train, test = _crops(channels=2, seed=0), _crops(channels=2, seed=1)
    pipe = Pipeline([
        ("ratio", ChannelRatio(0, 1)),
        ("max", MaxNormalizer()),
        ("stretch", IntensityStretch()),
    ])
    out_train = pipe.fit_transform(train)
    out_test = pipe.transform(test)
    assert out_train.shape == (6, 8, 8) and out_test.dtype == np.float32
    assert out_train.max() == pytest.approx(1.0)
    assert np.all(out_test[test[..., 0] == 0] == 0)
    assert np.all(out_test[test[..., 0] != 0] >= 0.001)
    # parameters are stored unchanged and clone() works
    again = clone(pipe).set_params(stretch__eps=0.01)
    assert again.get_params()["stretch__eps"] == 0.01
    assert pipe.get_params()["stretch__eps"] == 0.001
    assert "max_" not in vars(clone(pipe).named_steps["max"])


# ------------------------------------------- flat pixels and set_output
def test_set_output_pandas_flattens_images_into_named_pixel_columns():
    X = _crops(n=5, size=6)
    for est in (MaxNormalizer(), IntensityStretch(), IntensityStretch(mode="image")):
        images = clone(est).fit_transform(X)
        df = clone(est).set_output(transform="pandas").fit_transform(X)
        assert isinstance(df, pd.DataFrame) and df.shape == (5, 36)
        assert list(df.columns[:3]) == ["pixel_0_0", "pixel_0_1", "pixel_0_2"]
        assert df.columns[-1] == "pixel_5_5"
        np.testing.assert_array_equal(df.to_numpy(), images.reshape(5, -1))
        assert list(est.fit(X).get_feature_names_out()) == list(df.columns)
    # channels last: pixel_<row>_<col>_<channel>, C order
    X2 = _crops(n=3, size=6, channels=2)
    df = MaxNormalizer().set_output(transform="pandas").fit_transform(X2)
    assert list(df.columns[:3]) == ["pixel_0_0_0", "pixel_0_0_1", "pixel_0_1_0"]
    np.testing.assert_array_equal(df.to_numpy(),
                                  MaxNormalizer().fit_transform(X2).reshape(3, -1))
    ratio = ChannelRatio().set_output(transform="pandas").fit_transform(X2)
    assert ratio.shape == (3, 36) and ratio.columns[-1] == "pixel_5_5"
    kept = ChannelRatio(keepdims=True).set_output(transform="pandas").fit_transform(X2)
    assert kept.columns[-1] == "pixel_5_5_0"
    # the global configuration works too
    with sklearn.config_context(transform_output="pandas"):
        assert isinstance(IntensityStretch().fit_transform(X), pd.DataFrame)


def test_flat_rows_and_pixel_dataframes_are_read_back():
    X = _crops(n=4, size=6, channels=2)
    images = MaxNormalizer().fit(X).transform(X)
    # a DataFrame named as get_feature_names_out names it: shape from the names
    df = MaxNormalizer().set_output(transform="pandas").fit_transform(X)
    df.index = [10, 11, 12, 13]
    again = MaxNormalizer().set_output(transform="pandas").fit(df)
    assert again.image_shape_ == (6, 6, 2) and again.n_features_in_ == 72
    assert list(again.feature_names_in_) == list(df.columns)
    out = again.transform(df)
    assert list(out.index) == [10, 11, 12, 13]
    np.testing.assert_allclose(out.to_numpy(), images.reshape(4, -1))
    # plain flat rows with image_shape; flat in gives flat out
    flat = X.reshape(4, -1)
    norm = MaxNormalizer(image_shape=(6, 6, 2)).fit(flat)
    np.testing.assert_array_equal(norm.transform(flat), images.reshape(4, -1))
    np.testing.assert_array_equal(norm.transform(X), images)  # images stay images
    ratio = ChannelRatio(image_shape=(6, 6, 2)).fit(flat)
    np.testing.assert_array_equal(ratio.transform(flat),
                                  ChannelRatio().fit_transform(X).reshape(4, -1))
    # a model fitted on images reads flat rows of that shape
    assert MaxNormalizer().fit(X).transform(flat).shape == (4, 72)


def test_flat_input_errors():
    X = _crops(n=3, size=6)
    with pytest.raises(ValueError, match="set image_shape"):
        MaxNormalizer().fit(X.reshape(3, -1))
    with pytest.raises(ValueError, match="set image_shape"):  # unknown column names
        IntensityStretch().fit(pd.DataFrame(X.reshape(3, -1)))
    with pytest.raises(ValueError, match="36 pixels per row but images of shape"):
        MaxNormalizer(image_shape=(5, 5)).fit(X.reshape(3, -1))
    with pytest.raises(ValueError, match="image_shape must be"):
        MaxNormalizer(image_shape=(4,)).fit(X)
    with pytest.raises(ValueError, match=r"but image_shape is \(5, 5\)"):
        MaxNormalizer(image_shape=(5, 5)).fit(X)
    with pytest.raises(ValueError, match="25 pixels per row"):
        MaxNormalizer().fit(X).transform(np.ones((2, 25)))
    with pytest.raises(ValueError, match="shape"):
        ChannelRatio(image_shape=(6, 6)).fit(X.reshape(3, -1))  # needs channels
    pandas_norm = MaxNormalizer().set_output(transform="pandas").fit(X)
    with pytest.raises(ValueError, match="transforms images of that shape only"):
        pandas_norm.transform(_crops(n=2, size=8))
    with pytest.raises(ValueError, match="input_features has 3 names"):
        pandas_norm.get_feature_names_out(["a", "b", "c"])
    with pytest.raises(NotFittedError):
        MaxNormalizer().get_feature_names_out()


def test_pandas_pipeline_ends_in_cellfate_aae():
    from ai4cellfate import CellFateAAE
    from ai4cellfate.datasets import make_nuclei

    X, y = make_nuclei(48, image_size=12, random_state=0)
    pipe = Pipeline([
        ("max", MaxNormalizer()),
        ("stretch", IntensityStretch()),
        ("aae", CellFateAAE(image_shape=(12, 12), stage1_epochs=1, min_epochs=1,
                            max_epochs=1, batch_size=16, random_state=0)),
    ]).set_output(transform="pandas")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short training: latent-space warnings
        pipe.fit(X, y)
    pixels = pipe[:-1].transform(X)
    assert isinstance(pixels, pd.DataFrame) and pixels.shape == (48, 144)
    Z = pipe.transform(X)
    assert isinstance(Z, pd.DataFrame) and list(Z.columns) == ["z0", "z1"]
    images = Pipeline([(n, clone(s)) for n, s in pipe.steps[:-1]]).fit_transform(X)
    np.testing.assert_allclose(Z.to_numpy(), pipe[-1].transform(images), rtol=1e-6)
    assert pipe.predict(X).shape == (48,) and pipe.predict_proba(X).shape == (48, 2)
    assert list(pipe.get_feature_names_out()) == ["z0", "z1"]
