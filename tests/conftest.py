"""Shared test configuration.

The Keras backend is chosen by ``KERAS_BACKEND`` before anything imports
Keras; the suite defaults to JAX when it is unset. ``tests/run_backends.py``
runs the suite once per backend.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng():
    return np.random.default_rng(0)
