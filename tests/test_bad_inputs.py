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
    (dict(verbose=5), ValueError, "verbose must be 0, 1 or 2"),
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
    # sklearn's accuracy simply counts them wrong; our metrics name them.
    from ai4cellfate.metrics import fate_report

    with pytest.raises(ValueError):
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
