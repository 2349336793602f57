"""Tests of ai4cellfate.metrics: classification metrics, scorers, latent diagnostics."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score, cross_validate

from ai4cellfate.metrics import (
    balanced_accuracy,
    balanced_accuracy_scorer,
    centroid_distance,
    confusion_matrix,
    fate_report,
    fate_scorers,
    kl_divergence_to_normal,
    latent_correlation,
    latent_diagnostics,
    make_precision_scorer,
    max_abs_correlation,
    normality_test,
    precision,
)

# A hand-made case: 6 cells of fate 0, 4 of fate 1.
# counts [[4, 2], [1, 3]]: 4 fate-0 right, 2 called fate 1; 1 fate-1 missed.
Y_TRUE = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
Y_PRED = np.array([0, 0, 0, 0, 1, 1, 0, 1, 1, 1])


# --------------------------------------------------------------------------
# Confusion matrix, balanced accuracy, precision
# --------------------------------------------------------------------------


def test_confusion_matrix_hand_computed():
    np.testing.assert_array_equal(
        confusion_matrix(Y_TRUE, Y_PRED, normalize=None), [[4, 2], [1, 3]]
    )
    np.testing.assert_allclose(
        confusion_matrix(Y_TRUE, Y_PRED), [[4 / 6, 2 / 6], [1 / 4, 3 / 4]]
    )
    np.testing.assert_allclose(
        confusion_matrix(Y_TRUE, Y_PRED, normalize="pred"), [[4 / 5, 2 / 5], [1 / 5, 3 / 5]]
    )
    np.testing.assert_allclose(
        confusion_matrix(Y_TRUE, Y_PRED, normalize="all"), [[0.4, 0.2], [0.1, 0.3]]
    )


def test_confusion_matrix_labels_order_and_absent_class():
    cm = confusion_matrix(Y_TRUE, Y_PRED, labels=[1, 0], normalize=None)
    np.testing.assert_array_equal(cm, [[3, 1], [2, 4]])
    # A class that never truly occurs has an undefined (NaN) normalised row.
    cm = confusion_matrix([0, 0], [0, 1])
    np.testing.assert_allclose(cm[0], [0.5, 0.5])
    assert np.all(np.isnan(cm[1]))
    with pytest.raises(ValueError, match="labels"):
        confusion_matrix(Y_TRUE, Y_PRED, labels=[0])
    with pytest.raises(ValueError, match="normalize"):
        confusion_matrix(Y_TRUE, Y_PRED, normalize="rows")


def test_balanced_accuracy_is_mean_of_normalised_diagonal():
    assert balanced_accuracy(Y_TRUE, Y_PRED) == pytest.approx((4 / 6 + 3 / 4) / 2)
    assert balanced_accuracy(Y_TRUE, Y_PRED) == pytest.approx(
        np.diag(confusion_matrix(Y_TRUE, Y_PRED)).mean()
    )


def test_balanced_accuracy_matches_sklearn(rng):
    for _ in range(5):
        y_true = rng.integers(0, 3, size=60)
        y_pred = rng.integers(0, 3, size=60)
        assert balanced_accuracy(y_true, y_pred) == pytest.approx(
            skm.balanced_accuracy_score(y_true, y_pred)
        )


def test_precision_names_its_class():
    assert precision(Y_TRUE, Y_PRED) == pytest.approx(3 / 5)  # fate 1 by default
    assert precision(Y_TRUE, Y_PRED, pos_label=1) == pytest.approx(3 / 5)
    assert precision(Y_TRUE, Y_PRED, pos_label=0) == pytest.approx(4 / 5)


def test_precision_balanced_reproduces_reference_code():
    # Reference code: class-0 precision from the row-normalised matrix C,
    # C[0, 0] / (C[0, 0] + C[1, 0]) = (4/6) / (4/6 + 1/4) = 8/11.
    assert precision(Y_TRUE, Y_PRED, pos_label=0, balanced=True) == pytest.approx(8 / 11)
    assert precision(Y_TRUE, Y_PRED, pos_label=1, balanced=True) == pytest.approx(
        (3 / 4) / (3 / 4 + 2 / 6)
    )
    # With balanced classes both definitions agree.
    y_true = np.r_[Y_TRUE, np.ones(2, int)]
    y_pred = np.r_[Y_PRED, np.ones(2, int)]
    assert precision(y_true, y_pred, balanced=True) == pytest.approx(
        precision(y_true, y_pred)
    )


def test_precision_matches_sklearn(rng):
    for _ in range(5):
        y_true = rng.integers(0, 2, size=50)
        y_pred = rng.integers(0, 2, size=50)
        for p in (0, 1):
            assert precision(y_true, y_pred, pos_label=p) == pytest.approx(
                skm.precision_score(y_true, y_pred, pos_label=p)
            )


def test_precision_default_label_and_edge_cases():
    # String labels: the second sorted label is the default positive class.
    yt, yp = ["a", "a", "b", "b"], ["a", "b", "b", "b"]
    assert precision(yt, yp) == precision(yt, yp, pos_label="b") == pytest.approx(2 / 3)
    # Boolean labels: True is fate 1.
    assert precision([False, True, True], [True, True, False]) == pytest.approx(0.5)
    # Nothing predicted positive.
    assert precision([0, 1], [0, 0]) == 0.0
    assert np.isnan(precision([0, 1], [0, 0], zero_division=np.nan))
    with pytest.raises(ValueError, match="pos_label"):
        precision([0, 1, 2], [0, 1, 2])
    with pytest.raises(ValueError, match="pos_label"):
        precision(Y_TRUE, Y_PRED, pos_label=2)
    with pytest.raises(TypeError, match="balanced"):
        precision(Y_TRUE, Y_PRED, balanced="yes")


@pytest.mark.parametrize(
    "y_true, y_pred",
    [
        ([1, 1, 1], [1, 1, 1]),  # one class only
        ([0, 0, 1], [0, 2, 1]),  # a predicted class that never occurs
        (["a", "a"], ["a", "b"]),
        ([0, 1, 1], [0, 0, 0]),  # nothing predicted as fate 1
    ],
)
def test_edge_cases_pass_through_sklearn_silently(y_true, y_pred):
    """The sklearn.metrics calls underneath give the documented values, no warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cm = confusion_matrix(y_true, y_pred)
        labels = np.unique(np.r_[y_true, y_pred])
        absent = ~np.isin(labels, y_true)
        assert np.all(np.isnan(cm[absent]))  # rows of absent classes: NaN, not 0
        present = np.diag(cm)[~absent]
        assert balanced_accuracy(y_true, y_pred) == pytest.approx(present.mean())
        for label in labels.tolist():
            for balanced in (False, True):
                value = precision(y_true, y_pred, pos_label=label, balanced=balanced)
                assert 0.0 <= value <= 1.0
        fate_report(y_true, y_pred)


@pytest.mark.parametrize(
    "y_true, y_pred, exc, match",
    [
        ([0, 1, 1], [0, 1], ValueError, "same length"),
        ([0, 1], [0.2, 0.9], ValueError, "y_pred.*probabilities"),
        ([[0, 1], [1, 0]], [0, 1], ValueError, "y_true must be a 1-D"),
        ([0, np.nan], [0, 1], ValueError, "y_true contains NaN"),
        ([], [], ValueError, "empty"),
        ([0, 1], ["a", "b"], TypeError, "one comparable type"),
    ],
)
def test_bad_targets(y_true, y_pred, exc, match):
    with pytest.raises(exc, match=match):
        balanced_accuracy(y_true, y_pred)


def test_fate_report_table():
    report = fate_report(Y_TRUE, Y_PRED)
    assert isinstance(report, pd.DataFrame)
    assert report.index.name == "metric"
    assert list(report.columns) == ["value"]
    v = report["value"]
    assert v["balanced_accuracy"] == pytest.approx(17 / 24)
    assert v["precision_fate0"] == pytest.approx(0.8)
    assert v["precision_fate1"] == pytest.approx(0.6)
    assert v["confusion_true_fate0_pred_fate0"] == pytest.approx(4 / 6)
    assert v["confusion_true_fate0_pred_fate1"] == pytest.approx(2 / 6)
    assert v["confusion_true_fate1_pred_fate0"] == pytest.approx(1 / 4)
    assert v["confusion_true_fate1_pred_fate1"] == pytest.approx(3 / 4)
    assert v["n_fate0"] == 6 and v["n_fate1"] == 4


def test_fate_report_string_labels():
    report = fate_report(["stay", "divide", "divide"], ["stay", "divide", "stay"])
    assert report.loc["precision_divide", "value"] == pytest.approx(1.0)
    assert report.loc["precision_stay", "value"] == pytest.approx(0.5)


# --------------------------------------------------------------------------
# Scorers
# --------------------------------------------------------------------------


def _toy_classification(rng):
    y = np.repeat([0, 1], 40)
    X = rng.normal(size=(80, 2)) + 1.2 * y[:, None]
    return X, y


def test_scorers_match_plain_functions(rng):
    X, y = _toy_classification(rng)
    clf = LogisticRegression().fit(X, y)
    pred = clf.predict(X)
    assert balanced_accuracy_scorer(clf, X, y) == pytest.approx(balanced_accuracy(y, pred))
    assert make_precision_scorer(0)(clf, X, y) == pytest.approx(
        precision(y, pred, pos_label=0)
    )
    assert make_precision_scorer(1, balanced=True)(clf, X, y) == pytest.approx(
        precision(y, pred, balanced=True)
    )


def test_scorers_in_cross_validation(rng):
    X, y = _toy_classification(rng)
    s1 = cross_val_score(LogisticRegression(), X, y, cv=4, scoring=balanced_accuracy_scorer)
    s2 = cross_val_score(LogisticRegression(), X, y, cv=4, scoring="balanced_accuracy")
    np.testing.assert_allclose(s1, s2)
    res = cross_validate(LogisticRegression(), X, y, cv=4, scoring=fate_scorers())
    assert {"test_balanced_accuracy", "test_precision_fate0", "test_precision_fate1"} <= set(res)
    p1 = cross_val_score(LogisticRegression(), X, y, cv=4, scoring="precision")
    np.testing.assert_allclose(res["test_precision_fate1"], p1)
    pickle.loads(pickle.dumps(fate_scorers()))


# --------------------------------------------------------------------------
# Latent diagnostics
# --------------------------------------------------------------------------


def test_kl_divergence_behaviour(rng):
    kl = kl_divergence_to_normal(rng.normal(size=(20000, 2)))
    assert kl.shape == (2,) and np.all(kl < 0.05)
    shifted = kl_divergence_to_normal(rng.normal(loc=2.0, size=(20000, 1)))
    assert shifted[0] > 0.5
    with pytest.raises(ValueError, match="bins"):
        kl_divergence_to_normal(rng.normal(size=(10, 2)), bins=1)


def test_kl_divergence_hand_computed_two_bins():
    # Two bins over [-1, 1]: centres -0.5, 0.5, the sample is 3:1.
    Z = np.array([[-1.0], [-0.9], [-0.8], [1.0]])
    p = np.array([0.75, 0.25])
    q = np.array([0.5, 0.5])  # N(0,1) pdf symmetric at +-0.5
    expected = np.sum(p * np.log(p / q))
    assert kl_divergence_to_normal(Z, bins=2)[0] == pytest.approx(expected, rel=1e-6)


def test_latent_correlation_hand_computed():
    Z = np.array([[1, 1], [2, 3], [3, 2], [4, 4]], dtype=float)
    # deviations (-1.5,-.5,.5,1.5) and (-1.5,.5,-.5,1.5): 4 / sqrt(5 * 5) = 0.8
    np.testing.assert_allclose(latent_correlation(Z), [[1, 0.8], [0.8, 1]])
    assert max_abs_correlation(Z) == pytest.approx(0.8)
    Z[:, 1] *= -1
    assert max_abs_correlation(Z) == pytest.approx(0.8)
    assert latent_correlation(Z)[0, 1] == pytest.approx(-0.8)


def test_latent_correlation_matches_numpy(rng):
    Z = rng.normal(size=(200, 4)) @ rng.normal(size=(4, 4))
    np.testing.assert_allclose(latent_correlation(Z), np.corrcoef(Z.T), atol=1e-12)
    off = np.abs(np.corrcoef(Z.T))[~np.eye(4, dtype=bool)]
    assert max_abs_correlation(Z) == pytest.approx(off.max())


def test_latent_correlation_constant_and_single_dimension(rng):
    Z = np.c_[rng.normal(size=50), np.full(50, 3.0), rng.normal(size=50)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        corr = latent_correlation(Z)
    assert np.isnan(corr[1]).all() and np.isnan(corr[:, 1]).all()
    assert corr[0, 0] == 1.0
    assert np.isfinite(max_abs_correlation(Z))
    assert np.isnan(max_abs_correlation(rng.normal(size=(20, 1))))
    with pytest.raises(ValueError, match="NaN"):
        latent_correlation([[0.0, np.nan], [1.0, 2.0]])


def test_centroid_distance_known():
    # Class 0 around (0, 0), class 1 around (3, 4): distance 5.
    offsets = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], dtype=float)
    Z = np.r_[offsets, offsets + [3, 4]]
    y = np.repeat([0, 1], 4)
    assert centroid_distance(Z, y) == pytest.approx(5.0)
    # Three classes: the closest pair.
    Z3 = np.r_[Z, offsets + [0, 1]]
    y3 = np.r_[y, np.full(4, 2)]
    assert centroid_distance(Z3, y3) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="two classes"):
        centroid_distance(Z, np.zeros(8))


def test_normality_test_matches_scipy(rng):
    Z = np.c_[rng.normal(size=300), rng.exponential(size=300)]
    res = normality_test(Z)
    assert list(res.index) == ["z0", "z1"] and res.index.name == "dimension"
    assert list(res.columns) == ["statistic", "pvalue"]
    for d in range(2):
        ref = stats.normaltest(Z[:, d])
        assert res["statistic"].iloc[d] == pytest.approx(ref.statistic)
        assert res["pvalue"].iloc[d] == pytest.approx(ref.pvalue)
    assert res["pvalue"]["z0"] > 0.01 and res["pvalue"]["z1"] < 1e-6
    sh = normality_test(Z, method="shapiro")
    assert sh["pvalue"]["z1"] == pytest.approx(stats.shapiro(Z[:, 1]).pvalue)
    # KS is against N(0, 1) itself: a shifted Gaussian fails it.
    ks = normality_test(np.c_[Z[:, 0], Z[:, 0] + 1.0], method="ks")
    assert ks["pvalue"]["z0"] > 0.01 and ks["pvalue"]["z1"] < 1e-6


def test_normality_test_errors_and_constant(rng):
    with pytest.raises(ValueError, match="at least 8"):
        normality_test(rng.normal(size=(5, 2)))
    with pytest.raises(ValueError, match="method"):
        normality_test(rng.normal(size=(50, 2)), method="lilliefors")
    res = normality_test(np.c_[rng.normal(size=30), np.ones(30)])
    assert np.isnan(res.loc["z1"]).all() and np.isfinite(res.loc["z0"]).all()


def test_latent_diagnostics_collects_everything(rng):
    y = np.repeat([0, 1], 300)
    Z = rng.normal(size=(600, 2)) + np.c_[y, -y] * 0.8
    d = latent_diagnostics(Z, y, bins=50)
    assert list(d.index) == [
        "kl_z0", "kl_z1", "kl_max", "centroid_distance", "max_abs_correlation",
        "corr_z0_z1", "normality_pvalue_z0", "normality_pvalue_z1",
    ]
    np.testing.assert_allclose(d[["kl_z0", "kl_z1"]], kl_divergence_to_normal(Z, bins=50))
    assert d["kl_max"] == pytest.approx(max(d["kl_z0"], d["kl_z1"]))
    assert d["centroid_distance"] == pytest.approx(centroid_distance(Z, y))
    assert d["corr_z0_z1"] == pytest.approx(np.corrcoef(Z.T)[0, 1])
    assert d["max_abs_correlation"] == pytest.approx(abs(d["corr_z0_z1"]))
    assert d["normality_pvalue_z1"] == pytest.approx(stats.normaltest(Z[:, 1]).pvalue)


def test_latent_diagnostics_small_and_unlabelled(rng):
    Z = rng.normal(size=(5, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = latent_diagnostics(Z)
    assert np.isnan(d["centroid_distance"])
    assert np.isnan(d[["normality_pvalue_z0", "normality_pvalue_z2"]]).all()
    assert {"corr_z0_z1", "corr_z0_z2", "corr_z1_z2"} <= set(d.index)
    with pytest.raises(ValueError, match="one label per row"):
        latent_diagnostics(Z, [0, 1])
    with pytest.raises(ValueError, match="normality"):
        latent_diagnostics(Z, normality="jarque")
