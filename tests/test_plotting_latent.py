"""Tests of the latent, traversal, training and metric figures.

Every figure must render to PNG under the non-interactive Agg backend, return
its Figure, draw into a given ``ax`` and never call ``plt.show()``.
"""

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ai4cellfate import plotting  # noqa: E402
from ai4cellfate.interpret import latent_traversal  # noqa: E402
from ai4cellfate.plotting import (  # noqa: E402
    FATE_COLORS,
    fate_label,
    fate_legend_handles,
    plot_confusion_matrix,
    plot_latent_space,
    plot_latent_traversal,
    plot_losses,
    plot_roc_curve,
    plot_stopping_criteria,
    plot_training_curves,
    plot_traversal_grid,
    plot_traversal_measurements,
)


class FakeAAE:
    """The estimator's interface: z0 -> brightness, z1 -> size."""

    latent_dim = 2
    classes_ = np.array([0, 1])
    min_centroid_distance = 0.5
    max_kl = 0.2
    min_accuracy = 0.65
    min_precision = 0.65

    def __init__(self):
        self.history_ = make_history()

    def decode(self, Z):
        Z = np.asarray(Z, dtype=float)
        yy, xx = np.mgrid[:20, :20] - 9.5
        r = np.clip(4.5 + 0.8 * Z[:, 1], 1, 9)[:, None, None]
        b = np.clip(0.55 + 0.12 * Z[:, 0], 0.15, 1)[:, None, None]
        return (b * (np.hypot(yy, xx) <= r)).astype(np.float32)

    def transform(self, X):
        X = np.asarray(X, dtype=float)
        area = (X > 0.1).sum(axis=(1, 2))
        mean = X.sum(axis=(1, 2)) / np.maximum(area, 1)
        return np.c_[(mean - 0.55) / 0.12, (np.sqrt(area / np.pi) - 4.5) / 0.6]

    def predict_latent_proba(self, Z):
        p = 1 / (1 + np.exp(-2 * np.asarray(Z).sum(axis=1)))
        return np.c_[1 - p, p]

    def predict(self, X):
        return self.predict_latent_proba(self.transform(X)).argmax(axis=1)


def make_history(n1=3, n=10):
    e = np.arange(n)
    stage = np.where(e < n1, 1, 2)
    s2 = stage == 2
    h = pd.DataFrame(
        {
            "epoch": e,
            "stage": stage,
            "loss": 10 * np.exp(-e / 5) + 2,
            "recon_loss": 0.5 * np.exp(-e / 6) + 0.1,
            "adv_loss": 0.7 + 0.02 * np.sin(e),
            "contra_loss": np.where(s2, 3 - 0.1 * e, 2.9),
            "cov_loss": 0.01 * np.exp(-e / 3),
            "disc_loss": 0.69 + 0.01 * np.cos(e),
            "centroid_distance": np.where(s2, 0.2 + 0.1 * e, np.nan),
            "kl_z0": np.where(s2, 0.5 * np.exp(-(e - n1) / 3), np.nan),
            "kl_z1": np.where(s2, 0.3 * np.exp(-(e - n1) / 3), np.nan),
            "val_balanced_accuracy": np.where(s2, 0.6 + 0.03 * (e - n1), np.nan),
            "val_precision": np.where(s2, 0.55 + 0.04 * (e - n1), np.nan),
        }
    )
    h["kl_max"] = h[["kl_z0", "kl_z1"]].max(axis=1, skipna=False)
    h["criteria_met"] = (
        (h["centroid_distance"] >= 0.5)
        & (h["kl_max"] <= 0.2)
        & (h["val_balanced_accuracy"] >= 0.65)
        & (h["val_precision"] >= 0.65)
    )
    return h


@pytest.fixture(autouse=True)
def _no_show_and_close(monkeypatch):
    def _fail(*args, **kwargs):
        raise AssertionError("plotting functions must not call plt.show()")

    monkeypatch.setattr(plt, "show", _fail)
    yield
    plt.close("all")


@pytest.fixture
def data():
    from ai4cellfate.datasets import make_nuclei

    return make_nuclei(120, random_state=0)


def _png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    data = buf.getvalue()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return data


def test_public_names_exported():
    for name in (
        "plot_latent_space", "plot_latent_traversal", "plot_traversal_grid",
        "plot_training_curves", "plot_confusion_matrix", "plot_traversal_measurements",
    ):
        assert name in plotting.__all__


def test_fate_palette_and_legend():
    assert FATE_COLORS[0] != FATE_COLORS[1]
    handles = fate_legend_handles([0, 1])
    assert [h.get_label() for h in handles] == ["fate 0: no division", "fate 1: division"]
    assert handles[1].get_markerfacecolor().lower() == FATE_COLORS[1].lower()
    assert fate_label(0, {0: "quiescent"}) == "quiescent"
    assert fate_label("x") == "x"
    with pytest.raises(TypeError, match="class_names"):
        fate_label(0, ["a"])


# --------------------------------------------------------------------------
# Latent space
# --------------------------------------------------------------------------


def test_latent_space_from_model(data):
    X, y = data
    model = FakeAAE()
    fig = plot_latent_space(model, X, y)
    _png(fig)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "latent feature z0 (prior s.d.)"
    assert ax.get_ylabel() == "latent feature z1 (prior s.d.)"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [
        "fate 0: no division", "fate 1: division", "decision boundary", "class centroid",
    ]
    assert "centroid distance" in ax.get_title()


def test_latent_space_from_Z_into_given_ax(rng):
    fig0, axes = plt.subplots(1, 2)
    Z = rng.normal(size=(60, 3))
    fig = plot_latent_space(Z=Z, y=np.repeat([0, 1], 30), dims=(2, 0), ax=axes[1])
    assert fig is fig0
    assert axes[1].get_xlabel().startswith("latent feature z2")
    _png(plot_latent_space(Z=Z))  # unlabelled: grey points, no legend entries
    _png(plot_latent_space(FakeAAE(), Z=Z[:, :2], y=np.repeat([0, 1], 30)))


def test_latent_space_bad_input(rng):
    Z = rng.normal(size=(10, 2))
    with pytest.raises(ValueError, match="Z, or a model"):
        plot_latent_space()
    with pytest.raises(ValueError, match="one label per"):
        plot_latent_space(Z=Z, y=[0, 1])
    with pytest.raises(ValueError, match="dims"):
        plot_latent_space(Z=Z, dims=(0, 0))
    with pytest.raises(TypeError, match="boundary"):
        plot_latent_space(FakeAAE(), Z=Z, boundary="yes")
    with pytest.raises(ValueError, match="grid_resolution"):
        plot_latent_space(FakeAAE(), Z=Z, grid_resolution=1)
    with pytest.raises(ValueError, match="latent classifier returned"):
        plot_latent_space(Z=Z, boundary=lambda G: np.ones(len(G)))


def _legend_labels(fig):
    legend = fig.axes[0].get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def test_latent_space_boundary_sources(rng):
    from sklearn.linear_model import LogisticRegression

    y = np.repeat([0, 1], 30)
    Z = rng.normal(size=(60, 2)) + 2.0 * y[:, None]
    # A model without any latent classifier: points and centroids, no boundary.
    fig = plot_latent_space(object(), Z=Z, y=y)
    assert "decision boundary" not in _legend_labels(fig)
    # A scikit-learn classifier_ on the latent space.

    class WithClassifier:
        classes_ = np.array([0, 1])
        classifier_ = LogisticRegression().fit(Z, y)

    fig = plot_latent_space(WithClassifier(), Z=Z, y=y)
    assert "decision boundary" in _legend_labels(fig)
    assert len(fig.axes[0].collections) >= 2  # shaded regions and the line
    _png(fig)
    # A callable: the line x0 + x1 = 2 separates the two fates.
    calls = []

    def proba(G):
        calls.append(G)
        p = (G.sum(axis=1) > 2.0).astype(float)
        return np.c_[1 - p, p]

    fig = plot_latent_space(Z=Z, y=y, boundary=proba, grid_resolution=30)
    assert calls and calls[0].shape == (900, 2)
    assert "decision boundary" in _legend_labels(fig)
    fig = plot_latent_space(FakeAAE(), Z=Z, y=y, boundary=False)
    assert "decision boundary" not in _legend_labels(fig)
    with pytest.raises(TypeError, match="Axes"):
        plot_latent_space(Z=Z, ax="left")


# --------------------------------------------------------------------------
# Traversals
# --------------------------------------------------------------------------


def test_traversal_strips():
    fig = plot_latent_traversal(FakeAAE())
    _png(fig)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["z0", "z1"]
    texts = [t.get_text() for t in ax.texts]
    assert texts[:5] == ["-2.5", "-1.5", "-0.5", "0.5", "1.5"]
    assert texts[5:] == ["-3", "-1.75", "-0.5", "0.75", "2"]
    assert "prior s.d." in ax.get_xlabel()


def test_traversal_strips_from_quantiles_into_ax(data):
    X, _ = data
    fig0, ax = plt.subplots()
    fig = plot_latent_traversal(FakeAAE(), X=X, n_steps=3, colorbar=False, ax=ax)
    assert fig is fig0 and len(fig.axes) == 1
    _png(fig)
    with pytest.raises(TypeError, match="n_steps"):
        plot_latent_traversal(FakeAAE(), n_steps=(3, 4))


def test_traversal_grid():
    fig = plot_traversal_grid(FakeAAE(), n_steps=(3, 4))
    _png(fig)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["-2.5", "-0.5", "1.5"]
    # y axis: z1 from top (largest) to bottom.
    assert [t.get_text() for t in ax.get_yticklabels()] == ["2", "0.33", "-1.33", "-3"]
    assert ax.get_ylabel() == "latent feature z1 (prior s.d.)"
    with pytest.raises(ValueError, match="two dimensions"):
        plot_traversal_grid(FakeAAE(), dims=(0,))


def test_traversal_grid_tiles_follow_axes():
    # The brightest tile must sit at the right (largest z0), the largest blob at the top.
    fig = plot_traversal_grid(FakeAAE(), n_steps=3, colorbar=False)
    mosaic = fig.axes[0].get_images()[0].get_array()
    mosaic = np.ma.filled(mosaic.astype(float), np.nan)
    h = mosaic.shape[0] // 3
    top_left = np.nansum(mosaic[:h, : mosaic.shape[1] // 3] > 0.1)
    bottom_left = np.nansum(mosaic[-h:, : mosaic.shape[1] // 3] > 0.1)
    assert top_left > bottom_left
    left = np.nanmax(mosaic[:, : mosaic.shape[1] // 3])
    right = np.nanmax(mosaic[:, -mosaic.shape[1] // 3 :])
    assert right > left


def test_traversal_measurements():
    table = latent_traversal(FakeAAE())
    fig = plot_traversal_measurements(table)
    _png(fig)
    visible = [a for a in fig.axes if a.get_visible()]
    assert len(visible) == 5
    assert visible[0].get_ylabel() == "area (pixels)"
    legend = [t.get_text() for t in visible[0].get_legend().get_texts()]
    assert legend[0] == "z0 (\u03c1 = n/a, \u0394 = +0 %)"
    # area along z1 rises as a least-squares line by `change` pixels.
    z1 = table.query("dimension == 'z1' and measurement == 'area'")
    change = np.polyfit(z1["value"], z1["result"], 1)[0] * np.ptp(z1["value"])
    mean = table.query("measurement == 'area'")["result"].mean()
    assert legend[1] == f"z1 (\u03c1 = +1.00, \u0394 = {100 * change / mean:+.0f} %)"
    fig0, ax = plt.subplots()
    assert plot_traversal_measurements(table, measurements="area", ax=ax) is fig0
    with pytest.raises(ValueError, match="2 Axes"):
        plot_traversal_measurements(table, measurements=["area", "circularity"], ax=ax)
    with pytest.raises(ValueError, match="measurements"):
        plot_traversal_measurements(table, measurements="volume")
    with pytest.raises(ValueError, match="latent_traversal"):
        plot_traversal_measurements(table.drop(columns="dimension"))


# --------------------------------------------------------------------------
# Training curves
# --------------------------------------------------------------------------


def test_training_curves_from_model_draws_thresholds_and_stage():
    fig = plot_training_curves(FakeAAE())
    _png(fig)
    ax_loss, ax_crit = fig.axes
    assert ax_loss.get_yscale() == "log"
    loss_labels = [t.get_text() for t in ax_loss.get_legend().get_texts()]
    assert loss_labels == [
        "loss", "recon loss", "adv loss", "contra loss", "cov loss", "disc loss",
    ]
    # The stage boundary is between epochs 2 and 3 in both panels.
    for a in (ax_loss, ax_crit):
        xs = [ln.get_xdata()[0] for ln in a.get_lines() if len(ln.get_xdata()) == 2
              and ln.get_xdata()[0] == ln.get_xdata()[1]]
        assert 2.5 in xs
    # Thresholds as horizontal lines, their values in the legend.
    ys = {ln.get_ydata()[0] for ln in ax_crit.get_lines()
          if len(ln.get_ydata()) == 2 and ln.get_ydata()[0] == ln.get_ydata()[1]}
    assert {0.5, 0.2, 0.65} <= ys
    crit_labels = " ".join(t.get_text() for t in ax_crit.get_legend().get_texts())
    assert "\u2265 0.5" in crit_labels and "\u2264 0.2" in crit_labels
    assert "all criteria met" in crit_labels


def test_stage_labels_sit_above_the_curves():
    """The stage 1 / stage 2 labels are outside the data area (no curve can cover
    them) and below the title."""
    fig = plot_training_curves(FakeAAE())
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        labels = [t for t in ax.texts if t.get_gid() == "stage-label"]
        assert [t.get_text().strip() for t in labels] == ["stage 1 \u2190", "\u2192 stage 2"]
        top = ax.get_window_extent(renderer).y1
        title = ax.title.get_window_extent(renderer)
        for t in labels:
            box = t.get_window_extent(renderer)
            assert box.y0 >= top - 1, "stage label inside the data area"
            assert box.y1 <= title.y0 + 1, "stage label overlaps the title"
        ticks = ax.get_xticks()
        assert np.allclose(ticks, np.round(ticks))  # whole epochs only
    plt.close(fig)


def test_training_curves_from_dataframe_into_axes():
    history = make_history()
    fig0, axes = plt.subplots(1, 2)
    fig = plot_training_curves(history, thresholds={"max_kl": 0.3}, ax=axes)
    assert fig is fig0
    ys = {ln.get_ydata()[0] for ln in axes[1].get_lines()
          if len(ln.get_ydata()) == 2 and ln.get_ydata()[0] == ln.get_ydata()[1]}
    assert 0.3 in ys and 0.65 not in ys
    _png(fig)
    with pytest.raises(ValueError, match="2 Axes"):
        plot_training_curves(history, ax=axes[0])
    with pytest.raises(ValueError, match="unknown keys"):
        plot_training_curves(history, thresholds={"max_KL": 0.2})
    with pytest.raises(TypeError, match="history"):
        plot_training_curves([1, 2, 3])


def test_losses_and_criteria_single_panels():
    history = make_history()
    history.loc[0, "adv_loss"] = -0.1  # not all positive: symmetric log scale
    assert plot_losses(history).axes[0].get_yscale() == "symlog"
    stage1_only = history[history["stage"] == 1].drop(
        columns=[c for c in history if c.startswith(("kl", "val", "centroid", "criteria"))]
    )
    fig = plot_stopping_criteria(stage1_only)
    _png(fig)
    assert "no stopping criteria recorded" in [t.get_text() for t in fig.axes[0].texts]
    with pytest.raises(ValueError, match="yscale"):
        plot_losses(history, yscale="loglog")


# --------------------------------------------------------------------------
# Confusion matrix
# --------------------------------------------------------------------------


def test_roc_curve_figure():
    y = np.array([0, 0, 0, 1, 1, 1, 2])  # fate 1 against the rest
    good = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9, 0.2])
    fig = plot_roc_curve(y, {"model": good, "baseline": 1 - good})
    _png(fig)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["model (AUC 1.00)", "baseline (AUC 0.00)", "chance (AUC 0.5)"]
    assert "fate 1" in ax.get_title() and "recall of fate 1" in ax.get_ylabel()
    fig0, ax0 = plt.subplots()
    assert plot_roc_curve(y, good, ax=ax0) is fig0
    with pytest.raises(ValueError, match="both"):
        plot_roc_curve(np.ones(4), np.ones(4))
    with pytest.raises(ValueError, match="shape"):
        plot_roc_curve(y, {"m": good[:3]})
    plt.close("all")


def test_confusion_matrix_figure():
    y_true = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
    y_pred = np.array([0, 0, 0, 0, 1, 1, 0, 1, 1, 1])
    fig = plot_confusion_matrix(y_true, y_pred)
    _png(fig)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["0.67\n(n = 4)", "0.33\n(n = 2)", "0.25\n(n = 1)", "0.75\n(n = 3)"]
    assert "balanced accuracy 0.71" in ax.get_title()
    assert "fate1 0.60" in ax.get_title()
    assert ax.get_xlabel() == "predicted fate" and ax.get_ylabel() == "true fate"
    fig0, ax0 = plt.subplots()
    assert plot_confusion_matrix(y_true, y_pred, class_names={1: "divides"}, ax=ax0) is fig0
    assert ax0.get_xticklabels()[1].get_text() == "divides"


def test_stopping_criteria_log_scale_for_spikes():
    history = make_history()
    assert plot_stopping_criteria(history).axes[0].get_yscale() == "linear"
    history.loc[6, "kl_z0"] = history.loc[6, "kl_max"] = 8.0  # a spike
    fig = plot_stopping_criteria(history)
    assert fig.axes[0].get_yscale() == "log"
    _png(fig)
    assert plot_stopping_criteria(history, yscale="linear").axes[0].get_yscale() == "linear"
    with pytest.raises(ValueError, match="yscale"):
        plot_stopping_criteria(history, yscale="symlog")
