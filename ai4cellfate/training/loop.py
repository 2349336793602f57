"""The two-stage training loop: schedule, stopping, model selection, interrupts,
checkpoints and history.

This is the one place that answers "when does training stop and which weights
are kept" (method specification, section 4):

* **Stage 1** (``stage1_epochs``): reconstruction and adversarial losses only.
* **Stage 2** (at most ``max_epochs``): all four losses. After every epoch the
  stopping criteria (:mod:`ai4cellfate.training.criteria`) are evaluated on a
  validation split carved from the training data. Training stops at the first
  stage-2 epoch *after* ``min_epochs`` (``epoch > min_epochs``, as the
  authors' code does) at which every criterion holds; that epoch is kept.
* **Model selection**: when ``max_epochs`` is reached without the criteria
  holding, the weights of the stage-2 epoch after ``min_epochs`` with the
  best validation balanced accuracy are restored (ties go to the later
  epoch), unless ``restore_best_weights=False`` keeps the last epoch.
* A non-finite loss stops training with the weights of the last finite
  epoch; ``KeyboardInterrupt`` (Ctrl-C) keeps the last completed epoch.
* A checkpoint of the complete training state can be written every few
  epochs and resumed exactly (:class:`Checkpoint`).

Only validation data from the training set is used: nothing seen later by
``score`` or ``predict`` influences what is kept.

The entry point is :func:`train_two_stage`; the estimator
(:class:`ai4cellfate.CellFateAAE`) builds the model and the data and hands
them over.
"""

from __future__ import annotations

import math
import os
import random
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .criteria import StoppingCriteria

__all__ = [
    "STOP_REASONS",
    "Schedule",
    "StoppingRule",
    "Checkpoint",
    "TrainingResult",
    "open_checkpoint",
    "resolve_verbose",
    "seed_everything",
    "request_interrupt",
    "clear_interrupt",
    "stage1_weights",
    "train_two_stage",
]

#: ``stop_reason_`` values, by key.
STOP_REASONS = {
    "criteria": "criteria met",
    "max_epochs": "max_epochs reached",
    "nonfinite": "non-finite loss",
    "interrupted": "interrupted",
}

LOSS_COLUMNS = ["loss", "recon_loss", "adv_loss", "contra_loss", "cov_loss", "disc_loss"]


def _keras():
    import keras

    return keras


def seed_everything(seed):
    """Seed Python, NumPy and the backend's global generator.

    ``keras.utils.set_random_seed`` is avoided on purpose: it initialises the
    TensorFlow runtime whenever TensorFlow is installed, which deadlocks
    PyTorch's autograd on CPU when both are loaded.

    Parameters
    ----------
    seed : int
        The run's seed.
    """
    keras = _keras()
    random.seed(seed)
    np.random.seed(seed % (2**32))
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        torch.manual_seed(seed)
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.random.set_seed(seed)


def stage1_weights(lambda_recon, lambda_adv):
    """Loss weights of stage 1: reconstruction ``5 * lambda_adv`` and adversarial.

    A weight of 0 switches a loss off in both stages: with ``lambda_recon=0``
    stage 1 trains no reconstruction; with ``lambda_adv=0`` it trains
    reconstruction alone, weighted by ``lambda_recon``.

    Parameters
    ----------
    lambda_recon, lambda_adv : float
        The stage-2 weights.

    Returns
    -------
    weights : dict
        ``lambda_recon``, ``lambda_adv``, ``lambda_contra`` (0) and
        ``lambda_cov`` (0).

    Examples
    --------
    >>> stage1_weights(8.0, 4.0)["lambda_recon"]
    20.0
    >>> stage1_weights(0.0, 4.0)["lambda_recon"]
    0.0
    """
    if lambda_recon == 0:
        recon = 0.0
    elif lambda_adv > 0:
        recon = 5.0 * float(lambda_adv)
    else:
        recon = float(lambda_recon)
    return {"lambda_recon": recon, "lambda_adv": float(lambda_adv),
            "lambda_contra": 0.0, "lambda_cov": 0.0}


@dataclass(frozen=True)
class Schedule:
    """Epochs, batch size and loss weights of the two stages.

    Parameters
    ----------
    stage1_epochs : int
        Epochs of stage 1.
    min_epochs : int
        Stage-2 epochs that must be exceeded before the criteria may stop.
    max_epochs : int
        Most stage-2 epochs.
    batch_size : int
        Images per step. Every epoch draws a fresh permutation and drops the
        remainder, so no image is repeated within an epoch.
    stage2_weights : dict
        ``lambda_recon``, ``lambda_adv``, ``lambda_contra``, ``lambda_cov``.
    """

    stage1_epochs: int
    min_epochs: int
    max_epochs: int
    batch_size: int
    stage2_weights: dict

    @property
    def stage1(self):
        """Loss weights of stage 1 (see :func:`stage1_weights`)."""
        return stage1_weights(self.stage2_weights["lambda_recon"],
                              self.stage2_weights["lambda_adv"])

    @property
    def end(self):
        """Index one past the last epoch (both stages)."""
        return self.stage1_epochs + self.max_epochs


@dataclass(frozen=True)
class StoppingRule:
    """Stage-2 stopping criteria and what is kept when they never hold.

    Parameters
    ----------
    min_centroid_distance, max_kl, min_accuracy, min_precision : float
        Thresholds (see :func:`ai4cellfate.training.criteria.evaluate_criteria`).
    precision : {"balanced", "ordinary"}
        Which precision criterion 3b compares with ``min_precision``.
    restore_best_weights : bool
        Keep the best validated stage-2 epoch after ``min_epochs`` when the
        criteria never hold (otherwise the last epoch).
    """

    min_centroid_distance: float = 0.5
    max_kl: float = 0.2
    min_accuracy: float = 0.65
    min_precision: float = 0.65
    precision: str = "balanced"
    restore_best_weights: bool = True

    def thresholds(self):
        """Keyword arguments of :func:`~ai4cellfate.training.criteria.evaluate_criteria`."""
        return {"min_centroid_distance": self.min_centroid_distance, "max_kl": self.max_kl,
                "min_accuracy": self.min_accuracy, "min_precision": self.min_precision,
                "precision": self.precision}


@dataclass
class Checkpoint:
    """Where and how often a fit writes its checkpoint, and what it resumes from.

    Made by :func:`open_checkpoint`.

    Attributes
    ----------
    path : str
        The checkpoint file.
    every : int
        Epochs between checkpoints.
    fingerprint : dict
        Data, parameters, labels and backend the checkpoint belongs to.
    state : dict or None
        The saved state to resume from (``meta``, ``values``,
        ``optimizer_values``, ``best_values``), or None to start afresh.
    """

    path: str
    every: int
    fingerprint: dict
    state: dict | None = None

    @property
    def seed(self):
        """The seed of the run being resumed, or None."""
        return None if self.state is None else int(self.state["meta"]["seed"])


def open_checkpoint(folder, every, fingerprint, *, resume, random_seed=None):
    """Prepare a fit's checkpoint; with ``resume``, read and check the saved one.

    Parameters
    ----------
    folder : str or path-like
        Checkpoint folder (created if missing).
    every : int
        Epochs between checkpoints.
    fingerprint : dict
        ``params``, ``data``, ``classes`` and ``backend`` of this fit.
    resume : bool
        Read the checkpoint in ``folder`` when there is one.
    random_seed : int, optional
        The seed this fit would use; a checkpoint written with another one is
        refused.

    Returns
    -------
    checkpoint : Checkpoint

    Raises
    ------
    ValueError
        The saved checkpoint belongs to another backend, data, labels,
        parameters or seed.
    """
    import warnings

    from .. import _checkpoint

    path = _checkpoint.checkpoint_path(folder)
    state = None
    if resume and not os.path.exists(path):
        warnings.warn(
            f"resume=True but {os.fspath(folder)} holds no checkpoint "
            f"({_checkpoint.CHECKPOINT_NAME}); the fit starts afresh.",
            UserWarning, stacklevel=3,
        )
    if resume and os.path.exists(path):
        meta, values, opt_values, best_values = _checkpoint.read_checkpoint(path, with_best=True)
        old = meta.get("fingerprint", {})
        if old.get("backend") != fingerprint["backend"]:
            raise ValueError(
                f"The checkpoint {path} was written under the {old.get('backend')!r} Keras "
                f"backend; this is {fingerprint['backend']!r}. Resume under the same "
                "backend (KERAS_BACKEND), or fit afresh with resume=False."
            )
        if random_seed is not None and int(meta["seed"]) != int(random_seed):
            raise ValueError(
                f"The checkpoint {path} was written with another random_state (seed "
                f"{meta['seed']}, this fit's is {random_seed}); resume with the same "
                "random_state, or fit afresh with resume=False."
            )
        if (old.get("data"), old.get("classes")) != (fingerprint["data"],
                                                     fingerprint["classes"]):
            raise ValueError(
                f"The checkpoint {path} belongs to a fit on other data (X, y, its labels "
                "or groups differ); resume with the same data, or fit afresh with resume=False."
            )
        new_params, old_params = fingerprint["params"], old.get("params", {})
        if old_params != new_params:
            changed = sorted(k for k in set(old_params) | set(new_params)
                             if old_params.get(k) != new_params.get(k))
            raise ValueError(
                f"The checkpoint {path} was written with other parameters ({', '.join(changed)}"
                " differ); resume with the same parameters, or fit afresh with resume=False."
            )
        state = {"meta": meta, "values": values, "optimizer_values": opt_values,
                 "best_values": best_values}
    os.makedirs(folder, exist_ok=True)
    return Checkpoint(path=path, every=int(every), fingerprint=fingerprint, state=state)


@dataclass
class TrainingResult:
    """What :func:`train_two_stage` returns.

    Attributes
    ----------
    history : pandas.DataFrame
        One row per epoch (see ``CellFateAAE.history_``), with a ``kept``
        column marking the epoch whose weights the model holds.
    stop_reason : str
        One of :data:`STOP_REASONS`' values.
    best_epoch : int or None
        1-based epoch (both stages counted) whose weights the model holds.
    n_epochs : int
        Epochs run.
    resumed_from_epoch : int or None
        Epochs done when a checkpoint was resumed.
    message : str or None
        Why training stopped on a non-finite loss.
    """

    history: pd.DataFrame
    stop_reason: str
    best_epoch: int | None
    n_epochs: int
    resumed_from_epoch: int | None = None
    message: str | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


#: Set by :func:`request_interrupt`; the running fit stops at the next batch.
_PENDING_INTERRUPT = threading.Event()


def request_interrupt():
    """Ask the running fit to stop as after Ctrl-C, at the next batch at the latest.

    For signal handlers that turn a signal (SIGTERM from a batch system, say)
    into ``KeyboardInterrupt``: call this, then raise. Python drops an
    exception raised while a garbage-collector callback runs (JAX registers
    one; the interrupt then shows up as "Exception ignored in:
    _xla_gc_callback" and training would go on); the fit also checks this
    flag before every batch and after every epoch, so the interrupt is not
    lost. The flag is cleared when the fit ends on the interrupt, and by
    :func:`clear_interrupt`.
    """
    _PENDING_INTERRUPT.set()


def clear_interrupt():
    """Withdraw a :func:`request_interrupt` that no fit has acted on."""
    _PENDING_INTERRUPT.clear()


def _make_callbacks():
    """Callback classes, created lazily so importing needs no Keras backend."""
    keras = _keras()

    class EpochRecorder(keras.callbacks.Callback):
        """Record every epoch's losses; stop on a non-finite loss.

        Keeps the weights of the last finite epoch so that training that
        diverges or is interrupted leaves a usable model.
        """

        def __init__(self, stage, rows, snapshot):
            super().__init__()
            self.stage = stage
            self.rows = rows
            self.snapshot = snapshot  # shared by both stages
            self.bad = None

        def _keep_weights(self):
            self.snapshot["weights"] = [np.array(w) for w in self.model.get_weights()]

        def on_train_begin(self, logs=None):
            if "weights" not in self.snapshot:
                self._keep_weights()

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            bad = [k for k in LOSS_COLUMNS if k in logs and not math.isfinite(logs[k])]
            if bad:
                self.bad = (epoch, bad)
                self.model.stop_training = True
                return
            self.rows.append({"epoch": epoch, "stage": self.stage, **logs})
            self._keep_weights()

    class ShuffledBatches(keras.utils.PyDataset):
        """An endless stream of whole batches whose order is drawn from ``(seed, epoch)``.

        Every epoch is a fresh permutation of the training images; the last
        ``len(X) % batch_size`` of it are left out (a partial batch would
        recompile on JAX), so no image appears twice in an epoch and every
        image is seen over the epochs. Keras' own shuffling draws from each
        backend's global random state; this keeps ``random_state`` in control,
        and a fit resumed at epoch ``e`` sees the batches an uninterrupted one
        would.

        Item ``i`` is batch ``i % steps`` of epoch ``first_epoch + i // steps``:
        the epoch is a function of the index alone (one sequence per
        ``Model.fit`` call, given ``steps_per_epoch=steps``). An order switched
        by an epoch callback instead races with prefetching: TensorFlow's
        ``tf.data`` prefetch thread reads the next epoch's first batches before
        ``on_epoch_begin`` runs, so the batches a fit saw depended on thread
        timing (and a resumed fit could differ from an uninterrupted one).
        """

        def __init__(self, X, y, batch_size, seed, first_epoch=0):
            super().__init__()
            self.X, self.y, self.batch_size, self.seed = X, y, batch_size, seed
            self.first_epoch = int(first_epoch)
            self.steps = len(X) // batch_size
            self._cached = (None, None)  # (epoch, permutation); replaced whole, thread-safe

        def order(self, epoch):
            """The permutation of the training images for ``epoch``."""
            cached_epoch, perm = self._cached
            if cached_epoch != epoch:
                perm = np.random.default_rng([self.seed, int(epoch)]).permutation(len(self.X))
                self._cached = (epoch, perm)
            return perm

        @property
        def num_batches(self):
            return None  # endless: Model.fit is given steps_per_epoch

        def __getitem__(self, i):
            epoch, b = self.first_epoch + i // self.steps, i % self.steps
            idx = np.sort(self.order(epoch)[b * self.batch_size:(b + 1) * self.batch_size])
            return self.X[idx], self.y[idx]

    class Checkpointer(keras.callbacks.Callback):
        """Call ``save(epoch)`` every ``every`` epochs and when training stops."""

        def __init__(self, every, save):
            super().__init__()
            self.every, self.save = every, save

        def on_epoch_end(self, epoch, logs=None):
            if (epoch + 1) % self.every == 0 or self.model.stop_training:
                self.save(epoch)

    class BestEpoch(keras.callbacks.Callback):
        """Remember the weights of the best validated stage-2 epoch after ``min_epochs``."""

        def __init__(self, criteria, first_eligible, best):
            super().__init__()
            self.criteria, self.first_eligible, self.best = criteria, first_eligible, best

        def on_epoch_end(self, epoch, logs=None):
            rec = self.criteria.records.get(epoch)
            if rec is None or epoch < self.first_eligible:
                return
            score = rec["val_balanced_accuracy"]
            if self.best.get("score") is None or score >= self.best["score"]:  # ties: later
                self.best.update(epoch=epoch, score=score,
                                 weights=[np.array(w) for w in self.model.get_weights()])

    class InterruptGuard(keras.callbacks.Callback):
        """Raise ``KeyboardInterrupt`` once :func:`request_interrupt` was called.

        Batch-begin and epoch-end hooks only: a batch-end hook would make
        Keras convert every batch's logs in the loop (no async dispatch).
        """

        def _check(self):
            if _PENDING_INTERRUPT.is_set():
                raise KeyboardInterrupt("interrupt requested")

        def on_train_batch_begin(self, batch, logs=None):
            self._check()

        def on_epoch_end(self, epoch, logs=None):
            self._check()

    return EpochRecorder, ShuffledBatches, Checkpointer, BestEpoch, InterruptGuard


def _overrides(callback, *hooks):
    """Whether ``callback`` implements any of ``hooks`` (not Keras' no-op)."""
    keras = _keras()
    for hook in hooks:
        method = getattr(type(callback), hook, None)
        if method is not None and method is not getattr(keras.callbacks.Callback, hook) \
                and not getattr(method, "_is_default", False):
            return True
    return False


def _fit_callbacks(callbacks, *, model, epochs, steps, verbose):
    """A :class:`keras.callbacks.CallbackList` for one ``Model.fit`` call
    that leaves out the per-batch hooks no callback implements.

    Keras' own list hands every batch's logs to a thread pool that converts
    them to Python numbers even when no callback reads them: a task per step
    whose thread wakes when that step finishes, and a wait for the backlog at
    every epoch's end (about 0.9 s of a default HeLa fit on JAX). Batch hooks
    that some callback implements (Keras' progress bar with
    ``keras_verbose``, a subclass's ``on_train_batch_end``) run as Keras runs
    them.
    """
    keras = _keras()

    class FitCallbacks(keras.callbacks.CallbackList):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._batch_begin = any(_overrides(cb, "on_train_batch_begin", "on_batch_begin")
                                    for cb in self.callbacks)
            self._batch_end = any(_overrides(cb, "on_train_batch_end", "on_batch_end")
                                  for cb in self.callbacks)

        def on_train_batch_begin(self, batch, logs=None):
            if self._batch_begin:
                super().on_train_batch_begin(batch, logs)

        def on_train_batch_end(self, batch, logs=None):
            if self._batch_end:
                super().on_train_batch_end(batch, logs)

    return FitCallbacks(callbacks, add_history=True, add_progbar=verbose != 0,
                        model=model, verbose=verbose, epochs=epochs, steps=steps)


def _history_frame(rows, records, latent_dim, kept_epoch):
    crit_cols = (["centroid_distance"] + [f"kl_z{d}" for d in range(latent_dim)]
                 + ["kl_max", "val_balanced_accuracy", "val_precision",
                    "val_balanced_precision", "criteria_met"])
    table = []
    for row in rows:
        rec = records.get(row["epoch"], {})
        out = {"epoch": row["epoch"] + 1, "stage": row["stage"]}
        out.update({c: row.get(c, np.nan) for c in LOSS_COLUMNS})
        out.update({c: rec.get(c, np.nan) for c in crit_cols})
        out["kept"] = row["epoch"] == kept_epoch
        table.append(out)
    frame = pd.DataFrame(table, columns=["epoch", "stage"] + LOSS_COLUMNS + crit_cols + ["kept"])
    frame["criteria_met"] = frame["criteria_met"].astype("boolean")
    frame["kept"] = frame["kept"].astype(bool)
    return frame


def _restore(model, state, path, rows, criteria, best):
    """Load a checkpoint's state into a freshly built model; return epochs done."""
    meta = state["meta"]
    targets = [(model.variables, state["values"], "model"),
               (model.optimizer.variables, state["optimizer_values"], "optimizer")]
    for variables, arrays, what in targets:
        shapes = [tuple(v.shape) for v in variables]
        if len(arrays) != len(variables) or any(
            tuple(a.shape) != s for a, s in zip(arrays, shapes)
        ):
            raise ValueError(
                f"The checkpoint {path} does not match this model's {what} "
                f"variables ({len(arrays)} arrays for {len(variables)} variables); it was "
                "written by another version of ai4cellfate. Fit afresh with resume=False."
            )
        for v, a in zip(variables, arrays):
            v.assign(a)
    rows.extend(meta["rows"])
    criteria.records.update({int(k): v for k, v in meta["records"].items()})
    criteria.met = bool(meta["criteria_met"])
    if meta.get("best") is not None and state.get("best_values"):
        best.update(epoch=int(meta["best"]["epoch"]), score=float(meta["best"]["score"]),
                    weights=list(state["best_values"]))
    return int(meta["epochs_done"])


def _in_search():
    """True inside scikit-learn's model selection, our studies or a joblib worker."""
    import multiprocessing

    if multiprocessing.current_process().name != "MainProcess":
        return True
    frame = sys._getframe(1)
    while frame is not None:
        mod = frame.f_globals.get("__name__", "")
        if mod.startswith(("sklearn.model_selection", "ai4cellfate.studies", "joblib")):
            return True
        frame = frame.f_back
    return False


def _interactive():
    if "ipykernel" in sys.modules or hasattr(sys, "ps1"):
        return True
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def resolve_verbose(verbose):
    """``verbose="auto"``: 1 (a line per epoch) in an interactive session, 0 in
    scripts without a terminal and inside model selection, our studies and
    parallel workers; other values are returned as ints."""
    if verbose == "auto":
        return 1 if _interactive() and not _in_search() else 0
    return int(verbose)


class _Progress:
    """One line per epoch for a person waiting: stage, epoch, losses, criteria, time left."""

    def __init__(self, schedule, first_epoch=0, stream=None):
        self.schedule = schedule
        self.stream = stream if stream is not None else sys.stdout
        self.start = time.perf_counter()
        self.first_epoch = first_epoch

    def callback(self, stage, criteria):
        keras = _keras()
        progress = self

        class Line(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                progress.line(stage, epoch, logs or {}, criteria.records.get(epoch))

        return Line()

    def line(self, stage, epoch, logs, record):
        s = self.schedule
        if stage == 1:
            head = f"stage 1/2 (reconstruction + adversarial) epoch {epoch + 1}/{s.stage1_epochs}"
        else:
            head = (f"stage 2/2 (all losses) epoch {epoch + 1 - s.stage1_epochs}/{s.max_epochs}"
                    f" (criteria may stop it after {s.min_epochs})")
        parts = [f"{k.replace('_loss', '')} {float(logs[k]):.4f}" for k in LOSS_COLUMNS
                 if k in logs]
        if record is not None:
            parts.append(
                f"| centroid {record['centroid_distance']:.2f} kl {record['kl_max']:.3f} "
                f"bal.acc {record['val_balanced_accuracy']:.3f} "
                f"prec {record['criterion_precision']:.3f}"
                f"{' criteria met' if record['criteria_met'] else ''}")
        done = epoch + 1 - self.first_epoch
        per_epoch = (time.perf_counter() - self.start) / max(done, 1)
        left = (s.end - epoch - 1) * per_epoch
        eta = f"| {per_epoch:.1f} s/epoch, at most ~{_fmt_seconds(left)} left"
        print(f"[ai4cellfate] {head}: {' '.join(parts)} {eta}".rstrip(), file=self.stream,
              flush=True)

    def message(self, text):
        print(f"[ai4cellfate] {text}", file=self.stream, flush=True)


def _fmt_seconds(sec):
    sec = int(round(sec))
    return f"{sec // 60} min {sec % 60:02d} s" if sec >= 60 else f"{sec} s"


def train_two_stage(model, train_data, criteria_data, schedule, rule, *, seed, encode,
                    checkpoint=None, verbose=0, keras_verbose=0, fit_info=None):
    """Run both training stages on a compiled model; return what was kept and why.

    Parameters
    ----------
    model : AdversarialAutoencoder
        Built and compiled (optimizer built), freshly initialised.
    train_data : tuple (X, y)
        Augmented, balanced training images (``(n, H, W, C)`` float32) and
        labels (float32 class indices).
    criteria_data : tuple (X_fit, y_fit, X_val, y_val)
        Images and integer labels the latent classifier of criterion 3 is
        fitted on, and the validation split every criterion is scored on
        (``X_val is X_fit`` scores them on the training data).
    schedule : Schedule
    rule : StoppingRule
    seed : int
        The run's seed (batch order; stored in the checkpoint).
    encode : callable
        ``encode(X) -> Z`` with the model's current encoder.
    checkpoint : Checkpoint, optional
        Write (and resume from) a checkpoint.
    verbose : int, default=0
        0 silent, 1 one line per epoch from this loop.
    keras_verbose : int, default=0
        Passed to ``keras.Model.fit`` (1 adds Keras' progress bar).
    fit_info : dict, optional
        Extra JSON-serialisable values stored in the checkpoint's metadata.

    Returns
    -------
    result : TrainingResult
        The model holds the kept weights when this returns.
    """
    from .._version import __version__

    Recorder, ShuffledBatches, Checkpointer, BestEpoch, InterruptGuard = _make_callbacks()
    X_tr, y_tr = train_data
    X_fit, y_fit, X_val, y_val = criteria_data
    rows, snapshot, best = [], {}, {}
    s1, end = schedule.stage1_epochs, schedule.end
    criteria = StoppingCriteria(
        encode, (X_fit, y_fit), (X_val, y_val), schedule.min_epochs, rule.thresholds(),
        first_epoch=s1,
    )
    first_eligible = s1 + min(schedule.min_epochs, schedule.max_epochs - 1)
    best_cb = BestEpoch(criteria, first_eligible, best)
    start, resumed = 0, None
    if checkpoint is not None and checkpoint.state is not None:
        start = resumed = _restore(model, checkpoint.state, checkpoint.path, rows, criteria,
                                   best)
    progress = _Progress(schedule, first_epoch=start) if verbose else None
    recorder = None
    t0 = time.perf_counter()

    def save_state(epoch):
        if recorder is not None and recorder.bad is not None:
            return  # never checkpoint non-finite weights
        from .. import _checkpoint  # looked up at call time (tests patch it)

        meta = {
            "seed": seed,
            "epochs_done": epoch + 1,
            "criteria_met": bool(criteria.met),
            "rows": rows,
            "records": {str(k): v for k, v in criteria.records.items()},
            "best": (None if best.get("score") is None
                     else {"epoch": int(best["epoch"]), "score": float(best["score"])}),
            "fingerprint": checkpoint.fingerprint,
            "ai4cellfate_version": __version__,
            **(fit_info or {}),
        }
        _checkpoint.write_checkpoint(
            checkpoint.path, meta,
            [np.array(v.numpy()) for v in model.variables],
            [np.array(v.numpy()) for v in model.optimizer.variables],
            best_values=best.get("weights"),
        )

    extra = [Checkpointer(checkpoint.every, save_state)] if checkpoint is not None else []
    extra.append(InterruptGuard())  # last: an epoch it stops after is recorded and saved
    stop = STOP_REASONS["max_epochs"]

    def fit_args(first_epoch, epochs, callbacks):
        """Arguments of a ``Model.fit`` call from ``first_epoch`` to ``epochs``."""
        data = ShuffledBatches(X_tr, y_tr, schedule.batch_size, seed + 1, first_epoch)
        listed = _fit_callbacks(callbacks, model=model, epochs=epochs, steps=data.steps,
                                verbose=int(keras_verbose))
        # Batch order comes from ShuffledBatches alone: Keras would reshuffle the
        # batches with Python's global `random`, which a checkpoint cannot hold.
        return dict(x=data, steps_per_epoch=data.steps, initial_epoch=first_epoch,
                    epochs=epochs, callbacks=listed, verbose=int(keras_verbose),
                    shuffle=False)

    try:
        if start < s1:
            model.set_loss_weights(**schedule.stage1)
            recorder = Recorder(1, rows, snapshot)
            cbs = [recorder] + ([progress.callback(1, criteria)] if progress else [])
            model.fit(**fit_args(start, s1, cbs + extra))
        if (recorder is None or recorder.bad is None) and not criteria.met:
            model.set_loss_weights(**schedule.stage2_weights)
            recorder = Recorder(2, rows, snapshot)
            if max(start, s1) < end:
                # The recorder runs first, so a non-finite epoch is caught
                # before the criteria look at it; the best-epoch tracker runs
                # after the criteria it reads.
                cbs = [recorder, criteria, best_cb]
                cbs += [progress.callback(2, criteria)] if progress else []
                model.fit(**fit_args(max(start, s1), end, cbs + extra))
        if criteria.met:
            stop = STOP_REASONS["criteria"]
    except KeyboardInterrupt:
        _PENDING_INTERRUPT.clear()  # acted on
        stop = STOP_REASONS["interrupted"]
        if "weights" in snapshot:  # back to the last completed epoch
            model.set_weights(snapshot["weights"])
    message = None
    if recorder is not None and recorder.bad is not None:
        epoch, terms = recorder.bad
        stop = STOP_REASONS["nonfinite"]
        model.set_weights(snapshot["weights"])
        message = (
            f"Training stopped at epoch {epoch + 1} (stage {recorder.stage}): "
            f"non-finite {', '.join(terms)}. The estimator keeps the weights of the "
            "last finite epoch; try a lower learning_rate or check X for extreme values."
        )
    kept = rows[-1]["epoch"] if rows else None
    if (stop == STOP_REASONS["max_epochs"] and rule.restore_best_weights
            and best.get("weights") is not None):
        model.set_weights(best["weights"])
        kept = best["epoch"]
    if checkpoint is not None and stop in (STOP_REASONS["criteria"], STOP_REASONS["max_epochs"]):
        if os.path.exists(checkpoint.path):
            os.remove(checkpoint.path)
    history = _history_frame(rows, criteria.records, model.latent_dim, kept)
    if progress is not None:
        which = "" if kept is None else f"; keeping epoch {kept + 1}"
        progress.message(f"training ended: {stop} after {len(history)} epochs{which}")
    return TrainingResult(
        history=history, stop_reason=stop,
        best_epoch=None if kept is None else int(kept) + 1,
        n_epochs=len(history), resumed_from_epoch=resumed, message=message,
        seconds=time.perf_counter() - t0,
    )
