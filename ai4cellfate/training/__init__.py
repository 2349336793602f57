"""Training machinery: the Keras model with its train step, the stage-2
stopping criteria, the data of one fit and the two-stage training loop
(:mod:`ai4cellfate.training.loop`: schedule, stopping, best-epoch restore,
interrupts, checkpoints, history). Backend-specific code lives only in
``_jax.py``, ``_tensorflow.py`` and ``_torch.py``."""

from .criteria import StoppingCriteria
from .model import LOSS_NAMES, AdversarialAutoencoder

__all__ = ["AdversarialAutoencoder", "LOSS_NAMES", "StoppingCriteria"]
