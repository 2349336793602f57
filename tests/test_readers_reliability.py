"""Readers: calibration from metadata, impossible inputs refused, messages naming files.

Issue 14 item 2 (pixel size and frame interval read from OME / ImageJ / TIFF
metadata), issue 13 items 5 (lineages that cannot be, Z stacks) and 10 (errors
that name the file: unreadable TIFFs, damaged dataset files, CSVs with another
separator). Every movie here is written by tifffile in a temporary folder.
"""

import json
import os
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest

tifffile = pytest.importorskip("tifffile")

from ai4cellfate.datasets import (  # noqa: E402
    FateDataset,
    FrameSequence,
    load_ctc,
    make_fate_dataset,
    read_ctc,
)
from ai4cellfate.datasets._frames import TiffMovie, tiff_info  # noqa: E402
from ai4cellfate.datasets._lineage import check_lineage  # noqa: E402

T, H, W = 6, 48, 48
CENTRES = [(14, 14), (34, 32)]
COLS = ["track_id", "start", "end", "parent_id"]


def _movie(n_channels=None, dtype=np.uint16):
    yy, xx = np.mgrid[:H, :W]
    frame = np.full((H, W), 100, dtype)
    for k, (cy, cx) in enumerate(CENTRES):
        frame[(yy - cy) ** 2 + (xx - cx) ** 2 <= 25] = 900 + 100 * k
    movie = np.stack([frame] * T)
    if n_channels:
        movie = np.stack([movie * (c + 1) for c in range(n_channels)], axis=1)
    return movie


def _tracks():
    rows = [(k + 1, t, float(cy), float(cx), -1)
            for k, (cy, cx) in enumerate(CENTRES) for t in range(T)]
    return pd.DataFrame(rows, columns=["track_id", "t", "y", "x", "parent_id"])


KW = dict(frames="first", output_size=8, segmentation="otsu", unknown="keep")


def _imagej(path, movie=None, resolution=None, **meta):
    movie = _movie() if movie is None else movie
    metadata = {"axes": "TYX" if movie.ndim == 3 else "TCYX", **meta}
    extra = {"resolution": resolution} if resolution else {}
    tifffile.imwrite(path, movie, imagej=True, metadata=metadata, **extra)
    return path


def _ome(path, movie=None, axes=None, **meta):
    movie = _movie() if movie is None else movie
    axes = axes or ("TYX" if movie.ndim == 3 else "TCYX")
    tifffile.imwrite(path, movie, ome=True, metadata={"axes": axes, **meta})
    return path


# --------------------------------------------- A: calibration from metadata
def test_imagej_calibration_gives_pixel_size_and_frame_interval(tmp_path):
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, _movie(), imagej=True, resolution=(1 / 0.5, 1 / 0.5),
                     metadata={"unit": "um", "finterval": 300, "axes": "TYX"})
    info = tiff_info(path)
    assert info.kind == "imagej"
    assert info.pixel_size == pytest.approx(0.5)
    assert info.frame_interval == pytest.approx(300)
    # crop_size_um works without pixel_size: 8 um at 0.5 um/px = 16 px
    data = make_fate_dataset(path, _tracks(), crop_size_um=8.0, **KW)
    assert data.meta["crop_size_px"] == 16
    assert data.pixel_size == pytest.approx(0.5)
    assert data.frame_interval == pytest.approx(300)
    assert data.meta["pixel_size_source"] == "metadata"
    assert "area_um2" in data.table
    assert "pixel size 0.5 um" in data.summary()
    assert "frame interval 300 s" in data.summary()


def test_ome_calibration_gives_pixel_size_and_frame_interval(tmp_path):
    path = _ome(tmp_path / "movie.ome.tif", PhysicalSizeX=0.65, PhysicalSizeXUnit="µm",
                PhysicalSizeY=0.65, PhysicalSizeYUnit="µm",
                TimeIncrement=5, TimeIncrementUnit="min")
    info = tiff_info(path)
    assert info.kind == "ome"
    assert info.pixel_size == pytest.approx(0.65)
    assert info.frame_interval == pytest.approx(300)
    data = make_fate_dataset(path, _tracks(), crop_size_um=10.4, **KW)  # 16 px
    assert data.meta["crop_size_px"] == 16
    assert data.pixel_size == pytest.approx(0.65)
    assert data.frame_interval == pytest.approx(300)


@pytest.mark.parametrize("unit,value,expected", [
    ("nm", 650, 0.65), ("mm", 0.00065, 0.65), ("µm", 0.65, 0.65), ("um", 0.65, 0.65),
])
def test_ome_length_units(tmp_path, unit, value, expected):
    path = _ome(tmp_path / "m.ome.tif", PhysicalSizeX=value, PhysicalSizeXUnit=unit,
                PhysicalSizeY=value, PhysicalSizeYUnit=unit)
    assert tiff_info(path).pixel_size == pytest.approx(expected)


def test_imagej_escaped_micro_and_minutes(tmp_path):
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, _movie(), imagej=True, resolution=(2.0, 2.0),
                     metadata={"unit": "\\u00B5m", "finterval": 5, "tunit": "min",
                               "axes": "TYX"})
    info = tiff_info(path)
    assert info.pixel_size == pytest.approx(0.5)
    assert info.frame_interval == pytest.approx(300)


@pytest.mark.parametrize("kind", ["imagej pixel unit", "imagej no unit", "plain no unit",
                                  "plain 72 dpi", "plain default"])
def test_resolution_without_a_physical_unit_is_no_calibration(tmp_path, kind):
    path = tmp_path / "m.tif"
    movie = _movie()
    if kind == "imagej pixel unit":
        tifffile.imwrite(path, movie, imagej=True, resolution=(2.0, 2.0),
                         metadata={"unit": "pixel", "axes": "TYX"})
    elif kind == "imagej no unit":
        tifffile.imwrite(path, movie, imagej=True, resolution=(2.0, 2.0),
                         metadata={"axes": "TYX"})
    elif kind == "plain no unit":
        tifffile.imwrite(path, movie[0], resolution=(2.0, 2.0), resolutionunit="NONE")
    elif kind == "plain 72 dpi":
        tifffile.imwrite(path, movie[0], resolution=(72.0, 72.0), resolutionunit="INCH")
    else:
        tifffile.imwrite(path, movie[0])
    assert tiff_info(path).pixel_size is None
    with pytest.raises(ValueError, match="crop_size_um needs pixel_size.*has none"):
        source = path if kind.startswith("imagej") else FrameSequence(
            {t: path for t in range(T)})
        make_fate_dataset(source, _tracks(), crop_size_um=8.0, **KW)


def test_plain_tiff_resolution_in_centimetres(tmp_path):
    # what the CTC Fluo-N2DL-HeLa frames carry: 15503.9 px/cm = 0.645 um/px
    path = tmp_path / "t000.tif"
    tifffile.imwrite(path, _movie()[0], resolution=(1e4 / 0.645, 1e4 / 0.645),
                     resolutionunit="CENTIMETER")
    assert tiff_info(path).pixel_size == pytest.approx(0.645)
    seq = FrameSequence({0: path})
    assert seq.pixel_size == pytest.approx(0.645) and seq.frame_interval is None


def test_ctc_frames_resolution_tags_give_crop_size_um(tmp_path):
    from test_datasets_ctc import write_ctc

    root = write_ctc(tmp_path / "ctc")
    for f in sorted((root / "01").glob("t*.tif")):
        img = tifffile.imread(f)
        tifffile.imwrite(f, img, resolution=(1e4 / 0.5, 1e4 / 0.5),
                         resolutionunit="CENTIMETER", compression="lzw")
    with pytest.warns(UserWarning, match="incomplete"):
        seq = read_ctc(root, "01")
    assert seq.pixel_size == pytest.approx(0.5)
    with pytest.warns(UserWarning, match="incomplete"):
        data = load_ctc(root, "01", crop_size_um=8.0, output_size=8)
    assert data.meta["crop_size_px"] == 16
    assert data.pixel_size == pytest.approx(0.5)


def test_explicit_pixel_size_that_disagrees_wins_with_a_warning(tmp_path):
    path = _imagej(tmp_path / "m.tif", unit="um", resolution=(2.0, 2.0))  # 0.5 um/px
    with pytest.warns(UserWarning, match=r"pixel_size=0\.25 um/px disagrees with the "
                                         r"0\.5 um/px in the metadata of .*m\.tif"):
        data = make_fate_dataset(path, _tracks(), pixel_size=0.25, crop_size_um=4.0, **KW)
    assert data.pixel_size == 0.25 and data.meta["crop_size_px"] == 16
    assert data.meta["pixel_size_source"] == "given"
    with pytest.warns(UserWarning, match="disagrees") as record:
        make_fate_dataset(path, _tracks(), pixel_size=0.25, crop_size=16, **KW)
    assert record[0].filename == __file__  # points at the caller's line
    # within 1 %: no warning, the given value is used
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = make_fate_dataset(path, _tracks(), pixel_size=0.502, crop_size=16, **KW)
    assert data.pixel_size == 0.502


def test_frame_interval_given_and_checked(tmp_path):
    data = make_fate_dataset(_movie(), _tracks(), crop_size=16, frame_interval=600, **KW)
    assert data.frame_interval == 600 and data.pixel_size is None
    with pytest.raises(ValueError, match="frame_interval must be a positive number"):
        make_fate_dataset(_movie(), _tracks(), crop_size=16, frame_interval=-1, **KW)
    path = _imagej(tmp_path / "m.tif", finterval=300)
    with pytest.warns(UserWarning, match="frame_interval=60 s disagrees with the 300 s"):
        data = make_fate_dataset(path, _tracks(), crop_size=16, frame_interval=60, **KW)
    assert data.frame_interval == 60


def test_calibration_saved_and_loaded(tmp_path):
    path = _imagej(tmp_path / "m.tif", unit="um", finterval=300, resolution=(2.0, 2.0))
    data = make_fate_dataset(path, _tracks(), crop_size=16, **KW)
    back = FateDataset.load(data.save(tmp_path / "d.npz"))
    assert back.pixel_size == pytest.approx(0.5) and back.frame_interval == 300
    train, test = data.subset([0]), data.subset([1])
    assert train.pixel_size == test.pixel_size == data.pixel_size


def test_dataset_file_without_calibration_still_loads(tmp_path):
    """Files written before pixel_size / frame_interval were stored."""
    data = make_fate_dataset(_movie(), _tracks(), crop_size=16, **KW)
    path = data.save(tmp_path / "d.npz")
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(str(arrays["header"]))
    del header["pixel_size"], header["frame_interval"]
    arrays["header"] = np.asarray(json.dumps(header))
    old = tmp_path / "old.npz"
    np.savez_compressed(old, **arrays)
    back = FateDataset.load(old)
    assert back.pixel_size is None and back.frame_interval is None
    np.testing.assert_array_equal(back.X, data.X)


def test_fate_dataset_rejects_bad_calibration():
    with pytest.raises(ValueError, match="pixel_size must be None or a positive number"):
        FateDataset(np.zeros((2, 4, 4)), np.array([0, 1]), np.array([0, 1]),
                    pd.DataFrame(index=range(2)), pixel_size=-0.5)


@pytest.mark.parametrize("writer", ["imagej", "ome", "ome CTYX", "plain"])
def test_movie_from_a_tiff_file_equals_the_array(tmp_path, writer):
    movie = _movie(n_channels=2)
    path = tmp_path / "m.tif"
    if writer == "imagej":
        _imagej(path, movie)
    elif writer == "ome":
        _ome(path, movie)
    elif writer == "ome CTYX":
        _ome(path, np.ascontiguousarray(movie.transpose(1, 0, 2, 3)), axes="CTYX")
    else:
        tifffile.imwrite(path, movie)
    lazy = TiffMovie(path)
    assert lazy.shape == movie.shape
    for t in range(T):
        np.testing.assert_array_equal(lazy[t], movie[t])
    a = make_fate_dataset(movie, _tracks(), crop_size=16, channel=1, **KW)
    b = make_fate_dataset(path, _tracks(), crop_size=16, channel=1, **KW)
    np.testing.assert_array_equal(a.X, b.X)


def test_tracks_and_lineage_from_csv_files(tmp_path):
    _tracks().to_csv(tmp_path / "tracks.csv", index=False)
    tifffile.imwrite(tmp_path / "movie.tif", _movie())
    a = make_fate_dataset(_movie(), _tracks(), crop_size=16, **KW)
    b = make_fate_dataset(tmp_path / "movie.tif", tmp_path / "tracks.csv", crop_size=16, **KW)
    np.testing.assert_array_equal(a.X, b.X)


# ------------------------------------------- B: lineages that cannot be
@pytest.mark.parametrize("start", [5, 3])  # at, and before, the mother's last frame
def test_daughter_starting_before_her_mother_ends_is_refused(start):
    lin = pd.DataFrame([(1, 0, 5, 0), (2, start, 9, 1), (3, 6, 9, 1)], columns=COLS)
    with pytest.raises(ValueError, match=rf"track 2 starts at frame {start}, its parent "
                                         r"track 1 ends at frame 5"):
        check_lineage(lin)


def test_daughter_overlap_refused_in_tracks_table():
    tracks = _tracks()
    tracks.loc[tracks.track_id == 2, "parent_id"] = 1  # same frames as its "mother"
    with pytest.raises(ValueError, match="tracks has 1 track.*track 2 starts at frame 0, "
                                         "its parent track 1 ends at frame 5"):
        make_fate_dataset(_movie(), tracks, crop_size=16, **KW)


def test_daughter_overlap_refused_in_ctc_lineage(tmp_path):
    from test_datasets_ctc import write_ctc

    # track 2 starts at frame 5, track 1 (its mother) ends at 5
    lineage = "1 0 5 0\n2 5 11 1\n3 6 11 1\n4 0 11 0\n5 0 4 0\n"
    root = write_ctc(tmp_path / "ctc", lineage=lineage)
    with pytest.raises(ValueError, match=r"man_track\.txt has 1 track.*track 2 starts at "
                                         r"frame 5, its parent track 1 ends at frame 5"):
        read_ctc(root, "01")


@pytest.mark.parametrize("rows,match", [
    ([(1, 0, 5, 3), (2, 6, 9, 1), (3, 10, 12, 2)], r"cycle of parents: track \d -> "
                                                   r"track \d -> track \d -> track \d"),
    ([(1, 0, 5, 1)], "own parent: \\[1\\]"),
    ([(1, 0, 5, 0), (1, 6, 9, 0)], r"track ids more than once: \[1\]"),
    ([(1, 6, 5, 0)], r"end before they start.*track 1 \(frames 6 to 5\)"),
    ([(1, 0, 5, 0), (2, 6, 9, 7)], r"parents that are not tracks in it: 7 .*track\(s\) \[2\]"),
    ([(1, -2, 5, 0)], "start must be >= 0; track 1 starts at frame -2"),
])
def test_lineage_invariants(rows, match):
    with pytest.raises(ValueError, match=match):
        check_lineage(pd.DataFrame(rows, columns=COLS))


def test_valid_lineage_with_gap_closing_link_passes():
    lin = check_lineage(pd.DataFrame(
        [(1, 0, 3, 0), (2, 6, 8, 1), (3, 9, 12, 2), (4, 9, 12, 2)], columns=COLS))
    assert lin["parent_id"].tolist() == [-1, 1, 2, 2]


# ------------------------------------------------------------- B: Z stacks
@pytest.mark.parametrize("axes,shape", [("TZYX", (T, 3, H, W)), ("TZCYX", (T, 3, 2, H, W))])
def test_imagej_movie_with_z_planes_is_refused(tmp_path, axes, shape):
    path = tmp_path / "z.tif"
    tifffile.imwrite(path, np.zeros(shape, np.uint16), imagej=True, metadata={"axes": axes})
    with pytest.raises(ValueError, match=r"z\.tif has 3 Z planes .*only 2-D"):
        make_fate_dataset(path, _tracks(), crop_size=16, **KW)


def test_ome_movie_with_z_planes_is_refused(tmp_path):
    path = _ome(tmp_path / "z.ome.tif", np.zeros((T, 2, H, W), np.uint16), axes="TZYX")
    with pytest.raises(ValueError, match="has 2 Z planes"):
        make_fate_dataset(path, _tracks(), crop_size=16, **KW)


def test_frame_file_with_z_planes_is_refused(tmp_path):
    """A ZYX frame was read as a (C, H, W) channel stack."""
    path = tmp_path / "t000.tif"
    tifffile.imwrite(path, np.zeros((3, H, W), np.uint16), imagej=True,
                     metadata={"axes": "ZYX"})
    with pytest.raises(ValueError, match=r"t000\.tif has 3 Z planes"):
        FrameSequence({0: path})


def test_stack_of_slices_without_time_axis_gets_a_hint(tmp_path):
    """ImageJ saves a plain stack as Z slices: say how to mark them as frames."""
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, _movie(), imagej=True, metadata={"axes": "ZYX"})
    with pytest.raises(ValueError, match=rf"has {T} Z planes.*Image > Properties, "
                                         rf"slices 1, frames {T}"):
        make_fate_dataset(path, _tracks(), crop_size=16, **KW)


def test_ctc_raw_frames_with_z_planes_are_refused(tmp_path):
    from test_datasets_ctc import write_ctc

    root = write_ctc(tmp_path / "ctc")
    for f in sorted((root / "01").glob("t*.tif")):
        img = tifffile.imread(f)
        tifffile.imwrite(f, np.stack([img, img]), imagej=True, metadata={"axes": "ZYX"})
    with pytest.raises(ValueError, match="has 2 Z planes"):
        read_ctc(root, "01")


# ---------------------------------------- C: unreadable TIFFs name the file
def _bad_tiff(path, kind):
    rng = np.random.default_rng(0)
    if kind == "random bytes":
        path.write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    elif kind == "tiff magic, garbage body":
        path.write_bytes(b"II*\x00" + rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    elif kind == "empty":
        path.write_bytes(b"")
    else:  # truncated: the first half of a valid file
        full = path.with_name("full_" + path.name)
        if kind == "truncated":
            tifffile.imwrite(full, _movie()[0])
        else:
            tifffile.imwrite(full, rng.integers(0, 60000, (H, W), dtype=np.uint16),
                             compression="zlib")
        data = full.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        full.unlink()
    return path


BAD = ["random bytes", "tiff magic, garbage body", "empty", "truncated",
       "truncated compressed"]


@pytest.mark.parametrize("kind", BAD)
def test_unreadable_tiff_named_in_frame_sequence(tmp_path, kind):
    path = _bad_tiff(tmp_path / "t003.tif", kind)
    with pytest.raises(ValueError, match=r"t003\.tif is not a readable TIFF"):
        seq = FrameSequence({0: path})
        seq[0]


@pytest.mark.parametrize("kind", ["random bytes", "tiff magic, garbage body", "truncated"])
def test_unreadable_tiff_named_for_a_movie_file(tmp_path, kind):
    path = _bad_tiff(tmp_path / "movie.tif", kind)
    with pytest.raises(ValueError, match=r"movie\.tif is not a readable TIFF"):
        make_fate_dataset(path, _tracks(), crop_size=16, **KW)


def test_truncated_multipage_movie_named(tmp_path):
    full = _imagej(tmp_path / "full.tif")
    data = full.read_bytes()
    path = tmp_path / "movie.tif"
    path.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(ValueError, match=r"movie\.tif is not a readable TIFF"):
        make_fate_dataset(path, _tracks(), crop_size=16, **KW)


@pytest.mark.parametrize("where", ["raw", "marker"])
def test_unreadable_ctc_file_named(tmp_path, where):
    from test_datasets_ctc import write_ctc

    root = write_ctc(tmp_path / "ctc")
    bad = root / "01" / "t004.tif" if where == "raw" else root / "01_GT/TRA/man_track004.tif"
    _bad_tiff(bad, "tiff magic, garbage body")
    with pytest.raises(ValueError, match=rf"{bad.name} is not a readable TIFF"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read_ctc(root, "01")


# ------------------------------------------ C: damaged dataset files
@pytest.fixture
def saved(tmp_path):
    data = make_fate_dataset(_movie(), _tracks(), crop_size=16, **KW)
    path = data.save(tmp_path / "d.npz")
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    return path, arrays


def _rewrite(path, arrays):
    np.savez(path, **arrays)  # pickles object arrays (allow_pickle=True default)
    return path


def test_npz_with_object_array_names_file_and_key(tmp_path, saved):
    path, arrays = saved
    header = json.loads(str(arrays["header"]))
    key = next(c["key"] for c in header["columns"] if c["name"] == "label_reason")
    arrays[key] = arrays[key].astype(object)
    bad = _rewrite(tmp_path / "objects.npz", arrays)
    with pytest.raises(ValueError, match=rf"objects\.npz: the array '{key}' .*holds "
                                         r"Python objects"):
        FateDataset.load(bad)
    arrays["X"] = arrays["X"].astype(object)
    with pytest.raises(ValueError, match=r"objects\.npz: the array 'X' holds Python objects"):
        FateDataset.load(_rewrite(bad, arrays))


@pytest.mark.parametrize("change,match", [
    (lambda a, h: a.update(header=np.asarray("{not json")),
     r"bad\.npz: the array 'header' is not valid JSON"),
    (lambda a, h: a.update(header=np.asarray([1, 2])),
     r"bad\.npz: the array 'header' must be one JSON string"),
    (lambda a, h: h.update(columns="x"), r"bad\.npz: the 'header' key 'columns' must be a list"),
    (lambda a, h: h["columns"].append({"name": "z"}),
     r"bad\.npz: the 'header' key 'columns' entry \d+ must hold"),
    (lambda a, h: h["columns"][0].update(key="nowhere"),
     r"bad\.npz: the array 'nowhere' \(header column 0 \('track_id'\)\) is missing"),
    (lambda a, h: a.pop("groups"), r"bad\.npz: the array 'groups' is missing"),
    (lambda a, h: h.update(meta=[1]), r"bad\.npz: the 'header' key 'meta' must be"),
    (lambda a, h: h.update(version="1"), r"bad\.npz: the 'header' key 'version'"),
    (lambda a, h: h.update(pixel_size="0.5"), r"bad\.npz: the 'header' key 'pixel_size'"),
    (lambda a, h: a.update(groups=a["groups"][:1]),
     r"bad\.npz is not a consistent FateDataset: groups must have shape"),
])
def test_malformed_npz_names_file_and_key(tmp_path, saved, change, match):
    _, arrays = saved
    header = json.loads(str(arrays["header"]))
    change(arrays, header)
    if arrays["header"].ndim == 0 and str(arrays["header"]).startswith("{\""):
        arrays["header"] = np.asarray(json.dumps(header))
    with pytest.raises(ValueError, match=match):
        FateDataset.load(_rewrite(tmp_path / "bad.npz", arrays))


def test_npz_with_damaged_member_names_file_and_key(tmp_path, saved):
    path, _ = saved
    bad = tmp_path / "damaged.npz"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(bad, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "X.npy":
                data = data[:200]  # a header and part of the array
            zout.writestr(item, data)
    with pytest.raises(ValueError, match=r"damaged\.npz: the array 'X' "):
        FateDataset.load(bad)


# ------------------------------------------ C: CSVs with another separator
@pytest.mark.parametrize("sep,suggest", [(";", "';'"), ("\t", r"'\\t' \(tab\)")])
def test_tracks_csv_with_other_separator_suggests_it(tmp_path, sep, suggest):
    path = tmp_path / "tracks.csv"
    _tracks().to_csv(path, sep=sep, index=False)
    tracks = pd.read_csv(path)  # what a user (or the CLI) does first
    with pytest.raises(ValueError, match=r"tracks lacks the column\(s\) \['track_id', 't', "
                                         r"'y', 'x'.*Columns found: \['track_id.+parent_id'\]\."
                                         rf".*separated by {suggest}"):
        make_fate_dataset(_movie(), tracks, crop_size=16, **KW)
    with pytest.raises(ValueError, match=rf"tracks table .*tracks\.csv lacks.*"
                                         rf"separated by {suggest}"):
        make_fate_dataset(_movie(), path, crop_size=16, **KW)


def test_lineage_csv_with_semicolons_suggests_the_separator(tmp_path):
    path = tmp_path / "lineage.csv"
    pd.DataFrame([(1, 0, 5, -1), (2, 0, 5, -1)], columns=COLS).to_csv(
        path, sep=";", index=False)
    with pytest.raises(ValueError, match="lineage lacks.*separated by ';'"):
        check_lineage(pd.read_csv(path), "lineage")


def test_unreadable_csv_named(tmp_path):
    path = tmp_path / "tracks.csv"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"tracks\.csv is empty"):
        make_fate_dataset(_movie(), path, crop_size=16, **KW)
    path.write_text('track_id,t\n1,"0\n')
    with pytest.raises(ValueError, match=r"tracks\.csv is not a readable CSV table"):
        make_fate_dataset(_movie(), path, crop_size=16, **KW)
    assert os.path.exists(path)
