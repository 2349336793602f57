"""Lineage tables and fate labels (method-spec section 1).

Conventions
-----------
A lineage has one row per track *segment*: ``track_id, start, end, parent_id``.
As in the Cell Tracking Challenge, a cell that divides ends its segment at its
last frame before the division, and each daughter starts a new segment whose
``parent_id`` names the mother. A segment with exactly one child is a
gap-closing link (the same cell lost for some frames and found again): it is
followed, not counted as a division. A "cell" is therefore a chain of segments
joined by one-child links; it divides when its last segment has two or more
children, and its division frame is the first frame of its daughters.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Fate label values.
UNKNOWN = -1
DIVIDES = 1
NO_DIVISION = 0


def _parent_ids(parent, track_ids, name):
    """Normalise parent ids: NaN, negative, or 0 when no track 0 -> -1 (none)."""
    parent = pd.to_numeric(pd.Series(parent), errors="coerce")
    if parent.notna().any():
        vals = parent.dropna().to_numpy()
        if not np.all(vals == np.round(vals)):
            raise ValueError(f"{name}.parent_id must hold integer track ids or NaN.")
    ids = set(int(i) for i in track_ids)
    out = parent.fillna(-1).to_numpy().astype(np.int64)
    out[out < 0] = -1
    if 0 not in ids:
        out[out == 0] = -1
    unknown = sorted(set(out[out >= 0].tolist()) - ids)
    if unknown:
        shown = ", ".join(str(u) for u in unknown[:10])
        more = f" (and {len(unknown) - 10} more)" if len(unknown) > 10 else ""
        tids = np.asarray(track_ids)
        first = unknown[0]
        kids = tids[out == first][:5].tolist()
        raise ValueError(
            f"{name} names parents that are not tracks in it: {shown}{more} "
            f"(e.g. track(s) {kids} name parent {first})."
        )
    return out


_SEPARATORS = ((";", "';'"), ("\t", "'\\t' (tab)"), ("|", "'|'"), (" ", "r'\\s+' (spaces)"))


def check_columns(table, required, name, needs=None):
    """Raise a ValueError naming the missing columns and the columns found.

    When the columns found look like a whole header read as one column (a
    file separated by ``;``, tabs or spaces read as comma-separated), the
    message says which separator the file seems to use.
    """
    missing = [c for c in required if c not in table.columns]
    if not missing:
        return
    found = [str(c) for c in table.columns]
    shown = found[:12] + (["..."] if len(found) > 12 else [])
    msg = f"{name} lacks the column(s) {missing}"
    if needs:
        msg += f"; it needs {needs}"
    msg += f". Columns found: {shown}."
    joined = [c for c in found if any(r in c for r in required)]
    for sep, label in _SEPARATORS:
        if any(sep in c and len(c.split(sep)) > 1 for c in joined or found):
            msg += (
                f" The header looks like one column holding several names: the file "
                f"seems to be separated by {label}, not ','; read it with "
                f"pandas.read_csv(path, sep={label.split()[0]})."
            )
            break
    raise ValueError(msg)


def _check_tree(out, name):
    """Parents exist (checked before), no cycles, parents end before children start."""
    ids = out["track_id"].to_numpy()
    parent = dict(zip(ids.tolist(), out["parent_id"].to_numpy().tolist()))
    # cycles: follow parents; a chain that comes back to a track is a cycle
    done = set()
    for i in ids.tolist():
        path, j = [], i
        on_path = {}
        while j >= 0 and j not in done:
            if j in on_path:
                cyc = path[on_path[j]:] + [j]
                raise ValueError(
                    f"{name} has a cycle of parents: "
                    + " -> ".join(f"track {k}" for k in cyc)
                    + " (each names the next as its parent)."
                )
            on_path[j] = len(path)
            path.append(j)
            j = parent[j]
        done.update(path)
    # a daughter (or a track continuing after a gap) starts after her mother ends
    start = dict(zip(ids.tolist(), out["start"].to_numpy().tolist()))
    end = dict(zip(ids.tolist(), out["end"].to_numpy().tolist()))
    bad = [(c, p) for c, p in parent.items() if p >= 0 and start[c] <= end[p]]
    if bad:
        shown = "; ".join(
            f"track {c} starts at frame {start[c]}, its parent track {p} ends at "
            f"frame {end[p]}"
            for c, p in bad[:5]
        )
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise ValueError(
            f"{name} has {len(bad)} track(s) that start before their parent ends: "
            f"{shown}{more}. A daughter track must start after her mother's last "
            "frame (the mother's track ends at her last frame before the division)."
        )


def check_lineage(lineage, name="lineage"):
    """Validate a lineage table and return a clean copy.

    Every reader (Cell Tracking Challenge, tracks tables, TrackMate) builds
    its lineage through this function, which refuses what cannot be: a track
    listed twice, a negative frame, a track that ends before it starts
    (``start <= end``), a parent that is not a track, a track that is its own
    parent or a cycle of parents, and a track that starts at or before its
    parent's last frame (a daughter starts after her mother ends). Messages
    name the tracks and frames.

    Returns a DataFrame with int64 columns ``track_id, start, end, parent_id``
    (``parent_id`` -1 for none), sorted by ``track_id``.
    """
    if not isinstance(lineage, pd.DataFrame):
        raise TypeError(
            f"{name} must be a pandas DataFrame with columns track_id, start, end, "
            f"parent_id, got {type(lineage).__name__}."
        )
    check_columns(lineage, ("track_id", "start", "end", "parent_id"), name)
    if len(lineage) == 0:
        raise ValueError(f"{name} is empty.")
    out = pd.DataFrame()
    for col in ("track_id", "start", "end"):
        vals = pd.to_numeric(lineage[col], errors="coerce").to_numpy(dtype=float)
        if not np.all(np.isfinite(vals)) or not np.all(vals == np.round(vals)):
            raise ValueError(f"{name}.{col} must hold integers (no NaN).")
        out[col] = vals.astype(np.int64)
    if out["track_id"].duplicated().any():
        dup = out.loc[out["track_id"].duplicated(), "track_id"].tolist()[:10]
        raise ValueError(f"{name} lists track ids more than once: {dup}.")
    neg = out["start"] < 0
    if neg.any():
        r = out[neg].iloc[0]
        raise ValueError(
            f"{name}.start must be >= 0; track {int(r.track_id)} starts at frame "
            f"{int(r.start)}."
        )
    bad = out["end"] < out["start"]
    if bad.any():
        shown = ", ".join(
            f"track {int(r.track_id)} (frames {int(r.start)} to {int(r.end)})"
            for r in out[bad].head(10).itertuples()
        )
        raise ValueError(
            f"{name} has tracks that end before they start (first frame after the "
            f"last): {shown}."
        )
    out["parent_id"] = _parent_ids(lineage["parent_id"].to_numpy(), out["track_id"], name)
    own = out["parent_id"] == out["track_id"]
    if own.any():
        raise ValueError(
            f"{name} has tracks that are their own parent: "
            f"{out.loc[own, 'track_id'].tolist()[:10]}."
        )
    out = out.sort_values("track_id", kind="stable").reset_index(drop=True)
    _check_tree(out, name)
    return out


def cell_table(lineage):
    """Per-segment facts about the cell it belongs to.

    Parameters
    ----------
    lineage : DataFrame
        Output of :func:`check_lineage`.

    Returns
    -------
    DataFrame indexed by ``track_id`` with columns ``cell_id`` (first segment
    of the cell, following gap-closing links back), ``parent_id``, ``root_id``
    (top ancestor, the lineage group), ``generation`` (number of divisions
    above), ``cell_start`` and ``cell_end`` (first and last frame of the cell,
    following gap-closing links), ``divides``, ``division_frame`` (first frame
    of the daughters, -1 when the cell does not divide), ``n_children``.
    """
    ids = lineage["track_id"].to_numpy()
    start = dict(zip(ids, lineage["start"].to_numpy()))
    end = dict(zip(ids, lineage["end"].to_numpy()))
    parent = dict(zip(ids, lineage["parent_id"].to_numpy()))
    children = {i: [] for i in ids}
    for i, p in parent.items():
        if p >= 0:
            children[p].append(i)
    n_children = {i: len(c) for i, c in children.items()}

    # Roots and generations, with cycle detection, memoised.
    root, gen = {}, {}
    for i in ids:
        path, j, seen = [], i, set()
        while j not in root and parent[j] >= 0:
            if j in seen:
                raise ValueError(f"lineage has a cycle through track {j}.")
            seen.add(j)
            path.append(j)
            j = parent[j]
        if j not in root:
            root[j], gen[j] = j, 0
        for k in reversed(path):
            p = parent[k]
            root[k] = root[p]
            gen[k] = gen[p] + (1 if n_children[p] >= 2 else 0)

    # Chains of one-child links: the last segment decides the cell's fate.
    last, head = {}, {}
    for i in ids:
        j = i
        while n_children[j] == 1:
            j = children[j][0]
        last[i] = j
        j = i
        while parent[j] >= 0 and n_children[parent[j]] == 1:
            j = parent[j]
        head[i] = j
    divides = {i: n_children[last[i]] >= 2 for i in ids}
    div_frame = {
        i: min(start[c] for c in children[last[i]]) if divides[i] else -1 for i in ids
    }
    return pd.DataFrame(
        {
            "cell_id": [head[i] for i in ids],
            "parent_id": [parent[i] for i in ids],
            "root_id": [root[i] for i in ids],
            "generation": [gen[i] for i in ids],
            "cell_start": [start[head[i]] for i in ids],
            "cell_end": [end[last[i]] for i in ids],
            "divides": [divides[i] for i in ids],
            "division_frame": [div_frame[i] for i in ids],
            "n_children": [n_children[i] for i in ids],
        },
        index=pd.Index(ids, name="track_id"),
    )


def fate_labels(cells, track_id, t, *, horizon, last_frame):
    """Fate label and reason for samples ``(track_id, t)``.

    Whole movie (``horizon=None``): 1 if the cell divides, 0 if it is still
    there at the movie's last frame without dividing, unknown otherwise.
    Horizon ``H``: 1 if the daughters appear by ``t + H``; 0 if the cell is
    still there at ``t + H`` (it may divide later); unknown if it ends without
    division before ``t + H`` (``track_ends``) or the movie ends first
    (``movie_ends``).

    Returns ``label`` (int64, -1 for unknown) and ``reason`` (object array).
    """
    c = cells.loc[track_id]
    divides = c["divides"].to_numpy()
    div = c["division_frame"].to_numpy()
    end = c["cell_end"].to_numpy()
    t = np.asarray(t)
    label = np.full(len(t), UNKNOWN, dtype=np.int64)
    reason = np.empty(len(t), dtype=object)
    if horizon is None:
        label[divides] = DIVIDES
        reason[divides] = "divides"
        stays = ~divides & (end >= last_frame)
        label[stays] = NO_DIVISION
        reason[stays] = "no_division"
        lost = ~divides & ~stays
        reason[lost] = "track_ends"
        return label, reason
    target = t + horizon
    soon = divides & (div <= target)
    later = divides & ~soon
    stays = ~divides & (end >= target)
    label[soon] = DIVIDES
    reason[soon] = "divides"
    label[later] = NO_DIVISION
    reason[later] = "divides_after_horizon"
    label[stays] = NO_DIVISION
    reason[stays] = "no_division"
    rest = ~divides & ~stays
    censored = rest & (end >= last_frame)
    reason[censored] = "movie_ends"
    reason[rest & ~censored] = "track_ends"
    return label, reason
