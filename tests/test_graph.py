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


def _kernel_choices():
    """No kernels; on PyTorch also the torch-native layers of the train step."""
    if keras.backend.backend() != "torch":
        return [None]
    from ai4cellfate.training import _torch_layers

    return [None, _torch_layers.kernel_for]


_NETS = [
    (lambda: build_encoder((20, 20, 1), seed=1), (6, 20, 20, 1)),
    (lambda: build_decoder((20, 20, 1), seed=2), (6, 2)),
    (lambda: build_decoder((25, 30, 2), latent_dim=3, seed=2), (6, 3)),
    (lambda: build_encoder((27, 22, 2), latent_dim=3, seed=4), (5, 27, 22, 2)),
    (lambda: build_discriminator(2, seed=3), (6, 2)),
]


@pytest.mark.parametrize("kernels", _kernel_choices())
@pytest.mark.parametrize("build, shape", _NETS)
def test_forward_equals_the_model_call(build, shape, kernels):
    net = build()
    x = ops.convert_to_tensor(np.random.default_rng(0).normal(size=shape).astype("float32"))
    tol = dict(rtol=1e-6, atol=1e-6) if kernels is None else dict(rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(
        ops.convert_to_numpy(_graph.forward(net, x, training=False, kernel_for=kernels)),
        ops.convert_to_numpy(net(x, training=False)), **tol)
    start = [ops.convert_to_numpy(v).copy() for v in net.variables]
    _reseed()
    want = ops.convert_to_numpy(net(x, training=True))
    after_call = [ops.convert_to_numpy(v).copy() for v in net.variables]
    for v, value in zip(net.variables, start):
        v.assign(value)
    _reseed()
    got = ops.convert_to_numpy(_graph.forward(net, x, training=True, kernel_for=kernels))
    np.testing.assert_allclose(got, want, **tol)
    assert not np.allclose(got, ops.convert_to_numpy(_graph.forward(net, x, training=False)))
    # batch statistics, spectral-norm vectors and seed states moved the same way
    for v, a in zip(net.variables, after_call):
        np.testing.assert_allclose(ops.convert_to_numpy(v), a, err_msg=v.path, **tol)
    assert any(not np.array_equal(a, s) for a, s in zip(after_call, start))


def test_forward_falls_back_for_nested_models():
    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    inputs = keras.Input((3,))
    outer = keras.Model(inputs, inner(inputs))
    assert _graph._plan(outer) is None
    x = np.ones((2, 3), "float32")
    np.testing.assert_allclose(ops.convert_to_numpy(_graph.forward(outer, x, False)),
                               ops.convert_to_numpy(outer(x)))
