"""The two-stage training loop: stopping rule, kept epoch, stage weights,
batches, and the closed-form latent classifier (ai4cellfate.training)."""

import numpy as np
import pytest
from scipy.optimize import minimize

from ai4cellfate import CellFateAAE
from ai4cellfate.training import loop
from ai4cellfate.training.criteria import (balanced_precision, evaluate_criteria,
                                           fit_latent_classifier)

from conftest import FAST

#: Criteria that always hold / never hold.
ALWAYS = dict(min_centroid_distance=0.0, max_kl=1e9, min_accuracy=0.0, min_precision=0.0)
NEVER = dict(min_accuracy=1.0, max_kl=0.0)


def _labels(n_pos, n_neg, sens, spec):
    """y_true / y_pred with exactly the given sensitivity and specificity."""
    tp, tn = int(round(sens * n_pos)), int(round(spec * n_neg))
    y_true = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    y_pred = np.r_[np.ones(tp, int), np.zeros(n_pos - tp, int),
                   np.zeros(tn, int), np.ones(n_neg - tn, int)]
    return y_true, y_pred


def test_balanced_precision_does_not_depend_on_prevalence():
    rare = _labels(100, 500, 0.72, 0.72)   # 17% fate 1, as in the preprint
    even = _labels(500, 500, 0.72, 0.72)
    # Ordinary precision of fate 1 collapses with prevalence ...
    ordinary = [np.mean(t[p == 1]) for t, p in (rare, even)]
    assert ordinary[0] == pytest.approx(0.345, abs=0.01) and ordinary[1] == pytest.approx(0.72)
    # ... the prevalence-free one does not: sens / (sens + 1 - spec) in both.
    got = [balanced_precision(t, p, 2) for t, p in (rare, even)]
    assert got == pytest.approx([0.72, 0.72], abs=1e-9)


def test_balanced_precision_multiclass_is_macro_of_column_normalised_rates():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])
    y_pred = np.array([0, 0, 1, 2, 1, 0, 2, 2, 1])
    R = np.zeros((3, 3))
    for t, p in zip(y_true, y_pred):
        R[t, p] += 1
    R /= R.sum(axis=1, keepdims=True)
    want = np.mean(np.diag(R) / R.sum(axis=0))
    assert balanced_precision(y_true, y_pred, 3) == pytest.approx(want)


def test_criterion_uses_the_chosen_precision():
    rng = np.random.default_rng(0)
    z_fit = np.r_[rng.normal(-0.5, 1, (500, 2)), rng.normal(0.5, 1, (100, 2))]
    y_fit = np.r_[np.zeros(500, int), np.ones(100, int)]
    common = dict(min_centroid_distance=0, max_kl=1e9, min_accuracy=0)
    probe = evaluate_criteria(z_fit, y_fit, z_fit, y_fit, min_precision=0, **common)
    lo, hi = probe["val_precision"], probe["val_balanced_precision"]
    assert hi - lo > 0.2  # 1 in 6 divides: the ordinary precision is far lower
    common["min_precision"] = (lo + hi) / 2
    bal = evaluate_criteria(z_fit, y_fit, z_fit, y_fit, precision="balanced", **common)
    ordi = evaluate_criteria(z_fit, y_fit, z_fit, y_fit, precision="ordinary", **common)
    assert bal["criterion_precision"] == bal["val_balanced_precision"] == hi
    assert ordi["criterion_precision"] == ordi["val_precision"] == lo
    assert bal["criteria_met"] and not ordi["criteria_met"]
    with pytest.raises(ValueError, match="precision must be 'balanced' or 'ordinary'"):
        evaluate_criteria(z_fit, y_fit, z_fit, y_fit, precision="macro")


def _keras_objective_optimum(Z, y, n_classes, l2):
    """Minimise the Keras objective (mean weighted CE + l2 ||W||^2) directly."""
    counts = np.bincount(y, minlength=n_classes)
    cw = len(y) / (n_classes * counts)
    d = Z.shape[1]

    def f(theta):
        W = theta[: d * n_classes].reshape(d, n_classes)
        b = theta[d * n_classes:]
        a = Z @ W + b
        a = a - a.max(axis=1, keepdims=True)
        logp = a - np.log(np.exp(a).sum(axis=1, keepdims=True))
        ce = -(cw[y] * logp[np.arange(len(y)), y]).sum() / len(y)
        return ce + l2 * np.sum(W**2)

    res = minimize(f, np.zeros(d * n_classes + n_classes), method="BFGS",
                   options={"gtol": 1e-10, "maxiter": 5000})
    W = res.x[: d * n_classes].reshape(d, n_classes)
    b = res.x[d * n_classes:]
    return W, b


@pytest.mark.parametrize("n_classes", [2, 3])
def test_closed_form_head_is_the_keras_optimum(n_classes):
    rng = np.random.default_rng(1)
    n = 60
    y = np.arange(n) % n_classes
    Z = rng.normal(size=(n, 2)) + y[:, None] * 0.8
    l2 = 0.05  # strong enough that a wrong C shows
    kernel, bias = fit_latent_classifier(Z, y, l2=l2)
    W, b = _keras_objective_optimum(Z, y, n_classes, l2)
    # Softmax is invariant to adding a constant to every logit: compare logit
    # differences to the first class.
    got = Z @ kernel + bias
    want = Z @ W + b
    np.testing.assert_allclose(got - got[:, :1], want - want[:, :1], atol=2e-3)


def test_stage1_weights_switch_losses_off_in_both_stages():
    assert loop.stage1_weights(8.0, 4.0) == dict(lambda_recon=20.0, lambda_adv=4.0,
                                                 lambda_contra=0.0, lambda_cov=0.0)
    assert loop.stage1_weights(0.0, 4.0)["lambda_recon"] == 0.0
    assert loop.stage1_weights(8.0, 0.0)["lambda_recon"] == 8.0


def test_no_reconstruction_in_stage_one_with_lambda_recon_zero(nuclei):
    X, y = nuclei
    m = CellFateAAE(**dict(FAST, lambda_recon=0.0, stage1_epochs=1, max_epochs=1, min_epochs=1,
                           verbose=0)).fit(X, y)
    s1 = m.history_[m.history_["stage"] == 1].iloc[0]
    # The stage-1 total is the adversarial term alone (recon_loss is still reported).
    assert s1["recon_loss"] > 0.01
    assert s1["loss"] == pytest.approx(4.0 * s1["adv_loss"], rel=1e-4)


def test_ssim_window_reaches_the_loss(nuclei, monkeypatch):
    from ai4cellfate import losses

    seen = set()
    orig = losses.reconstruction_loss

    def spy(x, x_hat, **kwargs):
        seen.add(kwargs.get("window_size"))
        return orig(x, x_hat, **kwargs)

    monkeypatch.setattr(losses, "reconstruction_loss", spy)
    X, y = nuclei
    m = CellFateAAE(**dict(FAST, ssim_window=3, max_epochs=1, verbose=0)).fit(X, y)
    assert seen == {3} and m.model_.ssim_window == 3
    with pytest.raises(ValueError, match="ssim_window must be >= 1"):
        CellFateAAE(ssim_window=0).fit(X, y)


def test_no_image_is_repeated_within_an_epoch():
    Batches = loop._make_callbacks()[1]
    X = np.arange(103, dtype="float32")[:, None, None, None] * np.ones((1, 4, 4, 1), "float32")
    y = np.zeros(103, "float32")
    b = Batches(X, y, 10, seed=3)
    assert b.steps == 10 and b.num_batches is None  # endless; fit gets steps_per_epoch
    seen_all = set()
    for epoch in range(4):
        ids = np.concatenate([b[epoch * 10 + i][0][:, 0, 0, 0] for i in range(10)]).astype(int)
        assert len(ids) == 100 and len(set(ids)) == 100
        seen_all |= set(ids)
    assert len(seen_all) > 100  # other images are left out in other epochs


def test_batches_depend_on_the_index_alone():
    """Item i is batch i % steps of epoch first_epoch + i // steps, whatever was
    read before and in whatever order (prefetch threads read ahead): a stream
    started at epoch 2 gives what a stream started at 0 gives from item 2 * steps."""
    Batches = loop._make_callbacks()[1]
    X = np.arange(50, dtype="float32")[:, None, None, None] * np.ones((1, 2, 2, 1), "float32")
    y = np.arange(50, dtype="float32")
    a, b = Batches(X, y, 7, seed=5), Batches(X, y, 7, seed=5, first_epoch=2)
    for i in (20, 0, 15, 3, 14, 27, 8):  # out of order, across epochs
        np.testing.assert_array_equal(a[i + 14][0], b[i][0])
        np.testing.assert_array_equal(a[i + 14][1], b[i][1])
    e3 = np.random.default_rng([5, 3]).permutation(50)[7:14]
    np.testing.assert_array_equal(a[22][1], np.sort(e3))  # epoch 3, batch 1


def test_stop_only_after_min_epochs_is_exceeded(nuclei):
    X, y = nuclei
    for min_epochs, stage2 in ((0, 1), (2, 3)):
        m = CellFateAAE(**dict(FAST, min_epochs=min_epochs, max_epochs=5, verbose=0,
                               **ALWAYS)).fit(X, y)
        assert m.stop_reason_ == "criteria met"
        assert (m.history_["stage"] == 2).sum() == stage2
        assert m.best_epoch_ == m.n_epochs_ == 1 + stage2
        assert bool(m.history_["criteria_met"].iloc[-1])


def test_never_met_keeps_the_best_validated_epoch(nuclei):
    X, y = nuclei
    params = dict(FAST, min_epochs=1, max_epochs=4, verbose=0, **NEVER)
    m = CellFateAAE(**params).fit(X, y)
    h = m.history_
    assert m.stop_reason_ == "max_epochs reached" and m.n_epochs_ == 5
    eligible = h[(h["stage"] == 2) & (h["epoch"] > 1 + 1)]  # stage-2 epochs after min_epochs
    score = eligible["val_balanced_accuracy"].to_numpy()
    best = eligible["epoch"].to_numpy()[np.flatnonzero(score == score.max())[-1]]
    assert m.best_epoch_ == best and h.loc[h["kept"], "epoch"].tolist() == [best]
    # The kept weights are those a run stopped at that epoch ends with.
    short = CellFateAAE(**dict(params, max_epochs=best - 1, restore_best_weights=False)).fit(X, y)
    np.testing.assert_allclose(m.transform(X), short.transform(X), rtol=1e-5, atol=1e-6)
    last = CellFateAAE(**dict(params, restore_best_weights=False)).fit(X, y)
    assert last.best_epoch_ == 5 and last.history_["kept"].tolist() == [False] * 4 + [True]


def test_torch_threads_are_scoped_to_our_calls(fitted, nuclei):
    import keras

    from ai4cellfate.training.model import backend_module

    if keras.backend.backend() != "torch":
        with backend_module().cpu_threads():  # a no-op elsewhere
            pass
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with backend_module().cpu_threads():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        fitted.transform(nuclei[0][:4])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_progress_lines_name_the_stages(nuclei, capsys):
    X, y = nuclei
    CellFateAAE(**dict(FAST, max_epochs=1, verbose=1)).fit(X, y)
    out = capsys.readouterr().out
    assert "stage 1/2 (reconstruction + adversarial) epoch 1/1" in out
    assert "stage 2/2 (all losses) epoch 1/1" in out and "left" in out
    assert "training ended: max_epochs reached after 2 epochs; keeping epoch 2" in out


def test_verbose_auto_is_silent_inside_model_selection(nuclei, capsys, monkeypatch):
    from sklearn.model_selection import cross_val_score

    assert loop.resolve_verbose(2) == 2 and loop.resolve_verbose(0) == 0
    monkeypatch.setattr(loop, "_interactive", lambda: True)  # as in a terminal
    assert loop.resolve_verbose("auto") == 1
    X, y = nuclei
    cross_val_score(CellFateAAE(**dict(FAST, max_epochs=1)), X, y, cv=2)
    assert "[ai4cellfate]" not in capsys.readouterr().out
    CellFateAAE(**dict(FAST, max_epochs=1)).fit(X, y)
    assert "[ai4cellfate] stage 1/2" in capsys.readouterr().out


def _weights(model):
    return [np.array(w) for w in model.model_.get_weights()]


@pytest.mark.exact
@pytest.mark.backend
@pytest.mark.filterwarnings("ignore::ai4cellfate.estimator.LatentWarning")
def test_a_fit_after_others_equals_a_fit_in_a_fresh_process(nuclei):
    # On JAX the compiled train step and encoder are shared by models of the
    # same structure; a fit that reuses them must be the fit it would have been.
    import keras

    if keras.backend.backend() != "jax":
        pytest.skip("compiled functions are shared on the JAX backend only")
    from ai4cellfate.training import _jax

    X, y = nuclei
    params = dict(FAST, random_state=1)
    CellFateAAE(**dict(params, random_state=0)).fit(X, y)   # compiles
    reused = CellFateAAE(**params).fit(X, y)
    assert len(_jax._SHARED) >= 2  # the train step and the encoder's predict
    _jax._SHARED.clear()
    fresh = CellFateAAE(**params).fit(X, y)
    for a, b in zip(_weights(reused), _weights(fresh)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(reused.transform(X), fresh.transform(X))


@pytest.mark.backend
def test_compiled_functions_are_shared_only_between_equal_structures(monkeypatch):
    import keras

    if keras.backend.backend() != "jax":
        pytest.skip("compiled functions are shared on the JAX backend only")
    from ai4cellfate.training import AdversarialAutoencoder, _jax

    def step(**kw):
        m = AdversarialAutoencoder((16, 16, 1), **kw)
        m.compile(optimizer=keras.optimizers.Adam(1e-3, beta_1=0.0, beta_2=0.9))
        m.optimizer.build(m.trainable_variables)
        return _jax.jitted_train_step(m)

    _jax._SHARED.clear()
    base = step(seed=0)
    assert step(seed=7, lambda_recon=1.0) is base       # seeds, initial weights: state
    assert step(seed=0, temperature=0.1) is not base    # a constant of the trace
    assert step(seed=0, latent_dim=3) is not base       # other variables
    assert step(seed=0, ssim_form="sum") is not base
    original = AdversarialAutoencoder.autoencoder_losses
    monkeypatch.setattr(AdversarialAutoencoder, "autoencoder_losses",
                        lambda self, x, y: original(self, x, y))
    assert step(seed=0) is not base                     # other code
    monkeypatch.undo()
    assert step(seed=0) is base


def test_per_step_trainer_state_skips_attribute_tracking(monkeypatch):
    import keras

    from ai4cellfate.training import AdversarialAutoencoder

    m = AdversarialAutoencoder((16, 16, 1))
    state = {"trainable_variables": [np.zeros(2)], "non_trainable_variables": []}
    m._jax_state = state
    assert m._jax_state is state                      # stored as given
    # Keras' own tracking wraps the same dict (what the override skips) ...
    monkeypatch.setattr(AdversarialAutoencoder, "_UNTRACKED", frozenset())
    m._jax_state = state
    assert m._jax_state is not state
    monkeypatch.undo()
    # ... and other attributes are still tracked.
    n = len(m.non_trainable_variables)
    m.extra = keras.Variable(0.0, trainable=False)
    assert len(m.non_trainable_variables) == n + 1


@pytest.mark.parametrize("n_train, n_val, joint", [(1424, 365, True), (1024, 256, False)])
def test_criteria_encode_both_sets_in_one_call_when_that_pads_less(n_train, n_val, joint):
    from ai4cellfate.training.criteria import StoppingCriteria
    from ai4cellfate.training.inference import padded_rows

    rng = np.random.default_rng(0)
    X_tr = rng.random((n_train, 3)).astype("float32")
    X_val = rng.random((n_val, 3)).astype("float32")
    weights = rng.normal(size=(3, 2)).astype("float32")
    calls = []

    def encode(A):
        calls.append(len(A))
        return A @ weights

    crit = StoppingCriteria(encode, (X_tr, np.zeros(n_train)), (X_val, np.zeros(n_val)),
                            min_epochs=0, thresholds={})
    for _ in range(2):
        z_tr, z_val = crit._encode_both()
        np.testing.assert_array_equal(z_tr, X_tr @ weights)
        np.testing.assert_array_equal(z_val, X_val @ weights)
    # 1424 + 365 rows run as one batch of 2048 instead of 2048 + 512;
    # 1024 + 256 would pad to 2048 together, 1280 apart
    assert calls == ([n_train + n_val] * 2 if joint else [n_train, n_val] * 2)
    assert padded_rows(n_train + n_val) == 2048
    assert padded_rows(n_train) + padded_rows(n_val) == (2560 if joint else 1280)


@pytest.mark.backend
def test_an_images_latent_does_not_depend_on_its_inference_batch():
    """What encoding the criteria's two image sets in one call relies on:
    the same latents, bit for bit, as two calls (different padded batches)."""
    from ai4cellfate.networks import build_encoder
    from ai4cellfate.training.inference import predict

    encoder = build_encoder((20, 20, 1), seed=3)
    A = np.random.default_rng(1).random((300, 20, 20, 1)).astype("float32")
    together = predict(encoder, A)                              # one batch of 512
    apart = np.concatenate([predict(encoder, A[:230]), predict(encoder, A[230:])])  # 256 + 128
    assert together.shape == (300, 2)
    np.testing.assert_array_equal(together, apart)


@pytest.mark.backend
def test_no_per_batch_log_conversion_when_no_callback_reads_batches(nuclei, monkeypatch):
    """Keras converts every batch's logs in a thread pool even when no
    callback reads them; the loop's callback list leaves that out, and the
    epoch records are those of an ordinary fit."""
    import keras

    X, y = nuclei
    converted = [0]
    real = keras.callbacks.CallbackList._on_train_batch_end

    def counted(self, batch, logs=None):
        converted[0] += 1
        return real(self, batch, logs)

    monkeypatch.setattr(keras.callbacks.CallbackList, "_on_train_batch_end", counted)
    est = CellFateAAE(**FAST).fit(X, y)
    assert converted[0] == 0
    assert est.n_epochs_ == 3 and np.isfinite(est.history_["loss"]).all()


def test_a_callback_with_batch_hooks_still_gets_every_batch(nuclei, monkeypatch):
    """A callback that implements a batch hook (here a recorder subclass)
    gets every batch, with the step's losses as Python numbers."""
    X, y = nuclei
    make = loop._make_callbacks
    seen = []

    def make_listening():
        Recorder, *others = make()

        class Listening(Recorder):
            def on_train_batch_end(self, batch, logs=None):
                seen.append((self.stage, batch, logs))

            def on_batch_begin(self, batch, logs=None):
                seen.append((self.stage, batch, "begin"))

        return (Listening, *others)

    monkeypatch.setattr(loop, "_make_callbacks", make_listening)
    est = CellFateAAE(**FAST).fit(X, y)
    ends = [s for s in seen if s[2] != "begin"]
    begins = [s for s in seen if s[2] == "begin"]
    assert len(ends) == len(begins) == int(est.model_.optimizer.iterations.numpy()) > 0
    assert [b for _, b, _ in ends[:2]] == [0, 1]
    assert {stage for stage, _, _ in ends} == {1, 2}
    assert all(isinstance(logs["loss"], float) and np.isfinite(logs["loss"])
               for _, _, logs in ends)


def test_fit_callback_list_keeps_keras_batch_hooks_for_callbacks_that_use_them():
    import keras

    class Epochs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            pass

    class Batches(keras.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            pass

    quiet = loop._fit_callbacks([Epochs()], model=None, epochs=1, steps=3, verbose=0)
    assert not quiet._batch_begin and not quiet._batch_end
    loud = loop._fit_callbacks([Epochs(), Batches()], model=None, epochs=1, steps=3,
                               verbose=0)
    assert loud._batch_end and not loud._batch_begin
    bar = loop._fit_callbacks([Epochs()], model=None, epochs=1, steps=3, verbose=1)
    assert bar._batch_end  # Keras' progress bar reads every batch
    assert any(isinstance(cb, keras.callbacks.History) for cb in quiet.callbacks)


@pytest.mark.backend
def test_host_zeros_adam_updates_as_keras_adam_and_is_used_on_jax():
    import keras

    from ai4cellfate.training.model import HostZerosAdam, make_adam

    rng = np.random.default_rng(0)
    start = rng.normal(size=(3, 4)).astype("float32")
    grads = [rng.normal(size=(3, 4)).astype("float32") for _ in range(3)]
    out = []
    for opt in (HostZerosAdam(1e-2, beta_1=0.0, beta_2=0.9),
                keras.optimizers.Adam(1e-2, beta_1=0.0, beta_2=0.9)):
        v = keras.Variable(start)
        opt.build([v])
        assert all(np.all(keras.ops.convert_to_numpy(s) == 0) for s in opt.variables[2:])
        for g in grads:
            opt.apply_gradients([(keras.ops.convert_to_tensor(g), v)])
        out.append(keras.ops.convert_to_numpy(v))
    np.testing.assert_allclose(out[0], out[1], rtol=1e-6, atol=1e-7)
    assert not np.allclose(out[0], start)
    made = make_adam(1e-3, 0.0, 0.9)
    assert isinstance(made, keras.optimizers.Adam) and made.beta_2 == 0.9
    assert isinstance(made, HostZerosAdam) == (keras.backend.backend() == "jax")
    back = keras.optimizers.deserialize(keras.optimizers.serialize(HostZerosAdam(0.5)))
    assert type(back) is HostZerosAdam and float(back.learning_rate) == 0.5
