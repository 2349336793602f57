#!/usr/bin/env python3
"""Draw the README figure from a demo run: latent space and traversal grid side by side.

Usage::

    ai4cellfate demo -o DEMO_DIR
    python tools/readme_figure.py DEMO_DIR [-o docs/img/demo.png]

Reads ``DEMO_DIR/model.keras`` and ``DEMO_DIR/nuclei.npz`` (synthetic nuclei
made by the demo), plots the held-out cells' latent space with the class
centroids and the classifier's decision boundary, and the nuclei decoded on a
grid over the two latent dimensions.

Which latent feature ends up as the fate axis (and its sign) depends on the
backend and the seed, so the README caption does not name one. This script
prints the reading of each feature (as in the report) so that a caption that
does can be checked against the figure it describes.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("MPLBACKEND", "Agg")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo_dir", help="output folder of 'ai4cellfate demo'")
    parser.add_argument("-o", "--output", default="docs/img/demo.png",
                        help="PNG to write (default: docs/img/demo.png)")
    args = parser.parse_args(argv)

    import matplotlib.pyplot as plt
    import numpy as np

    import ai4cellfate
    from ai4cellfate.datasets import FateDataset
    from ai4cellfate.plotting import plot_latent_space, plot_traversal_grid

    model = ai4cellfate.load(os.path.join(args.demo_dir, "model.keras"))
    data = FateDataset.load(os.path.join(args.demo_dir, "nuclei.npz"))
    with open(os.path.join(args.demo_dir, "model.history.json")) as fh:
        test = np.asarray(json.load(fh)["test_indices"], dtype=int)
    held_out = data.subset(test) if len(test) else data
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.5, 4.6),
                                      gridspec_kw={"width_ratios": [1.1, 1]})
    plot_latent_space(model, held_out.X, held_out.y, class_names={0: "no division",
                                                                  1: "divides"}, ax=left)
    left.set_title(f"Latent space of {len(held_out)} held-out synthetic nuclei")
    plot_traversal_grid(model, X=data.X, n_steps=5, ax=right)
    right.set_title("Nuclei decoded across the latent space")
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")

    # Which feature is which, in this figure (the words of the report).
    from ai4cellfate.report import _latent_features

    Z = model.transform(held_out.X)
    for row in _latent_features(model, held_out.X, Z, held_out.y, 1, None):
        print(row["reading"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
