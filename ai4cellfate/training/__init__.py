"""Training machinery: the Keras model with its train step, the stage-2
stopping criteria, the data of one fit and the two-stage training loop
(:mod:`ai4cellfate.training.loop`: schedule, stopping, best-epoch restore,
interrupts, checkpoints, history). Backend-specific code lives only in
``_jax.py``, ``_tensorflow.py`` and ``_torch.py``."""

from .._logging import keep_tensorflow_unimported

# Every path that builds, trains, loads or runs a network imports this package;
# Keras' serialisation (``get_config``, which the shared compiled functions'
# keys and saving call) would otherwise import TensorFlow under another backend.
keep_tensorflow_unimported()

from .criteria import StoppingCriteria  # noqa: E402
from .model import LOSS_NAMES, AdversarialAutoencoder  # noqa: E402

__all__ = ["AdversarialAutoencoder", "LOSS_NAMES", "StoppingCriteria"]
