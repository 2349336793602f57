"""Run every study of the AI4CellFate preprint and save tables and figures.

Usage::

    python examples/reproduce_preprint.py [DATASET.npz] [-o OUTDIR] [--quick]
                                          [--cv 5] [--seeds 42 43 44] [--n-jobs 1]
                                          [--studies compare ablation ...]

``DATASET.npz`` is a :class:`ai4cellfate.datasets.FateDataset` saved with
``FateDataset.save``, for example
``load_ctc("Fluo-N2DL-HeLa", sequence="02", horizon=24).save("hela02.npz")``.
Without it the script uses synthetic nuclei
(:func:`ai4cellfate.datasets.make_nuclei`).

Crops with an unknown outcome (label 2) are dropped. When the dataset has a
``time_point`` column (made with ``frames="lifetime"``), the first frame
(``time_point == 0``) feeds every study but the time-point study, which uses
all frames; without it the time-point study is skipped. The synthetic data
have 11 time points whose fate signal grows along the lifetime.

For every study the script writes ``OUTDIR/<study>.csv`` (one row per model,
setting, fold and seed), ``OUTDIR/<study>_summary.csv`` (mean and standard
deviation over folds and seeds) and ``OUTDIR/<study>.png``. ``--quick`` runs
everything with tiny settings (minutes per study on a laptop CPU) to
check the pipeline; the default settings are the preprint's and take hours
on a CPU: use a GPU and ``--n-jobs``.

Choose the Keras backend with the ``KERAS_BACKEND`` environment variable.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ai4cellfate import plotting, studies  # noqa: E402
from ai4cellfate.datasets import FateDataset, make_nuclei  # noqa: E402

STUDIES = ("compare", "ablation", "latent_dim", "label_budget", "time_point")

# Tiny settings for --quick: every code path, minutes instead of hours.
QUICK_AAE = dict(stage1_epochs=1, min_epochs=1, max_epochs=3)


def synthetic(n_cells, n_time_points=11, random_state=0):
    """Synthetic cells seen at ``n_time_points`` relative time points.

    The same cells (same fates and hidden traits, thanks to one random_state)
    with a fate signal (class_sep) growing from 1.5 to 3.5 along the lifetime.
    """
    seps = np.linspace(1.5, 3.5, n_time_points)
    frames = [make_nuclei(n_cells, class_sep=s, weights=(0.7, 0.3),
                          random_state=random_state) for s in seps]
    X = np.concatenate([f[0] for f in frames])
    y = np.concatenate([f[1] for f in frames])
    time_point = np.repeat(np.arange(n_time_points), n_cells)
    groups = np.tile(np.arange(n_cells), n_time_points)  # one group per cell
    return X, y, groups, time_point


def load(path, quick):
    if path is None:
        n_cells = 120 if quick else 1000
        X, y, groups, tp = synthetic(n_cells, n_time_points=3 if quick else 11)
        print(f"synthetic nuclei: {n_cells} cells x {len(np.unique(tp))} time points")
        return X, y, groups, tp
    data = FateDataset.load(path)
    known = np.isin(data.y, (0, 1))
    X, y, groups = data.X[known], data.y[known], data.groups[known]
    tp = None
    if "time_point" in data.table.columns:
        tp = data.table["time_point"].to_numpy()[known]
    print(f"{path}: {len(y)} crops of {X.shape[1:]}, fates {np.bincount(y).tolist()}, "
          f"{len(np.unique(groups))} lineages"
          + ("" if tp is None else f", {len(np.unique(tp))} time points"))
    return X, y, groups, tp


def save(name, results, figure, outdir):
    results.to_csv(outdir / f"{name}.csv", index=False)
    summary = studies.summarize(results)
    summary.to_csv(outdir / f"{name}_summary.csv", index=False)
    figure.savefig(outdir / f"{name}.png", dpi=150, bbox_inches="tight")
    plt.close(figure)
    shown = summary
    if "features" in summary.columns:  # one line for all feature pairs
        pairs = summary["model"].str.endswith(" (pair)")
        tops = [summary[summary["model"] == m].nlargest(1, "balanced_accuracy_mean")
                .assign(model=f"{m[:-len(' (pair)')]}: top pair (by test score)")
                for m in summary.loc[pairs, "model"].unique()]
        shown = pd.concat([summary[~pairs], *tops])
    cols = [c for c in shown.columns if not c.endswith("_std") or c.startswith("bal")]
    print(shown[cols].to_string(index=False, float_format="%.3f"))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dataset", nargs="?", type=Path,
                        help="FateDataset .npz (default: synthetic nuclei)")
    parser.add_argument("-o", "--outdir", type=Path, default=Path("preprint_results"),
                        help="output folder (default: ./preprint_results)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny settings, to check the pipeline in minutes")
    parser.add_argument("--cv", type=int, default=None, help="folds (default 5; quick 2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="model seeds (default 42 43 44; quick 42)")
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="joblib workers over folds (default: 1)")
    parser.add_argument("--studies", nargs="+", choices=STUDIES, default=list(STUDIES),
                        help="which studies to run (default: all)")
    args = parser.parse_args(argv)

    quick = args.quick
    cv = args.cv or (2 if quick else 5)
    seeds = tuple(args.seeds or ((42,) if quick else (42, 43, 44)))
    aae = QUICK_AAE if quick else {}
    baseline_epochs = 5 if quick else 50
    common = dict(cv=cv, seeds=seeds, n_jobs=args.n_jobs)

    X_all, y_all, g_all, tp = load(args.dataset, quick)
    first = np.ones(len(y_all), bool) if tp is None else tp == np.min(tp)
    X, y, groups = X_all[first], y_all[first], g_all[first]
    args.outdir.mkdir(parents=True, exist_ok=True)

    for name in args.studies:
        start = time.perf_counter()
        print(f"\n== {name} ==")
        if name == "compare":
            res = studies.compare_models(X, y, groups, baseline_epochs=baseline_epochs,
                                         **common, **aae)
            fig = plotting.plot_model_comparison(res)
        elif name == "ablation":
            res = studies.ablation(X, y, groups, **common, **aae)
            fig = plotting.plot_ablation(res)
        elif name == "latent_dim":
            dims = (2, 3) if quick else (2, 3, 5, 10)
            res = studies.latent_dim_study(X, y, groups, latent_dims=dims, **common, **aae)
            fig = plotting.plot_latent_dim_study(res)
        elif name == "label_budget":
            budgets = (20, None) if quick else (50, 100, 200, 500, None)
            res = studies.label_budget_study(X, y, groups, budgets=budgets, **common, **aae)
            fig = plotting.plot_label_budget(res)
        else:
            if tp is None:
                print("skipped: the dataset has no time_point column "
                      "(make it with frames='lifetime')")
                continue
            res = studies.time_point_study(X_all, y_all, tp, g_all, **common, **aae)
            fig = plotting.plot_time_points(res)
        save(name, res, fig, args.outdir)
        print(f"({time.perf_counter() - start:.0f} s)")
    print(f"\nTables and figures in {args.outdir.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
