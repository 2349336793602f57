"""Quiet backends, the package's logger, and progress lines.

Imported first by ``ai4cellfate/__init__.py``, before anything can import
TensorFlow or JAX, so that the environment variables read by their C++ code
at import time are in place:

- ``TF_CPP_MIN_LOG_LEVEL=3`` hides TensorFlow's and XLA's C++ log lines (the
  "All log messages before absl::InitializeLog()" banner, ``cpu_feature_guard``,
  the oneDNN notices and the error-level "oneDNN supports DT_INT32 only on
  platforms with AVX-512"); some builds (tensorflow-cpu 2.21.0 wheels) print
  the start-up lines regardless, and the command line drops those with
  :class:`native_stderr_filter`;
- ``GRPC_VERBOSITY=ERROR`` hides gRPC's start-up banner (TensorFlow ships gRPC);
- the Python logger ``"tensorflow"`` is set to ERROR (hides tf.function
  retracing warnings, which a grid search triggers by design).

Each is a default only: a value the user already set is kept. Setting the
environment variable ``AI4CELLFATE_BACKEND_LOGS=1`` before importing
``ai4cellfate`` (or ``ai4cellfate --debug`` on the command line) keeps every
backend message. ``TF_ENABLE_ONEDNN_OPTS`` is never touched: it changes the
numerics, not only the messages.

The package's own messages go to the logger ``"ai4cellfate"`` (a
:class:`logging.NullHandler` by default, as for any library); the command line
shows its INFO messages on standard error.
"""

from __future__ import annotations

import logging
import os
import sys
import time

__all__ = [
    "BACKEND_LOGS_ENV",
    "keep_tensorflow_unimported",
    "logger",
    "native_stderr_filter",
    "progress",
    "quiet_backends",
    "show_backend_logs",
]

#: Environment variable that keeps the backends' own log output ("1").
BACKEND_LOGS_ENV = "AI4CELLFATE_BACKEND_LOGS"

#: Defaults set by :func:`quiet_backends` (never overriding a user's value).
_QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "GRPC_VERBOSITY": "ERROR",
}
_QUIET_LOGGERS = {"tensorflow": logging.ERROR}

#: The package's logger; modules log to children of it (``ai4cellfate.studies``).
logger = logging.getLogger("ai4cellfate")
logger.addHandler(logging.NullHandler())

_set_by_us = {}  # environment variable -> value we set
_loggers_set = {}  # logger name -> level we set


def _wants_backend_logs():
    return os.environ.get(BACKEND_LOGS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def quiet_backends():
    """Set the quiet defaults (see the module docstring); idempotent.

    Does nothing when ``AI4CELLFATE_BACKEND_LOGS=1``. Environment variables
    only act on a backend imported afterwards.
    """
    if _wants_backend_logs():
        return
    for name, value in _QUIET_ENV.items():
        if name not in os.environ:
            os.environ[name] = value
            _set_by_us[name] = value
    for name, level in _QUIET_LOGGERS.items():
        log = logging.getLogger(name)
        if log.level == logging.NOTSET:  # the user did not configure it
            log.setLevel(level)
            _loggers_set[name] = level


def show_backend_logs():
    """Undo :func:`quiet_backends`: the backends' messages are shown again.

    Removes the environment defaults set by :func:`quiet_backends` (effective
    for a backend not imported yet) and resets the loggers it configured.
    What the user set is left alone. (Processes started later, which import
    ``ai4cellfate`` afresh, are quiet again unless ``AI4CELLFATE_BACKEND_LOGS=1``.)
    """
    for name, value in list(_set_by_us.items()):
        if os.environ.get(name) == value:
            del os.environ[name]
        del _set_by_us[name]
    for name, level in list(_loggers_set.items()):
        log = logging.getLogger(name)
        if log.level == level:
            log.setLevel(logging.NOTSET)
        del _loggers_set[name]


class _TensorFlowIfImported:
    """Keras' lazy ``tensorflow`` module, "available" only once imported.

    Keras' serialisation checks ``tf.available and isinstance(obj,
    tf.TensorShape)`` for every object it saves, which imports TensorFlow
    (seconds, log noise, and a second runtime beside PyTorch's) whenever it
    is installed, whatever the backend. No object can be a TensorFlow object
    while TensorFlow is not imported, so the check can answer False until
    then; everything else is passed to Keras' own lazy module.
    """

    def __init__(self, lazy):
        self._lazy = lazy

    @property
    def available(self):
        if "tensorflow" not in sys.modules:
            return False
        return self._lazy.available

    def __getattr__(self, name):
        return getattr(self._lazy, name)

    def __repr__(self):
        return f"_TensorFlowIfImported({self._lazy!r})"


def keep_tensorflow_unimported():
    """Stop Keras' saving code importing TensorFlow under another backend.

    Replaces the ``tf`` of ``keras.src.saving.serialization_lib`` by
    :class:`_TensorFlowIfImported`. Imports Keras, so call it after the
    backend is chosen. A no-op under the TensorFlow backend, when already
    done, or when Keras' internals look different from what this expects.

    Returns
    -------
    bool
        Whether the patch is in place.
    """
    try:
        import keras
        from keras.src.saving import serialization_lib
    except Exception:  # pragma: no cover - keras is a dependency
        return False
    if keras.backend.backend() == "tensorflow":
        return False
    lazy = getattr(serialization_lib, "tf", None)
    if isinstance(lazy, _TensorFlowIfImported):
        return True
    if lazy is None or not hasattr(type(lazy), "available"):
        return False
    serialization_lib.tf = _TensorFlowIfImported(lazy)
    return True


def _duration(seconds):
    seconds = float(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def progress(iterable, *, total=None, desc="working", log=None, every=10.0,
             unit="steps"):
    """Yield from ``iterable``, logging INFO progress lines now and then.

    A line when the first item is done and then at most every ``every``
    seconds, and one when all are done: ``desc: 12/40 steps (30 %), 25 s,
    about 58 s left``.

    Parameters
    ----------
    iterable : iterable
        The work items.
    total : int, optional
        Number of items; ``len(iterable)`` when it has one.
    desc : str, default="working"
        What is being done.
    log : logging.Logger, optional
        Where to log; the ``"ai4cellfate"`` logger by default.
    every : float, default=10.0
        Seconds between two lines.
    unit : str, default="steps"
        Name of the items in the lines.

    Yields
    ------
    The items of ``iterable``.
    """
    log = logger if log is None else log
    if total is None:
        try:
            total = len(iterable)
        except TypeError:
            total = None
    start = last = time.perf_counter()
    done = 0
    for item in iterable:
        yield item
        done += 1
        now = time.perf_counter()
        final = total is not None and done >= total
        if done == 1 or final or now - last >= every:
            last = now
            if not log.isEnabledFor(logging.INFO):
                continue
            elapsed = now - start
            if total:
                left = elapsed / done * (total - done)
                tail = "" if final else f", about {_duration(left)} left"
                log.info("%s: %d/%d %s (%.0f %%), %s%s", desc, done, total, unit,
                         100.0 * done / total, _duration(elapsed), tail)
            else:
                log.info("%s: %d %s, %s", desc, done, unit, _duration(elapsed))


#: Native (C++) start-up lines some TensorFlow builds print whatever
#: ``TF_CPP_MIN_LOG_LEVEL`` says (seen with tensorflow-cpu 2.21.0 wheels).
_NATIVE_NOISE = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on",
    "cpu_feature_guard",
)


def _write(fd, data):
    try:
        os.write(fd, data)
    except OSError:  # the descriptor was closed after a timed-out join
        pass


class native_stderr_filter:
    """Drop the backends' native start-up lines from file descriptor 2.

    Standard error is routed through a pipe for the ``with`` block; a thread
    forwards every line at once, except those holding one of ``_NATIVE_NOISE``.
    Used by the command line (not by the library: a library must not take over
    its host's file descriptors).

    Examples
    --------
    >>> with native_stderr_filter():
    ...     pass
    """

    def __enter__(self):
        import threading

        self._saved = None
        try:
            sys.stderr.flush()
            read, write = os.pipe()
        except (OSError, AttributeError, ValueError):  # no usable stderr: nothing to do
            return self
        self._saved = os.dup(2)
        os.dup2(write, 2)
        os.close(write)

        noise = [n.encode() for n in _NATIVE_NOISE]

        def forward(fd=read, out=self._saved):
            with os.fdopen(fd, "rb", buffering=0) as pipe:
                pending = b""
                while True:
                    chunk = pipe.read(65536)
                    if not chunk:
                        break
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    kept = b"".join(line + b"\n" for line in lines
                                    if not any(n in line for n in noise))
                    if kept:
                        _write(out, kept)
                if pending:
                    _write(out, pending)

        self._thread = threading.Thread(target=forward, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._saved is None:
            return False
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self._saved, 2)  # closes the pipe's last write end we hold
        self._thread.join(timeout=2.0)
        os.close(self._saved)
        return False


quiet_backends()

