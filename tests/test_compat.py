"""Files written by earlier versions keep loading, and files we write are shared-readable.

``tests/data/model-v0.1.0.keras`` was written by ai4cellfate 0.1.0 under
PyTorch (``tests/data/make_reference_model.py``); its ``-expected.npz`` holds
eight images with the latents, probabilities and decoded images 0.1.0
computed for them.
"""

import os
import stat
from pathlib import Path

import numpy as np
import pytest

import ai4cellfate

DATA = Path(__file__).parent / "data"
REFERENCES = sorted(DATA.glob("model-v*.keras"))


def test_reference_models_are_present():
    assert [p.name for p in REFERENCES] == ["model-v0.1.0.keras"]


@pytest.mark.backend
@pytest.mark.parametrize("path", REFERENCES, ids=[p.stem for p in REFERENCES])
def test_reference_model_loads_and_gives_its_numbers(path):
    model = ai4cellfate.load(path)
    expected = np.load(str(path).replace(".keras", "-expected.npz"))
    assert model.image_shape_ == (16, 16, 1)
    np.testing.assert_array_equal(model.classes_, expected["classes"])
    # other backends compute convolutions in another order: float32 round-off
    np.testing.assert_allclose(model.transform(expected["X"]), expected["Z"], atol=2e-4)
    np.testing.assert_allclose(model.predict_proba(expected["X"]), expected["proba"],
                               atol=2e-4)
    np.testing.assert_allclose(model.decode(expected["Z"]), expected["decoded"], atol=2e-4)
    assert model.stop_reason_ in ("criteria met", "max_epochs reached")
    assert list(model.history_["stage"])[0] == 1


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_written_files_have_the_default_mode(fitted, nuclei, tmp_path):
    """Atomic writes go through private temporary files; the results must not
    stay private (0600) but get the mode open() would give."""
    import pandas as pd

    from ai4cellfate._checkpoint import write_checkpoint
    from ai4cellfate.datasets import FateDataset

    X, y = nuclei
    table = pd.DataFrame({"track_id": np.arange(len(y)), "t": 0, "y": 0.0, "x": 0.0})
    mask = os.umask(0o022)
    try:
        fitted.save(tmp_path / "m.keras")
        FateDataset(X, y, np.arange(len(y)), table).save(tmp_path / "d.npz")
        write_checkpoint(str(tmp_path / "c.npz"), {}, [np.zeros(2)], [])
    finally:
        os.umask(mask)
    for name in ("m.keras", "d.npz", "c.npz"):
        assert _mode(tmp_path / name) == 0o644, name
