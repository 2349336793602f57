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


def _python(code, **env):
    """Run ``code`` in a fresh Python process (JAX backend, ``env`` added)
    and return its standard output; fail the test with its errors."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, KERAS_BACKEND="jax", **env), timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


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
        "t = [0]\n"
        "def f(v):\n"
        "    t[0] += 1; return v * 3 + 1\n"
        "out = cc.Program(f, key='times 3 plus 1')(np.arange(5, dtype=np.float32))\n"
        "print(cc.cache_dir(), n[0], t[0], out.tolist())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env[cc.CACHE_ENV] = str(tmp_path / "xla")
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=300) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    first, second = (run.stdout.split(maxsplit=3) for run in runs)
    assert first[0] == second[0] == str(tmp_path / "xla")
    assert (first[1], second[1]) == ("1", "0")          # compiled, then loaded
    assert (first[2], second[2]) == ("1", "0")          # traced, then found by its key
    assert first[3].strip() == second[3].strip() == str([1.0, 4.0, 7.0, 10.0, 13.0])
    assert len(_programs(tmp_path / "xla")) == 2        # by program and by key


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


def test_a_keyed_program_is_found_without_tracing_it(cache, compiles, monkeypatch):
    lowered = [0]                                  # programs traced and lowered
    real = cc._load_or_compile

    def counted(low, directory):
        lowered[0] += 1
        return real(low, directory)

    monkeypatch.setattr(cc, "_load_or_compile", counted)

    def f(w, x):
        return jax.numpy.sin(x @ w)

    def reference(w, x):
        return np.asarray(jax.jit(lambda a, b: jax.numpy.sin(b @ a))(w, x))

    w = np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2)
    x = np.arange(12, dtype=np.float32).reshape(4, 3) / 11
    expected = reference(w, x)
    base = compiles[0]
    np.testing.assert_array_equal(cc.Program(f, fixed_argnums=(0,), key="sin")(w, x), expected)
    assert (lowered[0], compiles[0] - base, len(_programs(cache))) == (1, 1, 2)
    # a later process: found by its key, neither traced nor compiled
    again = cc.Program(f, fixed_argnums=(0,), key=lambda: "sin")
    np.testing.assert_array_equal(again(w, x), expected)
    assert (lowered[0], compiles[0] - base) == (1, 1)
    # another shape is another name: traced and compiled
    np.testing.assert_array_equal(again(w, x[:2]), reference(w, x[:2]))
    assert (lowered[0], len(_programs(cache))) == (2, 4)
    # another key: traced, then loaded by its program (the same HLO)
    compiled_so_far = compiles[0]
    other = cc.Program(f, fixed_argnums=(0,), key="sin, edited")
    np.testing.assert_array_equal(other(w, x), expected)
    assert (lowered[0], compiles[0], len(_programs(cache))) == (3, compiled_so_far, 5)
    # without a key: traced and loaded by program, nothing more written
    np.testing.assert_array_equal(cc.Program(f, fixed_argnums=(0,))(w, x), expected)
    assert (lowered[0], compiles[0], len(_programs(cache))) == (4, compiled_so_far, 5)


def test_keyed_name_names_what_a_trace_depends_on(monkeypatch):
    x = np.zeros(3, np.float32)
    a = cc.keyed_name("k", (x,))
    assert len(a) == 64 and a == cc.keyed_name("k", (np.ones(3, np.float32),))  # values
    assert a != cc.keyed_name("k2", (x,))
    assert a != cc.keyed_name("k", (np.zeros(4, np.float32),))                  # shape
    assert a != cc.keyed_name("k", (np.zeros(3, np.int32),))                    # dtype
    assert a != cc.keyed_name("k", ([x],))                                      # tree
    assert a != cc.keyed_name("k", (x,), donate_argnums=(0,))
    weak = jax.numpy.asarray(1.0)                                               # weak type
    assert cc.keyed_name("k", (weak,)) != cc.keyed_name("k", (np.float32(1.0),))
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=true")
    assert a != cc.keyed_name("k", (x,))
    monkeypatch.delenv("XLA_FLAGS")
    monkeypatch.setattr(cc, "_SOURCES", "edited sources")
    assert a != cc.keyed_name("k", (x,))
    monkeypatch.undo()
    assert a == cc.keyed_name("k", (x,))
    before = jax.config.jax_default_matmul_precision
    try:
        jax.config.update("jax_default_matmul_precision", "highest")
        assert a != cc.keyed_name("k", (x,))
    finally:
        jax.config.update("jax_default_matmul_precision", before)


def test_code_digest_sees_a_changed_function():
    def f(x):
        return x + 1

    def g(x):
        return x + 2

    def f_default(x, k=1):
        return x + k

    def f_default2(x, k=2):
        return x + k

    assert cc.code_digest([f]) == cc.code_digest([f])
    assert cc.code_digest([f]) != cc.code_digest([g])
    assert cc.code_digest([f_default]) != cc.code_digest([f_default2])
    assert cc.code_digest([f, None]) != cc.code_digest([f])


def test_a_damaged_keyed_file_is_traced_again_and_replaced(cache, compiles):
    def f(x):
        return jax.numpy.exp(x) - 1

    x = np.linspace(0, 1, 5, dtype=np.float32)
    expected = np.asarray(jax.jit(f)(x))
    cc.Program(f, key="expm1")(x)
    keyed = cc.keyed_name("expm1", (x,)) + ".xla"
    assert keyed in _programs(cache)
    good = (cache / keyed).read_bytes()
    for damaged in (good[:-50], good[:-1] + bytes([good[-1] ^ 1]), b"not a program"):
        (cache / keyed).write_bytes(damaged)
        np.testing.assert_array_equal(cc.Program(f, key="expm1")(x), expected)
        assert compiles[0] == 1                    # loaded by its program
        assert (cache / keyed).read_bytes() == good


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
def test_a_fit_that_loads_its_programs_equals_one_that_compiles_them(nuclei, cache, compiles,
                                                                     monkeypatch):
    import keras

    if keras.backend.backend() != "jax":
        pytest.skip("the compiled-program cache is for the JAX backend")
    from ai4cellfate import CellFateAAE
    from ai4cellfate.training import _jax

    X, y = nuclei
    traced = [0]
    real = cc._load_or_compile

    def counted(lowered, directory):
        traced[0] += 1
        return real(lowered, directory)

    monkeypatch.setattr(cc, "_load_or_compile", counted)
    _jax._SHARED.clear()
    first = CellFateAAE(**FAST).fit(X, y)
    written = _programs(cache)
    assert compiles[0] >= 2                       # the train step and the encoder
    assert len(written) == 2 * compiles[0] == 2 * traced[0]   # by program and by key
    _jax._SHARED.clear()                          # as a new process
    second = CellFateAAE(**FAST).fit(X, y)
    assert traced[0] == compiles[0]               # every program loaded by its key,
    assert _programs(cache) == written            # without tracing it
    for a, b in zip(first.model_.get_weights(), second.model_.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first.transform(X), second.transform(X))
    _jax._SHARED.clear()


@pytest.mark.backend
def test_the_train_step_key_is_the_same_in_another_process():
    # The key must not hold anything of one process (addresses, ids, string
    # hashes, reference counts), or a later process would never find the step
    # by it. This process has run other tests; the other one runs only this.
    import hashlib

    import keras

    if keras.backend.backend() != "jax":
        pytest.skip("the compiled-program cache is for the JAX backend")
    code = (
        "import hashlib, keras\n"
        "from ai4cellfate.training import AdversarialAutoencoder, _jax\n"
        "m = AdversarialAutoencoder((20, 20, 1), seed=3)\n"
        "m.compile(optimizer=keras.optimizers.Adam(1e-3, beta_1=0.0, beta_2=0.9))\n"
        "m.optimizer.build(m.trainable_variables)\n"
        "k = _jax.jitted_train_step(m)._key\n"
        "text, digest = (k() if callable(k) else k).split('\\0')\n"
        "print(hashlib.sha256(text.encode()).hexdigest(), digest)\n"
    )
    out = _python(code, PYTHONHASHSEED="12345")
    from ai4cellfate.training import AdversarialAutoencoder, _jax

    m = AdversarialAutoencoder((20, 20, 1), seed=5)     # seeds are values, not structure
    m.compile(optimizer=keras.optimizers.Adam(1e-3, beta_1=0.0, beta_2=0.9))
    m.optimizer.build(m.trainable_variables)
    k = _jax.jitted_train_step(m)._key
    text, digest = (k() if callable(k) else k).split("\0")
    assert out.split()[-2:] == [hashlib.sha256(text.encode()).hexdigest(), digest]


def test_code_digest_is_the_same_in_another_process():
    # string sets (ordered by per-process string hashes) and marshal's
    # reference flags (which follow reference counts) must not reach it

    code = (
        "def f(x, k=(1, 'a')):\n"
        "    return x in {'alpha', 'beta', 'gamma', 'delta'} and (lambda y: y + k[0])(x)\n"
        "from ai4cellfate.training import _compile_cache as cc\n"
        "print(cc.code_digest([f]))\n"
    )
    digests = set()
    for seed in ("1", "2", "3"):
        digests.add(_python(code, PYTHONHASHSEED=seed).split()[-1])
    assert len(digests) == 1


def test_building_a_fit_model_compiles_no_program_per_shape():
    """A new fit's model fills its variables on the host (biases, batch
    norms, loss weights, Adam's slots): building it in a fresh process
    compiles only Keras' few scalar programs, where Keras' own initialisers
    compiled one program per variable shape (about 25)."""

    code = (
        "import jax, jax.monitoring\n"
        "n = [0]\n"
        "def listen(event, duration, **kwargs):\n"
        "    n[0] += event.endswith('backend_compile_duration')\n"
        "jax.monitoring.register_event_duration_secs_listener(listen)\n"
        "from ai4cellfate import CellFateAAE\n"
        "est = CellFateAAE(random_state=0)\n"
        "model = est._build_model(est._check_params(), (20, 20, 1), 2, 0)\n"
        "print('slots', len(model.optimizer.variables), 'compiles', n[0])\n"
    )
    out = _python(code, JAX_COMPILATION_CACHE_DIR="")
    words = out.split()
    assert int(words[words.index("slots") + 1]) > 50  # Adam's slots were built
    assert int(words[words.index("compiles") + 1]) <= 3, out
