"""The PyTorch-native train-step pieces give what Keras gives: layer kernels
(ai4cellfate.training._torch_layers), the losses' torch namespace
(ai4cellfate._torch_ops), dropout draws and loss trackers."""

import keras
import numpy as np
import pytest
from keras import layers, ops

from ai4cellfate import _random, losses
from ai4cellfate.networks import (
    SpectralConv2D,
    build_decoder,
    build_discriminator,
    build_encoder,
)
from ai4cellfate.training import _graph

pytestmark = [
    pytest.mark.backend,
    pytest.mark.skipif(keras.backend.backend() != "torch",
                       reason="PyTorch-only code paths (other backends never run them)"),
]

if keras.backend.backend() == "torch":
    import torch

    from ai4cellfate import _torch_ops
    from ai4cellfate.training import _torch, _torch_layers


@pytest.mark.parametrize("build", [
    lambda: build_encoder((20, 20, 1), seed=1),
    lambda: build_decoder((20, 20, 1), seed=2),
    lambda: build_discriminator(2, seed=3),
])
def test_kernels_cover_every_layer_of_the_networks(build):
    net = build()
    missing = [layer.name for layer in net.layers
               if not isinstance(layer, layers.InputLayer)
               and _torch_layers.kernel_for(layer) is None]
    assert missing == []


def test_uncovered_configurations_fall_back_to_the_layer():
    x2 = keras.Input((4,))
    assert _torch_layers.kernel_for(layers.Dense(3, activation="softmax")) is None
    renorm = layers.BatchNormalization(renorm=True)
    renorm(x2)
    assert _torch_layers.kernel_for(renorm) is None
    half = SpectralConv2D(2, 3, padding="same", dtype="mixed_float16")
    half(keras.Input((6, 6, 1)))
    assert _torch_layers.kernel_for(half) is None
    shaped = _random.CounterDropout(0.3, noise_shape=(None, 1), seed=0)
    assert _torch_layers.kernel_for(shaped) is None
    assert _torch_layers.kernel_for(layers.LeakyReLU(0.2)) is not None


@pytest.mark.parametrize("build, shape", [
    (lambda: build_encoder((27, 22, 2), latent_dim=3, seed=4), (5, 27, 22, 2)),
    (lambda: build_decoder((20, 20, 1), seed=2), (6, 2)),
    (lambda: build_discriminator(2, seed=3), (6, 2)),
])
def test_kernel_gradients_equal_the_model_calls(build, shape):
    net = build()
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=shape).astype("float32"))
    start = [ops.convert_to_numpy(v).copy() for v in net.variables]
    params = [v.value for v in net.trainable_variables]

    def grads(run):
        for v, value in zip(net.variables, start):
            v.assign(value)
        out = run()
        weights = torch.from_numpy(rng_w.normal(size=tuple(out.shape)).astype("float32"))
        g = torch.autograd.grad((out * weights).sum(), params, allow_unused=True)
        return [np.zeros(p.shape) if gi is None else gi.numpy() for gi, p in zip(g, params)]

    rng_w = np.random.default_rng(1)
    want = grads(lambda: net(x, training=True))
    rng_w = np.random.default_rng(1)
    got = grads(lambda: _graph.forward(net, x, True, kernel_for=_torch_layers.kernel_for))
    scale = max(np.abs(w).max() for w in want)
    assert scale > 0
    for g, w, v in zip(got, want, net.trainable_variables):
        # float32 rounding differs (fused batch norm, bias inside the convolution);
        # some gradients are rounding noise only (a batch norm's offset before
        # another batch norm), so the tolerance is relative to the largest one
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=2e-6 * scale, err_msg=v.path)


def test_batch_norm_kernel_inference_and_frozen_layer():
    bn = layers.BatchNormalization(momentum=0.9, epsilon=1e-3)
    x = torch.from_numpy(np.random.default_rng(0).normal(2.0, 3.0, (7, 3, 4, 5)).astype("float32"))
    bn(x, training=True)  # moving statistics away from 0 / 1
    kernel = _torch_layers.kernel_for(bn)
    np.testing.assert_allclose(kernel(bn, x, False).detach().numpy(),
                               ops.convert_to_numpy(bn(x, training=False)), rtol=1e-5, atol=1e-5)
    bn.trainable = False  # Keras 3: a frozen batch norm runs in inference mode
    before = ops.convert_to_numpy(bn.moving_mean).copy()
    np.testing.assert_allclose(kernel(bn, x, True).detach().numpy(),
                               ops.convert_to_numpy(bn(x, training=False)), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ops.convert_to_numpy(bn.moving_mean), before)


def test_torch_dropout_draws():
    gen = keras.random.SeedGenerator(3)
    x = torch.ones((400, 500))
    state0 = ops.convert_to_numpy(gen.state).copy()
    a = _random.torch_dropout(x, 0.3, gen)
    np.testing.assert_array_equal(ops.convert_to_numpy(gen.state), state0 + [0, 1])
    b = _random.torch_dropout(x, 0.3, gen)
    kept = (a != 0).float().mean().item()
    assert abs(kept - 0.7) < 0.005  # 200,000 draws: s.d. 0.001
    np.testing.assert_allclose(np.unique(a.numpy()), [0.0, 1 / 0.7], rtol=1e-6)
    assert not torch.equal(a, b)
    gen.state.assign(state0)
    np.testing.assert_array_equal(_random.torch_dropout(x, 0.3, gen).numpy(), a.numpy())


def _loss_inputs():
    rng = np.random.default_rng(0)
    x = rng.random((12, 20, 20, 1)).astype("float32")
    x_hat = np.clip(x + rng.normal(0, 0.2, x.shape), 0, 1).astype("float32")
    z = rng.normal(size=(12, 2)).astype("float32")
    y = (np.arange(12) % 3).astype("float32")
    p = rng.uniform(0.05, 0.95, (12, 1)).astype("float32")
    return x, x_hat, z, y, p


_LOSSES = [
    ("recon product w5", lambda x, xh, z, y, p: losses.reconstruction_loss(x, xh)),
    ("recon product w3", lambda x, xh, z, y, p: losses.reconstruction_loss(x, xh, window_size=3)),
    ("recon sum", lambda x, xh, z, y, p: losses.reconstruction_loss(x, xh, form="sum")),
    ("contrastive", lambda x, xh, z, y, p: losses.supervised_contrastive_loss(z, y, 0.5)),
    ("covariance", lambda x, xh, z, y, p: losses.covariance_loss(z)),
    ("adversarial", lambda x, xh, z, y, p: losses.adversarial_loss(p)),
    ("discriminator", lambda x, xh, z, y, p: losses.discriminator_loss(p, 1.0 - p)),
]


@pytest.mark.parametrize("name, loss", _LOSSES)
def test_losses_on_torch_tensors_equal_keras_ops(name, loss, monkeypatch):
    arrays = _loss_inputs()
    tensors = [torch.from_numpy(a).requires_grad_(a.dtype == np.float32 and i != 3)
               for i, a in enumerate(arrays)]
    assert losses._namespace(*tensors) is _torch_ops
    assert losses._namespace(arrays[0]) is ops
    fast = loss(*tensors)
    fast_grads = torch.autograd.grad(fast, [t for t in tensors if t.requires_grad],
                                     allow_unused=True)
    monkeypatch.setattr(losses, "_namespace", lambda *t: ops)
    slow = loss(*tensors)
    slow_grads = torch.autograd.grad(slow, [t for t in tensors if t.requires_grad],
                                     allow_unused=True)
    np.testing.assert_allclose(fast.detach().numpy(), slow.detach().numpy(), rtol=1e-6)
    assert fast.detach().numpy() == pytest.approx(
        float(ops.convert_to_numpy(loss(*arrays))), rel=1e-6)
    for f, s in zip(fast_grads, slow_grads):
        assert (f is None) == (s is None)
        if f is not None:
            np.testing.assert_allclose(f.numpy(), s.numpy(), rtol=1e-5, atol=1e-8)


def test_loss_trackers_update_as_keras_mean():
    ours = {"a": keras.metrics.Mean(name="a")}
    keras_mean = keras.metrics.Mean(name="a")
    for value in (2.0, 5.0, 11.0):
        logs = _torch._track(ours, {"a": torch.tensor(value, requires_grad=True) * 1.0})
        keras_mean.update_state(value)
    assert float(logs["a"]) == pytest.approx(6.0)
    assert float(ops.convert_to_numpy(ours["a"].result())) == pytest.approx(
        float(ops.convert_to_numpy(keras_mean.result())))
    ours["a"].reset_state()
    assert float(ops.convert_to_numpy(ours["a"].result())) == 0.0
