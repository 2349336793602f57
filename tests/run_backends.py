"""Run the test suite under each installed Keras backend.

Usage::

    python tests/run_backends.py            # full suite + doctests on torch,
                                            # backend-contract tests on jax and tensorflow
    python tests/run_backends.py --full     # the full suite on every backend
    python tests/run_backends.py jax        # only the named backend(s)
    python tests/run_backends.py --workers 1   # no pytest-xdist workers

Extra arguments after ``--`` go to pytest. The Keras backend must be chosen
before Keras is imported, so every backend runs in its own process. Exits
non-zero if any run fails. With pytest-xdist installed, each run spreads its
tests over ``--workers`` processes (default: one per CPU core, at most 4):
the test models are tiny, so one process keeps about one core busy. Tests
marked ``exact`` (two fits compared bit for bit) then run on their own, in one
process.
"""

import argparse
import importlib.util
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKENDS = {"torch": "torch", "jax": "jax", "tensorflow": "tensorflow"}
#: The backend that runs everything (no compile step: fastest on tiny test models).
PRIMARY = "torch"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backends", nargs="*", choices=[[], *BACKENDS], default=[])
    parser.add_argument("--full", action="store_true", help="full suite on every backend")
    parser.add_argument("--workers", type=int, default=None,
                        help="pytest-xdist workers per run (default: CPU cores, at most 4)")
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after "--" goes to pytest untouched (argparse would read it
    # as positional backends).
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    args, unknown = parser.parse_known_args(argv)
    extra = unknown + extra
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    workers = args.workers or min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                  else (os.cpu_count() or 1), 4)
    xdist = importlib.util.find_spec("xdist") is not None
    chosen = args.backends or list(BACKENDS)
    results = {}
    for backend in chosen:
        if importlib.util.find_spec(BACKENDS[backend]) is None:
            print(f"[run_backends] {backend}: not installed", flush=True)
            results[backend] = "missing"
            continue
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        if args.full or backend == PRIMARY:
            cmd += ["tests", "--doctest-modules", "ai4cellfate",
                    "--ignore=ai4cellfate/training/_jax.py",
                    "--ignore=ai4cellfate/training/_tensorflow.py",
                    "--ignore=ai4cellfate/training/_torch.py"]
            selected = None
        else:
            cmd += ["tests"]
            selected = "backend"
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", MPLBACKEND="Agg")
        if backend == "torch":
            # The test models are tiny: OpenMP threads only add spin-waiting,
            # which on a loaded 2-core machine slows torch steps ~15x.
            env.setdefault("OMP_NUM_THREADS", "1")
        runs = [(cmd, selected)]
        if xdist and workers > 1:
            # Tests that compare two fits bit for bit run afterwards in one
            # process: TensorFlow's CPU kernels round differently now and then
            # when other processes compete for the cores (about 1 fit in 40
            # with three TensorFlow processes on two cores), and Adam's first
            # steps carry a last-bit difference into every weight.
            prefix = "" if selected is None else f"{selected} and "
            runs = [(cmd + ["-n", str(workers)], prefix + "not exact"), (cmd, prefix + "exact")]
        start = time.time()
        codes = []
        for run_cmd, marks in runs:
            run_cmd = run_cmd + (["-m", marks] if marks else []) + extra
            print(f"[run_backends] {backend}: {' '.join(run_cmd[1:])}", flush=True)
            codes.append(subprocess.call(run_cmd, cwd=ROOT, env=env))
        # Exit 5 (no test selected) is fine for one part of a split run, not for all.
        rc = next((c for c in codes if c not in (0, 5)), 5 if set(codes) == {5} else 0)
        results[backend] = f"{'passed' if rc == 0 else f'FAILED (exit {rc})'} in {time.time() - start:.0f} s"
    print("[run_backends] summary:", flush=True)
    for backend, result in results.items():
        print(f"  {backend:<11} {result}", flush=True)
    failed = [b for b, r in results.items() if r.startswith("FAILED")]
    missing = [b for b, r in results.items() if r == "missing"]
    return 1 if failed or (missing and not args.backends) else 0


if __name__ == "__main__":
    sys.exit(main())
