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


@pytest.mark.backend
def test_seeded_initialisers_give_arrays_keras_takes_as_they_are():
    """On JAX the initial values come as device arrays, which Keras keeps as
    they are (its own conversion of a NumPy array compiles an XLA program per
    shape); on every backend a variable gets exactly the NumPy draw."""
    import keras

    from ai4cellfate.networks import SeededGlorotUniform, SeededNormal

    shape = (3, 3, 5, 11)
    for init, draw in ((SeededGlorotUniform(seed=7),
                        lambda: np.random.default_rng(7).uniform(
                            -np.sqrt(6 / (45 + 99)), np.sqrt(6 / (45 + 99)), shape)),
                       (SeededNormal(seed=7), lambda: np.random.default_rng(7).normal(size=shape))):
        values = init(shape, "float32")
        if keras.backend.backend() == "jax":
            import jax

            assert isinstance(values, jax.Array)
            assert keras.ops.convert_to_tensor(values, "float32") is values
        variable = keras.Variable(initializer=init, shape=shape, dtype="float32")
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable),
                                      draw().astype("float32"))


@pytest.mark.backend
@pytest.mark.parametrize("kernel_size, c_in, filters, activation",
                         [(3, 8, 2, None), (3, 16, 8, "relu"), (3, 2, 1, "sigmoid"),
                          (1, 16, 8, None), (1, 8, 2, "relu")])
def test_upsampled_conv_equals_upsampling_then_conv(kernel_size, c_in, filters, activation):
    """SpectralConv2D(upsample=2) against UpSampling2D(2) then the same convolution
    (same kernel, bias and spectral normalisation), values and gradients."""
    import keras

    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 5, 7, c_in)).astype("float32")
    kw = dict(padding="same", activation=activation, sn_seed=4)
    fused = SpectralConv2D(filters, kernel_size, upsample=2, **kw)
    plain = SpectralConv2D(filters, kernel_size, **kw)
    fused.build((None, 5, 7, c_in))
    plain.build((None, 10, 14, c_in))
    weights = [rng.normal(size=w.shape).astype("float32") for w in fused.get_weights()]
    fused.set_weights(weights)
    plain.set_weights(weights)
    up = keras.layers.UpSampling2D(2, interpolation="nearest")
    for training in (False, True):
        got = ops.convert_to_numpy(fused(x, training=training))
        want = ops.convert_to_numpy(plain(up(x), training=training))
        assert got.shape == (3, 10, 14, filters)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert fused.compute_output_shape((None, 5, 7, c_in)) == (None, 10, 14, filters)
    # gradient with respect to the kernel (the layer is linear in it before
    # the normalisation): the same loss gives the same gradient
    g_fused = _kernel_gradient(fused, x)
    g_plain = _kernel_gradient(plain, ops.convert_to_numpy(up(x)))
    np.testing.assert_allclose(g_fused, g_plain, rtol=1e-4, atol=1e-4)
    clone = SpectralConv2D.from_config(fused.get_config())
    assert clone.upsample == 2


def _kernel_gradient(layer, x):
    """d sum(layer(x) * w) / d kernel with fixed weights w, on any backend."""
    import keras

    w = np.cos(np.arange(np.prod(layer.compute_output_shape(x.shape)))).reshape(
        layer.compute_output_shape(x.shape)).astype("float32")
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        def f(kernel):
            values = [kernel if v is layer.kernel else v.value for v in layer.trainable_variables]
            out, _ = layer.stateless_call(values, [v.value for v in layer.non_trainable_variables],
                                          x, training=False)
            return (out * w).sum()

        return np.asarray(jax.grad(f)(layer.kernel.value))
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x, training=False) * w)
        return tape.gradient(loss, layer.kernel.value).numpy()
    import torch

    loss = (layer(x, training=False) * torch.from_numpy(w)).sum()
    (grad,) = torch.autograd.grad(loss, [layer.kernel.value])
    return grad.numpy()


@pytest.mark.parametrize("kwargs", [dict(strides=2, padding="same"), dict(padding="valid"),
                                    dict(kernel_size=5, padding="same"), dict(upsample=3)])
def test_upsampled_conv_refuses_what_it_cannot_compute(kwargs):
    kwargs = {"kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match="upsample"):
        SpectralConv2D(4, upsample=kwargs.pop("upsample", 2), **kwargs)


def test_decoder_has_no_separate_upsampling_layers():
    dec = build_decoder((20, 20, 1))
    assert not [la for la in dec.layers if type(la).__name__ == "UpSampling2D"]
    ups = sorted(la.name for la in dec.layers if getattr(la, "upsample", 1) == 2)
    assert ups == ["up0_conv1", "up0_skip", "up1_conv1", "up1_skip"]


class _PlainConv(SpectralConv2D):
    """SpectralConv2D that always convolves the whole image."""

    def _blocked(self, inputs, strides):
        return False


@pytest.mark.backend
@pytest.mark.parametrize("c_in, filters, activation, hw",
                         [(1, 2, "relu", (20, 20)), (2, 2, None, (20, 20)),
                          (2, 1, "sigmoid", (20, 20)), (4, 4, None, (6, 10)),
                          (2, 2, None, (5, 7))])
def test_blocked_conv_equals_the_plain_convolution(c_in, filters, activation, hw):
    """The block-wise 3x3 convolution (JAX, few channels, even sides) against
    the convolution of the whole image, values and kernel gradients; odd
    sides fall back to the plain one."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, *hw, c_in)).astype("float32")
    kw = dict(padding="same", activation=activation, sn_seed=5)
    blocked, plain = SpectralConv2D(filters, 3, **kw), _PlainConv(filters, 3, **kw)
    for layer in (blocked, plain):
        layer.build((None, *hw, c_in))
    weights = [rng.normal(size=w.shape).astype("float32") for w in blocked.get_weights()]
    blocked.set_weights(weights)
    plain.set_weights(weights)
    import keras

    expect_blocked = keras.backend.backend() == "jax" and hw[0] % 2 == 0 and hw[1] % 2 == 0
    assert blocked._blocked(x, (1, 1)) == expect_blocked
    for training in (False, True):
        np.testing.assert_allclose(ops.convert_to_numpy(blocked(x, training=training)),
                                   ops.convert_to_numpy(plain(x, training=training)),
                                   rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_kernel_gradient(blocked, x), _kernel_gradient(plain, x),
                               rtol=1e-4, atol=1e-4)


def test_blocked_conv_is_not_used_for_many_channels_or_strides():
    layer = SpectralConv2D(8, 3, padding="same")
    layer.build((None, 20, 20, 8))
    assert not layer._blocked(np.zeros((1, 20, 20, 8), "float32"), (1, 1))
    strided = SpectralConv2D(2, 3, strides=2, padding="same")
    strided.build((None, 20, 20, 1))
    assert not strided._blocked(np.zeros((1, 20, 20, 1), "float32"), (2, 2))


def _swap_noise_and_reshape(net, kind):
    """``net`` rewired to the specification's order around its flattening
    (encoder: ``Flatten -> GN -> swish``; decoder: ``Dense -> GN -> Reshape``),
    sharing its layers."""
    import keras

    layers = net.layers
    if kind == "encoder":
        flatten = next(la for la in layers if isinstance(la, keras.layers.Flatten))
        i = layers.index(flatten)
        noise, swish = layers[i - 2], layers[i - 1]
        assert type(noise).__name__ == "CounterGaussianNoise"
        x = swish(noise(keras.layers.Flatten()(noise.input)))
        x = layers[i + 2](layers[i + 1](x))  # SN dense, latent noise
        return keras.Model(net.input, x)
    reshape = next(la for la in layers if isinstance(la, keras.layers.Reshape))
    i = layers.index(reshape)
    noise = layers[i + 1]
    assert type(noise).__name__ == "CounterGaussianNoise"
    x = keras.layers.Reshape(reshape.target_shape)(noise(reshape.input))
    tail = keras.Model(noise.output, net.output)
    return keras.Model(net.input, tail(x))


@pytest.mark.backend
@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_noise_next_to_the_flattening_is_the_specified_order_bit_for_bit(kind):
    """The encoder adds its noise and swish before flattening and the decoder
    reshapes before its noise (XLA fuses them faster so): the same function,
    in training mode too, as the specification's order."""
    net = build_encoder((20, 20, 1), seed=3) if kind == "encoder" else build_decoder((20, 20, 1), seed=3)
    spec = _swap_noise_and_reshape(net, kind)
    rng = np.random.default_rng(0)
    x = rng.random((6, 20, 20, 1) if kind == "encoder" else (6, 2)).astype("float32")
    start = [ops.convert_to_numpy(v.value) for v in net.variables]
    out = ops.convert_to_numpy(net(x, training=True))
    after = [ops.convert_to_numpy(v.value) for v in net.variables]
    for v, value in zip(net.variables, start):
        v.assign(value)
    ref = ops.convert_to_numpy(spec(x, training=True))
    assert np.array_equal(out, ref)
    assert all(np.array_equal(a, ops.convert_to_numpy(v.value)) for a, v in zip(after, net.variables))
    # the noise is there: a second draw differs
    assert not np.array_equal(out, ops.convert_to_numpy(net(x, training=True)))


@pytest.mark.backend
def test_host_constant_fills_on_the_host_and_round_trips():
    import keras

    from ai4cellfate.networks import HostConstant

    for value, dtype in ((0.0, "float32"), (1.0, "float32"), (2.5, "float16")):
        init = HostConstant(value)
        got = init((2, 3), dtype)
        np.testing.assert_array_equal(np.asarray(got), np.full((2, 3), value, dtype))
        assert keras.backend.standardize_dtype(got.dtype) == dtype
        if keras.backend.backend() == "jax":
            import jax

            assert isinstance(got, jax.Array)
        back = keras.initializers.deserialize(keras.initializers.serialize(init))
        assert type(back) is HostConstant and back.value == value
    assert float(HostConstant(3)(())) == 3.0


def test_network_biases_and_batch_norms_start_as_keras_would():
    """Biases and batch-norm variables are filled on the host with Keras'
    defaults (zeros; ones for the scale and the moving variance)."""
    from ai4cellfate.networks import BatchNormalization, HostConstant

    enc = build_encoder((20, 20, 1))
    bns = [layer for layer in enc.layers if isinstance(layer, BatchNormalization)]
    assert bns
    for bn in bns:
        assert isinstance(bn.gamma_initializer, HostConstant)
        np.testing.assert_array_equal(np.asarray(bn.gamma), 1.0)
        np.testing.assert_array_equal(np.asarray(bn.moving_variance), 1.0)
        np.testing.assert_array_equal(np.asarray(bn.beta), 0.0)
        np.testing.assert_array_equal(np.asarray(bn.moving_mean), 0.0)
    for net in (enc, build_decoder((20, 20, 1)), build_discriminator(2),
                build_latent_classifier(2, 2)):
        biased = [layer for layer in net.layers if getattr(layer, "bias", None) is not None]
        assert biased
        for layer in biased:
            assert isinstance(layer.bias_initializer, HostConstant)
            np.testing.assert_array_equal(np.asarray(layer.bias), 0.0)
