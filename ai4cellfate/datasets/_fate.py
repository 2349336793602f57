"""FateDataset: crops, fate labels, lineage groups and a per-sample table."""

from __future__ import annotations

import json
import numbers
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

from .._io import atomic_path

__all__ = ["FateDataset"]

_FORMAT = "ai4cellfate.FateDataset"
_FORMAT_VERSION = 1


def _jsonable(obj):
    """Convert numpy scalars / arrays / tuples inside ``obj`` to JSON types."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


@dataclass(eq=False, repr=False)
class FateDataset:
    """Single-cell crops with fate labels, lineage groups and a sample table.

    What :func:`~ai4cellfate.datasets.load_ctc` and
    :func:`~ai4cellfate.datasets.make_fate_dataset` return: the arrays
    ``CellFateAAE.fit`` takes, plus what is needed to split honestly
    (``groups``) and to compare with hand-picked features (``table``).

    Parameters
    ----------
    X : array-like of shape (n, h, w) or (n, h, w, c)
        Crops, stored as float32. Background (outside the nucleus mask) is 0.
    y : ndarray of shape (n,)
        Fate labels: 1 divides, 0 does not, 2 unknown outcome (only when
        unknown outcomes were kept).
    groups : ndarray of shape (n,)
        Root lineage id of each sample, for
        :class:`~sklearn.model_selection.GroupKFold`: samples of one lineage
        (a cell, its earlier and later frames, its relatives) are correlated.
    table : pandas.DataFrame
        One row per sample: ``track_id``, ``t``, ``y``, ``x`` (position in the
        movie), ``label``, ``label_reason`` and per-cell measurements
        (``area``, ``mean_intensity``, ...); see
        :func:`~ai4cellfate.datasets.make_fate_dataset`.
    meta : dict, default={}
        JSON-serialisable facts about how the dataset was made (parameters,
        counts of dropped samples, intensity range).
    pixel_size : float, default=None
        Micrometres per pixel of the movie the crops were cut from (given, or
        read from the movie's metadata); ``None`` when unknown.
    frame_interval : float, default=None
        Seconds between the movie's frames; ``None`` when unknown.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from ai4cellfate.datasets import FateDataset
    >>> rng = np.random.default_rng(0)
    >>> data = FateDataset(
    ...     X=rng.random((40, 20, 20), dtype=np.float32),
    ...     y=np.tile([0, 0, 0, 1], 10),
    ...     groups=np.repeat(np.arange(20), 2),
    ...     table=pd.DataFrame({"track_id": np.arange(40)}),
    ... )
    >>> len(data), data.class_counts()
    (40, {0: 30, 1: 10})
    >>> train, test = data.train_test_split(test_size=0.25, random_state=0)
    >>> len(train) + len(test) == 40
    True
    >>> set(train.groups) & set(test.groups)
    set()
    """

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    table: pd.DataFrame
    meta: dict = field(default_factory=dict)
    pixel_size: float | None = None
    frame_interval: float | None = None

    def __post_init__(self):
        try:
            self.X = np.asarray(self.X, dtype=np.float32)
        except (TypeError, ValueError):
            raise TypeError("X must be an array of numbers (it is stored as float32).") from None
        self.y = np.asarray(self.y)
        self.groups = np.asarray(self.groups)
        if self.X.ndim not in (3, 4):
            raise ValueError(
                f"X must have shape (n, h, w) or (n, h, w, c), got shape {self.X.shape}."
            )
        n = len(self.X)
        if self.y.shape != (n,):
            raise ValueError(f"y must have shape ({n},) to match X, got {self.y.shape}.")
        if self.groups.shape != (n,):
            raise ValueError(
                f"groups must have shape ({n},) to match X, got {self.groups.shape}."
            )
        if not isinstance(self.table, pd.DataFrame):
            raise TypeError(
                f"table must be a pandas DataFrame, got {type(self.table).__name__}."
            )
        if len(self.table) != n:
            raise ValueError(f"table must have {n} rows to match X, got {len(self.table)}.")
        if not isinstance(self.meta, dict):
            raise TypeError(f"meta must be a dict, got {type(self.meta).__name__}.")
        for name, unit in (("pixel_size", "um/px"), ("frame_interval", "s")):
            value = getattr(self, name)
            if value is None:
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, numbers.Real)
                or not np.isfinite(value)
                or value <= 0
            ):
                raise ValueError(
                    f"{name} must be None or a positive number ({unit}), got {value!r}."
                )
            setattr(self, name, float(value))

    def __len__(self):
        return len(self.y)

    def __repr__(self):
        return (
            f"FateDataset(n={len(self)}, X={self.X.shape} {self.X.dtype.name}, "
            f"classes={self.class_counts()}, groups={len(np.unique(self.groups))})"
        )

    def class_counts(self):
        """Number of samples per label.

        Returns
        -------
        dict
            ``{label: count}``, labels sorted.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from ai4cellfate.datasets import FateDataset
        >>> d = FateDataset(np.zeros((3, 4, 4)), np.array([1, 0, 1]),
        ...                 np.array([5, 5, 6]), pd.DataFrame(index=range(3)))
        >>> d.class_counts()
        {0: 1, 1: 2}
        """
        labels, counts = np.unique(self.y, return_counts=True)
        return {_jsonable(k): int(c) for k, c in zip(labels, counts)}

    def summary(self):
        """A short human-readable description.

        Returns
        -------
        str
            Samples, crop shape, class counts, lineage groups and, when known,
            how many candidate samples were dropped and why.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from ai4cellfate.datasets import FateDataset
        >>> d = FateDataset(np.zeros((3, 4, 4)), np.array([1, 0, 1]),
        ...                 np.array([5, 5, 6]), pd.DataFrame(index=range(3)))
        >>> print(d.summary())
        3 samples of shape (4, 4), float32; classes {0: 1, 1: 2}; 2 lineage groups
        """
        lines = [
            f"{len(self)} samples of shape {self.X.shape[1:]}, {self.X.dtype.name}; "
            f"classes {self.class_counts()}; {len(np.unique(self.groups))} lineage groups"
        ]
        scale = []
        if self.pixel_size is not None:
            scale.append(f"pixel size {self.pixel_size:g} um")
        if self.frame_interval is not None:
            scale.append(f"frame interval {self.frame_interval:g} s")
        if scale:
            lines.append("; ".join(scale))
        dropped = self.meta.get("dropped")
        if dropped:
            parts = ", ".join(f"{k} {v}" for k, v in dropped.items() if v)
            lines.append(f"dropped: {parts or 'none'}")
        return "\n".join(lines)

    def subset(self, index):
        """The samples at ``index`` as a new FateDataset.

        Parameters
        ----------
        index : array-like of int or bool
            Positions (or a boolean mask) of the samples to keep.

        Returns
        -------
        FateDataset
            Copies of the selected rows; ``meta`` is shared (shallow copy).

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from ai4cellfate.datasets import FateDataset
        >>> d = FateDataset(np.zeros((3, 4, 4)), np.array([1, 0, 1]),
        ...                 np.array([5, 5, 6]), pd.DataFrame(index=range(3)))
        >>> d.subset([0, 2]).y.tolist()
        [1, 1]
        """
        index = np.asarray(index)
        if index.dtype == bool:
            if index.shape != (len(self),):
                raise ValueError(
                    f"index as a boolean mask must have shape ({len(self)},), "
                    f"got {index.shape}."
                )
            index = np.flatnonzero(index)
        elif index.size and not np.issubdtype(index.dtype, np.integer):
            raise TypeError(f"index must hold integers or booleans, got {index.dtype}.")
        index = index.astype(np.intp, copy=False)
        return FateDataset(
            X=self.X[index],
            y=self.y[index],
            groups=self.groups[index],
            table=self.table.iloc[index].reset_index(drop=True),
            meta=dict(self.meta),
            pixel_size=self.pixel_size,
            frame_interval=self.frame_interval,
        )

    def train_test_split(self, test_size=0.2, *, random_state=None):
        """Split into train and test sets, stratified and by lineage group.

        All samples of one lineage group land on the same side, and each class
        is split in about the proportion ``test_size``. Groups are visited in
        random order (largest first) and each goes to the test set when that
        brings the test set's per-class counts closer to their targets, so the
        proportions are approximate when groups are large.

        Parameters
        ----------
        test_size : float, default=0.2
            Target fraction of each class in the test set, in (0, 1).
        random_state : int, RandomState instance or None, default=None
            Seed for the order in which groups are assigned.

        Returns
        -------
        train, test : FateDataset
            Two datasets with no lineage group in common.

        Raises
        ------
        ValueError
            If ``test_size`` is not in (0, 1), or the groups are too few or too
            large to give both sides samples.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from ai4cellfate.datasets import FateDataset
        >>> y = np.array([0, 0, 1, 0] * 25)
        >>> d = FateDataset(np.zeros((100, 4, 4)), y, np.arange(100) // 2,
        ...                 pd.DataFrame(index=range(100)))
        >>> train, test = d.train_test_split(0.2, random_state=0)
        >>> len(train), len(test), test.class_counts()
        (80, 20, {0: 15, 1: 5})
        """
        if (
            isinstance(test_size, bool)
            or not isinstance(test_size, numbers.Real)
            or not 0 < test_size < 1
        ):
            raise ValueError(f"test_size must be a float in (0, 1), got {test_size!r}.")
        rng = check_random_state(random_state)
        uniq, g_idx = np.unique(self.groups, return_inverse=True)
        if len(uniq) < 2:
            raise ValueError(
                f"a group-aware split needs at least 2 lineage groups, got {len(uniq)}."
            )
        classes, y_idx = np.unique(self.y, return_inverse=True)
        counts = np.zeros((len(uniq), len(classes)))
        np.add.at(counts, (g_idx, y_idx), 1)
        totals = counts.sum(axis=0)
        target = test_size * totals
        order = rng.permutation(len(uniq))
        order = order[np.argsort(-counts[order].sum(axis=1), kind="stable")]
        in_test = np.zeros(len(uniq), dtype=bool)
        current = np.zeros(len(classes))

        def cost(c):
            return np.sum(np.abs(c - target) / totals)

        for g in order:
            new = current + counts[g]
            if cost(new) < cost(current):
                in_test[g] = True
                current = new
        test_mask = in_test[g_idx]
        if test_mask.all() or not test_mask.any():
            raise ValueError(
                f"cannot split {len(uniq)} lineage groups into train and test with "
                f"test_size={test_size}: the groups are too few or too large."
            )
        return self.subset(~test_mask), self.subset(test_mask)

    # ------------------------------------------------------------------ I/O
    def save(self, path, *, overwrite=False):
        """Write the dataset to one ``.npz`` file (no pickle), atomically.

        The table is stored column by column and ``meta`` as JSON, so the file
        loads with ``numpy.load(allow_pickle=False)``. The file is written to
        a temporary name in the same folder and then renamed, so a crash never
        leaves a half-written file under ``path``.

        Parameters
        ----------
        path : str or path-like
            Destination file name, used as given (``.npz`` is conventional).
        overwrite : bool, default=False
            Replace an existing file. Otherwise an existing file raises
            :class:`FileExistsError`.

        Returns
        -------
        pathlib.Path
            The path written.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np, pandas as pd
        >>> from ai4cellfate.datasets import FateDataset
        >>> d = FateDataset(np.ones((2, 4, 4), np.float32), np.array([0, 1]),
        ...                 np.array([7, 8]), pd.DataFrame({"track_id": [7, 8]}))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     p = d.save(os.path.join(tmp, "d.npz"))
        ...     FateDataset.load(p).table["track_id"].tolist()
        [7, 8]
        """
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or path-like, got {type(path).__name__}.")
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(
                f"path {str(path)!r} exists; pass overwrite=True to replace it."
            )
        if not path.parent.is_dir():
            raise ValueError(f"path's folder {str(path.parent)!r} does not exist.")
        arrays = {"X": self.X, "y": self.y, "groups": self.groups}
        columns = []
        for i, name in enumerate(self.table.columns):
            col = self.table[name]
            dtype = str(col.dtype)
            key = f"table_{i}"
            info = {"name": str(name), "key": key, "dtype": dtype}
            if col.dtype.kind in "biufcmM" and not isinstance(
                col.dtype, pd.api.extensions.ExtensionDtype
            ):
                arrays[key] = col.to_numpy()
            elif col.dtype.kind in "iufb" or dtype in ("Int64", "Int32", "Float64", "boolean"):
                # pandas nullable: values as float with NaN for missing
                arrays[key] = col.astype("float64").to_numpy()
            else:
                null = col.isna().to_numpy()
                arrays[key] = np.asarray(
                    ["" if m else str(v) for v, m in zip(col.to_numpy(), null)], dtype=str
                )
                if null.any():
                    arrays[key + "_null"] = null
                    info["null_key"] = key + "_null"
            columns.append(info)
        header = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "columns": columns,
            "meta": _jsonable(self.meta),
            "pixel_size": self.pixel_size,
            "frame_interval": self.frame_interval,
        }
        arrays["header"] = np.asarray(json.dumps(header))
        with atomic_path(path, suffix=".tmp") as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        return path

    @classmethod
    def load(cls, path):
        """Read a dataset written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
            A ``.npz`` file written by :meth:`save`.

        Returns
        -------
        FateDataset

        Raises
        ------
        ValueError
            If the file is not a saved FateDataset, or is damaged: the message
            names the file and the array or header key at fault (arrays of
            Python objects are refused, never unpickled). Files written before
            ``pixel_size`` and ``frame_interval`` were stored load with both
            ``None``.

        Examples
        --------
        See :meth:`save`.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or path-like, got {type(path).__name__}.")
        if not zipfile.is_zipfile(path):
            raise ValueError(
                f"path {str(path)!r} is not a saved FateDataset (not an .npz archive)."
            )
        name = str(path)
        try:
            f = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{name} is not a readable .npz archive ({_one_line(exc)}).") from None
        with f:
            if "header" not in f.files:
                raise ValueError(
                    f"path {name!r} is not a saved FateDataset (no 'header' array; it "
                    f"holds {f.files[:10]})."
                )
            header = _read_header(f, name)
            arrays = {}
            for key in ("X", "y", "groups"):
                arrays[key] = _read_array(f, key, name)
            n = len(arrays["y"]) if arrays["y"].ndim else 0
            data = {}
            for i, info in enumerate(header["columns"]):
                where = f"header column {i} ({info['name']!r})"
                values = _read_array(f, info["key"], name, what=where)
                if values.ndim != 1 or len(values) != n:
                    raise ValueError(
                        f"{name}: array {info['key']!r} ({where}) has shape "
                        f"{values.shape}, expected ({n},)."
                    )
                if "null_key" in info:
                    null = _read_array(f, info["null_key"], name, what=where)
                    if null.dtype != bool or null.shape != values.shape:
                        raise ValueError(
                            f"{name}: array {info['null_key']!r} ({where}) must be a "
                            f"boolean mask of shape ({n},), got {null.dtype} {null.shape}."
                        )
                    values = values.astype(object)
                    values[null] = None
                col = pd.Series(values)
                try:
                    col = col.astype(info["dtype"])
                except (TypeError, ValueError):
                    pass
                data[info["name"]] = col
        table = pd.DataFrame(data) if data else pd.DataFrame(index=range(n))
        try:
            return cls(
                X=arrays["X"],
                y=arrays["y"],
                groups=arrays["groups"],
                table=table,
                meta=header["meta"],
                pixel_size=header.get("pixel_size"),
                frame_interval=header.get("frame_interval"),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} is not a consistent FateDataset: {exc}") from None


def _one_line(exc):
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _read_array(f, key, path, what=None):
    """``f[key]`` with errors that name the file and the key; never unpickles."""
    where = f" ({what})" if what else ""
    if not isinstance(key, str) or key not in f.files:
        raise ValueError(
            f"{path}: the array {key!r}{where} is missing; the file is not a complete "
            "saved FateDataset."
        )
    try:
        return f[key]
    except ValueError as exc:
        if "pickle" in str(exc) or "Object arrays" in str(exc):
            raise ValueError(
                f"{path}: the array {key!r}{where} holds Python objects (dtype object), "
                "which are never loaded (reading them would run pickle); a FateDataset "
                "written by save() has none."
            ) from None
        raise ValueError(
            f"{path}: the array {key!r}{where} cannot be read ({_one_line(exc)})."
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(
            f"{path}: the array {key!r}{where} is damaged ({_one_line(exc)})."
        ) from None


def _read_header(f, path):
    """The JSON header of a saved dataset, checked; errors name the file and the key."""
    raw = _read_array(f, "header", path)
    if raw.ndim != 0 or raw.dtype.kind not in "US":
        raise ValueError(
            f"{path}: the array 'header' must be one JSON string, got {raw.dtype} of "
            f"shape {raw.shape}."
        )
    try:
        header = json.loads(str(raw))
    except ValueError as exc:
        raise ValueError(f"{path}: the array 'header' is not valid JSON ({exc}).") from None
    if not isinstance(header, dict) or header.get("format") != _FORMAT:
        raise ValueError(f"path {str(path)!r} is not a saved FateDataset.")
    version = header.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(
            f"{path}: the 'header' key 'version' must be an integer, got {version!r}."
        )
    if version > _FORMAT_VERSION:
        raise ValueError(
            f"path {str(path)!r} was written by a newer ai4cellfate "
            f"(format version {version})."
        )
    columns = header.get("columns")
    if not isinstance(columns, list):
        raise ValueError(
            f"{path}: the 'header' key 'columns' must be a list, got "
            f"{type(columns).__name__}."
        )
    for i, info in enumerate(columns):
        if (
            not isinstance(info, dict)
            or not all(isinstance(info.get(k), str) for k in ("name", "key", "dtype"))
            or not isinstance(info.get("null_key", ""), str)
        ):
            raise ValueError(
                f"{path}: the 'header' key 'columns' entry {i} must hold the strings "
                f"name, key and dtype, got {info!r}."
            )
    if not isinstance(header.get("meta", {}), dict):
        raise ValueError(
            f"{path}: the 'header' key 'meta' must be a JSON object, got "
            f"{type(header['meta']).__name__}."
        )
    header.setdefault("meta", {})
    for key in ("pixel_size", "frame_interval"):
        value = header.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(
                f"{path}: the 'header' key {key!r} must be a number or null, got {value!r}."
            )
    return header
