"""Small file helpers shared by everything that writes files atomically."""

import os

__all__ = ["umask", "publish_mode"]


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
