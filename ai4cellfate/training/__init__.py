"""Training machinery: the Keras model with its train step, and the stage-2
stopping criteria. Backend-specific code lives only in ``_jax.py``,
``_tensorflow.py`` and ``_torch.py``."""

from .criteria import StoppingCriteria
from .model import LOSS_NAMES, AdversarialAutoencoder

__all__ = ["AdversarialAutoencoder", "LOSS_NAMES", "StoppingCriteria"]
