"""ai4cellfate's on-disk cache of compiled XLA programs (JAX backend)."""

import os

import numpy as np
import pytest

from conftest import FAST

jax = pytest.importorskip("jax")

from ai4cellfate.training import _compile_cache as cc  # noqa: E402


def _without_jax_cache(monkeypatch):
    """JAX's own persistent cache out of the way (the suite turns it on for
    speed): XLA compiles, and this module's cache is on."""
    from jax._src import compilation_cache

    monkeypatch.setattr(compilation_cache, "is_cache_used", lambda backend: False)
    monkeypatch.setattr(cc, "_jax_cache_on", lambda: False)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """The cache in a fresh directory."""
    _without_jax_cache(monkeypatch)
    path = tmp_path / "xla"
    monkeypatch.setenv(cc.CACHE_ENV, str(path))
    return path


@pytest.fixture
def compiles(monkeypatch):
    """Count the programs XLA compiles through the cache."""
    count = [0]
    real = jax.stages.Lowered.compile

    def counted(self, *args, **kwargs):
        count[0] += 1
        return real(self, *args, **kwargs)

    monkeypatch.setattr(jax.stages.Lowered, "compile", counted)
    return count


def _programs(path):
    return sorted(p for p in os.listdir(path) if p.endswith(".xla")) if path.exists() else []


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setattr(cc, "_jax_cache_on", lambda: False)
    monkeypatch.delenv(cc.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cc.cache_dir() == os.path.join(str(tmp_path), "ai4cellfate", "xla")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cc.cache_dir() == os.path.join(os.path.expanduser("~"), ".cache", "ai4cellfate", "xla")
    monkeypatch.setenv(cc.CACHE_ENV, "~/progs")
    assert cc.cache_dir() == os.path.join(os.path.expanduser("~"), "progs")
    for off in ("off", "OFF", "0", "false", "none", " no "):
        monkeypatch.setenv(cc.CACHE_ENV, off)
        assert cc.cache_dir() is None
    # JAX's own persistent cache, when the user turned it on, caches these
    # programs: no second copy
    monkeypatch.setenv(cc.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(cc, "_jax_cache_on", lambda: True)
    assert cc.cache_dir() is None


def test_jax_cache_counts_as_on_while_jax_would_use_it(monkeypatch):
    # Re-serialising an executable JAX loaded from its cache gives a file that
    # fails when run, so this module must see JAX's cache whenever JAX would
    # use it: enabled and with a directory, now or when JAX set it up.
    from jax._src import compilation_cache

    before = (jax.config.jax_compilation_cache_dir, jax.config.jax_enable_compilation_cache)
    try:
        jax.config.update("jax_compilation_cache_dir", None)
        monkeypatch.setattr(compilation_cache, "_cache", None)
        monkeypatch.setattr(compilation_cache, "_cache_used", True)  # "enabled", no directory
        assert not cc._jax_cache_on()
        monkeypatch.setattr(compilation_cache, "_cache", object())   # set up earlier
        assert cc._jax_cache_on()
        monkeypatch.setattr(compilation_cache, "_cache", None)
        jax.config.update("jax_compilation_cache_dir", "/somewhere")
        assert cc._jax_cache_on()
        jax.config.update("jax_enable_compilation_cache", False)
        assert not cc._jax_cache_on()
    finally:
        jax.config.update("jax_compilation_cache_dir", before[0])
        jax.config.update("jax_enable_compilation_cache", before[1])


def test_a_plain_process_writes_and_then_loads_programs(tmp_path):
    # What a user's process sees: JAX's defaults (its cache enabled but with
    # no directory, which JAX reports as "used" once it compiled anything),
    # nothing of this suite's set-up.
    import subprocess
    import sys

    code = (
        "import jax, numpy as np, time\n"
        "jax.jit(lambda v: v + 1)(np.float32(1))\n"          # JAX has compiled before
        "from ai4cellfate.training import _compile_cache as cc\n"
        "n = [0]; real = jax.stages.Lowered.compile\n"
        "def counted(self, *a, **k):\n"
        "    n[0] += 1; return real(self, *a, **k)\n"
        "jax.stages.Lowered.compile = counted\n"
        "out = cc.Program(lambda v: v * 3 + 1)(np.arange(5, dtype=np.float32))\n"
        "print(cc.cache_dir(), n[0], out.tolist())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env[cc.CACHE_ENV] = str(tmp_path / "xla")
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=300) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    first, second = (run.stdout.split(maxsplit=2) for run in runs)
    assert first[0] == second[0] == str(tmp_path / "xla")
    assert (first[1], second[1]) == ("1", "0")          # compiled, then loaded
    assert first[2].strip() == second[2].strip() == str([1.0, 4.0, 7.0, 10.0, 13.0])
    assert len(_programs(tmp_path / "xla")) == 1


def test_program_matches_jit_and_keeps_one_executable_per_signature(cache, compiles):
    def f(w, x):
        return jax.numpy.tanh(x @ w).sum(axis=1)

    w = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
    x4 = np.arange(8, dtype=np.float32).reshape(2, 4) / 7
    x5 = np.arange(20, dtype=np.float32).reshape(5, 4) / 19
    prog = cc.Program(f, fixed_argnums=(0,))
    np.testing.assert_array_equal(prog(w, x4), jax.jit(f)(w, x4))
    np.testing.assert_array_equal(prog(w, x5), jax.jit(f)(w, x5))
    np.testing.assert_array_equal(prog(w, x4 + 1), jax.jit(f)(w, x4 + 1))
    assert compiles[0] == 2                        # one per data shape
    assert len(_programs(cache)) == 2
    # another process (a new Program) loads both instead of compiling
    again = cc.Program(f, fixed_argnums=(0,))
    np.testing.assert_array_equal(again(w, x5), jax.jit(f)(w, x5))
    np.testing.assert_array_equal(again(w, x4), jax.jit(f)(w, x4))
    assert compiles[0] == 2
    # a "fixed" argument that changes after all: JAX refuses the executable
    # before running it, and the call is compiled for the new shapes
    w2 = np.linspace(-1, 1, 20, dtype=np.float32).reshape(4, 5)
    np.testing.assert_array_equal(again(w2, x4), jax.jit(f)(w2, x4))
    assert compiles[0] == 3
    np.testing.assert_array_equal(again(w, x4), jax.jit(f)(w, x4))
    assert compiles[0] == 3


def test_program_key_names_everything_the_executable_depends_on(monkeypatch):
    def f(x):
        return x * 2

    a = cc.program_key(jax.jit(f).lower(np.zeros(3, np.float32)))
    assert a == cc.program_key(jax.jit(f).lower(np.ones(3, np.float32)))   # values: arguments
    assert len(a) == 64 and int(a, 16) >= 0
    assert a != cc.program_key(jax.jit(f).lower(np.zeros(4, np.float32)))  # shape
    assert a != cc.program_key(jax.jit(f).lower(np.zeros(3, np.int32)))    # dtype
    assert a != cc.program_key(jax.jit(lambda x: x * 3).lower(np.zeros(3, np.float32)))
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=true")
    assert a != cc.program_key(jax.jit(f).lower(np.zeros(3, np.float32)))
    monkeypatch.delenv("XLA_FLAGS")
    monkeypatch.setattr(cc, "_HOST", "another cpu")
    assert a != cc.program_key(jax.jit(f).lower(np.zeros(3, np.float32)))


def test_a_damaged_or_foreign_file_is_compiled_again_and_replaced(cache, compiles):
    def f(x):
        return jax.numpy.cos(x) + 1

    x = np.linspace(0, 3, 6, dtype=np.float32)
    expected = np.asarray(jax.jit(f)(x))
    cc.Program(f)(x)
    (name,) = _programs(cache)
    good = (cache / name).read_bytes()
    for damaged in (good[:-100],                                      # cut short
                    good[:-1] + bytes([good[-1] ^ 1]),                # one bit flipped
                    b"not a program",
                    good[:8] + b"\0" * 32 + good[40:]):               # wrong checksum
        (cache / name).write_bytes(damaged)
        before = compiles[0]
        np.testing.assert_array_equal(cc.Program(f)(x), expected)
        assert compiles[0] == before + 1
        assert (cache / name).read_bytes() == good                    # replaced
    assert not [p for p in os.listdir(cache) if ".tmp-" in p]


def test_a_cache_that_cannot_be_written_never_fails_a_call(tmp_path, monkeypatch, compiles):
    blocker = tmp_path / "a file"
    blocker.write_text("not a directory")
    _without_jax_cache(monkeypatch)
    monkeypatch.setenv(cc.CACHE_ENV, str(blocker / "xla"))
    x = np.arange(4, dtype=np.float32)
    np.testing.assert_array_equal(cc.Program(lambda v: v + 1)(x), x + 1)
    assert compiles[0] == 1
    assert blocker.read_text() == "not a directory"


def test_off_writes_nothing(tmp_path, monkeypatch, compiles):
    monkeypatch.setenv(cc.CACHE_ENV, "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    _without_jax_cache(monkeypatch)
    x = np.arange(4, dtype=np.float32)
    cc.Program(lambda v: v - 1)(x)
    cc.Program(lambda v: v - 1)(x)
    assert compiles[0] == 2
    assert list(tmp_path.iterdir()) == []


def test_prune_drops_the_least_recently_used_programs(tmp_path):
    sizes = {"a": 300, "b": 200, "c": 100, "d": 400}
    for age, (name, size) in enumerate(sizes.items()):
        p = tmp_path / f"{name}.xla"
        p.write_bytes(b"x" * size)
        os.utime(p, (1000 + age, 1000 + age))     # a oldest, d newest
    (tmp_path / "notes.txt").write_bytes(b"y" * 5000)   # not ours: never removed
    killed = ".e.xla.tmp-123@host-abcdefgh"              # a writer killed long ago
    (tmp_path / killed).write_bytes(b"z")
    os.utime(tmp_path / killed, (1000, 1000))
    (tmp_path / ".f.xla.tmp-124@host-abcdefgh").write_bytes(b"z")   # a writer at work
    cc._prune(str(tmp_path), keep=str(tmp_path / "a.xla"), max_bytes=750)
    # oldest first, but the program just written stays: b goes, then c
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".f.xla.tmp-124@host-abcdefgh", "a.xla", "d.xla", "notes.txt"]
    cc._prune(str(tmp_path), keep=str(tmp_path / "d.xla"), max_bytes=400)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".f.xla.tmp-124@host-abcdefgh", "d.xla", "notes.txt"]


@pytest.mark.exact
@pytest.mark.backend
@pytest.mark.filterwarnings("ignore::ai4cellfate.estimator.LatentWarning")
def test_a_fit_that_loads_its_programs_equals_one_that_compiles_them(nuclei, cache, compiles):
    import keras

    if keras.backend.backend() != "jax":
        pytest.skip("the compiled-program cache is for the JAX backend")
    from ai4cellfate import CellFateAAE
    from ai4cellfate.training import _jax

    X, y = nuclei
    _jax._SHARED.clear()
    first = CellFateAAE(**FAST).fit(X, y)
    written = _programs(cache)
    assert len(written) >= 2                      # the train step and the encoder
    assert compiles[0] == len(written)
    _jax._SHARED.clear()                          # as a new process
    second = CellFateAAE(**FAST).fit(X, y)
    assert compiles[0] == len(written)            # every program loaded
    assert _programs(cache) == written
    for a, b in zip(first.model_.get_weights(), second.model_.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first.transform(X), second.transform(X))
    _jax._SHARED.clear()
