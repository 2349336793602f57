"""Movies read one frame at a time, with missing frames allowed."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

__all__ = ["FrameSequence"]


def _tiff_shape_dtype(path):
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        return tuple(int(s) for s in series.shape), np.dtype(series.dtype)


def _read_tiff(path):
    import tifffile

    return tifffile.imread(path)


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
        stack) or an array. All frames must have the same shape.
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
        if isinstance(first, np.ndarray):
            frame_shape, dtype = first.shape, first.dtype
        else:
            frame_shape, dtype = _tiff_shape_dtype(first)
        if len(frame_shape) not in (2, 3):
            raise ValueError(
                "frames must be 2-D images (H, W) or channel stacks (C, H, W); "
                f"frame {self.available[0]} has shape {frame_shape}."
            )
        self._frame_shape = tuple(int(s) for s in frame_shape)
        self.dtype = np.dtype(dtype)
        if check_shapes:
            for t, src in self._sources.items():
                shape = src.shape if isinstance(src, np.ndarray) else _tiff_shape_dtype(src)[0]
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
                f"{name} must be an array of shape (T, H, W) or (T, C, H, W), or a "
                f"FrameSequence, got {type(movie).__name__}."
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
