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

A :class:`Program` given a ``key`` (the train step and encoder programs of
:mod:`._jax`, whose key names the model's structure and the code it runs) also
finds its executable without tracing the function first: tracing and lowering
a default fit's train step takes 2-3 s of Python, which a process that loads
the step from the cache would otherwise pay before its first step. That second
file's name is a hash of the key, the arguments' tree, shapes and dtypes, the
same environment as above, the Python, JAX and Keras versions, JAX's and Keras'
configuration, the contents of ai4cellfate's source files and the sizes and
times of Keras' (so editing either misses). What this name cannot see is a
change to the code of Keras or JAX made at run time (a monkeypatch outside
the model's own methods): after such a patch, turn the cache off.

Loading a cached program runs machine code from that directory, as Python
does with ``__pycache__``: keep it private to your user, as ``~/.cache`` is.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import platform
import sys
import threading
import time
import types

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
#: Files found by a :class:`Program`'s key (their payload holds the trees too).
_KEYED_MAGIC = b"A4CFXLK1"
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
    parts = [*_environment(), lowered.as_text()]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _environment():
    """What an executable depends on besides its program (versions, device,
    XLA flags, the host CPU)."""
    import jaxlib

    device = jax.devices()[0]
    return [
        _MAGIC.decode(), jax.__version__, jaxlib.__version__, device.platform,
        device.device_kind, getattr(device.client, "platform_version", ""),
        str(jax.device_count()), os.environ.get("XLA_FLAGS", ""), _host(),
    ]


_SOURCES = None


def _sources():
    """A digest of the code a trace runs: the contents of ai4cellfate's
    Python files and the paths, sizes and modification times of Keras'
    (computed once per process; about 30 ms)."""
    global _SOURCES
    if _SOURCES is None:
        import keras

        from .. import __file__ as package_init

        h = hashlib.sha256()
        for top, by_content in ((os.path.dirname(package_init), True),
                                (os.path.dirname(keras.__file__), False)):
            for root, dirs, files in os.walk(top):
                dirs.sort()
                for name in sorted(files):
                    if not name.endswith(".py"):
                        continue
                    path = os.path.join(root, name)
                    h.update(os.path.relpath(path, top).encode() + b"\0")
                    try:
                        if by_content:
                            with open(path, "rb") as f:
                                h.update(hashlib.sha256(f.read()).digest())
                        else:
                            st = os.stat(path)
                            h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
                    except OSError:
                        h.update(b"?")
        _SOURCES = h.hexdigest()
    return _SOURCES


def _canonical(value):
    """``value`` (a code object's constant) as text that is the same in every
    process: code objects by their parts, sets sorted (their order follows
    string hashes, which differ between processes). ``marshal`` is not used:
    its output depends on reference counts."""
    if isinstance(value, types.CodeType):
        parts = [value.co_code.hex(), repr(value.co_names), repr(value.co_varnames),
                 repr(value.co_freevars), repr(value.co_cellvars),
                 f"{value.co_argcount},{value.co_posonlyargcount},"
                 f"{value.co_kwonlyargcount},{value.co_flags}",
                 *(_canonical(c) for c in value.co_consts)]
        return "code(" + "|".join(parts) + ")"
    if isinstance(value, (frozenset, set)):
        return "{" + ",".join(sorted(_canonical(v) for v in value)) + "}"
    if isinstance(value, tuple):
        return "(" + ",".join(_canonical(v) for v in value) + ")"
    return repr(value)


def code_digest(functions):
    """A digest of Python functions' code, equal in every process that runs
    the same code (a key part for :class:`Program`).

    Parameters
    ----------
    functions : iterable
        Functions (or anything else: its type's name is used).

    Returns
    -------
    digest : str
        64 hexadecimal digits.
    """
    h = hashlib.sha256()
    for fn in functions:
        code = getattr(fn, "__code__", None)
        name = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', type(fn).__name__)}"
        h.update(name.encode() + b"\0")
        if code is not None:
            h.update(_canonical(code).encode() + b"\0")
            h.update(_canonical(getattr(fn, "__defaults__", None)).encode() + b"\0")
            h.update(_canonical(sorted((getattr(fn, "__kwdefaults__", None) or {}).items()))
                     .encode() + b"\0")
    return h.hexdigest()


def keyed_name(key, args, donate_argnums=()):
    """Hash naming the file a :class:`Program` with ``key`` finds without
    tracing, for a call with ``args``.

    Parameters
    ----------
    key : str
        Names the function and the structure of its fixed arguments, the
        same in every process that traces the same program.
    args : tuple
        The call's arguments (their tree, shapes, dtypes and weak types).
    donate_argnums : tuple of int

    Returns
    -------
    name : str
        64 hexadecimal digits.
    """
    import keras

    leaves, tree = jax.tree.flatten(args)
    signature = [str(tree)] + [
        f"{tuple(getattr(x, 'shape', ()))}|{getattr(x, 'dtype', type(x).__name__)}|"
        f"{getattr(x, 'weak_type', None)}" for x in leaves]
    parts = [_KEYED_MAGIC.decode(), *_environment(), sys.version, keras.__version__,
             keras.backend.backend(), keras.config.floatx(), str(keras.config.epsilon()),
             keras.config.image_data_format(), keras.config.dtype_policy().name,
             repr(sorted(jax.config.values.items())), _sources(), repr(tuple(donate_argnums)),
             key, *signature]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _read(path, magic=_MAGIC):
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError:
        return None
    head = len(magic) + 32
    if len(blob) <= head or not blob.startswith(magic):
        return None
    payload = blob[head:]
    if hashlib.sha256(payload).digest() != blob[len(magic):head]:
        return None
    try:
        os.utime(path)  # most recently used
    except OSError:
        pass
    return payload


def _write(directory, path, payload, magic=_MAGIC):
    """Write atomically (a reader never sees half a file), then prune."""
    try:
        os.makedirs(directory, exist_ok=True)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(magic + hashlib.sha256(payload).digest() + payload)
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
    return _load_or_compile(lowered, cache_dir())[0]


def _load_or_compile(lowered, directory):
    """``(compiled, payload)``: ``payload`` is the serialised executable, or
    None where the cache is off or the executable cannot be serialised."""
    from jax.experimental import serialize_executable

    if directory is None:
        return lowered.compile(), None
    try:
        path = os.path.join(directory, program_key(lowered) + _SUFFIX)
    except Exception as exc:  # noqa: BLE001 - a key we cannot make: no cache
        _log.debug("no cache key for a program: %s", exc)
        return lowered.compile(), None
    payload = _read(path)
    if payload is not None:
        try:
            compiled = serialize_executable.deserialize_and_load(
                payload, lowered.in_tree, lowered.out_tree)
            _log.debug("loaded compiled program %s", path)
            return compiled, payload
        except Exception as exc:  # noqa: BLE001 - XLA refused it: compile anew
            _log.debug("could not load compiled program %s: %s", path, exc)
    start = time.perf_counter()
    compiled = lowered.compile()
    seconds = time.perf_counter() - start
    try:
        payload, _, _ = serialize_executable.serialize(compiled)
    except Exception as exc:  # noqa: BLE001 - not serialisable: keep it in memory only
        _log.debug("could not serialise a compiled program: %s", exc)
        return compiled, None
    _write(directory, path, payload)
    _log.debug("compiled a program in %.1f s, kept in %s", seconds, path)
    return compiled, payload


def _load_keyed(path):
    """The executable kept under a :class:`Program` key's name, or None."""
    from jax.experimental import serialize_executable

    blob = _read(path, _KEYED_MAGIC)
    if blob is None:
        return None
    try:
        in_tree, out_tree, payload = pickle.loads(blob)
        compiled = serialize_executable.deserialize_and_load(payload, in_tree, out_tree)
    except Exception as exc:  # noqa: BLE001 - damaged or refused: trace and compile
        _log.debug("could not load compiled program %s: %s", path, exc)
        return None
    _log.debug("loaded compiled program %s without tracing", path)
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
    key : str or callable, optional
        What the function computes, as a string equal in every process that
        would trace the same program from it (or a function returning one,
        called when first needed). With a key, a new signature first looks
        for an executable kept under a name made of the key and the
        arguments (:func:`keyed_name`) and runs it without tracing ``fn``;
        otherwise, and when nothing is kept under that name, ``fn`` is traced
        and its executable loaded by program or compiled, then kept under
        both names. The caller answers for the key: a key shared by two
        functions that trace different programs makes one run the other's.
    """

    def __init__(self, fn, fixed_argnums=(), donate_argnums=(), key=None):
        self._jit = jax.jit(fn, donate_argnums=donate_argnums)
        self._donate = tuple(donate_argnums)
        self._key = key
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
                    compiled = self._load_or_compile(args)
                    self._executables[sig] = compiled
        return compiled

    def _keyed_path(self, directory, args):
        if self._key is None or directory is None:
            return None
        try:
            if callable(self._key):
                self._key = self._key()
            return os.path.join(directory, keyed_name(self._key, args, self._donate) + _SUFFIX)
        except Exception as exc:  # noqa: BLE001 - no name: trace as without a key
            _log.debug("no keyed name for a program: %s", exc)
            return None

    def _load_or_compile(self, args):
        directory = cache_dir()
        path = self._keyed_path(directory, args)
        compiled = _load_keyed(path) if path is not None else None
        if compiled is not None:
            return compiled
        lowered = self._jit.lower(*args)
        compiled, payload = _load_or_compile(lowered, directory)
        if path is not None and payload is not None:
            try:
                blob = pickle.dumps((lowered.in_tree, lowered.out_tree, payload),
                                    protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:  # noqa: BLE001 - trees that do not pickle
                _log.debug("could not keep a program under its key: %s", exc)
            else:
                _write(directory, path, blob, _KEYED_MAGIC)
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
