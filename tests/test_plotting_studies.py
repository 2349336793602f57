"""Figures of the studies, drawn from small hand-made result tables."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import ai4cellfate.plotting as plotting  # noqa: E402
from ai4cellfate.plotting import (  # noqa: E402
    plot_ablation,
    plot_label_budget,
    plot_latent_dim_study,
    plot_model_comparison,
    plot_time_points,
)

STUDY_PLOTS = [
    "plot_model_comparison",
    "plot_ablation",
    "plot_latent_dim_study",
    "plot_label_budget",
    "plot_time_points",
]


@pytest.fixture(autouse=True)
def no_show(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("plt.show() was called")

    monkeypatch.setattr(plt, "show", fail)
    yield
    plt.close("all")


def rows(setting, values, n_folds=2, seeds=(42, 43), model="CellFateAAE", **extra):
    rng = np.random.default_rng(0)
    out = []
    for v in values:
        for fold in range(n_folds):
            for seed in seeds:
                out.append({"model": model, setting: v, "fold": fold, "seed": seed,
                            "balanced_accuracy": rng.uniform(0.6, 0.8),
                            "precision": rng.uniform(0.3, 0.6), **extra})
    return pd.DataFrame(out)


@pytest.fixture
def comparison():
    parts = [
        rows("features", ["image"], model="CellFateAAE"),
        rows("features", ["region features"], model="LogisticRegression"),
        rows("features", ["a + b", "a + c", "b + c"], model="SimpleClassifier (pair)"),
        rows("features", ["a + b"], model="SimpleClassifier (best pair)"),
    ]
    return pd.concat(parts, ignore_index=True)


def test_exported_from_the_plotting_package():
    assert set(STUDY_PLOTS) <= set(plotting.__all__)
    assert set(plotting._studies.__all__) == set(STUDY_PLOTS)


def test_model_comparison(comparison):
    fig = plot_model_comparison(comparison)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "CellFateAAE" and labels[1] == "LogisticRegression"
    assert labels[2] == "SimpleClassifier (best pair)\n(a + b)"
    assert labels[3] == "SimpleClassifier (pair)\n(each of 3 pairs)"
    # annotated means are those of the table
    texts = {t.get_text() for t in ax.texts}
    aae = comparison.loc[comparison["model"] == "CellFateAAE", "balanced_accuracy"].mean()
    assert f"{aae:.3f}" in texts
    pairs = comparison[comparison["model"] == "SimpleClassifier (pair)"]
    pair_means = pairs.groupby("features")["balanced_accuracy"].mean()
    assert f"{pair_means.mean():.3f}" in texts
    # dots: 4 per single model (2 folds x 2 seeds), one per pair
    n_dots = sum(len(c.get_offsets()) for c in ax.collections if hasattr(c, "get_offsets")
                 and c.get_offsets().shape[1:] == (2,) and len(c.get_offsets()) in (3, 4))
    assert n_dots == 4 + 4 + 4 + 3


def test_draws_into_a_given_axes(comparison):
    fig, axes = plt.subplots(1, 2)
    assert plot_model_comparison(comparison, metric="precision", ax=axes[1]) is fig
    assert axes[1].get_xlabel().startswith("precision") and not axes[0].has_data()


def test_ablation_marks_the_full_model():
    res = rows("setting", ["full", "no contrastive", "no covariance"])
    fig = plot_ablation(res)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "full", "no contrastive", "no covariance"
    ]
    full = res.loc[res["setting"] == "full", "balanced_accuracy"].mean()
    lines = [ln for ln in ax.get_lines() if ln.get_label() == "full model (mean)"]
    assert len(lines) == 1 and np.allclose(lines[0].get_xdata(), full)


def test_latent_dim_study_lines():
    res = rows("latent_dim", [2, 3, 5, 10])
    res["max_abs_correlation"] = np.linspace(0.05, 0.5, len(res))
    fig = plot_latent_dim_study(res)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "3", "5", "10"]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    acc = lines["balanced accuracy"]
    expected = res.groupby("latent_dim")["balanced_accuracy"].mean().to_numpy()
    np.testing.assert_allclose(acc.get_ydata(), expected)
    assert "max |correlation| between latent features" in lines


def test_label_budget_uses_cells_actually_labelled():
    res = pd.concat([
        rows("budget", [50], n_labelled=50),
        rows("budget", [None], n_labelled=180),
        rows("budget", [50], n_labelled=50, model="LogisticRegression"),
        rows("budget", [None], n_labelled=180, model="LogisticRegression"),
    ], ignore_index=True)
    res["budget"] = pd.array(res["budget"], dtype="Int64")
    fig = plot_label_budget(res, metrics=["balanced_accuracy", "precision"])
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 4  # 2 models x 2 metrics
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [50, 180])
    assert ax.get_xscale() == "log"
    assert plot_label_budget(res, xscale="linear").axes[0].get_xscale() == "linear"


def test_time_points_label_relative_times():
    fig = plot_time_points(rows("time_point", [0.0, 0.5, 1.0]))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0%", "50%", "100%"]
    ax2 = plot_time_points(rows("time_point", [0, 5, 10])).axes[0]
    assert ax2.get_xlabel() == "time point"


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: plot_model_comparison([1, 2]), TypeError, "DataFrame"),
        (lambda: plot_ablation(pd.DataFrame({"model": ["a"]})), ValueError, "setting"),
        (lambda: plot_model_comparison(rows("features", ["x"]), metric="auc"),
         ValueError, "auc"),
        (lambda: plot_time_points(rows("time_point", [0]).iloc[:0]), ValueError, "empty"),
        (lambda: plot_label_budget(rows("budget", [5], n_labelled=5), xscale="sqrt"),
         ValueError, "xscale"),
        (lambda: plot_time_points(rows("time_point", [2]), ax="left"),
         TypeError, "ax"),
    ],
)
def test_invalid_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
