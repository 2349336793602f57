"""Figures (matplotlib). Every function takes an optional ``ax`` where it draws
one panel, returns the :class:`matplotlib.figure.Figure`, and never calls
``plt.show()``."""

from ._latent import *  # noqa: F401,F403
from ._latent import __all__ as _latent_all
from ._studies import *  # noqa: F401,F403
from ._studies import __all__ as _studies_all

__all__ = list(_latent_all) + list(_studies_all)
