"""Networks derived from the input shape (method specification, section 2)."""

import numpy as np
import pytest
from keras import ops

from ai4cellfate.networks import (
    SpectralConv2D,
    block_plan,
    build_decoder,
    build_discriminator,
    build_encoder,
    build_latent_classifier,
)


@pytest.mark.parametrize(
    "shape", [(16, 16, 1), (20, 20, 1), (32, 32, 2), (40, 40, 1), (64, 64, 1), (25, 30, 1), (20, 40, 3)]
)
def test_encoder_decoder_shapes(shape):
    enc = build_encoder(shape, latent_dim=3)
    dec = build_decoder(shape, latent_dim=3)
    assert enc.output_shape == (None, 3)
    assert dec.output_shape == (None,) + shape
    x = np.random.default_rng(0).random((2,) + shape).astype("float32")
    out = np.asarray(dec.predict(enc.predict(x, verbose=0), verbose=0))
    assert out.shape == (2,) + shape and out.min() >= 0 and out.max() <= 1


def test_parameter_budget_and_block_rule():
    enc, dec = build_encoder((20, 20, 1)), build_decoder((20, 20, 1))
    n = enc.count_params() + dec.count_params()
    assert n < 1_000_000
    assert block_plan((20, 20, 1)) == {"filters": [8, 16], "bottleneck": (5, 5), "decoded": (20, 20)}
    assert block_plan((64, 64, 1))["filters"] == [8, 16, 32, 64]
    with pytest.raises(ValueError, match="at least 4 x 4"):
        block_plan((3, 20, 1))


@pytest.mark.parametrize("latent_dim", [1, 2, 5])
def test_any_latent_dim(latent_dim):
    assert build_encoder((16, 16, 1), latent_dim).output_shape == (None, latent_dim)
    assert build_discriminator(latent_dim).output_shape == (None, 1)
    assert build_latent_classifier(latent_dim, 3).output_shape == (None, 3)


def test_strided_pointwise_conv_reads_every_other_pixel():
    """A strided 1x1 convolution equals a 1x1 convolution of the subsampled image."""
    x = np.random.default_rng(1).random((2, 9, 7, 3)).astype("float32")
    strided = SpectralConv2D(4, 1, strides=2, sn_seed=0)
    plain = SpectralConv2D(4, 1, strides=1, sn_seed=0)
    out = ops.convert_to_numpy(strided(x))
    plain(x[:, ::2, ::2])
    plain.set_weights(strided.get_weights())
    assert out.shape == (2, 5, 4, 4)
    np.testing.assert_allclose(out, ops.convert_to_numpy(plain(x[:, ::2, ::2])), atol=1e-6)
    # and a spectrally normalised kernel has spectral norm ~1 after power iterations
    for _ in range(30):
        strided(x, training=True)
    k = ops.convert_to_numpy(strided.kernel).reshape(-1, 4)
    u = ops.convert_to_numpy(strided.sn_u)
    sigma_est = np.linalg.norm(k @ u.T)  # ~ largest singular value
    assert np.isclose(sigma_est, np.linalg.svd(k, compute_uv=False)[0], rtol=1e-2)


@pytest.mark.parametrize("shape, fans", [((3, 3, 2, 8), (18, 72)), ((400, 2), (400, 2)),
                                         ((1, 1, 16, 8), (16, 8))])
def test_seeded_glorot_uniform_matches_glorot_bounds_and_variance(shape, fans):
    from ai4cellfate.networks import SeededGlorotUniform

    limit = np.sqrt(6.0 / sum(fans))
    w = SeededGlorotUniform(seed=3)(shape, "float32")
    assert w.shape == shape and w.dtype == np.float32
    assert np.abs(w).max() <= limit
    assert np.array_equal(SeededGlorotUniform(seed=3)(shape), w)   # same seed, same values
    assert not np.array_equal(SeededGlorotUniform(seed=4)(shape), w)
    many = np.concatenate([SeededGlorotUniform(seed=s)(shape).ravel() for s in range(50)])
    assert abs(many.std() - limit / np.sqrt(3)) < 0.05 * limit


def test_seeded_initialisers_round_trip_through_keras_serialisation():
    import keras

    from ai4cellfate.networks import SeededGlorotUniform, SeededNormal

    for init in (SeededGlorotUniform(seed=5), SeededNormal(seed=5, stddev=2.0)):
        back = keras.initializers.deserialize(keras.initializers.serialize(init))
        assert type(back) is type(init)
        np.testing.assert_array_equal(back((4, 3)), init((4, 3)))
    z = SeededNormal(seed=1, stddev=2.0)((20000,))
    assert abs(z.std() - 2.0) < 0.05 and abs(z.mean()) < 0.05
