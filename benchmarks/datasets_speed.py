"""Time and peak memory of building a fate dataset from a tracked movie.

Default: every frame of the Cell Tracking Challenge folder
``../shared/data/ctc-hela-02`` (sequence 02, 92 frames of 700 x 1100 px with
gaps), with the settings of the issue: ``horizon=24, crop_size=40,
output_size=20``. Target: under 20 s on a 2-core machine, memory bounded by a
few frames plus the crops (the movie is read frame by frame).

``--synthetic T`` instead builds from a lazily generated T-frame movie
(frames made on demand, never stored), to show that memory does not grow
with the movie's length::

    python benchmarks/datasets_speed.py                       # CTC folder
    python benchmarks/datasets_speed.py PATH --sequence 01
    python benchmarks/datasets_speed.py --synthetic 1080

Reported: wall time of the build (imports excluded), the peak of memory
allocated during a second build as seen by ``tracemalloc`` (numpy arrays
included), and the process's peak resident set size.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ai4cellfate.datasets import load_ctc, make_fate_dataset

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ctc-hela-02"


class LazyMovie:
    """A (T, H, W) uint16 movie whose frames are drawn when indexed."""

    def __init__(self, n_frames, size=512, n_cells=40, seed=0):
        rng = np.random.default_rng(seed)
        self.shape = (n_frames, size, size)
        self.dtype = np.dtype(np.uint16)
        self.centres = rng.uniform(40, size - 40, size=(n_cells, 2))
        self.radii = rng.uniform(6, 11, size=n_cells)
        self.seed = seed

    def positions(self, t):
        drift = 3.0 * np.sin(0.05 * t + np.arange(len(self.centres)))[:, None]
        return self.centres + drift

    def __getitem__(self, t):
        rng = np.random.default_rng((self.seed, t))
        size = self.shape[1]
        frame = rng.normal(300, 20, (size, size))
        yy, xx = np.ogrid[:size, :size]
        for (cy, cx), r in zip(self.positions(t), self.radii):
            frame[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] += 2000
        return np.clip(frame, 0, 65535).astype(np.uint16)

    def tracks(self):
        rows = []
        for t in range(self.shape[0]):
            for k, (cy, cx) in enumerate(self.positions(t)):
                rows.append((k + 1, t, cy, cx, -1))
        return pd.DataFrame(rows, columns=["track_id", "t", "y", "x", "parent_id"])


def measure(build):
    """Time one build, then repeat it under tracemalloc for the memory peak.

    tracemalloc slows Python-heavy code several-fold, so the time comes from
    a run without it.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0, c0 = time.perf_counter(), time.process_time()
        data = build()
        elapsed = (time.perf_counter() - t0, time.process_time() - c0)
    del data
    tracemalloc.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = build()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return data, elapsed, peak, caught


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=str(DEFAULT), help="CTC folder")
    parser.add_argument("--sequence", default="02")
    parser.add_argument("--horizon", type=int, default=24)
    parser.add_argument("--crop-size", type=int, default=40)
    parser.add_argument("--output-size", type=int, default=20)
    parser.add_argument("--segmentation", default="auto")
    parser.add_argument("--synthetic", type=int, metavar="T", default=None,
                        help="use a lazily generated T-frame 512 x 512 movie instead")
    args = parser.parse_args(argv)

    if args.synthetic:
        movie = LazyMovie(args.synthetic)
        tracks = movie.tracks()

        def build():
            return make_fate_dataset(
                movie, tracks, horizon=args.horizon, crop_size=args.crop_size,
                output_size=args.output_size, segmentation="otsu",
            )

        source = f"synthetic lazy movie {movie.shape}, {len(tracks)} tracked positions"
        frame_mb = np.prod(movie.shape[1:]) * 2 / 1e6
    else:
        path = Path(args.path)
        if not path.is_dir():
            sys.exit(f"no such folder: {path} (pass the CTC folder as the first argument)")

        def build():
            return load_ctc(
                path, sequence=args.sequence, horizon=args.horizon,
                crop_size=args.crop_size, output_size=args.output_size,
                segmentation=None if args.segmentation == "none" else args.segmentation,
            )

        source = f"CTC {path.resolve()} sequence {args.sequence}"
        frame_mb = None

    data, elapsed, peak, caught = measure(build)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"source:       {source}")
    print(f"settings:     horizon={args.horizon}, crop {args.crop_size} px -> "
          f"{args.output_size} px")
    for w in caught:
        print(f"warning:      {w.message}")
    print(f"dataset:      {data.summary().replace(chr(10), '; ')}")
    print(f"time:         {elapsed[0]:.2f} s wall, {elapsed[1]:.2f} s CPU "
          "(build only, imports excluded; CPU time is the fairer figure on a busy machine)")
    print(f"peak memory:  {peak / 1e6:.1f} MB allocated during the build (tracemalloc); "
          f"crops X {data.X.nbytes / 1e6:.1f} MB")
    if frame_mb is not None:
        print(f"              one frame {frame_mb:.2f} MB; whole movie would be "
              f"{frame_mb * data.meta['n_frames']:.0f} MB")
    print(f"process RSS:  {rss_mb:.0f} MB peak (includes Python, numpy, pandas, ...)")


if __name__ == "__main__":
    main()
