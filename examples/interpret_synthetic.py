"""Fit AI4CellFate on synthetic nuclei and look inside its latent space.

The synthetic nuclei of :func:`ai4cellfate.datasets.make_nuclei` carry their
fate in two traits, size and brightness. After fitting ``CellFateAAE`` this
script

1. writes the latent space of held-out cells (coloured by fate, with class
   centroids and the latent classifier's decision boundary), the 2-D latent
   traversal grid, the traversal strips, the measurements of the generated
   nuclei against the latent value, the training curves and the confusion
   matrix, as PNGs in ``OUTDIR``;
2. prints the classification report and the latent diagnostics of the
   held-out cells;
3. prints the traversal-trends table (rank correlation of every measurement of
   the generated nuclei with each latent dimension) and which dimension
   follows nucleus area and which follows intensity.

Usage::

    python examples/interpret_synthetic.py -o OUTDIR            # full training
    python examples/interpret_synthetic.py -o OUTDIR --quick    # a few minutes on CPU
    python examples/interpret_synthetic.py -o OUTDIR --smoke    # seconds: checks the steps

Choose the Keras backend with ``KERAS_BACKEND`` (jax, tensorflow or torch).
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from ai4cellfate import CellFateAAE  # noqa: E402
from ai4cellfate import metrics  # noqa: E402
from ai4cellfate import plotting  # noqa: E402
from ai4cellfate.datasets import make_nuclei  # noqa: E402
from ai4cellfate.interpret import (  # noqa: E402
    latent_traversal,
    traversal_effects,
    traversal_trends,
)

INTENSITY = ("mean_intensity", "max_intensity")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--outdir", type=Path, default=Path("interpret_out"),
                        help="folder for the PNG figures (default: interpret_out)")
    parser.add_argument("--quick", action="store_true",
                        help="short training: 5 stage-1 epochs, 10-30 stage-2 epochs")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds-long run on 150 nuclei that checks every step "
                             "works (the traits check needs real training)")
    parser.add_argument("--n-samples", type=int, default=None,
                        help="number of synthetic nuclei (default 900, 1200 without --quick)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--direction", type=float, nargs=2, default=(1.0, 1.0),
                        metavar=("SIZE", "BRIGHTNESS"),
                        help="how much size and brightness each carry the fate "
                             "(make_nuclei's direction; default 1 1)")
    parser.add_argument("--traversal", choices=("data", "preprint"), default="data",
                        help="traversal ranges: 5%%-95%% latent quantiles of the training "
                             "cells around their median (data), or the preprint's ranges "
                             "from the zero vector (preprint)")
    return parser.parse_args(argv)


def follows(trends, effects, threshold=0.8):
    """Assign nucleus area and intensity to two different latent dimensions.

    Among the assignments of the two traits to two different dimensions (and,
    for intensity, the mean or the maximum), take the one whose weaker rank
    correlation is strongest. Returns ``(rows, ok)``: one row per trait with
    the dimension, the measurement, its rank correlation and its relative
    change over the traversal, and whether both ``|rho| >= threshold``.
    """
    best, best_score = None, -np.inf
    for d_area, d_int in itertools.permutations(trends.index, 2):
        for m_int in INTENSITY:
            score = min(np.nan_to_num(abs(trends.loc[d_area, "area"])),
                        np.nan_to_num(abs(trends.loc[d_int, m_int])))
            if score > best_score:
                best_score, best = score, [("area", d_area, "area"),
                                           ("intensity", d_int, m_int)]
    rows = pd.DataFrame(
        [
            {"trait": trait, "dimension": d, "measurement": m,
             "rho": trends.loc[d, m], "relative_change": effects.loc[d, m]}
            for trait, d, m in best
        ]
    ).set_index("trait")
    return rows, bool(best_score >= threshold)


def main(argv=None):
    args = parse_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)
    n = args.n_samples or (150 if args.smoke else 900 if args.quick else 1200)

    X, y, traits = make_nuclei(n, direction=args.direction, return_params=True,
                               random_state=args.seed)
    X_train, X_test, y_train, y_test, _, traits_test = train_test_split(
        X, y, traits, test_size=1 / 3, stratify=y, random_state=args.seed
    )
    epochs = (
        dict(stage1_epochs=1, min_epochs=1, max_epochs=1) if args.smoke
        else dict(stage1_epochs=5, min_epochs=10, max_epochs=30) if args.quick
        else dict(stage1_epochs=15, min_epochs=50, max_epochs=100)
    )
    model = CellFateAAE(random_state=args.seed, **epochs)
    print(f"Fitting CellFateAAE on {len(X_train)} synthetic nuclei "
          f"({os.environ['KERAS_BACKEND']} backend) ...", flush=True)
    t0 = time.perf_counter()
    model.fit(X_train, y_train)
    print(f"  {model.n_epochs_} epochs in {time.perf_counter() - t0:.0f} s; "
          f"stopped: {model.stop_reason_}")

    # Held-out evaluation.
    y_pred = model.predict(X_test)
    report = metrics.fate_report(y_test, y_pred)
    print("\nHeld-out cells (balanced accuracy = the preprint's 'accuracy'):")
    print(report.round(3).to_string())
    diagnostics = model.latent_diagnostics(X_test, y_test)
    print("\nLatent diagnostics of the held-out cells:")
    print(pd.Series(diagnostics).round(3).to_string())

    # The data side: latent features of held-out cells against their true traits.
    Z_test = model.transform(X_test)
    true = traits_test[["area", "mean_intensity"]].to_numpy()
    data_rho = pd.DataFrame(
        [[spearmanr(Z_test[:, d], true[:, k]).statistic for k in range(2)]
         for d in range(Z_test.shape[1])],
        index=pd.Index([f"z{d}" for d in range(Z_test.shape[1])], name="dimension"),
        columns=["true_area", "true_mean_intensity"],
    )
    print("\nHeld-out cells: Spearman correlation of each latent feature with the "
          "true traits of the synthetic nuclei")
    print(data_rho.round(2).to_string())

    # Traversals: the table, its trends, the figures.
    if args.traversal == "data":
        where = dict(X=X_train, ranges="quantiles", fixed="median")
    else:
        where = dict()
    table = latent_traversal(model, n_steps=7, **where)
    trends = traversal_trends(table)
    effects = traversal_effects(table)
    table.to_csv(args.outdir / "traversal.csv", index=False)
    trends.to_csv(args.outdir / "traversal_trends.csv")
    effects.to_csv(args.outdir / "traversal_effects.csv")

    figures = {
        "latent_space.png": plotting.plot_latent_space(model, X_test, y_test),
        "traversal_grid.png": plotting.plot_traversal_grid(model, n_steps=7, **where),
        "traversal_strips.png": plotting.plot_latent_traversal(model, n_steps=7, **where),
        "traversal_measurements.png": plotting.plot_traversal_measurements(table),
        "training_curves.png": plotting.plot_training_curves(model),
        "confusion_matrix.png": plotting.plot_confusion_matrix(y_test, y_pred),
    }
    for name, fig in figures.items():
        fig.savefig(args.outdir / name, dpi=120)
        plt.close(fig)
    print(f"\nFigures written to {args.outdir}/: " + ", ".join(figures))

    print("\nTraversal trends: Spearman rank correlation of each measurement of the "
          "generated nuclei with the latent value")
    print(trends.round(2).to_string())
    print("\nTraversal effects: change over the traversed range (least-squares line), "
          "relative to the measurement's mean")
    print(effects.round(2).to_string())

    rows, ok = follows(trends, effects)
    print("\nWhich dimension follows which trait:")
    print(rows.round(2).to_string())
    cross = {"area": rows.loc["intensity", "measurement"], "intensity": "area"}
    for trait, row in rows.iterrows():
        d, m = row["dimension"], cross[trait]
        if abs(trends.loc[d, m]) >= 0.8:
            print(f"  note: {d} also follows {m.replace('_', ' ')} "
                  f"(rho = {trends.loc[d, m]:+.2f}, relative change "
                  f"{effects.loc[d, m]:+.2f}): the two traits are mixed in {d}")
    print("One latent dimension follows area and the other intensity, |rho| >= 0.8: "
          + ("yes" if ok else "NO"))
    if args.smoke:
        print("(smoke run: one epoch per stage; the check above needs real training)")
        return 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
