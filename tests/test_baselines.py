"""Keras baselines: sklearn contract, learning, class weighting, reproducibility."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from ai4cellfate.baselines import (
    OptimisedMLP,
    SimpleClassifier,
    _PairOptimisedMLP,
    _PairSimpleClassifier,
)
from ai4cellfate.metrics import balanced_accuracy

EPOCHS = 8


def separable(n=90, n_features=4, seed=0, weights=0.5):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < weights).astype(int)
    X = rng.normal(size=(n, n_features)) + 2.0 * y[:, None] * (np.arange(n_features) < 2)
    return X * 10 + 5, y  # standardisation inside fit must cope with scale


@pytest.fixture(scope="module")
def data():
    return separable()


@pytest.fixture(scope="module")
def simple(data):
    X, y = data
    labels = np.array(["stays", "divides"])[y]
    return SimpleClassifier(epochs=EPOCHS, learning_rate=0.05, random_state=0).fit(X, labels)


@pytest.fixture(scope="module")
def mlp(data):
    X, y = data
    return OptimisedMLP(epochs=EPOCHS, learning_rate=0.01, random_state=0).fit(X, y)


def test_simple_classifier_learns_with_string_labels(simple, data):
    X, y = data
    labels = np.array(["stays", "divides"])[y]
    assert list(simple.classes_) == ["divides", "stays"]
    proba = simple.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert set(simple.predict(X)) <= {"stays", "divides"}
    assert balanced_accuracy(labels, simple.predict(X)) > 0.8
    assert len(simple.loss_curve_) == EPOCHS and simple.n_features_in_ == 4
    assert simple.loss_curve_[-1] < simple.loss_curve_[0]
    # architecture: Dropout -> Dense(n_classes, softmax)
    kinds = [type(layer).__name__ for layer in simple.model_.layers]
    assert kinds == ["InputLayer", "Dropout", "Dense"]


def test_optimised_mlp_architecture_and_learning(mlp, data):
    X, y = data
    dense = [layer for layer in mlp.model_.layers if type(layer).__name__ == "Dense"]
    assert [d.units for d in dense] == [32, 16, 8, 2]
    assert all(d.kernel_regularizer is not None for d in dense)
    assert type(mlp.model_.layers[1]).__name__ == "BatchNormalization"
    assert sum(type(la).__name__ == "Dropout" for la in mlp.model_.layers) == 3
    assert balanced_accuracy(y, mlp.predict(X)) > 0.75


def test_same_seed_same_model_other_seed_differs(mlp, data):
    X, y = data
    state = np.random.get_state()
    again = OptimisedMLP(epochs=EPOCHS, learning_rate=0.01, random_state=0).fit(X, y)
    # no global random state was read or changed
    assert np.array_equal(np.random.get_state()[1], state[1])
    np.testing.assert_array_equal(again.predict_proba(X), mlp.predict_proba(X))
    other = OptimisedMLP(epochs=EPOCHS, learning_rate=0.01, random_state=1).fit(X, y)
    assert not np.allclose(other.predict_proba(X), mlp.predict_proba(X))


def test_balanced_class_weight_finds_the_rare_fate():
    X, y = separable(n=120, seed=4, weights=0.12)
    X = X + np.random.default_rng(5).normal(scale=15, size=X.shape)  # overlap
    kw = dict(epochs=6, learning_rate=0.05, random_state=0)
    plain = SimpleClassifier(class_weight=None, **kw).fit(X, y).predict(X)
    balanced = SimpleClassifier(**kw).fit(X, y).predict(X)
    assert balanced.sum() > plain.sum()


def test_pickle_round_trip(mlp, data):
    X, _ = data
    restored = pickle.loads(pickle.dumps(mlp))
    np.testing.assert_allclose(restored.predict_proba(X), mlp.predict_proba(X), rtol=1e-6)


def test_pair_classifier_one_model_per_pair(data):
    X, y = data
    clf = _PairSimpleClassifier(epochs=3, learning_rate=0.05, random_state=0).fit(X, y)
    assert clf.pairs_.tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 6, 2)
    assert clf.predict(X).shape == (len(X), 6)
    # the informative pair (0, 1) beats the pure-noise pair (2, 3)
    pred = clf.predict(X)
    assert balanced_accuracy(y, pred[:, 0]) > balanced_accuracy(y, pred[:, 5])
    with pytest.raises(ValueError, match="pairs"):
        _PairSimpleClassifier(pairs=[(0, 9)], epochs=1).fit(X, y)


def test_pair_mlp_one_independent_network_per_pair(data):
    X, y = data
    clf = _PairOptimisedMLP(epochs=15, learning_rate=0.01, random_state=0).fit(X, y)
    pred = clf.predict(X)
    assert clf.predict_proba(X).shape == (len(X), 6, 2) and pred.shape == (len(X), 6)
    assert balanced_accuracy(y, pred[:, 0]) > balanced_accuracy(y, pred[:, 5])
    # pair (0, 1) reads only columns 0 and 1: changing column 3 leaves it alone
    X2 = X.copy()
    X2[:, 3] = X2[:, 3] * -5 + 100
    p1, p2 = clf.predict_proba(X), clf.predict_proba(X2)
    np.testing.assert_allclose(p2[:, 0], p1[:, 0], rtol=1e-5, atol=1e-6)
    assert np.abs(p2[:, 5] - p1[:, 5]).max() > 1e-3  # pair (2, 3) does change
    # the MLP has the hidden layers of the optimised MLP, per pair
    kernels = sorted(tuple(w.shape) for w in clf.model_.weights if w.path.endswith("kernel"))
    assert kernels == sorted([(6, 2, 32), (6, 32, 16), (6, 16, 8), (6, 8, 2)])


def test_sklearn_contract(simple):
    params = simple.get_params()
    assert params["random_state"] == 0 and params["jit_compile"] == "auto"
    fresh = clone(simple)
    assert not hasattr(fresh, "model_")
    with pytest.raises(NotFittedError):
        fresh.predict(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="features"):
        simple.predict(np.zeros((2, 3)))


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"epochs": 0}, ValueError, "epochs"),
        ({"batch_size": 2.5}, ValueError, "batch_size"),
        ({"learning_rate": -1.0}, ValueError, "learning_rate"),
        ({"class_weight": "auto"}, ValueError, "class_weight"),
        ({"class_weight": {7: 1.0}}, ValueError, "class_weight"),
        ({"standardize": "yes"}, TypeError, "standardize"),
        ({"jit_compile": "always"}, ValueError, "jit_compile"),
        ({"random_state": "seed"}, TypeError, "random_state"),
    ],
)
def test_invalid_parameters(kwargs, exc, match):
    X, y = separable(n=10)
    with pytest.raises(exc, match=match):
        SimpleClassifier(**kwargs).fit(X, y)


def test_invalid_data():
    with pytest.raises(ValueError, match="two classes"):
        OptimisedMLP(epochs=1).fit(np.zeros((4, 2)), [1, 1, 1, 1])
    with pytest.raises(ValueError):
        OptimisedMLP(epochs=1).fit(np.zeros((4, 2)), [0, 1, 0])
