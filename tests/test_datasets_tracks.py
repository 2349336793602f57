"""Crops, masks and the FateDataset container, on synthetic movies with known nuclei."""

import os

import numpy as np
import pandas as pd
import pytest

from ai4cellfate.datasets import FateDataset, FrameSequence, make_fate_dataset

H = W = 64
R = 5  # nucleus radius (px)
DISK_AREA = int(np.sum(np.add.outer(np.arange(-R, R + 1) ** 2, np.arange(-R, R + 1) ** 2) <= R * R))


def _disk(cy, cx, r=R):
    yy, xx = np.mgrid[:H, :W]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def _scene(centres, n_frames=3, value=1000.0, bg=100.0, noise=0.0, dtype=np.float32):
    """Movie with one disk per centre, its label masks (labels 7, 8, ...) and tracks."""
    rng = np.random.default_rng(0)
    frame = np.full((H, W), bg)
    lab = np.zeros((H, W), np.int32)
    for k, (cy, cx) in enumerate(centres):
        d = _disk(cy, cx)
        frame[d] = value * (1 + 0.1 * k)
        lab[d] = 7 + k
    movie = np.stack([frame + noise * rng.standard_normal((H, W)) for _ in range(n_frames)])
    masks = np.stack([lab] * n_frames)
    rows = [
        (k + 1, t, float(cy), float(cx), -1)
        for k, (cy, cx) in enumerate(centres)
        for t in range(n_frames)
    ]
    tracks = pd.DataFrame(rows, columns=["track_id", "t", "y", "x", "parent_id"])
    return movie.astype(dtype), masks, tracks


def _centroid(img):
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    w = img.sum()
    return float((yy * img).sum() / w), float((xx * img).sum() / w)


KW = dict(frames="first", crop_size=15, output_size=None, normalize=None)


# ------------------------------------------------------------------- crops
@pytest.mark.parametrize("segmentation", ["masks", "otsu", "auto"])
def test_crops_are_centred_and_masked(segmentation):
    centres = [(20, 30), (44, 14), (40, 45)]
    movie, masks, tracks = _scene(centres, noise=10.0)
    data = make_fate_dataset(
        movie, tracks, masks if segmentation != "otsu" else None,
        segmentation=segmentation, **KW,
    )
    assert data.X.shape == (3, 15, 15) and data.X.dtype == np.float32
    for img in data.X:
        cy, cx = _centroid(img)
        assert abs(cy - 7) < 0.25 and abs(cx - 7) < 0.25
        # background zeroed: nothing outside the nucleus (1 px tolerance for Otsu)
        yy, xx = np.mgrid[:15, :15]
        far = (yy - 7) ** 2 + (xx - 7) ** 2 > (R + 1.5) ** 2
        assert np.all(img[far] == 0)
        assert img[7, 7] > 900
    if segmentation == "otsu":
        assert np.all(np.abs(data.table["area"] - DISK_AREA) <= 0.15 * DISK_AREA)
        assert set(data.table["mask_source"]) == {"otsu"}
    else:
        assert data.table["area"].tolist() == [DISK_AREA] * 3
        assert set(data.table["mask_source"]) == {"masks"}
        inside = _disk(7, 7)[:15, :15]
        assert np.all((data.X[0] > 0) == inside)


def test_subpixel_positions_stay_within_half_a_pixel():
    movie, masks, tracks = _scene([(20, 30)])
    tracks["y"] += 0.4
    tracks["x"] -= 0.3
    data = make_fate_dataset(movie, tracks, masks, **KW)
    cy, cx = _centroid(data.X[0])
    # the nucleus sits at (7, 7) + the sub-pixel offset rounded away
    assert abs(cy - 7.0) <= 0.5 and abs(cx - 7.0) <= 0.5
    assert data.table.loc[0, "y"] == pytest.approx(20.4)


def test_features_measured_on_raw_pixels():
    movie, masks, tracks = _scene([(20, 30), (44, 14)], dtype=np.uint16)
    data = make_fate_dataset(movie, tracks, masks, frames="first", crop_size=16,
                             output_size=8, normalize="dtype")
    tab = data.table
    assert tab["area"].tolist() == [DISK_AREA] * 2
    assert tab["mean_intensity"].tolist() == [1000.0, 1100.0]
    assert tab["total_intensity"].tolist() == [1000.0 * DISK_AREA, 1100.0 * DISK_AREA]
    assert tab["std_intensity"].tolist() == [0.0, 0.0]
    # binned 2x2 crops, divided by the dtype maximum
    assert data.X.shape == (2, 8, 8)
    assert data.X.max() == pytest.approx(1100 / 65535, rel=1e-5)
    assert set(np.unique(data.X[0])) <= {0.0, np.float32(1000 / 65535)}


def test_output_size_bins_or_resamples():
    movie, masks, tracks = _scene([(30, 30)])
    binned = make_fate_dataset(movie, tracks, masks, frames="first", crop_size=16,
                               output_size=8, normalize=None)
    assert binned.X.shape == (1, 8, 8)
    cy, cx = _centroid(binned.X[0])
    assert abs(cy - 3.25) <= 0.3 and abs(cx - 3.25) <= 0.3  # (7 + 0.5) / 2 - 0.5
    resampled = make_fate_dataset(movie, tracks, masks, frames="first", crop_size=15,
                                  output_size=10, normalize=None)
    assert resampled.X.shape == (1, 10, 10)
    cy, cx = _centroid(resampled.X[0])
    assert abs(cy - 4.5) <= 0.3 and abs(cx - 4.5) <= 0.3


def test_crop_size_in_micrometres():
    movie, masks, tracks = _scene([(30, 30)])
    data = make_fate_dataset(movie, tracks, masks, frames="first", pixel_size=0.5,
                             crop_size_um=7.5, output_size=None, normalize=None)
    assert data.X.shape == (1, 15, 15)
    assert data.meta["crop_size_px"] == 15
    assert data.table.loc[0, "area_um2"] == pytest.approx(DISK_AREA * 0.25)
    with pytest.raises(ValueError, match="crop_size_um needs pixel_size"):
        make_fate_dataset(movie, tracks, masks, crop_size_um=7.5)
    with pytest.raises(ValueError, match="pixel_size must be a positive number"):
        make_fate_dataset(movie, tracks, masks, pixel_size=-1.0, crop_size_um=7.5)
    with pytest.raises(ValueError, match="output_size .* must not exceed"):
        make_fate_dataset(movie, tracks, masks, pixel_size=0.5, crop_size_um=7.5,
                          output_size=20)


def test_percentile_normalisation_is_fixed_and_keeps_background():
    movie, masks, tracks = _scene([(20, 30), (44, 14)], noise=5.0)
    data = make_fate_dataset(movie, tracks, masks, **{**KW, "normalize": "percentile"})
    assert data.X.min() == 0.0 and data.X.max() <= 1.0
    lo, hi = data.meta["intensity_range"]
    assert 80 < lo[0] < 120 and 1000 < hi[0] < 1200
    assert np.all(data.X[0][~_disk(7, 7)[:15, :15]] == 0)
    with pytest.raises(ValueError, match="normalize='dtype' needs an integer movie"):
        make_fate_dataset(movie, tracks, masks, normalize="dtype")


# ----------------------------------------------------- border and merged
def test_border_drop_and_pad():
    movie, masks, tracks = _scene([(4, 30), (30, 30)])
    dropped = make_fate_dataset(movie, tracks, masks, border="drop", **KW)
    assert dropped.table["track_id"].tolist() == [2]
    assert dropped.meta["dropped"] == {"border": 1}
    padded = make_fate_dataset(movie, tracks, masks, border="pad", **KW)
    assert padded.table["track_id"].tolist() == [1, 2]
    assert padded.table["padded"].tolist() == [True, False]
    top = padded.X[0]
    assert np.all(top[:3] == 0)  # rows above the image (4 - 7 = -3 .. -1) are zero
    assert top[7, 7] > 0 and padded.table.loc[0, "area"] == int(_disk(4, 30).sum())


def test_merged_nuclei_dropped_with_counts():
    # two touching nuclei: one Otsu component, and one mask label, for two tracks
    movie, masks, tracks = _scene([(30, 26), (30, 35), (10, 50)])
    otsu = make_fate_dataset(movie, tracks, segmentation="otsu", **KW)
    assert otsu.table["track_id"].tolist() == [3]
    assert otsu.meta["dropped"] == {"merged": 2}
    masks[masks == 8] = 7
    given = make_fate_dataset(movie, tracks, masks, segmentation="masks", **KW)
    assert given.table["track_id"].tolist() == [3]
    assert given.meta["dropped"] == {"merged": 2}
    # without masking there is no merge check
    none = make_fate_dataset(movie, tracks, segmentation=None, **KW)
    assert len(none) == 3 and none.meta["dropped"] == {}


def test_merged_nuclei_split_option():
    movie, masks, tracks = _scene([(30, 26), (30, 35), (10, 50)])
    split = make_fate_dataset(movie, tracks, segmentation="otsu", merged="split", **KW)
    assert split.table["track_id"].tolist() == [1, 2, 3]
    assert split.table["mask_source"].tolist() == ["otsu_split", "otsu_split", "otsu"]
    assert split.meta["split_merged"] == 2 and split.meta["dropped"] == {}
    # each half is its own nucleus: left of the bisector x = 30.5 for track 1
    for img, row in zip(split.X[:2], split.table.itertuples()):
        assert DISK_AREA * 0.6 <= row.area <= DISK_AREA * 1.15
        cols = np.flatnonzero(img.any(axis=0)) + int(np.floor(row.crop_x - 7 + 0.5))
        assert (cols.max() <= 30) if row.track_id == 1 else (cols.min() >= 31)
    # given masks that merge two nuclei are still dropped
    masks[masks == 8] = 7
    given = make_fate_dataset(movie, tracks, masks, segmentation="masks", merged="split", **KW)
    assert given.meta["dropped"] == {"merged": 2}
    with pytest.raises(ValueError, match="merged must be one of"):
        make_fate_dataset(movie, tracks, merged="keep", **KW)


@pytest.mark.parametrize("segmentation", ["masks", "otsu"])
def test_window_centred_on_mask_not_on_offcentre_marker(segmentation):
    movie, masks, tracks = _scene([(20, 30), (44, 14)])
    tracks["y"] += 3.0  # markers inside the nucleus but 3 px below its centre
    data = make_fate_dataset(movie, tracks, masks, segmentation=segmentation, **KW)
    assert data.table["crop_y"].tolist() == pytest.approx([20.0, 44.0], abs=0.3)
    assert data.table["y"].tolist() == [23.0, 47.0]
    cy, cx = _centroid(data.X[0])
    assert abs(cy - 7) < 0.25 and abs(cx - 7) < 0.25
    on_track = make_fate_dataset(movie, tracks, masks, segmentation=segmentation,
                                 center="track", **KW)
    cy, _ = _centroid(on_track.X[0])
    assert abs(cy - 4) < 0.25  # the nucleus sits 3 px above the window centre
    with pytest.raises(ValueError, match="center must be one of"):
        make_fate_dataset(movie, tracks, masks, center="nucleus", **KW)


def test_auto_uses_masks_where_they_exist():
    movie, masks, tracks = _scene([(20, 30)], n_frames=4)
    mask_seq = FrameSequence({0: masks[0], 2: masks[2]}, n_frames=4)
    data = make_fate_dataset(movie, tracks, mask_seq, frames="all", crop_size=15,
                             output_size=None, normalize=None)
    assert data.table["mask_source"].tolist() == ["masks", "otsu", "masks", "otsu"]
    only = make_fate_dataset(movie, tracks, mask_seq, frames="all", crop_size=15,
                             output_size=None, segmentation="masks", normalize=None)
    assert only.table["t"].tolist() == [0, 2]
    assert only.meta["dropped"] == {"no_mask": 2}
    with pytest.raises(ValueError, match="segmentation='masks' needs masks"):
        make_fate_dataset(movie, tracks, segmentation="masks")


# ------------------------------------------------------------- channels
def test_multichannel_crops_and_channel_errors():
    movie, masks, tracks = _scene([(20, 30), (44, 14)])
    movie2 = np.stack([movie, 2 * movie], axis=1)  # (T, 2, H, W)
    both = make_fate_dataset(movie2, tracks, masks, **KW)
    assert both.X.shape == (2, 15, 15, 2)
    inside = both.X[..., 0] > 0
    np.testing.assert_allclose(both.X[..., 1][inside] / both.X[..., 0][inside], 2.0)
    assert "mean_intensity_c1" in both.table and "mean_intensity" not in both.table
    one = make_fate_dataset(movie2, tracks, masks, channel=-1, **KW)
    assert one.X.shape == (2, 15, 15)
    np.testing.assert_allclose(one.X, both.X[..., 1])
    for bad in (2, [0, 5], -3):
        with pytest.raises(ValueError, match="channel .* does not exist"):
            make_fate_dataset(movie2, tracks, masks, channel=bad, **KW)
    with pytest.raises(ValueError, match="channel 1 does not exist"):
        make_fate_dataset(movie, tracks, masks, channel=1, **KW)
    with pytest.raises(ValueError, match="segmentation_channel 4 does not exist"):
        make_fate_dataset(movie2, tracks, segmentation_channel=4, **KW)
    with pytest.raises(TypeError, match="channel must be"):
        make_fate_dataset(movie2, tracks, channel="CFP", **KW)


# --------------------------------------------------------------- bad input
def test_masks_shape_must_match_movie():
    movie, masks, tracks = _scene([(20, 30)])
    for bad in (masks[:, :, :-1], masks[:2], masks[:, None]):
        with pytest.raises(ValueError, match="masks must have shape"):
            make_fate_dataset(movie, tracks, bad, **KW)
    with pytest.raises(TypeError, match="masks must hold integer labels"):
        make_fate_dataset(movie, tracks, masks.astype(float), **KW)


def test_tracks_outside_the_image_or_movie():
    movie, masks, tracks = _scene([(20, 30)])
    for col, val in (("y", 64.0), ("x", -1.0), ("y", 70.5)):
        bad = tracks.copy()
        bad.loc[1, col] = val
        with pytest.raises(ValueError, match="outside the 64 x 64 image"):
            make_fate_dataset(movie, bad, masks, **KW)
    bad = tracks.copy()
    bad.loc[1, "t"] = 3
    with pytest.raises(ValueError, match="t outside the movie's 3 frames"):
        make_fate_dataset(movie, bad, masks, **KW)


def test_tracks_table_errors():
    movie, masks, tracks = _scene([(20, 30)])
    with pytest.raises(TypeError, match="tracks must be a pandas DataFrame"):
        make_fate_dataset(movie, tracks.to_numpy(), **KW)
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['x'\]"):
        make_fate_dataset(movie, tracks.drop(columns="x"), **KW)
    bad = tracks.copy()
    bad.loc[0, "y"] = np.nan
    with pytest.raises(ValueError, match="tracks.y must hold finite numbers"):
        make_fate_dataset(movie, bad, **KW)
    with pytest.raises(ValueError, match="duplicated"):
        make_fate_dataset(movie, pd.concat([tracks, tracks.iloc[:1]]), **KW)
    with pytest.raises(ValueError, match="movie must have shape"):
        make_fate_dataset(movie[0], tracks, **KW)
    with pytest.raises(TypeError, match="movie must be an array"):
        make_fate_dataset([[1, 2]], tracks, **KW)


class _CountingMovie:
    """Array-like movie that records frame reads and refuses to load whole."""

    def __init__(self, data):
        self._data = data
        self.shape = data.shape
        self.dtype = data.dtype
        self.reads = []

    def __getitem__(self, t):
        self.reads.append(t)
        return self._data[t]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole movie was loaded")


def test_movie_read_frame_by_frame_once():
    movie, masks, tracks = _scene([(20, 30), (44, 14)], n_frames=6)
    counting = _CountingMovie(movie)
    data = make_fate_dataset(counting, tracks, masks, frames="all", crop_size=15,
                             output_size=None, normalize="percentile")
    assert len(data) == 12
    assert sorted(counting.reads) == list(range(6))  # each frame once
    counting = _CountingMovie(movie)
    make_fate_dataset(counting, tracks, masks, frames="first", crop_size=15, output_size=None)
    assert counting.reads == [0]


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(frames="every"), "frames must be one of"),
        (dict(unknown="ignore"), "unknown must be one of"),
        (dict(crop_size=3), "crop_size must be an integer >= 4"),
        (dict(crop_size=15.0), "crop_size must be an integer"),
        (dict(crop_size=16, output_size=30), "must not exceed"),
        (dict(border="wrap"), "border must be one of"),
        (dict(segmentation="watershed"), "segmentation must be one of"),
        (dict(normalize="zscore"), "normalize must be one of"),
        (dict(percentiles=(50, 10)), "percentiles must satisfy"),
        (dict(first_generation="yes"), "first_generation must be a bool"),
    ],
)
def test_bad_options_fail_before_reading_pixels(kw, msg):
    movie, masks, tracks = _scene([(20, 30)])
    counting = _CountingMovie(movie)
    with pytest.raises((ValueError, TypeError), match=msg):
        make_fate_dataset(counting, tracks, masks, **kw)
    assert counting.reads == []


def test_no_sample_left_is_an_error():
    movie, masks, tracks = _scene([(3, 3)])
    with pytest.raises(ValueError, match="no sample left: border 1"):
        make_fate_dataset(movie, tracks, masks, **KW)


def test_extra_track_columns_reach_the_table():
    movie, masks, tracks = _scene([(20, 30), (44, 14)])
    tracks["QUALITY"] = np.arange(len(tracks), dtype=float)
    data = make_fate_dataset(movie, tracks, masks, frames="all", crop_size=16, output_size=8)
    assert data.table["QUALITY"].tolist() == tracks["QUALITY"].tolist()


# ---------------------------------------------------------- FrameSequence
def test_frame_sequence_gaps_and_errors(tmp_path):
    import tifffile

    path = tmp_path / "f.tif"
    tifffile.imwrite(path, np.full((8, 9), 3, np.uint8), compression="zlib")
    seq = FrameSequence({1: path, 3: np.zeros((8, 9), np.uint8)}, n_frames=5)
    assert seq.shape == (5, 8, 9) and seq.available == (1, 3) and seq.dtype == np.uint8
    assert int(seq[1].sum()) == 3 * 72 and 2 not in seq
    with pytest.raises(IndexError, match="frame 2 is missing"):
        seq[2]
    with pytest.raises(ValueError, match="at least one frame"):
        FrameSequence({})
    with pytest.raises(ValueError, match="n_frames must exceed"):
        FrameSequence({4: path}, n_frames=3)
    with pytest.raises(ValueError, match="frames keys must be frame indices"):
        FrameSequence({-1: path})
    with pytest.raises(ValueError, match=r"frame 1 \(array\) has shape \(8, 10\)"):
        FrameSequence({0: path, 1: np.zeros((8, 10))})
    lazy = FrameSequence({0: path, 1: np.zeros((8, 10))}, check_shapes=False)
    with pytest.raises(ValueError, match="frame 1 .* has shape"):
        lazy[1]


# ------------------------------------------------------------ FateDataset
@pytest.fixture
def dataset():
    movie, masks, tracks = _scene([(20, 30), (44, 14), (40, 45)], n_frames=4)
    # track 3 continues track 1 (frames 0-1) from frame 2: a parent, so that
    # the table's nullable parent_id column holds a value and a missing one
    tracks = tracks[~((tracks.track_id == 1) & (tracks.t >= 2))]
    tracks = tracks[~((tracks.track_id == 3) & (tracks.t < 2))].copy()
    tracks.loc[tracks.track_id == 3, "parent_id"] = 1
    return make_fate_dataset(movie, tracks, masks, frames="all", crop_size=16,
                             output_size=8, unknown="keep", pixel_size=0.65)


def test_fate_dataset_save_load_roundtrip(dataset, tmp_path):
    path = dataset.save(tmp_path / "d.npz")
    assert os.listdir(tmp_path) == ["d.npz"]  # no temporary file left behind
    back = FateDataset.load(path)
    np.testing.assert_array_equal(back.X, dataset.X)
    assert back.X.dtype == np.float32
    np.testing.assert_array_equal(back.y, dataset.y)
    np.testing.assert_array_equal(back.groups, dataset.groups)
    pd.testing.assert_frame_equal(back.table, dataset.table)
    assert back.meta == dataset.meta
    # readable without pickle
    with np.load(path, allow_pickle=False) as f:
        assert "X" in f.files and "header" in f.files


def test_fate_dataset_save_refuses_overwrite(dataset, tmp_path):
    path = tmp_path / "d.npz"
    dataset.save(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        dataset.subset([0]).save(path)
    assert path.read_bytes() == before
    dataset.subset([0]).save(path, overwrite=True)
    assert len(FateDataset.load(path)) == 1
    with pytest.raises(ValueError, match="folder .* does not exist"):
        dataset.save(tmp_path / "nope" / "d.npz")


def test_fate_dataset_load_rejects_other_files(tmp_path):
    np.savez(tmp_path / "other.npz", X=np.zeros(3))
    with pytest.raises(ValueError, match="not a saved FateDataset"):
        FateDataset.load(tmp_path / "other.npz")


def test_fate_dataset_validation_and_split():
    table = pd.DataFrame({"a": range(4)})
    d = FateDataset(np.zeros((4, 5, 5), np.float64), [0, 1, 0, 1], [1, 1, 2, 3], table)
    assert d.X.dtype == np.float32
    with pytest.raises(ValueError, match="X must have shape"):
        FateDataset(np.zeros((4, 5)), [0] * 4, [0] * 4, table)
    with pytest.raises(ValueError, match="y must have shape"):
        FateDataset(np.zeros((4, 5, 5)), [0] * 3, [0] * 4, table)
    with pytest.raises(ValueError, match="groups must have shape"):
        FateDataset(np.zeros((4, 5, 5)), [0] * 4, [0] * 5, table)
    with pytest.raises(TypeError, match="table must be a pandas DataFrame"):
        FateDataset(np.zeros((4, 5, 5)), [0] * 4, [0] * 4, {"a": [1]})
    y = np.array([0, 0, 0, 1] * 10)
    d = FateDataset(np.zeros((40, 4, 4)), y, np.arange(40) // 2, pd.DataFrame(index=range(40)))
    train, test = d.train_test_split(0.25, random_state=0)
    assert not set(train.groups) & set(test.groups)
    assert len(train) + len(test) == 40 and set(test.y) == {0, 1}
