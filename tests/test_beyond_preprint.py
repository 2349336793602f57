"""Beyond the preprint: SeedEnsemble, the variants study and its example.

The SeedEnsemble tests and one run of the study fit the real CellFateAAE with
a tiny schedule (two epochs, no augmentation, 12 x 12 crops). The other study
tests use ``TinyAAE``, a stand-in with CellFateAAE's interface (a seeded
random projection of the pixels and a logistic regression) that fits in
milliseconds and logs what it was fitted on.
"""

import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ai4cellfate import studies
from ai4cellfate.datasets import make_nuclei
from ai4cellfate.ensemble import SeedEnsemble
from ai4cellfate.studies import (BEYOND_VARIANTS, beyond_preprint, make_extended_latent,
                                 make_hybrid, spread)

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(stage1_epochs=1, min_epochs=0, max_epochs=1, augment=False, batch_size=16,
            verbose=0)
COLUMNS = ["model", "variant", "dataset", "fold", "seed", "balanced_accuracy", "precision",
           "auc", "balanced_precision", "fit_seconds", "latent_abs_corr", "latent_kl",
           "inner_balanced_accuracy", "chosen", "n_train", "n_test"]
FITS = []  # (n_samples, got groups) of every TinyAAE fit


def tiny_aae(**params):
    from ai4cellfate import CellFateAAE

    return CellFateAAE(**{**TINY, **params})


@pytest.fixture(autouse=True)
def quiet_latent_warnings():
    # Two-epoch fits on 12 x 12 crops are far from the prior: expected here.
    from ai4cellfate.estimator import LatentWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LatentWarning)
        FITS.clear()
        yield


@pytest.fixture(scope="module")
def crops():
    """64 balanced 12 x 12 nuclei, lineages of two cells."""
    X, y = make_nuclei(64, image_size=12, random_state=0)
    return X, y, np.arange(64) // 2


class TinyAAE(ClassifierMixin, TransformerMixin, BaseEstimator):
    def __init__(self, latent_dim=2, lambda_contra=6.0, random_state=None):
        self.latent_dim = latent_dim
        self.lambda_contra = lambda_contra
        self.random_state = random_state

    def fit(self, X, y, groups=None):
        A = np.asarray(X, dtype=float).reshape(len(X), -1)
        rng = np.random.default_rng(self.random_state)
        self.proj_ = rng.normal(size=(A.shape[1], self.latent_dim))
        self.clf_ = LogisticRegression().fit(A @ self.proj_, y)
        self.classes_ = self.clf_.classes_
        FITS.append((len(X), groups is not None))
        return self

    def transform(self, X):
        return np.asarray(X, dtype=float).reshape(len(X), -1) @ self.proj_

    def predict_proba(self, X):
        return self.clf_.predict_proba(self.transform(X))

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


# --------------------------------------------------------------------------
# SeedEnsemble
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ensemble(crops):
    X, y, _ = crops
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SeedEnsemble(tiny_aae(), n_estimators=2, random_state=0).fit(X, y)


def test_seed_ensemble_is_the_mean_of_independent_members(ensemble, crops):
    X, y, _ = crops
    seeds = ensemble.seeds_.tolist()
    assert len(set(seeds)) == 2 and len(ensemble.estimators_) == 2
    # The same models fitted on their own, outside the ensemble.
    members = [tiny_aae(random_state=s).fit(X, y) for s in seeds]
    expected = np.mean([m.predict_proba(X) for m in members], axis=0)
    proba = ensemble.predict_proba(X)
    np.testing.assert_allclose(proba, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(ensemble.predict(X),
                                  ensemble.classes_[np.argmax(expected, axis=1)])
    np.testing.assert_array_equal(ensemble.classes_, members[0].classes_)
    assert ensemble.n_features_in_ == members[0].n_features_in_ == 144
    assert not hasattr(ensemble, "transform")  # members' latents do not align
    # pickling keeps the members
    again = pickle.loads(pickle.dumps(ensemble))
    np.testing.assert_allclose(again.predict_proba(X[:5]), proba[:5], rtol=1e-6)


def test_seed_ensemble_is_reproducible(ensemble, crops):
    X, y, _ = crops
    same = SeedEnsemble(tiny_aae(), n_estimators=2, random_state=0).fit(X, y)
    np.testing.assert_array_equal(same.seeds_, ensemble.seeds_)
    np.testing.assert_allclose(same.predict_proba(X), ensemble.predict_proba(X),
                               rtol=1e-5, atol=1e-6)
    from ai4cellfate.ensemble import _member_seeds

    assert _member_seeds(1, 2) != ensemble.seeds_.tolist()
    assert _member_seeds(0, 2) == ensemble.seeds_.tolist()
    assert len(set(_member_seeds(0, 50))) == 50


def test_seed_ensemble_grid_search_over_member_parameters(crops):
    X, y, _ = crops
    ens = SeedEnsemble(tiny_aae(), n_estimators=2, random_state=0)
    search = GridSearchCV(ens, {"estimator__lambda_contra": [0.0, 6.0]}, cv=2,
                          scoring="balanced_accuracy")
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 2
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    best = search.best_params_["estimator__lambda_contra"]
    assert {m.lambda_contra for m in search.best_estimator_.estimators_} == {best}
    assert search.predict_proba(X[:4]).shape == (4, 2)


def test_seed_ensemble_clone_params_pipeline_and_jobs():
    from ai4cellfate import CellFateAAE, SeedEnsemble as Exported

    assert Exported is SeedEnsemble
    ens = SeedEnsemble(CellFateAAE(lambda_contra=3.0), n_estimators=3, random_state=7)
    copy = clone(ens)
    assert copy.estimator is not ens.estimator
    assert copy.get_params()["estimator__lambda_contra"] == 3.0
    assert {k: v for k, v in copy.get_params(deep=False).items() if k != "estimator"} == {
        "n_estimators": 3, "random_state": 7, "n_jobs": None}
    copy.set_params(estimator__lambda_contra=0.0)
    assert copy.estimator.lambda_contra == 0.0 and ens.estimator.lambda_contra == 3.0
    assert isinstance(SeedEnsemble()._template(), CellFateAAE)

    # any seeded probabilistic classifier, inside a Pipeline and a grid search
    rng = np.random.default_rng(0)
    F = rng.normal(size=(120, 4))
    t = np.where(F[:, 0] + F[:, 1] > 0, "divides", "stays")
    sgd = SGDClassifier(loss="log_loss", max_iter=20, tol=None)
    pipe = Pipeline([("scale", StandardScaler()),
                     ("ens", SeedEnsemble(sgd, n_estimators=3, random_state=0))])
    search = GridSearchCV(pipe, {"ens__estimator__alpha": [1e-4, 1e-2]}, cv=2).fit(F, t)
    fitted = search.best_estimator_.named_steps["ens"]
    assert [m.random_state for m in fitted.estimators_] == fitted.seeds_.tolist()
    assert set(search.predict(F)) <= {"divides", "stays"}
    one = SeedEnsemble(sgd, n_estimators=3, random_state=0).fit(F, t)
    two = SeedEnsemble(sgd, n_estimators=3, random_state=0, n_jobs=2).fit(F, t)
    np.testing.assert_allclose(one.predict_proba(F), two.predict_proba(F))
    expected = np.mean([clone(sgd).set_params(random_state=s).fit(F, t).predict_proba(F)
                        for s in one.seeds_], axis=0)
    np.testing.assert_allclose(one.predict_proba(F), expected)


class NeverFit(ClassifierMixin, BaseEstimator):
    def __init__(self, random_state=None):
        self.random_state = random_state

    def fit(self, X, y):
        raise AssertionError("fitted although the parameters are invalid")

    def predict_proba(self, X):  # pragma: no cover
        raise AssertionError


@pytest.mark.parametrize("bad", [0, -2, 1.5, "3", True, None])
def test_bad_n_estimators_fail_before_fitting(bad):
    X, y = np.zeros((6, 2)), np.array([0, 1] * 3)
    with pytest.raises(ValueError, match=r"n_estimators must be an int >= 1, got "):
        SeedEnsemble(NeverFit(), n_estimators=bad).fit(X, y)


def test_bad_estimator_and_settings():
    X, y = np.zeros((6, 2)), np.array([0, 1] * 3)

    class NoSeed(NeverFit):
        def __init__(self):
            pass

    with pytest.raises(TypeError, match="random_state parameter"):
        SeedEnsemble(NoSeed(), n_estimators=2).fit(X, y)
    with pytest.raises(TypeError, match="predict_proba"):
        SeedEnsemble(StandardScaler()).fit(X, y)
    with pytest.raises(ValueError, match="n_jobs"):
        SeedEnsemble(NeverFit(), n_jobs=0).fit(X, y)
    with pytest.raises(ValueError, match="random_state"):
        SeedEnsemble(NeverFit(), random_state="seed").fit(X, y)


# --------------------------------------------------------------------------
# beyond_preprint
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_beyond_preprint_with_the_real_model(crops):
    X, y, groups = crops
    res = beyond_preprint(X, y, groups, cv=2, seeds=(0,), n_ensemble=2, baseline_epochs=1,
                          aae_params=TINY)
    assert list(res.columns) == COLUMNS
    names = list(BEYOND_VARIANTS) + ["LogisticRegression", "SimpleClassifier (best pair)",
                                     "selected"]
    assert list(res["variant"].unique()) == names
    assert len(res) == len(names) * 2 and (res.groupby("variant").size() == 2).all()
    assert (res["n_train"] + res["n_test"] == len(y)).all()
    for col in ("balanced_accuracy", "precision", "auc", "balanced_precision"):
        assert res[col].between(0, 1).all(), col
    assert (res["fit_seconds"] > 0).all()
    image = res[res["variant"].isin(BEYOND_VARIANTS)]
    assert image["latent_abs_corr"].between(0, 1).all() and (image["latent_kl"] >= 0).all()
    assert image["inner_balanced_accuracy"].between(0, 1).all()
    base = res[res["model"].isin(["LogisticRegression", "SimpleClassifier"])]
    assert base[["latent_abs_corr", "latent_kl"]].isna().all().all()
    assert dict(zip(res["variant"], res["model"]))["hybrid"] == "CellFateAAE + RegionFeatures"
    assert " + " in res.loc[res["variant"] == "SimpleClassifier (best pair)", "chosen"].iloc[0]
    # the selected row is the chosen variant's row, with the selection's cost
    for _, row in res[res["variant"] == "selected"].iterrows():
        assert row["chosen"] in BEYOND_VARIANTS
        own = res[(res["variant"] == row["chosen"]) & (res["fold"] == row["fold"])].iloc[0]
        assert row["balanced_accuracy"] == own["balanced_accuracy"]
        assert row["fit_seconds"] > own["fit_seconds"]
    summary = studies.summarize(res)
    assert list(summary["variant"]) == names
    assert {"auc_mean", "balanced_precision_mean", "latent_kl_mean",
            "fit_seconds_mean"} <= set(summary.columns)


def test_rows_seeds_datasets_and_groups(crops):
    X, y, groups = crops
    X2, y2 = make_nuclei(64, image_size=16, random_state=0)  # the same cells, larger
    assert np.array_equal(y, y2)
    res = beyond_preprint(X, y, groups, cv=3, seeds=(0, 1), aae=TinyAAE(), n_ensemble=3,
                          baselines=["LogisticRegression"], datasets={"16 px": (X2, y, groups)})
    names = list(BEYOND_VARIANTS) + ["16 px", "LogisticRegression", "selected"]
    assert list(res["variant"].unique()) == names
    assert len(res) == len(names) * 3 * 2
    assert set(res.loc[res["variant"] == "16 px", "dataset"]) == {"16 px"}
    assert set(res.loc[res["variant"] != "16 px", "dataset"]) <= {"default", "16 px"}
    assert set(res["seed"]) == {0, 1} and set(res["fold"]) == {0, 1, 2}
    # every autoencoder fit, in the ensemble and the hybrid too, got the groups
    assert FITS and all(got for _, got in FITS)
    # latent_dim variants really have 3 and 5 latent features (|corr| over pairs exists)
    assert res.loc[res["variant"] == "latent_dim 5", "latent_abs_corr"].notna().all()
    # the ensemble of 3 members fits 3 models per fold, seed and stage, the 2-D + 3
    # extra variant two
    assert len(FITS) == 3 * 2 * 2 * (len(BEYOND_VARIANTS) + 1 + 2 + 1)
    # a seed changes the stand-in's projection, so the seeds give different scores
    pre = res[res["variant"] == "preprint"]
    assert pre.groupby("fold")["auc"].nunique().max() == 2
    table = spread(res, reference="LogisticRegression")
    assert list(table["variant"]) == names
    ref = table.set_index("variant").loc["LogisticRegression"]
    assert ref["diff_mean"] == 0 and ref["wins"] == 0 and ref["n_pairs"] == 6


def test_selection_never_sees_the_test_folds(crops, monkeypatch):
    X, y, groups = crops
    folds = studies._folds(2, y, groups, random_state=0)
    seen = []
    fit_variant = studies._fit_variant

    def spy(spec, X_, y_, groups_, index, seed):
        seen.append(np.asarray(index))
        return fit_variant(spec, X_, y_, groups_, index, seed)

    monkeypatch.setattr(studies, "_fit_variant", spy)
    kw = dict(cv=folds, seeds=(0, 1, 2), aae=TinyAAE(), n_ensemble=2,
              baselines=["LogisticRegression"])
    res = beyond_preprint(X, y, groups, **kw)
    # every fit (outer and inner) used the training part of a fold only
    trains = [set(train.tolist()) for train, _ in folds]
    assert seen and all(any(set(ix.tolist()) <= t for t in trains) for ix in seen)
    # the choice is the best inner-validation score (ties: the earlier variant)
    variants = res[res["variant"].isin(BEYOND_VARIANTS)]
    for (fold, seed), rows in variants.groupby(["fold", "seed"]):
        scores = rows.set_index("variant")["inner_balanced_accuracy"].reindex(BEYOND_VARIANTS)
        chosen = res[(res["variant"] == "selected") & (res["fold"] == fold)
                     & (res["seed"] == seed)]["chosen"].item()
        assert chosen == scores.idxmax()

    # Different labels in the test part of fold 0: fold 0's choice does not move.
    test0 = folds[0][1]
    y_other = y.copy()
    y_other[test0] = 1 - y_other[test0]
    other = beyond_preprint(X, y_other, groups, **kw)

    def fold0(r, variant):
        return r[(r["variant"] == variant) & (r["fold"] == 0)].set_index(["variant", "seed"])

    inner = ["inner_balanced_accuracy"]
    for variant in BEYOND_VARIANTS:
        pd.testing.assert_frame_equal(fold0(res, variant)[inner], fold0(other, variant)[inner])
    pd.testing.assert_series_equal(fold0(res, "selected")["chosen"],
                                   fold0(other, "selected")["chosen"])
    # ... while its test scores did change: the test labels were used to score only
    assert not np.allclose(fold0(res, "selected")["balanced_accuracy"],
                           fold0(other, "selected")["balanced_accuracy"])


def test_reselect_over_pieces_equals_one_run_of_all_variants(crops):
    X, y, groups = crops
    kw = dict(cv=2, seeds=(0, 1), aae=TinyAAE(), n_ensemble=2,
              baselines=["LogisticRegression"])
    whole = beyond_preprint(X, y, groups, variants=["preprint", "latent_dim 3", "hybrid"],
                            **kw)
    first = beyond_preprint(X, y, groups, variants=["preprint"], **kw)
    second = beyond_preprint(X, y, groups, variants=["latent_dim 3", "hybrid"], baselines=(),
                             **{k: v for k, v in kw.items() if k != "baselines"})
    merged = studies.reselect(pd.concat([first, second], ignore_index=True))
    assert list(merged.columns) == list(whole.columns)
    key = ["variant", "fold", "seed"]
    got = merged.sort_values(key).reset_index(drop=True)
    want = whole.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got.drop(columns="fit_seconds"),
                                  want.drop(columns="fit_seconds"), check_dtype=False)
    selected = got["variant"] == "selected"
    assert got.loc[selected, "fit_seconds"].isna().all()
    assert got.loc[~selected, "fit_seconds"].tolist() != []
    # each piece alone chose among its own variants; reselect chose among all three,
    # and somewhere a variant of the second piece beat the first's
    assert set(first.loc[first["variant"] == "selected", "chosen"]) == {"preprint"}
    assert "latent_dim 3" in set(got.loc[selected, "chosen"])
    # the order of variants breaks ties: a tie everywhere picks the first named
    tie = merged.copy()
    tie["inner_balanced_accuracy"] = np.where(tie["variant"] == "LogisticRegression",
                                              np.nan, 0.5)
    assert set(studies.reselect(tie, variants=["hybrid", "preprint"])
               .query("variant == 'selected'")["chosen"]) == {"hybrid"}
    with pytest.raises(ValueError, match="variant 'preprint' twice for fold 0"):
        studies.reselect(pd.concat([first, first, second]))
    with pytest.raises(ValueError, match="not run on the same folds and seeds"):
        studies.reselect(pd.concat([first, second[second["seed"] == 0]]))
    no_inner = beyond_preprint(X, y, groups, variants=["latent_dim 5"], baselines=(),
                               select=False, **{k: v for k, v in kw.items()
                                                if k != "baselines"})
    with pytest.raises(ValueError, match=r"\['latent_dim 5'\] have no inner-validation"):
        studies.reselect(pd.concat([first, no_inner]))
    with pytest.raises(ValueError, match="variants must name variants"):
        studies.reselect(first, variants=["nope"])
    with pytest.raises(ValueError, match="lack column"):
        studies.reselect(first.drop(columns="inner_balanced_accuracy"))


def test_custom_pipelines_get_the_seed_everywhere_and_groups_when_they_ask(crops):
    X, y, groups = crops
    stacks = np.stack([X, X[::-1]], axis=-1)  # two "frames"
    trajectory = studies.make_latent_trajectory(TinyAAE())
    spec = studies._variant_spec("trajectory", "Pipeline", trajectory)
    assert spec["groups"] == "route"
    assert set(spec["seed_params"]) == {"latents__aae__random_state",
                                        "classifier__random_state"}
    est, _ = studies._fit_variant(spec, stacks, y, groups, np.arange(len(y)), seed=7)
    assert [got for _, got in FITS] == [True]
    assert est.named_steps["latents"].aae_.random_state == 7
    assert est.named_steps["classifier"].random_state == 7
    # a Pipeline that asks for no groups is fitted without them
    plain = Pipeline([("aae", TinyAAE()), ("clf", LogisticRegression())])
    spec = studies._variant_spec("plain", "Pipeline", plain)
    assert spec["groups"] is None
    est, _ = studies._fit_variant(spec, X, y, groups, np.arange(len(y)), seed=3)
    assert FITS[-1] == (len(y), False) and est.named_steps["aae"].random_state == 3
    # CellFateAAE itself takes groups in fit
    assert studies._variant_spec("p", "CellFateAAE", tiny_aae())["groups"] == "fit"
    with pytest.raises(TypeError, match="aae must be an unfitted transformer"):
        studies.make_latent_trajectory(LogisticRegression)
    with pytest.raises(TypeError, match="classifier must be an unfitted classifier"):
        studies.make_latent_trajectory(TinyAAE(), classifier=StandardScaler())


def test_custom_variants_and_no_selection(crops):
    X, y, groups = crops
    res = beyond_preprint(X, y, groups, cv=2, seeds=0, aae=TinyAAE(),
                          variants={"preprint": None, "wide": TinyAAE(latent_dim=8)},
                          baselines=(), select=False)
    assert list(res["variant"].unique()) == ["preprint", "wide"]
    assert set(res["model"]) == {"TinyAAE"} and res["inner_balanced_accuracy"].isna().all()
    assert len(res) == 4


def test_make_hybrid_routes_groups_to_the_autoencoder(crops):
    X, y, groups = crops
    hybrid = make_hybrid(TinyAAE(random_state=0))
    with sklearn.config_context(enable_metadata_routing=True):
        clone(hybrid).fit(X, y, groups=groups)
    clone(hybrid).fit(X, y)  # without routing: no groups, still fits
    assert [got for _, got in FITS] == [True, False]
    assert [name for name, _ in hybrid.steps] == ["features", "scale", "classifier"]
    fitted = hybrid.fit(X, y)
    assert fitted[:-2].transform(X).shape == (len(X), 2 + 12)  # latent + region features
    assert fitted.predict_proba(X[:3]).shape == (3, 2)
    assert hybrid.get_params()["features__latent__random_state"] == 0


def test_make_extended_latent_adds_a_second_latent_for_the_classifier_only(crops):
    X, y, groups = crops
    model = make_extended_latent(TinyAAE(random_state=0), extra_dims=3)
    with sklearn.config_context(enable_metadata_routing=True):
        fitted = clone(model).fit(X, y, groups=groups)
    assert [got for _, got in FITS] == [True, True]  # both autoencoders got the groups
    latent, extra = (t for _, t in fitted.named_steps["features"].transformer_list)
    assert latent.latent_dim == 2 and extra.latent_dim == 3
    # the classifier's features: the 2-D latent, then the 3 extra dimensions
    expected = np.hstack([TinyAAE(random_state=0).fit(X, y).transform(X),
                          TinyAAE(latent_dim=3, random_state=0).fit(X, y).transform(X)])
    np.testing.assert_allclose(fitted[:-2].transform(X), expected)
    scaled = (expected - expected.mean(0)) / expected.std(0)
    clf = LogisticRegression(class_weight="balanced", max_iter=2000).fit(scaled, y)
    np.testing.assert_allclose(fitted.predict_proba(X), clf.predict_proba(scaled), rtol=1e-6)
    # the study reports the interpretable 2-D latent's |corr| and KL
    Z = studies._latents_of(fitted, X)
    assert len(Z) == 1 and Z[0].shape == (len(X), 2)
    params = model.get_params()
    assert params["features__latent__random_state"] == params["features__extra__random_state"]
    own = make_extended_latent(TinyAAE(), extra=TinyAAE(latent_dim=4, lambda_contra=0.0))
    assert own.get_params()["features__extra__latent_dim"] == 4
    from ai4cellfate import CellFateAAE

    default = make_extended_latent()
    assert isinstance(default.named_steps["features"].transformer_list[0][1], CellFateAAE)
    with pytest.raises(ValueError, match="extra_dims must be an int >= 1, got 0"):
        make_extended_latent(TinyAAE(), extra_dims=0)
    with pytest.raises(TypeError, match="extra must be an unfitted transformer"):
        make_extended_latent(TinyAAE(), extra=LogisticRegression())
    with pytest.raises(TypeError, match="aae must be an unfitted transformer"):
        make_extended_latent(LogisticRegression())
    with pytest.raises(TypeError, match="classifier must be an unfitted classifier"):
        make_extended_latent(TinyAAE(), classifier=StandardScaler())


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(variants=["nope"]), ValueError, "variants must name"),
        (dict(variants={"mine": StandardScaler()}), TypeError, "predict_proba"),
        (dict(variants=["selected"]), ValueError, "reserved"),
        (dict(aae_params={"latent_dim": 3}), ValueError, "latent_dim"),
        (dict(aae_params={"nope": 1}), ValueError, "unknown"),
        (dict(aae_params=[1]), TypeError, "aae_params"),
        (dict(n_ensemble=0), ValueError, "n_ensemble"),
        (dict(kl_bins=1), ValueError, "kl_bins"),
        (dict(select="yes"), TypeError, "select"),
        (dict(baselines=["nope"]), ValueError, "baselines"),
        (dict(datasets=[1]), TypeError, "datasets"),
        (dict(datasets={"hybrid": None}), ValueError, "already the name"),
        (dict(datasets={"short": np.zeros((3, 12, 12))}), ValueError, "same samples"),
        (dict(variants=[], baselines=()), ValueError, "nothing to run"),
    ],
)
def test_invalid_arguments_fail_before_any_fit(crops, kwargs, exc, match):
    X, y, groups = crops
    with pytest.raises(exc, match=match):
        beyond_preprint(X, y, groups, cv=2, seeds=0, aae=TinyAAE(), **kwargs)
    assert not FITS


def test_datasets_must_hold_the_same_samples(crops):
    X, y, groups = crops
    with pytest.raises(ValueError, match="labels that differ"):
        beyond_preprint(X, y, groups, aae=TinyAAE(), datasets={"d": (X, 1 - y, groups)})
    with pytest.raises(ValueError, match="groups that differ"):
        beyond_preprint(X, y, groups, aae=TinyAAE(), datasets={"d": (X, y, groups[::-1])})
    assert not FITS


def test_spread_separates_folds_from_seeds():
    res = pd.DataFrame({
        "variant": ["a"] * 4 + ["b"] * 4, "fold": [0, 0, 1, 1] * 2, "seed": [0, 1] * 4,
        "balanced_accuracy": [0.6, 0.8, 0.8, 1.0, 0.7, 0.7, 0.9, 0.9],
    })
    out = spread(res, by="variant", reference="b").set_index("variant")
    np.testing.assert_allclose(out.loc["a", "mean"], 0.8)
    np.testing.assert_allclose(out.loc["a", "std_over_folds"], np.std([0.7, 0.9], ddof=1))
    np.testing.assert_allclose(out.loc["a", "std_over_seeds"], np.std([0.6, 0.8], ddof=1))
    np.testing.assert_allclose(out.loc["b", "std_over_seeds"], 0.0)
    np.testing.assert_allclose(out.loc["a", "diff_mean"], 0.0, atol=1e-12)
    assert out.loc["a", "wins"] == 0.5 and out.loc["a", "n_pairs"] == 4
    with pytest.raises(ValueError, match="reference"):
        spread(res, reference="c")
    with pytest.raises(ValueError, match="fold and seed"):
        spread(res.drop(columns="seed"))


# --------------------------------------------------------------------------
# The example
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_example_quick(tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg",
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "beyond_preprint.py"), "--quick",
         "-o", str(tmp_path / "out")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Chosen by inner validation" in proc.stdout
    res = pd.read_csv(tmp_path / "out" / "beyond_preprint.csv")
    assert list(res.columns) == COLUMNS
    assert {"selected", "hybrid", "seed ensemble", "24 px crops"} <= set(res["variant"])
    for name in ("beyond_preprint_summary.csv", "beyond_preprint_spread.csv"):
        assert (tmp_path / "out" / name).stat().st_size > 100


@pytest.fixture
def example(monkeypatch):
    """The example as a module; its main() logging set-up is undone afterwards."""
    import logging

    logger = logging.getLogger("ai4cellfate")
    monkeypatch.setattr(logger, "handlers", list(logger.handlers))
    monkeypatch.setattr(logger, "level", logger.level)
    return _example_module()


def _example_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "beyond_preprint_example", ROOT / "examples" / "beyond_preprint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Stop(Exception):
    pass


def _study_arguments(example, monkeypatch, flags):
    """What the example passes to beyond_preprint (stopped there), on no data."""
    seen = {}

    def fake(X, y, groups, **kwargs):
        seen.update(kwargs)
        raise _Stop

    monkeypatch.setattr(example.studies, "beyond_preprint", fake)
    monkeypatch.setattr(example, "synthetic", lambda n, size: (None, None, None, {}))
    with pytest.raises(_Stop):
        example.main(flags)
    return seen


@pytest.mark.parametrize("flags, expected", [
    ([], None),
    (["--max-epochs", "12"], {"max_epochs": 12}),
    (["--stage1-epochs", "4", "--min-epochs", "6", "--max-epochs", "20"],
     {"stage1_epochs": 4, "min_epochs": 6, "max_epochs": 20}),
])
def test_example_schedule_flags_reach_every_autoencoder(flags, expected, example, monkeypatch):
    assert _study_arguments(example, monkeypatch, flags)["aae_params"] == expected
    # --quick keeps its tiny settings, the flags override them
    assert (_study_arguments(example, monkeypatch, ["--quick", *flags])["aae_params"]
            == {**example.QUICK_AAE, **(expected or {})})


@pytest.mark.parametrize("flags, expected", [
    ([], None),
    (["--variants"], []),
    (["--variants", "hybrid", "preprint"], ["hybrid", "preprint"]),
])
def test_example_variants_flag(flags, expected, example, monkeypatch):
    assert _study_arguments(example, monkeypatch, flags)["variants"] == expected


@pytest.mark.parametrize("flags, match", [
    (["--max-epochs", "0"], "--max-epochs must be >= 1, got 0"),
    (["--min-epochs", "-1"], "--min-epochs must be >= 0, got -1"),
    (["--stage1-epochs", "-2"], "--stage1-epochs must be >= 0, got -2"),
])
def test_example_bad_schedule_fails_before_any_work(flags, match, example, monkeypatch, capsys):
    monkeypatch.setattr(example, "synthetic", lambda *a: pytest.fail("data were made"))
    with pytest.raises(SystemExit) as exit_:
        example.main(flags)
    assert exit_.value.code == 2
    assert match in capsys.readouterr().err


def test_example_ctc_crops_are_the_same_cells_in_the_same_order(tmp_path):
    from test_cli import _write_tiny_ctc

    example = _example_module()
    root = _write_tiny_ctc(tmp_path / "ctc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        X, y, groups, extra = example.ctc(root, "01", 3, True, [10.0, 16.0], crop_size=20,
                                          output_size=10, pixel_size=0.5)
    assert list(extra) == ["full-resolution crops", "10 um crops", "16 um crops"]
    assert X.shape[1:] == (10, 10) and len(X) == len(y) == len(groups) > 4
    assert set(np.unique(y)) == {0, 1}
    for name, shape in [("full-resolution crops", (20, 20)), ("10 um crops", (10, 10)),
                        ("16 um crops", (10, 10))]:
        Xo, yo, go = extra[name]
        assert Xo.shape == (len(y), *shape)
        assert np.array_equal(yo, y) and np.array_equal(go, groups)
    # 10 um at 0.5 um per pixel is the main 20-pixel window: the same crops.
    np.testing.assert_allclose(extra["10 um crops"][0], X, atol=1e-5)
    # The full-resolution crops binned 2 x 2 show the main crops' cells: each one's
    # nearest main crop (standardised, so per-crop intensity scaling drops out) is its
    # own (or ties with it: a cell that does not change gives equal crops).
    full = extra["full-resolution crops"][0]
    binned = full.reshape(len(y), 10, 2, 10, 2).mean(axis=(2, 4)).reshape(len(y), -1)

    def standard(a):
        a = a.reshape(len(a), -1)
        return (a - a.mean(1, keepdims=True)) / a.std(1, keepdims=True)

    distances = ((standard(binned)[:, None] - standard(X)[None]) ** 2).sum(-1)
    own = distances[np.arange(len(y)), np.arange(len(y))]
    assert np.all(own <= distances.min(axis=1) + 1e-3)
    assert np.all(own < np.median(distances, axis=1))  # the crops are not all alike


def test_example_ctc_temporal_context(tmp_path):
    from test_cli import _write_tiny_ctc

    from ai4cellfate.datasets import load_ctc, temporal_context

    example = _example_module()
    root = _write_tiny_ctc(tmp_path / "ctc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        X, y, groups, extra = example.ctc(root, "01", 3, False, crop_size=20,
                                          output_size=10, context=2)
        main = load_ctc(root, "01", horizon=3, crop_size=20, output_size=10)
    (name,) = extra
    assert name == "frame t before + t (lag <= 2)"
    Xc, yc, gc = extra[name]
    assert Xc.shape == (len(y), 10, 10, 2) and np.array_equal(yc, y)
    assert np.array_equal(gc, groups)
    # every model runs on the cells that have an earlier frame: fewer than all
    assert len(y) == len(temporal_context(main, max_lag=2)) < len(main)
    # the last channel is the cell's own crop at t, the main dataset's crop
    np.testing.assert_array_equal(Xc[..., 1], X)


def test_example_context_mode_runs_every_model_on_the_stacks(tmp_path, example, monkeypatch):
    from test_cli import _write_tiny_ctc

    root = _write_tiny_ctc(tmp_path / "ctc")
    seen = {}
    real = example.studies.beyond_preprint

    def spy(X, y, groups, **kwargs):
        seen.update(X=X, y=y, **kwargs)
        return real(X, y, groups, **kwargs)

    monkeypatch.setattr(example.studies, "beyond_preprint", spy)
    # 56 tiny crops: the inner fits' training parts are smaller than --quick's batch
    monkeypatch.setattr(example, "QUICK_AAE", {**example.QUICK_AAE, "batch_size": 4})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        example.main([str(root), "--sequence", "01", "--horizon", "3", "--crop-size", "20",
                      "--output-size", "10", "--context", "2", "--quick", "--variants",
                      "preprint", "-o", str(tmp_path / "out")])
    assert seen["X"].shape[1:] == (10, 10, 2)  # the study's crops are the stacks
    variants = seen["variants"]
    assert list(variants) == ["frames as channels", "latent trajectory", "preprint",
                              example.HAND_PICKED_FRAMES]
    assert variants["preprint"] is None  # a built-in, on the stacks
    assert variants["latent trajectory"].get_params()["latents__aae__max_epochs"] == 1
    frame_t = seen["datasets"]["frame t only"][0]
    np.testing.assert_array_equal(frame_t, seen["X"][..., 1])
    res = pd.read_csv(tmp_path / "out" / "beyond_preprint.csv")
    assert {"frames as channels", "latent trajectory", "preprint", "frame t only",
            "LogisticRegression", "selected"} <= set(res["variant"])
    trajectory = res[res["variant"] == "latent trajectory"]
    assert trajectory["balanced_accuracy"].between(0, 1).all()
    assert trajectory["latent_abs_corr"].notna().all()  # the frame-t model's latent
    # the hand-picked baseline on every frame is scored but never selected
    frames = res[res["variant"] == example.HAND_PICKED_FRAMES]
    assert len(frames) == 2 and frames["latent_abs_corr"].isna().all()
    chosen = set(res.loc[res["variant"] == "selected", "chosen"])
    assert chosen and chosen <= {"frames as channels", "latent trajectory", "preprint",
                                 "frame t only"}


@pytest.mark.parametrize("flags, match", [
    (["--crop-um", "0"], "--crop-um sizes must be > 0, got 0"),
    (["--pixel-size", "-1"], "--pixel-size must be > 0, got -1"),
    (["x", "--context", "0"], "--context must be >= 1 (frames), got 0"),
    (["x", "--context", "2", "--context-frames", "0"], "--context-frames must be >= 1"),
    (["--context", "2"], "--context needs a tracked movie"),
])
def test_example_bad_crop_flags_fail_before_any_work(flags, match, example, monkeypatch,
                                                     capsys):
    monkeypatch.setattr(example, "synthetic", lambda *a: pytest.fail("data were made"))
    with pytest.raises(SystemExit):
        example.main(flags)
    assert match in capsys.readouterr().err
