"""TrackMate reader, on small TrackMate XML and CSV files written by the tests.

The scene (12 frames, 64 x 64 px, 0.5 um per pixel), as a CTC lineage::

    track 1  frames 0-5   at (16, 16), divides into
    track 2  frames 6-11  at (12, 12)  and
    track 3  frames 6-11  at (24, 24)
    track 4  frames 0-11  at (44, 44), never divides
    track 5  frames 0-4   at (44, 16), lost
    track 6  frames 0-3   at (16, 48), not detected in frames 4-5 (a gap), then
    track 7  frames 6-11  at (16, 48), parent 6 (the CTC gap-closing link)

In TrackMate: track 0 holds 1-3 (spot 1005 links to 2006 and 3006), track 1
is 4, track 2 is 5, track 3 holds 6-7 (spot 6003 links to 7006, skipping
frames 4 and 5); spot ids are 1000 * cell + frame. Track 9 (two spots, not
drawn) is not in FilteredTracks, spot 99999 is in no track.
"""

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

tifffile = pytest.importorskip("tifffile")

from ai4cellfate.cli import main  # noqa: E402
from ai4cellfate.datasets import (  # noqa: E402
    FateDataset,
    TrackMateTracks,
    load_ctc,
    load_trackmate,
    read_trackmate,
    read_trackmate_csv,
)

N_FRAMES, SIZE, PW = 12, 64, 0.5
CELLS = {  # cell: (start, end, parent, (y, x), radius)
    1: (0, 5, 0, (16, 16), 5),
    2: (6, 11, 1, (12, 12), 4),
    3: (6, 11, 1, (24, 24), 4),
    4: (0, 11, 0, (44, 44), 5),
    5: (0, 4, 0, (44, 16), 5),
    6: (0, 3, 0, (16, 48), 5),
    7: (6, 11, 6, (16, 48), 5),
}
TM_TRACK = {1: 0, 2: 0, 3: 0, 4: 1, 5: 2, 6: 3, 7: 3}
LINEAGE = [[k, s, e, p if p else -1] for k, (s, e, p, _, _) in CELLS.items()]


def _disk(cy, cx, r):
    yy, xx = np.mgrid[:SIZE, :SIZE]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def scene_movie():
    movie = np.full((N_FRAMES, SIZE, SIZE), 1000, np.uint16)
    for t in range(N_FRAMES):
        for k, (s, e, _, (cy, cx), r) in CELLS.items():
            if s <= t <= e or (k == 6 and t in (4, 5)):  # undetected, still visible
                movie[t][_disk(cy, cx, r)] = (100 + 10 * k) * 100
    return movie


def scene_spots(last=N_FRAMES - 1):
    """(spot id, frame, y px, x px, TrackMate track) of the scene."""
    return [
        (1000 * k + t, t, cy, cx, TM_TRACK[k])
        for k, (s, e, _, (cy, cx), _) in CELLS.items()
        for t in range(s, min(e, last) + 1)
    ]


def scene_edges(last=N_FRAMES - 1):
    """{TrackMate track: [(source, target)]}; some links stored later-to-earlier."""
    edges = {}
    for k, (s, e, _, _, _) in CELLS.items():
        links = [(1000 * k + t, 1000 * k + t + 1) for t in range(s, min(e, last))]
        edges.setdefault(TM_TRACK[k], []).extend(links)
    extra = [(1005, 2006), (3006, 1005), (6003, 7006)]  # 3006 -> 1005: reversed
    edges[0] += [e for e in extra[:2] if max(e) % 1000 <= last]
    if last >= 6:
        edges[3].append(extra[2])
    edges[1][3] = edges[1][3][::-1]  # another reversed link
    return edges


def write_xml(path, spots, edges, *, filtered=None, units="micron", pw=PW,
              filename="movie.tif", folder="", width=SIZE, height=SIZE, nframes=N_FRAMES,
              nslices=1, tend=None, extra_spots="", model_extra=""):
    """A TrackMate session file like TrackMate 7 writes (indented, with a Log)."""
    by_frame = {}
    for sid, t, y, x, _ in spots:
        by_frame.setdefault(t, []).append(
            f'        <Spot ID="{sid}" name="ID{sid}" QUALITY="{50 + sid % 7}" '
            f'POSITION_T="{t * 10.0}" MAX_INTENSITY_CH1="200.0" FRAME="{t}" '
            f'RADIUS="{2.5}" VISIBILITY="1" POSITION_X="{x * pw!r}" '
            f'POSITION_Y="{y * pw!r}" POSITION_Z="0.0" />'
        )
    frames = "\n".join(
        f'      <SpotsInFrame frame="{t}">\n' + "\n".join(rows) + "\n      </SpotsInFrame>"
        for t, rows in sorted(by_frame.items())
    )
    tracks = "\n".join(
        f'      <Track name="Track_{tid}" TRACK_ID="{tid}" NUMBER_SPOTS="{len(e) + 1}">\n'
        + "\n".join(
            f'        <Edge SPOT_SOURCE_ID="{a}" SPOT_TARGET_ID="{b}" LINK_COST="1.0" />'
            for a, b in e
        )
        + "\n      </Track>"
        for tid, e in sorted(edges.items())
    )
    filtered = sorted(edges) if filtered is None else filtered
    ids = "\n".join(f'      <TrackID TRACK_ID="{t}" />' for t in filtered)
    tend = nframes - 1 if tend is None else tend
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<TrackMate version="7.11.1">
  <Log>TrackMate v7.11.1 started on:&#xD;
Found {len(spots)} spots &amp; {len(edges)} tracks &lt;ok&gt;.</Log>
  <Model spatialunits="{units}" timeunits="min">
    <FeatureDeclarations>
      <SpotFeatures>
        <Feature feature="QUALITY" name="Quality" shortname="Quality" dimension="QUALITY"
          isint="false" />
      </SpotFeatures>
    </FeatureDeclarations>
    <AllSpots nspots="{len(spots)}">
{frames}
{extra_spots}
    </AllSpots>
    <AllTracks>
{tracks}
    </AllTracks>
    <FilteredTracks>
{ids}
    </FilteredTracks>{model_extra}
  </Model>
  <Settings>
    <ImageData filename="{filename}" folder="{folder}" width="{width}" height="{height}"
      nslices="{nslices}" nframes="{nframes}" pixelwidth="{pw}" pixelheight="{pw}"
      voxeldepth="1.0" timeinterval="10.0" />
    <BasicSettings xstart="0" xend="{width - 1}" ystart="0" yend="{height - 1}" zstart="0"
      zend="0" tstart="0" tend="{tend}" />
    <DetectorSettings DETECTOR_NAME="LOG_DETECTOR" TARGET_CHANNEL="1" RADIUS="2.5" />
  </Settings>
  <GUIState state="ConfigureViews" />
</TrackMate>
"""
    Path(path).write_text(xml, encoding="utf-8")
    return Path(path)


def write_scene_xml(folder, **kw):
    """The scene's session XML, next to its movie (movie.tif, uncompressed)."""
    folder.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(folder / "movie.tif", scene_movie())
    spots = scene_spots() + [(90000, 0, 56, 56, 9), (90001, 1, 56, 56, 9)]
    edges = {**scene_edges(), 9: [(90000, 90001)]}
    singleton = ('      <SpotsInFrame frame="2"><Spot ID="99999" FRAME="2" POSITION_X="1.0" '
                 'POSITION_Y="1.0" QUALITY="1.0" /></SpotsInFrame>')
    return write_xml(folder / "session.xml", spots, edges, filtered=[0, 1, 2, 3],
                     extra_spots=singleton, **kw)


def write_ctc(root):
    """The same scene as a CTC folder (markers: 3 x 3 squares at the centres)."""
    raw, tra = root / "01", root / "01_GT" / "TRA"
    raw.mkdir(parents=True)
    tra.mkdir(parents=True)
    movie = scene_movie()
    for t in range(N_FRAMES):
        tifffile.imwrite(raw / f"t{t:03d}.tif", movie[t])
        marker = np.zeros((SIZE, SIZE), np.uint16)
        for k, (s, e, _, (cy, cx), _) in CELLS.items():
            if s <= t <= e:
                marker[cy - 1:cy + 2, cx - 1:cx + 2] = k
        tifffile.imwrite(tra / f"man_track{t:03d}.tif", marker)
    (tra / "man_track.txt").write_text(
        "".join(f"{k} {s} {e} {p}\n" for k, (s, e, p, _, _) in CELLS.items()))
    return root


SPOTS_HEADER = (
    "LABEL,ID,TRACK_ID,QUALITY,POSITION_X,POSITION_Y,POSITION_Z,POSITION_T,FRAME,RADIUS,"
    "VISIBILITY,MANUAL_SPOT_COLOR\n"
    "Label,Spot ID,Track ID,Quality,X,Y,Z,T,Frame,Radius,Visibility,Manual spot color\n"
    "Label,Spot ID,Track ID,Quality,X,Y,Z,T,Frame,R,Visibility,Spot color\n"
    ",,,(quality),({u}),({u}),({u}),(min),,({u}),,\n"
)
EDGES_HEADER = (
    "LABEL,TRACK_ID,SPOT_SOURCE_ID,SPOT_TARGET_ID,LINK_COST\n"
    "Label,Track ID,Source spot ID,Target spot ID,Edge cost\n"
    "Label,Track ID,Source ID,Target ID,Cost\n"
    ",,,,(cost)\n"
)


def write_scene_csv(folder, *, header_rows=True, units="micron", scale=PW):
    """TrackMate's spots and edges tables for the scene (rows in no particular order)."""
    folder.mkdir(parents=True, exist_ok=True)
    spots = scene_spots()
    head = SPOTS_HEADER.format(u=units) if header_rows else SPOTS_HEADER.split("\n")[0] + "\n"
    rows = [f"ID{sid},{sid},{tm},{50 + sid % 7},{x * scale!r},{y * scale!r},0.0,{t * 10.0},"
            f"{t},2.5,1," for sid, t, y, x, tm in spots[::-1]]
    rows.append("ID99999,99999,,1.0,1.0,1.0,0.0,20.0,2,2.5,1,")  # in no track
    (folder / "spots.csv").write_text(head + "\n".join(rows) + "\n")
    ehead = EDGES_HEADER if header_rows else EDGES_HEADER.split("\n")[0] + "\n"
    erows = [f"ID{a} \u2192 ID{b},{tid},{a},{b},1.0"
             for tid, links in scene_edges().items() for a, b in links]
    (folder / "edges.csv").write_text(ehead + "\n".join(erows) + "\n", encoding="utf-8")
    tifffile.imwrite(folder / "movie.tif", scene_movie())
    return folder / "spots.csv", folder / "edges.csv", folder / "movie.tif"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("trackmate")
    return {
        "xml": write_scene_xml(root / "tm"),
        "ctc": write_ctc(root / "ctc"),
        "csv": write_scene_csv(root / "csv"),
        "root": root,
    }


def _same(a, b, skip=()):
    """Two FateDatasets hold identical crops, labels, groups and shared table columns."""
    assert np.array_equal(a.X, b.X)
    assert np.array_equal(a.y, b.y)
    assert np.array_equal(a.groups, b.groups)
    shared = [c for c in a.table.columns if c in b.table.columns and c not in skip]
    assert {"track_id", "t", "y", "x", "label", "label_reason", "crop_y", "area"} <= set(shared)
    pd.testing.assert_frame_equal(a.table[shared], b.table[shared], check_dtype=False)
    assert a.meta["dropped"] == b.meta["dropped"]


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------
def test_read_trackmate_lineage_matches_hand_made(files):
    tm = read_trackmate(files["xml"], movie=False)
    assert isinstance(tm, TrackMateTracks) and tm.movie is None
    assert tm.lineage.values.tolist() == LINEAGE
    # every spot of the scene, in pixels, in its segment
    got = {(r.track_id, r.t): (r.y, r.x) for r in tm.tracks.itertuples()}
    want = {(k, t): (float(cy), float(cx)) for k, (s, e, _, (cy, cx), _) in CELLS.items()
            for t in range(s, e + 1)}
    assert got == want
    assert set(tm.tracks.spot_id) == {sid for sid, *_ in scene_spots()}
    assert (tm.tracks.spot_id // 1000 == tm.tracks.track_id).all()
    assert dict(zip(tm.tracks.track_id, tm.tracks.trackmate_track_id)) == TM_TRACK
    parent = dict(zip(tm.tracks.track_id, tm.tracks.parent_id))
    assert parent == {k: (p or -1) for k, (_, _, p, _, _) in CELLS.items()}
    r = tm.report
    assert r["divisions"] == 1 and r["merges"] == {"count": 0, "spot_ids": []}
    assert r["gaps"] == {"count": 1, "longest": 2, "edges": [[6003, 7006]]}
    assert r["reversed_edges"] == 2 and r["cut_edges"] == []
    assert (r["n_tracks"], r["n_tracks_not_used"], r["n_segments"]) == (4, 1, 7)
    assert r["n_spots"] == len(scene_spots()) + 3 and r["spots_not_in_tracks"] == 1
    assert tm.calibration == {"spatial_units": "micron", "time_units": "min",
                              "pixel_width": 0.5, "pixel_height": 0.5, "pixel_size": 0.5,
                              "time_interval": 10.0, "frame_interval": 600.0}
    assert tm.image["frames"] == [0, N_FRAMES - 1] and tm.image["nframes"] == N_FRAMES


def test_all_tracks_and_features(files):
    tm = read_trackmate(files["xml"], movie=False, all_tracks=True, features=["QUALITY"])
    assert tm.report["n_tracks"] == 5 and tm.report["n_tracks_not_used"] == 0
    assert tm.lineage["track_id"].max() == 8  # track 9's segment comes last
    assert (tm.tracks["QUALITY"] == 50 + tm.tracks["spot_id"] % 7).all()
    every = read_trackmate(files["xml"], movie=False, features="all")
    assert {"QUALITY", "RADIUS", "POSITION_T", "MAX_INTENSITY_CH1"} <= set(every.tracks)
    with pytest.raises(ValueError, match=r"no spot has the feature\(s\) \['AREA'\]"):
        read_trackmate(files["xml"], movie=False, features=["AREA"])


def test_read_trackmate_csv_matches_xml(files):
    spots, edges, movie = files["csv"]
    xml = read_trackmate(files["xml"], movie=False)
    csv = read_trackmate_csv(spots, edges, pixel_size=PW)
    assert csv.lineage.equals(xml.lineage)
    cols = ["track_id", "t", "y", "x", "parent_id", "spot_id", "trackmate_track_id"]
    pd.testing.assert_frame_equal(csv.tracks[cols], xml.tracks[cols])
    assert csv.report["gaps"] == xml.report["gaps"]
    assert csv.report["spots_not_in_tracks"] == 1
    assert csv.calibration["spatial_units"] == "micron" and csv.calibration["pixel_size"] == PW
    assert csv.calibration["time_interval"] == 10.0  # POSITION_T / FRAME, in min
    assert csv.calibration["frame_interval"] == 600.0


def test_csv_one_header_row_units_and_no_edges(tmp_path):
    spots, edges, _ = write_scene_csv(tmp_path / "a", header_rows=False)
    with pytest.raises(ValueError, match=r"does not say the units .* pass units="):
        read_trackmate_csv(spots, edges, pixel_size=PW)
    tm = read_trackmate_csv(spots, edges, pixel_size=PW, units="um")
    assert tm.lineage.values.tolist() == LINEAGE
    # nanometres in the table, micrometres per pixel given
    spots_nm, edges_nm, _ = write_scene_csv(tmp_path / "b", units="nm", scale=500.0)
    tm_nm = read_trackmate_csv(spots_nm, edges_nm, pixel_size=PW)
    assert np.allclose(tm_nm.tracks[["y", "x"]], tm.tracks[["y", "x"]])
    # positions in pixels need no pixel size
    spots_px, edges_px, _ = write_scene_csv(tmp_path / "c", units="pixel", scale=1.0)
    tm_px = read_trackmate_csv(spots_px, edges_px)
    assert tm_px.lineage.equals(tm.lineage) and tm_px.calibration["pixel_size"] is None
    with pytest.raises(ValueError, match=r"positions are in 'micron'; pass pixel_size="):
        read_trackmate_csv(spots, edges, units="micron")
    # without the edges table: each TRACK_ID chained by frame, divisions refused
    with pytest.raises(ValueError, match=r"track 0 has several spots in frame 6 .*\(edges=\)"):
        read_trackmate_csv(spots, pixel_size=PW, units="micron")
    simple = tmp_path / "simple.csv"
    simple.write_text(SPOTS_HEADER.format(u="pixel") + "ID1,1,4,1,10,20,0,0,0,2,1,\n"
                      "ID3,3,4,1,11,20,0,0,3,2,1,\nID2,2,4,1,10.5,20,0,0,1,2,1,\n")
    tm = read_trackmate_csv(simple)  # 1 -> 2, then 2 -> 3 skips frame 2: a gap
    assert tm.lineage.values.tolist() == [[1, 0, 1, -1], [2, 3, 3, 1]]
    assert tm.report["gaps"] == {"count": 1, "longest": 1, "edges": [[2, 3]]}
    assert tm.tracks["x"].tolist() == [10.0, 10.5, 11.0]


# --------------------------------------------------------------------------
# the CTC equivalence
# --------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [
    {},
    {"horizon": 3},
    {"frames": "first", "first_generation": True},
    {"horizon": 2, "unknown": "keep", "frames": "lifetime"},
    {"segmentation": None, "border": "pad", "normalize": "dtype"},
])
def test_trackmate_xml_equals_ctc_folder(files, kw):
    ctc = load_ctc(files["ctc"], "01", crop_size=16, output_size=8, pixel_size=PW, **kw)
    tm = load_trackmate(files["xml"], crop_size=16, output_size=8, **kw)
    assert len(tm) >= 3 and set(tm.y.tolist()) >= {0, 1}
    _same(ctc, tm)
    assert "area_um2" in tm.table and tm.meta["pixel_size"] == PW
    assert tm.frame_interval == 600.0  # 10 min, the file's timeinterval
    assert tm.meta["source"]["format"] == "trackmate"
    assert tm.meta["source"]["movie"] == str(files["xml"].parent / "movie.tif")
    assert tm.meta["trackmate"]["report"]["gaps"]["count"] == 1
    assert (tm.table["spot_id"] // 1000 == tm.table["track_id"]).all()


def test_labels_against_hand_made_lineage(files):
    data = load_trackmate(files["xml"], crop_size=16, output_size=8)
    want = {}
    for k, (s, e, _, _, _) in CELLS.items():
        for t in range(s, e + 1):
            if k != 5:  # lost: unknown, dropped
                want[(k, t)] = 1 if k == 1 else 0  # 6 goes on as 7 (gap), to the end
    assert dict(zip(zip(data.table.track_id, data.table.t), data.y.tolist())) == want
    assert data.meta["dropped"] == {"unknown_track_ends": 5}
    cell = dict(zip(data.table.track_id, data.table.cell_id))
    assert cell[7] == 6 and cell[2] == 2
    # a horizon: cell 1 divides within 3 frames from frame 3 on; 6/7 never divides
    h = load_trackmate(files["xml"], crop_size=16, output_size=8, horizon=3)
    one = h.table[h.table.track_id == 1]
    assert dict(zip(one.t, one.label)) == {0: 0, 1: 0, 2: 0, 3: 1, 4: 1, 5: 1}
    assert set(h.table.loc[h.table.track_id == 6, "label_reason"]) == {"no_division"}


def test_crop_size_um_uses_the_files_calibration(files):
    ctc = load_ctc(files["ctc"], "01", crop_size=16, output_size=8, pixel_size=PW)
    tm = load_trackmate(files["xml"], crop_size_um=8.0, output_size=8)
    assert tm.meta["crop_size_px"] == 16
    _same(ctc, tm)
    with pytest.warns(UserWarning, match=r"pixel_size=0.65 um differs from the file's"):
        other = load_trackmate(files["xml"], crop_size=16, output_size=8, pixel_size=0.65)
    assert np.array_equal(other.X, tm.X) and other.meta["pixel_size"] == 0.65


def test_trackmate_csv_equals_ctc_folder(files):
    spots, edges, movie = files["csv"]
    ctc = load_ctc(files["ctc"], "01", crop_size=16, output_size=8, pixel_size=PW, horizon=3)
    tm = load_trackmate(spots, movie, edges=edges, pixel_size=PW, crop_size=16,
                        output_size=8, horizon=3)
    _same(ctc, tm)
    assert tm.meta["source"]["format"] == "trackmate-csv"
    with pytest.raises(ValueError, match="does not name its movie"):
        load_trackmate(spots, edges=edges, pixel_size=PW)


def test_read_then_make_fate_dataset_is_load(files):
    from ai4cellfate.datasets import make_fate_dataset

    tm = read_trackmate(files["xml"])
    assert tm.movie.shape == (N_FRAMES, SIZE, SIZE)
    data = make_fate_dataset(tm.movie, tm.tracks, lineage=tm.lineage, crop_size=16,
                             output_size=8, pixel_size=tm.calibration["pixel_size"])
    _same(data, load_trackmate(files["xml"], crop_size=16, output_size=8))


def test_movie_given_as_array_or_path(files, tmp_path):
    movie = scene_movie()
    base = load_trackmate(files["xml"], crop_size=16, output_size=8)
    from_array = load_trackmate(files["xml"], movie, crop_size=16, output_size=8)
    _same(base, from_array)
    assert from_array.meta["source"]["movie"] == "array"
    compressed = tmp_path / "elsewhere.tif"
    tifffile.imwrite(compressed, movie, compression="zlib")  # not memory-mappable
    _same(base, load_trackmate(files["xml"], compressed, crop_size=16, output_size=8))
    # ImageJ hyperstack (T, C, Y, X); channel 0 is the movie
    hyper = tmp_path / "hyper.tif"
    tifffile.imwrite(hyper, np.stack([movie, movie // 2], axis=1), imagej=True,
                     metadata={"axes": "TCYX"})
    two = load_trackmate(files["xml"], hyper, crop_size=16, output_size=8, channel=0)
    _same(base, two)


# --------------------------------------------------------------------------
# merges, gaps, the frames analysed, calibration
# --------------------------------------------------------------------------
def _merge_xml(path):
    """A and B merge into M; C divides into 41 and 51, and 51 merges with D."""
    spots = (
        [(1 + t, t, 20, 20, 0) for t in range(4)]            # A 1-4
        + [(11 + t, t, 20, 44, 0) for t in range(4)]         # B 11-14
        + [(21 + t, 4 + t, 20, 32, 0) for t in range(4)]     # M 21-24, frames 4-7
        + [(31, 0, 44, 20, 1), (32, 1, 44, 20, 1)]           # C
        + [(41, 2, 44, 14, 1), (42, 3, 44, 14, 1)]           # C's daughter
        + [(51, 2, 44, 26, 1), (52, 3, 44, 26, 1)]           # daughter, merged with D
        + [(61, 0, 44, 40, 1), (62, 1, 44, 40, 1)]           # D
    )
    edges = {
        0: [(1, 2), (2, 3), (3, 4), (11, 12), (12, 13), (13, 14), (4, 21), (14, 21),
            (21, 22), (22, 23), (23, 24)],
        1: [(31, 32), (32, 41), (32, 51), (41, 42), (51, 52), (61, 62), (62, 51)],
    }
    return write_xml(path, spots, edges, nframes=8)


def test_merges_end_tracks_and_are_reported(tmp_path):
    path = _merge_xml(tmp_path / "merge.xml")
    merging = r"2 merge\(s\) .* spots \[21, 51\]\): the 4 merging"
    with pytest.warns(UserWarning, match=merging) as w:
        tm = read_trackmate(path, movie=False)
    assert w[0].filename == __file__
    assert tm.lineage.values.tolist() == [
        [1, 0, 3, -1], [2, 0, 3, -1], [3, 4, 7, -1],   # A, B end; M starts anew
        [4, 0, 1, -1], [5, 0, 1, -1],                  # C ends (its division is cut), D
        [6, 2, 3, -1], [7, 2, 3, -1],                  # 41, 51 start anew
    ]
    assert tm.report["merges"] == {"count": 2, "spot_ids": [21, 51]}
    assert sorted(map(tuple, tm.report["cut_edges"])) == [
        (4, 21), (14, 21), (32, 41), (32, 51), (62, 51)]
    assert tm.report["divisions"] == 0
    with pytest.raises(ValueError, match=r"has 2 merge\(s\) .* spots \[21, 51\]"):
        read_trackmate(path, movie=False, merges="error")
    # end to end: the merging tracks' fates are unknown (dropped), M stays to the end
    movie = np.full((8, SIZE, SIZE), 100, np.uint16)
    with pytest.warns(UserWarning, match="merge") as w:
        data = load_trackmate(path, movie, crop_size=16, output_size=8, segmentation=None)
    assert w[0].filename == __file__
    assert set(data.table.track_id) == {3}
    assert data.meta["trackmate"]["report"]["merges"]["count"] == 2


def test_movie_ends_at_the_last_frame_analysed(tmp_path):
    folder = tmp_path / "short"
    folder.mkdir()
    tifffile.imwrite(folder / "movie.tif", scene_movie())
    path = write_xml(folder / "s.xml", scene_spots(last=8), scene_edges(last=8), tend=8)
    data = load_trackmate(path, crop_size=16, output_size=8)
    assert data.meta["trackmate"]["movie_truncated_to"] == 9 and data.meta["n_frames"] == 9
    # cell 4 is still there at frame 8, the end of the analysis: fate 0, not lost
    four = data.table[data.table.track_id == 4]
    assert set(four.label_reason) == {"no_division"} and len(four) == 9


def test_units_nm_and_uncalibrated(tmp_path, files):
    movie = scene_movie()
    nm = write_xml(tmp_path / "nm.xml", scene_spots(), scene_edges(), units="nm", pw=500.0)
    tm = read_trackmate(nm, movie)
    assert tm.calibration["pixel_size"] == 0.5
    um = read_trackmate(files["xml"], movie=False)
    assert tm.tracks[["y", "x"]].equals(um.tracks[["y", "x"]])
    px = write_xml(tmp_path / "px.xml", scene_spots(), scene_edges(), units="pixel", pw=1.0)
    data = load_trackmate(px, movie, crop_size=16, output_size=8)
    assert data.meta["pixel_size"] is None and "area_um2" not in data.table
    with pytest.raises(ValueError, match=r"crop_size_um needs the pixel size: .* 'pixel'"):
        load_trackmate(px, movie, crop_size_um=8.0, output_size=8)
    ok = load_trackmate(px, movie, crop_size_um=8.0, pixel_size=0.5, output_size=8)
    assert ok.meta["crop_size_px"] == 16


def test_sub_pixel_positions_at_the_edge_are_clipped(tmp_path):
    spots = [(1, 0, 10, -0.4, 0), (2, 1, 10, 0.2, 0), (3, 0, 63.3, 30, 1), (4, 1, 63, 30, 1)]
    tm = read_trackmate(write_xml(tmp_path / "e.xml", spots, {0: [(1, 2)], 1: [(3, 4)]}),
                        movie=False)
    assert tm.report["clipped_positions"] == 2
    assert tm.tracks.x.min() == 0 and tm.tracks.y.max() == SIZE - 1


# --------------------------------------------------------------------------
# the movie
# --------------------------------------------------------------------------
def test_missing_movie_names_the_paths_tried(tmp_path):
    folder = tmp_path / "moved"
    folder.mkdir()
    path = write_xml(folder / "s.xml", scene_spots(), scene_edges(),
                     folder="/nonexistent/where/it/was/")
    tried = [str(Path("/nonexistent/where/it/was") / "movie.tif"), str(folder / "movie.tif")]
    for fn in (read_trackmate, load_trackmate):
        with pytest.raises(FileNotFoundError) as err:
            fn(path)
        msg = str(err.value)
        assert "the movie it names was not found" in msg and all(t in msg for t in tried)
    with pytest.raises(FileNotFoundError, match="nowhere.tif"):
        load_trackmate(path, tmp_path / "nowhere.tif")
    # moved with its movie: found beside the XML
    tifffile.imwrite(folder / "movie.tif", scene_movie())
    assert read_trackmate(path).movie_path == str(folder / "movie.tif")
    noname = write_xml(tmp_path / "n.xml", scene_spots(), scene_edges(), filename="")
    with pytest.raises(FileNotFoundError, match="names no movie"):
        load_trackmate(noname)


def test_wrong_movie_is_refused(files):
    with pytest.raises(ValueError, match=r"the movie is 32 x 64 px .* says 64 x 64"):
        read_trackmate(files["xml"], np.zeros((N_FRAMES, 64, 32), np.uint16))
    with pytest.raises(ValueError, match=r"spots reach frame 11 but the movie has 5 frames"):
        read_trackmate(files["xml"], np.zeros((5, SIZE, SIZE), np.uint16))
    with pytest.raises(TypeError, match="movie must be a path"):
        read_trackmate(files["xml"], [1, 2, 3])


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------
def _xml_text(tmp_path, text, name="bad.xml"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, match", [
    ("hello, not XML\n", r"bad.xml is not a well-formed XML file"),
    ("<foo><bar/></foo>", r"not a TrackMate file: its root element is <foo>"),
    ("<TrackMate version='7'><Settings/></TrackMate>", r"has no <Model> element"),
    ("<TrackMate><Model><AllSpots/><AllTracks/></Model></TrackMate>", r"has no spots"),
    ("<TrackMate><Model><AllSpots><SpotsInFrame><Spot ID='5' POSITION_X='1' POSITION_Y='1'/>"
     "</SpotsInFrame></AllSpots></Model></TrackMate>", r"spot 5 has no FRAME attribute"),
    ("<TrackMate><Model><AllSpots><SpotsInFrame><Spot ID='5' FRAME='x' POSITION_X='1' "
     "POSITION_Y='1'/></SpotsInFrame></AllSpots></Model></TrackMate>",
     r"spot 5 FRAME is not a number: 'x'"),
    ("<TrackMate><Model><AllSpots><SpotsInFrame><Spot ID='5' FRAME='0' POSITION_X='1' "
     "POSITION_Y='1'/></SpotsInFrame></AllSpots></Model></TrackMate>", r"has no tracks"),
    ('<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 '
     '"&lol;&lol;&lol;">]>\n<TrackMate>&lol2;</TrackMate>', r"has a DOCTYPE declaration"),
    ("<TrackMate><Model>" + "<!-- pad -->" * 10 + "</Model></TrackMate>\n<!ENTITY x 'y'>",
     r"has an ENTITY declaration"),
])
def test_bad_xml_is_refused_with_the_file_named(tmp_path, text, match):
    path = _xml_text(tmp_path, text)
    with pytest.raises(ValueError, match=match) as err:
        read_trackmate(path, movie=False)
    assert str(path) in str(err.value)


def _scene_variant(tmp_path, **kw):
    return write_xml(tmp_path / "v.xml", scene_spots(), scene_edges(), **kw)


def test_bad_sessions_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"FilteredTracks is empty\); pass all_tracks=True"):
        read_trackmate(_scene_variant(tmp_path, filtered=[]), movie=False)
    with pytest.raises(ValueError, match=r"FilteredTracks names tracks .* \[7\]"):
        read_trackmate(_scene_variant(tmp_path, filtered=[0, 7]), movie=False)
    with pytest.raises(ValueError, match=r"3-D movie \(ImageData nslices=5\)"):
        read_trackmate(_scene_variant(tmp_path, nslices=5), movie=False)
    edges = {**scene_edges(), 5: [(77777, 1000)]}
    with pytest.raises(ValueError, match=r"link spots that AllSpots does not hold: \[77777\]"):
        read_trackmate(write_xml(tmp_path / "u.xml", scene_spots(), edges), movie=False)
    edges = {**scene_edges(), 5: [(1000, 4000)]}
    with pytest.raises(ValueError, match=r"spots 1000 and 4000 are linked but both are in fr"):
        read_trackmate(write_xml(tmp_path / "f.xml", scene_spots(), edges), movie=False)
    wrong = _scene_variant(tmp_path)  # positions in um, but a pixel size 10 times smaller
    wrong.write_text(wrong.read_text().replace('pixelwidth="0.5" pixelheight="0.5"',
                                               'pixelwidth="0.05" pixelheight="0.05"'))
    with pytest.raises(ValueError, match=r"spot\(s\) lie outside the 64 x 64 image, .* "
                       r"pixel size right \(0.05 x 0.05 micron"):
        read_trackmate(wrong, movie=False)
    tif = tmp_path / "movie.tif"
    tifffile.imwrite(tif, scene_movie())
    with pytest.raises(ValueError, match="not UTF-8 text"):
        read_trackmate(tif, movie=False)
    with pytest.raises(FileNotFoundError, match="nope.xml"):
        read_trackmate(tmp_path / "nope.xml")
    with pytest.raises(ValueError, match="merges must be one of"):
        read_trackmate(_scene_variant(tmp_path), movie=False, merges="join")


def test_no_filtered_tracks_element_warns_and_uses_all(tmp_path):
    path = _scene_variant(tmp_path)
    text = re.sub(r"<FilteredTracks>.*</FilteredTracks>", "", path.read_text(), flags=re.S)
    path.write_text(text)
    with pytest.warns(UserWarning, match="no FilteredTracks element; all 4 tracks are used") as w:
        tm = read_trackmate(path, movie=False)
    assert w[0].filename == __file__  # attributed to the caller
    assert tm.lineage.values.tolist() == LINEAGE


def test_bad_csv_is_refused(tmp_path, files):
    spots, edges, movie = files["csv"]
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"bad.csv is not a TrackMate spots table: it lacks"):
        read_trackmate_csv(bad, edges, pixel_size=PW)
    with pytest.raises(ValueError, match=r"bad.csv is not a TrackMate edges table"):
        read_trackmate_csv(spots, bad, pixel_size=PW)
    frames = tmp_path / "frames.csv"
    frames.write_text(SPOTS_HEADER.format(u="pixel") + "ID1,1,0,1,10,20,0,0,zero,2,1,\n")
    with pytest.raises(ValueError, match=r"column FRAME of the spots table must hold integers"):
        read_trackmate_csv(frames)
    with pytest.raises(ValueError, match=r"units must be 'pixel' or a length unit"):
        read_trackmate_csv(spots, edges, units="furlong")
    few = tmp_path / "few.csv"
    few.write_text(EDGES_HEADER + "x,0,1000,123456,1\n")
    with pytest.raises(ValueError, match=r"does not hold: \[123456\]"):
        read_trackmate_csv(spots, few, pixel_size=PW)
    with pytest.raises(ValueError, match="all_tracks is for TrackMate XML"):
        load_trackmate(spots, movie, edges=edges, pixel_size=PW, all_tracks=True)


def test_options_are_checked_before_any_file_is_read(tmp_path):
    missing = tmp_path / "missing.xml"
    for kw, match in [({"horizon": 0}, "horizon"), ({"frames": "some"}, "frames"),
                      ({"merges": "join"}, "merges"), ({"segmentation": "gt"}, "segmentation"),
                      ({"crop_size_um": -1.0}, "crop_size_um"),
                      ({"segmentation": "masks"}, "needs masks")]:
        with pytest.raises(ValueError, match=match):
            load_trackmate(missing, **kw)
    with pytest.raises(FileNotFoundError, match="missing.xml"):
        load_trackmate(missing)


# --------------------------------------------------------------------------
# the command line and the docs
# --------------------------------------------------------------------------
def test_cli_prepare_format_trackmate(files, tmp_path, capsys):
    out = tmp_path / "tm.npz"
    args = ["--crop-size", "16", "--output-size", "8", "--horizon", "3"]
    assert main(["prepare", str(files["xml"]), "--format", "trackmate", *args,
                 "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "lineage groups" in printed and "TrackMate: 4 tracks" in printed
    want = load_trackmate(files["xml"], crop_size=16, output_size=8, horizon=3)
    got = FateDataset.load(out)
    assert np.array_equal(got.X, want.X) and np.array_equal(got.y, want.y)
    assert got.meta["trackmate"]["report"]["gaps"]["count"] == 1
    # a folder holding one XML file
    out2 = tmp_path / "tm2.npz"
    assert main(["prepare", str(files["xml"].parent), "--format", "trackmate", *args,
                 "-o", str(out2)]) == 0
    assert np.array_equal(FateDataset.load(out2).X, want.X)
    # CSV tables with the movie and the pixel size
    spots, edges, movie = files["csv"]
    out3 = tmp_path / "tm3.npz"
    assert main(["prepare", str(spots), "--format", "trackmate", "--edges", str(edges),
                 "--movie", str(movie), "--pixel-size", "0.5", *args, "-o", str(out3)]) == 0
    assert np.array_equal(FateDataset.load(out3).X, want.X)
    capsys.readouterr()
    # CTC-only choices are bad usage; a missing movie is an error naming it
    assert main(["prepare", str(files["xml"]), "--format", "trackmate", "--segmentation",
                 "gt", "-o", str(tmp_path / "e.npz")]) == 2
    capsys.readouterr()
    assert main(["prepare", str(files["xml"]), "--format", "trackmate", "--lineage", "l.csv",
                 "-o", str(tmp_path / "e.npz")]) == 2
    assert main(["prepare", str(files["xml"]), "-o", str(tmp_path / "e.npz")]) == 1
    assert "add --format trackmate" in capsys.readouterr().err
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "s.xml").write_text(files["xml"].read_text())
    assert main(["prepare", str(moved / "s.xml"), "--format", "trackmate",
                 "-o", str(tmp_path / "e.npz")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "the movie it names was not found" in err
    assert str(moved / "movie.tif") in err and not (tmp_path / "e.npz").exists()


def test_docs_example_runs(tmp_path, monkeypatch):
    page = Path(__file__).resolve().parents[1] / "docs" / "trackmate.md"
    text = page.read_text()
    section = text.split("## A complete example", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the example is clean
        for code in blocks:
            exec(compile(code, str(page), "exec"), namespace)
    assert isinstance(namespace["data"], FateDataset)
