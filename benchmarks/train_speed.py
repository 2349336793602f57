"""Training and inference speed of CellFateAAE on each installed Keras backend.

For each backend (in its own process): warm images/second of stage-1 and stage-2
training on 2,184 crops of 20 x 20 at batch 30 (the preprint's training set;
TensorFlow compiles the step with XLA and PyTorch its autoencoder part with
``torch.compile``, as ``CellFateAAE`` does for a default fit of that many crops,
``jit_compile="auto"``, and with ``CellFateAAE``'s thread setting;
``--backends tensorflow-graph`` adds its graph mode without XLA,
``torch-eager`` PyTorch's eager step), and transform throughput on 100,000 crops, through
the path ``CellFateAAE.transform`` takes (``ai4cellfate.training.inference.predict``)
and, for comparison, through Keras' ``Model.predict``. Prints a table. The first
epoch's seconds include compiling: ai4cellfate's cache of compiled programs is off
in the children.

Targets on a 2-core CPU: stage-2 >= 4,000 images/s on the fastest backend, and no
backend more than 3x slower than it; stage 2 no slower than 1.3 x stage 1 on the
same backend; transform >= 50,000 crops/s.

Usage: python benchmarks/train_speed.py [--backends jax torch tensorflow tensorflow-graph
       torch-eager]
       [--epochs 3] [--torch-threads N]
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

N_TRAIN, BATCH, N_TRANSFORM = 2184, 30, 100_000


def measure(epochs, jit_compile):
    import keras
    import numpy as np

    from ai4cellfate import CellFateAAE
    from ai4cellfate.datasets import make_nuclei
    from ai4cellfate.estimator import _resolve_jit_compile
    from ai4cellfate.training import AdversarialAutoencoder
    from ai4cellfate.training.inference import predict
    from ai4cellfate.training.model import backend_module

    X, y = make_nuclei(N_TRAIN, random_state=0)
    X = X[..., None]
    y = y.astype("float32")
    n_steps = N_TRAIN // BATCH
    if jit_compile == "auto":
        # what CellFateAAE chooses for a default fit of this many crops
        d = CellFateAAE()
        jit_compile = _resolve_jit_compile(
            "auto", (d.stage1_epochs + d.min_epochs + 1) * n_steps)
    model = AdversarialAutoencoder((20, 20, 1), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3, beta_1=0.0, beta_2=0.9),
                  jit_compile=jit_compile)
    Xs, ys = X[: n_steps * BATCH], y[: n_steps * BATCH]  # whole batches
    backend = keras.backend.backend()
    compiled = getattr(model, "_compiled_losses", None) is not None
    out = {"backend": backend + ("+xla" if backend == "tensorflow" and model.jit_compile else "")
           + ("+compile" if compiled else "")}

    def rate(stage):
        if stage == 1:
            model.set_loss_weights(lambda_recon=20.0, lambda_contra=0.0, lambda_cov=0.0)
        else:
            model.set_loss_weights(lambda_recon=8.0, lambda_contra=6.0, lambda_cov=1e-4)
        t = time.perf_counter()
        model.fit(Xs, ys, batch_size=BATCH, epochs=1, verbose=0)  # warm-up/compile
        first = time.perf_counter() - t
        t = time.perf_counter()
        model.fit(Xs, ys, batch_size=BATCH, epochs=epochs, verbose=0)
        return len(Xs) * epochs / (time.perf_counter() - t), first

    # as CellFateAAE.fit runs (one intra-op thread on PyTorch)
    with backend_module().cpu_threads():
        out["stage1_img_s"], out["first_epoch_s"] = rate(1)
        out["stage2_img_s"], _ = rate(2)
    if compiled and model._compiled_losses.error:
        out["backend"] += f" (compile failed: {model._compiled_losses.error})"
    big = np.random.default_rng(0).random((N_TRANSFORM, 20, 20, 1), dtype=np.float32)
    # What CellFateAAE.transform/predict run: one compiled encoder call per
    # fixed-size batch (ai4cellfate.training.inference.predict).
    predict(model.encoder, big[:8192])  # warm-up/compile
    t = time.perf_counter()
    predict(model.encoder, big)
    out["transform_crops_s"] = N_TRANSFORM / (time.perf_counter() - t)
    # Keras' own Model.predict, for comparison.
    model.encoder.predict(big[:8192], batch_size=1024, verbose=0)
    t = time.perf_counter()
    model.encoder.predict(big, batch_size=1024, verbose=0)
    out["keras_predict_crops_s"] = N_TRANSFORM / (time.perf_counter() - t)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="*", default=["jax", "tensorflow", "torch"],
                        help="jax, tensorflow, torch; tensorflow-graph is TensorFlow "
                             "without XLA, torch-eager PyTorch without torch.compile")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="OMP_NUM_THREADS for the torch run (default: unset)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--jit", default="auto", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        jit = {"auto": "auto", "off": False}[args.jit]
        print("RESULT " + json.dumps(measure(args.epochs, jit)), flush=True)
        return 0
    rows = []
    for name in args.backends:
        backend, jit = {"tensorflow-graph": ("tensorflow", "off"),
                        "torch-eager": ("torch", "off")}.get(name, (name, "auto"))
        if importlib.util.find_spec(backend) is None:
            print(f"{backend}: not installed")
            continue
        # ``first epoch s`` includes compiling: ai4cellfate's cache of compiled
        # programs (JAX) is off, so every run compiles as a first one does
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
                   AI4CELLFATE_CACHE_DIR="off")
        if backend == "torch" and args.torch_threads:
            env["OMP_NUM_THREADS"] = str(args.torch_threads)
        res = subprocess.run([sys.executable, __file__, "--child", "--epochs", str(args.epochs),
                              "--jit", jit], env=env, capture_output=True, text=True)
        line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
        if res.returncode or not line:
            print(f"{backend}: failed\n{res.stderr[-2000:]}")
            continue
        rows.append(json.loads(line[0][7:]))
    print(f"\n{'backend':<16} {'stage 1 img/s':>14} {'stage 2 img/s':>14} {'s2/s1 time':>11} "
          f"{'transform crops/s':>18} {'Model.predict':>14} {'first epoch s':>14}")
    for r in rows:
        ratio = r["stage1_img_s"] / r["stage2_img_s"]
        print(f"{r['backend']:<16} {r['stage1_img_s']:>14,.0f} {r['stage2_img_s']:>14,.0f} "
              f"{ratio:>11.2f} {r['transform_crops_s']:>18,.0f} "
              f"{r['keras_predict_crops_s']:>14,.0f} {r['first_epoch_s']:>14.1f}")
    if rows:
        best2 = max(r["stage2_img_s"] for r in rows)
        best_t = max(r["transform_crops_s"] for r in rows)
        print(f"\ntargets: stage 2 >= 4,000 img/s: {best2:,.0f} "
              f"({'met' if best2 >= 4000 else 'NOT met'}); "
              f"transform >= 50,000 crops/s: {best_t:,.0f} "
              f"({'met' if best_t >= 50000 else 'NOT met'}); "
              "stage 2 within 3x of the fastest: "
              + ", ".join(f"{r['backend']} {best2 / r['stage2_img_s']:.1f}x" for r in rows)
              + "; stage 2 <= 1.3 x stage 1 time: "
              + ", ".join(f"{r['backend']} {r['stage1_img_s'] / r['stage2_img_s']:.2f}"
                          for r in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
