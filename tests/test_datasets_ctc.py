"""Cell Tracking Challenge reader, on tiny CTC folders written by the tests.

The folder (sequence 01, 12 frames, 64 x 64, LZW-compressed TIFF)::

    track 1  frames 0-5   at (16, 16), divides into
    track 2  frames 6-11  at (12, 12)  and
    track 3  frames 6-11  at (24, 24)
    track 4  frames 0-11  at (44, 44), never divides
    track 5  frames 0-4   at (44, 16), lost

Raw frames 3 and 7 and the markers of frame 9 are missing; silver-truth
segmentation (labels 101.., not track ids) for frames 0-5, gold truth for 0.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

tifffile = pytest.importorskip("tifffile")

from ai4cellfate.datasets import load_ctc, read_ctc  # noqa: E402

N_FRAMES = 12
SIZE = 64
CELLS = {  # track: (start, end, parent, (y, x), radius)
    1: (0, 5, 0, (16, 16), 5),
    2: (6, 11, 1, (12, 12), 4),
    3: (6, 11, 1, (24, 24), 4),
    4: (0, 11, 0, (44, 44), 5),
    5: (0, 4, 0, (44, 16), 5),
}
MISSING_RAW = (3, 7)
MISSING_MARKERS = (9,)
LINEAGE = "".join(f"{k} {s} {e} {p}\n" for k, (s, e, p, _, _) in CELLS.items())


def _disk(cy, cx, r):
    yy, xx = np.mgrid[:SIZE, :SIZE]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def write_ctc(root, *, seq="01", dtype=np.uint16, digits=3, lineage=LINEAGE,
              st=True, gt=True):
    raw_dir = root / seq
    tra = root / f"{seq}_GT" / "TRA"
    raw_dir.mkdir(parents=True)
    tra.mkdir(parents=True)
    scale = 1 if dtype == np.uint8 else 100
    for t in range(N_FRAMES):
        img = np.full((SIZE, SIZE), 10 * scale, dtype)
        marker = np.zeros((SIZE, SIZE), np.uint16)
        seg = np.zeros((SIZE, SIZE), np.uint16)
        for k, (s, e, _, (cy, cx), r) in CELLS.items():
            if s <= t <= e:
                img[_disk(cy, cx, r)] = (100 + 10 * k) * scale
                marker[cy - 1 : cy + 2, cx - 1 : cx + 2] = k
                seg[_disk(cy, cx, r)] = 100 + k
        name = f"{t:0{digits}d}"
        if t not in MISSING_RAW:
            tifffile.imwrite(raw_dir / f"t{name}.tif", img, compression="lzw")
        if t not in MISSING_MARKERS:
            tifffile.imwrite(tra / f"man_track{name}.tif", marker, compression="lzw")
        if st and t <= 5:
            (root / f"{seq}_ST" / "SEG").mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(root / f"{seq}_ST" / "SEG" / f"man_seg{name}.tif", seg,
                             compression="lzw")
        if gt and t == 0:
            (root / f"{seq}_GT" / "SEG").mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(root / f"{seq}_GT" / "SEG" / f"man_seg{name}.tif", seg)
    (tra / "man_track.txt").write_text(lineage)
    return root


@pytest.fixture
def ctc(tmp_path):
    return write_ctc(tmp_path / "ctc")


def _quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return fn(*args, **kw)


def test_read_ctc_generic_representation(ctc):
    with pytest.warns(UserWarning, match=(
        r"raw frames missing for 2 of 12 frames, tracking markers for 1 of 12; "
        r"the 9 frames with both")):
        seq = read_ctc(ctc, "01")
    assert seq.movie.shape == (12, SIZE, SIZE)
    assert seq.movie.available == tuple(t for t in range(12) if t not in MISSING_RAW)
    assert seq.missing == {"n_frames": 12, "raw": 10, "markers": 11, "masks": 6,
                           "raw_and_markers": 9}
    assert seq.masks.available == tuple(range(6))
    assert seq.lineage["parent_id"].tolist() == [-1, 1, 1, -1, -1]
    # positions are marker centroids
    one = seq.tracks[seq.tracks.track_id == 3].iloc[0]
    assert (one.t, one.y, one.x, one.parent_id) == (6, 24.0, 24.0, 3 - 2)
    assert set(seq.tracks["t"]) == set(range(12)) - set(MISSING_MARKERS)


def test_load_ctc_labels_groups_and_crops(ctc):
    with pytest.warns(UserWarning, match="incomplete"):
        data = load_ctc(ctc, 1, crop_size=16, output_size=8, normalize=None)
    tab = data.table
    usable = [t for t in range(12) if t not in MISSING_RAW + MISSING_MARKERS]
    expected = {}
    for k, (s, e, _, _, _) in CELLS.items():
        for t in usable:
            if s <= t <= e and k != 5:  # 5 is lost: unknown, dropped
                expected[(k, t)] = 1 if k == 1 else 0
    assert dict(zip(zip(tab.track_id, tab.t), data.y.tolist())) == expected
    assert data.meta["dropped"] == {"unknown_track_ends": 4}
    assert set(zip(tab.track_id, data.groups)) == {(1, 1), (2, 1), (3, 1), (4, 4)}
    assert data.meta["ctc_frames"]["raw_and_markers"] == 9
    assert data.meta["source"]["sequence"] == "01"
    # masks where the CTC has them (frames 0-5), local Otsu elsewhere
    assert set(tab.loc[tab.t <= 5, "mask_source"]) == {"masks"}
    assert set(tab.loc[tab.t > 5, "mask_source"]) == {"otsu"}
    # crops centred on the nucleus, mean intensity of the nucleus
    for img, row in zip(data.X, tab.itertuples()):
        yy, xx = np.mgrid[:8, :8]
        cy, cx = (yy * img).sum() / img.sum(), (xx * img).sum() / img.sum()
        assert abs(cy - 3.25) < 0.35 and abs(cx - 3.25) < 0.35
        assert row.mean_intensity == pytest.approx((100 + 10 * row.track_id) * 100)


def test_load_ctc_horizon_and_first_generation(ctc):
    data = _quiet(load_ctc, ctc, "01", horizon=3, crop_size=16, output_size=8,
                  first_generation=True, unknown="keep")
    lab = dict(zip(zip(data.table.track_id, data.table.t), zip(data.y, data.table.label_reason)))
    assert set(data.table.track_id) == {1, 4, 5}
    assert lab[(1, 2)] == (0, "divides_after_horizon") and lab[(1, 4)] == (1, "divides")
    assert lab[(4, 8)] == (0, "no_division") and lab[(4, 10)] == (2, "movie_ends")
    assert lab[(5, 1)] == (0, "no_division") and lab[(5, 2)] == (2, "track_ends")


def test_segmentation_choices(ctc):
    st = _quiet(load_ctc, ctc, "01", crop_size=16, output_size=8, segmentation="st")
    assert st.table["t"].max() == 5
    assert st.meta["dropped"]["no_mask"] == 3 * 4  # tracks 2, 3 and 4 at 6, 8, 10, 11
    gt = _quiet(load_ctc, ctc, "01", crop_size=16, output_size=8, segmentation="gt")
    assert set(gt.table["t"]) == {0}
    none = _quiet(load_ctc, ctc, "01", crop_size=16, output_size=8, segmentation=None,
                  normalize=None)
    assert set(none.table["mask_source"]) == {"none"} and (none.X > 0).all()
    with pytest.raises(ValueError, match="segmentation must be one of"):
        load_ctc(ctc, "01", segmentation="masks")


def test_eight_bit_four_digit_frames(tmp_path):
    root = write_ctc(tmp_path / "c8", seq="02", dtype=np.uint8, digits=4, st=False,
                     gt=False)
    data = _quiet(load_ctc, root, "02", crop_size=16, output_size=8, normalize="dtype")
    assert data.X.dtype == np.float32
    assert data.X.max() == pytest.approx(140 / 255)
    assert set(data.table["mask_source"]) == {"otsu"}


def test_not_a_ctc_folder(tmp_path):
    with pytest.raises(ValueError, match="is not a folder"):
        read_ctc(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a CTC folder for sequence '01'.*no raw frames"):
        read_ctc(tmp_path / "empty")
    root = write_ctc(tmp_path / "c")
    (root / "01_GT" / "TRA" / "man_track.txt").unlink()
    with pytest.raises(ValueError, match="no lineage 01_GT/TRA/man_track.txt"):
        load_ctc(root, "01")
    with pytest.raises(ValueError, match="not a CTC folder for sequence '02'"):
        load_ctc(root, "02")
    with pytest.raises(ValueError, match="sequence must be a number"):
        read_ctc(root, "first")
    with pytest.raises(TypeError, match="path must be a str or path-like"):
        read_ctc(42)


def test_lineage_naming_unknown_parents(tmp_path):
    root = write_ctc(tmp_path / "c", lineage=LINEAGE + "6 0 3 9\n")
    with pytest.raises(ValueError, match="names parents that are not tracks in it: 9"):
        load_ctc(root, "01")


def test_bad_lineage_file(tmp_path):
    root = write_ctc(tmp_path / "c", lineage="1 0 5\n")
    with pytest.raises(ValueError, match="must have 4 columns"):
        read_ctc(root, "01")


def test_markers_not_in_lineage(tmp_path):
    root = write_ctc(tmp_path / "c", lineage=LINEAGE.replace("5 0 4 0\n", ""))
    with pytest.raises(ValueError, match="marker labels that man_track.txt does not list: \\[5\\]"):
        read_ctc(root, "01")


def test_mask_shape_differs_from_movie(tmp_path):
    root = write_ctc(tmp_path / "c")
    tifffile.imwrite(root / "01_ST" / "SEG" / "man_seg002.tif", np.zeros((32, 64), np.uint16))
    with pytest.raises(ValueError, match="man_seg002.tif\\) has shape \\(32, 64\\)"):
        _quiet(load_ctc, root, "01", crop_size=16, output_size=8, segmentation="st")
    # every mask the same size, but not the movie's
    for f in (root / "01_ST" / "SEG").iterdir():
        tifffile.imwrite(f, np.zeros((32, 64), np.uint16))
    with pytest.raises(ValueError, match="segmentation masks have shape \\(32, 64\\)"):
        _quiet(load_ctc, root, "01", crop_size=16, output_size=8, segmentation="st")


def test_three_d_data_is_refused(tmp_path):
    root = write_ctc(tmp_path / "c")
    for f in (root / "01").iterdir():
        tifffile.imwrite(f, np.zeros((3, SIZE, SIZE), np.uint16), photometric="minisblack")
    with pytest.raises(ValueError, match="only 2-D CTC data is supported"):
        read_ctc(root, "01")


def test_options_checked_before_reading(tmp_path):
    # the folder is not CTC-shaped, but the bad option is reported first
    with pytest.raises(ValueError, match="horizon must be None or an integer"):
        load_ctc(tmp_path, "01", horizon=-1)


def test_tracks_table_roundtrip_through_generic_path(ctc):
    """The CTC reader's output goes through make_fate_dataset unchanged."""
    from ai4cellfate.datasets import make_fate_dataset

    seq = _quiet(read_ctc, ctc, "01")
    direct = make_fate_dataset(seq.movie, seq.tracks, seq.masks, lineage=seq.lineage,
                               crop_size=16, output_size=8)
    via = _quiet(load_ctc, ctc, "01", crop_size=16, output_size=8)
    np.testing.assert_array_equal(direct.X, via.X)
    pd.testing.assert_frame_equal(direct.table, via.table)
