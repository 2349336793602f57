"""Write the reference model that tests/test_compat.py loads.

Run once per model-format version (not by the tests)::

    KERAS_BACKEND=torch python tests/data/make_reference_model.py

It saves a small fitted CellFateAAE and, beside it, eight images with the
latents, probabilities and decoded images this version computes for them, so
later versions can check that they still read the file and get the same
numbers.
"""

import os
import sys

import numpy as np

from ai4cellfate import CellFateAAE, __version__
from ai4cellfate.datasets import make_nuclei

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    X, y = make_nuclei(64, image_size=16, random_state=0)
    model = CellFateAAE(stage1_epochs=1, min_epochs=1, max_epochs=2, batch_size=16,
                        random_state=0).fit(X, y)
    stem = os.path.join(HERE, f"model-v{__version__}")
    if os.path.exists(stem + ".keras"):
        sys.exit(f"{stem}.keras exists; delete it first to regenerate it")
    model.save(stem + ".keras")
    probe = X[:8]
    Z = model.transform(probe)
    np.savez_compressed(
        stem + "-expected.npz", X=probe, Z=Z, proba=model.predict_proba(probe),
        decoded=model.decode(Z), classes=model.classes_,
    )
    print(f"wrote {stem}.keras ({os.path.getsize(stem + '.keras')} bytes)")


if __name__ == "__main__":
    main()
