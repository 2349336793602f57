"""Malformed inputs get a clear error before any work starts.

Each case asserts the exception type and that the message names the argument
and the problem. Nothing here trains a model except the fitted fixture.
"""

import json
import zipfile

import numpy as np
import pandas as pd
import pytest

import ai4cellfate
from ai4cellfate import CellFateAAE
from ai4cellfate.datasets import make_nuclei

from conftest import FAST

X20, Y20 = make_nuclei(40, image_size=16, random_state=3)


def _x(index, value):
    X = X20.copy()
    X[index] = value
    return X


FIT_CASES = [
    ("nan pixel", dict(X=_x(0, np.nan)), ValueError, r"X contains \d+ NaN or infinite"),
    ("inf pixel", dict(X=np.where(X20 > 0.5, np.inf, X20)), ValueError, "NaN or infinite"),
    ("negative", dict(X=X20 - 0.5), ValueError, r"X has values in .* must lie in \[0, 1\]"),
    ("above one", dict(X=X20 * 3), ValueError, r"X has values in .* must lie in \[0, 1\]"),
    ("integer", dict(X=(X20 * 255).astype(np.uint8)), TypeError, "X has integer dtype uint8"),
    ("strings", dict(X=np.full((40, 16, 16), "a")), TypeError, "X must be numeric"),
    ("complex", dict(X=X20.astype(complex)), TypeError, "X must be real-valued"),
    ("1-d", dict(X=X20.ravel()), ValueError, "X must have 3 dimensions"),
    ("5-d", dict(X=X20[..., None, None]), ValueError, "X must have 3 dimensions"),
    ("2-d without image_shape", dict(X=X20.reshape(40, -1)), ValueError, "set image_shape"),
    ("empty", dict(X=X20[:0], y=Y20[:0]), ValueError, "X is empty"),
    ("tiny images", dict(X=X20[:, :3, :3]), ValueError, "at least 4 x 4"),
    ("length mismatch", dict(y=Y20[:-1]), ValueError, "X has 40 samples but y has 39"),
    ("one class", dict(y=np.zeros(40, int)), ValueError, "y has a single class"),
    ("y 2-d", dict(y=np.zeros((40, 2))), ValueError, "y must be 1-D"),
    ("continuous y", dict(y=np.linspace(0, 1, 40)), ValueError, "continuous"),
    ("groups mismatch", dict(groups=np.arange(5)), ValueError, r"groups must be 1-D with one entry"),
    ("one sample", dict(X=X20[:1], y=Y20[:1]), ValueError, "single class"),
]


@pytest.mark.parametrize("case,kw,exc,match", FIT_CASES, ids=[c[0] for c in FIT_CASES])
def test_fit_rejects_bad_data(case, kw, exc, match):
    args = dict(X=X20, y=Y20, groups=None)
    args.update(kw)
    with pytest.raises(exc, match=match):
        CellFateAAE(max_epochs=1, stage1_epochs=0, min_epochs=0).fit(
            args["X"], args["y"], groups=args["groups"]
        )


PARAM_CASES = [
    (dict(latent_dim=0), ValueError, "latent_dim must be >= 1"),
    (dict(latent_dim=2.5), TypeError, "latent_dim must be an integer"),
    (dict(lambda_contra=-1), ValueError, "lambda_contra must be >= 0"),
    (dict(lambda_recon=float("nan")), ValueError, "lambda_recon must be finite"),
    (dict(lambda_adv="4"), TypeError, "lambda_adv must be a real number"),
    (dict(temperature=0), ValueError, "temperature must be > 0"),
    (dict(batch_size=1), ValueError, "batch_size must be >= 2"),
    (dict(learning_rate=0), ValueError, "learning_rate must be > 0"),
    (dict(min_epochs=5, max_epochs=2), ValueError, r"min_epochs \(5\) must not exceed"),
    (dict(validation_fraction=1.0), ValueError, "validation_fraction must be < 1"),
    (dict(min_accuracy=1.5), ValueError, "min_accuracy must be <= 1"),
    (dict(augment="yes"), TypeError, "augment must be True or False"),
    (dict(ssim_form="mean"), ValueError, "ssim_form must be 'product' or 'sum'"),
    (dict(image_shape=(16,)), ValueError, "image_shape must be"),
    (dict(verbose=5), ValueError, "verbose must be 'auto', 0, 1 or 2"),
]


@pytest.mark.parametrize("params,exc,match", PARAM_CASES, ids=[str(c[0]) for c in PARAM_CASES])
def test_fit_rejects_bad_parameters(params, exc, match):
    with pytest.raises(exc, match=match):
        CellFateAAE(**params).fit(X20, Y20)


def test_batch_size_larger_than_data():
    with pytest.raises(ValueError, match=r"batch_size=500 is larger than the \d+ training images"):
        CellFateAAE(batch_size=500).fit(X20, Y20)


def test_too_few_samples_for_validation_split():
    X, y = X20[:3], np.array([0, 0, 1])
    with pytest.raises(ValueError, match="validation_fraction=0.2"):
        CellFateAAE().fit(X, y)


def test_too_few_groups_for_validation_split():
    with pytest.raises(ValueError, match="groups has 2 distinct groups"):
        CellFateAAE().fit(X20, Y20, groups=np.arange(40) % 2)


@pytest.mark.parametrize("method", ["transform", "predict", "predict_proba", "decode"])
def test_use_before_fit(method):
    from sklearn.exceptions import NotFittedError

    arg = np.zeros((1, 2)) if method == "decode" else X20
    with pytest.raises(NotFittedError, match="not fitted"):
        getattr(CellFateAAE(), method)(arg)


def test_fitted_model_rejects_bad_inputs(fitted):
    with pytest.raises(ValueError, match=r"shape \(20, 20, 1\).*fitted on images of shape"):
        fitted.transform(make_nuclei(2, image_size=20, random_state=0)[0])
    with pytest.raises(ValueError, match=r"Z must have shape \(n, 2\)"):
        fitted.decode(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="Z contains NaN"):
        fitted.decode(np.array([[np.nan, 0.0]]))
    with pytest.raises(TypeError, match="Z must be numeric"):
        fitted.decode(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="X contains"):
        fitted.predict(_x(1, np.nan))
    with pytest.raises(ValueError, match="path must end with '.keras'"):
        fitted.save("model.h5")


def test_unseen_labels_at_score_time(fitted, nuclei):
    X, y = nuclei
    # sklearn's accuracy would count them wrong silently; ours names them.
    with pytest.raises(ValueError, match=r"y contains labels the model was not fitted on: "
                                         r"\[7\]; its classes are \[0, 1\]"):
        fitted.score(X, np.where(np.arange(len(y)) == 3, 7, y))
    with pytest.raises(ValueError, match="X has 64 samples but y has 3"):
        fitted.score(X, y[:3])
    assert fitted.score(X, y) == pytest.approx(np.mean(fitted.predict(X) == y))
    from ai4cellfate.metrics import fate_report

    with pytest.raises(ValueError, match="7"):
        fate_report(np.full(len(y), 7), fitted.predict(X), labels=[0, 1])


def test_load_rejects_bad_files(tmp_path, fitted):
    with pytest.raises(FileNotFoundError, match="No such model file"):
        ai4cellfate.load(tmp_path / "missing.keras")
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="not a readable ai4cellfate model file"):
        ai4cellfate.load(junk)
    good = tmp_path / "good.keras"
    fitted.save(good)
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated, corrupted"):
        ai4cellfate.load(truncated)
    # a plain Keras archive (another format) is refused
    other = tmp_path / "other.keras"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(other, "w") as dst:
        for item in src.namelist():
            if item != "ai4cellfate.json":
                dst.writestr(item, src.read(item))
    with pytest.raises(ValueError, match="not an ai4cellfate model file"):
        ai4cellfate.load(other)
    # a file from a newer, incompatible version names both versions
    newer = tmp_path / "newer.keras"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(newer, "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            if item == "ai4cellfate.json":
                meta = json.loads(data)
                meta.update(format_version=99, ai4cellfate_version="9.0.0")
                data = json.dumps(meta)
            dst.writestr(item, data)
    with pytest.raises(ValueError, match=r"saved by ai4cellfate 9\.0\.0.*this is ai4cellfate"):
        ai4cellfate.load(newer)


# --------------------------------------------------------------------------
# Readers, transformers and the command line
# --------------------------------------------------------------------------


def _ctc_with_unknown_parent(tmp_path):
    from test_datasets_ctc import LINEAGE, write_ctc

    return write_ctc(tmp_path / "ctc", lineage=LINEAGE + "6 0 3 9\n")


def _scene():
    from test_datasets_tracks import _scene as scene

    return scene([(20, 30)])


def test_ctc_lineage_naming_missing_parents(tmp_path):
    from ai4cellfate.datasets import load_ctc

    root = _ctc_with_unknown_parent(tmp_path)
    with pytest.raises(ValueError, match=r"man_track.txt.*names parents that are not tracks "
                                         r"in it: 9"):
        load_ctc(root, "01")


READER_CASES = [
    ("masks of the wrong shape", lambda m, k, t: dict(masks=k[:, :, :-1]), ValueError,
     r"masks must have shape \(T, H, W\) = \(3, 64, 64\).*got \(3, 64, 63\)"),
    ("float masks", lambda m, k, t: dict(masks=k.astype(float)), TypeError,
     "masks must hold integer labels"),
    ("tracks without x", lambda m, k, t: dict(tracks=t.drop(columns="x")), ValueError,
     r"tracks lacks the column\(s\) \['x'\]"),
    ("NaN positions", lambda m, k, t: dict(tracks=t.assign(y=np.nan)), ValueError,
     "tracks.y must hold finite numbers"),
    ("2-D movie", lambda m, k, t: dict(movie=m[0]), ValueError, "movie must have shape"),
    ("pixel size missing", lambda m, k, t: dict(crop_size_um=10.0), ValueError,
     "crop_size_um needs pixel_size"),
]


@pytest.mark.parametrize("case,change,exc,match", READER_CASES,
                         ids=[c[0] for c in READER_CASES])
def test_movie_and_tracks_reader_rejects(case, change, exc, match):
    from ai4cellfate.datasets import make_fate_dataset

    movie, masks, tracks = _scene()
    args = dict(movie=movie, tracks=tracks, masks=masks, frames="first", crop_size=15,
                output_size=None, normalize=None)
    args.update(change(movie, masks, tracks))
    with pytest.raises(exc, match=match):
        make_fate_dataset(**args)


def test_dataset_file_of_another_kind(tmp_path):
    from ai4cellfate.datasets import FateDataset, load_ctc

    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(ValueError, match="not a saved FateDataset"):
        FateDataset.load(other)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"not a saved FateDataset \(not an .npz archive\)"):
        FateDataset.load(junk)
    with pytest.raises(ValueError, match="is not a folder"):
        load_ctc(other, "01")


TRANSFORMER_CASES = [
    ("RegionFeatures NaN", "features", dict(X=_x(0, np.nan)), ValueError,
     "X contains NaN or infinite values"),
    ("RegionFeatures 2-D", "features", dict(X=X20[0]), ValueError,
     r"X must have shape \(n, H, W\) or \(n, H, W, C\), got \(16, 16\)"),
    ("RegionFeatures threshold", "features_threshold", {}, ValueError,
     "threshold must be a finite number"),
    ("MaxNormalizer strings", "max", dict(X=np.full((2, 4, 4), "a")), TypeError,
     "X must hold numbers"),
    ("ChannelRatio channel", "ratio", dict(X=X20[..., None]), ValueError,
     "numerator=1: channel 1 does not exist"),
    ("IntensityStretch mode", "stretch_mode", {}, ValueError,
     "mode must be 'dataset' or 'image'"),
]


def _transformer(kind):
    from ai4cellfate.features import RegionFeatures
    from ai4cellfate.preprocessing import ChannelRatio, IntensityStretch, MaxNormalizer

    return {
        "features": RegionFeatures(),
        "features_threshold": RegionFeatures(threshold=float("nan")),
        "max": MaxNormalizer(),
        "ratio": ChannelRatio(numerator=1, denominator=0),
        "stretch_mode": IntensityStretch(mode="movie"),
    }[kind]


@pytest.mark.parametrize("case,kind,kw,exc,match", TRANSFORMER_CASES,
                         ids=[c[0] for c in TRANSFORMER_CASES])
def test_transformers_reject(case, kind, kw, exc, match):
    with pytest.raises(exc, match=match):
        _transformer(kind).fit_transform(kw.get("X", X20))


def test_fitted_transformer_rejects_other_channel_count():
    from ai4cellfate.preprocessing import MaxNormalizer

    norm = MaxNormalizer().fit(np.stack([X20, X20], axis=-1))
    with pytest.raises(ValueError, match=r"X has shape \(40, 16, 16, 1\) but MaxNormalizer was "
                                         r"fitted on images \(n, h, w, 2\)"):
        norm.transform(X20[..., None])


@pytest.fixture(scope="module")
def saved_dataset(tmp_path_factory):
    from ai4cellfate.datasets import FateDataset

    path = tmp_path_factory.mktemp("bad-cli") / "data.npz"
    groups = np.arange(len(Y20)) // 2
    table = pd.DataFrame({"track_id": np.arange(len(Y20)), "t": 0, "y": 8.0, "x": 8.0})
    FateDataset(X20, Y20, groups, table).save(path)
    return path


CLI_CASES = [
    ("prepare missing folder", lambda d, t: ["prepare", str(t / "nowhere"), "--format", "ctc",
                                             "-o", str(t / "o.npz")], 1, "nowhere"),
    ("fit on a non-dataset", lambda d, t: ["fit", str(t / "junk.npz"), "-o", str(t / "m.keras")],
     1, "junk.npz is not a dataset (neither .npz nor .npy)"),
    ("negative lambda", lambda d, t: ["fit", str(d), "-o", str(t / "m.keras"), "--param",
                                      "lambda_contra=-1"], 2, "lambda_contra must be >= 0"),
    ("predict with a non-model", lambda d, t: ["predict", str(t / "junk.keras"), str(d),
                                               "-o", str(t / "p.csv")],
     1, "not a readable ai4cellfate model file"),
    ("bad crop size", lambda d, t: ["prepare", str(t), "--format", "ctc", "--crop-size", "0",
                                    "-o", str(t / "o.npz")], 2, "crop_size must be an integer >= 4 (pixels), got 0"),
]


@pytest.mark.parametrize("case,argv,code,match", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_command_line_rejects(case, argv, code, match, saved_dataset, tmp_path, capsys):
    from ai4cellfate.cli import main

    (tmp_path / "junk.npz").write_bytes(b"junk")
    (tmp_path / "junk.keras").write_bytes(b"junk")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(argv(saved_dataset, tmp_path)) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert match in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


# ------------------------------------------------------- failure states (estimator)
def _fitted_state(model):
    return {k: (v.copy() if isinstance(v, np.ndarray) else v)
            for k, v in vars(model).items() if k.endswith("_") or k == "_layout"}


@pytest.mark.parametrize("case", ["one class", "other image size", "NaN", "bad param",
                                  "labels with None"])
def test_failed_refit_leaves_the_fitted_estimator_unchanged(fitted, nuclei, case):
    import copy

    X, y = nuclei
    model = copy.deepcopy(fitted)
    before = _fitted_state(model)
    Z_before = model.transform(X[:5])
    bad_X, bad_y = X, y
    if case == "one class":
        bad_y = np.zeros_like(y)
    elif case == "other image size":  # valid new images, then a label error
        bad_X, bad_y = X[:, :12, :12], np.zeros_like(y)
    elif case == "NaN":
        bad_X = X.copy()
        bad_X[0, 0, 0] = np.nan
    elif case == "bad param":
        model.set_params(batch_size=0)
    else:
        bad_y = np.array([None] + list(y[1:]), dtype=object)
    with pytest.raises((ValueError, TypeError)):
        model.fit(bad_X, bad_y)
    after = _fitted_state(model)
    assert after.keys() == before.keys()
    assert after["image_shape_"] == before["image_shape_"]
    np.testing.assert_array_equal(after["classes_"], before["classes_"])
    assert after["model_"] is before["model_"]
    np.testing.assert_array_equal(model.transform(X[:5]), Z_before)


def test_constant_images_are_refused_before_training(nuclei):
    X, y = nuclei
    for value in (0.0, 0.4):
        with pytest.raises(ValueError, match="no image structure: every one of its 64 crops"):
            CellFateAAE(**FAST).fit(np.full_like(X, value), y)


def test_collapsed_latent_warns(nuclei, monkeypatch):
    import ai4cellfate.estimator as est

    X, y = nuclei
    monkeypatch.setattr(est, "_predict_net", lambda net, A: np.zeros((len(A), 2), "float32")
                        if net.name == "encoder" else net.predict(A, verbose=0))
    with pytest.warns(est.LatentWarning, match="latent space collapsed"):
        CellFateAAE(**dict(FAST, max_epochs=1)).fit(X, y)


def test_resume_without_a_checkpoint_warns(nuclei, tmp_path):
    X, y = nuclei
    with pytest.warns(UserWarning, match="holds no checkpoint.*starts afresh"):
        CellFateAAE(checkpoint_dir=tmp_path, **dict(FAST, max_epochs=1)).fit(X, y, resume=True)


@pytest.mark.parametrize("value,exc,match", [
    (-1, ValueError, r"random_state must be in \[0, 2\*\*32 - 1\]; got -1"),
    (2**40, ValueError, "random_state must be in"),
    ("7", TypeError, "random_state must be None, an integer"),
    (True, TypeError, "random_state must be None, an integer"),
])
def test_random_state_is_checked_before_any_work(nuclei, value, exc, match, monkeypatch):
    from ai4cellfate.training import loop

    monkeypatch.setattr(loop, "train_two_stage", lambda *a, **k: pytest.fail("trained"))
    X, y = nuclei
    with pytest.raises(exc, match=match):
        CellFateAAE(**dict(FAST, random_state=value)).fit(X, y)


@pytest.mark.parametrize("labels,match", [
    ([0, "a"] * 32, "mixes label types"),
    ([None, 1] * 32, "32 missing labels"),
])
def test_labels_mixing_types_or_missing(nuclei, labels, match):
    X, _ = nuclei
    with pytest.raises(ValueError, match=match):
        CellFateAAE(**FAST).fit(X, np.array(labels, dtype=object))


def test_inference_input_messages(fitted, nuclei):
    import pandas as pd

    X, _ = nuclei
    with pytest.raises(ValueError, match="one image without the batch axis.*X\\[None\\]"):
        fitted.transform(X[0])
    with pytest.raises(ValueError, match="rows have different lengths"):
        fitted.decode([[0.0, 1.0], [0.0]])
    big = X.astype(np.float64)
    big[0, 0, 0] = 1e300
    with pytest.raises(ValueError, match="beyond the float32 range"):
        fitted.transform(big)
    series = pd.Series(list(X[:4]))
    np.testing.assert_array_equal(fitted.transform(series), fitted.transform(X[:4]))
    with pytest.raises(ValueError, match="Series of images of different shapes"):
        fitted.transform(pd.Series([X[0], X[1, :8, :8]]))


def test_interrupt_while_keras_imports_leaves_fit_usable(tmp_path):
    """Ctrl-C during the first import of Keras inside fit: a second fit works."""
    import subprocess
    import sys

    script = tmp_path / "child.py"
    script.write_text(
        "import importlib.abc, sys\n"
        "class Interrupt(importlib.abc.MetaPathFinder):\n"
        "    fired = False\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'keras.src.layers' and not Interrupt.fired:\n"
        "            Interrupt.fired = True\n"
        "            raise KeyboardInterrupt\n"
        "        return None\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "from ai4cellfate import CellFateAAE\n"
        "from ai4cellfate.datasets import make_nuclei\n"
        "X, y = make_nuclei(64, image_size=16, random_state=0)\n"
        "m = CellFateAAE(stage1_epochs=1, min_epochs=1, max_epochs=1, batch_size=16,\n"
        "                random_state=0, verbose=0)\n"
        "try:\n"
        "    m.fit(X, y)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted')\n"
        "assert Interrupt.fired\n"
        "m.fit(X, y)\n"
        "print('refit', m.transform(X[:2]).shape)\n"
    )
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "interrupted" in res.stdout and "refit (2, 2)" in res.stdout
