"""temporal_context: earlier frames of the same cell stacked as channels."""

import numpy as np
import pandas as pd
import pytest

from ai4cellfate.datasets import FateDataset, make_fate_dataset, temporal_context


def _movie():
    """Three nuclei over 10 frames, brightness rising with the frame (so every
    frame's crop differs); track 1 divides into 3 and 4 at frame 5; frames 2
    and 6 are missing from the tracks (a gap, as in the CTC HeLa copy)."""
    yy, xx = np.mgrid[:64, :64]

    def blob(cy, cx, b):
        return b * ((yy - cy) ** 2 + (xx - cx) ** 2 <= 36)

    frames = [t for t in range(10) if t not in (2, 6)]
    movie = np.stack([blob(20, 20, 500 + 50 * t) + blob(44, 40, 800 + 30 * t)
                      + blob(44, 16, 300 + 70 * t) for t in range(10)])
    rows = [(1, t, 20, 20, -1) for t in frames if t < 5]
    rows += [(2, t, 44, 40, -1) for t in frames]
    rows += [(5, t, 44, 16, -1) for t in frames]
    rows += [(d, t, 20, 20, 1) for d in (3,) for t in frames if t >= 5]
    tracks = pd.DataFrame(rows, columns=["track_id", "t", "y", "x", "parent_id"])
    return movie.astype(np.float32), tracks


@pytest.fixture(scope="module")
def data():
    movie, tracks = _movie()
    return make_fate_dataset(movie, tracks, horizon=3, crop_size=16, output_size=8,
                             segmentation="otsu", normalize=None)


def _crop(data, cell, t):
    tab = data.table
    (i,) = np.flatnonzero((tab["cell_id"] == cell).to_numpy() & (tab["t"] == t).to_numpy())
    return data.X[i]


def test_channels_are_the_earlier_crop_then_the_own_crop(data):
    ctx = temporal_context(data, max_lag=2)
    assert ctx.X.shape[1:] == (8, 8, 2)
    tab = ctx.table
    assert (tab["lag"] >= 1).all() and (tab["lag"] <= 2).all()
    assert (tab["earlier_t_1"] == tab["t"] - tab["lag"]).all()
    for i, row in tab.iterrows():
        np.testing.assert_array_equal(ctx.X[i, ..., 0], _crop(data, row["cell_id"],
                                                             row["earlier_t_1"]))
        np.testing.assert_array_equal(ctx.X[i, ..., 1], _crop(data, row["cell_id"], row["t"]))
        # the label and the group are those of frame t, the last frame used
        (j,) = np.flatnonzero((data.table["track_id"] == row["track_id"]).to_numpy()
                              & (data.table["t"] == row["t"]).to_numpy())
        assert ctx.y[i] == data.y[j] and ctx.groups[i] == data.groups[j]
    # the frame after a gap of 2 reaches back over it; one of 3 (t=7 after t=5,
    # with 6 missing) only with max_lag >= 2
    assert set(tab["lag"]) == {1, 2}
    one = temporal_context(data, max_lag=1)
    assert (one.table["lag"] == 1).all() and len(one) < len(ctx)
    # a daughter's first frame has no earlier frame of its own (no crossing a division)
    first_of_cell = data.table.groupby("cell_id")["t"].transform("min") == data.table["t"]
    targets = set(zip(tab["cell_id"], tab["t"]))
    assert not targets & set(zip(data.table.loc[first_of_cell, "cell_id"],
                                 data.table.loc[first_of_cell, "t"]))
    assert ctx.meta["dropped"]["no_earlier_frame"] == len(data) - len(ctx)
    assert sum(ctx.meta["temporal_context"]["lags"].values()) == len(ctx)
    assert ctx.meta["temporal_context"]["lags"] == {
        str(k): int(v) for k, v in tab["lag"].value_counts().items()}
    # the input is left as it was
    assert "lag" not in data.table and data.X.ndim == 3


def test_a_context_dataset_saves_and_loads_back(data, tmp_path):
    ctx = temporal_context(data, max_lag=2)
    back = type(ctx).load(ctx.save(tmp_path / "context.npz"))
    np.testing.assert_array_equal(back.X, ctx.X)
    pd.testing.assert_frame_equal(back.table, ctx.table)
    assert back.meta["temporal_context"] == ctx.meta["temporal_context"]


def test_several_earlier_frames_oldest_first(data):
    ctx = temporal_context(data, max_lag=4, n_earlier=2)
    assert ctx.X.shape[1:] == (8, 8, 3)
    for i, row in ctx.table.iterrows():
        assert row["t"] > row["earlier_t_1"] > row["earlier_t_2"]
        assert row["lag"] == row["t"] - row["earlier_t_2"] <= 4
        for channel, t in enumerate((row["earlier_t_2"], row["earlier_t_1"], row["t"])):
            np.testing.assert_array_equal(ctx.X[i, ..., channel],
                                          _crop(data, row["cell_id"], t))
    # frames of one cell in the data are 0 1 3 4 5 7 8 9 (cells 2, 5): with max_lag 4
    # every frame from the third on has two earlier ones
    assert len(ctx) == len(temporal_context(data, max_lag=9, n_earlier=2))


def test_multichannel_crops_keep_their_channels_together():
    rng = np.random.default_rng(0)
    X = rng.random((6, 4, 4, 2)).astype(np.float32)
    table = pd.DataFrame({"cell_id": [7, 7, 7, 8, 8, 9], "t": [3, 0, 1, 0, 1, 5]})
    data = FateDataset(X, np.array([0, 0, 0, 1, 1, 1]), np.array([1, 1, 1, 2, 2, 3]), table)
    ctx = temporal_context(data, max_lag=2)
    # kept in data's order: (7, t=3) from t=1; (7, t=1) from t=0; (8, t=1) from t=0
    assert ctx.table["t"].tolist() == [3, 1, 1]
    assert ctx.table["cell_id"].tolist() == [7, 7, 8]
    np.testing.assert_array_equal(ctx.X[0], np.concatenate([X[2], X[0]], axis=-1))
    np.testing.assert_array_equal(ctx.X[2], np.concatenate([X[3], X[4]], axis=-1))
    assert ctx.X.shape == (3, 4, 4, 4)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(max_lag=0), ValueError, "max_lag must be an int >= 1"),
    (dict(max_lag=1.5), ValueError, "max_lag must be an int >= 1"),
    (dict(max_lag=True), ValueError, "max_lag must be an int >= 1"),
    (dict(max_lag=2, n_earlier=0), ValueError, "n_earlier must be an int >= 1"),
    (dict(max_lag=1, n_earlier=50), ValueError, "no sample has 50 earlier frame"),
])
def test_bad_arguments(data, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        temporal_context(data, **kwargs)


def test_bad_data():
    with pytest.raises(TypeError, match="data must be a FateDataset"):
        temporal_context(np.zeros((3, 4, 4)), max_lag=1)
    X, y, g = np.zeros((3, 4, 4)), np.array([0, 1, 0]), np.array([1, 1, 2])
    with pytest.raises(ValueError, match=r"no column\(s\) \['cell_id'\]"):
        temporal_context(FateDataset(X, y, g, pd.DataFrame({"t": [0, 1, 2]})), max_lag=1)
    twice = FateDataset(X, y, g, pd.DataFrame({"cell_id": [1, 1, 2], "t": [4, 4, 0]}))
    with pytest.raises(ValueError, match="several samples of cell 1 at frame 4"):
        temporal_context(twice, max_lag=1)
    floats = FateDataset(X, y, g, pd.DataFrame({"cell_id": [1, 1, 2], "t": [0.0, 1.0, 0.0]}))
    with pytest.raises(ValueError, match="integer frames"):
        temporal_context(floats, max_lag=1)
