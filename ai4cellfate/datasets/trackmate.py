"""TrackMate reader: session XML files and CSV exports to a fate dataset.

`TrackMate <https://imagej.net/plugins/trackmate/>`_ (Fiji) saves a session as
one XML file::

    TrackMate
      Model  spatialunits, timeunits
        AllSpots / SpotsInFrame / Spot   ID, FRAME, POSITION_X, POSITION_Y, ...
        AllTracks / Track                TRACK_ID, with Edge children
                                         (SPOT_SOURCE_ID -> SPOT_TARGET_ID)
        FilteredTracks / TrackID         the tracks kept by the track filters
      Settings
        ImageData      filename, folder, width, height, nframes, nslices,
                       pixelwidth, pixelheight, timeinterval
        BasicSettings  xstart ... tend (the region and frames analysed)

and exports tables as CSV (a spots table and an edges table). A TrackMate
track is a whole tree of links; this module cuts it into the segments the
Cell Tracking Challenge (CTC) convention uses, so that the rest is the code
path of :func:`~ai4cellfate.datasets.load_ctc`:

* a spot with two or more outgoing links is a **division**: its segment ends
  there and each daughter starts a new segment whose parent it is;
* a link that skips frames is a **gap** (TrackMate's gap closing): the segment
  ends before it and the next one starts after it, with the first as its only
  child (a gap-closing link, followed as the same cell, as in the CTC);
* a spot with two or more incoming links is a **merge**. By default
  (``merges="end"``) the incoming segments end at the merge, so their fate is
  unknown, and the merged spot starts a new segment without a parent (a new
  lineage); a division that loses a daughter to a merge this way, keeping
  only one, ends too (its outcome is unknown). ``merges="error"`` refuses
  files with merges.

Positions are converted from the file's units to pixels with its own
calibration (``POSITION_X / pixelwidth``, pixel centres at integer
coordinates, as in TrackMate and in the CTC marker centroids).

The XML is parsed with the standard library's :mod:`xml.etree.ElementTree`
incrementally; files with a ``<!DOCTYPE`` or ``<!ENTITY`` declaration (which
TrackMate never writes) are refused, so no entity can be expanded.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ._frames import _LENGTH_UM, _TIME_S, FrameSequence, _unit
from ._lineage import check_lineage
from .tracks import (
    CENTERS,
    SEGMENTATIONS,
    _check_choice,
    _check_options,
    _check_positive,
    make_fate_dataset,
)

__all__ = ["TrackMateTracks", "read_trackmate", "read_trackmate_csv", "load_trackmate"]

logger = logging.getLogger(__name__)

MERGES = ("end", "error")
_CHUNK = 1 << 20
_MAX_LISTED = 100  # spot ids / edges listed in meta (the full lists are on the reader's result)
_POSITION_DECIMALS = 6  # converted positions are rounded to 1e-6 px (float noise of pw division)
#: Spatial units that are no calibration (positions are pixels).
_PIXEL_UNITS = ("pixel", "pixels", "px")


@dataclass(eq=False)
class TrackMateTracks:
    """Tracks read from TrackMate, in the generic representation.

    What :func:`read_trackmate` and :func:`read_trackmate_csv` return: the
    inputs of :func:`~ai4cellfate.datasets.make_fate_dataset`, like
    :class:`~ai4cellfate.datasets.CTCSequence` for a CTC folder.

    Attributes
    ----------
    tracks : pandas.DataFrame
        One row per spot used: ``track_id`` (segment), ``t`` (frame),
        ``y``, ``x`` (pixels), ``parent_id`` (-1 for none), ``spot_id``
        (TrackMate's spot ``ID``), ``trackmate_track_id`` (TrackMate's
        ``TRACK_ID``), and the spot features asked for (TrackMate names, the
        file's units).
    lineage : pandas.DataFrame
        ``track_id, start, end, parent_id`` per segment (``parent_id`` -1 for
        none), as :attr:`CTCSequence.lineage`. Segments are numbered 1, 2, ...
        in order of TrackMate track id, then first frame, then first spot id.
    movie : array-like, FrameSequence or None
        The movie, ``(T, H, W)`` or ``(T, C, H, W)``; ``None`` when not read.
        A TIFF file is memory-mapped when it is stored uncompressed (as Fiji
        saves it), else read whole.
    report : dict
        What was found and how it was handled: ``n_spots`` (in the file),
        ``n_spots_used``, ``n_tracks`` (TrackMate tracks used),
        ``n_tracks_not_used`` (not in ``FilteredTracks``), ``n_edges``,
        ``n_segments``, ``divisions``, ``merges`` (``count``, ``spot_ids``),
        ``gaps`` (``count``, ``longest`` in frames, ``edges`` as
        ``[source, target]`` spot ids), ``cut_edges`` (links removed at
        merges), ``reversed_edges`` (links stored later-to-earlier, turned
        round), ``clipped_positions`` (sub-pixel positions up to half a pixel
        outside the image, moved onto its edge) and ``spots_not_in_tracks``.
    calibration : dict
        ``spatial_units``, ``pixel_width``, ``pixel_height`` (file units per
        pixel), ``pixel_size`` (micrometres per pixel, ``None`` when the file
        is not calibrated in a length unit), ``time_units``,
        ``time_interval`` (file units per frame) and ``frame_interval``
        (seconds, ``None`` when the time unit is frames or unknown).
    image : dict
        The XML's ``ImageData`` (``filename``, ``folder``, ``width``,
        ``height``, ``nframes``, ``nslices``) and ``frames``, the first and
        last frame analysed (``BasicSettings`` ``tstart``, ``tend``); empty
        for CSV files.
    path : str
        The file read (the spots table for CSV).
    movie_path : str or None
        The movie's file, when it was read from one.
    """

    tracks: pd.DataFrame
    lineage: pd.DataFrame
    movie: object = None
    report: dict = field(default_factory=dict)
    calibration: dict = field(default_factory=dict)
    image: dict = field(default_factory=dict)
    path: str = ""
    movie_path: str | None = None


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------
def _check_path(path, what):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what} must be a str or path-like, got {type(path).__name__}.")
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{what} {str(p)!r} does not exist.")
    if not p.is_file():
        raise ValueError(f"{what} {str(p)!r} is not a file.")
    return p


def _check_features(features):
    if features is None or features == "all":
        return features
    if isinstance(features, str):
        return [features]
    try:
        out = list(features)
    except TypeError:
        raise TypeError(
            f"features must be None, 'all' or a list of TrackMate feature names, got "
            f"{features!r}."
        ) from None
    if not all(isinstance(f, str) for f in out):
        raise TypeError(f"features must be names (str), got {features!r}.")
    return out


def _unit_key(units):
    return _unit(str(units).strip().strip("()"))


def _um_per_unit(units):
    """Micrometres per ``units``; 0 for pixels; ``None`` for an unknown unit."""
    key = _unit_key(units)
    if key in _PIXEL_UNITS:
        return 0.0
    return _LENGTH_UM.get(key)


def _seconds(value, units):
    """``value`` in time ``units`` as seconds; ``None`` for frames or an unknown unit."""
    factor = _TIME_S.get(_unit_key(units)) if units else None
    return None if value is None or factor is None else value * factor


def _capped(items):
    items = list(items)
    return items[:_MAX_LISTED]


def _to_float(text, what):
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{what} is not a number: {text!r}.") from None
    if not math.isfinite(v):
        raise ValueError(f"{what} is not a finite number: {text!r}.")
    return v


def _to_int(text, what):
    v = _to_float(text, what)
    if v != round(v):
        raise ValueError(f"{what} is not an integer: {text!r}.")
    return int(v)


# --------------------------------------------------------------------------
# XML
# --------------------------------------------------------------------------
class _TrackMateTarget:
    """Parser target (:class:`xml.etree.ElementTree.XMLParser`) collecting what is used.

    No element tree is built: spots, links and the few attributes needed are
    kept as lists while the file streams through the parser.
    """

    _SKIP = {"ID", "name", "FRAME", "POSITION_X", "POSITION_Y"}

    def __init__(self, path, features):
        self.path = path
        self.features = features
        self.ids, self.frames, self.xs, self.ys = [], [], [], []
        self.feats = {} if features == "all" else {f: [] for f in (features or [])}
        self.tracks = {}  # TRACK_ID -> [(source, target)]
        self.filtered = None
        self.model = self.image = self.basic = None
        self.stack = []
        self.track = None

    def doctype(self, name, pubid, system):
        raise ValueError(
            f"{self.path} has a DOCTYPE declaration; TrackMate files have none, and XML "
            "with document type or entity declarations is refused (entity expansion)."
        )

    def start(self, tag, a):
        stack = self.stack
        parent = stack[-1] if stack else None
        if parent is None and tag != "TrackMate":
            raise ValueError(
                f"{self.path} is not a TrackMate file: its root element is <{tag}>, "
                "not <TrackMate>."
            )
        stack.append(tag)
        if tag == "Spot" and parent == "SpotsInFrame":
            try:
                sid, t = int(a["ID"]), int(a["FRAME"])
                x, y = float(a["POSITION_X"]), float(a["POSITION_Y"])
                if not (math.isfinite(x) and math.isfinite(y)):
                    raise ValueError
            except (KeyError, ValueError):
                sid, t, x, y = self._bad_spot(a)
            self.ids.append(sid)
            self.frames.append(t)
            self.xs.append(x)
            self.ys.append(y)
            if self.feats or self.features == "all":
                self._spot_features(a)
        elif tag == "Edge" and parent == "Track":
            try:
                link = (int(a["SPOT_SOURCE_ID"]), int(a["SPOT_TARGET_ID"]))
            except (KeyError, ValueError):
                link = self._bad_edge(a)
            self.tracks[self.track].append(link)
        elif tag == "Track" and parent == "AllTracks":
            name = a.get("name", str(len(self.tracks)))
            if "TRACK_ID" not in a:
                raise ValueError(f"{self.path}: track {name!r} has no TRACK_ID attribute.")
            self.track = _to_int(a["TRACK_ID"], f"{self.path}: track {name!r} TRACK_ID")
            if self.track in self.tracks:
                raise ValueError(f"{self.path} lists track {self.track} twice.")
            self.tracks[self.track] = []
        elif tag == "TrackID" and parent == "FilteredTracks":
            if "TRACK_ID" not in a:
                raise ValueError(f"{self.path}: a FilteredTracks/TrackID has no TRACK_ID.")
            self.filtered.append(_to_int(a["TRACK_ID"], f"{self.path}: FilteredTracks TRACK_ID"))
        elif tag == "FilteredTracks" and parent == "Model":
            self.filtered = [] if self.filtered is None else self.filtered
        elif tag == "Model" and parent == "TrackMate":
            self.model = dict(a)
        elif tag == "ImageData" and parent == "Settings":
            self.image = dict(a)
        elif tag == "BasicSettings" and parent == "Settings":
            self.basic = dict(a)

    def end(self, tag):
        self.stack.pop()

    def close(self):
        return self

    def _bad_spot(self, a):
        """The slow path of a spot: a precise message for what is wrong."""
        n = len(self.ids) + 1
        if "ID" not in a:
            raise ValueError(f"{self.path}: spot number {n} has no ID attribute.")
        what = f"{self.path}: spot {a['ID']}"
        for key in ("FRAME", "POSITION_X", "POSITION_Y"):
            if key not in a:
                raise ValueError(f"{what} has no {key} attribute.")
        return (_to_int(a["ID"], f"{what} ID"), _to_int(a["FRAME"], f"{what} FRAME"),
                _to_float(a["POSITION_X"], f"{what} POSITION_X"),
                _to_float(a["POSITION_Y"], f"{what} POSITION_Y"))

    def _bad_edge(self, a):
        what = f"{self.path}: an edge of track {self.track}"
        for key in ("SPOT_SOURCE_ID", "SPOT_TARGET_ID"):
            if key not in a:
                raise ValueError(f"{what} has no {key} attribute.")
        return (_to_int(a["SPOT_SOURCE_ID"], f"{what} SPOT_SOURCE_ID"),
                _to_int(a["SPOT_TARGET_ID"], f"{what} SPOT_TARGET_ID"))

    def _spot_features(self, a):
        n = len(self.ids) - 1  # spots before this one
        feats = self.feats
        if self.features == "all":
            for k, v in a.items():
                if k in self._SKIP:
                    continue
                col = feats.get(k)
                if col is None:
                    col = feats[k] = [np.nan] * n
                try:
                    col.append(float(v))
                except ValueError:
                    col.append(np.nan)
            for col in feats.values():
                if len(col) == n:
                    col.append(np.nan)
        else:
            for k, col in feats.items():
                try:
                    col.append(float(a[k]))
                except (KeyError, ValueError):
                    col.append(np.nan)


def _parse_xml(path, features):
    """Spots, tracks, filtered ids, model and image attributes of a TrackMate XML.

    The file is fed to the parser in chunks; DOCTYPE and ENTITY declarations
    are refused before they reach it (and by the target, should one pass).
    """
    target = _TrackMateTarget(path, features)
    parser = ET.XMLParser(target=target)
    with open(path, "rb") as fh:
        head = fh.read(4)
        if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head:
            raise ValueError(
                f"{path} is not a TrackMate XML file: it is not UTF-8 text (TrackMate "
                "writes UTF-8)."
            )
        fh.seek(0)
        tail = b""
        try:
            while True:
                chunk = fh.read(_CHUNK)
                if not chunk:
                    break
                probe = tail + chunk
                for decl, what in ((b"<!DOCTYPE", "a DOCTYPE"), (b"<!ENTITY", "an ENTITY")):
                    if decl in probe:
                        raise ValueError(
                            f"{path} has {what} declaration; TrackMate files have none, "
                            "and XML with document type or entity declarations is refused "
                            "(entity expansion)."
                        )
                tail = probe[-9:]
                parser.feed(chunk)
            parser.close()
        except ET.ParseError as exc:
            raise ValueError(f"{path} is not a well-formed XML file: {exc}.") from None
    t = target
    if t.model is None:
        raise ValueError(
            f"{path} is not a TrackMate session file: it has no <Model> element "
            "(File > Save in TrackMate writes one)."
        )
    if not t.ids:
        raise ValueError(f"{path} has no spots (Model/AllSpots is empty or missing).")
    if not t.tracks:
        raise ValueError(
            f"{path} has no tracks (Model/AllTracks is empty or missing): run the "
            "tracking step in TrackMate before saving."
        )
    spots = pd.DataFrame({"spot_id": t.ids, "t": t.frames, "X": t.xs, "Y": t.ys})
    if spots["spot_id"].duplicated().any():
        dup = spots.loc[spots["spot_id"].duplicated(), "spot_id"].tolist()[:10]
        raise ValueError(f"{path} lists spot ids more than once: {dup}.")
    if (spots["t"] < 0).any():
        raise ValueError(f"{path}: spot frames (FRAME) must be >= 0.")
    for k, col in t.feats.items():
        spots[k] = np.asarray(col, dtype=float)
    if features not in (None, "all"):
        absent = [k for k in features if spots[k].isna().all()]
        if absent:
            raise ValueError(
                f"{path}: no spot has the feature(s) {absent}; TrackMate spot features "
                "are attributes such as QUALITY, RADIUS, MEAN_INTENSITY_CH1."
            )
    return spots, t.tracks, t.filtered, t.model, t.image or {}, t.basic or {}


def _image_info(path, image, basic):
    info = {}
    for key in ("filename", "folder"):
        info[key] = image.get(key, "") or ""
    for key in ("width", "height", "nframes", "nslices"):
        if key in image:
            info[key] = _to_int(image[key], f"{path}: ImageData {key}")
    if info.get("nslices", 1) > 1:
        raise ValueError(
            f"{path} describes a 3-D movie (ImageData nslices={info['nslices']}); only "
            "2-D time-lapse movies are supported."
        )
    frames = None
    if "tstart" in basic and "tend" in basic:
        frames = [_to_int(basic["tstart"], f"{path}: BasicSettings tstart"),
                  _to_int(basic["tend"], f"{path}: BasicSettings tend")]
    info["frames"] = frames
    return info


def _xml_calibration(path, model, image):
    units = model.get("spatialunits", "pixel")
    factor = _um_per_unit(units)
    cal = {"spatial_units": units, "time_units": model.get("timeunits", "frame")}
    for key, name in (("pixelwidth", "pixel_width"), ("pixelheight", "pixel_height")):
        if key in image:
            v = _to_float(image[key], f"{path}: ImageData {key}")
            if v <= 0:
                raise ValueError(f"{path}: ImageData {key} must be positive, got {v}.")
            cal[name] = v
        elif factor == 0.0:
            cal[name] = 1.0
        else:
            raise ValueError(
                f"{path}: positions are in {units!r} but Settings/ImageData gives no "
                f"{key}, so they cannot be converted to pixels."
            )
    cal["pixel_size"] = cal["pixel_width"] * factor if factor else None
    dt = (
        _to_float(image["timeinterval"], f"{path}: ImageData timeinterval")
        if "timeinterval" in image else None
    )
    cal["time_interval"] = dt
    cal["frame_interval"] = _seconds(dt, cal["time_units"]) if dt and dt > 0 else None
    return cal


def _select_tracks(path, tracks, filtered, all_tracks, stacklevel):
    if all_tracks:
        return sorted(tracks)
    if filtered is None:
        warnings.warn(
            f"{path} has no FilteredTracks element; all {len(tracks)} tracks are used.",
            UserWarning, stacklevel=stacklevel,
        )
        return sorted(tracks)
    unknown = sorted(set(filtered) - set(tracks))
    if unknown:
        raise ValueError(
            f"{path}: FilteredTracks names tracks that AllTracks does not hold: {unknown[:10]}."
        )
    if not filtered:
        raise ValueError(
            f"{path}: no track passes TrackMate's track filters (FilteredTracks is empty); "
            f"pass all_tracks=True to use all {len(tracks)} tracks."
        )
    return sorted(set(filtered))


# --------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------
def _is_number(text):
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def _read_tm_csv(path, required, what):
    """A TrackMate CSV table (1 or 4 header rows) as str columns, plus the units row."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            first = fh.readline()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a TrackMate {what} CSV table (not text).") from None
    sep = max((",", "\t", ";"), key=first.count)
    try:
        raw = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False,
                          encoding="utf-8-sig", skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
            ValueError) as exc:
        raise ValueError(
            f"{path} is not a readable TrackMate {what} CSV table: {' '.join(str(exc).split())}"
        ) from None
    raw.columns = [str(c).strip() for c in raw.columns]
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise ValueError(
            f"{path} is not a TrackMate {what} table: it lacks the column(s) {missing} "
            f"(found {list(raw.columns)[:12]})."
        )
    # Recent TrackMate versions write 3 more header rows: names, short names, units.
    n_head, units = 0, {}
    key = required[0]
    while n_head < min(3, len(raw)) and not _is_number(raw[key].iloc[n_head].strip()):
        row = raw.iloc[n_head]
        if any(str(v).strip().startswith("(") for v in row.to_numpy()):
            units = {c: str(v).strip() for c, v in row.items()}
        n_head += 1
    data = raw.iloc[n_head:].reset_index(drop=True)
    if len(data) == 0:
        raise ValueError(f"{path}: the TrackMate {what} table has no rows.")
    return data, units


def _numeric(data, col, path, what, integer):
    text = data[col].str.strip()
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if integer:
        bad |= np.isfinite(values) & (values != np.round(values))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{path}: column {col} of the {what} table must hold "
            f"{'integers' if integer else 'numbers'}; row {i + 1} has {text.iloc[i]!r}."
        )
    return values.astype(np.int64) if integer else values


# --------------------------------------------------------------------------
# the edge graph -> CTC-style segments
# --------------------------------------------------------------------------
def _components(spot_ids, edges):
    """Connected-component index of each spot (union-find), ordered by min spot id."""
    parent = {s: s for s in spot_ids}

    def find(s):
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = {s: find(s) for s in spot_ids}
    order = {r: i for i, r in enumerate(sorted(set(roots.values())))}
    return {s: order[r] for s, r in roots.items()}


def _segments(spots, edges, *, merges, name):
    """Cut TrackMate's link graph into CTC segments.

    ``spots``: DataFrame with ``spot_id, t, y, x, trackmate_track_id`` and
    features, only the spots used; ``edges``: list of (source, target) spot ids
    among them. Returns (tracks, lineage, report).
    """
    frame = dict(zip(spots["spot_id"].tolist(), spots["t"].tolist()))
    edge_set, reversed_edges = set(), 0
    for a, b in edges:
        if frame[a] == frame[b]:
            raise ValueError(
                f"{name}: spots {a} and {b} are linked but both are in frame {frame[a]}; "
                "links join spots of different frames."
            )
        if frame[a] > frame[b]:
            a, b = b, a
            reversed_edges += 1
        edge_set.add((a, b))
    succ = {s: [] for s in frame}
    pred = {s: [] for s in frame}
    for a, b in sorted(edge_set):
        succ[a].append(b)
        pred[b].append(a)
    for s in succ:
        succ[s].sort(key=lambda d: (frame[d], d))

    merge_spots = sorted(s for s, p in pred.items() if len(p) >= 2)
    cut = []
    if merge_spots:
        if merges == "error":
            raise ValueError(
                f"{name} has {len(merge_spots)} merge(s) (spots with several incoming "
                f"links): spots {merge_spots[:10]}; pass merges='end' to end the merging "
                "tracks there instead."
            )
        out_before = {s: len(v) for s, v in succ.items()}
        for m in merge_spots:
            for p in pred[m]:
                cut.append((p, m))
                succ[p].remove(m)
            pred[m] = []
        # a division left with one daughter would read as the same cell going on
        for p in sorted({p for p, _ in cut}):
            if out_before[p] >= 2 and len(succ[p]) == 1:
                d = succ[p].pop()
                pred[d].remove(p)
                cut.append((p, d))

    def is_head(s):
        if not pred[s]:
            return True
        p = pred[s][0]
        return len(succ[p]) >= 2 or frame[s] - frame[p] > 1

    track_of = dict(zip(spots["spot_id"].tolist(), spots["trackmate_track_id"].tolist()))
    heads = sorted((s for s in frame if is_head(s)), key=lambda s: (track_of[s], frame[s], s))
    label = {h: i + 1 for i, h in enumerate(heads)}
    seg_of = {}
    for h in heads:
        cur = h
        seg_of[cur] = label[h]
        while len(succ[cur]) == 1 and not is_head(succ[cur][0]):
            cur = succ[cur][0]
            seg_of[cur] = label[h]
    seg_parent = {label[h]: seg_of[pred[h][0]] if pred[h] else -1 for h in heads}

    gaps = sorted(
        ((a, b) for a in succ for b in succ[a] if frame[b] - frame[a] > 1),
        key=lambda e: (frame[e[0]], e),
    )
    tracks = spots.copy()
    tracks.insert(0, "track_id", tracks["spot_id"].map(seg_of).astype(np.int64))
    tracks.insert(4, "parent_id", tracks["track_id"].map(seg_parent).astype(np.int64))
    front = ["track_id", "t", "y", "x", "parent_id", "spot_id", "trackmate_track_id"]
    tracks = tracks[front + [c for c in tracks.columns if c not in front]]
    tracks = tracks.sort_values(["track_id", "t"], kind="stable").reset_index(drop=True)
    g = tracks.groupby("track_id", sort=True)["t"]
    lineage = pd.DataFrame({
        "track_id": g.min().index.to_numpy(),
        "start": g.min().to_numpy(),
        "end": g.max().to_numpy(),
    })
    lineage["parent_id"] = lineage["track_id"].map(seg_parent).to_numpy()
    lineage = check_lineage(lineage, name=str(name))
    report = {
        "n_edges": len(edge_set),
        "n_segments": len(heads),
        "divisions": sum(1 for s in succ if len(succ[s]) >= 2),
        "merges": {"count": len(merge_spots), "spot_ids": merge_spots},
        "gaps": {
            "count": len(gaps),
            "longest": max((frame[b] - frame[a] - 1 for a, b in gaps), default=0),
            "edges": [list(e) for e in gaps],
        },
        "cut_edges": [list(e) for e in cut],
        "reversed_edges": reversed_edges,
    }
    return tracks, lineage, report


def _to_pixels(spots, pw, ph, shape, name, units):
    """Calibrated ``X, Y`` -> pixel ``x, y``; clip up to half a pixel outside the image."""
    x = np.round(spots.pop("X").to_numpy() / pw, _POSITION_DECIMALS)
    y = np.round(spots.pop("Y").to_numpy() / ph, _POSITION_DECIMALS)
    clipped = 0
    if shape is not None:
        H, W = shape
        out = (x < -0.5) | (x > W - 0.5) | (y < -0.5) | (y > H - 0.5)
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise ValueError(
                f"{name}: {int(out.sum())} spot(s) lie outside the {H} x {W} image, e.g. "
                f"spot {int(spots['spot_id'].iloc[i])} at x={x[i]:g}, y={y[i]:g} px "
                f"(frame {int(spots['t'].iloc[i])}); is the pixel size right "
                f"({pw:g} x {ph:g} {units} per pixel) and is it the right movie?"
            )
        near = (x < 0) | (x > W - 1) | (y < 0) | (y > H - 1)
        clipped = int(near.sum())
        x, y = np.clip(x, 0, W - 1), np.clip(y, 0, H - 1)
    spots.insert(2, "y", y)
    spots.insert(3, "x", x)
    return spots, clipped


# --------------------------------------------------------------------------
# the movie
# --------------------------------------------------------------------------
def _tiff_movie(path, n_frames=None):
    """A (T, H, W) or (T, C, H, W) view of a TIFF movie, memory-mapped when possible."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes, shape = series.axes, tuple(series.shape)
    except Exception as exc:  # tifffile raises many kinds
        raise ValueError(f"movie {str(path)!r} is not a readable TIFF: {exc}") from None
    try:
        arr = tifffile.memmap(path, mode="r")
        if tuple(arr.shape) != shape:
            raise ValueError
    except Exception:
        arr = tifffile.imread(path)
    axes = axes.upper()
    if "Y" not in axes or "X" not in axes or len(axes) != arr.ndim:
        raise ValueError(f"movie {str(path)!r} has axes {axes!r}, shape {shape}: no Y and X.")
    extra = [i for i, a in enumerate(axes) if a not in "YX" and shape[i] > 1]
    chan = [i for i in extra if axes[i] in "CS"]
    other = [i for i in extra if axes[i] not in "CS"]
    if len(extra) == 1:
        t_ax, c_ax = (None, extra[0]) if chan and n_frames == 1 else (extra[0], None)
    elif len(extra) == 2 and len(chan) == 1:
        t_ax, c_ax = other[0], chan[0]
    elif len(extra) == 2 and n_frames in (shape[extra[0]], shape[extra[1]]):
        t_ax = extra[0] if shape[extra[0]] == n_frames else extra[1]
        c_ax = extra[1] if t_ax == extra[0] else extra[0]
    elif not extra:
        t_ax = c_ax = None
    else:
        raise ValueError(
            f"movie {str(path)!r} has axes {axes!r}, shape {shape}; a 2-D time-lapse "
            "(T, Y, X) or (T, C, Y, X) is needed (3-D stacks are not supported)."
        )
    order = [i for i in (t_ax, c_ax) if i is not None] + [axes.index("Y"), axes.index("X")]
    rest = [i for i in range(arr.ndim) if i not in order]  # length-1 axes
    arr = np.transpose(arr, order + rest)
    if rest:  # dropping length-1 axes is a view, even of a memory map
        arr = arr.reshape(arr.shape[: len(order)])
    if t_ax is None:
        arr = arr[None]
    return arr


def _as_movie(movie, what, n_frames=None):
    """``movie`` given by the user: a path (read), or an array-like / FrameSequence."""
    if isinstance(movie, (str, os.PathLike)):
        p = Path(movie)
        if not p.is_file():
            raise FileNotFoundError(f"{what} {str(p)!r} does not exist.")
        return _tiff_movie(p, n_frames), str(p)
    if isinstance(movie, FrameSequence) or (
        hasattr(movie, "shape") and hasattr(movie, "__getitem__")
    ):
        return movie, None
    raise TypeError(
        f"{what} must be a path to a TIFF, an array of shape (T, H, W) or (T, C, H, W), "
        f"or a FrameSequence, got {type(movie).__name__}."
    )


def _find_movie(path, info):
    """The movie a TrackMate XML names: ImageData folder/filename, else beside the XML."""
    name = info.get("filename", "")
    if not name:
        raise FileNotFoundError(
            f"{path} names no movie (Settings/ImageData has no filename); pass movie= "
            "(an array or the path of the TIFF)."
        )
    tried = []
    folder = info.get("folder", "")
    if folder:
        tried.append(Path(folder) / name)
    tried.append(Path(path).parent / name)
    for p in tried:
        if p.is_file():
            return _tiff_movie(p, info.get("nframes")), str(p)
    shown = " and ".join(repr(str(p)) for p in dict.fromkeys(tried))
    raise FileNotFoundError(
        f"{path}: the movie it names was not found (tried {shown}); pass movie= "
        "(an array or the path of the TIFF)."
    )


def _frame_hw(movie, what):
    shape = tuple(int(s) for s in movie.shape)
    if len(shape) not in (3, 4):
        raise ValueError(f"{what} must have shape (T, H, W) or (T, C, H, W), got {shape}.")
    return shape[0], shape[-2:]


def _first_frames(movie, n):
    """The movie's first ``n`` frames (a view or a new FrameSequence)."""
    if movie.shape[0] <= n:
        return movie
    if isinstance(movie, FrameSequence):
        kept = {t: movie._sources[t] for t in movie.available if t < n}
        if not kept:
            raise ValueError(f"the movie has no frame among the {n} analysed by TrackMate.")
        return FrameSequence(kept, n_frames=n, check_shapes=False)
    return movie[:n]


# --------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------
def _finish(name, spots, edges, *, merges, movie, movie_path, cal, image, report, stacklevel):
    """Shared end of both readers: pixels, segments, checks, report, warnings."""
    shape = None
    if movie is not None:
        n_t, shape = _frame_hw(movie, "movie")
        if image.get("width") and image.get("height") and (
            tuple(shape) != (image["height"], image["width"])
        ):
            raise ValueError(
                f"{name}: the movie is {shape[1]} x {shape[0]} px (width x height), the "
                f"TrackMate file says {image['width']} x {image['height']}: is it the movie "
                "that was tracked?"
            )
        last = int(spots["t"].max())
        if last >= n_t:
            raise ValueError(
                f"{name}: spots reach frame {last} but the movie has {n_t} frames (0..{n_t - 1})."
            )
    elif image.get("width") and image.get("height"):
        shape = (image["height"], image["width"])
    spots, clipped = _to_pixels(spots, cal["pixel_width"], cal["pixel_height"], shape, name,
                                cal["spatial_units"])
    tracks, lineage, seg_report = _segments(spots, edges, merges=merges, name=name)
    report.update(seg_report)
    report["clipped_positions"] = clipped
    m = report["merges"]
    if m["count"]:
        merged_spots = set(m["spot_ids"])
        n_in = sum(1 for _, b in report["cut_edges"] if b in merged_spots)
        warnings.warn(
            f"{name} has {m['count']} merge(s) (spots with several incoming links, e.g. "
            f"spots {m['spot_ids'][:5]}): the {n_in} merging track(s) end there (fate "
            "unknown) and each merged spot starts a new track without a parent; "
            "merges='error' refuses such files.",
            UserWarning, stacklevel=stacklevel,
        )
    if report["gaps"]["count"]:
        logger.info(
            "%s: %d gap-closing link(s) (longest gap %d frames), followed as the same cell",
            name, report["gaps"]["count"], report["gaps"]["longest"],
        )
    return TrackMateTracks(
        tracks=tracks, lineage=lineage, movie=movie, report=report, calibration=cal,
        image=image, path=str(name), movie_path=movie_path,
    )


def read_trackmate(path, movie=None, *, all_tracks=False, merges="end", features=None):
    """Read a TrackMate session XML file into the generic representation.

    The tracks are cut into segments at divisions, gaps and merges (see
    :mod:`ai4cellfate.datasets.trackmate`), giving the same kind of tracks and
    lineage tables as :func:`~ai4cellfate.datasets.read_ctc`. Positions are
    converted to pixels with the file's ``pixelwidth`` and ``pixelheight``.

    Parameters
    ----------
    path : str or path-like
        A TrackMate XML file (TrackMate's File > Save).
    movie : None, False, str, path-like, array-like or FrameSequence, default=None
        ``None``: the movie the file names (``ImageData`` ``folder`` +
        ``filename``, else ``filename`` beside the XML file); an error names
        the paths tried when it is not found. ``False``: no movie is read
        (``movie`` is ``None``). A path: that TIFF. An array ``(T, H, W)`` or
        ``(T, C, H, W)`` (numpy, memmap, zarr, ...) or a
        :class:`~ai4cellfate.datasets.FrameSequence`: used as it is.
    all_tracks : bool, default=False
        Use every track in ``AllTracks``, not only those that pass
        TrackMate's track filters (``FilteredTracks``).
    merges : {"end", "error"}, default="end"
        Spots with several incoming links: end the merging tracks there and
        start a new track without a parent at the merged spot (a warning says
        how many), or refuse the file.
    features : None, "all" or list of str, default=None
        TrackMate spot features to copy into ``tracks`` (and so into the
        dataset's table), e.g. ``["QUALITY", "MEAN_INTENSITY_CH1"]``, under
        their TrackMate names, in the file's units.

    Returns
    -------
    TrackMateTracks
        ``tracks``, ``lineage``, ``movie``, ``report``, ``calibration``,
        ``image``.

    Raises
    ------
    ValueError
        Before any pixel is read, naming the file and the problem: not XML,
        not a TrackMate file (no ``<Model>``), a DOCTYPE or ENTITY
        declaration, spots without ``FRAME`` or positions, links to spots
        that do not exist or within one frame, no (filtered) tracks, a 3-D
        movie, spots outside the image, a movie of another size; with
        ``merges="error"``, merges.
    FileNotFoundError
        When the file, or the movie it names, does not exist.

    Examples
    --------
    A cell (spots 1-3) dividing into spots 4 and 5, 0.5 um per pixel:

    >>> import os, tempfile
    >>> from ai4cellfate.datasets import read_trackmate
    >>> spots = {0: [(1, 10.0)], 1: [(2, 10.0)], 2: [(3, 10.0)], 3: [(4, 8.0), (5, 12.0)]}
    >>> frames = "".join(
    ...     f'<SpotsInFrame frame="{t}">' + "".join(
    ...         f'<Spot ID="{i}" FRAME="{t}" POSITION_X="{x}" POSITION_Y="10.0" />'
    ...         for i, x in s) + "</SpotsInFrame>" for t, s in spots.items())
    >>> links = "".join(f'<Edge SPOT_SOURCE_ID="{a}" SPOT_TARGET_ID="{b}" />'
    ...                 for a, b in [(1, 2), (2, 3), (3, 4), (3, 5)])
    >>> xml = f'''<TrackMate version="7.11.1">
    ... <Model spatialunits="micron" timeunits="min">
    ...   <AllSpots nspots="5">{frames}</AllSpots>
    ...   <AllTracks><Track name="Track_0" TRACK_ID="0">{links}</Track></AllTracks>
    ...   <FilteredTracks><TrackID TRACK_ID="0" /></FilteredTracks>
    ... </Model>
    ... <Settings><ImageData filename="movie.tif" folder="" width="64" height="64"
    ...   nslices="1" nframes="4" pixelwidth="0.5" pixelheight="0.5" timeinterval="10.0" />
    ... </Settings>
    ... </TrackMate>'''
    >>> path = os.path.join(tempfile.mkdtemp(), "session.xml")
    >>> _ = open(path, "w").write(xml)
    >>> tm = read_trackmate(path, movie=False)
    >>> tm.lineage.values.tolist()
    [[1, 0, 2, -1], [2, 3, 3, 1], [3, 3, 3, 1]]
    >>> tm.tracks[["track_id", "t", "y", "x"]].values[-1].tolist()
    [3.0, 3.0, 20.0, 24.0]
    >>> tm.calibration["pixel_size"], tm.report["divisions"]
    (0.5, 1)
    """
    return _read_trackmate(path, movie, all_tracks=all_tracks, merges=merges,
                           features=features, stacklevel=3)


def _read_trackmate(path, movie, *, all_tracks, merges, features, stacklevel):
    p = _check_path(path, "path")
    if not isinstance(all_tracks, (bool, np.bool_)):
        raise TypeError(f"all_tracks must be a bool, got {all_tracks!r}.")
    _check_choice(merges, "merges", MERGES)
    features = _check_features(features)
    spots, tracks, filtered, model, image_attr, basic = _parse_xml(p, features)
    info = _image_info(p, image_attr, basic)
    cal = _xml_calibration(p, model, image_attr)
    used = _select_tracks(p, tracks, filtered, all_tracks, stacklevel + 1)
    edges, track_of = [], {}
    for tid in used:
        for a, b in tracks[tid]:
            edges.append((a, b))
            track_of.setdefault(a, tid)
            track_of.setdefault(b, tid)
    known = set(spots["spot_id"].tolist())
    unknown = sorted(set(track_of) - known)
    if unknown:
        raise ValueError(
            f"{p}: tracks link spots that AllSpots does not hold: {unknown[:10]}."
        )
    in_any = {s for links in tracks.values() for e in links for s in e}
    report = {
        "n_spots": len(spots),
        "n_spots_used": len(track_of),
        "n_tracks": len(used),
        "n_tracks_not_used": len(tracks) - len(used),
        "spots_not_in_tracks": len(known - in_any),
    }
    sub = spots[spots["spot_id"].isin(track_of)].copy()
    sub.insert(2, "trackmate_track_id", sub["spot_id"].map(track_of).astype(np.int64))
    movie_path = None
    if movie is None:
        movie, movie_path = _find_movie(p, info)
    elif movie is False:
        movie = None
    else:
        movie, movie_path = _as_movie(movie, "movie", info.get("nframes"))
    return _finish(p, sub.reset_index(drop=True), edges, merges=merges, movie=movie,
                   movie_path=movie_path, cal=cal, image=info, report=report,
                   stacklevel=stacklevel + 1)


def read_trackmate_csv(spots, edges=None, *, movie=None, pixel_size=None, units=None,
                       merges="end", features=None):
    """Read TrackMate's CSV exports (spots and edges tables) into the generic representation.

    The tables TrackMate exports from its "Tracks" window (spots: ``ID``,
    ``TRACK_ID``, ``FRAME``, ``POSITION_X``, ``POSITION_Y``, ...; edges:
    ``SPOT_SOURCE_ID``, ``SPOT_TARGET_ID``, ...), with one header row or with
    the 3 more (names, short names, units) recent versions write. The lineage
    comes from the edges exactly as for :func:`read_trackmate`; every track
    in the tables is used.

    Parameters
    ----------
    spots : str or path-like
        The spots table.
    edges : str or path-like, default=None
        The edges table. Without it, each ``TRACK_ID``'s spots are linked
        in frame order; a track with two spots in one frame (a division)
        then needs the edges table.
    movie : None, str, path-like, array-like or FrameSequence, default=None
        The movie (a CSV does not name it): a TIFF path, an array or a
        :class:`~ai4cellfate.datasets.FrameSequence`; ``None`` reads none.
    pixel_size : float, default=None
        Micrometres per pixel. Needed when the positions are in a length
        unit (they are divided by it, after conversion to micrometres).
    units : str, default=None
        Units of ``POSITION_X`` and ``POSITION_Y``: ``"pixel"`` or a length
        unit (``"micron"``, ``"um"``, ``"nm"``, ...). Default: the table's
        units row; needed when the table has none.
    merges : {"end", "error"}, default="end"
        See :func:`read_trackmate`.
    features : None, "all" or list of str, default=None
        Numeric spot columns to copy into ``tracks``; ``"all"``: every
        numeric column that is not an id, frame or position.

    Returns
    -------
    TrackMateTracks

    Raises
    ------
    ValueError
        Naming the file and the problem: a table that is not a TrackMate
        export (missing columns, non-numeric ids or frames), unknown or
        missing units or pixel size, links to spots not in the spots table.
    FileNotFoundError
        When a table or the movie does not exist.

    Examples
    --------
    >>> import os, tempfile
    >>> from ai4cellfate.datasets import read_trackmate_csv
    >>> folder = tempfile.mkdtemp()
    >>> spots = os.path.join(folder, "spots.csv")
    >>> _ = open(spots, "w").write(
    ...     "LABEL,ID,TRACK_ID,FRAME,POSITION_X,POSITION_Y\\n"
    ...     "Label,Spot ID,Track ID,Frame,X,Y\\n"
    ...     "Label,Spot ID,Track ID,Frame,X,Y\\n"
    ...     ",,,,(micron),(micron)\\n"
    ...     "ID1,1,0,0,5.0,5.0\\nID2,2,0,1,5.0,5.5\\n")
    >>> tm = read_trackmate_csv(spots, pixel_size=0.5)
    >>> tm.tracks[["track_id", "t", "y", "x"]].values.tolist()
    [[1.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 10.0]]
    """
    return _read_trackmate_csv(spots, edges, movie=movie, pixel_size=pixel_size, units=units,
                               merges=merges, features=features, stacklevel=3)


def _read_trackmate_csv(spots, edges, *, movie, pixel_size, units, merges, features,
                        stacklevel):
    sp = _check_path(spots, "spots")
    ep = _check_path(edges, "edges") if edges is not None else None
    _check_choice(merges, "merges", MERGES)
    features = _check_features(features)
    _check_positive(pixel_size, "pixel_size", "um/px")
    if units is not None and _um_per_unit(units) is None:
        raise ValueError(
            f"units must be 'pixel' or a length unit such as 'micron', 'um', 'nm', got "
            f"{units!r}."
        )
    data, unit_row = _read_tm_csv(sp, ["ID", "FRAME", "POSITION_X", "POSITION_Y"], "spots")
    if units is None:
        units = unit_row.get("POSITION_X", "").strip("()") or None
        if units is None:
            raise ValueError(
                f"{sp} does not say the units of POSITION_X / POSITION_Y (no units row); "
                "pass units= ('pixel', 'micron', ...)."
            )
        if _um_per_unit(units) is None:
            raise ValueError(
                f"{sp}: positions are in {units!r}, a unit not known here; pass units= "
                "('pixel' or a length unit such as 'micron')."
            )
    factor = _um_per_unit(units)
    if factor == 0.0:
        pw = 1.0
    elif pixel_size is None:
        raise ValueError(
            f"{sp}: positions are in {units!r}; pass pixel_size= (micrometres per pixel) "
            "to convert them to pixels."
        )
    else:
        pw = float(pixel_size) / factor
    cal = {
        "spatial_units": units, "pixel_width": pw, "pixel_height": pw,
        "pixel_size": float(pixel_size) if pixel_size is not None else None,
        "time_units": (unit_row.get("POSITION_T", "").strip("()") or None),
        "time_interval": None, "frame_interval": None,
    }
    table = pd.DataFrame({
        "spot_id": _numeric(data, "ID", sp, "spots", True),
        "t": _numeric(data, "FRAME", sp, "spots", True),
        "X": _numeric(data, "POSITION_X", sp, "spots", False),
        "Y": _numeric(data, "POSITION_Y", sp, "spots", False),
    })
    if table["spot_id"].duplicated().any():
        dup = table.loc[table["spot_id"].duplicated(), "spot_id"].tolist()[:10]
        raise ValueError(f"{sp} lists spot ids more than once: {dup}.")
    if (table["t"] < 0).any():
        raise ValueError(f"{sp}: FRAME must be >= 0.")
    if "POSITION_T" in data and cal["time_units"]:  # the interval, when T = FRAME * dt
        pos_t = pd.to_numeric(data["POSITION_T"].str.strip(), errors="coerce").to_numpy()
        later = table["t"].to_numpy() > 0
        ratio = pos_t[later] / table["t"].to_numpy()[later]
        if later.any() and np.all(np.isfinite(ratio)) and np.ptp(ratio) <= 1e-6 * abs(
            ratio[0]
        ) and ratio[0] > 0:
            cal["time_interval"] = float(np.median(ratio))
            cal["frame_interval"] = _seconds(cal["time_interval"], cal["time_units"])
    if "TRACK_ID" in data:
        tid_text = data["TRACK_ID"].str.strip()
        has = (tid_text != "") & (tid_text.str.lower() != "none")
        tid = pd.to_numeric(tid_text.where(has), errors="coerce")
        if tid[has].isna().any():
            i = int(np.flatnonzero(has & tid.isna())[0])
            raise ValueError(
                f"{sp}: TRACK_ID of row {i + 1} is not a number: {tid_text.iloc[i]!r}."
            )
        table["tm"] = tid.to_numpy()
    else:
        table["tm"] = np.nan
    if features == "all":
        skip = {"LABEL", "Label", "ID", "TRACK_ID", "FRAME", "POSITION_X", "POSITION_Y"}
        names = [c for c in data.columns if c not in skip]
    else:
        names = features or []
    for c in names:
        if c not in data:
            raise ValueError(f"{sp} has no column {c!r} (features=).")
        v = pd.to_numeric(data[c].str.strip(), errors="coerce")
        if features == "all" and v.isna().all():
            continue
        table[c] = v.to_numpy(dtype=float)

    if ep is not None:
        edata, _ = _read_tm_csv(ep, ["SPOT_SOURCE_ID", "SPOT_TARGET_ID"], "edges")
        src = _numeric(edata, "SPOT_SOURCE_ID", ep, "edges", True)
        dst = _numeric(edata, "SPOT_TARGET_ID", ep, "edges", True)
        links = list(zip(src.tolist(), dst.tolist()))
        unknown = sorted(set(src.tolist() + dst.tolist()) - set(table["spot_id"].tolist()))
        if unknown:
            raise ValueError(
                f"{ep} links spots that the spots table {sp.name} does not hold: {unknown[:10]}."
            )
        used = set(src.tolist()) | set(dst.tolist())
        name = f"{sp} + {ep.name}"
    else:
        if table["tm"].isna().all():
            raise ValueError(
                f"{sp} has no TRACK_ID column (or it is empty) and no edges table was "
                "given: the spots cannot be linked."
            )
        tracked = table[table["tm"].notna()].sort_values(["tm", "t", "spot_id"])
        dup = tracked.duplicated(["tm", "t"])
        if dup.any():
            r = tracked[dup].iloc[0]
            raise ValueError(
                f"{sp}: track {int(r.tm)} has several spots in frame {int(r.t)} (a "
                "division); pass the edges table (edges=) to say which spot links to which."
            )
        links = []
        for _, sub in tracked.groupby("tm", sort=True):
            ids = sub["spot_id"].tolist()
            links += list(zip(ids[:-1], ids[1:]))
        used = set(tracked["spot_id"].tolist())
        name = str(sp)
    report = {
        "n_spots": len(table),
        "n_spots_used": len(used),
        "spots_not_in_tracks": len(table) - len(used),
    }
    sub = table[table["spot_id"].isin(used)].copy()
    if sub.empty:
        raise ValueError(f"{name}: no spot belongs to a track.")
    comp = _components(sub["spot_id"].tolist(), links)
    tm = sub["tm"].to_numpy()
    if np.isnan(tm).any():  # unknown TRACK_ID: number the linked groups after the known ones
        base = int(np.nanmax(tm)) + 1 if np.isfinite(tm).any() else 0
        fill = np.array([base + comp[s] for s in sub["spot_id"].tolist()], dtype=float)
        tm = np.where(np.isnan(tm), fill, tm)
    sub.insert(2, "trackmate_track_id", tm.astype(np.int64))
    sub = sub.drop(columns="tm")
    report["n_tracks"] = int(len(set(tm.tolist())))
    report["n_tracks_not_used"] = 0
    movie_path = None
    if movie is not None and movie is not False:
        movie, movie_path = _as_movie(movie, "movie")
    else:
        movie = None
    return _finish(name, sub.reset_index(drop=True), links, merges=merges, movie=movie,
                   movie_path=movie_path, cal=cal, image={}, report=report,
                   stacklevel=stacklevel + 1)


def _is_csv(path):
    p = Path(path)
    if p.suffix.lower() in (".csv", ".tsv", ".txt"):
        return True
    if p.suffix.lower() == ".xml":
        return False
    try:
        with open(p, "rb") as fh:
            head = fh.read(256).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError:
        return False
    return not head.startswith(b"<")


def load_trackmate(
    path,
    movie=None,
    *,
    edges=None,
    masks=None,
    all_tracks=False,
    merges="end",
    features=None,
    units=None,
    horizon=None,
    frames="all",
    first_generation=False,
    unknown="drop",
    crop_size=40,
    output_size=20,
    pixel_size=None,
    crop_size_um=None,
    frame_interval=None,
    segmentation="auto",
    border="drop",
    merged="drop",
    center="mask",
    channel=None,
    segmentation_channel=None,
    normalize="percentile",
    percentiles=(1.0, 99.99),
):
    """Build a fate dataset from a TrackMate session file or CSV export.

    :func:`read_trackmate` (or :func:`read_trackmate_csv` for a ``.csv``
    file) followed by :func:`~ai4cellfate.datasets.make_fate_dataset`, the
    code path of :func:`~ai4cellfate.datasets.load_ctc`: a TrackMate file and
    a CTC folder holding the same movie, positions and lineage give the same
    dataset. Fate labels, horizons and censoring are those of the CTC reader.
    The file's calibration is used: positions are converted to pixels with
    its pixel size, which is also passed on as ``pixel_size`` (for
    ``crop_size_um`` and the table's ``area_um2``) when it is in a length
    unit, and its frame interval as ``frame_interval`` (in seconds). When
    the XML's ``BasicSettings`` analysed fewer frames than the movie has, the
    movie ends at the last frame analysed (cells still tracked there are
    censored there, not lost).

    Parameters
    ----------
    path : str or path-like
        A TrackMate XML file, or a spots table ``.csv`` (with ``edges``).
    movie : None, str, path-like, array-like or FrameSequence, default=None
        The movie. Default, for an XML file: the one it names (``ImageData``
        folder and filename, else the filename beside the XML); a missing
        movie is an error naming the paths tried. A CSV export needs it.
    edges : str or path-like, default=None
        TrackMate's edges table, with a spots table ``path``.
    masks : str, path-like, array of shape (T, H, W) or FrameSequence, default=None
        Nucleus label images (e.g. those a label-image detector tracked); a
        TIFF path is read like the movie.
    all_tracks, merges, features : see :func:`read_trackmate`
        Which tracks (``FilteredTracks`` by default), merge handling
        (``"end"``), spot features copied into the table.
    units : str, default=None
        For CSV files: see :func:`read_trackmate_csv`.
    horizon, frames, first_generation, unknown : see :func:`make_fate_dataset`
        Label and sample selection (defaults as :func:`load_ctc`).
    crop_size, output_size, crop_size_um, border, merged, center
        See :func:`make_fate_dataset`.
    pixel_size : float, default=None
        Micrometres per pixel, for ``crop_size_um`` and ``area_um2``.
        Default: the file's calibration when it is in a length unit. For a
        CSV file in a length unit it is needed (it converts the positions).
    frame_interval : float, default=None
        Seconds between frames, stored in the dataset (``horizon`` stays in
        frames). Default: the XML's ``timeinterval`` in its time unit (for a
        CSV file: ``POSITION_T / FRAME`` when that is constant).
    segmentation : {"auto", "masks", "otsu", None}, default="auto"
        As :func:`make_fate_dataset`: ``"auto"`` uses ``masks`` where given,
        else a local Otsu segmentation.
    channel, segmentation_channel : see :func:`make_fate_dataset`
        For multi-channel movies.
    normalize, percentiles : see :func:`make_fate_dataset`

    Returns
    -------
    FateDataset
        ``meta["source"]`` names the files, ``meta["trackmate"]`` holds the
        reader's report (divisions, merges, gaps, ...; lists capped at 100),
        the calibration and the frames analysed.

    Raises
    ------
    ValueError
        For a bad option (checked before any file is read), a file that is
        not a TrackMate export, positions outside the movie; see
        :func:`read_trackmate`.
    FileNotFoundError
        For a missing file or movie.

    Examples
    --------
    The documentation's "From TrackMate" page has a complete example; in short:

    >>> from ai4cellfate.datasets import load_trackmate
    >>> data = load_trackmate("experiment.xml", horizon=24)  # doctest: +SKIP
    >>> data = load_trackmate("spots.csv", "movie.tif", edges="edges.csv",
    ...                       pixel_size=0.65, horizon=24)   # doctest: +SKIP
    """
    _check_choice(segmentation, "segmentation", SEGMENTATIONS)
    _check_choice(center, "center", CENTERS)
    _check_choice(merges, "merges", MERGES)
    _check_positive(frame_interval, "frame_interval", "s")
    _check_options(  # the pixel size may come from the file
        horizon=horizon, frames=frames, first_generation=first_generation, unknown=unknown,
        crop_size=crop_size, output_size=output_size, pixel_size=pixel_size,
        crop_size_um=crop_size_um, border=border, channel=channel,
        segmentation_channel=segmentation_channel, normalize=normalize,
        percentiles=percentiles, merged=merged, pixel_size_later=True,
    )
    if segmentation == "masks" and masks is None:
        raise ValueError("segmentation='masks' needs masks to be given.")
    p = _check_path(path, "path")
    csv = edges is not None or _is_csv(p)
    if csv:
        if all_tracks:
            raise ValueError(
                "all_tracks is for TrackMate XML files; a CSV export holds the tracks "
                "it was exported with."
            )
        if movie is None or movie is False:
            raise ValueError(
                f"{p} is a CSV export, which does not name its movie: pass movie= (an "
                "array or the path of the TIFF)."
            )
        tm = _read_trackmate_csv(p, edges, movie=movie, pixel_size=pixel_size, units=units,
                                 merges=merges, features=features, stacklevel=3)
    else:
        if units is not None:
            raise ValueError("units is for CSV exports; an XML file states its own units.")
        if movie is False:
            raise ValueError("load_trackmate needs the movie; movie=False reads none.")
        tm = _read_trackmate(p, movie, all_tracks=all_tracks, merges=merges,
                             features=features, stacklevel=3)
    cal = tm.calibration
    file_px = cal.get("pixel_size")
    if pixel_size is None:
        pixel_size = file_px
    elif not csv and file_px is not None and not math.isclose(pixel_size, file_px, rel_tol=1e-3):
        warnings.warn(
            f"pixel_size={pixel_size:g} um differs from the file's calibration "
            f"({file_px:g} um per pixel); it is used for the crop geometry, the positions "
            "are converted with the file's.",
            UserWarning, stacklevel=2,
        )
    if frame_interval is None:
        frame_interval = cal.get("frame_interval")
    if crop_size_um is not None and pixel_size is None:
        raise ValueError(
            f"crop_size_um needs the pixel size: {p} is calibrated in "
            f"{cal.get('spatial_units')!r}, not a length unit; pass pixel_size= (um per pixel)."
        )
    movie = tm.movie
    analysed = tm.image.get("frames")
    n_keep = None
    if analysed is not None:
        n_keep = max(int(analysed[1]), int(tm.tracks["t"].max())) + 1
        if n_keep < movie.shape[0]:
            movie = _first_frames(movie, n_keep)
        else:
            n_keep = None
    mask_source = None
    if masks is not None:
        masks, mask_path = _as_movie(masks, "masks")
        mask_source = mask_path or "array"
        if n_keep is not None:
            masks = _first_frames(masks, n_keep)
    data = make_fate_dataset(
        movie, tm.tracks, masks, lineage=tm.lineage, horizon=horizon, frames=frames,
        first_generation=first_generation, unknown=unknown, crop_size=crop_size,
        output_size=output_size, pixel_size=pixel_size, crop_size_um=crop_size_um,
        frame_interval=frame_interval,
        segmentation=segmentation, border=border, merged=merged, center=center,
        channel=channel, segmentation_channel=segmentation_channel, normalize=normalize,
        percentiles=percentiles,
    )
    data.meta["source"] = {
        "format": "trackmate-csv" if csv else "trackmate",
        "path": str(p),
        "edges": str(edges) if edges is not None else None,
        "movie": tm.movie_path or "array",
        "masks": mask_source,
    }
    report = dict(tm.report)
    report["merges"] = {"count": report["merges"]["count"],
                        "spot_ids": _capped(report["merges"]["spot_ids"])}
    report["gaps"] = dict(report["gaps"], edges=_capped(report["gaps"]["edges"]))
    report["cut_edges"] = _capped(report["cut_edges"])
    data.meta["trackmate"] = {
        "report": report,
        "calibration": dict(cal),
        "frames_analysed": analysed,
        "movie_truncated_to": n_keep,
    }
    return data
