"""The preprint's studies: documented columns, leak-free folds, reproducibility.

Most tests use ``FakeAAE``, a fast stand-in with CellFateAAE's interface (PCA +
logistic regression) that logs what it was trained and tested on; the real
CellFateAAE runs every study in ``test_studies_with_the_real_cellfateaae``
(marked slow: seconds under torch, minutes of compilation under jax).
"""


import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedGroupKFold, StratifiedKFold

from ai4cellfate import studies
from ai4cellfate.datasets import make_nuclei
from ai4cellfate.studies import (
    ABLATIONS,
    COMPARE_MODELS,
    ablation,
    compare_models,
    label_budget_study,
    latent_dim_study,
    make_cv,
    summarize,
    time_point_study,
)

BASE = ["model", "fold", "seed", "balanced_accuracy", "precision", "n_train", "n_test"]
LOG = []  # (params, training groups, test groups) of every FakeAAE prediction


def group_of(X):
    """The lineage id written into the corner pixel of every crop."""
    return np.rint(np.asarray(X)[:, 0, 0] * 1000).astype(int) - 1


class FakeAAE(ClassifierMixin, TransformerMixin, BaseEstimator):
    def __init__(self, latent_dim=2, lambda_recon=8.0, lambda_adv=4.0,
                 lambda_contra=6.0, lambda_cov=1e-4, random_state=None):
        self.latent_dim = latent_dim
        self.lambda_recon = lambda_recon
        self.lambda_adv = lambda_adv
        self.lambda_contra = lambda_contra
        self.lambda_cov = lambda_cov
        self.random_state = random_state

    def fit(self, X, y, groups=None):
        X = np.asarray(X).reshape(len(X), -1)
        self.pca_ = PCA(self.latent_dim, random_state=self.random_state).fit(X)
        self.clf_ = LogisticRegression().fit(self.pca_.transform(X), y)
        self.classes_ = self.clf_.classes_
        self.train_groups_ = set(group_of(X.reshape(len(X), 20, 20)))
        assert groups is None or set(groups) == self.train_groups_
        return self

    def transform(self, X):
        return self.pca_.transform(np.asarray(X).reshape(len(X), -1))

    def predict(self, X):
        LOG.append((self.get_params(), self.train_groups_, set(group_of(X))))
        return self.clf_.predict(self.transform(X))


@pytest.fixture(scope="module")
def nuclei():
    X, y = make_nuclei(96, random_state=0)
    groups = np.arange(96) // 3  # 32 lineages of 3 crops
    X = X.copy()
    X[:, 0, 0] = (groups + 1) / 1000  # so the stand-in can tell the lineage
    return X, y, groups


@pytest.fixture(autouse=True)
def clear_log():
    LOG.clear()
    yield


def assert_no_leak():
    assert LOG
    for _, train, test in LOG:
        assert not train & test


def test_compare_models_every_model(nuclei):
    X, y, groups = nuclei
    res = compare_models(X, y, groups, cv=2, baseline_epochs=2, aae=FakeAAE())
    assert list(res.columns) == ["model", "features", *BASE[1:]]
    assert set(res["model"]) == set(COMPARE_MODELS)
    assert set(res["fold"]) == {0, 1} and set(res["seed"]) == {42}
    for family in ("SimpleClassifier", "OptimisedMLP"):
        pairs = res[res["model"] == f"{family} (pair)"]
        assert len(pairs) == 2 * 66  # 12 region features of one-channel crops
        assert "area + intensity_mean" not in set(pairs["features"])
        assert "intensity_mean + area" in set(pairs["features"])
        best = res[res["model"] == f"{family} (best pair)"]
        assert len(best) == 2 and set(best["features"]) <= set(pairs["features"])
    one = res[~res["model"].str.endswith(" (pair)")]
    assert len(one) == 2 * 6
    assert (res["n_train"] + res["n_test"] == len(y)).all()
    assert res["balanced_accuracy"].between(0, 1).all() and res["precision"].between(0, 1).all()
    # the non-engineered model really has lambda_contra = lambda_cov = 0
    assert sorted(p["lambda_contra"] for p, _, _ in LOG) == [0.0, 0.0, 6.0, 6.0]
    assert_no_leak()
    # the crops are easy: the stand-in and logistic regression do well
    means = summarize(res).set_index("model")["balanced_accuracy_mean"]
    assert means["CellFateAAE"] > 0.8 and means["LogisticRegression"] > 0.8


def test_folds_never_share_a_group(nuclei):
    X, y, groups = nuclei
    assert isinstance(make_cv(4, groups), StratifiedGroupKFold)
    assert isinstance(make_cv(4), StratifiedKFold)
    folds = studies._folds(4, y, groups, random_state=0)
    assert len(folds) == 4
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested) == list(range(len(y)))  # every crop tested once
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
    # a splitter that ignores groups is refused before any work
    with pytest.raises(ValueError, match="group"):
        compare_models(X, y, groups, cv=KFold(3), models=["LogisticRegression"])
    # explicit (train, test) pairs are accepted
    res = compare_models(X, y, groups, cv=folds[:2], models=["LogisticRegression"])
    assert list(res["fold"]) == [0, 1]


def test_parallel_and_repeated_runs_give_the_same_table(nuclei):
    X, y, groups = nuclei
    kw = dict(cv=3, seeds=(1, 2), models=["LogisticRegression"], random_state=5)
    serial = compare_models(X, y, groups, **kw)
    pd.testing.assert_frame_equal(serial, compare_models(X, y, groups, **kw))
    pd.testing.assert_frame_equal(serial, compare_models(X, y, groups, n_jobs=2, **kw))
    assert len(serial) == 3 * 2
    other = compare_models(X, y, groups, **{**kw, "random_state": 6})
    assert not serial["balanced_accuracy"].equals(other["balanced_accuracy"])


def test_compare_models_with_given_features(nuclei):
    X, y, _ = nuclei
    F = np.c_[X.reshape(len(X), -1).sum(1), (X > 0).reshape(len(X), -1).sum(1)]
    res = compare_models(X, y, cv=2, features=F, feature_names=["total", "size"],
                         models=["LogisticRegression", "CellFateAAE"], aae=FakeAAE())
    assert list(res["model"]) == ["CellFateAAE", "LogisticRegression"] * 2
    assert set(res["features"]) == {"image", "region features"}


def test_ablation_switches_each_loss_off(nuclei):
    X, y, groups = nuclei
    res = ablation(X, y, groups, cv=2, aae=FakeAAE(), lambda_recon=3.0)
    assert list(res.columns) == ["model", "setting", *BASE[1:]]
    assert list(res["setting"].unique()) == list(ABLATIONS)
    assert len(res) == len(ABLATIONS) * 2
    for (params, _, _), setting in zip(LOG, res["setting"]):
        expected = {"lambda_recon": 3.0, **ABLATIONS[setting]}
        assert all(params[k] == v for k, v in expected.items())
    assert_no_leak()
    custom = ablation(X, y, cv=2, aae=FakeAAE(), settings={"half": {"lambda_adv": 2.0}})
    assert list(custom["setting"]) == ["half", "half"]


def test_latent_dim_study_reports_correlations(nuclei):
    X, y, groups = nuclei
    res = latent_dim_study(X, y, groups, cv=2, seeds=(1, 2), latent_dims=(2, 3),
                           aae=FakeAAE())
    assert list(res.columns) == [
        "model", "latent_dim", *BASE[1:5], "max_abs_correlation",
        "mean_abs_correlation", "centroid_distance", "n_train", "n_test",
    ]
    assert len(res) == 2 * 2 * 2 and set(res["latent_dim"]) == {2, 3}
    assert sorted({p["latent_dim"] for p, _, _ in LOG}) == [2, 3]
    assert res["max_abs_correlation"].between(0, 1).all()
    assert (res["mean_abs_correlation"] <= res["max_abs_correlation"] + 1e-12).all()
    two = res[res["latent_dim"] == 2]
    np.testing.assert_allclose(two["mean_abs_correlation"], two["max_abs_correlation"])
    assert (res["centroid_distance"] > 0).all()
    assert_no_leak()


def test_label_budget_study(nuclei):
    X, y, groups = nuclei
    res = label_budget_study(X, y, groups, cv=2, budgets=(8, 20, None), aae=FakeAAE())
    assert list(res.columns) == [
        "model", "budget", "n_labelled", *BASE[1:5], "centroid_distance",
        "n_train", "n_test",
    ]
    assert str(res["budget"].dtype) == "Int64"
    assert len(res) == 3 * 2 * 2
    for b, n in [(8, 8), (20, 20)]:
        assert (res.loc[res["budget"] == b, "n_labelled"] == n).all()
    full = res[res["budget"].isna()]
    assert (full["n_labelled"] + full["n_test"] == len(y)).all()
    # the test part does not change with the budget
    assert res.groupby("fold")["n_test"].nunique().eq(1).all()
    aae_rows = res["model"] == "CellFateAAE"
    assert res.loc[aae_rows, "centroid_distance"].notna().all()
    assert res.loc[~aae_rows, "centroid_distance"].isna().all()
    assert_no_leak()
    table = summarize(res)
    assert list(table["budget"]) == [8, 8, 20, 20, "all", "all"]


def test_stratified_subsample_keeps_both_fates():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(90, int), np.ones(10, int)]
    for n in (2, 5, 30, 99):
        idx = studies._stratified_subsample(y, n, rng)
        assert len(idx) == n == len(set(idx))
        assert set(y[idx]) == {0, 1}
    assert studies._stratified_subsample(y, 30, rng).size == 30
    assert np.bincount(y[studies._stratified_subsample(y, 30, rng)]).tolist() == [27, 3]


def test_time_point_study(nuclei):
    X, y, groups = nuclei
    time_point = np.arange(len(y)) % 3  # every lineage seen at 3 time points
    res = time_point_study(X, y, time_point, groups, cv=2, aae=FakeAAE())
    assert list(res.columns) == ["model", "time_point", *BASE[1:]]
    assert len(res) == 3 * 2 * 2 and set(res["time_point"]) == {0, 1, 2}
    assert (res["n_train"] + res["n_test"] == 32).all()
    assert_no_leak()
    for _, train, test in LOG:
        assert len(train) + len(test) == 32


def test_summarize_means_over_folds_and_seeds():
    res = pd.DataFrame({
        "model": ["a", "a", "b", "b"], "setting": ["x", "x", "x", "y"],
        "fold": [0, 1, 0, 0], "seed": [1, 1, 1, 1],
        "balanced_accuracy": [0.6, 0.8, 0.5, 0.7], "precision": [0.4, 0.6, 0.5, 0.9],
    })
    out = summarize(res)
    assert list(out[["model", "setting"]].itertuples(index=False, name=None)) == [
        ("a", "x"), ("b", "x"), ("b", "y")
    ]
    np.testing.assert_allclose(out["balanced_accuracy_mean"], [0.7, 0.5, 0.7])
    np.testing.assert_allclose(out["balanced_accuracy_std"].iloc[0], np.std([0.6, 0.8], ddof=1))
    assert list(out["n"]) == [2, 1, 1]
    assert list(summarize(res, by="model")["n"]) == [2, 2]
    with pytest.raises(ValueError, match="by"):
        summarize(res, by="colour")
    with pytest.raises(TypeError, match="DataFrame"):
        summarize(res.to_dict())


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda X, y, g: compare_models(X[:, 0], y), ValueError, "shape"),
        (lambda X, y, g: compare_models(X, y[:-1]), ValueError, "y must"),
        (lambda X, y, g: compare_models(X, y % 1), ValueError, "two fates"),
        (lambda X, y, g: compare_models(X, np.arange(len(y)) % 3), ValueError, "classes"),
        (lambda X, y, g: compare_models(X, y, g[:-1]), ValueError, "groups"),
        (lambda X, y, g: compare_models(X, y, seeds=()), ValueError, "seeds"),
        (lambda X, y, g: compare_models(X, y, seeds="42"), ValueError, "seeds"),
        (lambda X, y, g: compare_models(X, y, cv=1), ValueError, "cv"),
        (lambda X, y, g: compare_models(X, y, cv="five"), TypeError, "cv"),
        (lambda X, y, g: compare_models(X, y, n_jobs=0), ValueError, "n_jobs"),
        (lambda X, y, g: compare_models(X, y, models=["SVM"]), ValueError, "models"),
        (lambda X, y, g: compare_models(X, y, baseline_epochs=0), ValueError, "epochs"),
        (lambda X, y, g: compare_models(X, y, aae=FakeAAE(), lambda_kl=1.0),
         TypeError, "lambda_kl"),
        (lambda X, y, g: compare_models(X, y, aae="AAE"), TypeError, "aae"),
        (lambda X, y, g: compare_models(X, y, features=np.ones((3, 2))),
         ValueError, "features"),
        (lambda X, y, g: ablation(X, y, aae=FakeAAE(), settings=["no decoder"]),
         ValueError, "settings"),
        (lambda X, y, g: ablation(X, y, aae=FakeAAE(), settings={"x": {"depth": 2}}),
         ValueError, "depth"),
        (lambda X, y, g: latent_dim_study(X, y, aae=FakeAAE(), latent_dims=(0,)),
         ValueError, "latent_dims"),
        (lambda X, y, g: latent_dim_study(X, y, aae=FakeAAE(), latent_dim=3),
         TypeError, "latent_dim"),
        (lambda X, y, g: label_budget_study(X, y, aae=FakeAAE(), budgets=(1,)),
         ValueError, "budgets"),
        (lambda X, y, g: time_point_study(X, y, [0, 1], aae=FakeAAE()),
         ValueError, "time_point"),
    ],
)
def test_invalid_arguments_fail_before_any_work(nuclei, call, exc, match):
    X, y, g = nuclei
    with pytest.raises(exc, match=match):
        call(X, y, g)
    assert not LOG


@pytest.mark.slow
def test_studies_with_the_real_cellfateaae():
    X, y = make_nuclei(80, random_state=1)
    groups = np.arange(80) // 2
    tiny = dict(stage1_epochs=1, min_epochs=1, max_epochs=2)
    res = compare_models(X, y, groups, cv=2, baseline_epochs=2,
                         models=["CellFateAAE", "CellFateAAE (no engineering)"], **tiny)
    assert list(res.columns) == ["model", "features", *BASE[1:]] and len(res) == 4
    res = ablation(X, y, groups, cv=2, settings=["full", "no contrastive"], **tiny)
    assert list(res["setting"].unique()) == ["full", "no contrastive"]
    res = latent_dim_study(X, y, groups, cv=2, seeds=(42,), latent_dims=(3,), **tiny)
    assert res["max_abs_correlation"].between(0, 1).all()
    res = label_budget_study(X, y, groups, cv=2, budgets=(30,), **tiny)
    assert set(res["n_labelled"]) == {30}
    res = time_point_study(X, y, np.arange(80) % 2, groups, cv=2, **tiny)
    assert set(res["time_point"]) == {0, 1}


def test_summarize_keeps_the_best_pair_in_one_group():
    res = pd.DataFrame({
        "model": ["best", "best", "pair", "pair", "pair", "pair"],
        "features": ["a + b", "a + c", "a + b", "a + c", "a + b", "a + c"],
        "fold": [0, 1, 0, 0, 1, 1], "seed": 42,
        "balanced_accuracy": [0.7, 0.6, 0.7, 0.5, 0.6, 0.6], "precision": 0.5,
    })
    out = summarize(res)
    assert list(out["features"]) == ["chosen per fold", "a + b", "a + c"]
    np.testing.assert_allclose(out["balanced_accuracy_mean"], [0.65, 0.65, 0.55])


def test_pair_models_need_two_features(nuclei):
    X, y, _ = nuclei
    one = X.reshape(len(X), -1).sum(1, keepdims=True)
    with pytest.raises(ValueError, match="two features"):
        compare_models(X, y, cv=2, features=one, models=["SimpleClassifier (pair)"])
