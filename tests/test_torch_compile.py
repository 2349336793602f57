"""The PyTorch step compiled with ``torch.compile``
(ai4cellfate.training._torch_compile): the same numbers as the eager step,
loss weights that still reach it, a reported eager fallback, one compile per
model however many models a process fits."""

import shutil
import warnings

import keras
import numpy as np
import pytest
from keras import layers

from ai4cellfate import CellFateAAE, _random
from ai4cellfate.networks import build_decoder, build_discriminator, build_encoder
from ai4cellfate.training import AdversarialAutoencoder

pytestmark = [
    pytest.mark.backend,
    pytest.mark.skipif(keras.backend.backend() != "torch",
                       reason="PyTorch-only code paths (other backends never run them)"),
]

if keras.backend.backend() == "torch":
    import torch

    from ai4cellfate.training import _torch, _torch_compile


def _data(n=32, size=16):
    from ai4cellfate.datasets import make_nuclei

    X, y = make_nuclei(n, image_size=size, random_state=0)
    return X[..., None].astype("float32"), y.astype("float32")


def _model(jit_compile, seed=0, size=16, **kwargs):
    model = AdversarialAutoencoder((size, size, 1), seed=seed, **kwargs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3, beta_1=0.0, beta_2=0.9),
                  jit_compile=jit_compile)
    model.optimizer.build(model.trainable_variables)
    return model


def _values(model):
    return [keras.ops.convert_to_numpy(v).copy() for v in model.variables]


def _steps(model, X, y, n=3, batch=16):
    logs = []
    for i in range(n):
        b = slice((i * batch) % len(X), (i * batch) % len(X) + batch)
        out = _torch.train_step(model, (torch.from_numpy(X[b]), torch.from_numpy(y[b])))
        logs.append({k: float(v) for k, v in out.items()})
    return logs


@pytest.fixture
def aot_eager(monkeypatch):
    """Compile with AOTAutograd and eager kernels: the whole compile path
    (graph capture, functionalised state updates, compiled backward) with
    no C++ compiler, and bit for bit the eager arithmetic."""
    monkeypatch.setattr(_torch_compile, "BACKEND", "aot_eager")


@pytest.mark.parametrize("ssim_form", ["product", "sum"])
def test_compiled_steps_equal_eager_steps_bit_for_bit(aot_eager, ssim_form):
    X, y = _data()
    eager, compiled = _model(False, ssim_form=ssim_form), _model(True, ssim_form=ssim_form)
    assert eager._compiled_losses is None
    assert isinstance(compiled._compiled_losses, _torch_compile.CompiledLosses)
    for a, b in zip(_values(eager), _values(compiled)):  # same start
        np.testing.assert_array_equal(a, b)
    logs_e, logs_c = _steps(eager, X, y), _steps(compiled, X, y)
    assert compiled._compiled_losses.error is None
    assert compiled._compiled_losses.calls == 3
    assert compiled._compiled_losses.updates == 3  # Adam's update compiled too
    assert compiled._compiled_losses.disc_calls == 3
    assert compiled._compiled_losses.disc_error is None
    assert logs_c == logs_e
    # weights, optimizer moments, batch statistics, power-iteration vectors
    # and seed-generator states: all moved exactly as eagerly
    for a, b in zip(_values(eager), _values(compiled)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(eager.optimizer.variables, compiled.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                      keras.ops.convert_to_numpy(b))


@pytest.mark.parametrize("make, compiled_update", [
    # a learning-rate schedule: its value at each step goes in
    (lambda: keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(
        1e-2, decay_steps=1, decay_rate=0.5), beta_1=0.5, beta_2=0.9), True),
    # anything Adam's compiled update does not do goes through Keras' apply
    (lambda: keras.optimizers.Adam(1e-3, clipnorm=1e-4), False),
    (lambda: keras.optimizers.Adam(1e-3, amsgrad=True), False),
    (lambda: keras.optimizers.SGD(1e-2, momentum=0.9), False),
])
def test_optimizer_updates_equal_keras_apply(aot_eager, make, compiled_update):
    X, y = _data()
    models = []
    for jit_compile in (False, True):
        model = AdversarialAutoencoder((16, 16, 1), seed=0)
        model.compile(optimizer=make(), jit_compile=jit_compile)
        model.optimizer.build(model.trainable_variables)
        models.append(model)
    eager, compiled = models
    logs_e, logs_c = _steps(eager, X, y), _steps(compiled, X, y)
    assert logs_c == logs_e
    assert compiled._compiled_losses.updates == (3 if compiled_update else 0)
    for a, b in zip(_values(eager), _values(compiled)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(eager.optimizer.variables, compiled.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                      keras.ops.convert_to_numpy(b))
    assert int(compiled.optimizer.iterations) == 3


def test_a_constrained_variable_goes_through_keras_apply(aot_eager):
    # Keras applies a variable's constraint after the update; the compiled
    # update does not, so such a model's updates go through Keras' apply.
    X, y = _data()
    eager, compiled = _model(False), _model(True)
    for model in (eager, compiled):
        model.decoder.trainable_variables[0].constraint = keras.constraints.NonNeg()
    assert _steps(compiled, X, y) == _steps(eager, X, y)
    assert compiled._compiled_losses.updates == 0
    assert compiled._compiled_losses.update_error is None  # not a failure
    for a, b in zip(_values(eager), _values(compiled)):
        np.testing.assert_array_equal(a, b)
    assert keras.ops.convert_to_numpy(compiled.decoder.trainable_variables[0]).min() >= 0


def test_compiled_update_follows_weights_set_between_steps(aot_eager):
    # The update keeps the variables' tensors from its first call: weights
    # and optimizer state set in between (a restored epoch, a checkpoint)
    # must be what it updates next.
    X, y = _data()
    eager, compiled = _model(False), _model(True)
    start = eager.get_weights()
    for model in (eager, compiled):
        _steps(model, X, y, n=2)
        model.set_weights(start)
        model.optimizer.set_weights([np.zeros_like(keras.ops.convert_to_numpy(v))
                                     for v in model.optimizer.variables])
    assert _steps(compiled, X, y) == _steps(eager, X, y)
    assert compiled._compiled_losses.updates == 5
    for a, b in zip(_values(eager), _values(compiled)):
        np.testing.assert_array_equal(a, b)


def test_a_failing_discriminator_compile_warns_and_runs_eagerly(aot_eager):
    X, y = _data()
    eager, model = _model(False), _model(True)
    compiled = model._compiled_losses

    def broken(*args):
        raise RuntimeError("InductorError: out of registers\nsecond line")

    compiled._compiled_disc = broken
    with pytest.warns(RuntimeWarning, match="discriminator's loss failed.*runs eagerly.*"
                      "out of registers"):
        logs = _steps(model, X, y)
    assert logs == _steps(eager, X, y)  # the same draws, eagerly
    assert "out of registers" in compiled.disc_error and compiled.error is None
    for a, b in zip(_values(eager), _values(model)):
        np.testing.assert_array_equal(a, b)


def test_a_failing_adam_compile_warns_and_uses_keras_apply(aot_eager):
    X, y = _data()
    eager, model = _model(False), _model(True)

    def broken(*args):
        raise RuntimeError("InductorError: no C++ compiler\nsecond line")

    model._compiled_losses._compiled_update = broken
    with pytest.warns(RuntimeWarning, match="torch.compile of the Adam update failed.*"
                      "as Keras runs it.*no C\\+\\+ compiler"):
        logs = _steps(model, X, y)
    assert logs == _steps(eager, X, y)
    assert model._compiled_losses.updates == 0
    assert "no C++ compiler" in model._compiled_losses.update_error
    for a, b in zip(eager.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                      keras.ops.convert_to_numpy(b))


def test_draws_are_those_of_the_eager_layers(aot_eager):
    X, _ = _data()
    model = _model(True)
    compiled = model._compiled_losses
    noisy = [layer for net in (model.encoder, model.decoder, model.discriminator)
             for layer in net.layers
             if isinstance(layer, (_random.CounterGaussianNoise, _random.CounterDropout))]
    assert [layer for layer, _, _ in compiled._noise] == noisy
    x = torch.from_numpy(X[:5])
    states = [keras.ops.convert_to_numpy(layer.seed_generator.state).copy() for layer in noisy]
    draws = compiled.draws(x)
    for layer, state, draw in zip(noisy, states, draws):
        assert draw.shape == (5,) + tuple(layer.output.shape[1:])
        # the generator Keras' PyTorch draw would seed, then one step on
        g = torch.Generator().manual_seed(int(state.sum()) & 0xFFFFFFFF)
        if isinstance(layer, _random.CounterGaussianNoise):
            want = torch.normal(0.0, float(layer.stddev), size=tuple(draw.shape), generator=g)
        else:
            want = torch.rand(tuple(draw.shape), generator=g)
        torch.testing.assert_close(draw, want, rtol=0, atol=0)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.seed_generator.state),
                                      state + [0, 1])


def test_loss_weight_changes_reach_the_compiled_step(aot_eager):
    X, y = _data()
    eager, compiled = _model(False), _model(True)
    first = _steps(compiled, X, y, n=1)[0]
    _steps(eager, X, y, n=1)
    for model in (eager, compiled):
        model.set_loss_weights(lambda_recon=1.0, lambda_contra=0.0, lambda_cov=0.0)
    second_e, second_c = _steps(eager, X, y, n=1)[0], _steps(compiled, X, y, n=1)[0]
    assert second_c == second_e
    # the loss is now recon + 4 adv, not the first step's weighting
    assert second_c["loss"] != pytest.approx(first["loss"], rel=1e-3)
    total = second_c["recon_loss"] * 2 - first["recon_loss"] + 4.0 * (
        2 * second_c["adv_loss"] - first["adv_loss"])
    assert total == pytest.approx(second_c["loss"] * 2 - first["loss"], rel=1e-5)


def test_a_failing_compile_warns_and_trains_eagerly_with_the_same_numbers():
    def broken(graph_module, example_inputs):
        raise RuntimeError("no C++ compiler found\nsecond line")

    X, y = _data()
    eager = _model(False)
    model = AdversarialAutoencoder((16, 16, 1), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3, beta_1=0.0, beta_2=0.9))
    model.optimizer.build(model.trainable_variables)
    model._compiled_losses = _torch_compile.CompiledLosses(model, backend=broken)
    with pytest.warns(RuntimeWarning, match="torch.compile of the training step failed.*"
                      "runs eagerly.*no C\\+\\+ compiler found"):
        logs = _steps(model, X, y)
    assert "no C++ compiler found" in model._compiled_losses.error
    assert "second line" not in model._compiled_losses.error
    assert logs == _steps(eager, X, y)
    for a, b in zip(_values(eager), _values(model)):
        np.testing.assert_array_equal(a, b)


def test_networks_that_cannot_be_replayed_are_left_eager(monkeypatch):
    def with_uncovered_dropout():
        x = keras.Input((4,))
        h = _random.CounterDropout(0.3, noise_shape=(None, 1), seed=0)(x)
        return keras.Model(x, layers.Dense(1)(h))

    assert _torch_compile._noise_layers([with_uncovered_dropout()]) is None
    counted = _torch_compile._noise_layers([build_encoder((16, 16, 1), seed=1),
                                            build_decoder((16, 16, 1), seed=2),
                                            build_discriminator(2, seed=3)])
    kinds = [kind for _, kind, _ in counted]
    # the encoder's and decoder's blocks each end in dropout; noise after
    # the first convolution, the flattened features, the latent, ...
    assert kinds.count("uniform") == sum(
        isinstance(layer, _random.CounterDropout)
        for net in (build_encoder((16, 16, 1), seed=1), build_decoder((16, 16, 1), seed=2),
                    build_discriminator(2, seed=3)) for layer in net.layers)
    assert kinds.count("normal") > 0

    X, y = _data()
    eager = _model(False)
    model = _model(False)
    monkeypatch.setattr(_torch_compile, "_noise_layers", lambda nets: None)
    model._compiled_losses = _torch_compile.CompiledLosses(model)
    assert "random layer whose draws cannot be made outside" in model._compiled_losses.error
    with pytest.warns(RuntimeWarning, match="torch.compile of the training step is not used.*"
                      "runs eagerly.*cannot be made outside"):
        logs = _steps(model, X, y)
    assert logs == _steps(eager, X, y)


def test_every_model_compiles_past_dynamos_recompile_limit(monkeypatch):
    # Dynamo keeps compiled code per code object and stops compiling one
    # after its recompile limit; each model must get its own.
    import torch._dynamo.config as dynamo_config

    limit = "recompile_limit" if hasattr(dynamo_config, "recompile_limit") \
        else "cache_size_limit"
    graphs = []

    def counting(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    monkeypatch.setattr(_torch_compile, "BACKEND", counting)
    X, y = _data(16, size=8)
    with dynamo_config.patch(**{limit: 1}):
        for seed in range(3):
            model = _model(True, seed=seed, size=8)
            _steps(model, X, y, n=2)
            assert model._compiled_losses.error is None
            assert model._compiled_losses.update_error is None
            assert model._compiled_losses.disc_error is None
            assert model._compiled_losses.disc_calls == 2
            assert model._compiled_losses.updates == 2
    # the autoencoder's losses, the discriminator's and Adam's update, per model
    assert len(graphs) == 9


def test_inductor_step_is_close_to_eager_or_reports_why_not():
    # The production path. Where Inductor cannot build kernels (no C++
    # compiler) the fallback must say so and train eagerly.
    X, y = _data()
    eager, compiled = _model(False), _model(True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logs_c = _steps(compiled, X, y, n=2)
    logs_e = _steps(eager, X, y, n=2)
    error = compiled._compiled_losses.error
    failures = [w for w in caught if "torch.compile of the training step" in str(w.message)]
    if shutil.which("c++") or shutil.which("g++") or shutil.which("clang++"):
        assert error is None and failures == []
    else:
        assert error is not None and len(failures) == 1
    # Inductor's kernels sum in other orders: float32 rounding, carried through
    # a step of Adam (which divides by the gradients' scale, so small gradients'
    # rounding moves weights as much as large ones) into the second step's
    # losses (seen: 1.4e-4 relative on the contrastive loss of a fresh machine).
    # Equality bit for bit is tested under ``aot_eager`` above.
    for a, b in zip(logs_c, logs_e):
        assert a == pytest.approx(b, rel=1e-3, abs=1e-6)


def test_estimator_jit_compile_true_compiles_on_torch(aot_eager, monkeypatch):
    made = []
    real = _torch_compile.CompiledLosses

    class Spy(real):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(_torch_compile, "CompiledLosses", Spy)
    from ai4cellfate.datasets import make_nuclei

    X, y = make_nuclei(64, image_size=16, random_state=0)
    fast = dict(stage1_epochs=1, min_epochs=1, max_epochs=2, batch_size=16, random_state=0,
                verbose=0)
    est = CellFateAAE(**fast, jit_compile=True).fit(X, y)
    eager = CellFateAAE(**fast).fit(X, y)  # "auto": far below TORCH_COMPILE_MIN_STEPS
    assert len(made) == 1 and made[0].error is None and made[0].calls > 0
    # not kept with the fitted model
    assert est.model_._compiled_losses is None
    np.testing.assert_array_equal(est.transform(X), eager.transform(X))
    np.testing.assert_array_equal(est.history_["loss"], eager.history_["loss"])


def test_auto_compiles_only_with_a_cpu_and_a_cpp_compiler(monkeypatch):
    from ai4cellfate import estimator

    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/" + name)
    assert estimator._torch_can_compile() is True
    assert estimator._resolve_jit_compile("auto", estimator.TORCH_COMPILE_MIN_STEPS) is True
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert estimator._torch_can_compile() is False
    assert estimator._resolve_jit_compile("auto", estimator.TORCH_COMPILE_MIN_STEPS) is False
    assert estimator._resolve_jit_compile(True, 1) is True  # forced: tries, warns if it fails
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/" + name)
    import keras.src.backend.torch.core as torch_core

    monkeypatch.setattr(torch_core, "get_device", lambda: "cuda:0")
    assert estimator._torch_can_compile() is False


@pytest.mark.exact
def test_resumed_compiled_fit_equals_uninterrupted(tmp_path, monkeypatch):
    # Inductor where it can build kernels (else the eager fallback): an
    # interrupted and resumed compiled fit gives the uninterrupted one's
    # latents bit for bit (the draws come from the restored seed states).
    from ai4cellfate.datasets import make_nuclei
    from ai4cellfate.training import StoppingCriteria

    X, y = make_nuclei(64, image_size=16, random_state=0)
    params = dict(stage1_epochs=1, min_epochs=3, max_epochs=3, batch_size=16, random_state=0,
                  min_accuracy=1.0, max_kl=0.0, verbose=0, jit_compile=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = CellFateAAE(**params).fit(X, y)
        orig = StoppingCriteria.on_epoch_end

        def interrupt(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt
            return orig(self, epoch, logs)

        with monkeypatch.context() as mp:
            mp.setattr(StoppingCriteria, "on_epoch_end", interrupt)
            first = CellFateAAE(checkpoint_dir=tmp_path, **params).fit(X, y)
        assert first.stop_reason_ == "interrupted"
        resumed = CellFateAAE(checkpoint_dir=tmp_path, **params).fit(X, y, resume=True)
    assert resumed.resumed_from_epoch_ == 2 and reference.n_epochs_ == 4
    np.testing.assert_array_equal(resumed.transform(X), reference.transform(X))
    np.testing.assert_array_equal(resumed.history_["loss"].to_numpy(),
                                  reference.history_["loss"].to_numpy())
