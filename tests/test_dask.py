"""Scale-out: GridSearchCV and the studies on a Dask cluster through joblib.

A two-process ``distributed.LocalCluster`` on the loopback interface stands in
for a cluster of machines (docs/scaling-out.md). The fits must reach the
workers with the parent's Keras backend and one thread each, and give exactly
the numbers of ``n_jobs=1`` for the same seeds: every fit is independent of
whatever ran before it in a worker process.

``dask`` and ``distributed`` are imported, not skipped: CI installs them with
the ``[all]`` extra (``ai4cellfate[dask]``), so a missing one fails this test.

The equality needs every weight initialiser seeded explicitly: an unseeded Keras
initialiser draws its seed from Python's global ``random``, which a Dask
worker's event-loop thread also draws from while a task runs.
"""

import os
import random
import sys
import threading
import warnings

import dask
import joblib
import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster
from sklearn.model_selection import GridSearchCV

from ai4cellfate import CellFateAAE
from ai4cellfate.datasets import make_nuclei
from ai4cellfate.studies import compare_models

TINY = dict(stage1_epochs=1, min_epochs=1, max_epochs=1, batch_size=16, random_state=0)
#: Thread limits: set before a worker process starts (numpy and torch read them
#: at import), through distributed's ``pre-spawn-environ``.
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                     "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                                     "TF_NUM_INTEROP_THREADS")}
#: The Keras backend (read when a task first imports Keras), through ``env``.
KERAS_ENV = {"KERAS_BACKEND": os.environ["KERAS_BACKEND"], "TF_CPP_MIN_LOG_LEVEL": "3"}


def _worker_state():
    """Where a worker stands: its environment and what its Keras runs on."""
    state = {name: os.environ.get(name) for name in {**ONE_THREAD, **KERAS_ENV}}
    state["fitted_here"] = "ai4cellfate.estimator" in sys.modules
    if "keras" in sys.modules:
        state["keras_backend"] = sys.modules["keras"].backend.backend()
    if "torch" in sys.modules:
        state["torch_threads"] = sys.modules["torch"].get_num_threads()
    return state


def _free_memory():
    """What a worker runs to free a finished fit's memory (docs/scaling-out.md)."""
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()
    return True


def _search(X, y, n_jobs):
    search = GridSearchCV(CellFateAAE(**TINY), {"lambda_contra": [0.0, 6.0]}, cv=2,
                          refit=False, n_jobs=n_jobs)
    return search.fit(X, y).cv_results_


def _study(X, y, n_jobs):
    return compare_models(X, y, cv=2, seeds=(0,), n_jobs=n_jobs,
                          models=["CellFateAAE", "LogisticRegression"], **TINY)


@pytest.mark.slow
def test_grid_search_and_compare_models_on_a_local_dask_cluster():
    X, y = make_nuclei(48, image_size=12, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one-epoch fits: latent-space warnings
        serial_search = _search(X, y, n_jobs=1)
        serial_study = _study(X, y, n_jobs=None)
    pre_spawn = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in ONE_THREAD.items()}
    with dask.config.set(pre_spawn), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                         dashboard_address=None, host="127.0.0.1", env=KERAS_ENV) as cluster, \
            Client(cluster) as client:
        with joblib.parallel_backend("dask"):
            dask_search = _search(X, y, n_jobs=-1)
            assert all(client.run(_free_memory).values())
            dask_study = _study(X, y, n_jobs=-1)
        workers = client.run(_worker_state)
    assert len(workers) == 2
    for state in workers.values():
        assert state["fitted_here"], workers  # both workers fitted models
        assert state["keras_backend"] == os.environ["KERAS_BACKEND"], workers
        assert all(state[k] == v for k, v in {**ONE_THREAD, **KERAS_ENV}.items()), workers
        if "torch_threads" in state:
            assert state["torch_threads"] == 1, workers
    np.testing.assert_array_equal(dask_search["mean_test_score"],
                                  serial_search["mean_test_score"])
    np.testing.assert_array_equal(dask_search["split0_test_score"],
                                  serial_search["split0_test_score"])
    assert list(dask_search["params"]) == list(serial_search["params"])
    assert set(dask_study["model"]) == {"CellFateAAE", "LogisticRegression"}
    pd.testing.assert_frame_equal(dask_study, serial_study)


def test_a_fit_ignores_other_threads_drawing_from_python_random():
    """Why fits agree across workers: nothing in a fit draws from ``random``.

    A Dask worker's event loop draws from Python's global generator while a task
    runs (here: a thread that keeps drawing), so a fit must seed everything
    it initialises itself.
    """
    X, y = make_nuclei(32, image_size=12, random_state=0)

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return CellFateAAE(**TINY).fit(X, y).transform(X)

    quiet = fit()
    stop = threading.Event()

    def draw():
        while not stop.wait(0.0005):
            random.random()

    thread = threading.Thread(target=draw, daemon=True)
    thread.start()
    try:
        noisy = fit()
    finally:
        stop.set()
        thread.join()
    np.testing.assert_array_equal(noisy, quiet)
