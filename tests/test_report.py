"""The report page answers its three questions: what was predicted, how good it
is (with a baseline, ROC/AUC and a bootstrap interval), what each latent feature
means (trend table, one sentence per feature, warnings).

Uses the session's small fitted model (conftest ``fitted``, 64 nuclei of
16 x 16 px); every report of this file is written once per module.
"""

import html
import json
import re

import numpy as np
import pandas as pd
import pytest

from ai4cellfate import _diagnostics
from ai4cellfate.report import REPORT_FILES, bootstrap_balanced_accuracy, write_report

META = {
    "horizon": 24, "unknown": "drop", "frames": "all", "first_generation": False,
    "crop_size_px": 32, "output_size_px": 16, "pixel_size": 0.65, "n_frames": 90,
    "dropped": {"unknown_track_ends": 7, "merged": 3},
}


@pytest.fixture(scope="module")
def data():
    from ai4cellfate.datasets import make_nuclei

    X, y = make_nuclei(96, image_size=16, random_state=1)
    groups = np.arange(96) // 3  # 32 lineages of three cell-frames
    table = pd.DataFrame({"track_id": groups * 10 + np.arange(96) % 3,
                          "t": np.arange(96) % 30})
    return X, y, groups, table


@pytest.fixture(scope="module")
def report(fitted, nuclei, data, tmp_path_factory):
    X, y, groups, table = data
    out = tmp_path_factory.mktemp("report") / "rep"
    write_report(fitted, X, y, out, groups=groups, table=table, meta=META,
                 frame_interval=600.0, split="96 cell-frames held out by lineage",
                 train=nuclei, n_bootstrap=300)
    page = (out / "index.html").read_text(encoding="utf-8")
    return {"dir": out, "page": page, "text": html.unescape(re.sub(r"<[^>]+>", " ", page)),
            "metrics": json.loads((out / "metrics.json").read_text())}


def test_all_files_written(report):
    for name in REPORT_FILES:
        assert (report["dir"] / name).stat().st_size > 0, name
    for img in ("latent_space.png", "traversal_grid.png", "roc_curve.png",
                "confusion_matrix.png", "training_curves.png"):
        assert f'src="{img}"' in report["page"]


def test_what_was_predicted(report):
    text = report["text"]
    assert "What was predicted" in text
    assert "divides within 24 frames (4 h)" in text          # horizon in frames and hours
    assert "24 frames = 4 h at 10 min per frame" in text
    assert "32 \u00d7 32 px window (20.8 \u00d7 20.8 \u00b5m)" in text  # crop in px and um
    assert "binned to 16 \u00d7 16 px (1.30 \u00b5m per pixel)" in text
    assert "96 (fate 0" in text and "cell-frames" in text
    assert "Lineages" in text and "32 (a lineage" in text
    assert "(7 of them)" in text                              # unknown outcomes left out
    assert "30 distinct frames (frames 0\u201329 of the movie's 90)" in text
    assert "96 cell-frames held out by lineage" in text       # the split
    p = report["metrics"]["prediction"]
    assert p["horizon_hours"] == pytest.approx(4.0)
    assert p["output_pixel_um"] == pytest.approx(1.3)
    assert p["n_lineages"] == 32 and p["n_samples"] == 96


def test_how_good_it_is(report):
    text, q = report["text"], report["metrics"]["quality"]
    assert "How good it is" in text
    assert "Region features + logistic regression" in text
    assert "fitted on the model's 64 training cell-frames" in text and "Leak-free" in text
    assert "ROC AUC" in text and "95% interval of balanced accuracy" in text
    assert 0 <= q["model"]["roc_auc"] <= 1 and 0 <= q["baseline"]["roc_auc"] <= 1
    b = q["bootstrap"]
    assert b["unit"] == "lineage" and b["n_resamples"] == 300
    lo, hi = b["balanced_accuracy"]["model"]
    ba = q["model"]["classification"]["balanced_accuracy"]
    assert lo <= ba <= hi
    assert f"[{lo:.3f}, {hi:.3f}]" in text
    assert "minus the baseline" in text
    # the baseline is scored on exactly the evaluated cells
    n = sum(v for k, v in q["baseline"]["classification"].items() if k.startswith("n_"))
    assert n == 96


def test_what_each_latent_feature_means(report):
    text, feats = report["text"], report["metrics"]["latent_features"]
    assert "What each latent feature means" in text
    assert [f["feature"] for f in feats] == ["z0", "z1"]
    for f in feats:
        assert f["reading"].startswith(f["feature"] + ": ") and f["reading"] in text
        for key in ("area", "mean_intensity", "aspect_ratio", "circularity"):
            assert f"{key}_change" in f and f"{key}_trend" in f
    for header in ("area (px\u00b2 and \u00b5m\u00b2)", "mean intensity (a.u.",
                   "aspect ratio", "circularity", "fate separation (d)"):
        assert header in text
    table = pd.read_csv(report["dir"] / "latent_features.csv")
    assert table["feature"].tolist() == ["z0", "z1"]


def test_warnings_are_shown(fitted, data, tmp_path, monkeypatch):
    X, y, groups, _ = data
    monkeypatch.setattr(_diagnostics, "latent_warnings",
                        lambda Z, max_kl=None, **kw: ["Latent features z0 and z1 are "
                                                      "correlated (r = 0.90)."])
    out = tmp_path / "rep"
    write_report(fitted, X, y, out, n_bootstrap=50)  # no train, no groups: CV baseline
    page = (out / "index.html").read_text(encoding="utf-8")
    assert 'class="warning"' in page and "correlated (r = 0.90)" in page
    assert "1 warning(s) about the latent space" in page
    text = html.unescape(page)
    assert "5-fold cross-validated on the evaluated cell-frames" in text
    assert "Warning." in (out / "summary.md").read_text()
    assert json.loads((out / "metrics.json").read_text())["quality"]["bootstrap"]["unit"] \
        == "cell-frame"


def test_cli_report_passes_the_dataset(fitted, data, tmp_path, capsys):
    """``ai4cellfate report`` on a prepared dataset: its meta, groups and table reach
    the page."""
    from ai4cellfate.cli import main
    from ai4cellfate.datasets import FateDataset

    X, y, groups, table = data
    meta = {k: v for k, v in META.items() if k != "pixel_size"}
    ds = FateDataset(X=X, y=y, groups=groups, table=table, meta=meta, pixel_size=0.65,
                     frame_interval=600.0)  # the dataset's own calibration fields
    ds.save(tmp_path / "d.npz")
    fitted.save(tmp_path / "m.keras")
    assert main(["report", str(tmp_path / "m.keras"), str(tmp_path / "d.npz"),
                 "-o", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr()
    assert "96 cell-frames: balanced accuracy" in out.out and "baseline" in out.out
    text = html.unescape((tmp_path / "rep" / "index.html").read_text(encoding="utf-8"))
    assert "divides within 24 frames (4 h)" in text
    assert "(20.8 \u00d7 20.8 \u00b5m)" in text
    assert "whether the model was trained on them is unknown" in text


def test_page_renders_in_chromium(report, tmp_path):
    """Headless Chromium shows every image and the three questions (skipped without
    Chromium; CI installs it)."""
    import subprocess
    import sys
    from pathlib import Path

    tool = Path(__file__).resolve().parent.parent / "tools" / "check_report_html.py"
    sys.path.insert(0, str(tool.parent))
    try:
        import check_report_html
    finally:
        sys.path.remove(str(tool.parent))
    if check_report_html.find_chromium() is None:
        pytest.skip("Chromium is not installed")
    res = subprocess.run(
        [sys.executable, str(tool), str(report["dir"]), "--min-images", "5",
         "--screenshot", str(tmp_path / "shot.png"),
         "--expect", "What was predicted", "--expect", "How good it is",
         "--expect", "What each latent feature means"],
        capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


# --------------------------------------------------------------------------
# The pieces
# --------------------------------------------------------------------------


def test_bootstrap_by_lineage_is_seeded_and_wider_for_correlated_cells():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), 10)          # 40 lineages of 10 cell-frames
    y = np.tile([0, 1], 200)
    right = rng.random(40) < 0.7                   # a lineage is right or wrong as a whole
    pred = np.where(right[groups], y, 1 - y)
    a = bootstrap_balanced_accuracy(y, {"m": pred}, groups=groups, random_state=3)
    b = bootstrap_balanced_accuracy(y, {"m": pred}, groups=groups, random_state=3)
    cells = bootstrap_balanced_accuracy(y, {"m": pred}, random_state=3)
    assert a == b
    assert (a["m"][1] - a["m"][0]) > 2 * (cells["m"][1] - cells["m"][0])
    ba = np.mean([np.mean(pred[y == c] == c) for c in (0, 1)])
    assert a["m"][0] <= ba <= a["m"][1]


def test_latent_warnings_thresholds():
    rng = np.random.default_rng(0)
    z = rng.normal(size=4000)
    assert _diagnostics.latent_warnings(np.c_[z, rng.normal(size=4000)], max_kl=0.2) == []
    corr = _diagnostics.latent_warnings(np.c_[z, z + 0.5 * rng.normal(size=4000)])
    assert len(corr) == 1 and "|r| > 0.5" in corr[0] and "traversal" in corr[0]
    wide = _diagnostics.latent_warnings(np.c_[3 * z, rng.normal(size=4000)], max_kl=0.2)
    assert len(wide) == 1 and "max_kl = 0.2" in wide[0] and "z0" in wide[0]
    small = _diagnostics.latent_warnings(rng.normal(size=(100, 2)), max_kl=0.2)
    assert small and "drawn from N(0, 1) itself scores about" in small[0]
    flat = _diagnostics.latent_warnings(np.c_[z, np.zeros(4000)], max_kl=0.2)
    assert len(flat) == 1 and "collapsed" in flat[0]


def test_readings_name_the_fate_axis():
    trends = pd.DataFrame({"area": [0.2, 0.99], "mean_intensity": [0.95, 0.9],
                           "aspect_ratio": [0.0, 0.1], "circularity": [-0.9, 0.0]},
                          index=["z0", "z1"])
    effects = pd.DataFrame({"area": [0.01, 0.6], "mean_intensity": [-0.3, 0.2],
                            "aspect_ratio": [0.0, 0.0], "circularity": [-0.2, 0.0]},
                           index=["z0", "z1"])
    r = _diagnostics.latent_feature_readings(trends, effects, [0.1, -1.2])
    assert r["z0"].startswith("z0: dimmer, less round nuclei as z0 grows")
    assert "unrelated to fate" in r["z0"]
    assert r["z1"].startswith("z1: larger, brighter nuclei as z1 grows; the fate axis: "
                              "fate 1 cells lie at lower z1")
    # two features separating the fates about equally: no single fate axis
    both = _diagnostics.latent_feature_readings(trends, effects, [0.9, 1.0])
    assert all("fate axis" not in v and "separates the fates" in v for v in both.values())
