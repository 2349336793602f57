"""Compiled XLA programs kept on disk between processes (JAX backend).

XLA compiles the train step of a default fit in 7-8 s on two CPU cores, about
a tenth of the whole fit, and every new Python process pays it again: each
run of a script, each notebook restart, each joblib/loky or Dask worker of a
grid search. :class:`Program` is ``jax.jit(fn)`` whose executables are also
written to a cache directory, so a later process loads the step (about 0.4 s)
instead of compiling it. Only ai4cellfate's own programs are cached: JAX's
process-wide persistent cache (``jax_compilation_cache_dir``) is left as the
user set it, and when the user turned it on, it caches these programs too
and this module stays out of its way.

The directory is ``$AI4CELLFATE_CACHE_DIR`` when set, else
``$XDG_CACHE_HOME/ai4cellfate/xla`` (``~/.cache/ai4cellfate/xla``);
``AI4CELLFATE_CACHE_DIR=off`` turns the cache off. It holds at most
:data:`MAX_BYTES` (least recently used files go first). A file's name is a
hash of everything the executable depends on: the program (StableHLO, shapes
and donation included), the JAX and jaxlib versions, the device and its
platform version, ``XLA_FLAGS`` and the host CPU's model and instruction-set
flags; a file whose checksum does not match, or that XLA refuses, is compiled
again and replaced. A cache that cannot be read or written never fails a fit:
the program is compiled as without it.

Loading a cached program runs machine code from that directory, as Python
does with ``__pycache__``: keep it private to your user, as ``~/.cache`` is.
"""

from __future__ import annotations

import hashlib
import os
import platform
import threading
import time

import jax

from .._io import STALE_AFTER_S, atomic_path
from .._logging import logger

__all__ = ["CACHE_ENV", "MAX_BYTES", "Program", "cache_dir"]

#: Environment variable naming the cache directory (``off`` turns it off).
CACHE_ENV = "AI4CELLFATE_CACHE_DIR"

#: Most bytes of compiled programs kept in the directory (a default fit's
#: train step is about 3 MB, an encoder program under 1 MB).
MAX_BYTES = 512 * 2**20

_OFF = ("off", "0", "false", "no", "none")
_MAGIC = b"A4CFXLA1"
_SUFFIX = ".xla"
_log = logger.getChild("compile_cache")


def cache_dir():
    """The directory compiled programs are kept in, or ``None`` when off.

    Returns
    -------
    path : str or None
        ``$AI4CELLFATE_CACHE_DIR`` if set (``None`` if it is ``off``, ``0``,
        ``false``, ``no`` or ``none``); ``None`` if JAX's own persistent
        compilation cache is on (it then caches these programs); otherwise
        ``$XDG_CACHE_HOME/ai4cellfate/xla`` or ``~/.cache/ai4cellfate/xla``.
    """
    value = os.environ.get(CACHE_ENV)
    if value is not None and value.strip().lower() in _OFF:
        return None
    if _jax_cache_on():
        return None
    if value:
        return os.path.abspath(os.path.expanduser(value))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ai4cellfate", "xla")


def _jax_cache_on():
    """Whether JAX's own persistent compilation cache is in effect here.

    It must be checked, not only to avoid a second copy: ``lowered.compile()``
    then may return an executable JAX loaded from its cache, and serialising
    such an executable again gives a file that loads but fails when run
    ("Function ... not found", jaxlib 0.10.2 on CPU). JAX uses its cache when
    it is enabled (the default) and has a directory, now or at the moment it
    set the cache up (a private attribute, read if present: JAX keeps using a
    cache it set up after the directory is unset).
    """
    if not jax.config.jax_enable_compilation_cache:
        return False
    if jax.config.jax_compilation_cache_dir:
        return True
    try:
        from jax._src import compilation_cache
    except ImportError:  # pragma: no cover - a JAX without that module
        return False
    return getattr(compilation_cache, "_cache", None) is not None


_HOST = None


def _host():
    """The host CPU's model and instruction-set flags (executables are built
    for the CPU they were compiled on)."""
    global _HOST
    if _HOST is None:
        text = ""
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                lines = {}
                for line in f:
                    key, _, val = line.partition(":")
                    key = key.strip()
                    if key in ("vendor_id", "model name", "flags", "Features", "CPU part"):
                        lines.setdefault(key, val.strip())
                    if not line.strip() and lines:
                        break
            text = repr(sorted(lines.items()))
        except OSError:
            pass
        _HOST = "|".join([platform.machine(), platform.processor(), text])
    return _HOST


def program_key(lowered):
    """Hash naming the file of ``lowered``'s executable.

    Parameters
    ----------
    lowered : jax.stages.Lowered

    Returns
    -------
    key : str
        64 hexadecimal digits.
    """
    import jaxlib

    device = jax.devices()[0]
    parts = [
        _MAGIC.decode(), jax.__version__, jaxlib.__version__, device.platform,
        device.device_kind, getattr(device.client, "platform_version", ""),
        str(jax.device_count()), os.environ.get("XLA_FLAGS", ""), _host(),
        lowered.as_text(),
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _read(path):
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError:
        return None
    head = len(_MAGIC) + 32
    if len(blob) <= head or not blob.startswith(_MAGIC):
        return None
    payload = blob[head:]
    if hashlib.sha256(payload).digest() != blob[len(_MAGIC):head]:
        return None
    try:
        os.utime(path)  # most recently used
    except OSError:
        pass
    return payload


def _write(directory, path, payload):
    """Write atomically (a reader never sees half a file), then prune."""
    try:
        os.makedirs(directory, exist_ok=True)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(_MAGIC + hashlib.sha256(payload).digest() + payload)
        _prune(directory, keep=path)
    except OSError as exc:
        _log.debug("could not write compiled program %s: %s", path, exc)


def _prune(directory, keep, max_bytes=None):
    """Delete the least recently used programs until the directory holds at
    most ``max_bytes`` (:data:`MAX_BYTES`); ``keep`` stays. Temporary files
    (``.<name>.tmp-...``, :func:`ai4cellfate._io.atomic_path`) older than
    ``STALE_AFTER_S``, left by processes killed while writing, go too."""
    max_bytes = MAX_BYTES if max_bytes is None else max_bytes
    entries = []
    stale = time.time() - STALE_AFTER_S
    with os.scandir(directory) as it:
        for entry in it:
            name = entry.name
            ours = name.endswith(_SUFFIX) and not name.startswith(".")
            temporary = name.startswith(".") and _SUFFIX + ".tmp-" in name
            if not (ours or temporary):
                continue
            try:
                st = entry.stat()
            except OSError:
                continue
            if ours:
                entries.append((st.st_mtime, st.st_size, entry.path))
            elif st.st_mtime < stale:
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= max_bytes:
            break
        if path == keep:
            continue
        try:
            os.unlink(path)
            total -= size
        except OSError:
            pass


def load_or_compile(lowered):
    """``lowered.compile()``, through the cache directory when it is on.

    Parameters
    ----------
    lowered : jax.stages.Lowered

    Returns
    -------
    compiled : jax.stages.Compiled
    """
    from jax.experimental import serialize_executable

    directory = cache_dir()
    if directory is None:
        return lowered.compile()
    try:
        path = os.path.join(directory, program_key(lowered) + _SUFFIX)
    except Exception as exc:  # noqa: BLE001 - a key we cannot make: no cache
        _log.debug("no cache key for a program: %s", exc)
        return lowered.compile()
    payload = _read(path)
    if payload is not None:
        try:
            compiled = serialize_executable.deserialize_and_load(
                payload, lowered.in_tree, lowered.out_tree)
            _log.debug("loaded compiled program %s", path)
            return compiled
        except Exception as exc:  # noqa: BLE001 - XLA refused it: compile anew
            _log.debug("could not load compiled program %s: %s", path, exc)
    start = time.perf_counter()
    compiled = lowered.compile()
    seconds = time.perf_counter() - start
    try:
        payload, _, _ = serialize_executable.serialize(compiled)
    except Exception as exc:  # noqa: BLE001 - not serialisable: keep it in memory only
        _log.debug("could not serialise a compiled program: %s", exc)
        return compiled
    _write(directory, path, payload)
    _log.debug("compiled a program in %.1f s, kept in %s", seconds, path)
    return compiled


class Program:
    """``jax.jit(fn)`` whose compiled executables persist on disk.

    Calls dispatch to one :class:`jax.stages.Compiled` per input signature;
    a new signature is traced, then loaded from the cache directory or
    compiled and stored there (:func:`load_or_compile`).

    Parameters
    ----------
    fn : callable
        The function to compile.
    fixed_argnums : tuple of int
        Arguments whose tree structure, shapes and dtypes the caller keeps
        fixed for the life of this object (a model's state: the program is
        shared by models of one structure only). They are not inspected on
        each call, which keeps the per-call cost small for a state of hundreds
        of arrays: the other arguments' shapes and dtypes select the
        executable, and where a fixed argument changed after all, JAX refuses
        the executable before running anything and the call is compiled for
        every argument's shapes.
    donate_argnums : tuple of int
        As for :func:`jax.jit`.
    """

    def __init__(self, fn, fixed_argnums=(), donate_argnums=()):
        self._jit = jax.jit(fn, donate_argnums=donate_argnums)
        self._fixed = tuple(fixed_argnums)
        self._executables = {}
        self._lock = threading.Lock()

    def _signature(self, args, full=False):
        sig = []
        for i, arg in enumerate(args):
            if full or i not in self._fixed:
                leaves, tree = jax.tree.flatten(arg)
                sig.append((tree, tuple((getattr(x, "shape", ()), str(getattr(x, "dtype", type(x))))
                                        for x in leaves)))
        return (full, *sig)

    def _executable(self, sig, args):
        compiled = self._executables.get(sig)
        if compiled is None:
            with self._lock:
                compiled = self._executables.get(sig)
                if compiled is None:
                    compiled = load_or_compile(self._jit.lower(*args))
                    self._executables[sig] = compiled
        return compiled

    def __call__(self, *args):
        compiled = self._executable(self._signature(args), args)
        try:
            return compiled(*args)
        except TypeError:
            # A fixed argument came with another structure, shapes or dtypes
            # (JAX checks them before running anything, so no donated buffer
            # is used up): select the executable by every argument instead.
            return self._executable(self._signature(args, full=True), args)(*args)
