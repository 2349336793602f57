"""Training control on real cells: stopping, kept epoch and accuracy per fold.

Runs CellFateAAE at the DEFAULT schedule (15 stage-1 epochs, stop after more
than 50 and at most 100 stage-2 epochs) on the shared Cell Tracking Challenge
HeLa sequence (horizon 24 frames, 40 px windows binned to 20 x 20), under
5-fold stratified group cross-validation by lineage, twice per fold:

* ``new``: the defaults (prevalence-free precision in criterion 3, best
  validated epoch restored when the criteria never hold);
* ``previous``: the behaviour before (ordinary precision of fate 1, last epoch
  kept).

Per fold and behaviour it prints the epochs run, stop reason, kept epoch, fit
seconds, validation and test balanced accuracy, ordinary and prevalence-free
precision of fate 1, and the latent |corr| and KL; then medians and means.

Usage::

    KERAS_BACKEND=jax python benchmarks/hela_training.py ../shared/data/ctc-hela-02 \
        [--seeds 42] [--folds 5] [--out results.csv] [--no-warmup]

A one-epoch warm-up fit runs first and is not timed: one-off costs of the
process (on JAX, compiling the train step that every later fit of the same
structure reuses) would otherwise land on the first fit of the table.

The data are never copied into the package: pass the folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

BEHAVIOURS = {
    "new": dict(criterion_precision="balanced", restore_best_weights=True),
    "previous": dict(criterion_precision="ordinary", restore_best_weights=False),
}


def fold_row(model, X_test, y_test, seconds):
    from sklearn.metrics import balanced_accuracy_score

    from ai4cellfate.metrics import kl_divergence_to_normal, precision

    h = model.history_
    kept = h[h["kept"]].iloc[0]
    Z = model.transform(X_test)
    pred = model.predict(X_test)
    corr = float(abs(np.corrcoef(Z, rowvar=False)[0, 1])) if Z.shape[1] > 1 else 0.0
    return {
        "epochs": int(model.n_epochs_),
        "stop_reason": model.stop_reason_,
        "kept_epoch": int(model.best_epoch_),
        "fit_s": round(seconds, 1),
        "val_bal_acc": float(kept["val_balanced_accuracy"]),
        "val_prec": float(kept["val_precision"]),
        "val_bal_prec": float(kept["val_balanced_precision"]),
        "test_bal_acc": float(balanced_accuracy_score(y_test, pred)),
        "test_prec": precision(y_test, pred, pos_label=1),
        "test_bal_prec": precision(y_test, pred, pos_label=1, balanced=True),
        "latent_abs_corr": corr,
        "latent_kl_max": float(np.max(kl_divergence_to_normal(Z))),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ctc", help="the ctc-hela-02 folder")
    parser.add_argument("--sequence", default="02")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only-folds", type=int, nargs="*", default=None)
    parser.add_argument("--behaviours", nargs="+", default=list(BEHAVIOURS),
                        choices=list(BEHAVIOURS))
    parser.add_argument("--out", help="also write the table as CSV")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false",
                        help="do not run the one-epoch warm-up fit before the timed fits")
    args = parser.parse_args(argv)

    import keras
    from sklearn.model_selection import StratifiedGroupKFold

    from ai4cellfate import CellFateAAE
    from ai4cellfate.datasets import load_ctc

    t0 = time.perf_counter()
    data = load_ctc(args.ctc, sequence=args.sequence, horizon=24, crop_size=40, output_size=20)
    print(f"data: {data.summary().replace(chr(10), '; ')} ({time.perf_counter() - t0:.1f} s)")
    print(f"backend: {keras.backend.backend()}; default schedule; {args.folds}-fold "
          f"stratified group CV by lineage; seeds {args.seeds}", flush=True)
    X, y, groups = data.X, data.y, data.groups
    if args.warmup:
        # One tiny fit first, so that a process's one-off costs (imports, and on
        # JAX the compilation of the train step shared by every later fit) are
        # not charged to whichever behaviour happens to run first.
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            CellFateAAE(stage1_epochs=1, min_epochs=0, max_epochs=1, random_state=0,
                        verbose=0).fit(X, y, groups=groups)
        print(f"warm-up fit (not in the table): {time.perf_counter() - t:.1f} s", flush=True)
    rows = []
    for seed in args.seeds:
        cv = StratifiedGroupKFold(n_splits=args.folds, shuffle=True, random_state=seed)
        for k, (train, test) in enumerate(cv.split(X, y, groups)):
            if args.only_folds is not None and k not in args.only_folds:
                continue
            for name in args.behaviours:
                model = CellFateAAE(random_state=seed, verbose=0, **BEHAVIOURS[name])
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.fit(X[train], y[train], groups=groups[train])
                row = {"seed": seed, "fold": k, "behaviour": name,
                       **fold_row(model, X[test], y[test], time.perf_counter() - start)}
                rows.append(row)
                print(" ".join(f"{c}={v:.3f}" if isinstance(v, float) else f"{c}={v}"
                               for c, v in row.items()), flush=True)
                if args.out:
                    pd.DataFrame(rows).to_csv(args.out, index=False)
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print()
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print()
    summary = table.groupby("behaviour").agg(
        criteria_met=("stop_reason", lambda s: int((s == "criteria met").sum())),
        fits=("stop_reason", "size"),
        median_fit_s=("fit_s", "median"),
        mean_epochs=("epochs", "mean"),
        mean_test_bal_acc=("test_bal_acc", "mean"),
        sd_test_bal_acc=("test_bal_acc", "std"),
        mean_test_prec=("test_prec", "mean"),
        mean_test_bal_prec=("test_bal_prec", "mean"),
        mean_abs_corr=("latent_abs_corr", "mean"),
        mean_kl=("latent_kl_max", "mean"),
    )
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    if set(BEHAVIOURS) <= set(summary.index):
        ratio = summary.loc["new", "median_fit_s"] / summary.loc["previous", "median_fit_s"]
        print(f"\nmedian fit time new / previous: {ratio:.2f}")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
