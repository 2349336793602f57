"""Movies read one frame at a time, with missing frames allowed."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import warnings
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

__all__ = ["FrameSequence", "TiffMovie", "tiff_info"]

# ---------------------------------------------------------------- TIFF files
# Every TIFF the readers open goes through tiff_info / read_tiff: one place
# that names the file when it cannot be read, refuses Z stacks and reads the
# pixel size and frame interval from the metadata.

_HERE = os.path.dirname(os.path.abspath(__file__))


def _warn(message, category=UserWarning):
    """Warn, attributing the warning to the first caller outside ai4cellfate.datasets."""
    frame, level = sys._getframe(1), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_HERE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


#: Length units to micrometres (OME-XML UnitsLength, ImageJ's "unit").
_LENGTH_UM = {
    "um": 1.0, "µm": 1.0, "μm": 1.0, "micron": 1.0, "microns": 1.0,
    "micrometer": 1.0, "micrometre": 1.0, "micrometers": 1.0, "micrometres": 1.0,
    "nm": 1e-3, "nanometer": 1e-3, "nanometre": 1e-3,
    "mm": 1e3, "millimeter": 1e3, "millimetre": 1e3,
    "cm": 1e4, "centimeter": 1e4, "centimetre": 1e4,
    "m": 1e6, "meter": 1e6, "metre": 1e6,
    "å": 1e-4, "angstrom": 1e-4, "pm": 1e-6,
    "in": 25400.0, "inch": 25400.0,
}
#: Time units to seconds (OME-XML UnitsTime, ImageJ's "tunit").
_TIME_S = {
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "ms": 1e-3, "msec": 1e-3, "millisecond": 1e-3, "milliseconds": 1e-3,
    "µs": 1e-6, "μs": 1e-6, "us": 1e-6, "microsecond": 1e-6, "microseconds": 1e-6,
    "ns": 1e-9,
    "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
}
#: Screen resolutions image editors write by default (dots per inch): no calibration.
_DEFAULT_DPI = (72.0, 96.0)


class TiffInfo(NamedTuple):
    """What the header of a TIFF file says (see :func:`tiff_info`)."""

    path: str
    shape: tuple
    dtype: np.dtype
    axes: str
    kind: str  # "ome", "imagej" or "tiff"
    pixel_size: float | None  # micrometres per pixel
    frame_interval: float | None  # seconds
    n_z: int  # Z planes (1: none)
    page_axes: str = "YX"  # axes of one page (one plane: "YX")


def _unit(text):
    """Normalise a unit name: ImageJ escapes the micro sign as \\u00B5."""
    if text is None:
        return ""
    text = str(text).strip()
    text = text.replace("\\u00B5", "µ").replace("\\u00b5", "µ").replace("\\u03BC", "µ")
    return text.lower()


def _positive(value):
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) and v > 0 else None


def _rational(tag_value):
    """A TIFF RATIONAL tag value (num, den) as a float; None if unusable."""
    try:
        num, den = tag_value
        return _positive(num / den) if den else None
    except (TypeError, ValueError, ZeroDivisionError):
        return _positive(tag_value)


def _page_resolution(page):
    """Pixels per unit along x (and y) from the XResolution/YResolution tags."""
    tags = page.tags
    x = _rational(tags["XResolution"].value) if "XResolution" in tags else None
    y = _rational(tags["YResolution"].value) if "YResolution" in tags else None
    unit = int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else 2
    return x, y, unit


def _square(x_um, y_um, path):
    """One pixel size from x and y; warn when the pixels are not square."""
    if x_um is None:
        return None
    if y_um is not None and abs(x_um - y_um) > 0.01 * max(x_um, y_um):
        _warn(
            f"{path} has non-square pixels ({x_um:g} x {y_um:g} um); using the x "
            f"size {x_um:g} um/px."
        )
    return x_um


def _ome_calibration(tif, path):
    """(pixel size um, frame interval s, SizeZ) from the OME-XML."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(tif.ome_metadata)
    except ET.ParseError:
        return None, None, 1
    pixels = root.find(".//{*}Image/{*}Pixels")
    if pixels is None:
        return None, None, 1
    a = pixels.attrib

    def length(name):
        v = _positive(a.get(name))
        factor = _LENGTH_UM.get(_unit(a.get(name + "Unit", "µm")))
        return None if v is None or factor is None else v * factor

    size = _square(length("PhysicalSizeX"), length("PhysicalSizeY"), path)
    dt = _positive(a.get("TimeIncrement"))
    factor = _TIME_S.get(_unit(a.get("TimeIncrementUnit", "s")))
    interval = None if dt is None or factor is None else dt * factor
    try:
        n_z = int(a.get("SizeZ", 1))
    except ValueError:
        n_z = 1
    return size, interval, n_z


def _imagej_calibration(tif, path):
    """(pixel size um, frame interval s, slices) from ImageJ metadata and tags."""
    meta = tif.imagej_metadata or {}
    factor = _LENGTH_UM.get(_unit(meta.get("unit")))
    size = None
    if factor is not None:
        x, y, _ = _page_resolution(tif.pages.first)
        size = _square(
            None if x is None else factor / x, None if y is None else factor / y, path
        )
    dt = _positive(meta.get("finterval"))
    tfactor = _TIME_S.get(_unit(meta.get("tunit", "s")))
    interval = None if dt is None or tfactor is None else dt * tfactor
    try:
        n_z = int(meta.get("slices", 1))
    except (TypeError, ValueError):
        n_z = 1
    return size, interval, n_z


def _tag_calibration(tif, path):
    """Pixel size from the resolution tags of a plain TIFF (e.g. a CTC frame).

    Only centimetre and inch units count: a resolution with no unit (what
    most writers put by default), 1 pixel per unit, or a screen default of
    72 or 96 dpi says nothing about the sample.
    """
    x, y, unit = _page_resolution(tif.pages.first)
    if unit not in (2, 3) or x is None or x == 1:
        return None
    if unit == 2 and any(abs(x - d) < 1e-6 for d in _DEFAULT_DPI):
        return None
    factor = 25400.0 if unit == 2 else 1e4
    return _square(factor / x, None if y is None or y == 1 else factor / y, path)


class _TiffLog(logging.Handler):
    """Collects what tifffile logs about a damaged file while it is opened."""

    _DAMAGE = re.compile(r"offset|corrupt|truncat|suspicious", re.IGNORECASE)

    def __init__(self):
        super().__init__(logging.ERROR)
        self.problems = []

    def emit(self, record):
        msg = record.getMessage()
        if self._DAMAGE.search(msg):
            self.problems.append(msg)


@contextlib.contextmanager
def _tiff_file(path):
    """``tifffile.TiffFile(path)``, with errors that name the file.

    A file that is not a TIFF, is truncated or has a damaged structure raises
    :class:`ValueError` saying so; a missing file keeps its
    :class:`FileNotFoundError`.
    """
    import tifffile

    path = os.fspath(path)
    log = logging.getLogger("tifffile")
    handler = _TiffLog()
    log.addHandler(handler)
    try:
        try:
            tif = tifffile.TiffFile(path)
        except (FileNotFoundError, IsADirectoryError, PermissionError, MemoryError):
            raise
        except Exception as exc:
            raise _unreadable(path, exc) from None
        with tif:
            try:
                series = tif.series[0]
                _check_extent(tif, series, path)
            except ValueError as exc:
                if str(exc).startswith(path):
                    raise
                raise _unreadable(path, exc) from None
            except (MemoryError, KeyboardInterrupt):
                raise
            except Exception as exc:
                raise _unreadable(path, exc) from None
            if handler.problems:
                raise _unreadable(path, handler.problems[0], damaged=True)
            yield tif, series
    finally:
        log.removeHandler(handler)


def _one_line(exc):
    if isinstance(exc, str):
        return exc.strip().splitlines()[0] if exc.strip() else "no detail"
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _unreadable(path, exc, *, damaged=False):
    why = "it is damaged or truncated " if damaged else ""
    return ValueError(f"{path} is not a readable TIFF file: {why}({_one_line(exc)}).")


def _check_extent(tif, series, path):
    """Refuse a file whose image data runs past its end (a truncated copy)."""
    size = os.path.getsize(path)
    if series.dataoffset is not None:
        end = int(series.dataoffset) + int(series.nbytes)
    else:
        end = 0
        for page in series.pages:
            if page is None:
                continue
            for off, n in zip(page.dataoffsets, page.databytecounts):
                end = max(end, int(off) + int(n))
    if end > size:
        raise ValueError(
            f"{path} is not a readable TIFF file: it is truncated (its image data "
            f"runs to byte {end}, the file has {size} bytes)."
        )


def tiff_info(path):
    """Shape, data type, axes and calibration of a TIFF file, from its header.

    Parameters
    ----------
    path : str or path-like
        A TIFF file: plain, ImageJ (hyperstack) or OME-TIFF.

    Returns
    -------
    TiffInfo
        ``path``, ``shape`` and ``axes`` of the first image series (as
        tifffile reads it: length-1 axes dropped), ``dtype``, ``kind``
        (``"ome"``, ``"imagej"`` or ``"tiff"``), ``pixel_size`` in
        micrometres per pixel and ``frame_interval`` in seconds (``None``
        where the file does not say), ``n_z`` the number of Z planes.

    Raises
    ------
    ValueError
        If the file is not a readable TIFF (the message names it).

    Notes
    -----
    The pixel size comes from ``PhysicalSizeX``/``PhysicalSizeY`` (with their
    units) in OME-XML; from the ImageJ ``unit`` and the XResolution /
    YResolution tags (pixels per unit) in an ImageJ TIFF; from the resolution
    tags with a centimetre or inch unit in a plain TIFF. A resolution with no
    unit, or in pixels, is no calibration. The frame interval comes from
    ``TimeIncrement`` (OME) or ``finterval`` (ImageJ).
    """
    with _tiff_file(path) as (tif, series):
        if tif.is_ome:
            kind = "ome"
            size, interval, n_z = _ome_calibration(tif, path)
        elif tif.is_imagej:
            kind = "imagej"
            size, interval, n_z = _imagej_calibration(tif, path)
        else:
            kind = "tiff"
            size, interval, n_z = _tag_calibration(tif, path), None, 1
        axes = str(series.axes)
        shape = tuple(int(s) for s in series.shape)
        if "Z" in axes:
            n_z = max(n_z, shape[axes.index("Z")])
        return TiffInfo(
            path=os.fspath(path),
            shape=shape,
            dtype=np.dtype(series.dtype),
            axes=axes,
            kind=kind,
            pixel_size=size,
            frame_interval=interval,
            n_z=max(int(n_z), 1),
            page_axes=str(series.keyframe.axes),
        )


def read_tiff(path, key=None):
    """Read a TIFF's first series (or the pages ``key`` of it), naming the file on errors."""
    with _tiff_file(path) as (tif, _):
        try:
            return tif.asarray(key=key, series=0)
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise _unreadable(path, exc, damaged=True) from None


def _refuse_z(info, what="movie"):
    """Z planes would be read as channels or frames: refuse them, saying so."""
    if info.n_z > 1:
        hint = ""
        if "T" not in info.axes:
            hint = (
                " If the planes are time points rather than Z, mark them as frames "
                f"(in ImageJ: Image > Properties, slices 1, frames {info.n_z})."
            )
        raise ValueError(
            f"{info.path} has {info.n_z} Z planes (axes {info.axes}, shape "
            f"{info.shape}); only 2-D {what}s are supported: save one plane or a "
            f"projection over Z (e.g. the maximum) first.{hint}"
        )


def _movie_axes(info):
    """Positions of the time and channel axes of a TIFF movie, and its shape.

    ImageJ and OME files say which axis is which (``T``, ``C``); a plain TIFF
    is taken as tifffile returns it, ``(T, H, W)`` or ``(T, C, H, W)``, as a
    numpy array of that shape would be. A trailing samples axis (RGB, ``YXS``)
    is the channel axis.
    """
    axes, shape = info.axes, info.shape
    _refuse_z(info)
    if axes[-2:] == "YX":
        lead, samples = axes[:-2], None
    elif axes[-3:] == "YXS":
        lead, samples = axes[:-3], len(axes) - 1
    else:
        raise ValueError(
            f"{info.path} has axes {axes} (shape {shape}); a movie needs its last "
            "two axes to be Y and X."
        )
    positions = list(range(len(lead)))
    if info.kind == "tiff":
        t_ax = positions[0] if positions else None
        c_ax = positions[1] if len(positions) > 1 else samples
        extra = positions[2:] + ([samples] if samples is not None and len(positions) > 1 else [])
    else:
        named = {a: i for i, a in enumerate(lead)}
        t_ax = named.get("T")
        c_axes = [named[a] for a in "CS" if a in named] + ([samples] if samples is not None else [])
        rest = [i for i in positions if i != t_ax and i not in c_axes]
        if t_ax is None and rest:
            t_ax = rest.pop(0)
        if not c_axes and rest:
            c_axes = [rest.pop(0)]
        c_ax = c_axes[0] if c_axes else None
        extra = rest + c_axes[1:]
    if extra:
        raise ValueError(
            f"{info.path} has axes {axes} (shape {shape}): more axes than time and "
            "channels; save it as (T, H, W) or (T, C, H, W), e.g. an ImageJ "
            "hyperstack TYX or TCYX."
        )
    return t_ax, c_ax


class TiffMovie:
    """A movie stored in one TIFF file, read one frame at a time.

    An ImageJ hyperstack (``TYX``, ``TCYX``), an OME-TIFF (any dimension
    order) or a plain multi-page TIFF (``(T, H, W)`` or ``(T, C, H, W)``
    as tifffile reads it), seen as an array of shape ``(T, H, W)`` or
    ``(T, C, H, W)``. Indexing ``movie[t]`` reads frame ``t``'s pages only.
    :func:`~ai4cellfate.datasets.make_fate_dataset` builds one when given a
    file name.

    Parameters
    ----------
    path : str or path-like
        The TIFF file.

    Attributes
    ----------
    shape : tuple of int
        ``(T, H, W)`` or ``(T, C, H, W)``.
    dtype : numpy.dtype
    pixel_size : float or None
        Micrometres per pixel, from the file's metadata (see :func:`tiff_info`).
    frame_interval : float or None
        Seconds between frames, from the file's metadata.
    path : str
    axes : str
        The axes as stored in the file (tifffile's letters).

    Raises
    ------
    ValueError
        If the file is not a readable TIFF, has Z planes, or has axes other
        than time, channels, Y and X.
    """

    def __init__(self, path):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or path-like, got {type(path).__name__}.")
        info = tiff_info(path)
        self.path = info.path
        self.axes = info.axes
        self.dtype = info.dtype
        self.pixel_size = info.pixel_size
        self.frame_interval = info.frame_interval
        t_ax, c_ax = _movie_axes(info)
        shape = info.shape
        self._t_ax, self._c_ax = t_ax, c_ax
        T = shape[t_ax] if t_ax is not None else 1
        hw = shape[-3:-1] if info.axes.endswith("S") else shape[-2:]
        self.shape = (T, *(() if c_ax is None else (shape[c_ax],)), *hw)
        n_lead = len(info.axes) - (3 if info.axes.endswith("S") else 2)
        self._lead = shape[:n_lead]
        # page by page when each page is one plane; else the whole file once
        self._paged = info.page_axes == "YX" and n_lead > 0
        self._data = None

    @property
    def ndim(self):
        return len(self.shape)

    def __len__(self):
        return self.shape[0]

    def _frame_pages(self, t):
        index = [0] * len(self._lead)
        if self._t_ax is not None:
            index[self._t_ax] = t
        if self._c_ax is None:
            return [int(np.ravel_multi_index(index, self._lead))]
        pages = []
        for c in range(self._lead[self._c_ax]):
            index[self._c_ax] = c
            pages.append(int(np.ravel_multi_index(index, self._lead)))
        return pages

    def _whole(self):
        if self._data is None:
            data = np.asarray(read_tiff(self.path))
            order = [a for a in (self._t_ax, self._c_ax) if a is not None]
            if self.axes.endswith("S") and self._c_ax == data.ndim - 1:
                order = [a for a in order if a != self._c_ax]
                data = np.moveaxis(data, -1, len(order))
                order = order + [len(order)]
            if self._t_ax is None:
                data = data[None]
                order = [0] + [a + 1 for a in order]
            data = np.moveaxis(data, order, list(range(len(order))))
            self._data = data.reshape(self.shape)
        return self._data

    def __getitem__(self, t):
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
            raise TypeError(f"TiffMovie is indexed by one frame index, got {t!r}.")
        t = int(t)
        if t < 0:
            t += self.shape[0]
        if not 0 <= t < self.shape[0]:
            raise IndexError(f"frame {t} is outside the movie's {self.shape[0]} frames.")
        if not self._paged:
            return self._whole()[t]
        pages = self._frame_pages(t)
        frame = np.asarray(read_tiff(self.path, key=pages if len(pages) > 1 else pages[0]))
        return frame.reshape(self.shape[1:])

    def __repr__(self):
        cal = f", pixel_size={self.pixel_size:g}" if self.pixel_size else ""
        return f"TiffMovie({self.path!r}, shape={self.shape}, dtype={self.dtype.name}{cal})"


def open_movie(movie):
    """A file name becomes a :class:`TiffMovie`; anything else is returned as is."""
    if isinstance(movie, (str, os.PathLike)):
        return TiffMovie(movie)
    return movie




def _frame_info(path):
    """Header of one frame's TIFF; Z stacks and RGB images refused."""
    info = tiff_info(path)
    _refuse_z(info, "frame")
    if len(info.shape) == 3 and info.axes.endswith("S"):
        raise ValueError(
            f"{info.path} is a colour (RGB) image (axes {info.axes}, shape {info.shape}); "
            "frames must be 2-D grey images or (C, H, W) channel stacks."
        )
    return info


def _read_tiff(path):
    return read_tiff(path)


class FrameSequence:
    """A movie whose frames are read on demand, one at a time; gaps allowed.

    A light, array-like view of a time-lapse movie stored as one image per
    frame (the Cell Tracking Challenge layout, most microscope exports) or of
    frames already in memory. Indexing ``movie[t]`` reads frame ``t`` only, so
    a long movie is never loaded whole. Frames that do not exist are allowed:
    :attr:`available` lists those that do, and indexing a missing one raises
    :class:`IndexError`.

    Parameters
    ----------
    frames : mapping of int to path or array
        ``{t: source}`` for every frame that exists, ``t >= 0``. A source is a
        path to a TIFF file (one 2-D image, or a ``(C, H, W)`` multi-channel
        stack; not a Z stack) or an array. All frames must have the same shape.
    n_frames : int, default=None
        Length of the movie, counting missing frames. Defaults to the last
        frame index plus one.
    check_shapes : bool, default=True
        Check at construction that every frame has the shape of the first
        (reading only the TIFF headers, about 2 ms a file), so that a wrong
        file is reported before any work rather than when it is reached.

    Attributes
    ----------
    available : tuple of int
        Sorted indices of the frames that exist.
    shape : tuple of int
        ``(n_frames, H, W)`` or ``(n_frames, C, H, W)``.
    dtype : numpy.dtype
        Data type of the frames.
    pixel_size : float or None
        Micrometres per pixel, from the metadata of the first TIFF frame
        (OME, ImageJ or resolution tags, see :func:`tiff_info`); ``None``
        when it does not say or the frames are arrays.
    frame_interval : float or None
        Seconds between frames, from the same metadata.

    Raises
    ------
    ValueError
        If a file is not a readable TIFF, has Z planes or is a colour (RGB)
        image (the message names it), or the frames' shapes differ.

    Examples
    --------
    >>> import numpy as np
    >>> from ai4cellfate.datasets import FrameSequence
    >>> movie = FrameSequence({0: np.zeros((8, 9)), 2: np.ones((8, 9))})
    >>> movie.shape, movie.available
    ((3, 8, 9), (0, 2))
    >>> float(movie[2].sum())
    72.0
    >>> 1 in movie
    False
    """

    def __init__(self, frames, n_frames=None, *, check_shapes=True):
        if not isinstance(frames, Mapping):
            raise TypeError(
                f"frames must be a mapping {{t: path or array}}, got {type(frames).__name__}."
            )
        if len(frames) == 0:
            raise ValueError("frames must name at least one frame, got an empty mapping.")
        sources = {}
        for t, src in frames.items():
            if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 0:
                raise ValueError(f"frames keys must be frame indices >= 0, got {t!r}.")
            if not isinstance(src, (str, os.PathLike, np.ndarray)):
                raise TypeError(
                    f"frames[{t}] must be a path or a numpy array, got {type(src).__name__}."
                )
            sources[int(t)] = src
        self._sources = dict(sorted(sources.items()))
        self.available = tuple(self._sources)
        last = self.available[-1]
        if n_frames is None:
            n_frames = last + 1
        if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)):
            raise TypeError(f"n_frames must be an int, got {type(n_frames).__name__}.")
        if n_frames <= last:
            raise ValueError(
                f"n_frames must exceed the last frame index {last}, got {n_frames}."
            )
        self._n_frames = int(n_frames)
        first = self._sources[self.available[0]]
        self.pixel_size = self.frame_interval = None
        if isinstance(first, np.ndarray):
            frame_shape, dtype = first.shape, first.dtype
        else:
            info = _frame_info(first)
            frame_shape, dtype = info.shape, info.dtype
        files = [src for src in self._sources.values() if not isinstance(src, np.ndarray)]
        if files:
            info = info if files[0] is first else _frame_info(files[0])
            self.pixel_size, self.frame_interval = info.pixel_size, info.frame_interval
        if len(frame_shape) not in (2, 3):
            raise ValueError(
                "frames must be 2-D images (H, W) or channel stacks (C, H, W); "
                f"frame {self.available[0]} has shape {frame_shape}."
            )
        self._frame_shape = tuple(int(s) for s in frame_shape)
        self.dtype = np.dtype(dtype)
        if check_shapes:
            for t, src in self._sources.items():
                shape = src.shape if isinstance(src, np.ndarray) else _frame_info(src).shape
                if tuple(shape) != self._frame_shape:
                    raise ValueError(
                        f"frame {t} ({self._describe(t)}) has shape {tuple(shape)}, frame "
                        f"{self.available[0]} ({self._describe(self.available[0])}) has "
                        f"shape {self._frame_shape}; all frames must have one shape."
                    )

    def _describe(self, t):
        src = self._sources[t]
        return "array" if isinstance(src, np.ndarray) else os.fspath(src)

    @property
    def shape(self):
        return (self._n_frames, *self._frame_shape)

    @property
    def ndim(self):
        return len(self.shape)

    def __len__(self):
        return self._n_frames

    def __contains__(self, t):
        return t in self._sources

    def __getitem__(self, t):
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
            raise TypeError(f"FrameSequence is indexed by one frame index, got {t!r}.")
        t = int(t)
        if t < 0:
            t += self._n_frames
        if t not in self._sources:
            raise IndexError(f"frame {t} is missing from this movie.")
        src = self._sources[t]
        frame = src if isinstance(src, np.ndarray) else _read_tiff(src)
        if frame.shape != self._frame_shape:
            raise ValueError(
                f"frame {t} ({self._describe(t)}) has shape {frame.shape}, the "
                f"movie's frames have shape {self._frame_shape}."
            )
        return frame

    def __repr__(self):
        return (
            f"FrameSequence(shape={self.shape}, dtype={self.dtype.name}, "
            f"available={len(self.available)}/{self._n_frames})"
        )


class _Movie:
    """Uniform access to an array-like movie or a FrameSequence."""

    def __init__(self, movie, name="movie"):
        if isinstance(movie, FrameSequence):
            self.available = frozenset(movie.available)
        elif hasattr(movie, "shape") and hasattr(movie, "__getitem__"):
            self.available = None  # every frame
        else:
            raise TypeError(
                f"{name} must be an array of shape (T, H, W) or (T, C, H, W), a "
                f"FrameSequence or a TIFF file name, got {type(movie).__name__}."
            )
        shape = tuple(int(s) for s in movie.shape)
        if len(shape) not in (3, 4):
            raise ValueError(
                f"{name} must have shape (T, H, W) or (T, C, H, W), got shape {shape}."
            )
        if min(shape) < 1:
            raise ValueError(f"{name} must not be empty, got shape {shape}.")
        self.movie = movie
        self.shape = shape
        self.n_frames = shape[0]
        self.hw = shape[-2:]
        self.n_channels = shape[1] if len(shape) == 4 else None
        self.dtype = np.dtype(movie.dtype)
        if self.available is None:
            self.available = frozenset(range(self.n_frames))

    def get(self, t):
        return np.asarray(self.movie[t])
