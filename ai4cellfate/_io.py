"""Small file helpers shared by everything that writes files atomically.

Every atomic write goes through one temporary file beside its destination,
named ``.<name>.tmp-<pid>@<host>-<random><suffix>``: the writing process and
machine are in the name, so the next write to the same destination can tell
the leftovers of a killed run (its process is gone) from a write still in
progress, and removes them (:func:`remove_stale_temporaries`).
"""

import contextlib
import errno
import os
import re
import socket
import stat
import tempfile
import time

__all__ = ["umask", "publish_mode", "atomic_path", "check_writable_location",
           "remove_stale_temporaries", "STALE_AFTER_S"]

#: A temporary file older than this (seconds) is stale even when its writer
#: cannot be checked (another machine, or a name without a process id).
STALE_AFTER_S = 3600


def umask():
    """The process umask (read without changing it for longer than a call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish_mode(path, *, directory=False):
    """Give a temporary file (or folder) the mode a plain ``open`` would have.

    ``tempfile.mkstemp`` creates files readable by their owner only (0600) and
    ``mkdtemp`` folders 0700; outputs renamed into place from them would keep
    those modes, and colleagues could not read a shared model.
    """
    os.chmod(path, (0o777 if directory else 0o666) & ~umask())


def _host():
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32]


def _temp_prefix(path):
    return f".{os.path.basename(path)}.tmp-"


def _temp_pattern(path):
    # .<name>.tmp-<pid>@<host>-<8 random chars><suffix>; names without
    # "<pid>@<host>-" are those of ai4cellfate <= 0.1 (tempfile.mkstemp).
    return re.compile(
        re.escape(_temp_prefix(path))
        + r"(?:(?P<pid>\d+)@(?P<host>[A-Za-z0-9]*)-)?[a-z0-9_]{8}(?:\.[A-Za-z0-9_]+)?"
    )


def _process_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, under another user
        return True
    return True


def remove_stale_temporaries(path, *, max_age=STALE_AFTER_S):
    """Remove the temporary files that killed writes of ``path`` left beside it.

    A temporary file of ``path`` (see the module docstring) is stale when the
    process that wrote it, on this machine, no longer runs, or when it is older
    than ``max_age`` seconds (a writer on another machine sharing the folder,
    or a name without a process id). Only regular files whose names follow the
    pattern are considered; errors (a file removed meanwhile, no permission)
    are ignored.

    Parameters
    ----------
    path : str or path-like
        The destination whose temporary files are examined.
    max_age : float, default=STALE_AFTER_S
        Age in seconds (from the last modification) past which any temporary
        file of ``path`` is stale.

    Returns
    -------
    list of str
        The files removed.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    pattern, prefix, host = _temp_pattern(path), _temp_prefix(path), _host()
    removed = []
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix)]
    except OSError:
        return removed
    now = time.time()
    for name in names:
        m = pattern.fullmatch(name)
        if m is None:
            continue
        full = os.path.join(folder, name)
        try:
            info = os.lstat(full)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        stale = now - info.st_mtime > max_age
        if not stale and m.group("pid") is not None and m.group("host") == host:
            stale = not _process_alive(int(m.group("pid")))
        if stale:
            try:
                os.remove(full)
            except OSError:
                continue
            removed.append(full)
    return removed


def check_writable_location(path, *, directory=False):
    """Raise ``OSError`` unless ``path`` could be created (or replaced) now.

    Walks up to the nearest existing ancestor of ``path``: it must be a folder
    this process may write into (missing folders in between would be
    created). For an existing ``path`` of the wrong kind (a folder where a
    file goes, or the reverse) an error is raised as well.

    Parameters
    ----------
    path : str or path-like
        A file to write, or a folder to create and fill (``directory=True``).
    directory : bool, default=False
        Whether ``path`` is a folder.
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.lexists(path):
        if directory and not os.path.isdir(path):
            raise NotADirectoryError(errno.ENOTDIR, "exists and is not a folder", path)
        if not directory and os.path.isdir(path):
            raise IsADirectoryError(errno.EISDIR, "is a folder", path)
        target = path if directory else os.path.dirname(path)
    else:
        target = os.path.dirname(path)
        while not os.path.lexists(target):
            parent = os.path.dirname(target)
            if parent == target:
                break
            target = parent
    if not os.path.isdir(target):
        raise NotADirectoryError(errno.ENOTDIR, "is not a folder", target)
    if not os.access(target, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "is a folder without permission to write in it",
                              target)


@contextlib.contextmanager
def atomic_path(path, *, suffix=""):
    """Write ``path`` through one temporary file beside it, renamed into place.

    Yields the temporary path (an empty file). When the block ends normally the
    file gets the usual mode and replaces ``path`` in one rename; when it
    raises (or is interrupted) the temporary file is removed and ``path`` is
    untouched, so a failure never leaves a half-written file. Temporary files
    of ``path`` left by killed runs are removed first
    (:func:`remove_stale_temporaries`).

    Parameters
    ----------
    path : str or path-like
        Final destination.
    suffix : str, default=""
        Suffix of the temporary name (Keras needs ``.keras``).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(suffix=suffix, dir=folder,
                               prefix=f"{_temp_prefix(path)}{os.getpid()}@{_host()}-")
    os.close(fd)
    try:
        yield tmp
        publish_mode(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
