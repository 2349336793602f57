"""Held-out balanced accuracy of CellFateAAE on synthetic nuclei (issue acceptance check).

make_nuclei with default arguments, 800 training and 400 held-out crops, default
lambdas, shortened training (stage1_epochs=3, min_epochs=5, max_epochs=15); also
checks that a pickle round trip gives the same latents (bitwise on JAX and PyTorch;
on TensorFlow the rebuilt graph may differ in the last bit, about 3e-8). Run once per backend:

    KERAS_BACKEND=torch python benchmarks/heldout_accuracy.py [--seed 0]
        [--jit-compile auto|true|false]

(``--jit-compile true`` on PyTorch checks the ``torch.compile``'d step, which
``"auto"`` leaves off for a fit this short.)
"""

import argparse
import pickle
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jit-compile", choices=["auto", "true", "false"], default="auto")
    args = parser.parse_args()
    import keras
    from sklearn.metrics import balanced_accuracy_score

    from ai4cellfate import CellFateAAE
    from ai4cellfate.datasets import make_nuclei

    X, y = make_nuclei(1200, random_state=args.seed)
    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    model = CellFateAAE(stage1_epochs=3, min_epochs=5, max_epochs=15, random_state=args.seed,
                        jit_compile=jit)
    t = time.perf_counter()
    model.fit(X[:800], y[:800])
    fit_s = time.perf_counter() - t
    acc = balanced_accuracy_score(y[800:], model.predict(X[800:]))
    diff = np.abs(pickle.loads(pickle.dumps(model)).transform(X[800:])
                  - model.transform(X[800:])).max()
    print(f"backend={keras.backend.backend()} jit_compile={jit} seed={args.seed} "
          f"fit_s={fit_s:.0f} "
          f"epochs={model.n_epochs_} stop='{model.stop_reason_}' "
          f"heldout_balanced_accuracy={acc:.3f} pickle_latent_max_abs_diff={diff:.1e}")


if __name__ == "__main__":
    main()
