"""Checkpoints, resume and interruption of CellFateAAE.fit.

Tests marked ``backend`` run under every Keras backend (tests/run_backends.py):
an interrupted and resumed fit must give exactly the latents of an
uninterrupted one on each backend.
"""

import os

import numpy as np
import pytest

import ai4cellfate
import ai4cellfate._checkpoint as ckpt_module
from ai4cellfate import CellFateAAE
from ai4cellfate._checkpoint import CHECKPOINT_NAME, read_checkpoint, write_checkpoint
from ai4cellfate.training import StoppingCriteria

from conftest import FAST

# Three stage-2 epochs at most, and criteria that never hold, so the run has
# a fixed length of 1 + 3 epochs whatever the latents look like.
LONG = dict(FAST, max_epochs=3, min_epochs=3, min_accuracy=1.0, max_kl=0.0)


def _interrupt_after_checkpoint(monkeypatch, epochs_done):
    """Ctrl-C right after the checkpoint of ``epochs_done`` epochs was written."""
    orig = ckpt_module.write_checkpoint

    def write_then_interrupt(path, meta, *arrays, **kwargs):
        orig(path, meta, *arrays, **kwargs)
        if meta["epochs_done"] == epochs_done:
            raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_module, "write_checkpoint", write_then_interrupt)


def _interrupt_during_epoch(monkeypatch, epoch):
    """Ctrl-C at the end of 0-based ``epoch`` (stage 2), before its checkpoint."""
    orig = StoppingCriteria.on_epoch_end

    def criteria_then_interrupt(self, e, logs=None):
        if e == epoch:
            raise KeyboardInterrupt
        return orig(self, e, logs)

    monkeypatch.setattr(StoppingCriteria, "on_epoch_end", criteria_then_interrupt)


@pytest.fixture(scope="module")
def reference(nuclei):
    X, y = nuclei
    model = CellFateAAE(**LONG).fit(X, y)
    return model.transform(X), model.history_


@pytest.mark.exact
@pytest.mark.backend
@pytest.mark.parametrize("where", ["after checkpoint", "mid stage 2"])
def test_resumed_fit_equals_uninterrupted(nuclei, reference, tmp_path, monkeypatch, where):
    X, y = nuclei
    z_ref, hist_ref = reference
    assert len(hist_ref) == 4  # 1 stage-1 + 3 stage-2 epochs
    with monkeypatch.context() as mp:
        if where == "after checkpoint":
            _interrupt_after_checkpoint(mp, 2)  # inside stage 2
        else:
            _interrupt_during_epoch(mp, 2)  # third epoch; last checkpoint after the second
        first = CellFateAAE(checkpoint_dir=tmp_path, **LONG).fit(X, y)
    assert first.stop_reason_ == "interrupted"
    n_done = 2 if where == "after checkpoint" else 3
    assert first.n_epochs_ == n_done
    assert os.path.exists(tmp_path / CHECKPOINT_NAME)
    assert np.all(np.isfinite(first.transform(X)))  # usable after the interrupt

    resumed = CellFateAAE(checkpoint_dir=tmp_path, **LONG).fit(X, y, resume=True)
    assert resumed.resumed_from_epoch_ == 2
    resumed.save(tmp_path / "resumed.keras")  # a Path parameter is saved as text
    assert ai4cellfate.load(tmp_path / "resumed.keras").checkpoint_dir == str(tmp_path)
    assert resumed.stop_reason_ == "max_epochs reached"
    np.testing.assert_array_equal(resumed.transform(X), z_ref)
    np.testing.assert_array_equal(resumed.history_["loss"].to_numpy(),
                                  hist_ref["loss"].to_numpy())
    np.testing.assert_array_equal(resumed.history_["centroid_distance"].to_numpy(),
                                  hist_ref["centroid_distance"].to_numpy())
    # a normally finished fit removes its checkpoint
    assert not os.path.exists(tmp_path / CHECKPOINT_NAME)


@pytest.mark.exact
def test_resume_in_stage_one_and_random_state_none(nuclei, tmp_path, monkeypatch):
    """Resuming reuses the interrupted run's seed (split, subsampling, batch
    order), so random_state=None resumes reproducibly: two resumes from copies
    of one checkpoint agree exactly."""
    import shutil

    X, y = nuclei
    params = dict(LONG, stage1_epochs=2, random_state=None)
    with monkeypatch.context() as mp:
        _interrupt_after_checkpoint(mp, 1)
        CellFateAAE(checkpoint_dir=tmp_path / "a", **params).fit(X, y)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    runs = [CellFateAAE(checkpoint_dir=tmp_path / d, **params).fit(X, y, resume=True)
            for d in ("a", "b")]
    for r in runs:
        assert r.resumed_from_epoch_ == 1 and r.n_epochs_ == 5
        assert list(r.history_["stage"]) == [1, 1, 2, 2, 2]
    np.testing.assert_array_equal(runs[0].transform(X), runs[1].transform(X))
    fresh = CellFateAAE(**params).fit(X, y)
    assert np.max(np.abs(fresh.transform(X) - runs[0].transform(X))) > 1e-3


def test_on_interrupt_raise_leaves_fitted_model(nuclei, tmp_path, monkeypatch):
    X, y = nuclei
    _interrupt_during_epoch(monkeypatch, 2)
    model = CellFateAAE(checkpoint_dir=tmp_path, on_interrupt="raise", **LONG)
    with pytest.raises(KeyboardInterrupt, match="after 3 epochs.*can resume from"):
        model.fit(X, y)
    assert model.stop_reason_ == "interrupted" and model.n_epochs_ == 3
    assert model.predict(X).shape == (len(X),)
    assert os.path.exists(tmp_path / CHECKPOINT_NAME)


def test_interrupt_without_checkpoint_keeps_last_completed_epoch(nuclei, monkeypatch):
    X, y = nuclei
    _interrupt_during_epoch(monkeypatch, 1)
    model = CellFateAAE(**LONG).fit(X, y)
    assert model.stop_reason_ == "interrupted"
    assert list(model.history_["epoch"]) == [1, 2]  # the epoch in flight had completed
    assert np.all(np.isfinite(model.predict_proba(X)))


def test_checkpoint_every_and_contents(nuclei, tmp_path, monkeypatch):
    X, y = nuclei
    written = []
    orig = ckpt_module.write_checkpoint

    def record(path, meta, model_values, optimizer_values, best_values=None):
        written.append(meta["epochs_done"])
        orig(path, meta, model_values, optimizer_values, best_values=best_values)
        # every variable and the optimizer's moments are in the file
        m, mv, ov = read_checkpoint(path)
        assert len(mv) == len(model_values) > 50 and len(ov) == len(optimizer_values) > 50
        assert m["rows"][-1]["epoch"] == meta["epochs_done"] - 1
        assert not [f for f in os.listdir(tmp_path) if f != CHECKPOINT_NAME]

    monkeypatch.setattr(ckpt_module, "write_checkpoint", record)
    CellFateAAE(checkpoint_dir=tmp_path, checkpoint_every=2, **LONG).fit(X, y)
    assert written == [2, 4]


def test_failed_checkpoint_write_keeps_previous_one(tmp_path, monkeypatch):
    path = str(tmp_path / CHECKPOINT_NAME)
    write_checkpoint(path, {"epochs_done": 1}, [np.ones(3)], [np.zeros(2)])

    def broken_savez(fh, **arrays):
        fh.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        write_checkpoint(path, {"epochs_done": 2}, [np.ones(3) * 2], [np.zeros(2)])
    monkeypatch.undo()
    meta, mv, _ = read_checkpoint(path)
    assert meta["epochs_done"] == 1 and np.array_equal(mv[0], np.ones(3))
    assert os.listdir(tmp_path) == [CHECKPOINT_NAME]  # no temporary file left


@pytest.mark.exact
def test_resume_without_checkpoint_starts_afresh(nuclei, tmp_path):
    X, y = nuclei
    a = CellFateAAE(checkpoint_dir=tmp_path / "new", **FAST).fit(X, y, resume=True)
    assert a.resumed_from_epoch_ is None
    b = CellFateAAE(**FAST).fit(X, y)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))


@pytest.fixture
def interrupted_dir(nuclei, tmp_path, monkeypatch):
    X, y = nuclei
    with monkeypatch.context() as mp:
        _interrupt_after_checkpoint(mp, 1)
        CellFateAAE(checkpoint_dir=tmp_path, **LONG).fit(X, y)
    return tmp_path


@pytest.mark.parametrize("change, match", [
    ("data", "other data"),
    ("labels", "other data"),
    ("label names", "other data"),
    ("params", r"lambda_contra differ"),
    ("random_state", "another random_state"),
])
def test_resume_refuses_a_checkpoint_of_another_fit(nuclei, interrupted_dir, change, match):
    X, y = nuclei
    params = dict(LONG)
    if change == "data":
        X = X.copy()
        X[0, 0, 0] += 0.01
    elif change == "labels":
        y = y.copy()
        y[:2] = 1 - y[:2]
    elif change == "label names":  # same encoded labels, other classes_
        y = np.where(y == 1, "b: divides", "a: stays")  # encodes to the same 0/1
    elif change == "params":
        params["lambda_contra"] = 3.0
    else:
        params["random_state"] = 1
    with pytest.raises(ValueError, match=match):
        CellFateAAE(checkpoint_dir=interrupted_dir, **params).fit(X, y, resume=True)


def test_resume_refuses_a_checkpoint_of_another_backend(nuclei, interrupted_dir):
    path = interrupted_dir / CHECKPOINT_NAME
    meta, mv, ov = read_checkpoint(path)
    meta["fingerprint"]["backend"] = "other"
    write_checkpoint(str(path), meta, mv, ov)
    X, y = nuclei
    with pytest.raises(ValueError, match="'other' Keras backend"):
        CellFateAAE(checkpoint_dir=interrupted_dir, **LONG).fit(X, y, resume=True)


def test_corrupted_checkpoint_gives_clear_error(nuclei, interrupted_dir):
    path = interrupted_dir / CHECKPOINT_NAME
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    X, y = nuclei
    with pytest.raises(ValueError, match="not a readable ai4cellfate checkpoint.*Delete it"):
        CellFateAAE(checkpoint_dir=interrupted_dir, **LONG).fit(X, y, resume=True)


@pytest.mark.parametrize("params, fit_kw, exc, match", [
    ({}, {"resume": True}, ValueError, "resume=True needs checkpoint_dir"),
    ({}, {"resume": "yes"}, TypeError, "resume must be True or False"),
    ({"checkpoint_every": 0}, {}, ValueError, "checkpoint_every"),
    ({"checkpoint_dir": 3}, {}, TypeError, "checkpoint_dir must be a folder path"),
    ({"on_interrupt": "ignore"}, {}, ValueError, "on_interrupt must be 'stop' or 'raise'"),
])
def test_checkpoint_parameters_are_checked(nuclei, params, fit_kw, exc, match):
    X, y = nuclei
    with pytest.raises(exc, match=match):
        CellFateAAE(**dict(FAST, **params)).fit(X, y, **fit_kw)


def test_checkpoint_dir_that_is_a_file(nuclei, tmp_path):
    X, y = nuclei
    f = tmp_path / "file"
    f.write_text("mine")
    with pytest.raises(ValueError, match="checkpoint_dir must be a folder"):
        CellFateAAE(checkpoint_dir=f, **FAST).fit(X, y)
    assert f.read_text() == "mine"


@pytest.mark.exact
def test_interrupt_inside_an_epoch_restores_the_last_completed_one(nuclei, tmp_path,
                                                                    monkeypatch):
    """Ctrl-C between two batches of epoch 2: the model is that of epoch 1, the
    same as a run stopped right after epoch 1's checkpoint."""
    from ai4cellfate.training import loop

    X, y = nuclei
    make = loop._make_callbacks

    def make_interrupting():
        Recorder, *others = make()

        class InterruptingRecorder(Recorder):
            def on_train_batch_end(self, batch, logs=None):
                if self.stage == 2 and batch == 1:
                    raise KeyboardInterrupt

        return (InterruptingRecorder, *others)

    with monkeypatch.context() as mp:
        mp.setattr(loop, "_make_callbacks", make_interrupting)
        inside = CellFateAAE(**LONG).fit(X, y)
    assert inside.stop_reason_ == "interrupted" and list(inside.history_["epoch"]) == [1]
    with monkeypatch.context() as mp:
        _interrupt_after_checkpoint(mp, 1)
        after = CellFateAAE(checkpoint_dir=tmp_path, **LONG).fit(X, y)
    np.testing.assert_array_equal(inside.transform(X), after.transform(X))


@pytest.mark.backend
def test_interrupt_right_after_a_step_leaves_every_variable_usable(nuclei, tmp_path,
                                                                   monkeypatch):
    """Ctrl-C (or a signal handler's ``KeyboardInterrupt``) can land between a
    train step's return and Keras storing its new state. On JAX that state
    was once computed in the inputs' buffers (donated), so the state Keras
    kept had been deleted, and saving the interrupted model failed with
    "Array has been deleted"."""
    from ai4cellfate.training import AdversarialAutoencoder

    X, y = nuclei
    calls = [0]
    original = AdversarialAutoencoder.make_train_function

    def make_train_function(self, force=False):
        original(self, force)
        step = self.train_function

        def step_then_interrupt(*args, **kwargs):
            out = step(*args, **kwargs)
            calls[0] += 1
            if calls[0] == 7:            # stage 2, inside its first epoch
                raise KeyboardInterrupt
            return out

        self.train_function = step_then_interrupt

    monkeypatch.setattr(AdversarialAutoencoder, "make_train_function", make_train_function)
    model = CellFateAAE(**dict(LONG, augment=False)).fit(X, y)
    assert calls[0] == 7
    assert model.stop_reason_ == "interrupted" and list(model.history_["epoch"]) == [1]
    for v in model.model_.variables + model.model_.optimizer.variables:
        assert np.all(np.isfinite(np.asarray(v.numpy(), dtype=float))), v.path
    path = tmp_path / "interrupted.keras"
    model.save(path)
    np.testing.assert_array_equal(ai4cellfate.load(path).transform(X), model.transform(X))
