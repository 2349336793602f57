"""Small file helpers shared by everything that writes files atomically."""

import contextlib
import os
import tempfile

__all__ = ["umask", "publish_mode", "atomic_path"]


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


@contextlib.contextmanager
def atomic_path(path, *, suffix=""):
    """Write ``path`` through a temporary file beside it, renamed into place.

    Yields the temporary path (an empty file). When the block ends normally the
    file gets the usual mode and replaces ``path`` in one rename; when it
    raises (or is interrupted) the temporary file is removed and ``path`` is
    untouched, so a failure never leaves a half-written file.

    Parameters
    ----------
    path : str or path-like
        Final destination.
    suffix : str, default=""
        Suffix of the temporary name (Keras needs ``.keras``).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix=suffix, dir=folder,
                               prefix=f".{os.path.basename(path)}.tmp-")
    os.close(fd)
    try:
        yield tmp
        publish_mode(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
