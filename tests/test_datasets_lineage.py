"""Fate labels from hand-made lineages whose right answers are known.

Lineage used by most tests (20 frames, 0..19)::

    track 1  frames 0-9   divides into 2 and 3 (frames 10-19)
    track 4  frames 0-19  never divides
    track 5  frames 0-7   lost (ends without children)
    track 6  frames 0-4   gap-closing link to 7 (frames 7-12), which divides
                          into 8 and 9 (frames 13-19)
    track 10 frames 3-19  appears after the first frame, no parent
"""

import numpy as np
import pandas as pd
import pytest

from ai4cellfate.datasets import make_fate_dataset
from ai4cellfate.datasets._lineage import cell_table, check_lineage

T = 20
SEGMENTS = [  # track_id, start, end, parent_id (-1 = none)
    (1, 0, 9, -1),
    (2, 10, 19, 1),
    (3, 10, 19, 1),
    (4, 0, 19, -1),
    (5, 0, 7, -1),
    (6, 0, 4, -1),
    (7, 7, 12, 6),
    (8, 13, 19, 7),
    (9, 13, 19, 7),
    (10, 3, 19, -1),
]


def _tracks(segments=SEGMENTS):
    rows = []
    for k, (tid, start, end, parent) in enumerate(segments):
        y, x = 8 + 16 * (k % 4), 8 + 16 * (k // 4)
        rows += [(tid, t, y, x, parent) for t in range(start, end + 1)]
    return pd.DataFrame(rows, columns=["track_id", "t", "y", "x", "parent_id"])


def _movie(n_frames=T):
    return np.ones((n_frames, 64, 64), dtype=np.float32)


def _build(tracks=None, **kw):
    kw.setdefault("segmentation", None)
    kw.setdefault("crop_size", 4)
    kw.setdefault("output_size", None)
    kw.setdefault("normalize", None)
    return make_fate_dataset(_movie(), _tracks() if tracks is None else tracks, **kw)


def _labels(data):
    tab = data.table
    return {
        (int(r.track_id), int(r.t)): (int(r.label), r.label_reason)
        for r in tab.itertuples()
    }


# ------------------------------------------------------------ whole movie
def test_whole_movie_fate_first_frame_of_each_cell():
    data = _build(frames="first", horizon=None)
    got = {tid: lab for (tid, _), (lab, _) in _labels(data).items()}
    # track 5 is lost -> unknown, dropped; the gap-closed cell 6+7 is one cell
    assert got == {1: 1, 2: 0, 3: 0, 4: 0, 6: 1, 8: 0, 9: 0, 10: 0}
    assert dict(zip(data.table.track_id, data.table.t))[10] == 3
    assert data.meta["dropped"] == {"unknown_track_ends": 1}
    assert data.y.tolist() == data.table["label"].tolist()


def test_lost_track_unknown_modes():
    keep = _build(frames="first", unknown="keep")
    lab = {tid: (lab, why) for (tid, _), (lab, why) in _labels(keep).items()}
    assert lab[5] == (2, "track_ends")
    assert sorted(keep.class_counts()) == [0, 1, 2]
    neg = _build(frames="first", unknown="negative")
    lab = {tid: lab for (tid, _), (lab, _) in _labels(neg).items()}
    assert lab[5] == 0
    assert "dropped" not in neg.summary()


def test_gap_closing_link_is_not_a_division():
    lin = check_lineage(pd.DataFrame(SEGMENTS, columns=["track_id", "start", "end", "parent_id"]))
    cells = cell_table(lin)
    assert cells.loc[6, "divides"] and cells.loc[7, "divides"]
    assert cells.loc[6, "division_frame"] == 13
    assert cells.loc[[6, 7], "generation"].tolist() == [0, 0]
    assert cells.loc[[8, 9], "generation"].tolist() == [1, 1]
    assert cells.loc[6, "cell_end"] == 12 and cells.loc[7, "cell_start"] == 0
    assert not cells.loc[4, "divides"] and cells.loc[4, "division_frame"] == -1
    assert cells.loc[[1, 2, 3], "root_id"].tolist() == [1, 1, 1]
    assert cells.loc[[6, 7, 8, 9], "root_id"].tolist() == [6, 6, 6, 6]


def test_groups_are_root_lineages():
    data = _build(frames="all")
    roots = {1: 1, 2: 1, 3: 1, 4: 4, 5: 5, 6: 6, 7: 6, 8: 6, 9: 6, 10: 10}
    expected = [roots[t] for t in data.table["track_id"]]
    assert data.groups.tolist() == expected
    assert data.table["root_id"].tolist() == expected


# ---------------------------------------------------------------- horizon
def test_horizon_labels_and_cut_off():
    data = _build(frames="all", horizon=5, unknown="keep")
    lab = _labels(data)
    # track 1 divides at frame 10: within 5 frames from t=5 on
    for t in range(0, 10):
        assert lab[(1, t)] == ((1, "divides") if t >= 5 else (0, "divides_after_horizon"))
    # track 4 never divides: known "no" until the horizon runs past the movie
    for t in range(0, 20):
        assert lab[(4, t)] == ((0, "no_division") if t + 5 <= 19 else (2, "movie_ends"))
    # track 5 is lost after frame 7: known "no" only while t + 5 <= 7
    for t in range(0, 8):
        assert lab[(5, t)] == ((0, "no_division") if t <= 2 else (2, "track_ends"))
    # cell 6 -> 7 divides at frame 13 (the gap frames 5, 6 have no samples)
    for t in range(0, 5):
        assert lab[(6, t)] == (0, "divides_after_horizon")
    assert (6, 5) not in lab and (7, 6) not in lab
    for t in range(7, 13):
        assert lab[(7, t)] == ((1, "divides") if t >= 8 else (0, "divides_after_horizon"))
    # a daughter present to the end: unknown from t = 15
    assert lab[(2, 14)] == (0, "no_division") and lab[(2, 15)] == (2, "movie_ends")


def test_horizon_drop_counts_reasons():
    data = _build(frames="all", horizon=5)
    dropped = data.meta["dropped"]
    n_rows = sum(e - s + 1 for _, s, e, _ in SEGMENTS)
    # movie_ends: every track alive at 19 loses its last 5 frames (t = 15..19)
    alive = [tid for tid, _, e, _ in SEGMENTS if e == 19]
    assert dropped == {"unknown_movie_ends": 5 * len(alive), "unknown_track_ends": 5}
    assert len(data) == n_rows - sum(dropped.values())
    assert set(data.table["label_reason"]) == {"divides", "divides_after_horizon", "no_division"}


def test_horizon_must_be_positive_int():
    for bad in (0, -3, 2.5, "24"):
        with pytest.raises(ValueError, match="horizon"):
            _build(horizon=bad)


# --------------------------------------------------------- first generation
def test_first_generation_filter():
    data = _build(frames="all", first_generation=True, unknown="keep")
    kept = set(data.table["track_id"])
    # daughters (2, 3, 8, 9) and the late-appearing track 10 are removed; the
    # gap-closed continuation 7 of first-generation cell 6 stays
    assert kept == {1, 4, 5, 6, 7}
    # no post-division frames of the mother: track 1 only up to frame 9
    assert data.table.loc[data.table.track_id == 1, "t"].max() == 9
    assert (data.table["generation"] == 0).all()
    n_removed = sum(e - s + 1 for tid, s, e, _ in SEGMENTS if tid in (2, 3, 8, 9, 10))
    assert data.meta["dropped"]["not_first_generation"] == n_removed


def test_first_generation_first_frame_is_preprint_setup():
    data = _build(frames="first", first_generation=True, horizon=None)
    assert dict(zip(data.table.track_id, data.y)) == {1: 1, 4: 0, 6: 1}
    assert (data.table["t"] == 0).all()


def test_first_frame_skips_missing_frames():
    from ai4cellfate.datasets import FrameSequence

    frames = {t: np.ones((64, 64), np.float32) for t in range(T) if t not in (0, 1)}
    movie = FrameSequence(frames, n_frames=T)
    data = make_fate_dataset(
        movie, _tracks(), frames="first", segmentation=None, crop_size=4,
        output_size=None, normalize=None,
    )
    first = dict(zip(data.table.track_id, data.table.t))
    assert first[1] == 2 and first[4] == 2 and first[10] == 3
    # tracks 1, 4, 5 and 6 have a position in the two missing frames
    assert data.meta["positions_without_frame"] == 4 * 2


def test_lifetime_time_points():
    data = _build(frames="lifetime", horizon=None, unknown="keep")
    tab = data.table
    four = tab[tab.track_id == 4]
    # 20 observed frames: round(linspace(0, 19, 11))
    assert four["t"].tolist() == np.round(np.linspace(0, 19, 11)).astype(int).tolist()
    assert four["time_point"].tolist() == list(range(11))
    assert four["rel_time"].tolist() == pytest.approx(np.linspace(0, 1, 11))
    # gap-closed cell 6 + 7 is one lifetime over its 11 observed frames
    cell = tab[tab.track_id.isin([6, 7])]
    assert len(cell) == 11
    assert cell["t"].tolist() == [0, 1, 2, 3, 4, 7, 8, 9, 10, 11, 12]
    # sisters born in the same frame are separate cells
    assert (tab.track_id == 2).sum() == 11 and (tab.track_id == 3).sum() == 11


# ------------------------------------------------------------------ errors
def test_unknown_parent_in_tracks():
    tracks = _tracks()
    tracks.loc[tracks.track_id == 2, "parent_id"] = 99
    with pytest.raises(ValueError, match="parents that are not tracks.*99"):
        _build(tracks)


def test_unknown_parent_in_lineage():
    lineage = pd.DataFrame(SEGMENTS, columns=["track_id", "start", "end", "parent_id"])
    lineage.loc[lineage.track_id == 8, "parent_id"] = 42
    with pytest.raises(ValueError, match="parents that are not tracks.*42"):
        _build(lineage=lineage)


def test_lineage_errors():
    cols = ["track_id", "start", "end", "parent_id"]
    bad = [
        (pd.DataFrame([(1, 0, 5, 2), (2, 0, 5, 1)], columns=cols), "cycle"),
        (pd.DataFrame([(1, 0, 5, 1)], columns=cols), "own parent"),
        (pd.DataFrame([(1, 5, 2, -1)], columns=cols), "end before they start"),
        (pd.DataFrame([(1, 0, 5, -1), (1, 6, 9, -1)], columns=cols), "more than once"),
        (pd.DataFrame([(1, 0, 5)], columns=cols[:3]), "parent_id"),
    ]
    for lineage, msg in bad:
        with pytest.raises(ValueError, match=msg):
            cell_table(check_lineage(lineage))
    with pytest.raises(TypeError, match="lineage must be a pandas DataFrame"):
        check_lineage([(1, 0, 5, -1)])


def test_tracks_not_in_lineage():
    lineage = pd.DataFrame(SEGMENTS[:-1], columns=["track_id", "start", "end", "parent_id"])
    with pytest.raises(ValueError, match="lineage does not list.*10"):
        _build(lineage=lineage)
    lineage = pd.DataFrame(SEGMENTS, columns=["track_id", "start", "end", "parent_id"])
    lineage.loc[lineage.track_id == 4, "end"] = 10
    with pytest.raises(ValueError, match="outside their track's frames"):
        _build(lineage=lineage)


def test_parent_must_be_constant_within_track():
    tracks = _tracks()
    tracks.loc[(tracks.track_id == 2) & (tracks.t == 12), "parent_id"] = 4
    with pytest.raises(ValueError, match="constant within a track"):
        _build(tracks)


def test_lineage_table_overrides_what_tracks_show():
    # tracks only hold frames 0..5, the lineage says track 4 lasts to the end
    tracks = _tracks()
    tracks = tracks[tracks.t <= 5].drop(columns="parent_id")
    lineage = pd.DataFrame(SEGMENTS, columns=["track_id", "start", "end", "parent_id"])
    data = _build(tracks, lineage=lineage, frames="first", horizon=None)
    got = dict(zip(data.table.track_id, data.y))
    assert got == {1: 1, 4: 0, 6: 1, 10: 0}
