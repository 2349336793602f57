"""Quiet by default: no backend noise on stderr, no TensorFlow import under jax / torch,
and progress through the ``ai4cellfate`` logger.

The noise checks run in subprocesses: the environment variables that quiet
TensorFlow's C++ logging only act before it is imported, which in this process
has already happened or not, depending on the backend the suite runs under.
"""

import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ai4cellfate import _logging

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "tests" / "data" / "model-v0.1.0.keras"
NOISE = ("absl::InitializeLog", "oneDNN", "cpu_feature_guard", "retracing")
QUIET_VARS = ("TF_CPP_MIN_LOG_LEVEL", "GRPC_VERBOSITY", "AI4CELLFATE_BACKEND_LOGS")


def _installed(name):
    return importlib.util.find_spec(name) is not None


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in QUIET_VARS}
    env.update(OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    env.update(extra)
    return env


def _run(args, **env):
    return subprocess.run(args, capture_output=True, text=True, timeout=600,
                          env=_env(**env), cwd=ROOT)


def _cli(*args, **env):
    return _run([sys.executable, "-m", "ai4cellfate.cli", *args], **env)


def _noise(text):
    return [n for n in NOISE if n in text]


# --------------------------------------------------------------------------
# No TensorFlow under other backends
# --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", [b for b in ("torch", "jax") if _installed(b)])
def test_import_and_construct_do_not_import_tensorflow(backend):
    code = (
        "import sys, ai4cellfate\n"
        "a = 'tensorflow' in sys.modules\n"
        "m = ai4cellfate.CellFateAAE(random_state=0)\n"
        "b = 'tensorflow' in sys.modules\n"
        "import keras\n"
        "from ai4cellfate._logging import keep_tensorflow_unimported\n"
        "assert keep_tensorflow_unimported()\n"
        "keras.saving.serialize_keras_object(keras.layers.Dense(2))\n"
        "c = 'tensorflow' in sys.modules\n"
        "print(a, b, c)\n"
    )
    res = _run([sys.executable, "-c", code], KERAS_BACKEND=backend)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["False", "False", "False"], res.stdout
    assert not _noise(res.stderr), res.stderr


@pytest.mark.parametrize("backend", [b for b in ("torch", "jax") if _installed(b)])
def test_load_and_predict_do_not_import_tensorflow(backend):
    """A saved model loaded in a fresh process and used for prediction (what
    ``ai4cellfate predict`` does) never goes through the estimator's own Keras
    import; on JAX the compiled encoder's key calls ``get_config``, which
    imported TensorFlow (2-3 s) wherever it is installed."""
    code = (
        "import sys, numpy as np, ai4cellfate\n"
        f"m = ai4cellfate.load({str(REFERENCE)!r})\n"
        "p = m.predict_proba(np.zeros((3,) + m.image_shape_, 'float32'))\n"
        "z = m.transform(np.zeros((2,) + m.image_shape_, 'float32'))\n"
        "print(p.shape, z.shape, 'tensorflow' in sys.modules)\n"
    )
    res = _run([sys.executable, "-c", code], KERAS_BACKEND=backend)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[-1] == "False", res.stdout
    assert not _noise(res.stderr), res.stderr


def test_patch_is_exact_once_tensorflow_is_imported():
    """The patched check answers like Keras' own once TensorFlow is loaded."""
    fake = type("Lazy", (), {"available": True, "TensorShape": tuple})()
    proxy = _logging._TensorFlowIfImported(fake)
    assert proxy.TensorShape is tuple  # other attributes pass through
    assert proxy.available == ("tensorflow" in sys.modules)


# --------------------------------------------------------------------------
# Quiet command line
# --------------------------------------------------------------------------


def test_help_is_quiet():
    res = _cli("--help")
    assert res.returncode == 0
    assert res.stderr == ""


def _crops(tmp_path):
    ref = np.load(ROOT / "tests" / "data" / "model-v0.1.0-expected.npz")
    path = tmp_path / "crops.npz"
    np.savez(path, X=ref["X"], y=np.array([0, 1] * 4))
    return path


def test_native_stderr_filter_drops_start_up_lines_and_keeps_the_rest():
    """Written to file descriptor 2 as C++ code does, not through sys.stderr:
    the start-up lines go, every other line (and an unterminated last one)
    arrives in order, and fd 2 is the original again afterwards."""
    code = (
        "import os, sys\n"
        "from ai4cellfate._logging import native_stderr_filter\n"
        "with native_stderr_filter():\n"
        "    os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called'"
        " b' are written to STDERR\\nkeep 1\\n')\n"
        "    os.write(2, b'I0000 port.cc:153] oneDNN custom operations are on.\\nke')\n"
        "    os.write(2, b'ep 2\\ntail')\n"
        "    print('via python', file=sys.stderr)\n"
        "os.write(2, b'|after')\n"
    )
    res = _run([sys.executable, "-c", code])
    assert res.returncode == 0, res.stderr
    assert res.stderr == "keep 1\nkeep 2\ntailvia python\n|after"


@pytest.mark.skipif(not _installed("tensorflow"), reason="needs TensorFlow")
def test_cli_under_tensorflow_is_quiet_unless_debug(tmp_path):
    """A real command on the noisiest backend: TensorFlow's C++ start-up lines and
    the oneDNN notices are hidden by default, and shown as with --debug."""
    crops = _crops(tmp_path)
    res = _cli("--backend", "tensorflow", "predict", str(REFERENCE), str(crops),
               "-o", str(tmp_path / "p.csv"))
    assert res.returncode == 0, res.stderr
    assert not _noise(res.stderr), res.stderr
    assert "wrote 8 rows" in res.stdout

    # What --debug does (show_backend_logs before the backend loads) brings the
    # noise back: the check above would see it.
    loud = _run([sys.executable, "-c", "from ai4cellfate import _logging; "
                 "_logging.show_backend_logs(); import tensorflow"])
    assert loud.returncode == 0, loud.stderr
    assert _noise(loud.stderr), "show_backend_logs should show the backend's own messages"


def test_cli_prepare_is_quiet_and_shows_progress(tmp_path):
    """prepare on a tiny synthetic movie: progress lines, no backend noise."""
    import pandas as pd
    import tifffile

    folder = tmp_path / "movie"
    folder.mkdir()
    yy, xx = np.mgrid[:64, :64]
    movie = np.zeros((6, 64, 64), np.uint16)
    rows = []
    for t in range(6):
        for k, (cy, cx) in enumerate([(20, 20), (44, 44)]):
            movie[t][(yy - cy) ** 2 + (xx - cx) ** 2 <= 25] = 1000 + 500 * k
            rows.append((k + 1, t, cy, cx, -1))
    tifffile.imwrite(folder / "movie.tif", movie)
    pd.DataFrame(rows, columns=["track_id", "t", "y", "x", "parent_id"]).to_csv(
        folder / "tracks.csv", index=False)
    res = _cli("prepare", str(folder), "--format", "tracks", "--crop-size", "16",
               "--output-size", "8", "--unknown", "negative", "-o", str(tmp_path / "d.npz"))
    assert res.returncode == 0, res.stderr
    assert not _noise(res.stderr), res.stderr
    assert "ai4cellfate: prepare: reading" in res.stderr
    assert "samples in" in res.stderr


# --------------------------------------------------------------------------
# In-process helpers
# --------------------------------------------------------------------------


def test_quiet_backends_keeps_user_values(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    monkeypatch.delenv("GRPC_VERBOSITY", raising=False)
    monkeypatch.delenv(_logging.BACKEND_LOGS_ENV, raising=False)
    monkeypatch.setattr(_logging, "_set_by_us", {})
    monkeypatch.setattr(_logging, "_loggers_set", {})
    _logging.quiet_backends()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"
    assert os.environ["GRPC_VERBOSITY"] == "ERROR"
    _logging.show_backend_logs()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"  # the user's value stays
    assert "GRPC_VERBOSITY" not in os.environ


def test_backend_logs_env_keeps_everything(monkeypatch):
    monkeypatch.setenv(_logging.BACKEND_LOGS_ENV, "1")
    monkeypatch.delenv("GRPC_VERBOSITY", raising=False)
    _logging.quiet_backends()
    assert "GRPC_VERBOSITY" not in os.environ


def test_progress_logs_first_and_last(caplog):
    log = logging.getLogger("ai4cellfate.test")
    with caplog.at_level(logging.INFO, logger="ai4cellfate"):
        out = list(_logging.progress(range(5), desc="counting", log=log, every=3600))
    assert out == [0, 1, 2, 3, 4]
    lines = [r.getMessage() for r in caplog.records if r.name == "ai4cellfate.test"]
    assert len(lines) == 2
    assert lines[0].startswith("counting: 1/5 steps (20 %)") and "left" in lines[0]
    assert lines[1].startswith("counting: 5/5 steps (100 %)") and "left" not in lines[1]


def test_studies_log_progress(caplog):
    """A study names itself in its progress lines (logger ai4cellfate.studies)."""
    from ai4cellfate.datasets import make_nuclei
    from ai4cellfate.studies import compare_models

    X, y = make_nuclei(40, image_size=16, random_state=0)
    with caplog.at_level(logging.INFO, logger="ai4cellfate"):
        compare_models(X, y, models=["LogisticRegression"], cv=2, seeds=[0])
    lines = [r.getMessage() for r in caplog.records if r.name == "ai4cellfate.studies"]
    assert lines and lines[-1].startswith("compare_models: 2/2 tasks (100 %)")
