"""Temporal context: crops of earlier frames of the same cell as extra channels."""

from __future__ import annotations

import numpy as np

from ._fate import FateDataset
from .tracks import _is_int

__all__ = ["temporal_context"]


def temporal_context(data, *, max_lag, n_earlier=1):
    """Stack crops of earlier frames of the same cell onto each crop, as channels.

    For every sample of ``data`` (a cell at frame ``t``), the ``n_earlier``
    most recent other samples of the same cell (``table["cell_id"]``, which
    follows a cell across gap-closing links but not across a division) at
    frames ``t - max_lag`` to ``t - 1`` are looked up; the sample becomes
    their crops and its own, oldest first, along the channel axis. Samples
    without enough earlier frames are dropped (counted in
    ``meta["dropped"]["no_earlier_frame"]``).

    The label, lineage group and table row stay those of frame ``t``: the
    fate horizon counts from the last frame used, and the earlier frames
    precede it, so no later information reaches the crop. The earlier crops
    come from ``data`` itself, so they share its crop geometry, masking and
    intensity scaling.

    Parameters
    ----------
    data : FateDataset
        Crops of several frames per cell, with ``cell_id`` and ``t`` in its
        table, e.g. from :func:`~ai4cellfate.datasets.load_ctc` or
        :func:`~ai4cellfate.datasets.make_fate_dataset` with
        ``frames="all"`` (the default).
    max_lag : int
        Furthest an earlier frame may lie before ``t``, in frames (>= 1).
        Movies with missing frames give irregular lags: the table records
        them.
    n_earlier : int, default=1
        Earlier frames stacked onto each crop (>= 1).

    Returns
    -------
    FateDataset
        ``X`` of shape ``(n, h, w, (n_earlier + 1) * c)`` (``c`` = 1 for
        single-channel crops), frame ``t`` in the last ``c`` channels; ``y``,
        ``groups`` and ``table`` of the kept samples, the table with
        ``earlier_t_1`` (the most recent earlier frame) ... ``earlier_t_k``
        and ``lag`` (``t`` minus the oldest frame used); ``meta`` with
        ``temporal_context``: the parameters and ``lags``, the number of
        samples per lag (keys are the lags as strings, as JSON stores them).

    Raises
    ------
    TypeError
        ``data`` is not a FateDataset.
    ValueError
        Before any work: ``max_lag`` or ``n_earlier`` not an int >= 1; a
        table without ``cell_id`` or ``t``; two samples of one cell at the
        same frame; no sample with enough earlier frames.

    Examples
    --------
    Two cells seen at frames 0, 1 and 3; the first frame of each has no
    earlier frame and is dropped:

    >>> import numpy as np, pandas as pd
    >>> from ai4cellfate.datasets import FateDataset, temporal_context
    >>> table = pd.DataFrame({"cell_id": [1, 1, 1, 2, 2, 2], "t": [0, 1, 3, 0, 1, 3]})
    >>> X = np.arange(6, dtype=np.float32)[:, None, None] * np.ones((6, 4, 4))
    >>> data = FateDataset(X, np.array([0, 0, 0, 1, 1, 1]), np.array([1, 1, 1, 2, 2, 2]),
    ...                    table)
    >>> ctx = temporal_context(data, max_lag=2)
    >>> ctx.X.shape, ctx.X[:, 0, 0].tolist(), ctx.table["lag"].tolist()
    ((4, 4, 4, 2), [[0.0, 1.0], [1.0, 2.0], [3.0, 4.0], [4.0, 5.0]], [1, 2, 1, 2])
    """
    if not isinstance(data, FateDataset):
        raise TypeError(f"data must be a FateDataset, got {type(data).__name__}.")
    for name, value in (("max_lag", max_lag), ("n_earlier", n_earlier)):
        if not _is_int(value) or value < 1:
            raise ValueError(f"{name} must be an int >= 1 (frames), got {value!r}.")
    missing = [c for c in ("cell_id", "t") if c not in data.table.columns]
    if missing:
        raise ValueError(
            f"data.table has no column(s) {missing}: temporal_context needs the cell "
            "and frame of every sample (a dataset from make_fate_dataset or the "
            "readers has them).")
    cell = data.table["cell_id"].to_numpy()
    t = data.table["t"].to_numpy()
    if not np.issubdtype(np.asarray(t).dtype, np.integer):
        raise ValueError(f"data.table['t'] must hold integer frames, got {t.dtype}.")
    order = np.lexsort((t, cell))  # by cell, then frame
    cs, ts = cell[order], t[order]
    same = (cs[1:] == cs[:-1]) & (ts[1:] == ts[:-1])
    if same.any():
        k = order[1:][same][0]
        name = cell[k].item() if isinstance(cell[k], np.generic) else cell[k]
        raise ValueError(
            f"data holds several samples of cell {name!r} at frame {int(t[k])}: "
            "cannot tell which is its earlier crop.")

    n = int(n_earlier)
    keep, earlier = [], []
    # position of each sample within its cell's frame-sorted run
    starts = np.r_[0, np.flatnonzero(cs[1:] != cs[:-1]) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(cs)]))
    for p in range(len(order)):
        first = p - n
        if first < run_start[p]:
            continue
        if ts[p] - ts[first] > max_lag:
            continue
        keep.append(order[p])
        earlier.append(order[first:p])  # oldest first
    if not keep:
        raise ValueError(
            f"no sample has {n} earlier frame(s) of the same cell within max_lag="
            f"{max_lag} frames (frames in data: {sorted(set(t.tolist()))[:20]}); raise "
            "max_lag or lower n_earlier.")
    keep = np.asarray(keep)
    earlier = np.asarray(earlier).reshape(len(keep), n)
    sort = np.argsort(keep, kind="stable")  # data's own order
    keep, earlier = keep[sort], earlier[sort]

    X = data.X if data.X.ndim == 4 else data.X[..., None]
    stacked = np.concatenate([X[earlier[:, j]] for j in range(n)] + [X[keep]], axis=-1)
    table = data.table.iloc[keep].reset_index(drop=True)
    for j in range(n):
        table[f"earlier_t_{j + 1}"] = t[earlier[:, n - 1 - j]]
    table["lag"] = t[keep] - t[earlier[:, 0]]
    meta = dict(data.meta)
    dropped = dict(meta.get("dropped") or {})
    dropped["no_earlier_frame"] = int(len(data) - len(keep))
    meta["dropped"] = dropped
    lags, counts = np.unique(table["lag"].to_numpy(), return_counts=True)
    meta["temporal_context"] = {
        "max_lag": int(max_lag),
        "n_earlier": n,
        "lags": {str(a): int(b) for a, b in zip(lags, counts)},  # JSON keys, as saved
    }
    return FateDataset(
        X=stacked,
        y=data.y[keep],
        groups=data.groups[keep],
        table=table,
        meta=meta,
        pixel_size=data.pixel_size,
        frame_interval=data.frame_interval,
    )
