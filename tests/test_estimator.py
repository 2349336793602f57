"""CellFateAAE: fitted behaviour, layouts, persistence, sklearn integration.

Tests marked ``backend`` run under every Keras backend (tests/run_backends.py).
"""

import io
import os
import pickle
import subprocess
import sys

import joblib
import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_validate
from sklearn.pipeline import Pipeline

import ai4cellfate
from ai4cellfate import CellFateAAE
from ai4cellfate.datasets import make_nuclei

from conftest import FAST

BACKENDS = ("jax", "tensorflow", "torch")


@pytest.mark.backend
def test_fitted_attributes_and_outputs(fitted, nuclei):
    X, y = nuclei
    m = fitted
    assert m.image_shape_ == (16, 16, 1) and m.n_features_in_ == 256
    np.testing.assert_array_equal(m.classes_, [0, 1])
    Z = m.transform(X)
    assert Z.shape == (64, 2) and np.all(np.isfinite(Z))
    P = m.predict_proba(X)
    assert P.shape == (64, 2)
    np.testing.assert_allclose(P.sum(axis=1), 1, atol=1e-6)
    np.testing.assert_array_equal(m.predict(X), m.classes_[P.argmax(1)])
    # The head is the closed-form latent classifier: predict_proba agrees with
    # the Keras head applied to the latents.
    keras_p = np.asarray(m.model_.classifier.predict(Z, verbose=0))
    np.testing.assert_allclose(P, keras_p, atol=1e-5)
    imgs = m.decode(Z[:3])
    assert imgs.shape == (3, 16, 16) and imgs.min() >= 0 and imgs.max() <= 1
    np.testing.assert_array_equal(m.inverse_transform(Z[:3]), imgs)
    assert m.decode(Z[0]).shape == (1, 16, 16)
    h = m.history_
    assert list(h["stage"]) == [1, 2, 2][: len(h)] and m.n_epochs_ == len(h)
    assert {"loss", "recon_loss", "adv_loss", "contra_loss", "cov_loss", "disc_loss",
            "centroid_distance", "kl_z0", "kl_z1", "kl_max", "val_balanced_accuracy",
            "val_precision", "criteria_met"} <= set(h.columns)
    assert h.loc[h.stage == 1, "centroid_distance"].isna().all()
    assert h.loc[h.stage == 2, "kl_max"].notna().all()
    assert m.stop_reason_ in ("criteria met", "max_epochs reached")
    # encoder_ and decoder_ are plain Keras models a user can call
    z = keras.ops.convert_to_numpy(m.encoder_(X[:2, ..., None]))
    np.testing.assert_allclose(z, Z[:2], atol=1e-5)
    assert isinstance(m.decoder_, keras.Model)
    assert list(m.get_feature_names_out()) == ["z0", "z1"]


def test_set_output_pandas(fitted, nuclei):
    X, _ = nuclei
    m = fitted
    m.set_output(transform="pandas")
    try:
        out = m.transform(X[:4])
        assert isinstance(out, pd.DataFrame) and list(out.columns) == ["z0", "z1"]
    finally:
        m.set_output(transform="default")


def test_score_and_latent_diagnostics(fitted, nuclei):
    X, y = nuclei
    assert fitted.score(X, y) == pytest.approx(np.mean(fitted.predict(X) == y))
    from ai4cellfate.metrics import latent_diagnostics

    d = fitted.latent_diagnostics(X, y)
    want = latent_diagnostics(fitted.transform(X), y)
    pd.testing.assert_series_equal(d, want)
    assert {"kl_z0", "kl_z1", "centroid_distance", "corr_z0_z1"} <= set(d.index)


def test_flat_and_channel_layouts():
    X, y = make_nuclei(48, image_size=16, random_state=1)
    m = CellFateAAE(image_shape=(16, 16), **FAST).fit(X.reshape(48, -1), y)
    assert m.decode(np.zeros((2, 2))).shape == (2, 256)
    assert m.transform(X.reshape(48, -1)).shape == (48, 2)
    m4 = CellFateAAE(**FAST).fit(X[..., None], y)
    assert m4.decode(np.zeros((2, 2))).shape == (2, 16, 16, 1)
    with pytest.raises(ValueError, match="shape"):
        m4.transform(make_nuclei(4, image_size=20, random_state=0)[0])


def test_string_labels_and_three_classes():
    X, y = make_nuclei(72, image_size=16, random_state=2)
    y3 = np.where(np.arange(72) % 3 == 0, "lost", np.where(y == 1, "divides", "stays"))
    m = CellFateAAE(**FAST).fit(X, y3)
    assert list(m.classes_) == ["divides", "lost", "stays"]
    assert m.predict_proba(X).shape == (72, 3)
    assert set(m.predict(X)) <= set(m.classes_)


@pytest.mark.backend
def test_save_load_roundtrip_and_no_overwrite(fitted, nuclei, tmp_path):
    X, _ = nuclei
    path = tmp_path / "m.keras"
    fitted.save(path)
    loaded = ai4cellfate.load(path)
    np.testing.assert_allclose(loaded.transform(X), fitted.transform(X), atol=1e-6)
    np.testing.assert_allclose(loaded.predict_proba(X), fitted.predict_proba(X), atol=1e-6)
    assert loaded.get_params() == fitted.get_params()
    pd.testing.assert_frame_equal(loaded.history_, fitted.history_)
    assert loaded.stop_reason_ == fitted.stop_reason_
    with pytest.raises(FileExistsError, match="overwrite"):
        fitted.save(path)
    fitted.save(path, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]  # no temp files left


@pytest.mark.backend
def test_file_loads_under_other_backends(fitted, nuclei, tmp_path):
    X, _ = nuclei
    path = tmp_path / "m.keras"
    fitted.save(path)
    np.save(tmp_path / "X.npy", X)
    here = fitted.transform(X)
    code = (
        "import sys, numpy as np, ai4cellfate;"
        "m = ai4cellfate.load(sys.argv[1]);"
        "np.save(sys.argv[3], m.transform(np.load(sys.argv[2])))"
    )
    for backend in BACKENDS:
        if backend == keras.backend.backend():
            continue
        out = tmp_path / f"Z_{backend}.npy"
        env = dict(os.environ, KERAS_BACKEND=backend)
        res = subprocess.run(
            [sys.executable, "-c", code, str(path), str(tmp_path / "X.npy"), str(out)],
            env=env, capture_output=True, text=True, timeout=300,
        )
        assert res.returncode == 0, res.stderr[-2000:]
        assert np.max(np.abs(np.load(out) - here)) <= 1e-5


@pytest.mark.backend
def test_pickle_joblib_clone(fitted, nuclei):
    X, _ = nuclei
    Z = fitted.transform(X)
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.transform(X), Z)
    buf = io.BytesIO()
    joblib.dump(fitted, buf)
    buf.seek(0)
    np.testing.assert_array_equal(joblib.load(buf).transform(X), Z)
    c = clone(fitted)
    assert c.get_params() == fitted.get_params() and not hasattr(c, "model_")
    # the unfitted clone pickles too
    assert pickle.loads(pickle.dumps(c)).get_params() == c.get_params()


@pytest.mark.exact
@pytest.mark.backend
def test_random_state_reproducible(nuclei):
    X, y = nuclei
    z1 = CellFateAAE(**FAST).fit(X, y).transform(X)
    z2 = CellFateAAE(**FAST).fit(X, y).transform(X)
    np.testing.assert_array_equal(z1, z2)
    z3 = CellFateAAE(**{**FAST, "random_state": 1}).fit(X, y).transform(X)
    assert np.max(np.abs(z1 - z3)) > 1e-3


@pytest.mark.backend
def test_grid_search_over_lambdas_in_parallel(nuclei):
    X, y = nuclei
    gs = GridSearchCV(
        CellFateAAE(**FAST), param_grid={"lambda_contra": [0, 6]}, cv=2, n_jobs=2,
        error_score="raise",
    )
    gs.fit(X, y)
    assert gs.best_params_["lambda_contra"] in (0, 6)
    assert np.all(np.isfinite(gs.cv_results_["mean_test_score"]))
    assert gs.best_estimator_.transform(X[:3]).shape == (3, 2)


def test_pipeline_and_group_cross_validation(nuclei):
    from ai4cellfate.preprocessing import MaxNormalizer

    X, y = nuclei
    groups = np.arange(len(y)) // 4  # lineages of four cells
    pipe = Pipeline([("norm", MaxNormalizer()), ("aae", CellFateAAE(**FAST))])
    res = cross_validate(pipe, X, y, groups=groups, cv=GroupKFold(2),
                         params={"aae__groups": groups}, return_estimator=True,
                         error_score="raise")
    assert len(res["test_score"]) == 2 and np.all(np.isfinite(res["test_score"]))


def test_groups_keep_lineages_out_of_validation(nuclei, monkeypatch):
    X, y = nuclei
    groups = np.arange(len(y)) // 4
    seen = {}
    from ai4cellfate.training import loop

    orig = loop.train_two_stage

    def spy(model, train_data, criteria_data, *args, **kwargs):
        seen["crit"], _, seen["val"], _ = criteria_data
        return orig(model, train_data, criteria_data, *args, **kwargs)

    monkeypatch.setattr(loop, "train_two_stage", spy)
    CellFateAAE(**FAST).fit(X, y, groups=groups)
    Xf = X.reshape(len(X), -1)
    idx_of = {row.tobytes(): i for i, row in enumerate(Xf)}
    val_groups = {groups[idx_of[r.reshape(-1).tobytes()]] for r in seen["val"]}
    tr_groups = {groups[idx_of[r.reshape(-1).tobytes()]] for r in seen["crit"]}
    assert val_groups and tr_groups and not (val_groups & tr_groups)
    assert len(seen["val"]) + len(seen["crit"]) == len(X)


@pytest.mark.backend
def test_nonfinite_loss_stops_with_clear_error(nuclei, monkeypatch):
    """A loss that turns NaN in stage 2 stops training with an error naming the
    epoch and the term; the estimator keeps the last finite weights."""
    from keras import ops

    from ai4cellfate.training import AdversarialAutoencoder

    X, y = nuclei
    orig = AdversarialAutoencoder.autoencoder_losses

    def poisoned(self, x, labels):
        terms = orig(self, x, labels)
        nan = ops.where(self.lambda_contra > 0, float("nan"), 0.0)
        terms["cov_loss"] = terms["cov_loss"] + nan
        terms["loss"] = terms["loss"] + nan
        return terms

    monkeypatch.setattr(AdversarialAutoencoder, "autoencoder_losses", poisoned)
    m = CellFateAAE(**FAST)
    with pytest.raises(FloatingPointError, match=r"epoch 2 \(stage 2\).*cov_loss"):
        m.fit(X, y)
    assert m.stop_reason_ == "non-finite loss"
    assert m.n_epochs_ == 1 and list(m.history_["stage"]) == [1]
    assert np.all(np.isfinite(m.transform(X)))


@pytest.mark.backend
def test_jit_compile_resolution_per_backend():
    from ai4cellfate.estimator import XLA_MIN_STEPS, _resolve_jit_compile

    backend = keras.backend.backend()
    got = {(value, steps): _resolve_jit_compile(value, steps)
           for value in ("auto", True, False) for steps in (XLA_MIN_STEPS - 1, XLA_MIN_STEPS)}
    if backend == "jax":  # always compiled (Keras' "auto" is XLA on JAX)
        assert set(got.values()) == {"auto"}
    elif backend == "torch":
        from ai4cellfate.estimator import TORCH_COMPILE_MIN_STEPS, _torch_can_compile

        assert TORCH_COMPILE_MIN_STEPS > XLA_MIN_STEPS  # "auto" is eager up to there
        assert got == {("auto", XLA_MIN_STEPS - 1): False, ("auto", XLA_MIN_STEPS): False,
                       (True, XLA_MIN_STEPS - 1): True, (True, XLA_MIN_STEPS): True,
                       (False, XLA_MIN_STEPS - 1): False, (False, XLA_MIN_STEPS): False}
        long_fit = _resolve_jit_compile("auto", TORCH_COMPILE_MIN_STEPS)
        assert long_fit is _torch_can_compile()
        assert _resolve_jit_compile("auto", TORCH_COMPILE_MIN_STEPS - 1) is False
        assert _resolve_jit_compile(False, 10**6) is False
    else:
        assert got == {("auto", XLA_MIN_STEPS - 1): False, ("auto", XLA_MIN_STEPS): True,
                       (True, XLA_MIN_STEPS - 1): True, (True, XLA_MIN_STEPS): True,
                       (False, XLA_MIN_STEPS - 1): False, (False, XLA_MIN_STEPS): False}


@pytest.mark.backend
@pytest.mark.parametrize("value", ["yes", None, 1.5, "True"])
def test_jit_compile_bad_values_are_refused_before_work(value, nuclei):
    X, y = nuclei
    with pytest.raises(ValueError, match="jit_compile"):
        CellFateAAE(**FAST, jit_compile=value).fit(X, y)


@pytest.mark.exact
@pytest.mark.backend
def test_jit_compile_choice_reaches_the_model(nuclei):
    X, y = nuclei
    backend = keras.backend.backend()
    # 64 crops, 2 epochs at most: far below XLA_MIN_STEPS and
    # TORCH_COMPILE_MIN_STEPS, so "auto" means no XLA on TensorFlow and an
    # eager step on PyTorch
    auto = CellFateAAE(**FAST, verbose=0).fit(X, y)
    assert auto.model_.jit_compile is (backend == "jax")
    forced = [CellFateAAE(**FAST, jit_compile=True, verbose=0).fit(X, y) for _ in range(2)]
    # PyTorch compiles its own part of the step (torch.compile), not Keras'
    assert all(m.model_.jit_compile is (backend != "torch") for m in forced)
    # XLA (and Inductor) on a CPU is deterministic: random_state reproduces the fit
    np.testing.assert_array_equal(forced[0].transform(X), forced[1].transform(X))
    # and it trains the same model up to float rounding of the compiled step
    # (which Adam's normalised steps carry on: about 1% after an epoch)
    np.testing.assert_allclose(forced[0].history_["recon_loss"].iloc[0],
                               auto.history_["recon_loss"].iloc[0], rtol=0.05)
