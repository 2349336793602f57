"""From a tracked movie (frames + tracks table + optional masks) to a FateDataset.

The generic entry point for TrackMate exports, btrack, ilastik or one's own
pipeline; the Cell Tracking Challenge reader (:mod:`.ctc`) builds the same
representation and calls :func:`make_fate_dataset`.
"""

from __future__ import annotations

import logging
import numbers
import os
from collections import Counter

import numpy as np
import pandas as pd
from scipy import ndimage

from .._logging import progress
from ._fate import FateDataset
from ._frames import FrameSequence, _Movie, _warn, open_movie
from ._lineage import UNKNOWN, cell_table, check_columns, check_lineage, fate_labels

__all__ = ["make_fate_dataset"]

logger = logging.getLogger(__name__)

FRAMES = ("first", "all", "lifetime")
UNKNOWN_MODES = ("drop", "keep", "negative")
SEGMENTATIONS = ("auto", "masks", "otsu", None)
BORDERS = ("drop", "pad")
MERGED = ("drop", "split")
CENTERS = ("mask", "track")
NORMALIZE = ("percentile", "dtype", None)
N_TIME_POINTS = 11  # relative time points 0%, 10%, ..., 100% (spec section 1)
UNKNOWN_CLASS = 2  # label of unknown outcomes kept with unknown="keep"
FEATURES = ("mean_intensity", "total_intensity", "max_intensity", "std_intensity")
_MAX_PERCENTILE_FRAMES = 16


# ----------------------------------------------------------------- validation
def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and np.isfinite(v)


def _check_choice(value, name, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}.")


def _check_options(
    *,
    horizon,
    frames,
    first_generation,
    unknown,
    crop_size,
    output_size,
    pixel_size,
    crop_size_um,
    border,
    channel,
    segmentation_channel,
    normalize,
    percentiles,
    merged="drop",
    pixel_size_later=True,
):
    """Validate the crop / label options; return (crop_px, output_px, channel).

    With ``pixel_size_later=True`` (the default: the pixel size may still come
    from the movie's metadata) ``crop_size_um`` without ``pixel_size`` is
    accepted and ``crop_px`` / ``output_px`` are None: :func:`_crop_geometry`
    computes them once the pixel size is known. ``False`` demands it now.
    """
    if horizon is not None and (not _is_int(horizon) or horizon < 1):
        raise ValueError(f"horizon must be None or an integer >= 1, got {horizon!r}.")
    _check_choice(frames, "frames", FRAMES)
    if not isinstance(first_generation, (bool, np.bool_)):
        raise TypeError(f"first_generation must be a bool, got {first_generation!r}.")
    _check_choice(unknown, "unknown", UNKNOWN_MODES)
    _check_choice(border, "border", BORDERS)
    _check_choice(merged, "merged", MERGED)
    _check_choice(normalize, "normalize", NORMALIZE)
    _check_positive(pixel_size, "pixel_size", "um/px")
    if crop_size_um is not None:
        if not _is_real(crop_size_um) or crop_size_um <= 0:
            raise ValueError(
                f"crop_size_um must be a positive number (um), got {crop_size_um!r}."
            )
    elif not _is_int(crop_size) or crop_size < 4:
        raise ValueError(f"crop_size must be an integer >= 4 (pixels), got {crop_size!r}.")
    if output_size is not None and (not _is_int(output_size) or output_size < 4):
        raise ValueError(
            f"output_size must be None or an integer >= 4 (pixels), got {output_size!r}."
        )
    if crop_size_um is not None and pixel_size is None and pixel_size_later:
        crop_px = out_px = None
    else:
        crop_px, out_px = _crop_geometry(crop_size, crop_size_um, output_size, pixel_size)
    if channel is not None and not _is_int(channel):
        if isinstance(channel, (list, tuple)) and channel and all(_is_int(c) for c in channel):
            channel = [int(c) for c in channel]
        else:
            raise TypeError(
                f"channel must be None, an int or a list of ints, got {channel!r}."
            )
    if segmentation_channel is not None and not _is_int(segmentation_channel):
        raise TypeError(
            f"segmentation_channel must be None or an int, got {segmentation_channel!r}."
        )
    try:
        lo, hi = (float(p) for p in percentiles)
    except (TypeError, ValueError):
        raise ValueError(
            f"percentiles must be two numbers (low, high), got {percentiles!r}."
        ) from None
    if not 0 <= lo < hi <= 100:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles!r}.")
    return crop_px, out_px, channel


def _check_positive(value, name, unit):
    if value is not None and (not _is_real(value) or value <= 0):
        raise ValueError(f"{name} must be a positive number ({unit}), got {value!r}.")


def _crop_geometry(crop_size, crop_size_um, output_size, pixel_size, source=None):
    """Window and output sides in pixels (options already validated)."""
    if crop_size_um is not None:
        if pixel_size is None:
            raise ValueError(
                "crop_size_um needs pixel_size (um per pixel): pass pixel_size=, or use "
                "a movie whose metadata gives it (OME-TIFF, ImageJ TIFF with a "
                "calibration, TIFF resolution tags in cm or inch)"
                + (f"; {source} has none." if source else ".")
            )
        crop_px = int(round(crop_size_um / pixel_size))
        if crop_px < 4:
            raise ValueError(
                f"crop_size_um={crop_size_um} at pixel_size={pixel_size:g} is only "
                f"{crop_px} px; it must span at least 4 px."
            )
    else:
        crop_px = int(crop_size)
    out_px = crop_px if output_size is None else int(output_size)
    if out_px > crop_px:
        raise ValueError(
            f"output_size ({out_px}) must not exceed the crop size ({crop_px} px): "
            "crops are binned or resampled down, never up."
        )
    return crop_px, out_px


def _movie_source(movie):
    """The file a movie's metadata comes from, for messages (None for arrays)."""
    if isinstance(movie, FrameSequence):
        files = [s for s in movie._sources.values() if not isinstance(s, np.ndarray)]
        return os.fspath(files[0]) if files else None
    path = getattr(movie, "path", None)
    return os.fspath(path) if isinstance(path, (str, os.PathLike)) else None


def _reconcile(given, found, name, unit, source):
    """The value to use: an explicit ``given`` wins over the metadata's ``found``.

    Returns ``(value, origin)`` with origin ``"given"``, ``"metadata"`` or None;
    warns when both are known and differ by more than 1 %.
    """
    if found is None:
        return (None, None) if given is None else (float(given), "given")
    if given is None:
        return float(found), "metadata"
    if abs(float(given) - found) > 0.01 * found:
        _warn(
            f"{name}={given:g} {unit} disagrees with the {found:g} {unit} in the "
            f"metadata of {source or 'the movie'}; using the {name}={given:g} given."
        )
    return float(given), "given"


def calibration(movie, pixel_size=None, frame_interval=None):
    """Pixel size (um/px) and frame interval (s) for ``movie``, and where they come from.

    The movie's metadata (:class:`~ai4cellfate.datasets.FrameSequence` and
    TIFF movies carry ``pixel_size`` / ``frame_interval`` read from OME,
    ImageJ or resolution tags) unless an explicit value is given; an explicit
    value that differs from the metadata by more than 1 % wins with a
    :class:`UserWarning` naming both.

    Returns
    -------
    dict
        ``pixel_size``, ``pixel_size_source``, ``frame_interval``,
        ``frame_interval_source`` (sources ``"given"``, ``"metadata"`` or None).
    """
    _check_positive(pixel_size, "pixel_size", "um/px")
    _check_positive(frame_interval, "frame_interval", "s")
    source = _movie_source(movie)
    px, px_from = _reconcile(
        pixel_size, getattr(movie, "pixel_size", None), "pixel_size", "um/px", source
    )
    dt, dt_from = _reconcile(
        frame_interval, getattr(movie, "frame_interval", None), "frame_interval", "s",
        source,
    )
    return {
        "pixel_size": px,
        "pixel_size_source": px_from,
        "frame_interval": dt,
        "frame_interval_source": dt_from,
    }


def read_table(path, *, required=(), name=None, sep=None):
    """Read a CSV (or, by its extension, tab-separated) table, naming the file on errors.

    Parameters
    ----------
    path : str or path-like
        A ``.csv`` file (comma-separated) or ``.tsv`` / ``.tab`` (tabs).
    required : sequence of str
        Columns the table must have. When they are missing the message lists
        the columns found and, when the header looks like several names in one
        column, the separator the file seems to use.
    name : str, default=None
        What the table is, for messages (defaults to the path).
    sep : str, default=None
        Separator; defaults to the extension's.

    Returns
    -------
    pandas.DataFrame
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or path-like, got {type(path).__name__}.")
    path = os.fspath(path)
    if sep is None:
        sep = "\t" if path.lower().endswith((".tsv", ".tab")) else ","
    try:
        table = pd.read_csv(path, sep=sep)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty: it is not a readable table.") from None
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path} is not a readable CSV table ({first}).") from None
    check_columns(table, required, f"{name} table {path}" if name else path)
    return table


def _check_channels(movie, channel, segmentation_channel):
    """Resolve channel selection against the movie; return (channels, seg_channel)."""
    n_c = movie.n_channels
    if n_c is None:
        if channel is not None and channel not in (0, [0]):
            raise ValueError(
                f"channel {channel!r} does not exist: the movie has one channel "
                f"(shape {movie.shape})."
            )
        if segmentation_channel not in (None, 0):
            raise ValueError(
                f"segmentation_channel {segmentation_channel} does not exist: the movie "
                "has one channel."
            )
        return None, None
    chans = list(range(n_c)) if channel is None else channel
    for c in [chans] if _is_int(chans) else chans:
        if not -n_c <= c < n_c:
            raise ValueError(
                f"channel {c} does not exist: the movie has {n_c} channels "
                f"(shape {movie.shape})."
            )
    chans = int(chans) % n_c if _is_int(chans) else [int(c) % n_c for c in chans]
    if segmentation_channel is None:
        segmentation_channel = chans if _is_int(chans) else chans[0]
    if not -n_c <= segmentation_channel < n_c:
        raise ValueError(
            f"segmentation_channel {segmentation_channel} does not exist: the movie "
            f"has {n_c} channels."
        )
    return chans, int(segmentation_channel) % n_c


def _check_tracks(tracks, movie, has_lineage):
    if not isinstance(tracks, pd.DataFrame):
        raise TypeError(
            "tracks must be a pandas DataFrame with columns track_id, t, y, x, "
            f"parent_id, got {type(tracks).__name__}."
        )
    required = ["track_id", "t", "y", "x"] + ([] if has_lineage else ["parent_id"])
    check_columns(
        tracks, required, "tracks",
        needs="track_id, t, y, x"
        + ("" if has_lineage else ", parent_id (NaN or -1 for none)"),
    )
    if len(tracks) == 0:
        raise ValueError("tracks is empty.")
    out = pd.DataFrame(index=tracks.index)
    for col in ("track_id", "t"):
        v = pd.to_numeric(tracks[col], errors="coerce").to_numpy(dtype=float)
        if not np.all(np.isfinite(v)) or not np.all(v == np.round(v)):
            raise ValueError(f"tracks.{col} must hold integers (no NaN).")
        out[col] = v.astype(np.int64)
    for col in ("y", "x"):
        v = pd.to_numeric(tracks[col], errors="coerce").to_numpy(dtype=float)
        if not np.all(np.isfinite(v)):
            raise ValueError(f"tracks.{col} must hold finite numbers (no NaN).")
        out[col] = v
    T = movie.n_frames
    H, W = movie.hw
    bad_t = (out["t"] < 0) | (out["t"] >= T)
    if bad_t.any():
        raise ValueError(
            f"tracks has {int(bad_t.sum())} row(s) with t outside the movie's "
            f"{T} frames (0..{T - 1}), e.g. t={int(out.loc[bad_t, 't'].iloc[0])}."
        )
    outside = (out["y"] < 0) | (out["y"] > H - 1) | (out["x"] < 0) | (out["x"] > W - 1)
    if outside.any():
        r = out[outside].iloc[0]
        raise ValueError(
            f"tracks has {int(outside.sum())} position(s) outside the {H} x {W} image, "
            f"e.g. track {int(r.track_id)} at t={int(r.t)}: y={r.y:g}, x={r.x:g}."
        )
    dup = out.duplicated(["track_id", "t"])
    if dup.any():
        r = out[dup].iloc[0]
        raise ValueError(
            f"tracks has {int(dup.sum())} duplicated (track_id, t) row(s), e.g. "
            f"track {int(r.track_id)} at t={int(r.t)}."
        )
    if not has_lineage:
        out["parent_id"] = tracks["parent_id"]
        nunique = out.groupby("track_id")["parent_id"].nunique(dropna=False)
        if (nunique > 1).any():
            raise ValueError(
                "tracks.parent_id must be constant within a track; tracks "
                f"{nunique[nunique > 1].index.tolist()[:10]} have several."
            )
    extra = [
        c for c in tracks.columns if c not in ("track_id", "t", "y", "x", "parent_id")
    ]
    for c in extra:
        out[c] = tracks[c]
    return out.reset_index(drop=True), extra


def _lineage_from_tracks(tracks):
    g = tracks.groupby("track_id", sort=True)
    return pd.DataFrame(
        {
            "track_id": g["t"].min().index.to_numpy(),
            "start": g["t"].min().to_numpy(),
            "end": g["t"].max().to_numpy(),
            "parent_id": g["parent_id"].first().to_numpy(),
        }
    )


def _check_tracks_in_lineage(tracks, lineage):
    known = set(lineage["track_id"].tolist())
    unknown = sorted(set(tracks["track_id"].unique().tolist()) - known)
    if unknown:
        raise ValueError(
            f"tracks has track ids that the lineage does not list: {unknown[:10]}."
        )
    lin = lineage.set_index("track_id")
    s = lin.loc[tracks["track_id"], "start"].to_numpy()
    e = lin.loc[tracks["track_id"], "end"].to_numpy()
    bad = (tracks["t"].to_numpy() < s) | (tracks["t"].to_numpy() > e)
    if bad.any():
        r = tracks[bad].iloc[0]
        raise ValueError(
            f"tracks has {int(bad.sum())} row(s) outside their track's frames in the "
            f"lineage, e.g. track {int(r.track_id)} at t={int(r.t)}."
        )


# ------------------------------------------------------------ sample selection
def _select_samples(tracks, cells, movie, *, frames, first_generation):
    """Candidate (track, frame) samples: frames with a raw image and a position."""
    cand = tracks[tracks["t"].isin(movie.available)]
    n_no_frame = len(tracks) - len(cand)
    n_not_first = 0
    if first_generation:
        first_frame = int(cells["cell_start"].min())
        c = cells.loc[cand["track_id"]]
        keep = ((c["generation"] == 0) & (c["cell_start"] == first_frame)).to_numpy()
        n_not_first = int((~keep).sum())
        cand = cand[keep]
    cand = cand.sort_values(["track_id", "t"], kind="stable")
    if frames == "all":
        out = cand.copy()
    elif frames == "first":
        out = cand.groupby(_cell_key(cand, cells), sort=False).head(1).copy()
    else:  # lifetime: 11 relative time points over the cell's observed frames
        key = _cell_key(cand, cells)
        pieces = []
        for _, sub in cand.groupby(key, sort=False):
            idx = np.round(np.linspace(0, len(sub) - 1, N_TIME_POINTS)).astype(int)
            piece = sub.iloc[idx].copy()
            piece["time_point"] = np.arange(N_TIME_POINTS)
            piece["rel_time"] = np.arange(N_TIME_POINTS) / (N_TIME_POINTS - 1)
            pieces.append(piece)
        out = pd.concat(pieces) if pieces else cand.iloc[:0].assign(time_point=0, rel_time=0.0)
    return out.reset_index(drop=True), n_no_frame, n_not_first


def _cell_key(cand, cells):
    """Identify a cell across gap-closing links: the id of its first segment."""
    return pd.Series(
        cells.loc[cand["track_id"], "cell_id"].to_numpy(), index=cand.index
    )


# ------------------------------------------------------------------- cropping
def _window(center, size):
    """Start of a ``size``-px window centred on ``center`` (max 0.5 px off)."""
    return int(np.floor(center - (size - 1) / 2 + 0.5))


def _nearest_label(labels, r, c, radius):
    """Label at (r, c), or the nearest nonzero label within ``radius`` px."""
    if labels[r, c]:
        return labels[r, c]
    H, W = labels.shape
    r0, r1 = max(r - radius, 0), min(r + radius + 1, H)
    c0, c1 = max(c - radius, 0), min(c + radius + 1, W)
    win = labels[r0:r1, c0:c1]
    rr, cc = np.nonzero(win)
    if len(rr) == 0:
        return 0
    d2 = (rr + r0 - r) ** 2 + (cc + c0 - c) ** 2
    i = np.argmin(d2)
    if d2[i] > radius**2:
        return 0
    return win[rr[i], cc[i]]


def _otsu_threshold(values):
    """Otsu's threshold of a 1-D sample, exact (no histogram binning).

    ``skimage.filters.threshold_otsu`` on the histogram of the distinct values
    (one bin per value, so no binning), returned as the midpoint between the
    two values it separates. With its default 256 bins the threshold of these
    smoothed crops drops by about 8% and lets the blurred rim into the mask.
    """
    from skimage.filters import threshold_otsu

    u, counts = np.unique(values, return_counts=True)
    if u.size < 2:
        return None
    t = threshold_otsu(hist=(counts, u))
    i = min(int(np.searchsorted(u, t)), u.size - 2)
    return (u[i] + u[i + 1]) / 2.0


def _fill_holes(mask):
    """Fill the holes of a binary mask (background not connected to the edge)."""
    return ndimage.binary_fill_holes(mask)


def _otsu_labels(context, inner):
    """Components of the smoothed ``context`` above the Otsu threshold of ``inner``.

    The threshold comes from the crop window (``inner``, a pair of slices into
    ``context``) so that bright cells outside the crop do not raise it; the
    components are taken over the whole context so that a nucleus merged with
    a neighbour whose centre is outside the crop is still seen as merged.
    """
    smooth = ndimage.gaussian_filter(context.astype(np.float32), 1.0, mode="nearest")
    thr = _otsu_threshold(smooth[inner].ravel())
    if thr is None:
        return None
    labels, _ = ndimage.label(smooth > thr)
    return labels


def _split_touching(obj, own, others):
    """The part of binary ``obj`` nearer to ``own`` than to any of ``others``.

    Touching nuclei are split along the perpendicular bisectors of their
    tracked positions ((row, col) pairs), and the piece connected to ``own``
    is kept. Unlike a watershed of the distance transform this does not
    depend on where inside its nucleus a position lies (tracking markers are
    often off-centre).
    """
    rr, cc = np.indices(obj.shape, dtype=np.float64)
    d_own = (rr - own[0]) ** 2 + (cc - own[1]) ** 2
    nearest_other = np.full(obj.shape, np.inf)
    for r, c in others:
        np.minimum(nearest_other, (rr - r) ** 2 + (cc - c) ** 2, out=nearest_other)
    part = obj & (d_own < nearest_other)
    pieces, n = ndimage.label(part)
    if n <= 1:
        return part
    # keep the piece under (or nearest to) the own position
    lab = _nearest_label(pieces, int(own[0]), int(own[1]), max(obj.shape))
    return pieces == lab


def _downsample(img, out):
    """Bin (integer factor) or resample a (h, w[, c]) crop to (out, out[, c])."""
    n = img.shape[0]
    if n == out:
        return img
    if n % out == 0:
        f = n // out
        shp = (out, f, out, f) + img.shape[2:]
        return img.reshape(shp).mean(axis=(1, 3))
    from skimage.transform import resize

    return resize(
        img, (out, out) + img.shape[2:], order=1, anti_aliasing=True, preserve_range=True
    )


def _percentile_frames(frames_used):
    """Up to 16 evenly spaced frames of those sampled, to estimate the range."""
    avail = sorted(frames_used)
    take = np.linspace(0, len(avail) - 1, min(len(avail), _MAX_PERCENTILE_FRAMES))
    return {avail[int(i)] for i in np.unique(np.round(take))}


def make_fate_dataset(
    movie,
    tracks,
    masks=None,
    *,
    lineage=None,
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
    """Crop nuclei from a tracked movie and label each crop with its fate.

    For each selected (track, frame) sample: a window centred on the nucleus
    is cut from that frame, the background is zeroed with the nucleus mask,
    the window is binned or resampled to ``output_size`` (a masked average:
    each output pixel is the mean of the nucleus pixels it covers, and is
    kept where the nucleus covers at least half of it), and the sample gets
    a fate label from the lineage (method-spec section 1). The movie is read
    one frame at a time, so memory holds a few frames plus the crops.

    Parameters
    ----------
    movie : array of shape (T, H, W) or (T, C, H, W), FrameSequence, or path
        The raw movie. Any array-like with ``shape`` and ``movie[t]`` works
        (numpy, ``numpy.memmap``, zarr, ``tifffile.memmap``); a
        :class:`FrameSequence` reads frames from files and may have gaps; a
        path names one TIFF file (ImageJ hyperstack ``TYX``/``TCYX``,
        OME-TIFF, or a plain ``(T, H, W)`` / ``(T, C, H, W)`` stack), read
        one frame at a time, whose metadata give the pixel size and frame
        interval. Z stacks are refused. Only frames that exist and hold a
        tracked position become samples.
    tracks : pandas.DataFrame or path
        A table, or a CSV file holding one (``.tsv`` for tabs), with one row
        per tracked nucleus and frame: ``track_id``, ``t`` (frame
        index), ``y``, ``x`` (nucleus centre in pixels, row and column), and
        ``parent_id`` (the mother's ``track_id`` for a daughter; NaN or a
        negative value for none, also 0 when no track has id 0). Each track is
        one branch: a dividing cell's track ends at its last frame before the
        division and the daughters are new tracks. A track with one child is
        taken as the same cell found again after a gap. Extra columns (e.g.
        TrackMate features) are copied into the result's table.
    masks : array of shape (T, H, W), FrameSequence, or path, default=None
        Integer label images (0 = background). The labels need not be track
        ids: a sample uses the label under its position (or the nearest within
        a few pixels). Frames may be missing (FrameSequence).
    lineage : pandas.DataFrame or path, default=None
        ``track_id, start, end, parent_id``: the full extent and parent of
        every track, when ``tracks`` does not hold every frame (e.g. the CTC
        ``man_track.txt``). Defaults to what ``tracks`` shows; ``tracks``'
        own ``parent_id`` is then not needed.
    horizon : int, default=None
        ``None``: fate over the whole movie (the preprint): 1 if the cell
        divides, 0 if it is still present at the last frame without dividing.
        An integer H: 1 if the cell divides within H frames of the sampled
        frame (its daughters appear by ``t + H``), 0 if it is still present
        at ``t + H`` without having divided.
    frames : {"all", "first", "lifetime"}, default="all"
        Which frames of a cell become samples: every frame with an image and
        a position; the first such frame; or the 11 relative time points of
        its lifetime, ``round(linspace(0, n - 1, 11))`` over its ``n``
        observed frames (columns ``time_point`` 0..10 and ``rel_time``).
    first_generation : bool, default=False
        Keep only cells present in the first tracked frame of the movie and
        not born by division (the preprint's filter). Off by default so that
        ``frames="all"`` with a horizon uses every cell.
    unknown : {"drop", "keep", "negative"}, default="drop"
        Samples whose outcome is unknown (the track ends without dividing
        before the horizon or the movie's end: it left the field, was lost, or
        died; or the horizon runs past the movie's end): drop them (counted in
        ``meta["dropped"]``), keep them as class 2, or call them fate 0 (the
        preprint counted cell death as fate 0).
    crop_size : int, default=40
        Window side in pixels. Ignored when ``crop_size_um`` is given.
    output_size : int or None, default=20
        Side of the returned crops. A divisor of the window side bins
        (e.g. 40 -> 20 averages 2 x 2 blocks); other sizes resample with
        anti-aliasing. ``None`` keeps the window size.
    pixel_size : float, default=None
        Micrometres per pixel. Defaults to what the movie's metadata say
        (OME ``PhysicalSizeX``, an ImageJ calibration, TIFF resolution tags in
        cm or inch). A value
        given that differs from the metadata by more than 1 % is used, with a
        warning naming both. Needed by ``crop_size_um``; adds ``area_um2`` to
        the table; stored as ``FateDataset.pixel_size``.
    crop_size_um : float, default=None
        Window side in micrometres (the preprint's field is about 25 um), so
        the model sees the same field whatever the magnification.
    frame_interval : float, default=None
        Seconds between frames; defaults to the movie's metadata (OME
        ``TimeIncrement``, ImageJ ``finterval``), with the same rule as
        ``pixel_size``. Stored as ``FateDataset.frame_interval``; ``horizon``
        stays in frames.
    segmentation : {"auto", "masks", "otsu", None}, default="auto"
        How the nucleus mask is found. ``"masks"``: the given masks only
        (samples in frames without a mask, or with no label near their
        position, are dropped as ``no_mask``). ``"otsu"``: a local
        segmentation: the window is smoothed (Gaussian, sigma 1 px),
        thresholded by Otsu's method, holes filled, and the connected
        component under the nucleus centre is kept. ``"auto"``: the masks
        where they exist and cover the position, Otsu otherwise. ``None``:
        no masking (the whole window, no merge check).
    border : {"drop", "pad"}, default="drop"
        Cells whose window crosses the image edge are dropped (counted) or
        zero-padded (table column ``padded``).
    center : {"mask", "track"}, default="mask"
        Where the window is centred: on the centroid of the nucleus mask
        (tracking markers, e.g. the CTC's, are often off-centre), or on the
        tracked position. Without masking (``segmentation=None``) always the
        tracked position. The table records both (``y``, ``x`` and
        ``crop_y``, ``crop_x``).
    merged : {"drop", "split"}, default="drop"
        A nucleus whose mask also holds another tracked position (a mask
        merging several nuclei) is dropped and counted (``merged``), as in
        the preprint. ``"split"``: for the local Otsu segmentation only,
        touching nuclei are separated instead along the perpendicular
        bisectors of their tracked positions (``mask_source``
        ``"otsu_split"``, counted in ``meta["split_merged"]``); given masks
        that merge nuclei are still dropped.
    channel : int or list of int, default=None
        For a (T, C, H, W) movie: the channel(s) to crop. An int gives crops
        ``(n, h, w)``; ``None`` (all) or a list gives ``(n, h, w, c)``.
    segmentation_channel : int, default=None
        Channel thresholded by Otsu segmentation; defaults to the first
        cropped channel.
    normalize : {"percentile", "dtype", None}, default="percentile"
        Intensity scaling of the crops, never fitted on labels or samples.
        ``"percentile"``: one fixed linear map per movie (per channel) taking
        the ``percentiles`` of the pixel values, estimated from up to 16
        evenly spaced frames, to 0 and 1, then clipped to [0, 1].
        ``"dtype"``: divide by the integer dtype's maximum (e.g. 65535).
        ``None``: raw intensities as float32 (put
        :class:`~ai4cellfate.preprocessing.MaxNormalizer` or
        :class:`~ai4cellfate.preprocessing.IntensityStretch` in a pipeline).
        Background stays exactly 0 in every case.
    percentiles : (float, float), default=(1.0, 99.99)
        Low and high percentiles for ``normalize="percentile"``.

    Returns
    -------
    FateDataset
        ``X`` float32 ``(n, s, s)`` or ``(n, s, s, c)`` with ``s`` the output
        size; ``y`` int64; ``groups`` the root lineage id of each sample;
        ``table`` with, per sample: ``track_id``, ``t``, ``y``, ``x`` (the
        tracked position), ``crop_y``, ``crop_x`` (the window's centre),
        ``parent_id``, ``cell_id`` (first track segment of the cell, the same
        across gap-closing links), ``root_id``, ``generation``, ``cell_start``,
        ``cell_end``, ``division_frame`` (-1 if none), ``label``,
        ``label_reason`` (``divides``, ``no_division``,
        ``divides_after_horizon``, ``track_ends``, ``movie_ends``),
        ``mask_source`` (``masks``, ``otsu``, ``otsu_split``, ``none``),
        ``padded``, the
        measurements ``area`` (px) and ``mean_intensity``,
        ``total_intensity``, ``max_intensity``, ``std_intensity`` of the raw
        (unnormalised) pixels inside the mask at full resolution (suffixed
        ``_c0``, ``_c1``... per channel for multi-channel crops), and the
        extra columns of ``tracks``. ``meta["dropped"]`` counts the samples
        dropped at each step.

    Raises
    ------
    ValueError
        Before any work, for: an option out of range; tracks outside the
        image or the movie's frames; a lineage naming unknown parents; masks
        whose shape differs from the movie's; a channel that does not exist;
        no sample left.

    Examples
    --------
    Two nuclei in a 12-frame synthetic movie; track 1 divides into 3 and 4 at
    frame 6, track 2 stays until the end:

    >>> import numpy as np, pandas as pd
    >>> from ai4cellfate.datasets import make_fate_dataset
    >>> yy, xx = np.mgrid[:64, :64]
    >>> blob = lambda cy, cx: 1000.0 * ((yy - cy) ** 2 + (xx - cx) ** 2 <= 36)
    >>> movie = np.stack([blob(20, 20) + blob(44, 40) for _ in range(12)])
    >>> rows = [(1, t, 20, 20, -1) for t in range(6)]
    >>> rows += [(2, t, 44, 40, -1) for t in range(12)]
    >>> rows += [(d, t, 20, 20, 1) for d in (3, 4) for t in range(6, 12)]
    >>> tracks = pd.DataFrame(rows, columns=["track_id", "t", "y", "x", "parent_id"])
    >>> data = make_fate_dataset(movie, tracks, frames="first", first_generation=True,
    ...                          crop_size=16, output_size=8, segmentation="otsu")
    >>> data.X.shape, data.y.tolist(), data.table["area"].tolist()
    ((2, 8, 8), [1, 0], [109, 109])
    """
    _, _, channel = _check_options(
        horizon=horizon,
        frames=frames,
        first_generation=first_generation,
        unknown=unknown,
        crop_size=crop_size,
        output_size=output_size,
        pixel_size=pixel_size,
        crop_size_um=crop_size_um,
        border=border,
        channel=channel,
        segmentation_channel=segmentation_channel,
        normalize=normalize,
        percentiles=percentiles,
        merged=merged,
        pixel_size_later=True,
    )
    _check_choice(segmentation, "segmentation", SEGMENTATIONS)
    _check_choice(center, "center", CENTERS)
    _check_positive(frame_interval, "frame_interval", "s")
    movie = open_movie(movie)
    cal = calibration(movie, pixel_size, frame_interval)
    pixel_size = cal["pixel_size"]
    crop_px, out_px = _crop_geometry(
        crop_size, crop_size_um, output_size, pixel_size, _movie_source(movie)
    )
    if isinstance(tracks, (str, os.PathLike)):
        tracks = read_table(tracks, required=("track_id", "t", "y", "x"), name="tracks")
    if isinstance(lineage, (str, os.PathLike)):
        lineage = read_table(
            lineage, required=("track_id", "start", "end", "parent_id"), name="lineage"
        )
    masks = open_movie(masks)
    mv = _Movie(movie, "movie")
    if not (np.issubdtype(mv.dtype, np.number) or mv.dtype == bool):
        raise TypeError(f"movie must hold numbers, got dtype {mv.dtype}.")
    if normalize == "dtype" and not np.issubdtype(mv.dtype, np.integer):
        raise ValueError(
            f"normalize='dtype' needs an integer movie, got dtype {mv.dtype}; use "
            "'percentile' or None."
        )
    chans, seg_chan = _check_channels(mv, channel, segmentation_channel)
    mk = None
    if masks is not None:
        mk = _Movie(masks, "masks")
        if mk.n_channels is not None or mk.shape != (mv.n_frames, *mv.hw):
            raise ValueError(
                f"masks must have shape (T, H, W) = {(mv.n_frames, *mv.hw)} to match "
                f"the movie {mv.shape}, got {mk.shape}."
            )
        if not (np.issubdtype(mk.dtype, np.integer) or mk.dtype == bool):
            raise TypeError(f"masks must hold integer labels, got dtype {mk.dtype}.")
    elif segmentation == "masks":
        raise ValueError("segmentation='masks' needs masks to be given.")
    trk, extra = _check_tracks(tracks, mv, lineage is not None)
    if lineage is None:
        lin = check_lineage(_lineage_from_tracks(trk), "tracks")
    else:
        lin = check_lineage(lineage, "lineage")
        _check_tracks_in_lineage(trk, lin)
    cells = cell_table(lin)
    last_frame = mv.n_frames - 1

    # 1. samples and labels (no pixels read yet)
    samples, n_no_frame, n_not_first = _select_samples(
        trk, cells, mv, frames=frames, first_generation=first_generation
    )
    dropped = Counter()
    dropped["not_first_generation"] = n_not_first
    if len(samples):
        label, reason = fate_labels(
            cells, samples["track_id"].to_numpy(), samples["t"].to_numpy(),
            horizon=horizon, last_frame=last_frame,
        )
    else:
        label, reason = np.zeros(0, np.int64), np.zeros(0, object)
    unk = label == UNKNOWN
    if unknown == "drop":
        for r, c in Counter(reason[unk]).items():
            dropped[f"unknown_{r}"] = c
        samples, label, reason = samples[~unk], label[~unk], reason[~unk]
    elif unknown == "keep":
        label[unk] = UNKNOWN_CLASS
    else:
        label[unk] = 0
    samples = samples.assign(label=label, label_reason=reason).reset_index(drop=True)

    # 2. pixels, frame by frame
    single = mv.n_channels is None or _is_int(chans)
    n_out_c = 1 if single else len(chans)
    X = np.zeros((len(samples), out_px, out_px, n_out_c), dtype=np.float32)
    feats = np.full((len(samples), len(FEATURES), n_out_c), np.nan)
    area = np.zeros(len(samples), dtype=np.int64)
    keep = np.zeros(len(samples), dtype=bool)
    padded = np.zeros(len(samples), dtype=bool)
    crop_yx = np.full((len(samples), 2), np.nan)
    source = np.full(len(samples), "none", dtype=object)
    inmask = np.zeros((len(samples), out_px, out_px), dtype=bool)
    range_frames = (
        _percentile_frames(samples["t"].unique()) if normalize == "percentile" else set()
    )
    range_values = []
    H, W = mv.hw
    radius = max(2, crop_px // 8)
    s_t = samples["t"].to_numpy()
    s_y = samples["y"].to_numpy(dtype=float)
    s_x = samples["x"].to_numpy(dtype=float)
    s_id = samples["track_id"].to_numpy()
    by_frame = pd.Series(np.arange(len(samples))).groupby(s_t).indices
    pos_by_frame = trk.groupby("t").indices
    t_track = trk["track_id"].to_numpy()
    t_yx = trk[["y", "x"]].to_numpy()
    for t in progress(sorted(by_frame), desc="prepare: cropping", unit="frames"):
        idx = by_frame[t]
        frame = mv.get(t)
        if mv.n_channels is None:
            img = frame[None]
            seg_img = frame
        else:
            img = frame[[chans]] if _is_int(chans) else frame[chans]
            seg_img = frame[seg_chan]
        if t in range_frames:
            range_values.append(img[:, ::3, ::3].reshape(img.shape[0], -1))
        labels = None
        if mk is not None and segmentation in ("auto", "masks") and t in mk.available:
            labels = mk.get(t)
        rows = pos_by_frame[t]
        pos_track = t_track[rows]
        pr = np.clip(np.round(t_yx[rows, 0]).astype(int), 0, H - 1)
        pc = np.clip(np.round(t_yx[rows, 1]).astype(int), 0, W - 1)
        if labels is not None:
            cell_lab = [_nearest_label(labels, r, c, radius) for r, c in zip(pr, pc)]
            lab_count = Counter(int(v) for v in cell_lab if v)
        for i in idx:
            cy, cx = s_y[i], s_x[i]
            rr, cc = int(np.clip(round(cy), 0, H - 1)), int(np.clip(round(cx), 0, W - 1))
            # context: the window around the tracked position plus a margin, so
            # that a nucleus merged with a neighbour whose centre lies outside
            # the window is still seen as merged, and the window can move to
            # the nucleus' centre
            r0, c0 = _window(cy, crop_px), _window(cx, crop_px)
            m = crop_px // 2
            gr0, gr1 = max(r0 - m, 0), min(r0 + crop_px + m, H)
            gc0, gc1 = max(c0 - m, 0), min(c0 + crop_px + m, W)
            obj = None  # the nucleus, in context coordinates
            if segmentation is not None and labels is not None:
                lab = _nearest_label(labels, rr, cc, radius)
                if lab:
                    if lab_count[int(lab)] > 1:
                        dropped["merged"] += 1
                        continue
                    obj = labels[gr0:gr1, gc0:gc1] == lab
                    source[i] = "masks"
            if obj is None and segmentation == "masks":
                dropped["no_mask"] += 1
                continue
            if obj is None and segmentation is not None:  # otsu, or auto without a mask
                inner = (
                    slice(max(r0, 0) - gr0, min(r0 + crop_px, H) - gr0),
                    slice(max(c0, 0) - gc0, min(c0 + crop_px, W) - gc0),
                )
                comp = _otsu_labels(seg_img[gr0:gr1, gc0:gc1], inner)
                lab = 0 if comp is None else _nearest_label(comp, rr - gr0, cc - gc0, radius)
                if not lab:
                    dropped["no_mask"] += 1
                    continue
                others = np.flatnonzero(
                    (pr >= gr0) & (pr < gr1) & (pc >= gc0) & (pc < gc1) & (pos_track != s_id[i])
                )
                mates = [
                    j for j in others
                    if _nearest_label(comp, pr[j] - gr0, pc[j] - gc0, radius) == lab
                ]
                obj = _fill_holes(comp == lab)
                source[i] = "otsu"
                if mates:
                    if merged == "drop":
                        dropped["merged"] += 1
                        continue
                    seeds = [(pr[j] - gr0, pc[j] - gc0) for j in mates]
                    obj = _split_touching(obj, (rr - gr0, cc - gc0), seeds)
                    source[i] = "otsu_split"
            if obj is not None and not obj.any():
                dropped["no_mask"] += 1
                continue
            if obj is not None and center == "mask":
                ys, xs = np.nonzero(obj)
                cy, cx = ys.mean() + gr0, xs.mean() + gc0
                r0, c0 = _window(cy, crop_px), _window(cx, crop_px)
            r1, c1 = r0 + crop_px, c0 + crop_px
            inside = r0 >= 0 and c0 >= 0 and r1 <= H and c1 <= W
            if not inside and border == "drop":
                dropped["border"] += 1
                continue
            padded[i] = not inside
            crop_yx[i] = (cy, cx)
            vr0, vr1, vc0, vc1 = max(r0, 0), min(r1, H), max(c0, 0), min(c1, W)
            sl = (slice(vr0 - r0, vr1 - r0), slice(vc0 - c0, vc1 - c0))
            win = np.zeros((n_out_c, crop_px, crop_px), dtype=np.float64)
            win[(slice(None), *sl)] = img[:, vr0:vr1, vc0:vc1]
            mask = np.zeros((crop_px, crop_px), dtype=bool)
            if obj is None:  # no masking: the part of the window in the image
                mask[sl] = True
            else:
                a0, a1 = max(vr0, gr0), min(vr1, gr1)
                b0, b1 = max(vc0, gc0), min(vc1, gc1)
                if a1 > a0 and b1 > b0:
                    mask[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0] = obj[
                        a0 - gr0 : a1 - gr0, b0 - gc0 : b1 - gc0
                    ]
            keep[i] = True
            vals = win[:, mask]
            area[i] = vals.shape[1]
            if vals.shape[1]:
                feats[i, 0] = vals.mean(axis=1)
                feats[i, 1] = vals.sum(axis=1)
                feats[i, 2] = vals.max(axis=1)
                feats[i, 3] = vals.std(axis=1)
            # masked average: an output pixel is the mean of the nucleus pixels
            # it covers (no background intensity leaks into the edge), kept
            # where the nucleus covers at least half of it
            fmask = mask.astype(np.float64)
            num = _downsample(np.moveaxis(win * fmask, 0, -1), out_px)
            cover = _downsample(fmask, out_px)
            small_mask = cover >= 0.5
            safe = np.where(small_mask, cover, 1.0)[..., None]
            X[i] = np.where(small_mask[..., None], num / safe, 0.0)
            inmask[i] = small_mask

    # intensity scaling: fixed per movie, never fitted on samples or labels
    if normalize == "percentile" and range_values:
        vals = np.concatenate(range_values, axis=1).astype(np.float64)
        lo, hi = np.percentile(vals, percentiles, axis=1)
        hi = np.where(hi > lo, hi, lo + 1.0)
    elif normalize == "dtype":
        lo, hi = np.zeros(n_out_c), np.full(n_out_c, float(np.iinfo(mv.dtype).max))
    else:
        lo, hi = np.zeros(n_out_c), np.ones(n_out_c)
    if normalize is not None:
        scaled = np.clip((X - lo.astype(np.float32)) / (hi - lo).astype(np.float32), 0, 1)
        X = np.where(inmask[..., None], scaled, np.float32(0)).astype(np.float32)

    # 3. assemble
    samples = samples.assign(
        mask_source=source, padded=padded, crop_y=crop_yx[:, 0], crop_x=crop_yx[:, 1]
    )
    X, samples, feats, area = X[keep], samples[keep], feats[keep], area[keep]
    if len(samples) == 0:
        raise ValueError(
            "no sample left: "
            + (
                ", ".join(f"{k} {v}" for k, v in dropped.items() if v)
                or f"no tracked position lies in a frame of the movie ({n_no_frame} rows)"
            )
            + "."
        )
    if single:
        X = X[..., 0]
    c = cells.loc[samples["track_id"]]
    table = pd.DataFrame(
        {
            "track_id": samples["track_id"].to_numpy(),
            "t": samples["t"].to_numpy(),
            "y": samples["y"].to_numpy(),
            "x": samples["x"].to_numpy(),
            "crop_y": samples["crop_y"].to_numpy(),
            "crop_x": samples["crop_x"].to_numpy(),
            "parent_id": pd.array(
                [int(p) if p >= 0 else pd.NA for p in c["parent_id"]], dtype="Int64"
            ),
            "cell_id": c["cell_id"].to_numpy(),
            "root_id": c["root_id"].to_numpy(),
            "generation": c["generation"].to_numpy(),
            "cell_start": c["cell_start"].to_numpy(),
            "cell_end": c["cell_end"].to_numpy(),
            "division_frame": c["division_frame"].to_numpy(),
        }
    )
    for col in ("time_point", "rel_time"):
        if col in samples:
            table[col] = samples[col].to_numpy()
    table["label"] = samples["label"].to_numpy()
    table["label_reason"] = samples["label_reason"].to_numpy()
    table["mask_source"] = samples["mask_source"].to_numpy()
    table["padded"] = samples["padded"].to_numpy()
    table["area"] = area
    if pixel_size is not None:
        table["area_um2"] = area * float(pixel_size) ** 2
    for k, name in enumerate(FEATURES):
        if n_out_c == 1:
            table[name] = feats[:, k, 0]
        else:
            for j in range(n_out_c):
                table[f"{name}_c{chans[j]}"] = feats[:, k, j]
    for col in extra:
        if col not in table:
            table[col] = samples[col].to_numpy()
    dropped = {k: int(v) for k, v in dropped.items() if v}
    meta = {
        "horizon": horizon,
        "frames": frames,
        "first_generation": bool(first_generation),
        "unknown": unknown,
        "crop_size_px": crop_px,
        "crop_size_um": crop_size_um,
        "output_size_px": out_px,
        **cal,
        "segmentation": segmentation,
        "border": border,
        "merged": merged,
        "center": center,
        "channel": channel,
        "normalize": normalize,
        "intensity_range": [np.atleast_1d(lo).tolist(), np.atleast_1d(hi).tolist()],
        "n_frames": mv.n_frames,
        "dropped": dropped,
        "split_merged": int(np.sum(table["mask_source"] == "otsu_split")),
        "positions_without_frame": int(n_no_frame),
    }
    data = FateDataset(
        X=X,
        y=samples["label"].to_numpy(np.int64),
        groups=c["root_id"].to_numpy(np.int64),
        table=table,
        meta=meta,
        pixel_size=pixel_size,
        frame_interval=cal["frame_interval"],
    )
    logger.info("fate dataset: %s", data.summary().replace("\n", "; "))
    return data
