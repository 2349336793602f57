"""The ``ai4cellfate`` command line: usage, error paths and one end-to-end run.

Commands run in-process through ``main([...])`` (the backend is whatever
``KERAS_BACKEND`` the suite runs under); one subprocess runs the installed
console script. Training uses tiny settings (two epochs on ~100 crops).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from ai4cellfate.cli import _parse_value, build_parser, history_path, main

TINY = ["--param", "stage1_epochs=1", "--param", "min_epochs=1", "--param", "max_epochs=1",
        "--param", "augment=False", "--param", "batch_size=16", "--seed", "0", "-q"]

# A 4 x 4 grid of nuclei; the 8 nuclei with an even index divide after frame 3
# (one daughter stays in place, the other has no markers: it left the field).
N_FRAMES, SIZE, STEP = 8, 160, 40


def _write_tiny_ctc(root):
    raw, tra = root / "01", root / "01_GT" / "TRA"
    raw.mkdir(parents=True)
    tra.mkdir(parents=True)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    cells = {}  # track -> (start, end, parent, centre, brightness)
    lineage = []
    for k in range(16):
        centre = (20 + STEP * (k // 4), 20 + STEP * (k % 4))
        track = k + 1
        if k % 2 == 0:
            cells[track] = (0, 3, 0, centre, 1800)
            cells[100 + track] = (4, N_FRAMES - 1, track, centre, 900)
            lineage += [(track, 0, 3, 0), (100 + track, 4, N_FRAMES - 1, track),
                        (200 + track, 4, N_FRAMES - 1, track)]
        else:
            cells[track] = (0, N_FRAMES - 1, 0, centre, 1000)
            lineage.append((track, 0, N_FRAMES - 1, 0))
    rng = np.random.default_rng(0)
    for t in range(N_FRAMES):
        img = rng.normal(100, 5, (SIZE, SIZE))
        marker = np.zeros((SIZE, SIZE), np.uint16)
        for track, (s, e, _, (cy, cx), b) in cells.items():
            if s <= t <= e:
                r = 6 + (track % 3)
                img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = b
                marker[cy - 1:cy + 2, cx - 1:cx + 2] = track
        tifffile.imwrite(raw / f"t{t:03d}.tif", img.astype(np.uint16))
        tifffile.imwrite(tra / f"man_track{t:03d}.tif", marker)
    (tra / "man_track.txt").write_text("".join(f"{a} {b} {c} {d}\n" for a, b, c, d in lineage))
    return root


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def ctc_dir(work):
    return _write_tiny_ctc(work / "tinyctc")


@pytest.fixture(scope="module")
def pipeline(work, ctc_dir):
    """prepare -> fit -> predict -> report, run once; returns the paths."""
    data = work / "data.npz"
    model = work / "model.keras"
    codes = {}
    codes["prepare"] = main(["prepare", str(ctc_dir), "--format", "ctc", "--sequence", "01",
                             "--crop-size", "32", "--output-size", "16", "-o", str(data)])
    codes["fit"] = main(["fit", str(data), "-o", str(model), "--test-size", "0.25", *TINY])
    codes["predict"] = main(["predict", str(model), str(data), "-o", str(work / "pred.csv")])
    codes["report"] = main(["report", str(model), str(data), "-o", str(work / "report")])
    return {"codes": codes, "data": data, "model": model, "work": work}


def _no_traceback(err):
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if "error:" in ln]
    assert len(lines) == 1, err
    return lines[0]


# --------------------------------------------------------------------------
# Usage and help
# --------------------------------------------------------------------------


def test_console_script_help():
    exe = shutil.which("ai4cellfate") or str(Path(sys.executable).parent / "ai4cellfate")
    if not os.path.exists(exe):
        pytest.skip("console script not installed")
    res = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    for cmd in ("prepare", "fit", "predict", "report", "demo", "--backend"):
        assert cmd in res.stdout


@pytest.mark.parametrize("cmd", ["prepare", "fit", "predict", "report", "demo"])
def test_every_subcommand_has_help_with_examples(cmd, capsys):
    assert main([cmd, "--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"ai4cellfate {cmd}" in out and "--backend" in out


@pytest.mark.parametrize("argv", [
    [],                                         # no command
    ["train", "data.npz"],                      # unknown command
    ["fit"],                                    # missing arguments
    ["fit", "data.npz"],                        # missing -o
    ["prepare", "x", "--format", "zip", "-o", "d.npz"],   # unknown format
    ["fit", "data.npz", "-o", "model.h5"],      # model must be .keras
    ["fit", "data.npz", "-o", "m.keras", "--param", "lambda_contra"],   # no '='
    ["fit", "data.npz", "-o", "m.keras", "--param", "max_epochs=-1"],   # bad value
    ["fit", "data.npz", "-o", "m.keras", "--param", "random_state=1"],  # use --seed
    ["fit", "data.npz", "-o", "m.keras", "--test-size", "1.5"],
    ["fit", "data.npz", "-o", "m.keras", "--resume"],                 # no --checkpoint-dir
    ["fit", "data.npz", "-o", "m.keras", "--param", "checkpoint_dir=c"],  # use the option
    ["--backend", "theano", "demo"],
])
def test_bad_usage_exits_2(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "usage:" in err and "Traceback" not in err


def test_unknown_parameter_is_named(tmp_path, capsys):
    code = main(["fit", str(tmp_path / "d.npz"), "-o", str(tmp_path / "m.keras"),
                 "--param", "lambda_contrast=6"])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown parameter 'lambda_contrast'" in err and "lambda_contra" in err
    assert not list(tmp_path.iterdir())


def test_parse_value():
    assert _parse_value("6") == 6 and _parse_value("1e-4") == 1e-4
    assert _parse_value("false") is False and _parse_value("None") is None
    assert _parse_value("20,20") == (20, 20) and _parse_value("sum") == "sum"


def test_history_path():
    assert history_path("out/model.keras") == Path("out/model.history.json")


def test_import_does_not_load_keras():
    code = "import sys, ai4cellfate.cli; build = ai4cellfate.cli.build_parser(); " \
           "print('keras' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert res.stdout.strip() == "False", res.stderr


# --------------------------------------------------------------------------
# Errors: exit 1, one line, nothing written
# --------------------------------------------------------------------------


def test_missing_files(tmp_path, capsys):
    missing = str(tmp_path / "nope.npz")
    assert main(["fit", missing, "-o", str(tmp_path / "m.keras")]) == 1
    assert "no such dataset file" in _no_traceback(capsys.readouterr().err)
    assert main(["predict", str(tmp_path / "nope.keras"), missing,
                 "-o", str(tmp_path / "p.csv")]) == 1
    assert "no such model file" in _no_traceback(capsys.readouterr().err)
    assert main(["prepare", str(tmp_path / "nodir"), "-o", str(tmp_path / "d.npz")]) == 1
    assert "no such folder" in _no_traceback(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_wrong_formats(tmp_path, capsys, pipeline):
    text = tmp_path / "notes.npz"
    text.write_text("not a dataset")
    assert main(["fit", str(text), "-o", str(tmp_path / "m.keras")]) == 1
    assert "is not a dataset" in _no_traceback(capsys.readouterr().err)
    # a dataset where a model is expected
    assert main(["predict", str(pipeline["data"]), str(pipeline["data"]),
                 "-o", str(tmp_path / "p.csv")]) == 1
    assert "not" in _no_traceback(capsys.readouterr().err)
    # an .npz without images
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    assert main(["fit", str(tmp_path / "other.npz"), "-o", str(tmp_path / "m.keras")]) == 1
    assert "no X" in _no_traceback(capsys.readouterr().err)
    # a folder that is not a CTC dataset
    (tmp_path / "empty").mkdir()
    assert main(["prepare", str(tmp_path / "empty"), "-o", str(tmp_path / "d.npz")]) == 1
    assert "not a CTC folder" in _no_traceback(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "notes.npz", "other.npz"]


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(Exception, match="no such dataset file"):
        main(["--debug", "fit", str(tmp_path / "nope.npz"), "-o", str(tmp_path / "m.keras")])


def test_existing_outputs_need_overwrite(tmp_path, capsys, pipeline, ctc_dir):
    data, model = str(pipeline["data"]), str(pipeline["model"])
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    report_dir = tmp_path / "rep"
    report_dir.mkdir()
    (report_dir / "index.html").write_text("keep me")
    runs = [
        ["prepare", str(ctc_dir), "-o", str(taken)],
        ["fit", data, "-o", model],                      # model exists
        ["predict", model, data, "-o", str(taken)],
        ["report", model, data, "-o", str(report_dir)],
        ["demo", "-o", str(report_dir)],
    ]
    before = Path(model).stat().st_mtime_ns
    for argv in runs:
        assert main(argv) == 1, argv
        assert "--overwrite" in _no_traceback(capsys.readouterr().err)
    assert taken.read_text() == "keep me"
    assert (report_dir / "index.html").read_text() == "keep me"
    assert Path(model).stat().st_mtime_ns == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep", "taken"]
    # with --overwrite the report replaces its own files and leaves others alone
    (report_dir / "mine.txt").write_text("untouched")
    assert main(["report", model, data, "-o", str(report_dir), "--overwrite"]) == 0
    assert "<img" in (report_dir / "index.html").read_text()
    assert (report_dir / "mine.txt").read_text() == "untouched"


def test_predict_unlabelled_images(tmp_path, capsys, pipeline):
    from ai4cellfate.datasets import FateDataset

    X = FateDataset.load(pipeline["data"]).X[:5]
    np.save(tmp_path / "crops.npy", X)
    out = tmp_path / "p.csv"
    assert main(["predict", str(pipeline["model"]), str(tmp_path / "crops.npy"),
                 "-o", str(out)]) == 0
    pred = pd.read_csv(out)
    assert len(pred) == 5 and "true_fate" not in pred and "split" not in pred
    # a report needs labels
    assert main(["report", str(pipeline["model"]), str(tmp_path / "crops.npy"),
                 "-o", str(tmp_path / "r")]) == 1
    assert "no fate labels" in _no_traceback(capsys.readouterr().err)


def test_failed_report_leaves_nothing(tmp_path, capsys, pipeline):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "wrong.npz", X=rng.random((6, 12, 12), dtype=np.float32),
             y=np.array([0, 1] * 3))
    out = tmp_path / "sub" / "report"
    assert main(["report", str(pipeline["model"]), str(tmp_path / "wrong.npz"),
                 "-o", str(out)]) == 1
    _no_traceback(capsys.readouterr().err)
    assert not out.exists()
    assert not [p for p in (tmp_path / "sub").iterdir()]  # no temporary folder left


def test_prepare_movie_and_tracks(tmp_path, capsys):
    T, H, W = 16, 100, 100
    yy, xx = np.mgrid[:H, :W]
    movie = np.full((T, H, W), 100, np.uint16)
    rows = []
    for t in range(T):
        movie[t][(yy - 70) ** 2 + (xx - 60) ** 2 <= 49] = 900
        rows.append((2, t, 70.0, 60.0, -1))
        if t < 8:
            movie[t][(yy - 30) ** 2 + (xx - 30) ** 2 <= 49] = 1200
            rows.append((1, t, 30.0, 30.0, -1))
        else:
            for tid, cx in ((3, 20), (4, 42)):
                movie[t][(yy - 30) ** 2 + (xx - cx) ** 2 <= 25] = 1000
                rows.append((tid, t, 30.0, float(cx), 1))
    src = tmp_path / "movie"
    src.mkdir()
    tifffile.imwrite(src / "movie.tif", movie)
    pd.DataFrame(rows, columns=["track_id", "t", "y", "x", "parent_id"]).to_csv(
        src / "tracks.csv", index=False)
    out = tmp_path / "d.npz"
    assert main(["prepare", str(src), "--format", "tracks", "--horizon", "4",
                 "--crop-size", "24", "--output-size", "12", "-o", str(out)]) == 0
    assert "lineage groups" in capsys.readouterr().out
    from ai4cellfate.datasets import FateDataset

    data = FateDataset.load(out)
    assert data.X.shape[1:] == (12, 12) and set(data.class_counts()) == {0, 1}
    # the CTC-only segmentation choice is bad usage for this format
    assert main(["prepare", str(src), "--format", "tracks", "--segmentation", "gt",
                 "-o", str(tmp_path / "e.npz")]) == 2
    capsys.readouterr()
    (src / "tracks.csv").write_text("not,a\ntracks,table\n")
    assert main(["prepare", str(src), "--format", "tracks", "-o", str(tmp_path / "e.npz")]) == 1
    _no_traceback(capsys.readouterr().err)
    assert not (tmp_path / "e.npz").exists()


# --------------------------------------------------------------------------
# End to end
# --------------------------------------------------------------------------


def test_pipeline_end_to_end(pipeline, capsys):
    assert pipeline["codes"] == {"prepare": 0, "fit": 0, "predict": 0, "report": 0}
    work = pipeline["work"]
    from ai4cellfate.datasets import FateDataset

    data = FateDataset.load(pipeline["data"])
    assert data.X.shape[1:] == (16, 16) and set(data.class_counts()) == {0, 1}

    record = json.loads(history_path(pipeline["model"]).read_text())
    assert record["seed"] == 0 and record["params"]["max_epochs"] == 1
    assert record["params"]["augment"] is False
    assert len(record["history"]) == record["n_epochs"] == 2
    assert record["test_indices"] and record["test_metrics"]["balanced_accuracy"] >= 0

    pred = pd.read_csv(work / "pred.csv")
    assert len(pred) == len(data)
    for col in ("sample", "split", "track", "frame", "true_fate", "predicted_fate",
                "p_fate0", "p_fate1", "z0", "z1"):
        assert col in pred.columns
    assert np.allclose(pred[["p_fate0", "p_fate1"]].sum(axis=1), 1)
    assert (pred["split"] == "test").sum() == len(record["test_indices"])
    assert pred["track"].tolist() == data.table["track_id"].tolist()

    report = work / "report"
    for name in ("metrics.json", "summary.md", "latent_space.png", "traversal_grid.png",
                 "training_curves.png", "confusion_matrix.png", "index.html"):
        assert (report / name).stat().st_size > 0, name
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["data"]["n_samples"] == len(record["test_indices"])
    assert "| Balanced accuracy" in (report / "summary.md").read_text()
    page = (report / "index.html").read_text()
    for img in ("latent_space.png", "traversal_grid.png", "training_curves.png",
                "confusion_matrix.png"):
        assert f'src="{img}"' in page
    assert not [p for p in work.iterdir() if p.name.startswith(".")]  # no temp files


@pytest.mark.parametrize("installed, expected", [
    ({"jax", "tensorflow", "torch"}, "jax"),
    ({"tensorflow", "torch"}, "tensorflow"),
    ({"torch"}, "torch"),
])
def test_default_backend_is_the_first_installed_in_speed_order(installed, expected,
                                                               monkeypatch):
    """Without --backend or KERAS_BACKEND the command picks JAX, then
    TensorFlow, then PyTorch: the order of measured fit and demo speed."""
    from ai4cellfate import cli

    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.delitem(sys.modules, "keras", raising=False)  # as before Keras is imported
    monkeypatch.setattr(cli, "_installed", lambda name: name in installed)
    assert cli._setup_backend(None) == expected
    assert os.environ["KERAS_BACKEND"] == expected


def test_no_installed_backend_is_named(monkeypatch):
    from ai4cellfate import cli

    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.delitem(sys.modules, "keras", raising=False)
    monkeypatch.setattr(cli, "_installed", lambda name: False)
    with pytest.raises(cli.CommandError, match="no Keras backend is installed"):
        cli._setup_backend(None)


def test_build_parser_defaults():
    args = build_parser().parse_args(["demo"])
    assert args.output == "ai4cellfate-demo" and not args.quick and args.seed == 0


def test_fit_resumes_from_checkpoint(tmp_path, capsys, pipeline, monkeypatch):
    """Ctrl-C during 'fit --checkpoint-dir', then '--resume': the model equals
    that of an uninterrupted run; the seed comes from the checkpoint."""
    import ai4cellfate
    import ai4cellfate._checkpoint as ckpt_module
    from ai4cellfate.datasets import FateDataset

    longer = [{"max_epochs=1": "max_epochs=3", "min_epochs=1": "min_epochs=3"}.get(a, a)
              for a in TINY]
    data, ck = str(pipeline["data"]), tmp_path / "ckpt"
    assert main(["fit", data, "-o", str(tmp_path / "ref.keras"), *longer]) == 0
    orig = ckpt_module.write_checkpoint

    def write_then_interrupt(path, meta, *arrays, **kwargs):
        orig(path, meta, *arrays, **kwargs)
        if meta["epochs_done"] == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as mp:
        mp.setattr(ckpt_module, "write_checkpoint", write_then_interrupt)
        capsys.readouterr()
        assert main(["fit", data, "-o", str(tmp_path / "m.keras"), *longer,
                     "--checkpoint-dir", str(ck)]) == 0
    err = capsys.readouterr().err
    assert "interrupted after 2 epochs" in err and "--resume" in err
    assert "warning: __array__" not in err
    assert (ck / ckpt_module.CHECKPOINT_NAME).exists()
    i = longer.index("--seed")
    no_seed = longer[:i] + longer[i + 2:]
    capsys.readouterr()
    assert main(["fit", data, "-o", str(tmp_path / "m.keras"), *no_seed,
                 "--checkpoint-dir", str(ck), "--resume", "--overwrite"]) == 0
    out = capsys.readouterr().out
    assert "resumed from the checkpoint after epoch 2" in out and "seed 0" in out
    assert not (ck / ckpt_module.CHECKPOINT_NAME).exists()
    X = FateDataset.load(data).X
    ref = ai4cellfate.load(tmp_path / "ref.keras").transform(X)
    np.testing.assert_array_equal(ai4cellfate.load(tmp_path / "m.keras").transform(X), ref)
    record = json.loads(history_path(tmp_path / "m.keras").read_text())
    assert record["resumed_from_epoch"] == 2 and record["n_epochs"] == 4
