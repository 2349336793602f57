"""Whole default fits on the shared HeLa sequence, per Keras backend.

One ``CellFateAAE(random_state=42)`` fit at the default schedule on all samples of
the Cell Tracking Challenge HeLa sequence (horizon 24, 40 px windows binned to
20 x 20), each backend in its own process. Prints wall seconds, epochs run, stop
reason and training images per second (the images of every training step, i.e.
steps x batch size, over the wall time, so criteria and the latent classifier are
included). The wall time is the ``fit`` call in a fresh process, compilation
included; importing Keras, its backend and ai4cellfate's training code (paid once
per process, before the first fit) is timed apart, in ``import s``.

On JAX, ``compile s`` is the time XLA spent compiling during the fit (the train
step is most of it). By default the children run with ai4cellfate's cache of
compiled programs off (``AI4CELLFATE_CACHE_DIR=off``), so every run compiles:
``--cache-dir DIR`` gives them that cache in DIR instead (as a user's processes
have it, in ``~/.cache/ai4cellfate/xla``), so from the second run on a fresh
process loads its step instead of compiling it. ``--jax-cache-dir DIR`` gives
them JAX's own persistent compilation cache (``JAX_COMPILATION_CACHE_DIR``,
every program cached, Keras' small ones too; ai4cellfate's cache then stays off).
``--repeat N`` runs N fresh processes per backend and prints each.

Usage::

    python benchmarks/hela_fit_speed.py ../shared/data/ctc-hela-02 \
        [--backends jax tensorflow torch] [--no-compile] [--repeat N] \
        [--cache-dir DIR] [--jax-cache-dir DIR]

The target (issue: speed) is <= 67 s for the whole fit on the fastest backend of a
2-core CPU, 15x faster than the authors' code (about 1,000 s there).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time


def child(path, jit_compile="auto"):
    import warnings

    start = time.perf_counter()
    import keras

    import ai4cellfate.training  # noqa: F401 - the backend and the training code
    from ai4cellfate import CellFateAAE
    from ai4cellfate.datasets import load_ctc

    import_s = time.perf_counter() - start

    compile_s = [0.0]
    if keras.backend.backend() == "jax":
        import jax.monitoring

        def listen(event, duration, **kwargs):
            if event.endswith("backend_compile_duration"):
                compile_s[0] += duration

        jax.monitoring.register_event_duration_secs_listener(listen)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = load_ctc(path, sequence="02", horizon=24, crop_size=40, output_size=20)
        model = CellFateAAE(random_state=42, verbose=0, jit_compile=jit_compile)
        compile_s[0] = 0.0
        start = time.perf_counter()
        model.fit(data.X, data.y, groups=data.groups)
        wall = time.perf_counter() - start
    # images trained on: the optimizer's steps (both stages) x the batch size
    steps = int(keras.ops.convert_to_numpy(model.model_.optimizer.iterations))
    n_images = steps * model.batch_size
    backend = keras.backend.backend() + ("" if jit_compile == "auto" else " (eager)")
    return {"backend": backend, "wall_s": wall, "import_s": import_s,
            "compile_s": compile_s[0] if keras.backend.backend() == "jax" else None,
            "epochs": int(model.n_epochs_),
            "stop_reason": model.stop_reason_, "img_s": n_images / wall}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ctc", help="the ctc-hela-02 folder")
    parser.add_argument("--backends", nargs="*", default=["jax", "tensorflow", "torch"])
    parser.add_argument("--no-compile", action="store_true",
                        help="jit_compile=False (TensorFlow without XLA, PyTorch eager); "
                             "default: CellFateAAE's \"auto\"")
    parser.add_argument("--repeat", type=int, default=1,
                        help="fresh processes per backend (default: 1)")
    parser.add_argument("--cache-dir", default=None,
                        help="ai4cellfate's compiled-program cache for the child processes "
                             "(default: off, every run compiles)")
    parser.add_argument("--jax-cache-dir", default=None,
                        help="JAX's persistent compilation cache for the child processes")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        jit = False if args.no_compile else "auto"
        print("RESULT " + json.dumps(child(args.ctc, jit)), flush=True)
        return 0
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    print(f"{'backend':<15} {'wall s':>8} {'import s':>9} {'compile s':>10} {'epochs':>7} "
          f"{'img/s':>8}  stop reason")
    for backend in args.backends:
        if importlib.util.find_spec(backend) is None:
            print(f"{backend}: not installed")
            continue
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
                   AI4CELLFATE_CACHE_DIR=os.path.abspath(args.cache_dir) if args.cache_dir
                   else "off")
        if args.jax_cache_dir:
            # as the ``ai4cellfate`` command sets it: every program cached
            env["JAX_COMPILATION_CACHE_DIR"] = os.path.abspath(args.jax_cache_dir)
            env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        for _ in range(args.repeat):
            res = subprocess.run([sys.executable, __file__, args.ctc, "--child"]
                                 + (["--no-compile"] if args.no_compile else []), env=env,
                                 capture_output=True, text=True)
            line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
            if res.returncode or not line:
                print(f"{backend}: failed\n{res.stderr[-2000:]}")
                break
            r = json.loads(line[0][7:])
            comp = "" if r["compile_s"] is None else f"{r['compile_s']:.1f}"
            print(f"{r['backend']:<15} {r['wall_s']:>8.0f} {r['import_s']:>9.1f} {comp:>10} "
                  f"{r['epochs']:>7} {r['img_s']:>8,.0f}  {r['stop_reason']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
