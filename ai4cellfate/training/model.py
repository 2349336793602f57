"""The adversarial autoencoder as a :class:`keras.Model` with a custom train step.

Everything here is backend-agnostic (``keras.ops``); the gradient bookkeeping
of one training step lives in ``_jax.py``, ``_tensorflow.py`` and
``_torch.py``, one small module per backend.
"""

from __future__ import annotations

import importlib

import keras
from keras import ops

from .. import _random, losses
from . import _graph
from ..networks import (
    HostConstant,
    build_decoder,
    build_discriminator,
    build_encoder,
    build_latent_classifier,
)

__all__ = ["AdversarialAutoencoder", "LOSS_NAMES", "HostZerosAdam", "make_adam"]

#: Names of the per-epoch values reported by :meth:`AdversarialAutoencoder.fit`.
LOSS_NAMES = ("loss", "recon_loss", "adv_loss", "contra_loss", "cov_loss", "disc_loss")

_LAMBDAS = ("lambda_recon", "lambda_adv", "lambda_contra", "lambda_cov")


def backend_module():
    """The module of the running Keras backend (``_jax``, ``_tensorflow`` or
    ``_torch``): ``train_step``, ``predict_function`` and ``cpu_threads``."""
    name = keras.backend.backend()
    module = {"jax": "_jax", "tensorflow": "_tensorflow", "torch": "_torch"}.get(name)
    if module is None:
        raise RuntimeError(
            f"ai4cellfate supports the jax, tensorflow and torch Keras backends; "
            f"KERAS_BACKEND is {name!r}."
        )
    return importlib.import_module(f".{module}", __package__)


def _backend_step():
    return backend_module().train_step


@keras.saving.register_keras_serializable(package="ai4cellfate")
class HostZerosAdam(keras.optimizers.Adam):
    """:class:`keras.optimizers.Adam` whose zero-filled variables (the
    moment estimates) are filled on the host.

    The update is Keras' Adam, unchanged. On JAX Keras fills each new slot
    shape with its own small compiled program (about 20-25 ms on two cores,
    18 shapes for the autoencoder and discriminator); filled on the host (see
    :class:`ai4cellfate.networks.HostConstant`) they cost nothing to compile.
    :func:`make_adam` uses this class on JAX only: on PyTorch Keras swaps its
    own ``Adam`` for a fused one, which a subclass would not get.

    Parameters
    ----------
    *args, **kwargs
        As :class:`keras.optimizers.Adam`.
    """

    def add_variable(self, *args, **kwargs):
        """As :meth:`keras.optimizers.Optimizer.add_variable`, with
        ``"zeros"`` filled on the host."""
        if len(args) > 1:
            args = list(args)
            if _is_zeros(args[1]):
                args[1] = HostConstant(0.0)
        elif _is_zeros(kwargs.get("initializer", "zeros")):
            kwargs["initializer"] = HostConstant(0.0)
        return super().add_variable(*args, **kwargs)


def _is_zeros(initializer):
    return (isinstance(initializer, str) and initializer == "zeros") or type(
        initializer) is keras.initializers.Zeros


def make_adam(learning_rate, beta_1, beta_2):
    """The optimizer of a fit: :class:`HostZerosAdam` on JAX, Keras' own
    :class:`keras.optimizers.Adam` on the other backends (the same update).

    Parameters
    ----------
    learning_rate, beta_1, beta_2 : float
        As :class:`keras.optimizers.Adam`.

    Returns
    -------
    keras.optimizers.Adam

    Examples
    --------
    >>> make_adam(1e-3, 0.0, 0.9).beta_2
    0.9
    """
    cls = HostZerosAdam if keras.backend.backend() == "jax" else keras.optimizers.Adam
    return cls(learning_rate, beta_1=beta_1, beta_2=beta_2)


@keras.saving.register_keras_serializable(package="ai4cellfate")
class AdversarialAutoencoder(keras.Model):
    """Encoder, decoder, latent discriminator and latent classifier in one model.

    Each training step updates the encoder and decoder on
    ``lambda_recon * L_recon + lambda_adv * L_adv + lambda_contra * L_contra
    + lambda_cov * L_cov`` and the discriminator on its own loss, from one
    forward pass. The loss weights are non-trainable variables, so a new
    training stage only assigns them (no retracing). Calling the model
    reconstructs images.

    Parameters
    ----------
    image_shape : tuple (height, width, channels)
        Shape of one crop.
    latent_dim : int, default=2
        Size of the latent space.
    n_classes : int, default=2
        Number of fate classes (size of the classifier head).
    lambda_recon, lambda_adv, lambda_contra, lambda_cov : float
        Initial loss weights (spec: 8, 4, 6, 1e-4).
    temperature : float, default=0.5
        Temperature of the supervised contrastive loss.
    noise_std : float, default=0.003
        Gaussian-noise standard deviation in encoder and decoder.
    ssim_window : int, default=5
        MS-SSIM Gaussian window size.
    ssim_form : {"product", "sum"}, default="product"
        MS-SSIM form (see :func:`ai4cellfate.losses.ms_ssim`).
    seed : int, default=0
        Seed of every random layer and of the prior sampler.
    **kwargs
        Passed to :class:`keras.Model`.

    Examples
    --------
    >>> model = AdversarialAutoencoder((20, 20, 1))
    >>> model.encoder.output_shape, model.decoder.output_shape
    ((None, 2), (None, 20, 20, 1))
    """

    def __init__(
        self,
        image_shape,
        latent_dim=2,
        n_classes=2,
        lambda_recon=8.0,
        lambda_adv=4.0,
        lambda_contra=6.0,
        lambda_cov=1e-4,
        temperature=0.5,
        noise_std=0.003,
        ssim_window=5,
        ssim_form="product",
        seed=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.latent_dim = int(latent_dim)
        self.n_classes = int(n_classes)
        self.temperature = float(temperature)
        self.noise_std = float(noise_std)
        self.ssim_window = int(ssim_window)
        self.ssim_form = ssim_form
        self.seed = int(seed)
        self._initial_lambdas = {
            "lambda_recon": float(lambda_recon),
            "lambda_adv": float(lambda_adv),
            "lambda_contra": float(lambda_contra),
            "lambda_cov": float(lambda_cov),
        }
        self.encoder = build_encoder(
            self.image_shape, self.latent_dim, self.noise_std, seed=self.seed
        )
        self.decoder = build_decoder(
            self.image_shape, self.latent_dim, self.noise_std, seed=self.seed + 1000
        )
        self.discriminator = build_discriminator(self.latent_dim, seed=self.seed + 2000)
        self.classifier = build_latent_classifier(
            self.latent_dim, self.n_classes, seed=self.seed + 3000
        )
        # The head is fitted in closed form by the estimator, not by the step.
        self.classifier.trainable = False
        for name, value in self._initial_lambdas.items():
            setattr(
                self,
                name,
                self.add_weight(
                    shape=(),
                    initializer=HostConstant(value),
                    trainable=False,
                    name=name,
                ),
            )
        self.prior_seed = keras.random.SeedGenerator(self.seed + 4000)
        self.trackers = {n: keras.metrics.Mean(name=n) for n in LOSS_NAMES}
        self._train_step_impl = _backend_step()

    #: Attributes Keras' JAX trainer sets on every training step: the step's
    #: state (a dict of lists of arrays) and a flag. Neither holds a variable,
    #: layer or seed generator, so there is nothing for Keras' attribute
    #: tracking to find; walking the state's ~200 arrays cost about 0.2 ms a
    #: step (3% of a JAX step).
    #: ``_compiled_losses`` (PyTorch, ``compile(jit_compile=True)``) holds a
    #: ``torch.compile`` wrapper, not state.
    _UNTRACKED = frozenset(("_jax_state", "_jax_state_synced", "_compiled_losses"))

    def __setattr__(self, name, value):
        if name in self._UNTRACKED:
            object.__setattr__(self, name, value)
            return
        super().__setattr__(name, value)

    def compile(self, *args, jit_compile="auto", **kwargs):
        """:meth:`keras.Model.compile`; on PyTorch ``jit_compile=True``
        compiles the autoencoder's forward pass and losses with
        ``torch.compile`` (see ``_torch_compile``; the rest of the step stays
        eager) instead of Keras' compilation of the whole step, and
        ``"auto"`` runs eagerly."""
        compiled = None
        if keras.backend.backend() == "torch":
            if jit_compile is True:
                from ._torch_compile import CompiledLosses

                compiled = CompiledLosses(self)
            jit_compile = False
        super().compile(*args, jit_compile=jit_compile, **kwargs)
        self._compiled_losses = compiled

    # -- configuration -------------------------------------------------------
    def get_config(self):
        config = super().get_config()
        config.update(
            image_shape=list(self.image_shape),
            latent_dim=self.latent_dim,
            n_classes=self.n_classes,
            temperature=self.temperature,
            noise_std=self.noise_std,
            ssim_window=self.ssim_window,
            ssim_form=self.ssim_form,
            seed=self.seed,
            **self._initial_lambdas,
        )
        return config

    def set_loss_weights(self, **weights):
        """Assign loss weights (``lambda_recon``, ``lambda_adv``, ...).

        Parameters
        ----------
        **weights : float
            New values, by name.
        """
        for name, value in weights.items():
            if name not in _LAMBDAS:
                raise ValueError(f"Unknown loss weight {name!r}; expected one of {_LAMBDAS}.")
            getattr(self, name).assign(float(value))

    def get_loss_weights(self):
        """Current loss weights as a dict of floats."""
        return {n: float(ops.convert_to_numpy(getattr(self, n))) for n in _LAMBDAS}

    # -- forward passes ------------------------------------------------------
    def call(self, inputs, training=False):
        return self.decoder(self.encoder(inputs, training=training), training=training)

    @property
    def metrics(self):
        return list(self.trackers.values())

    @property
    def autoencoder_variables(self):
        """Trainable variables of encoder and decoder."""
        return self.encoder.trainable_variables + self.decoder.trainable_variables

    @property
    def discriminator_variables(self):
        """Trainable variables of the discriminator."""
        return self.discriminator.trainable_variables

    def _net(self, net, x, runner=None):
        """``net(x, training=True)``; on PyTorch ``runner(net, x)`` when
        given, else layer by layer without Keras' per-call machinery
        (``_graph.forward``), each layer in torch operations where
        ``_torch_layers`` covers it."""
        if runner is not None:
            return runner(net, x)
        if keras.backend.backend() == "torch":
            from ._torch_layers import kernel_for

            return _graph.forward(net, x, training=True, kernel_for=kernel_for)
        return net(x, training=True)

    def autoencoder_losses(self, x, y):
        """Forward pass of the autoencoder step (training mode).

        Returns
        -------
        terms : dict
            ``loss`` (weighted total), ``recon_loss``, ``adv_loss``,
            ``contra_loss``, ``cov_loss`` and the latents ``z``.
        """
        return self._autoencoder_terms(x, y)

    def _autoencoder_terms(self, x, y, runner=None):
        """:meth:`autoencoder_losses` with the three networks run by
        ``runner(net, x)`` when given (``_torch_compile`` passes one that
        adds pre-drawn noise)."""
        z = self._net(self.encoder, x, runner)
        x_hat = self._net(self.decoder, z, runner)
        d_fake = self._net(self.discriminator, z, runner)
        recon = losses.reconstruction_loss(
            x, x_hat, window_size=self.ssim_window, form=self.ssim_form
        )
        adv = losses.adversarial_loss(d_fake)
        contra = losses.supervised_contrastive_loss(z, y, self.temperature)
        cov = losses.covariance_loss(z)
        total = (
            self.lambda_recon * recon
            + self.lambda_adv * adv
            + self.lambda_contra * contra
            + self.lambda_cov * cov
        )
        return {
            "loss": total,
            "recon_loss": recon,
            "adv_loss": adv,
            "contra_loss": contra,
            "cov_loss": cov,
            "z": z,
        }

    def discriminator_losses(self, z):
        """Discriminator loss on prior samples against (fixed) latents ``z``."""
        return self._discriminator_terms(z, self._prior_samples(z))

    def _prior_samples(self, z):
        """Samples of the N(0, I) prior, shaped and typed as ``z``, from the
        model's prior seed (which moves on by one draw)."""
        if _random.uses_counter_rng():
            return _random.normal(ops.shape(z), self.prior_seed.next(), dtype=z.dtype)
        return keras.random.normal(ops.shape(z), dtype=z.dtype, seed=self.prior_seed)

    def _discriminator_terms(self, z, prior, runner=None):
        """:meth:`discriminator_losses` on given ``prior`` samples, the
        discriminator run by ``runner(net, x, call)`` when given (``call``
        0 on the prior, 1 on ``z``; ``_torch_compile`` passes one that
        applies pre-drawn dropout)."""
        if runner is None:
            d_real = self._net(self.discriminator, prior)
            d_fake = self._net(self.discriminator, z)
        else:
            d_real = runner(self.discriminator, prior, 0)
            d_fake = runner(self.discriminator, z, 1)
        return losses.discriminator_loss(d_real, d_fake)

    def train_step(self, *args):
        return self._train_step_impl(self, *args)

    def make_train_function(self, force=False):
        """As :meth:`keras.Model.make_train_function`; on JAX the jitted step
        is shared by models of the same structure (compiled once per process,
        see ``_jax.jitted_train_step``)."""
        if self.train_function is not None and not force:
            return
        shared = getattr(backend_module(), "jitted_train_step", None)
        if (shared is None or self.run_eagerly or not self.jit_compile
                or keras.distribution.distribution() is not None):
            return super().make_train_function(force)
        self.train_function = self._make_function(shared(self))

    def test_step(self, *args, **kwargs):  # pragma: no cover - not used
        raise NotImplementedError(
            "AdversarialAutoencoder has no evaluate(); use the estimator's "
            "latent_diagnostics or score."
        )
