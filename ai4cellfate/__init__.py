"""ai4cellfate: predict single-cell fate from one early frame.

An implementation of AI4CellFate (Cunha et al., bioRxiv 2025): an adversarial
autoencoder whose 2-D latent space is engineered by four losses, a simple
classifier on that latent space, latent traversals for interpretation, and
honest comparison with hand-picked features. Runs on Keras 3 with the
TensorFlow, JAX or PyTorch backend (``KERAS_BACKEND``).

Importing the package sets quiet defaults for the backends' own log output
(``TF_CPP_MIN_LOG_LEVEL=3``, ...; see :mod:`ai4cellfate._logging`), before any
backend is imported; ``AI4CELLFATE_BACKEND_LOGS=1`` keeps it all. The
package's own messages go to the logger ``"ai4cellfate"``.
"""

from . import _logging  # noqa: F401  (first: quiets the backends before they load)
from ._version import __version__

__all__ = ["CellFateAAE", "SeedEnsemble", "load", "__version__"]


def __getattr__(name):
    # Import Keras lazily so that ``import ai4cellfate`` stays cheap and the
    # backend can still be chosen after importing the package.
    if name == "CellFateAAE":
        from .estimator import CellFateAAE

        return CellFateAAE
    if name == "SeedEnsemble":
        from .ensemble import SeedEnsemble

        return SeedEnsemble
    if name == "load":
        from .estimator import load

        return load
    raise AttributeError(f"module 'ai4cellfate' has no attribute {name!r}")
