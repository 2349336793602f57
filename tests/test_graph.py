"""Layer-by-layer forward passes (ai4cellfate.training._graph) give what the
Keras model call gives, in inference and in training (state updates included)."""

import keras
import numpy as np
import pytest
from keras import ops

from ai4cellfate.networks import build_decoder, build_discriminator, build_encoder
from ai4cellfate.training import _graph

pytestmark = pytest.mark.backend


def _reseed():
    if keras.backend.backend() == "torch":
        import torch

        torch.manual_seed(0)


@pytest.mark.parametrize("build, shape", [
    (lambda: build_encoder((20, 20, 1), seed=1), (6, 20, 20, 1)),
    (lambda: build_decoder((20, 20, 1), seed=2), (6, 2)),
    (lambda: build_decoder((25, 30, 2), latent_dim=3, seed=2), (6, 3)),
    (lambda: build_discriminator(2, seed=3), (6, 2)),
])
def test_forward_equals_the_model_call(build, shape):
    net = build()
    x = ops.convert_to_tensor(np.random.default_rng(0).normal(size=shape).astype("float32"))
    np.testing.assert_allclose(ops.convert_to_numpy(_graph.forward(net, x, training=False)),
                               ops.convert_to_numpy(net(x, training=False)), rtol=1e-6, atol=1e-6)
    start = [ops.convert_to_numpy(v).copy() for v in net.variables]
    _reseed()
    want = ops.convert_to_numpy(net(x, training=True))
    after_call = [ops.convert_to_numpy(v).copy() for v in net.variables]
    for v, value in zip(net.variables, start):
        v.assign(value)
    _reseed()
    got = ops.convert_to_numpy(_graph.forward(net, x, training=True))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert not np.allclose(got, ops.convert_to_numpy(_graph.forward(net, x, training=False)))
    # batch statistics, spectral-norm vectors and seed states moved the same way
    for v, a in zip(net.variables, after_call):
        np.testing.assert_allclose(ops.convert_to_numpy(v), a, rtol=1e-6, atol=1e-6,
                                   err_msg=v.path)
    assert any(not np.array_equal(a, s) for a, s in zip(after_call, start))


def test_forward_falls_back_for_nested_models():
    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    inputs = keras.Input((3,))
    outer = keras.Model(inputs, inner(inputs))
    assert _graph._plan(outer) is None
    x = np.ones((2, 3), "float32")
    np.testing.assert_allclose(ops.convert_to_numpy(_graph.forward(outer, x, False)),
                               ops.convert_to_numpy(outer(x)))
