"""Save a PNG grid of fate-labelled nucleus crops from a Cell Tracking Challenge folder.

Builds a fate dataset with :func:`ai4cellfate.datasets.load_ctc` and draws, per
class, a grid of randomly chosen crops, each with a cross at the crop centre so
you can check that crops are centred on nuclei, titled with track id and frame.

Usage::

    python examples/ctc_crop_gallery.py PATH OUTDIR --sequence 02 [--horizon 24]

``PATH`` is a CTC folder (holding ``02/`` and ``02_GT/``), e.g. the Cell Tracking
Challenge's Fluo-N2DL-HeLa. The PNG goes to ``OUTDIR/ctc_crops_<sequence>.png``;
choose an OUTDIR outside the repository: images made from CTC data must not be
committed or redistributed (see the data's conditions of use).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ai4cellfate.datasets import load_ctc  # noqa: E402


def gallery(data, n_per_class=24, n_cols=8, seed=0, title=""):
    """One block of up to ``n_per_class`` crops per class; returns a Figure."""
    rng = np.random.default_rng(seed)
    classes = sorted(set(data.y.tolist()))
    names = {0: "fate 0: no division", 1: "fate 1: divides", 2: "unknown outcome"}
    n_rows = int(np.ceil(n_per_class / n_cols))
    fig, axes = plt.subplots(
        n_rows * len(classes), n_cols,
        figsize=(1.3 * n_cols, 1.4 * n_rows * len(classes) + 0.6),
        squeeze=False,
    )
    s = data.X.shape[1]
    for k, c in enumerate(classes):
        idx = np.flatnonzero(data.y == c)
        pick = rng.choice(idx, size=min(n_per_class, len(idx)), replace=False)
        for j in range(n_rows * n_cols):
            ax = axes[k * n_rows + j // n_cols, j % n_cols]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(pick):
                ax.axis("off")
                continue
            i = pick[j]
            img = data.X[i] if data.X.ndim == 3 else data.X[i, ..., 0]
            # each crop on its own scale, so that dim nuclei are visible too
            ax.imshow(img, cmap="magma", vmin=0, vmax=max(float(img.max()), 1e-6))
            ax.plot([(s - 1) / 2], [(s - 1) / 2], "c+", ms=6, mew=0.8)
            row = data.table.iloc[i]
            ax.set_title(f"{int(row.track_id)} t{int(row.t)}", fontsize=6)
            if j == 0:
                ax.set_ylabel(names.get(c, str(c)), fontsize=7)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return fig


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="CTC folder holding NN/ and NN_GT/")
    parser.add_argument("outdir", help="folder for the PNG (created if needed)")
    parser.add_argument("--sequence", default="01")
    parser.add_argument("--horizon", type=int, default=24)
    parser.add_argument("--crop-size", type=int, default=40)
    parser.add_argument("--output-size", type=int, default=20)
    parser.add_argument("--segmentation", default="auto",
                        choices=["auto", "gt", "st", "otsu", "none"])
    parser.add_argument("--merged", default="drop", choices=["drop", "split"])
    parser.add_argument("-n", "--per-class", type=int, default=24)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    data = load_ctc(
        args.path,
        sequence=args.sequence,
        horizon=args.horizon,
        crop_size=args.crop_size,
        output_size=args.output_size,
        segmentation=None if args.segmentation == "none" else args.segmentation,
        merged=args.merged,
    )
    print(data.summary())
    title = (
        f"{Path(args.path).name} seq {args.sequence}: horizon {args.horizon} frames, "
        f"{args.crop_size}px -> {args.output_size}px, {len(data)} samples "
        f"{data.class_counts()}; + = crop centre; each crop scaled to its maximum"
    )
    fig = gallery(data, n_per_class=args.per_class, title=title)
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"ctc_crops_{data.meta['source']['sequence']}.png"
    fig.savefig(target, dpi=150)
    print(f"saved {target}")


if __name__ == "__main__":
    main()
