"""Per-channel operations with hand-written gradients (``ai4cellfate._jax_ops``)
and the batch-norm layer that uses them on JAX."""

import numpy as np
import pytest
from keras import ops

jax = pytest.importorskip("jax")
jnp = jax.numpy

from ai4cellfate import _jax_ops  # noqa: E402
from ai4cellfate.networks import BatchNormalization  # noqa: E402


def _images(shape=(5, 4, 6, 3), seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=shape) * rng.uniform(0.5, 3.0, shape[-1])
            + rng.normal(size=shape[-1])).astype("float32")


def test_channel_sum_equals_numpy():
    x = _images()
    np.testing.assert_allclose(np.asarray(_jax_ops.channel_sum(x)),
                               x.astype("float64").sum(axis=(0, 1, 2)), rtol=1e-5)


def _keras_formula(x, gamma, beta, epsilon):
    """Keras' JAX batch norm in training: ``jnp.mean`` / ``jnp.var`` moments,
    then ``x * inv + (beta - mean * inv)``."""
    mean = jnp.mean(x, axis=(0, 1, 2))
    variance = jnp.var(x, axis=(0, 1, 2))
    inv = jax.lax.rsqrt(variance + epsilon) * gamma
    return x * inv + (-mean * inv + beta), mean, variance


@pytest.mark.parametrize("shape", [(5, 4, 6, 3), (30, 20, 20, 2), (2, 3, 3, 16)])
def test_batch_norm_train_values_and_gradients_equal_autodiff(shape):
    """Outputs, batch statistics and gradients (cotangents on the
    statistics included) against autodiff of Keras' formula."""
    x = _images(shape)
    rng = np.random.default_rng(1)
    c = shape[-1]
    gamma = rng.uniform(0.5, 2.0, c).astype("float32")
    beta = rng.normal(size=c).astype("float32")
    wy, wm, wv = (rng.normal(size=s).astype("float32") for s in (shape, c, c))

    def loss(fn):
        def f(x, gamma, beta):
            y, mean, variance = fn(x, gamma, beta, 1e-3)
            return jnp.sum(y * wy) + jnp.sum(mean * wm) + jnp.sum(variance * wv)
        return f

    got = _jax_ops.batch_norm_train(x, gamma, beta, 1e-3)
    want = _keras_formula(x, gamma, beta, 1e-3)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-5)
    g_got = jax.grad(loss(_jax_ops.batch_norm_train), argnums=(0, 1, 2))(x, gamma, beta)
    g_want = jax.grad(loss(_keras_formula), argnums=(0, 1, 2))(x, gamma, beta)
    for g, w in zip(g_got, g_want):
        scale = float(np.abs(np.asarray(w)).max())
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-5 * scale)
    # jitted, as in a training step
    jitted = jax.jit(jax.grad(loss(_jax_ops.batch_norm_train), argnums=(0, 1, 2)))(x, gamma, beta)
    for g, w in zip(jitted, g_want):
        scale = float(np.abs(np.asarray(w)).max())
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-5 * scale)


def test_add_channel_bias_values_and_gradients():
    x = _images((4, 5, 6, 2))
    bias = np.array([0.5, -2.0], "float32")
    w = np.random.default_rng(2).normal(size=x.shape).astype("float32")
    np.testing.assert_array_equal(np.asarray(_jax_ops.add_channel_bias(x, bias)), x + bias)
    dx, db = jax.grad(lambda x, b: jnp.sum(_jax_ops.add_channel_bias(x, b) * w),
                      argnums=(0, 1))(x, bias)
    np.testing.assert_array_equal(np.asarray(dx), w)
    np.testing.assert_allclose(np.asarray(db), w.astype("float64").sum(axis=(0, 1, 2)),
                               rtol=1e-5)


def _pair(momentum=0.9):
    """An ai4cellfate BatchNormalization and a Keras BatchNormalization with the
    same (non-default) weights."""
    import keras

    ours = BatchNormalization(momentum=momentum)
    theirs = keras.layers.BatchNormalization(momentum=momentum)
    for layer in (ours, theirs):
        layer.build((None, 4, 6, 3))
    rng = np.random.default_rng(3)
    weights = [rng.uniform(0.5, 2.0, 3), rng.normal(size=3), rng.normal(size=3),
               rng.uniform(0.5, 2.0, 3)]
    for layer in (ours, theirs):
        layer.set_weights([w.astype("float32") for w in weights])
    return ours, theirs


@pytest.mark.backend
def test_image_batch_norm_equals_keras_batch_norm():
    """Training and inference outputs and the moving statistics equal Keras'
    layer on every backend; the configuration round-trips."""
    import keras

    ours, theirs = _pair()
    x = _images((5, 4, 6, 3))
    for training in (True, False):
        np.testing.assert_allclose(ops.convert_to_numpy(ours(x, training=training)),
                                   ops.convert_to_numpy(theirs(x, training=training)),
                                   rtol=1e-5, atol=1e-5)
    for a, b in zip(ours.non_trainable_weights, theirs.non_trainable_weights):
        np.testing.assert_allclose(ops.convert_to_numpy(a), ops.convert_to_numpy(b),
                                   rtol=1e-5, atol=1e-6)
    before = ops.convert_to_numpy(theirs.moving_mean)
    assert not np.allclose(before, np.random.default_rng(3).normal(size=3))  # it moved
    clone = keras.layers.deserialize(keras.layers.serialize(ours))
    assert type(clone) is BatchNormalization and clone.momentum == 0.9


@pytest.mark.backend
def test_image_batch_norm_gradients_equal_keras_on_jax():
    """On JAX (where the layer runs its own gradient) the gradients with
    respect to the input, scale and offset, and the new moving statistics,
    equal those of Keras' layer under ``stateless_call``; on the other
    backends the layer runs Keras' code."""
    import keras

    from ai4cellfate import networks

    x = _images((5, 4, 6, 3))
    if keras.backend.backend() != "jax":
        assert networks._channel_ops(ops.convert_to_tensor(x)) is None
        return
    assert networks._channel_ops(jnp.asarray(x)) is _jax_ops
    ours, theirs = _pair()
    w = np.random.default_rng(4).normal(size=x.shape).astype("float32")

    def grads(layer):
        nt = [v.value for v in layer.non_trainable_variables]

        def f(trainable, x):
            out, new_nt = layer.stateless_call(trainable, nt, x, training=True)
            return jnp.sum(out * w), new_nt

        (_, new_nt), g = jax.value_and_grad(f, argnums=(0, 1), has_aux=True)(
            [v.value for v in layer.trainable_variables], x)
        return g, new_nt

    (g_ours, gx_ours), nt_ours = grads(ours)
    (g_theirs, gx_theirs), nt_theirs = grads(theirs)
    for a, b in zip([*g_ours, gx_ours, *nt_ours], [*g_theirs, gx_theirs, *nt_theirs]):
        scale = float(np.abs(np.asarray(b)).max())
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.backend
def test_training_step_runs_the_channel_operations_on_jax(monkeypatch):
    """A traced JAX training step runs every batch norm of the encoder and
    decoder through ``batch_norm_train`` (shapes are static there) and every
    convolution bias through ``add_channel_bias``; on the other backends a
    fit runs neither."""
    import keras

    from ai4cellfate.training import AdversarialAutoencoder

    calls = {"batch_norm_train": 0, "add_channel_bias": 0}
    for name in calls:
        original = getattr(_jax_ops, name)

        def counted(*args, _original=original, _name=name):
            calls[_name] += 1
            return _original(*args)

        monkeypatch.setattr(_jax_ops, name, counted)
    model = AdversarialAutoencoder((20, 20, 1), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    rng = np.random.default_rng(0)
    x = rng.random((8, 20, 20, 1)).astype("float32")
    y = (np.arange(8) % 2).astype("float32")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    nets = (model.encoder, model.decoder)
    n_bn = sum(isinstance(layer, BatchNormalization) for n in nets for layer in n.layers)
    n_conv = sum(type(layer).__name__ == "SpectralConv2D" for n in nets for layer in n.layers)
    assert n_bn == 8 and n_conv == 14
    if keras.backend.backend() != "jax":
        assert calls == {"batch_norm_train": 0, "add_channel_bias": 0}
        return
    # the fit may have reused a step compiled earlier in this process or on
    # disk, so trace the step here
    for name in calls:
        calls[name] = 0
    state = ([v.value for v in model.trainable_variables],
             [v.value for v in model.non_trainable_variables],
             [v.value for v in model.optimizer.variables],
             [v.value for v in model.metrics_variables])
    jax.eval_shape(lambda s, d: model.train_step(s, d), state, (x, y))
    assert calls == {"batch_norm_train": n_bn, "add_channel_bias": n_conv}
