"""Beyond the preprint: variants of AI4CellFate against hand-picked features.

Runs :func:`ai4cellfate.studies.beyond_preprint`: the preprint's model, a
seed ensemble, 3- and 5-dimensional latent spaces, the 2-D latent plus the
latent of a second (3-D) model used only for prediction, a hybrid of the latent
and the region features, and the same model on other crops of the same
cells, against the best hand-picked baselines (logistic regression on all
region features, the best pair of region features), all under one grouped
cross-validation (folds by lineage: every test fold holds lineages the
models have never seen), plus a ``selected`` row that picks the variant per
fold by inner validation on the training part only.

Usage::

    python examples/beyond_preprint.py [CTC_DIR] [-o OUTDIR] [--quick]
        [--sequence 02] [--horizon 24] [--crop-size 40] [--output-size 20]
        [--full-resolution] [--crop-um UM [UM ...]] [--pixel-size UM]
        [--cv 5] [--seeds 0 1 2] [--ensemble 5] [--n-jobs 1]
        [--context MAX_LAG [--context-frames N]] [--variants [preprint hybrid ...]]
        [--stage1-epochs N] [--min-epochs N] [--max-epochs N]

``CTC_DIR`` is a Cell Tracking Challenge folder (e.g. ``Fluo-N2DL-HeLa``),
read with ``load_ctc(CTC_DIR, sequence, horizon=..., crop_size=40,
output_size=20)``. ``--full-resolution`` adds the same cells cropped at the
movie's resolution (``output_size=crop_size``), ``--crop-um UM [UM ...]`` the
same cells in windows of ``UM`` micrometres, one variant per size (needs the
pixel size: the movie's metadata or ``--pixel-size``); cells missing from one
of them are left out of all, so every model sees the same cells.
``--context MAX_LAG`` adds temporal context
(:func:`ai4cellfate.datasets.temporal_context`): the crop of frame ``t``
with the crop of the same cell at its most recent earlier frame at most
``MAX_LAG`` frames before (``--context-frames N``: the N most recent) as
channels; the fate horizon counts from ``t``, the last frame used. Only
cells seen at such an earlier frame have it, so every model then runs on
those cells only, and on the stacks: the baselines see every frame (the
study's take the stack as one two-channel image; one more,
``LogisticRegression (every frame)``, gets each frame's region features
and their change, and is never the inner-validation choice), the preprint's model on frame ``t`` alone becomes the
``frame t only`` variant, and the variants are the preprint's model on the
frames as channels and the latent trajectory
(:func:`ai4cellfate.studies.make_latent_trajectory`: the frame-``t`` model's
latent of every frame and its change); built-in variants named with
``--variants`` run on the stacks too. Without ``CTC_DIR`` the
script uses synthetic nuclei
(:func:`ai4cellfate.datasets.make_nuclei`, pairs of cells as lineages) and,
as the extra dataset, the same nuclei at twice the resolution.

The script prints the table of means and standard deviations over folds and
seeds (:func:`ai4cellfate.studies.summarize`) and the spread over folds and
over seeds with paired wins against the best baseline
(:func:`ai4cellfate.studies.spread`), and writes
``OUTDIR/beyond_preprint.csv`` (one row per model, fold and seed),
``beyond_preprint_summary.csv`` and ``beyond_preprint_spread.csv``.
``--quick`` runs a tiny version (96 synthetic cells, 2 folds, 1 seed, 2
epochs, no augmentation) in well under a minute, to check the pipeline; the default
settings are the preprint's schedule, 5 folds and 3 seeds, and take hours
without a GPU; ``--stage1-epochs``, ``--min-epochs`` and ``--max-epochs``
shorten the schedule of every autoencoder the study fits (the stopping
criteria still apply).

Choose the Keras backend with the ``KERAS_BACKEND`` environment variable.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ai4cellfate import studies  # noqa: E402
from ai4cellfate.datasets import make_nuclei  # noqa: E402

# Tiny settings for --quick: every code path in seconds.
QUICK_AAE = dict(stage1_epochs=1, min_epochs=0, max_epochs=1, augment=False, batch_size=16)
QUICK_CELLS, QUICK_SIZE = 96, 12
WEIGHTS = (0.65, 0.35)  # fate proportions of the synthetic cells
KEYS = ["track_id", "t"]  # one sample of a CTC dataset
HAND_PICKED_FRAMES = "LogisticRegression (every frame)"  # --context's extra baseline


def synthetic(n_cells, image_size, random_state=0):
    """Synthetic nuclei, lineages of two cells, and the same cells at 2x resolution."""
    X, y = make_nuclei(n_cells, image_size=image_size, weights=WEIGHTS,
                       random_state=random_state)
    X2, y2 = make_nuclei(n_cells, image_size=2 * image_size, weights=WEIGHTS,
                         random_state=random_state)
    assert np.array_equal(y, y2)  # same cells, same fates
    groups = np.arange(n_cells) // 2
    print(f"synthetic nuclei: {n_cells} cells of {image_size} px, fates "
          f"{np.bincount(y).tolist()}, {len(np.unique(groups))} lineages")
    return X, y, groups, {f"{2 * image_size} px crops": X2}


def ctc(path, sequence, horizon, full_resolution, crop_um=(), crop_size=40, output_size=20,
        pixel_size=None, context=None, n_earlier=1):
    """A CTC sequence, and the same cells cropped other ways, on common samples."""
    from ai4cellfate.datasets import load_ctc, temporal_context

    common = dict(sequence=sequence, horizon=horizon, pixel_size=pixel_size)
    main = load_ctc(path, crop_size=crop_size, output_size=output_size, **common)
    others = {}
    if full_resolution:
        others["full-resolution crops"] = load_ctc(path, crop_size=crop_size,
                                                   output_size=crop_size, **common)
    for um in crop_um or ():
        others[f"{um:g} um crops"] = load_ctc(path, crop_size_um=um,
                                              output_size=output_size, **common)
    if context is not None:
        others[context_name(context, n_earlier)] = temporal_context(
            main, max_lag=context, n_earlier=n_earlier)
    # Keep the samples every dataset has, in the main dataset's order.
    keys = pd.MultiIndex.from_frame(main.table[KEYS])
    keep = np.isin(main.y, (0, 1))
    for data in others.values():
        keep &= keys.isin(pd.MultiIndex.from_frame(data.table[KEYS]))
    X, y, groups = main.X[keep], main.y[keep], main.groups[keep]
    extra = {}
    for name, data in others.items():
        index = pd.MultiIndex.from_frame(data.table[KEYS]).get_indexer(keys[keep])
        extra[name] = (data.X[index], data.y[index], data.groups[index])
    print(f"{path} sequence {sequence}: {len(y)} crops of {X.shape[1:]}, fates "
          f"{np.bincount(y).tolist()}, {len(np.unique(groups))} lineages"
          + "".join(f"; {name}: {d[0].shape[1:]}" for name, d in extra.items()))
    return X, y, groups, extra


def context_name(max_lag, n_earlier):
    frames = "frame t" if n_earlier == 1 else f"{n_earlier} frames"
    return f"{frames} before + t (lag <= {max_lag})"


def context_study(X, y, groups, extra, name, aae_params, variants):
    """Temporal context: every model on the stacked crops of the cells that have them.

    The stacks become the study's crops, so the hand-picked baselines see the
    region features of every frame too (equal data); the preprint's model on
    frame t alone becomes a dataset variant. Variants: the preprint's model on
    the frames as channels, and the latent trajectory (the frame-t model
    applied to every frame; its latents and their change in one logistic
    regression); built-in variants asked for by name run on the stacks. One
    more hand-picked baseline, run as a variant on the same folds: the region
    features of every frame and their change in one logistic regression (the
    study's own baselines take the stack as one two-channel image).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ai4cellfate import CellFateAAE
    from ai4cellfate.features import RegionFeatures
    from ai4cellfate.temporal import FrameLatents

    stacked = extra.pop(name)[0]
    datasets = {"frame t only": (X, y, groups), **extra}
    channels = 1 if X.ndim == 3 else X.shape[-1]
    aae = CellFateAAE(**(aae_params or {}))
    chosen = {"frames as channels": aae,
              "latent trajectory": studies.make_latent_trajectory(
                  aae, channels_per_frame=channels)}
    chosen.update({v: None for v in variants or ()})
    chosen[HAND_PICKED_FRAMES] = make_pipeline(
        FrameLatents(RegionFeatures(), channels_per_frame=channels), StandardScaler(),
        LogisticRegression(class_weight="balanced", max_iter=2000))
    return stacked, datasets, chosen


def report(res, outdir, hand_picked=()):
    summary = studies.summarize(res)
    shown = ["variant", "balanced_accuracy_mean", "balanced_accuracy_std", "auc_mean",
             "precision_mean", "balanced_precision_mean", "latent_abs_corr_mean",
             "latent_kl_mean", "fit_seconds_mean", "n"]
    print(summary[shown].to_string(index=False, float_format="%.3f"))
    baselines = summary[summary["variant"].isin([*studies.BEYOND_BASELINES, *hand_picked])]
    table = None
    if len(baselines):
        # The baseline of best mean test score: the comparison favours the baselines.
        best = baselines.loc[baselines["balanced_accuracy_mean"].idxmax(), "variant"]
        table = studies.spread(res, reference=best)
        print(f"\nBalanced accuracy: spread over folds and seeds, paired with {best} "
              "on the same folds and seeds")
        print(table.drop(columns="model").to_string(index=False, float_format="%.3f"))
    chosen = res.loc[res["variant"] == "selected", "chosen"]
    if len(chosen):
        print("\nChosen by inner validation (per fold and seed): "
              + ", ".join(f"{k} x{v}" for k, v in chosen.value_counts().items()))
    if outdir is not None:
        outdir.mkdir(parents=True, exist_ok=True)
        res.to_csv(outdir / "beyond_preprint.csv", index=False)
        summary.to_csv(outdir / "beyond_preprint_summary.csv", index=False)
        if table is not None:
            table.to_csv(outdir / "beyond_preprint_spread.csv", index=False)
        print(f"\nTables in {outdir.resolve()}")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("ctc_dir", nargs="?", type=Path,
                        help="Cell Tracking Challenge folder (default: synthetic nuclei)")
    parser.add_argument("-o", "--outdir", type=Path, default=Path("beyond_results"),
                        help="output folder (default: ./beyond_results)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny settings, to check the pipeline in seconds")
    parser.add_argument("--sequence", default="02", help="CTC sequence (default 02)")
    parser.add_argument("--horizon", type=int, default=24,
                        help="fate horizon in frames (default 24)")
    parser.add_argument("--crop-size", type=int, default=40,
                        help="CTC crop window in pixels (default 40)")
    parser.add_argument("--output-size", type=int, default=20,
                        help="CTC crops are binned to this size (default 20)")
    parser.add_argument("--full-resolution", action="store_true",
                        help="add the same cells cropped at the movie's resolution")
    parser.add_argument("--crop-um", type=float, nargs="+", default=[],
                        help="add the same cells in windows of this many micrometres "
                             "(one variant per size)")
    parser.add_argument("--context", type=int, default=None, metavar="MAX_LAG",
                        help="add temporal context: the same cells' crops at earlier "
                             "frames at most MAX_LAG frames before, as channels")
    parser.add_argument("--context-frames", type=int, default=1, metavar="N",
                        help="earlier frames per crop for --context (default 1)")
    parser.add_argument("--pixel-size", type=float, default=None,
                        help="pixel size in um (default: the movie's metadata)")
    parser.add_argument("--cv", type=int, default=None, help="folds (default 5; quick 2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="model seeds (default 0 1 2; quick 0)")
    parser.add_argument("--ensemble", type=int, default=None,
                        help="members of the seed ensemble (default 5; quick 2)")
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="joblib workers over (variant, fold, seed) (default: 1)")
    parser.add_argument("--variants", nargs="*", choices=studies.BEYOND_VARIANTS,
                        default=None,
                        help="which built-in variants to run (default: all; with "
                             "--context: none besides the context variants; no name: "
                             "only the other crops' variants)")
    for flag, what in (("--stage1-epochs", "stage-1 epochs"),
                       ("--min-epochs", "stage-2 epochs before the criteria may stop"),
                       ("--max-epochs", "cap on stage-2 epochs")):
        parser.add_argument(flag, type=int, default=None,
                            help=f"{what} of every autoencoder (default: the preprint's)")
    args = parser.parse_args(argv)
    schedule = {name: value for name in ("stage1_epochs", "min_epochs", "max_epochs")
                if (value := getattr(args, name)) is not None}
    for um in args.crop_um:
        if not um > 0:
            parser.error(f"--crop-um sizes must be > 0, got {um:g}")
    if args.context is not None and args.context < 1:
        parser.error(f"--context must be >= 1 (frames), got {args.context}")
    if args.context_frames < 1:
        parser.error(f"--context-frames must be >= 1, got {args.context_frames}")
    if args.context is not None and args.ctc_dir is None:
        parser.error("--context needs a tracked movie (CTC_DIR): synthetic nuclei have "
                     "no earlier frames")
    if args.pixel_size is not None and not args.pixel_size > 0:
        parser.error(f"--pixel-size must be > 0, got {args.pixel_size:g}")
    for name, value in schedule.items():
        low = 1 if name == "max_epochs" else 0
        if value < low:
            parser.error(f"--{name.replace('_', '-')} must be >= {low}, got {value}")

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger("ai4cellfate").addHandler(handler)
    logging.getLogger("ai4cellfate").setLevel(logging.INFO)  # the study's progress
    # Hundreds of fits: their latent warnings are summarised by the table's
    # latent_abs_corr and latent_kl columns instead.
    from ai4cellfate.estimator import LatentWarning

    warnings.simplefilter("ignore", LatentWarning)

    quick = args.quick
    if args.ctc_dir is None:
        n_cells, size = (QUICK_CELLS, QUICK_SIZE) if quick else (1000, 20)
        X, y, groups, extra = synthetic(n_cells, size)
    else:
        X, y, groups, extra = ctc(args.ctc_dir, args.sequence, args.horizon,
                                  args.full_resolution, args.crop_um, args.crop_size,
                                  args.output_size, args.pixel_size, args.context,
                                  args.context_frames)
    aae_params = {**QUICK_AAE, **schedule} if quick else (schedule or None)
    variants = args.variants
    if args.context is not None:
        X, extra, variants = context_study(
            X, y, groups, extra, context_name(args.context, args.context_frames),
            aae_params, args.variants)
    start = time.perf_counter()
    res = studies.beyond_preprint(
        X, y, groups, variants=variants, datasets=extra,
        cv=args.cv or (2 if quick else 5),
        seeds=tuple(args.seeds or ((0,) if quick else (0, 1, 2))),
        n_ensemble=args.ensemble or (2 if quick else 5),
        aae_params=aae_params,
        baseline_epochs=2 if quick else 50, n_jobs=args.n_jobs,
    )
    print(f"\n== beyond the preprint ({time.perf_counter() - start:.0f} s) ==")
    hand_picked = ()
    if args.context is not None:
        # The inner-validation choice is among the models, not the hand-picked baseline.
        hand_picked = (HAND_PICKED_FRAMES,)
        res = studies.reselect(res, variants=[v for v in pd.unique(res["variant"])
                                              if v not in (*studies.BEYOND_BASELINES,
                                                           "selected", *hand_picked)])
    report(res, args.outdir, hand_picked)
    return 0


if __name__ == "__main__":
    sys.exit(main())
