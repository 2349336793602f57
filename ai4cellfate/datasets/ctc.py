"""Cell Tracking Challenge (CTC) reader.

A CTC sequence folder holds, for sequence ``NN``::

    NN/tTTT.tif                   raw frames (2-D, 8- or 16-bit)
    NN_GT/TRA/man_trackTTT.tif    tracking markers, label = track id
    NN_GT/TRA/man_track.txt       lineage: "label start end parent" per track
    NN_GT/SEG/man_segTTT.tif      gold-truth segmentation (some frames)
    NN_ST/SEG/man_segTTT.tif      silver-truth segmentation (optional)

Frame numbers may have 3 or 4 digits. Copies with missing frames are read as
they are: the frames that exist are used and what is missing is reported.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ._frames import FrameSequence, read_tiff
from ._lineage import check_lineage
from .tracks import (
    CENTERS,
    _check_choice,
    _check_options,
    _check_positive,
    make_fate_dataset,
)

__all__ = ["CTCSequence", "read_ctc", "load_ctc"]

CTC_SEGMENTATIONS = ("auto", "gt", "st", "otsu", None)
_RAW = re.compile(r"^t(\d{3,4})\.tiff?$")
_TRA = re.compile(r"^man_track(\d{3,4})\.tiff?$")
_SEG = re.compile(r"^man_seg(\d{3,4})\.tiff?$")


@dataclass(eq=False)
class CTCSequence:
    """One CTC sequence in the generic representation (frames read lazily).

    Attributes
    ----------
    movie : FrameSequence
        Raw frames ``(T, H, W)``; may have gaps.
    tracks : pandas.DataFrame
        ``track_id, t, y, x, parent_id, marker_area``: one row per tracking
        marker, the position being the marker's centroid.
    lineage : pandas.DataFrame
        ``track_id, start, end, parent_id`` from ``man_track.txt``
        (``parent_id`` -1 for none).
    masks : FrameSequence or None
        Nucleus label images (labels are not track ids), per the
        ``segmentation`` asked for; ``None`` when none are used.
    missing : dict
        Counts of frames: ``n_frames``, ``raw``, ``markers``, ``masks`` (frames
        present), ``raw_and_markers`` (frames that can give samples).
    path : str
        The sequence's parent folder.
    sequence : str
        The two-digit sequence name.
    pixel_size : float or None
        Micrometres per pixel from the raw frames' metadata (CTC frames often
        carry it in their resolution tags, e.g. 0.645 for Fluo-N2DL-HeLa).
    frame_interval : float or None
        Seconds between frames from the same metadata (rarely present).
    """

    movie: FrameSequence
    tracks: pd.DataFrame
    lineage: pd.DataFrame
    masks: FrameSequence | None
    missing: dict = field(default_factory=dict)
    path: str = ""
    sequence: str = ""
    pixel_size: float | None = None
    frame_interval: float | None = None


def _sequence_name(sequence):
    if isinstance(sequence, (int, np.integer)) and not isinstance(sequence, bool):
        if sequence < 0:
            raise ValueError(f"sequence must be a non-negative number, got {sequence}.")
        return f"{int(sequence):02d}"
    if isinstance(sequence, str) and re.fullmatch(r"\d{1,3}", sequence):
        return f"{int(sequence):02d}"
    raise ValueError(f"sequence must be a number such as '01' or 2, got {sequence!r}.")


def _numbered(folder, pattern):
    if not folder.is_dir():
        return {}
    out = {}
    for name in os.listdir(folder):
        m = pattern.match(name)
        if m:
            out[int(m.group(1))] = folder / name
    return dict(sorted(out.items()))


def _read_lineage(path):
    try:
        raw = pd.read_csv(path, sep=r"\s+", header=None, comment="#", dtype=float)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty: a CTC lineage needs one line per track.") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise ValueError(f"{path} is not a CTC lineage (label start end parent): {exc}") from None
    if raw.shape[1] != 4:
        raise ValueError(
            f"{path} must have 4 columns (label start end parent), has {raw.shape[1]}."
        )
    raw.columns = ["track_id", "start", "end", "parent_id"]
    return check_lineage(raw, name=str(path))


def _marker_positions(t, path, shape, known):
    lab = read_tiff(path)
    if lab.shape != shape:
        raise ValueError(
            f"{path} has shape {lab.shape}, the raw frames have shape {shape} "
            "(only 2-D CTC data is supported)."
        )
    flat = lab.ravel()
    nz = np.flatnonzero(flat)
    if len(nz) == 0:
        return None
    which = flat[nz].astype(np.int64)
    counts = np.bincount(which)
    ids = np.flatnonzero(counts)
    sy = np.bincount(which, weights=(nz // shape[1]).astype(np.float64))
    sx = np.bincount(which, weights=(nz % shape[1]).astype(np.float64))
    unknown = [int(i) for i in ids if int(i) not in known]
    if unknown:
        raise ValueError(
            f"{path} has marker labels that man_track.txt does not list: {unknown[:10]}."
        )
    return pd.DataFrame(
        {
            "track_id": ids.astype(np.int64),
            "t": t,
            "y": sy[ids] / counts[ids],
            "x": sx[ids] / counts[ids],
            "marker_area": counts[ids].astype(np.int64),
        }
    )


def read_ctc(path, sequence="01", *, segmentation="auto"):
    """Read a Cell Tracking Challenge sequence into the generic representation.

    Pixels are not loaded: the movie and masks are :class:`FrameSequence`
    objects read frame by frame. The tracking markers are read once to get
    each nucleus' position (the marker centroid). Missing frames are allowed;
    a :class:`UserWarning` gives their counts.

    Parameters
    ----------
    path : str or path-like
        Folder holding ``NN/`` and ``NN_GT/`` (e.g. ``Fluo-N2DL-HeLa``).
    sequence : str or int, default="01"
        Sequence number, ``"01"``, ``"02"``, or ``2``.
    segmentation : {"auto", "gt", "st", "otsu", None}, default="auto"
        Which nucleus masks to attach: ``"auto"`` the gold truth
        (``NN_GT/SEG``) where it exists and the silver truth (``NN_ST/SEG``)
        otherwise; ``"gt"`` or ``"st"`` only that one; ``"otsu"`` or ``None``
        none.

    Returns
    -------
    CTCSequence
        ``movie``, ``tracks``, ``lineage``, ``masks``, ``missing``.

    Raises
    ------
    ValueError
        If the folder is not CTC-shaped (no ``NN/tTTT.tif`` frames, no
        ``NN_GT/TRA/man_track.txt``), the lineage names unknown parents or
        markers carry labels it does not list, or image shapes differ.

    Examples
    --------
    >>> import tempfile, numpy as np, tifffile
    >>> from pathlib import Path
    >>> from ai4cellfate.datasets import read_ctc
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "01").mkdir(); (root / "01_GT" / "TRA").mkdir(parents=True)
    >>> for t in (0, 1, 2):
    ...     tifffile.imwrite(root / "01" / f"t{t:03d}.tif", np.zeros((32, 32), np.uint16))
    ...     marker = np.zeros((32, 32), np.uint16); marker[9:12, 19:22] = 1
    ...     tifffile.imwrite(root / "01_GT" / "TRA" / f"man_track{t:03d}.tif", marker)
    >>> _ = (root / "01_GT" / "TRA" / "man_track.txt").write_text("1 0 2 0\\n")
    >>> seq = read_ctc(root, "01")
    >>> seq.movie.shape, seq.tracks[["track_id", "t", "y", "x"]].values[0].tolist()
    ((3, 32, 32), [1.0, 0.0, 10.0, 20.0])
    """
    return _read_ctc(path, sequence, segmentation=segmentation)


def _read_ctc(path, sequence, *, segmentation, stacklevel=3):
    """:func:`read_ctc`, warning ``stacklevel`` frames up (the user's call)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or path-like, got {type(path).__name__}.")
    name = _sequence_name(sequence)
    _check_choice(segmentation, "segmentation", CTC_SEGMENTATIONS)
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"path {str(root)!r} is not a folder.")
    raw_dir, tra_dir = root / name, root / f"{name}_GT" / "TRA"
    lineage_file = tra_dir / "man_track.txt"
    raw_files = _numbered(raw_dir, _RAW)
    problems = []
    if not raw_files:
        problems.append(f"no raw frames {name}/tNNN.tif")
    if not lineage_file.is_file():
        problems.append(f"no lineage {name}_GT/TRA/man_track.txt")
    if problems:
        found = sorted(p.name for p in root.iterdir())[:12]
        raise ValueError(
            f"path {str(root)!r} is not a CTC folder for sequence {name!r}: "
            + "; ".join(problems)
            + f". Found: {found}."
        )
    marker_files = _numbered(tra_dir, _TRA)
    if not marker_files:
        raise ValueError(
            f"path {str(root)!r} is not a CTC folder for sequence {name!r}: no "
            f"tracking markers {name}_GT/TRA/man_trackNNN.tif."
        )
    gt_files = _numbered(root / f"{name}_GT" / "SEG", _SEG)
    st_files = _numbered(root / f"{name}_ST" / "SEG", _SEG)
    if segmentation == "gt" and not gt_files:
        raise ValueError(f"segmentation='gt' but {name}_GT/SEG has no man_segNNN.tif.")
    if segmentation == "st" and not st_files:
        raise ValueError(f"segmentation='st' but {name}_ST/SEG has no man_segNNN.tif.")

    lineage = _read_lineage(lineage_file)
    n_frames = 1 + max(
        int(lineage["end"].max()), max(raw_files), max(marker_files)
    )
    movie = FrameSequence(raw_files, n_frames=n_frames)
    if movie.ndim != 3:
        raise ValueError(
            f"only 2-D CTC data is supported; {raw_files[movie.available[0]]} has "
            f"shape {movie.shape[1:]}."
        )
    shape = movie.shape[1:]
    if segmentation == "auto":
        mask_files = {**st_files, **gt_files}
    elif segmentation == "gt":
        mask_files = gt_files
    elif segmentation == "st":
        mask_files = st_files
    else:
        mask_files = {}
    masks = None
    if mask_files:
        masks = FrameSequence(dict(sorted(mask_files.items())), n_frames=n_frames)
        if masks.shape != movie.shape:
            raise ValueError(
                f"segmentation masks have shape {masks.shape[1:]}, the raw frames "
                f"{shape}."
            )

    known = set(lineage["track_id"].tolist())
    parts = [_marker_positions(t, f, shape, known) for t, f in marker_files.items()]
    parts = [p for p in parts if p is not None]
    tracks = pd.concat(parts, ignore_index=True) if parts else None
    if tracks is None:
        raise ValueError(f"{name}_GT/TRA has no tracking markers in any frame.")
    parent = lineage.set_index("track_id")["parent_id"]
    tracks.insert(4, "parent_id", parent.loc[tracks["track_id"]].to_numpy())

    both = set(raw_files) & set(marker_files)
    missing = {
        "n_frames": n_frames,
        "raw": len(raw_files),
        "markers": len(marker_files),
        "masks": len(mask_files),
        "raw_and_markers": len(both),
    }
    if len(raw_files) < n_frames or len(marker_files) < n_frames:
        warnings.warn(
            f"CTC sequence {name} in {str(root)!r} is incomplete: raw frames missing "
            f"for {n_frames - len(raw_files)} of {n_frames} frames, tracking markers "
            f"for {n_frames - len(marker_files)} of {n_frames}; the {len(both)} frames "
            "with both can give samples (nothing is interpolated).",
            UserWarning,
            stacklevel=stacklevel,
        )
    return CTCSequence(
        movie=movie,
        tracks=tracks,
        lineage=lineage,
        masks=masks,
        missing=missing,
        path=str(root),
        sequence=name,
        pixel_size=movie.pixel_size,
        frame_interval=movie.frame_interval,
    )


def load_ctc(
    path,
    sequence="01",
    *,
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
    normalize="percentile",
    percentiles=(1.0, 99.99),
):
    """Build a fate dataset from a Cell Tracking Challenge sequence.

    :func:`read_ctc` followed by :func:`make_fate_dataset`: every nucleus in
    every frame that has a raw image and tracking markers becomes a sample
    (``frames="all"``), centred on its marker's centroid, masked by its
    nucleus segmentation, labelled with its fate from ``man_track.txt``.

    The defaults use every cell (no first-generation filter), so a fate
    horizon gives a large dataset, e.g. on the CTC ``Fluo-N2DL-HeLa``
    sequence 02, ``horizon=24`` (12 h) gives thousands of samples with both
    classes. For the preprint's set-up (whole-movie fate, first frame of
    first-generation cells) pass ``horizon=None, frames="first",
    first_generation=True``.

    Parameters
    ----------
    path : str or path-like
        Folder holding ``NN/`` and ``NN_GT/``.
    sequence : str or int, default="01"
        Sequence number.
    horizon, frames, first_generation, unknown : see :func:`make_fate_dataset`
        Label and sample selection. Defaults: whole-movie fate, all frames,
        every cell, unknown outcomes dropped.
    crop_size, output_size, pixel_size, crop_size_um, border, merged, center
        See :func:`make_fate_dataset`. ``pixel_size`` defaults to the raw
        frames' metadata (resolution tags in cm or inch, ImageJ or OME), so
        ``crop_size_um`` works alone on data that carry it.
    frame_interval : float, default=None
        Seconds between frames, stored in the dataset; defaults to the raw
        frames' metadata. See :func:`make_fate_dataset`.
        Crop geometry. Defaults: 40-px windows centred on the nucleus mask's
        centroid (CTC tracking markers are often off-centre), binned to
        20 x 20; cells at the image edge dropped; nuclei whose mask merges
        several dropped (``merged="split"`` separates touching nuclei of the
        local Otsu segmentation instead).
    segmentation : {"auto", "gt", "st", "otsu", None}, default="auto"
        ``"auto"``: the CTC gold-truth mask where it exists, else silver
        truth, else (no mask for that frame, or no mask label at the nucleus)
        local Otsu segmentation. ``"gt"``/``"st"``: that segmentation only;
        samples without one are dropped. ``"otsu"``: local Otsu only.
        ``None``: no masking. The CTC segmentation labels are not track ids:
        the label under the marker centroid is used.
    normalize, percentiles : see :func:`make_fate_dataset`
        Default: one fixed linear intensity map per movie from its 1st and
        99.99th pixel percentiles to [0, 1] (not fitted on labels or cells).

    Returns
    -------
    FateDataset
        Crops, labels, lineage groups and a per-sample table; ``meta``
        records the parameters, the frame counts (``meta["ctc_frames"]``) and
        the samples dropped at each step.

    Raises
    ------
    ValueError
        For a folder that is not CTC-shaped, a bad option (checked before any
        file is read), a lineage naming unknown parents.

    Examples
    --------
    >>> import tempfile, numpy as np, tifffile
    >>> from pathlib import Path
    >>> from ai4cellfate.datasets import load_ctc
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "01").mkdir(); (root / "01_GT" / "TRA").mkdir(parents=True)
    >>> yy, xx = np.mgrid[:48, :48]
    >>> for t in range(4):
    ...     nuc = ((yy - 16) ** 2 + (xx - 16) ** 2 <= 25) | ((yy - 32) ** 2 + (xx - 32) ** 2 <= 25)
    ...     tifffile.imwrite(root / "01" / f"t{t:03d}.tif", (100 + 900 * nuc).astype(np.uint16))
    ...     m = np.zeros((48, 48), np.uint16); m[15:18, 15:18] = 1; m[31:34, 31:34] = 2
    ...     tifffile.imwrite(root / "01_GT" / "TRA" / f"man_track{t:03d}.tif", m)
    >>> _ = (root / "01_GT" / "TRA" / "man_track.txt").write_text("1 0 3 0\\n2 0 3 0\\n")
    >>> data = load_ctc(root, "01", crop_size=16, output_size=8)
    >>> data.X.shape, data.y.tolist()[:2], sorted(set(data.groups.tolist()))
    ((8, 8, 8), [0, 0], [1, 2])
    """
    name = _sequence_name(sequence)
    _check_choice(segmentation, "segmentation", CTC_SEGMENTATIONS)
    _check_choice(center, "center", CENTERS)
    _check_options(
        horizon=horizon,
        frames=frames,
        first_generation=first_generation,
        unknown=unknown,
        crop_size=crop_size,
        output_size=output_size,
        pixel_size=pixel_size,
        crop_size_um=crop_size_um,
        border=border,
        channel=None,
        segmentation_channel=None,
        normalize=normalize,
        percentiles=percentiles,
        merged=merged,
        pixel_size_later=True,
    )
    _check_positive(frame_interval, "frame_interval", "s")
    seq = _read_ctc(path, name, segmentation=segmentation)
    generic = {"auto": "auto", "gt": "masks", "st": "masks", "otsu": "otsu", None: None}
    data = make_fate_dataset(
        seq.movie,
        seq.tracks,
        seq.masks,
        lineage=seq.lineage,
        horizon=horizon,
        frames=frames,
        first_generation=first_generation,
        unknown=unknown,
        crop_size=crop_size,
        output_size=output_size,
        pixel_size=pixel_size,
        crop_size_um=crop_size_um,
        frame_interval=frame_interval,
        segmentation=generic[segmentation],
        border=border,
        merged=merged,
        center=center,
        normalize=normalize,
        percentiles=percentiles,
    )
    data.meta["source"] = {"format": "ctc", "path": seq.path, "sequence": seq.sequence}
    data.meta["ctc_frames"] = dict(seq.missing)
    data.meta["segmentation"] = segmentation
    return data
