"""Batch normalisation with a hand-written gradient (``ai4cellfate._jax_ops``)
and the batch-norm layer that uses it on JAX."""

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
    initial_mean = ops.convert_to_numpy(ours.moving_mean).copy()
    x = _images((5, 4, 6, 3))
    for training in (True, False):
        np.testing.assert_allclose(ops.convert_to_numpy(ours(x, training=training)),
                                   ops.convert_to_numpy(theirs(x, training=training)),
                                   rtol=1e-5, atol=1e-5)
    for a, b in zip(ours.non_trainable_weights, theirs.non_trainable_weights):
        np.testing.assert_allclose(ops.convert_to_numpy(a), ops.convert_to_numpy(b),
                                   rtol=1e-5, atol=1e-6)
    # the training call moved the moving mean (momentum 0.9 towards the batch mean)
    np.testing.assert_allclose(ops.convert_to_numpy(ours.moving_mean),
                               0.9 * initial_mean + 0.1 * x.mean(axis=(0, 1, 2)),
                               rtol=1e-5, atol=1e-6)
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
def test_training_step_runs_the_batch_norms_through_jax_ops(monkeypatch):
    """A traced JAX training step runs every batch norm of the encoder and
    decoder through ``batch_norm_train`` (shapes are static there); on the
    other backends a fit never calls it."""
    import keras

    from ai4cellfate.training import AdversarialAutoencoder

    calls = []
    original = _jax_ops.batch_norm_train

    def counted(*args):
        calls.append(tuple(args[0].shape))
        return original(*args)

    monkeypatch.setattr(_jax_ops, "batch_norm_train", counted)
    model = AdversarialAutoencoder((20, 20, 1), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    rng = np.random.default_rng(0)
    x = rng.random((8, 20, 20, 1)).astype("float32")
    y = (np.arange(8) % 2).astype("float32")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    bns = [layer for net in (model.encoder, model.decoder) for layer in net.layers
           if isinstance(layer, BatchNormalization)]
    assert len(bns) == 8
    if keras.backend.backend() != "jax":
        assert calls == []
        return
    # the fit may have reused a step compiled earlier in this process or on
    # disk, so trace the step here
    calls.clear()
    state = ([v.value for v in model.trainable_variables],
             [v.value for v in model.non_trainable_variables],
             [v.value for v in model.optimizer.variables],
             [v.value for v in model.metrics_variables])
    jax.eval_shape(lambda s, d: model.train_step(s, d), state, (x, y))
    assert len(calls) == 8 and all(shape[0] == 8 for shape in calls)
    assert sorted({shape[-1] for shape in calls}) == [2, 8, 16]
