"""Every script under examples/ runs, in a smoke-sized version, as a user would run it.

Each runs in its own process (the Keras backend of the suite), with tiny data
or settings, and must exit 0 and write the files it promises.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _run(args, cwd):
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    res = subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    return res.stdout


def test_every_example_is_covered():
    # beyond_preprint.py runs in tests/test_beyond_preprint.py (test_example_quick)
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == [
        "beyond_preprint.py", "ctc_crop_gallery.py", "interpret_synthetic.py",
        "reproduce_preprint.py"]


def test_ctc_crop_gallery(tmp_path):
    from test_datasets_ctc import write_ctc

    root = write_ctc(tmp_path / "ctc")
    out = _run([EXAMPLES / "ctc_crop_gallery.py", root, tmp_path / "out", "--sequence", "01",
                "--horizon", "3", "--crop-size", "16", "--output-size", "8", "-n", "4"],
               tmp_path)
    pngs = list((tmp_path / "out").glob("*.png"))
    assert len(pngs) == 1 and pngs[0].stat().st_size > 1000, out


def test_interpret_synthetic_smoke(tmp_path):
    out = _run([EXAMPLES / "interpret_synthetic.py", "--smoke", "-o", tmp_path / "fig"],
               tmp_path)
    for name in ("latent_space.png", "traversal_grid.png", "training_curves.png",
                 "confusion_matrix.png", "traversal_measurements.png"):
        assert (tmp_path / "fig" / name).stat().st_size > 1000, name
    assert "Traversal trends" in out and "Which dimension follows which trait" in out


def test_reproduce_preprint_quick(tmp_path):
    """Every study on synthetic cells with the script's tiny --quick settings."""
    out = _run([EXAMPLES / "reproduce_preprint.py", "--quick", "-o", tmp_path / "res"],
               tmp_path)
    written = {p.name for p in (tmp_path / "res").iterdir()}
    for study in ("compare", "ablation", "latent_dim", "label_budget", "time_point"):
        assert {f"{study}.csv", f"{study}_summary.csv", f"{study}.png"} <= written, (
            study, sorted(written), out[-2000:])
