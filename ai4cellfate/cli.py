"""The ``ai4cellfate`` command.

Five subcommands take a tracked movie to predictions and a report without
writing Python::

    ai4cellfate prepare CTC_DIR --format ctc --sequence 02 --horizon 24 -o data.npz
    ai4cellfate fit data.npz -o model.keras
    ai4cellfate predict model.keras data.npz -o predictions.csv
    ai4cellfate report model.keras data.npz -o report/
    ai4cellfate demo -o demo/

Conventions: results go to stdout, progress, warnings and errors to stderr.
Exit status 0 on success, 2 on bad usage, 1 on errors (a one-line
``ai4cellfate: error: ...``; ``--debug`` shows the traceback instead, and the
backends' own log output, hidden otherwise). No
existing output is replaced without ``--overwrite``, and every output is
written to a temporary name beside it and renamed when complete, so a failed
run leaves nothing half-written.

Keras is imported only inside the commands that need it, after ``--backend``
has set ``KERAS_BACKEND``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import importlib.util
import json
import os
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

from ._io import atomic_path, check_writable_location
from ._version import __version__

__all__ = ["main", "build_parser"]

PROG = "ai4cellfate"
BACKENDS = ("jax", "tensorflow", "torch")
#: Backend used when neither --backend nor KERAS_BACKEND says: the first one
#: installed, in this order (fastest training first on a 2-core CPU: the whole
#: HeLa fit and the demo, a first run included; see docs/cli.md).
BACKEND_PREFERENCE = ("jax", "tensorflow", "torch")
HISTORY_FORMAT = "ai4cellfate-history"
HISTORY_SUFFIX = ".history.json"

#: Demo settings: synthetic nuclei, cells held out for the report, and the
#: training parameters (the full demo takes about 15-35 s on 2 CPU cores).
#: Augmentation is off: the synthetic nuclei are plentiful, and the 8 flipped
#: and rotated copies would make every epoch 8 times longer.
DEMO = {
    "full": dict(n_samples=800, test_size=0.25,
                 params=dict(stage1_epochs=5, min_epochs=10, max_epochs=30, augment=False)),
    "quick": dict(n_samples=200, test_size=0.25,
                  params=dict(stage1_epochs=1, min_epochs=1, max_epochs=2, augment=False)),
}
DEMO_FILES = ("model.keras", "model" + HISTORY_SUFFIX, "nuclei.npz")


class UsageError(Exception):
    """Bad usage: exit status 2 with the subcommand's usage line."""


class CommandError(Exception):
    """An error the user can fix: exit status 1 with a one-line message."""


# --------------------------------------------------------------------------
# Output helpers
# --------------------------------------------------------------------------


def _out(*parts):
    print(*parts, file=sys.stdout, flush=True)


def _err(*parts):
    print(*parts, file=sys.stderr, flush=True)


def _one_line(exc):
    """One line describing ``exc`` (no traceback)."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        text = f"{exc.filename}: {exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
        if isinstance(exc, KeyError):
            text = f"missing key {text}"
    if not isinstance(exc, (CommandError, UsageError, ValueError, TypeError, OSError,
                            FloatingPointError)):
        text = f"{type(exc).__name__}: {text}"
    return " ".join(text.split())


@contextlib.contextmanager
def _cli_warnings():
    """Show Python warnings as one-line ``ai4cellfate: warning: ...`` on stderr."""
    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        _err(f"{PROG}: warning: {' '.join(str(message).split())}")

    warnings.showwarning = show
    try:
        with warnings.catch_warnings():
            # Keras' noise when saving a subclassed model (it is built).
            warnings.filterwarnings("ignore", message="You are saving a model that has not")
            yield
    finally:
        warnings.showwarning = previous


@contextlib.contextmanager
def _cli_logging(*, debug=False, quiet=False):
    """Show the package's log messages on stderr as ``ai4cellfate: ...``.

    INFO and above (progress of long steps) by default, WARNING and above
    with ``-q``, everything with ``--debug``.
    """
    import logging

    log = logging.getLogger("ai4cellfate")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
    level = logging.DEBUG if debug else (logging.WARNING if quiet else logging.INFO)
    handler.setLevel(level)
    previous = log.level
    log.setLevel(level)
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(previous)


def _check_location(path, *, directory=False):
    """Refuse an output that could not be written (exit 1), before any work.

    The nearest existing folder on the way to ``path`` must be a folder this
    process may write into: a parent that is a file, or a read-only folder,
    is found now rather than after a long run.
    """
    try:
        check_writable_location(path, directory=directory)
    except OSError as exc:
        raise CommandError(
            f"cannot write {path}: {exc.filename} {exc.strerror}"
        ) from None


def _check_new_file(path, overwrite):
    """Refuse to replace ``path`` unless ``overwrite``; it must not be a folder."""
    path = Path(path)
    if path.is_dir():
        raise CommandError(f"{path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise CommandError(f"{path} exists; pass --overwrite to replace it")
    _check_location(path)


def _check_new_dir(path, names, overwrite):
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CommandError(f"{path} exists and is not a folder")
    _check_location(path, directory=True)
    if path.is_dir() and not overwrite:
        clash = sorted(n for n in names if (path / n).exists())
        if clash:
            raise CommandError(
                f"{path} already holds {', '.join(clash)}; pass --overwrite to replace them"
            )


@contextlib.contextmanager
def _atomic_files(*paths):
    """Yield temporary paths beside ``paths``; rename them into place at the end.

    The temporary names keep each path's suffix (``.keras`` matters to Keras).
    On an error all temporary files are removed and no path is touched.
    """
    paths = [Path(p) for p in paths]
    for p in paths:
        p.absolute().parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        yield [Path(stack.enter_context(atomic_path(p, suffix=p.suffix))) for p in paths]


def history_path(model_path):
    """The training-history file written beside a model.

    Parameters
    ----------
    model_path : str or path-like
        ``.../name.keras``.

    Returns
    -------
    pathlib.Path
        ``.../name.history.json``.
    """
    p = Path(model_path)
    stem = p.name[: -len(".keras")] if p.name.endswith(".keras") else p.name
    return p.with_name(stem + HISTORY_SUFFIX)


# --------------------------------------------------------------------------
# Backend
# --------------------------------------------------------------------------


def _installed(backend):
    try:
        return importlib.util.find_spec(backend) is not None
    except (ImportError, ValueError):
        return False


def _setup_backend(requested):
    """Set ``KERAS_BACKEND`` before Keras is imported; return the backend's name."""
    if requested:
        name = requested
        if not _installed(name):
            raise CommandError(
                f"the {name} backend is not installed; install it with "
                f"pip install 'ai4cellfate[{name}]'"
            )
    elif os.environ.get("KERAS_BACKEND"):
        name = os.environ["KERAS_BACKEND"]
    else:
        name = next((b for b in BACKEND_PREFERENCE if _installed(b)), None)
        if name is None:
            raise CommandError(
                "no Keras backend is installed; install one, e.g. "
                "pip install 'ai4cellfate[torch]'"
            )
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend"):
        current = keras.backend.backend()
        if current != name:
            if requested:
                raise CommandError(
                    f"Keras already runs on the {current} backend in this process; "
                    f"--backend {name} must be chosen before Keras is imported"
                )
            name = current
    os.environ["KERAS_BACKEND"] = name
    return name


# --------------------------------------------------------------------------
# Reading inputs
# --------------------------------------------------------------------------


def _require_file(path, what):
    path = Path(path)
    if not path.exists():
        raise CommandError(f"{path}: no such {what} file")
    if path.is_dir():
        raise CommandError(f"{path} is a folder, not a {what} file")
    return path


def _read_dataset(path, *, need_labels=True):
    """A FateDataset from a file: ``prepare``'s .npz, an .npz with X (and y), an .npy of X."""
    import numpy as np
    import pandas as pd

    from .datasets import FateDataset

    path = _require_file(path, "dataset")
    hint = (
        "expected a dataset .npz written by 'ai4cellfate prepare' (or an .npz holding "
        "arrays X and y)"
    )
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic[:4] != b"PK\x03\x04" and magic != b"\x93NUMPY":
        raise CommandError(f"{path} is not a dataset (neither .npz nor .npy): {hint}")
    try:
        obj = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise CommandError(f"{path} is not a dataset: {hint} ({_one_line(exc)})") from None
    try:
        if isinstance(obj, np.ndarray):
            X, y, groups, table = obj, None, None, None
        else:
            files = obj.files
            if "header" in files:
                obj.close()
                try:
                    return FateDataset.load(path)
                except (ValueError, KeyError, OSError) as exc:
                    raise CommandError(f"{path} is not a readable dataset: {_one_line(exc)}")
            if "X" not in files:
                raise CommandError(f"{path} holds arrays {files}, but no X: {hint}")
            X = obj["X"]
            y = obj["y"] if "y" in files else None
            groups = obj["groups"] if "groups" in files else None
            table = None
    finally:
        if not isinstance(obj, np.ndarray):
            obj.close()
    if X.dtype.kind not in "fiub" or X.ndim not in (3, 4):
        raise CommandError(
            f"{path}: X must be images of shape (n, height, width[, channels]); got "
            f"shape {X.shape}, dtype {X.dtype}"
        )
    labelled = y is not None
    if not labelled:
        if need_labels:
            raise CommandError(f"{path} has images but no fate labels (array y)")
        y = np.full(len(X), -1)
    n = len(X)
    return FateDataset(
        X=X, y=y, groups=np.arange(n) if groups is None else groups,
        table=table if table is not None else pd.DataFrame(index=range(n)),
        meta={"labelled": labelled},
    )


def _has_labels(data):
    return data.meta.get("labelled", True) is not False


def _fingerprint(data):
    import numpy as np

    h = hashlib.sha256()
    X = np.ascontiguousarray(data.X, dtype=np.float32)
    h.update(str(X.shape).encode())
    h.update(X.tobytes())
    h.update(np.asarray(data.y).astype(str).tobytes())
    return h.hexdigest()


def _load_model(path):
    from .estimator import load

    path = _require_file(path, "model")
    try:
        return load(path)
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from None
    except ValueError as exc:
        raise CommandError(_one_line(exc)) from None


def _read_history(model_path):
    """The history JSON written by ``fit`` beside a model, or None."""
    path = history_path(model_path)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        warnings.warn(f"{path} is unreadable; it is ignored", UserWarning, stacklevel=2)
        return None
    if not isinstance(record, dict) or record.get("format") != HISTORY_FORMAT:
        return None
    return record


def _training_overlap(record, data):
    """How ``data`` relates to the model's training data, from the history record.

    Returns ``(same_file, test_indices)``: whether ``data`` is the file the model
    was fitted on, and which of its samples were held out (an empty list when
    none; None when unknown).
    """
    if record is None:
        return None, None
    info = record.get("data") or {}
    if info.get("sha256") != _fingerprint(data):
        return False, None
    return True, list(record.get("test_indices") or [])


# --------------------------------------------------------------------------
# --param parsing
# --------------------------------------------------------------------------

_RESERVED = {
    "random_state": "use --seed",
    "checkpoint_dir": "use --checkpoint-dir",
    "verbose": "progress is shown unless --quiet is given",
}


def _parse_value(text):
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text.strip()


def _parse_params(items):
    """``name=value`` strings -> dict, names checked against CellFateAAE."""
    from .estimator import CellFateAAE

    known = CellFateAAE().get_params()
    params = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"--param expects NAME=VALUE, got {item!r}")
        if name in _RESERVED:
            raise UsageError(f"--param {name} is not allowed: {_RESERVED[name]}")
        if name not in known:
            close = [k for k in known if k not in _RESERVED and (name in k or k in name)]
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UsageError(
                f"unknown parameter {name!r}{hint} Parameters: "
                f"{', '.join(k for k in known if k not in _RESERVED)}"
            )
        if name in params:
            raise UsageError(f"--param {name} given twice")
        params[name] = _parse_value(value)
    return params


def _check_param_values(estimator):
    """Validate hyper-parameter values before any data is read or model built."""
    check = getattr(estimator, "_check_params", None)
    if check is None:
        return
    try:
        check()
    except (ValueError, TypeError) as exc:
        raise UsageError(f"bad --param value: {_one_line(exc)}") from None


# --------------------------------------------------------------------------
# Training shared by fit and demo
# --------------------------------------------------------------------------


def _progress_level(args):
    # One line per epoch (stage, epoch of total, losses, criteria, time left),
    # in a terminal and in log files alike.
    return 0 if getattr(args, "quiet", False) else 1


def _split_indices(data, test_size, seed):
    """Train and test indices: lineage-grouped and stratified (FateDataset's split)."""
    import numpy as np
    import pandas as pd

    from .datasets import FateDataset

    n = len(data)
    if not test_size:
        return np.arange(n), np.array([], dtype=int)
    probe = FateDataset(
        X=np.zeros((n, 1, 1), np.float32), y=data.y, groups=data.groups,
        table=pd.DataFrame({"i": np.arange(n)}),
    )
    try:
        train, test = probe.train_test_split(test_size, random_state=seed)
    except ValueError as exc:
        raise CommandError(f"{_one_line(exc)} Use --test-size 0 to train on all samples.")
    return (np.sort(train.table["i"].to_numpy()), np.sort(test.table["i"].to_numpy()))


def _train(data, params, *, seed, test_size, verbose, data_path, checkpoint_dir=None,
           resume=False):
    """Fit a CellFateAAE on ``data`` minus a held-out part; return (model, record)."""
    import numpy as np

    from .estimator import CellFateAAE
    from .metrics import fate_report

    model = CellFateAAE(**params, random_state=seed, verbose=verbose,
                        checkpoint_dir=checkpoint_dir)
    train_idx, test_idx = _split_indices(data, test_size, seed)
    train = data.subset(train_idx)
    _out(
        f"training on {len(train)} cell-frames {train.class_counts()}"
        + (f", {len(test_idx)} held out for testing" if len(test_idx) else "")
        + f" (backend {os.environ.get('KERAS_BACKEND')}, seed {seed})"
    )
    start = time.perf_counter()
    # Keras writes its progress bar to stdout; stdout is for results.
    with contextlib.redirect_stdout(sys.stderr), _sigterm_as_interrupt():
        model.fit(train.X, train.y, groups=train.groups, resume=resume)
    seconds = time.perf_counter() - start
    if model.resumed_from_epoch_ is not None:
        _out(f"resumed from the checkpoint after epoch {model.resumed_from_epoch_}")
    if model.stop_reason_ == "interrupted":
        warnings.warn(
            f"training was interrupted after {model.n_epochs_} epochs; the model so far "
            "is kept"
            + ("; continue it with --resume (and --overwrite)" if checkpoint_dir else ""),
            UserWarning, stacklevel=2,
        )
    test_metrics = None
    if len(test_idx):
        test = data.subset(test_idx)
        y_pred = model.predict(test.X)
        report = fate_report(test.y, y_pred)["value"]
        test_metrics = {k: (None if not np.isfinite(v) else float(v))
                        for k, v in report.items()}
    history = json.loads(model.history_.to_json(orient="records"))
    params_out = model.get_params()
    if params_out.get("image_shape") is not None:
        params_out["image_shape"] = list(params_out["image_shape"])
    import keras

    record = {
        "format": HISTORY_FORMAT,
        "format_version": 1,
        "ai4cellfate_version": __version__,
        "keras_backend": keras.backend.backend(),
        "seed": seed,
        "params": params_out,
        "data": {
            "path": str(data_path),
            "sha256": _fingerprint(data),
            "n_samples": len(data),
            "class_counts": {str(k): v for k, v in data.class_counts().items()},
        },
        "test_size": test_size,
        "test_indices": [int(i) for i in test_idx],
        "n_train": int(len(train_idx)),
        "fit_seconds": round(seconds, 2),
        "resumed_from_epoch": model.resumed_from_epoch_,
        "n_epochs": int(model.n_epochs_),
        "stop_reason": model.stop_reason_,
        "test_metrics": test_metrics,
        "history": history,
    }
    return model, record


def _checkpoint_seed(folder):
    """The --seed of the fit that wrote the checkpoint in ``folder`` (None if none)."""
    from ._checkpoint import checkpoint_path, read_checkpoint

    path = checkpoint_path(folder)
    if not os.path.exists(path):
        return None
    seed = read_checkpoint(path)[0].get("random_state")
    return seed if isinstance(seed, int) else None


#: Seeds accepted by --seed (those NumPy's RandomState accepts).
SEED_RANGE = (0, 2**32 - 1)


def _check_seed(seed):
    """--seed must be an integer in SEED_RANGE (bad usage otherwise)."""
    lo, hi = SEED_RANGE
    if seed is not None and not lo <= seed <= hi:
        raise UsageError(f"--seed must be an integer from {lo} to {hi}, got {seed}")


def _resume_seed(args):
    """With --resume: the seed to use, and whether there is a checkpoint to resume.

    No checkpoint in the folder: a warning, and the fit starts afresh (so a
    job script can always pass --resume). A --seed other than the
    checkpoint's is refused here, naming both seeds: the seed also chooses
    the held-out cells, so the estimator would only see "other data".
    """
    from ._checkpoint import checkpoint_path

    path = checkpoint_path(args.checkpoint_dir)
    if not os.path.exists(path):
        warnings.warn(f"no checkpoint in {args.checkpoint_dir}; starting afresh",
                      UserWarning, stacklevel=2)
        return args.seed, False
    seed = _checkpoint_seed(args.checkpoint_dir)
    if args.seed is not None and seed is not None and args.seed != seed:
        raise CommandError(
            f"the checkpoint in {args.checkpoint_dir} was written with --seed {seed}, not "
            f"--seed {args.seed}; drop --seed to resume with the checkpoint's seed, or fit "
            "afresh without --resume"
        )
    return (args.seed if args.seed is not None else seed), True


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Treat SIGTERM like Ctrl-C while the block runs: raise KeyboardInterrupt.

    Batch systems and ``kill`` stop a job with SIGTERM; training then stops
    at the last completed epoch and the model is saved, as after Ctrl-C. The
    handler (for SIGTERM, and for SIGINT while it has Python's default
    handler) also calls :func:`ai4cellfate.training.loop.request_interrupt`,
    so an interrupt that Python drops (raised while a garbage-collector
    callback runs) still stops the fit at the next batch. The previous
    handlers are restored afterwards. Nothing is changed outside the main
    thread or for a signal that is ignored.
    """
    import signal
    import threading

    from .training import loop

    def handler(signum, frame):
        loop.request_interrupt()
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {}
    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
            previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, handler)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)
        loop.clear_interrupt()  # a request no fit acted on ends with the block


def _write_model(model, record, model_path, hist_path):
    """Save the model and its history JSON; both appear, or neither does.

    The model is written straight into the one temporary file beside its
    destination (not through ``model.save``, which would make a temporary
    file of that temporary file).
    """
    from ._persistence import write_archive

    with _atomic_files(model_path, hist_path) as (tmp_model, tmp_hist):
        write_archive(model, tmp_model)
        tmp_hist.write_text(json.dumps(record, indent=1, allow_nan=False) + "\n")


#: Name of the model written when the output cannot be (``%s``: the time).
FALLBACK_NAME = "ai4cellfate-unsaved-%s.keras"


def _save_trained(model, record, out, hist, overwrite):
    """Save a trained model; when ``out`` cannot be written, save it elsewhere.

    A model that took hours to train is never lost because its output turned
    out to be unwritable (or taken) at the end: it goes to
    ``ai4cellfate-unsaved-<time>.keras`` (with its history) in the current
    folder, or the temporary folder when that is not writable either, and the
    error names the file.
    """
    try:
        _check_new_file(out, overwrite)  # still free after training?
        _check_new_file(hist, overwrite)
        _write_model(model, record, out, hist)
        return
    except (OSError, CommandError) as exc:
        problem = _one_line(exc)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tried = []
    for folder in (Path.cwd(), Path(tempfile.gettempdir())):
        for k in range(100):
            name = FALLBACK_NAME % (stamp if k == 0 else f"{stamp}-{k}")
            fallback = folder / name
            if not fallback.exists() and not history_path(fallback).exists():
                break
        try:
            _write_model(model, record, fallback, history_path(fallback))
        except OSError as exc:
            tried.append(f"{fallback}: {_one_line(exc)}")
            continue
        raise CommandError(
            f"could not write {out} ({problem}); the trained model was saved to {fallback} "
            f"instead (history: {history_path(fallback)}); move it where you want it"
        )
    raise CommandError(
        f"could not write {out} ({problem}), nor a copy elsewhere ({'; '.join(tried)}); "
        "the trained model is lost"
    )


def _describe_fit(record):
    line = (
        f"trained {record['n_epochs']} epochs in {record['fit_seconds']:.0f} s "
        f"({record['stop_reason']})"
    )
    tm = record.get("test_metrics")
    if tm:
        parts = [f"balanced accuracy {tm['balanced_accuracy']:.3f}"]
        for k, v in tm.items():
            if k.startswith("precision_") and v is not None:
                parts.append(f"precision {k[len('precision_'):]} {v:.3f}")
        line += f"\nheld-out test, {len(record['test_indices'])} cell-frames: " + ", ".join(parts)
    return line


def _new_seed():
    return int.from_bytes(os.urandom(4), "little") % (2**31 - 1)


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------


def cmd_prepare(args):
    """``ai4cellfate prepare``: a fate dataset (.npz) from a tracked movie."""
    out = Path(args.output)
    _check_new_file(out, args.overwrite)
    src = Path(args.dir)
    if not src.exists():
        raise CommandError(
            f"{src}: no such {'file or folder' if args.format == 'trackmate' else 'folder'}")
    if not src.is_dir() and args.format != "trackmate":
        hint = (" (a TrackMate file? add --format trackmate)"
                if src.suffix.lower() in (".xml", ".csv") else "")
        raise CommandError(f"{src} is not a folder{hint}")
    segmentation = None if args.segmentation == "none" else args.segmentation
    options = dict(
        horizon=args.horizon, frames=args.frames, first_generation=args.first_generation,
        unknown=args.unknown, crop_size=args.crop_size,
        output_size=None if args.output_size == 0 else args.output_size,
        pixel_size=args.pixel_size, crop_size_um=args.crop_size_um, border=args.border,
        merged=args.merged, center=args.center,
        normalize=None if args.normalize == "none" else args.normalize,
        percentiles=tuple(args.percentiles),
    )
    _check_prepare_values(args, options)
    import logging

    log = logging.getLogger("ai4cellfate.cli")
    log.info("prepare: reading %s (--format %s) and cropping every tracked nucleus, "
             "frame by frame", src, args.format)
    start = time.perf_counter()
    if args.format == "ctc":
        if segmentation == "masks":
            raise UsageError("--segmentation masks is for --format tracks; use gt or st")
        from .datasets import load_ctc

        data = load_ctc(src, args.sequence, segmentation=segmentation, **options)
    elif args.format == "trackmate":
        if segmentation in ("gt", "st"):
            raise UsageError(f"--segmentation {segmentation} is for --format ctc; use masks")
        data = _prepare_trackmate(src, args, segmentation, options)
    else:
        if segmentation in ("gt", "st"):
            raise UsageError(f"--segmentation {segmentation} is for --format ctc; use masks")
        data = _prepare_tracks(src, args, segmentation, options)
    log.info("prepare: %d samples in %.0f s; writing %s", len(data),
             time.perf_counter() - start, out)
    out.absolute().parent.mkdir(parents=True, exist_ok=True)
    data.save(out, overwrite=args.overwrite)
    _out(data.summary())
    _out(f"wrote {out}")
    return 0


def _check_prepare_values(args, options):
    """Invalid option values of ``prepare`` are bad usage (exit 2), found before
    any image is read: the readers' own checks, run on the options alone."""
    from .datasets.tracks import _check_options

    try:
        if args.format == "ctc":
            from .datasets.ctc import _sequence_name

            _sequence_name(args.sequence)
        checked = {k: v for k, v in options.items() if k != "center"}
        _check_options(**checked, channel=getattr(args, "channel", None),
                       segmentation_channel=None,
                       pixel_size_later=args.format == "trackmate")  # the file's calibration
    except (ValueError, TypeError) as exc:
        raise UsageError(f"bad value: {_one_line(exc)}") from None


def _prepare_trackmate(src, args, segmentation, options):
    """``prepare --format trackmate``: DIR is a TrackMate XML, a spots CSV or a folder."""
    from .datasets import load_trackmate

    if args.tracks or args.lineage:
        raise UsageError("--tracks and --lineage are for --format tracks; TrackMate files "
                         "hold the tracks and their lineage")
    edges = args.edges
    path = src
    if src.is_dir():
        xmls = sorted(src.glob("*.xml"))
        spots = sorted(p for p in src.glob("*.csv") if "spots" in p.name.lower())
        if len(xmls) > 1 and not edges:
            names = ", ".join(p.name for p in xmls[:5])
            raise CommandError(f"{src} holds {len(xmls)} XML files ({names}): name one as DIR")
        if len(xmls) == 1 and not edges:
            path = xmls[0]
        elif len(spots) == 1:
            path = spots[0]
            found = sorted(p for p in src.glob("*.csv") if "edges" in p.name.lower())
            if not edges and len(found) == 1:
                edges = found[0]
        else:
            raise CommandError(
                f"{src} holds no TrackMate file: no session *.xml, nor one spots table "
                "*spots*.csv (name the file as DIR)")

    def find(given):
        if not given:
            return None
        p = Path(given)
        if not p.is_absolute() and not p.exists() and (path.parent / given).exists():
            p = path.parent / given
        if not p.exists():
            raise CommandError(f"{p}: no such file")
        return p

    movie, masks, edges = find(args.movie), find(args.masks), find(edges)
    try:
        data = load_trackmate(path, movie, edges=edges, masks=masks,
                              all_tracks=args.all_tracks, merges=args.merges,
                              units=args.units, segmentation=segmentation,
                              channel=args.channel, **options)
    except FileNotFoundError as exc:
        if movie is not None:
            raise
        raise CommandError(f"{_one_line(exc)} Give it with --movie TIF.") from None
    r = data.meta["trackmate"]["report"]
    _out(f"TrackMate: {r['n_tracks']} tracks ({r['n_segments']} segments), "
         f"{r['divisions']} divisions, {r['merges']['count']} merges, "
         f"{r['gaps']['count']} gaps, from {path}")
    return data


def _prepare_tracks(src, args, segmentation, options):
    import pandas as pd
    import tifffile

    from .datasets import make_fate_dataset

    def find(given, default, required):
        if given:
            p = Path(given)
            if not p.is_absolute() and not p.exists():
                p = src / given
        else:
            p = src / default
        if not p.exists():
            if required:
                raise CommandError(f"{p}: no such file (--format tracks needs it)")
            return None
        return p

    movie_path = find(args.movie, "movie.tif", True)
    tracks_path = find(args.tracks, "tracks.csv", True)
    masks_path = find(args.masks, "masks.tif", bool(args.masks))
    lineage_path = find(args.lineage, "lineage.csv", bool(args.lineage))

    def read_tiff(p):
        try:
            return tifffile.imread(p)
        except Exception as exc:
            raise CommandError(f"{p} is not a readable TIFF: {_one_line(exc)}") from None

    def read_csv(p):
        try:
            return pd.read_csv(p)
        except Exception as exc:
            raise CommandError(f"{p} is not a readable CSV table: {_one_line(exc)}") from None

    movie = read_tiff(movie_path)
    tracks = read_csv(tracks_path)
    masks = read_tiff(masks_path) if masks_path else None
    lineage = read_csv(lineage_path) if lineage_path else None
    if segmentation == "auto" and masks is None:
        segmentation = "otsu"
    data = make_fate_dataset(movie, tracks, masks, lineage=lineage, segmentation=segmentation,
                             channel=args.channel, **options)
    data.meta["source"] = {"format": "tracks", "movie": str(movie_path),
                           "tracks": str(tracks_path)}
    return data


def cmd_fit(args):
    """``ai4cellfate fit``: train a model, save it with its history."""
    out = Path(args.output)
    if not out.name.endswith(".keras") or out.name == ".keras":
        raise UsageError(f"-o must name a .keras file, got {str(out)!r}")
    hist = history_path(out)
    params = _parse_params(args.param)
    if not 0 <= args.test_size < 1:
        raise UsageError(f"--test-size must be in [0, 1), got {args.test_size}")
    _check_seed(args.seed)
    from .estimator import CellFateAAE

    _check_param_values(CellFateAAE(**params))
    _check_new_file(out, args.overwrite)
    _check_new_file(hist, args.overwrite)
    if args.resume and args.checkpoint_dir is None:
        raise UsageError("--resume needs --checkpoint-dir, the folder of the interrupted fit")
    if args.checkpoint_dir is not None and Path(args.checkpoint_dir).is_file():
        raise UsageError(f"--checkpoint-dir must be a folder; {args.checkpoint_dir} is a file")
    if args.checkpoint_dir is not None:
        _check_location(args.checkpoint_dir, directory=True)
    seed, resume = _resume_seed(args) if args.resume else (args.seed, False)
    data = _read_dataset(args.data)
    _setup_backend(args.backend)
    seed = _new_seed() if seed is None else seed
    model, record = _train(data, params, seed=seed, test_size=args.test_size,
                           verbose=_progress_level(args), data_path=args.data,
                           checkpoint_dir=args.checkpoint_dir, resume=resume)
    _save_trained(model, record, out, hist, args.overwrite)
    _out(_describe_fit(record))
    _out(f"wrote {out} and {hist}")
    return 0


def cmd_predict(args):
    """``ai4cellfate predict``: one CSV row per sample."""
    out = Path(args.output)
    _check_new_file(out, args.overwrite)
    _setup_backend(args.backend)
    model = _load_model(args.model)
    data = _read_dataset(args.data, need_labels=False)
    from .report import prediction_table

    labelled = _has_labels(data)
    table = prediction_table(model, data.X, table=data.table,
                             y=data.y if labelled else None)
    same, test_idx = _training_overlap(_read_history(args.model), data)
    if same:
        import numpy as np

        split = np.full(len(data), "train", dtype=object)
        split[np.asarray(test_idx, dtype=int)] = "test"
        table.insert(1, "split", split)
    with _atomic_files(out) as (tmp,):
        table.to_csv(tmp, index=False)
    counts = table["predicted_fate"].value_counts().sort_index().to_dict()
    _out(f"predicted fates: {counts}")
    _out(f"wrote {len(table)} rows to {out}")
    return 0


def cmd_report(args):
    """``ai4cellfate report``: metrics, figures and index.html."""
    import numpy as np

    from .report import REPORT_FILES, write_report

    out = Path(args.output)
    _check_new_dir(out, REPORT_FILES, args.overwrite)
    _setup_backend(args.backend)
    model = _load_model(args.model)
    data = _read_dataset(args.data)
    record = _read_history(args.model)
    same, test_idx = _training_overlap(record, data)
    notes = []
    subset = args.subset
    if subset == "test" and not test_idx:
        if same:
            raise CommandError(f"the model was fitted on all of {args.data} "
                               "(--test-size 0): it has no held-out cells")
        raise CommandError(
            f"--subset test needs the dataset the model was fitted on and its "
            f"{history_path(args.model).name}; {args.data} is not that dataset"
            if record is not None else
            f"--subset test needs {history_path(args.model)}, written by 'ai4cellfate fit'"
        )
    if subset == "auto":
        subset = "test" if test_idx else "all"
    train = None  # the model's training cells, for the report's baseline
    if same:
        train_idx = np.setdiff1d(np.arange(len(data)), np.asarray(test_idx, dtype=int))
        train = data.subset(train_idx) if len(train_idx) else None
    if subset == "test":
        data = data.subset(np.asarray(test_idx, dtype=int))
        source = (f"{len(data)} cell-frames of {args.data} held out by 'ai4cellfate fit' "
                  f"(lineage-grouped split); model {args.model}")
        split = (f"the {len(data)} cell-frames that 'ai4cellfate fit' held out "
                 f"(--test-size {record.get('test_size')}, seed {record.get('seed')}: whole "
                 f"lineages, stratified by fate); the model was trained on the other "
                 f"{len(train) if train is not None else 0} cell-frames of {args.data}")
    else:
        source = f"all {len(data)} cell-frames of {args.data}; model {args.model}"
        split = (f"all cell-frames of {args.data}, including the model's "
                 f"{len(train)} training cell-frames: optimistic"
                 if same and train is not None else
                 f"all cell-frames of {args.data}, a file other than the model's "
                 "training data" if record is not None else
                 f"all cell-frames of {args.data}; whether the model was trained on "
                 "them is unknown")
        if same:
            notes.append(
                "These cells include the model's training data, so the metrics are "
                "optimistic" + ("; --subset auto evaluates the held-out cells only."
                                if test_idx else ".")
            )
        elif record is None:
            notes.append(
                "No training history beside the model: whether these cells were used "
                "for training is unknown. Metrics on training cells are optimistic."
            )
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    paths = write_report(model, data.X, data.y, out, groups=data.groups, table=data.table,
                         meta=data.meta, pixel_size=getattr(data, "pixel_size", None),
                         frame_interval=getattr(data, "frame_interval", None), split=split,
                         train=train, overwrite=args.overwrite, notes=notes, source=source)
    metrics = json.loads(paths["metrics.json"].read_text())
    _out(_describe_metrics(metrics))
    _out(f"wrote report to {out}; open {paths['index.html']}")
    return 0


def _describe_metrics(metrics):
    c = metrics["classification"]
    parts = [f"balanced accuracy {c['balanced_accuracy']:.3f}"]
    for k, v in c.items():
        if k.startswith("precision_") and v is not None:
            parts.append(f"precision {k[len('precision_'):]} {v:.3f}")
    q = metrics.get("quality") or {}
    ci = (q.get("bootstrap") or {}).get("balanced_accuracy", {}).get("model")
    if ci:
        parts[0] += f" (95% interval {ci[0]:.3f}-{ci[1]:.3f})"
    base = (q.get("baseline") or {}).get("classification")
    if base:
        parts.append(f"region-feature baseline {base['balanced_accuracy']:.3f}")
    return f"{metrics['data']['n_samples']} cell-frames: " + ", ".join(parts)


def cmd_demo(args):
    """``ai4cellfate demo``: synthetic nuclei -> model -> report, in one folder."""
    import numpy as np
    import pandas as pd

    from .datasets import FateDataset, make_nuclei
    from .report import REPORT_FILES, _staged_output, _write_report_files

    _check_seed(args.seed)
    out = Path(args.output)
    names = tuple(REPORT_FILES) + DEMO_FILES
    _check_new_dir(out, names, args.overwrite)
    backend = _setup_backend(args.backend)
    setting = DEMO["quick" if args.quick else "full"]
    seed = args.seed
    n = setting["n_samples"]
    X, y, traits = make_nuclei(n, return_params=True, random_state=seed)
    data = FateDataset(
        X=X, y=y, groups=np.arange(n),
        table=pd.DataFrame({"cell": np.arange(n), "area": traits["area"],
                            "mean_intensity": traits["mean_intensity"]}),
        meta={"source": {"format": "synthetic", "generator": "make_nuclei",
                         "n_samples": n, "random_state": seed}},
    )
    _out(f"[1/3] generated {n} synthetic nuclei (fate 1 = larger and brighter)")
    _out(f"[2/3] training on backend {backend}"
         + (" (--quick: a few epochs, for testing)" if args.quick else
            " (about 15-35 s on 2 CPU cores)"))
    start = time.perf_counter()
    with _staged_output(out, names, overwrite=args.overwrite) as tmp:
        data.save(tmp / "nuclei.npz")
        model, record = _train(data, dict(setting["params"]), seed=seed,
                               test_size=setting["test_size"],
                               verbose=_progress_level(args), data_path="nuclei.npz")
        model.save(tmp / "model.keras")
        (tmp / DEMO_FILES[1]).write_text(json.dumps(record, indent=1, allow_nan=False) + "\n")
        _out(_describe_fit(record))
        _out("[3/3] writing the report")
        test_idx = np.asarray(record["test_indices"], dtype=int)
        test = data.subset(test_idx)
        train = data.subset(np.setdiff1d(np.arange(n), test_idx))
        _write_report_files(
            model, test.X, test.y, tmp, table=test.table, groups=test.groups,
            meta=data.meta, train=train,
            split=(f"{len(test)} of the {n} synthetic nuclei, held out at random "
                   f"(stratified by fate, seed {seed}); the model was trained on the "
                   f"other {len(train)}"),
            title="AI4CellFate demo: synthetic nuclei",
            source=(f"{len(test)} synthetic nuclei held out from training "
                    f"(of {n}; make_nuclei, seed {seed}); backend {backend}"),
            notes=["Synthetic data: fate 1 cells are larger and brighter on average; "
                   "the best possible balanced accuracy is about 0.95."],
        )
    _out(f"done in {time.perf_counter() - start:.0f} s; open {out / 'index.html'}")
    return 0


# --------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------

_DESCRIPTION = """\
Predict cell fate from one early frame with AI4CellFate (an adversarial
autoencoder with an engineered 2-D latent space).

From a tracked movie to a report:
  ai4cellfate prepare CTC_DIR --format ctc --sequence 02 --horizon 24 -o data.npz
  ai4cellfate fit data.npz -o model.keras
  ai4cellfate report model.keras data.npz -o report/

Or try everything on synthetic nuclei (about 15-35 s on a 2-core CPU):
  ai4cellfate demo -o demo/
"""

_BACKEND_HELP = (
    "Keras backend: jax, tensorflow or torch. Default: $KERAS_BACKEND if set, "
    f"otherwise the first installed of {', '.join(BACKEND_PREFERENCE)} (in order of "
    "measured training speed on a 2-core CPU). Under jax, compiled programs are kept "
    "in ~/.cache/ai4cellfate/xla for later runs ($AI4CELLFATE_CACHE_DIR moves it; "
    "'off' turns it off)."
)

_EXAMPLES = {
    "prepare": """\
examples:
  # Cell Tracking Challenge folder (holds 02/ and 02_GT/): fate = divides
  # within 24 frames; 40-px crops binned to 20 x 20
  ai4cellfate prepare Fluo-N2DL-HeLa --format ctc --sequence 02 \\
      --horizon 24 --crop-size 40 --output-size 20 -o hela02.npz

  # the preprint's set-up: whole-movie fate, first frame of first-generation cells
  ai4cellfate prepare Fluo-N2DL-HeLa --sequence 01 --frames first \\
      --first-generation -o hela01-first.npz

  # any tracker: a folder with movie.tif (T, H, W), tracks.csv
  # (track_id, t, y, x, parent_id) and optionally masks.tif, lineage.csv
  ai4cellfate prepare my_movie/ --format tracks --pixel-size 0.65 \\
      --crop-size-um 25 -o mine.npz

  # a TrackMate session file (its movie, pixel size and filtered tracks)
  ai4cellfate prepare experiment.xml --format trackmate --horizon 24 \\
      --crop-size-um 25 -o tm.npz

  # TrackMate's CSV exports: spots and edges tables, the movie, the pixel size
  ai4cellfate prepare spots.csv --format trackmate --edges edges.csv \\
      --movie movie.tif --pixel-size 0.65 -o tm.npz

Prints the number of samples per fate and of lineage groups.
""",
    "fit": """\
examples:
  ai4cellfate fit hela02.npz -o model.keras
  ai4cellfate fit hela02.npz -o model.keras --seed 42 \\
      --param lambda_contra=6 --param max_epochs=60
  ai4cellfate --backend jax fit hela02.npz -o model.keras --test-size 0
  ai4cellfate fit hela02.npz -o model.keras --checkpoint-dir ckpt/
  ai4cellfate fit hela02.npz -o model.keras --checkpoint-dir ckpt/ --resume --overwrite

Writes model.keras and model.history.json (every epoch's losses and stopping
criteria, the parameters, the seed and which samples were held out). By
default 20% of the lineages are held out for testing; 'ai4cellfate report'
on the same file evaluates on them. Parameters (--param NAME=VALUE) are those
of ai4cellfate.CellFateAAE: latent_dim, lambda_recon, lambda_adv,
lambda_contra, lambda_cov, temperature, noise_std, batch_size, learning_rate,
stage1_epochs, min_epochs, max_epochs, min_centroid_distance, max_kl,
min_accuracy, min_precision, validation_fraction, augment, balance,
image_shape, ssim_form, checkpoint_every, on_interrupt, jit_compile. With
--checkpoint-dir the whole training state is saved after every epoch; after
Ctrl-C or a lost machine, the same command with --resume continues where it
stopped and gives the model an uninterrupted fit would have given.
""",
    "predict": """\
examples:
  ai4cellfate predict model.keras hela01.npz -o predictions.csv

Columns: sample, split (train/test, when the data are the training file),
track, frame, true_fate (when labelled), predicted_fate, p_fate0, p_fate1
(probability of each fate), z0, z1 (latent coordinates).
""",
    "report": """\
examples:
  ai4cellfate report model.keras hela02.npz -o report/
  ai4cellfate report model.keras hela01.npz -o report-hela01/ --overwrite

Writes metrics.json, summary.md, predictions.csv, latent_space.png,
traversal_grid.png, training_curves.png, confusion_matrix.png and index.html
(open it in a browser). On the file the model was fitted on, only the cells
held out by 'fit' are evaluated (--subset auto).
""",
    "demo": """\
examples:
  ai4cellfate demo                  # writes ./ai4cellfate-demo/
  ai4cellfate demo -o demo/ --quick # a few epochs only (for tests, under a minute)
  ai4cellfate --backend jax demo -o demo-jax/

Generates synthetic nuclei (fate 1 larger and brighter), fits a model on 75%
of them and writes the report on the other 25%, plus model.keras,
model.history.json and nuclei.npz, into one folder. No download, no data
files needed.
""",
}


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=30)


def build_parser():
    """The argument parser of the ``ai4cellfate`` command.

    Returns
    -------
    argparse.ArgumentParser
    """
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("common options")
    g.add_argument("--backend", choices=BACKENDS, default=argparse.SUPPRESS,
                   help=_BACKEND_HELP)
    g.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the full traceback on errors, debug messages and the "
                   "backends' own log output (TensorFlow / XLA start-up lines)")

    parser = argparse.ArgumentParser(
        prog=PROG, description=_DESCRIPTION, formatter_class=_formatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, help_, description):
        p = sub.add_parser(name, help=help_, description=textwrap.fill(description, 79),
                           epilog=_EXAMPLES[name], formatter_class=_formatter,
                           parents=[common])
        p.set_defaults(_parser=p)
        return p

    # prepare ---------------------------------------------------------------
    p = add("prepare", "build a fate dataset (.npz) from a tracked movie",
            "Crop every tracked nucleus, label it with its fate from the lineage, "
            "and save crops, labels, lineage groups and a per-cell table as one .npz.")
    p.add_argument("dir", metavar="DIR", help="a CTC dataset folder (with NN/ and NN_GT/), "
                   "a folder with movie.tif and tracks.csv (--format tracks), or a "
                   "TrackMate XML file, spots CSV or folder holding one (--format trackmate)")
    p.add_argument("-o", "--output", required=True, metavar="DATA.npz",
                   help="dataset file to write")
    p.add_argument("--format", choices=("ctc", "tracks", "trackmate"), default="ctc",
                   help="input layout (default: ctc)")
    p.add_argument("--sequence", default="01", metavar="NN",
                   help="CTC sequence number, e.g. 01 or 02 (default: 01)")
    p.add_argument("--horizon", type=int, metavar="FRAMES",
                   help="fate 1 = divides within this many frames of the sampled "
                   "frame; default: over the whole movie")
    p.add_argument("--frames", choices=("all", "first", "lifetime"), default="all",
                   help="frames of a cell that become samples (default: all)")
    p.add_argument("--first-generation", action="store_true",
                   help="only cells present in the first frame (the preprint's filter)")
    p.add_argument("--unknown", choices=("drop", "keep", "negative"), default="drop",
                   help="samples whose outcome is unknown: drop (default), keep as "
                   "class 2, or call them fate 0")
    p.add_argument("--crop-size", type=int, default=40, metavar="PX",
                   help="crop window side in pixels (default: 40)")
    p.add_argument("--output-size", type=int, default=20, metavar="PX",
                   help="side of the saved crops; 0 keeps the window size (default: 20)")
    p.add_argument("--pixel-size", type=float, metavar="UM",
                   help="micrometres per pixel (needed by --crop-size-um; TrackMate "
                   "XML files give their own)")
    p.add_argument("--crop-size-um", type=float, metavar="UM",
                   help="crop window side in micrometres (overrides --crop-size)")
    p.add_argument("--segmentation", default="auto",
                   choices=("auto", "gt", "st", "masks", "otsu", "none"),
                   help="nucleus masks: auto (given masks, else local Otsu), gt/st "
                   "(CTC gold/silver truth), masks (--masks), otsu, none")
    p.add_argument("--border", choices=("drop", "pad"), default="drop",
                   help="cells whose window crosses the image edge (default: drop)")
    p.add_argument("--merged", choices=("drop", "split"), default="drop",
                   help="masks holding several nuclei (default: drop)")
    p.add_argument("--center", choices=("mask", "track"), default="mask",
                   help="centre crops on the mask centroid or the tracked position")
    p.add_argument("--normalize", choices=("percentile", "dtype", "none"),
                   default="percentile", help="intensity scaling (default: percentile)")
    p.add_argument("--percentiles", type=float, nargs=2, default=(1.0, 99.99),
                   metavar=("LOW", "HIGH"), help="for --normalize percentile")
    t = p.add_argument_group("--format tracks and trackmate inputs (paths relative to DIR)")
    t.add_argument("--movie", metavar="TIF", help="movie (default: movie.tif; for "
                   "trackmate, the movie the XML names)")
    t.add_argument("--tracks", metavar="CSV", help="tracks table (default: tracks.csv)")
    t.add_argument("--masks", metavar="TIF", help="label images (default: masks.tif if present)")
    t.add_argument("--lineage", metavar="CSV",
                   help="track_id,start,end,parent_id table (default: lineage.csv if present)")
    t.add_argument("--channel", type=int, help="channel of a (T, C, H, W) movie")
    t = p.add_argument_group("--format trackmate options")
    t.add_argument("--edges", metavar="CSV",
                   help="TrackMate edges table, with DIR a spots table (default: the "
                   "*edges*.csv beside it)")
    t.add_argument("--all-tracks", action="store_true",
                   help="use all tracks, not only those passing TrackMate's track filters")
    t.add_argument("--merges", choices=("end", "error"), default="end",
                   help="spots with several incoming links: end the merging tracks there "
                   "(default) or refuse the file")
    t.add_argument("--units", metavar="UNIT",
                   help="units of a CSV's positions (pixel, micron, nm, ...) when it has "
                   "no units row")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(func=cmd_prepare)

    # fit -----------------------------------------------------------------
    p = add("fit", "train a model on a dataset",
            "Train AI4CellFate (two stages, stopping criteria on a validation split) "
            "and save the model with a JSON of its training history.")
    p.add_argument("data", metavar="DATA.npz", help="dataset from 'ai4cellfate prepare'")
    p.add_argument("-o", "--output", required=True, metavar="MODEL.keras",
                   help="model file to write; the history goes to MODEL.history.json")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a CellFateAAE parameter (repeatable), e.g. lambda_contra=6")
    p.add_argument("--seed", type=int, metavar="N",
                   help="random seed (default: a random one, printed and recorded)")
    p.add_argument("--test-size", type=float, default=0.2, metavar="F",
                   help="fraction of lineages held out for testing, 0 for none "
                   "(default: 0.2)")
    p.add_argument("--checkpoint-dir", metavar="DIR",
                   help="write a checkpoint of the whole training state to this folder "
                   "after every epoch")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted fit whose checkpoint is in "
                   "--checkpoint-dir (same data and parameters; its seed is reused)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(func=cmd_fit)

    # predict -----------------------------------------------------------------
    p = add("predict", "predict fates, one CSV row per sample",
            "Apply a model to a dataset: predicted fate, probability of each fate and "
            "latent coordinates of every sample.")
    p.add_argument("model", metavar="MODEL.keras", help="model from 'ai4cellfate fit'")
    p.add_argument("data", metavar="DATA.npz",
                   help="dataset from 'ai4cellfate prepare' (or .npz with X, or .npy)")
    p.add_argument("-o", "--output", required=True, metavar="PREDICTIONS.csv",
                   help="CSV file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(func=cmd_predict)

    # report -----------------------------------------------------------------
    p = add("report", "write metrics, figures and index.html",
            "Evaluate a model on labelled cells and write a report folder.")
    p.add_argument("model", metavar="MODEL.keras", help="model from 'ai4cellfate fit'")
    p.add_argument("data", metavar="DATA.npz", help="labelled dataset")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="report folder")
    p.add_argument("--subset", choices=("auto", "test", "all"), default="auto",
                   help="cells to evaluate: auto (held-out cells when DATA is the "
                   "training file, else all), test, or all")
    p.add_argument("--overwrite", action="store_true",
                   help="replace report files already in DIR")
    p.set_defaults(func=cmd_report)

    # demo -----------------------------------------------------------------
    p = add("demo", "run everything on synthetic nuclei",
            "Generate synthetic nuclei, train, and write the report: the whole chain "
            "with nothing to download.")
    p.add_argument("-o", "--output", default="ai4cellfate-demo", metavar="DIR",
                   help="output folder (default: ./ai4cellfate-demo)")
    p.add_argument("--quick", action="store_true",
                   help="tiny training (under a minute), for testing the installation")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default: 0)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files already in DIR")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv=None):
    """Run the ``ai4cellfate`` command.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        Exit status: 0 success, 1 error, 2 bad usage.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if args.command is None:
        parser.print_usage(sys.stderr)
        _err(f"{PROG}: error: a command is required: prepare, fit, predict, report or demo")
        return 2
    args.backend = getattr(args, "backend", None)
    debug = getattr(args, "debug", False)
    from . import _logging

    if debug:  # the backends' own messages too (no backend is imported yet)
        _logging.show_backend_logs()
    else:
        _logging.quiet_backends()
    os.environ.setdefault("MPLBACKEND", "Agg")
    native = contextlib.nullcontext() if debug else _logging.native_stderr_filter()
    try:
        with native, _cli_warnings(), _cli_logging(debug=debug,
                                                   quiet=getattr(args, "quiet", False)):
            return int(args.func(args) or 0)
    except UsageError as exc:
        if debug:
            raise
        args._parser.print_usage(sys.stderr)
        _err(f"{PROG} {args.command}: error: {_one_line(exc)}")
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        _err(f"{PROG}: interrupted")
        return 130
    except Exception as exc:
        if debug:
            raise
        _err(f"{PROG}: error: {_one_line(exc)}")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
