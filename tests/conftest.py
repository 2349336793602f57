"""Shared test configuration.

The Keras backend is chosen by ``KERAS_BACKEND`` before anything imports
Keras; the suite defaults to JAX when it is unset. ``tests/run_backends.py``
runs the suite once per backend.

Under JAX every new model compiles its train step (tens of seconds on a small
CPU). The tests use a handful of fixed configurations and JAX's persistent
compilation cache (set through environment variables, so worker processes of
``n_jobs=2`` inherit it), which turns repeated compilations into cache hits.
"""

import os
import tempfile

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "ai4cellfate-test-jax-cache")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

#: Short training used by the estimator tests (one compiled configuration).
FAST = dict(stage1_epochs=1, min_epochs=1, max_epochs=2, batch_size=16, random_state=0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def nuclei():
    """64 synthetic 16x16 nuclei with labels 0/1."""
    from ai4cellfate.datasets import make_nuclei

    return make_nuclei(64, image_size=16, random_state=0)


@pytest.fixture(scope="session")
def fitted(nuclei):
    """A CellFateAAE fitted once per session with the FAST settings."""
    from ai4cellfate import CellFateAAE

    X, y = nuclei
    return CellFateAAE(**FAST).fit(X, y)
