"""``CellFateAAE``: the scikit-learn estimator around the adversarial autoencoder.

The estimator keeps the scikit-learn contract: it validates parameters and
input, hands the data (:mod:`ai4cellfate.training.data`) and a freshly built
Keras model (:class:`ai4cellfate.training.AdversarialAutoencoder`) to the
two-stage training loop (:func:`ai4cellfate.training.loop.train_two_stage`),
fits the latent classifier and exposes the results. It computes no losses,
runs no epochs and reads no files.
"""

from __future__ import annotations

import json
import numbers
import os
import sys
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from ._persistence import load  # noqa: F401  (re-exported: ai4cellfate.load)
from ._validation import (check_images, check_int, check_labels, check_number,
                          check_random_state_param)

__all__ = ["CellFateAAE", "LatentWarning", "load"]

_FITTED = ("classes_", "image_shape_", "n_features_in_", "_layout", "model_", "history_",
           "n_epochs_", "stop_reason_", "best_epoch_", "resumed_from_epoch_", "_fit_params")


class LatentWarning(UserWarning):
    """The fitted latent space is not what the method intends (collapsed,
    correlated or far from N(0, 1)), so its features are hard to interpret."""


def _keras():
    """Import Keras; an interrupted first import leaves nothing half-imported."""
    keras = sys.modules.get("keras")
    if keras is None or not hasattr(keras, "Model"):
        before = set(sys.modules)
        try:
            import keras
        except BaseException:
            # Ctrl-C during the import: drop the partly imported modules so the
            # next call imports Keras afresh instead of finding a broken module.
            for name in set(sys.modules) - before:
                if name == "keras" or name.startswith(("keras.", "ai4cellfate.training")):
                    sys.modules.pop(name, None)
            raise
    # Keras' saving would import TensorFlow under another backend: the guard
    # is set where every network path passes, ``ai4cellfate.training``.
    return keras


def _run_seed(random_state):
    """The integer seed of one fit, drawn from ``random_state``."""
    return int(check_random_state(random_state).randint(0, 2**31 - 10_000))


#: Training steps (in the first ``stage1_epochs + min_epochs + 1`` epochs) from
#: which ``jit_compile="auto"`` compiles the TensorFlow step with XLA. Measured
#: 2026-12-05 on 2 cores: XLA's first epoch took about 8 s longer and each
#: later step about 5 ms less (stage 2 at batch 30), so it pays from about
#: 1,700 steps.
XLA_MIN_STEPS = 2000

#: Training steps (counted as for ``XLA_MIN_STEPS``) from which
#: ``jit_compile="auto"`` compiles the PyTorch step's autoencoder part with
#: ``torch.compile`` on a CPU. Measured 2026-12-07 on 2 cores: compiling took
#: about 5-15 s with Inductor's on-disk cache warm and 81 s cold, and each
#: stage-2 step 4.5-7 ms less (1.2-1.4x at batch 30); so it pays from about
#: 2,000 steps warm and 15,000 cold (the default HeLa fit: 9,400). Compiling
#: the discriminator and Adam's update too (later that day) added about 1 s warm
#: and 25-40 s cold, and 1.1-1.3 ms to each step's saving: the same balance.
TORCH_COMPILE_MIN_STEPS = 4000


def _torch_can_compile():
    """Whether ``torch.compile`` can make CPU kernels here: Keras' device is
    the CPU and a C++ compiler is on the ``PATH`` (Inductor needs one)."""
    import shutil

    from keras.src.backend.torch.core import get_device

    if str(get_device()) != "cpu":
        return False
    return any(shutil.which(c) for c in ("c++", "g++", "clang++"))


def _resolve_jit_compile(value, steps):
    """``jit_compile`` of the model for a fit of at least ``steps`` training
    steps.

    JAX always compiles (``"auto"``). TensorFlow uses XLA for ``True``, or
    for ``"auto"`` when ``steps >= XLA_MIN_STEPS``. PyTorch compiles the
    autoencoder's forward pass and losses (``AdversarialAutoencoder.compile``)
    for ``True``, or for ``"auto"`` when ``steps >= TORCH_COMPILE_MIN_STEPS``
    on a CPU with a C++ compiler.
    """
    backend = _keras().backend.backend()
    if backend == "jax":
        return "auto"
    if value != "auto":
        return bool(value)
    if backend == "torch":
        return bool(steps >= TORCH_COMPILE_MIN_STEPS and _torch_can_compile())
    return bool(steps >= XLA_MIN_STEPS)


def _softmax(a):
    a = a - a.max(axis=1, keepdims=True)
    e = np.exp(a)
    return e / e.sum(axis=1, keepdims=True)


class CellFateAAE(ClassifierMixin, TransformerMixin, BaseEstimator):
    """AI4CellFate: an adversarial autoencoder with an engineered latent space.

    Encodes each single-cell crop into a ``latent_dim``-dimensional latent
    vector shaped by four losses (MS-SSIM reconstruction, adversarial match
    to N(0, I), supervised contrastive, covariance), and predicts the cell's
    fate with a simple classifier on that latent space. Training runs in two
    stages (method specification, section 4; the loop is
    :func:`ai4cellfate.training.loop.train_two_stage`): ``stage1_epochs`` of
    reconstruction and adversarial losses only (``lambda_recon = 5 *
    lambda_adv``), then all losses until every stopping criterion holds on a
    validation split carved from the training data, at the first stage-2
    epoch after ``min_epochs`` and at most ``max_epochs``. When the criteria
    never hold, the best validated epoch is kept.

    Runs on the Keras backend picked by ``KERAS_BACKEND`` (jax, tensorflow
    or torch).

    Parameters
    ----------
    latent_dim : int, default=2
        Size of the latent space.
    lambda_recon, lambda_adv, lambda_contra, lambda_cov : float, default=8, 4, 6, 1e-4
        Weights of the reconstruction, adversarial, supervised contrastive and
        covariance losses in stage 2. A weight of 0 switches its loss off in
        both stages.
    temperature : float, default=0.5
        Temperature of the supervised contrastive loss.
    noise_std : float, default=0.003
        Standard deviation of the Gaussian noise layers in encoder and decoder.
    batch_size : int, default=30
        Training batch size. Every epoch is a fresh permutation of the
        training images; the remainder that does not fill a batch is left out
        of that epoch (no image is repeated within an epoch).
    learning_rate : float, default=1e-3
        Adam learning rate of the autoencoder and the discriminator (Adam with
        ``beta_1=0, beta_2=0.9`` as in the authors' code).
    stage1_epochs : int, default=15
        Epochs of stage 1 (reconstruction weight ``5 * lambda_adv``; with
        ``lambda_adv=0``, ``lambda_recon``; with ``lambda_recon=0``, none).
    min_epochs : int, default=50
        Stage-2 epochs that must be exceeded before the criteria may stop
        training: the first possible stop is stage-2 epoch ``min_epochs + 1``
        (the preprint's "more than 50", the authors' ``epoch > 50``).
    max_epochs : int, default=100
        Most stage-2 epochs.
    min_centroid_distance : float, default=0.5
        Criterion 1: distance between class centroids in latent space
        (smallest pairwise distance for more than two classes). The authors'
        code uses 0.5; the preprint writes ">= 1" but reports 0.68 for its
        final model, so 1 cannot have been enforced.
    max_kl : float, default=0.2
        Criterion 2: KL divergence to N(0, 1) of every latent dimension,
        estimated (100-bin histogram, as the authors) on the latents of all
        training samples: on a small validation split alone the estimate is
        biased far above 0.2 even for Gaussian latents.
    min_accuracy : float, default=0.65
        Criterion 3a: balanced accuracy of the latent classifier on the
        validation split.
    min_precision : float, default=0.65
        Criterion 3b: precision of the latent classifier on the validation
        split, of the last class in ``classes_`` (fate 1 for 0/1 labels);
        macro-averaged over classes for more than two.
    criterion_precision : {"balanced", "ordinary"}, default="balanced"
        Which precision criterion 3b uses. ``"balanced"`` computes it from the
        row-normalised validation confusion matrix, so it does not depend on
        how common the fate is; this is what the authors' code scores, and
        where their 0.65 comes from. ``"ordinary"`` is ``TP / (TP + FP)``,
        which at realistic balances almost never reaches 0.65: with
        sensitivity = specificity = 0.72 and 17% dividing cells it is 0.345
        (0.65 would need a specificity of about 0.92).
    restore_best_weights : bool, default=True
        When ``max_epochs`` is reached without the criteria holding, restore
        the weights of the stage-2 epoch after ``min_epochs`` with the best
        validation balanced accuracy (ties: the later epoch). False keeps the
        last epoch.
    validation_fraction : float, default=0.2
        Fraction of the training data held out (stratified, group-aware when
        ``groups`` are given) to evaluate the stopping criteria and select the
        kept epoch. With 0 the criteria are evaluated on the training data.
    augment : bool, default=True
        Add flipped and rotated copies of the training images.
    balance : bool, default=True
        Subsample every class of the (augmented) training images to the size
        of the smallest class.
    image_shape : tuple of int, optional
        ``(height, width)`` or ``(height, width, channels)`` used to read flat
        ``(n, height * width * channels)`` rows as images.
    ssim_form : {"product", "sum"}, default="product"
        MS-SSIM form: the preprint's product of per-scale terms, or the
        authors' code's weighted sum of clipped SSIM maps (see
        :func:`ai4cellfate.losses.ms_ssim`).
    ssim_window : int, default=5
        Gaussian window of MS-SSIM: 5 in the preprint, 3 in the authors' code.
    checkpoint_dir : str or path-like, optional
        Folder for a training checkpoint (created if missing). Every
        ``checkpoint_every`` epochs the complete training state (weights,
        optimizer moments, random-seed states, history, criteria, best epoch,
        the run's seed) is written to ``ai4cellfate-checkpoint.npz`` there,
        atomically. ``fit(..., resume=True)`` continues from it. The
        checkpoint is removed when training ends normally and kept when it was
        interrupted or diverged. Give every fit its own folder.
    checkpoint_every : int, default=1
        Epochs between checkpoints.
    on_interrupt : {"stop", "raise"}, default="stop"
        What ``fit`` does on ``KeyboardInterrupt`` (Ctrl-C): ``"stop"`` ends
        training, keeps the weights of the last completed epoch, fits the
        latent classifier and returns the usable estimator with
        ``stop_reason_ = "interrupted"``; ``"raise"`` does the same and then
        re-raises ``KeyboardInterrupt``.
    jit_compile : "auto" or bool, default="auto"
        Compile the training step. TensorFlow: XLA; ``"auto"`` uses it when
        the fit runs at least 2,000 training steps in its first
        ``stage1_epochs + min_epochs + 1`` epochs (the default fit of the
        shared HeLa sequence runs about 10,000): XLA trains about 1.5x faster
        than TensorFlow's graph mode on CPUs but compiles for about 8 s per
        model, which short fits do not pay back. PyTorch: ``torch.compile``
        of the autoencoder's forward pass and losses, the discriminator's
        loss and (for Keras' plain Adam) the optimizer's update, 1.3-1.5x
        faster per stage-2 step on CPUs; ``"auto"`` uses it from 4,000 such
        steps on a CPU with a C++ compiler, since compiling takes about 5-15 s
        with Inductor's on-disk cache warm and about 100 s cold (the first
        compiled fit on a machine). The same random draws are made as eagerly,
        so results differ from an eager fit by float rounding only; where
        compiling fails, a ``RuntimeWarning`` says why and training goes on
        eagerly. JAX always compiles its step with XLA (its uncompiled mode
        is hundreds of times slower).
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the prior samples, the data split, augmentation
        subsampling and shuffling. An int makes ``fit`` reproducible on a
        backend.
    verbose : {"auto", 0, 1, 2}, default="auto"
        0: silent; 1: one line per epoch (stage, epoch of total, losses,
        criteria, time left); 2: that plus Keras' progress bar within each
        epoch. ``"auto"`` is 1 in an interactive session (a terminal, IPython
        or Jupyter) and 0 in scripts whose output is not a terminal and inside
        ``GridSearchCV``, ``cross_validate``, the study functions and parallel
        workers.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    image_shape_ : tuple of int
        ``(height, width, channels)`` of the training images.
    n_features_in_ : int
        Pixels per sample (``height * width * channels``).
    history_ : pandas.DataFrame
        One row per epoch: ``epoch``, ``stage``, every loss (``loss``,
        ``recon_loss``, ``adv_loss``, ``contra_loss``, ``cov_loss``,
        ``disc_loss``), in stage 2 every criterion value
        (``centroid_distance``, ``kl_z0`` ..., ``kl_max``,
        ``val_balanced_accuracy``, ``val_precision`` (ordinary),
        ``val_balanced_precision`` (prevalence-free), ``criteria_met``), and
        ``kept``, True for the epoch whose weights the model holds.
    n_epochs_ : int
        Epochs run in both stages together.
    best_epoch_ : int
        The epoch (1-based, both stages counted, as in ``history_``) whose
        weights the model holds.
    stop_reason_ : str
        ``"criteria met"``, ``"max_epochs reached"`` (then ``best_epoch_`` is
        the best validated epoch, or the last with
        ``restore_best_weights=False``), ``"non-finite loss"`` or
        ``"interrupted"``.
    model_ : AdversarialAutoencoder
        The trained Keras model.
    encoder_, decoder_ : keras.Model
        Encoder (images to latents) and decoder (latents to images).

    Examples
    --------
    >>> from ai4cellfate import CellFateAAE
    >>> from ai4cellfate.datasets import make_nuclei
    >>> X, y = make_nuclei(120, random_state=0)
    >>> model = CellFateAAE(stage1_epochs=1, min_epochs=1, max_epochs=1,
    ...                     random_state=0, verbose=0).fit(X, y)
    >>> model.transform(X[:3]).shape
    (3, 2)
    >>> model.decode([[0.0, -2.0], [0.0, 2.0]]).shape
    (2, 20, 20)
    """

    def __init__(
        self,
        latent_dim=2,
        lambda_recon=8.0,
        lambda_adv=4.0,
        lambda_contra=6.0,
        lambda_cov=1e-4,
        temperature=0.5,
        noise_std=0.003,
        batch_size=30,
        learning_rate=1e-3,
        stage1_epochs=15,
        min_epochs=50,
        max_epochs=100,
        min_centroid_distance=0.5,
        max_kl=0.2,
        min_accuracy=0.65,
        min_precision=0.65,
        criterion_precision="balanced",
        restore_best_weights=True,
        validation_fraction=0.2,
        augment=True,
        balance=True,
        image_shape=None,
        ssim_form="product",
        ssim_window=5,
        checkpoint_dir=None,
        checkpoint_every=1,
        on_interrupt="stop",
        jit_compile="auto",
        random_state=None,
        verbose="auto",
    ):
        self.latent_dim = latent_dim
        self.lambda_recon = lambda_recon
        self.lambda_adv = lambda_adv
        self.lambda_contra = lambda_contra
        self.lambda_cov = lambda_cov
        self.temperature = temperature
        self.noise_std = noise_std
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.stage1_epochs = stage1_epochs
        self.min_epochs = min_epochs
        self.max_epochs = max_epochs
        self.min_centroid_distance = min_centroid_distance
        self.max_kl = max_kl
        self.min_accuracy = min_accuracy
        self.min_precision = min_precision
        self.criterion_precision = criterion_precision
        self.restore_best_weights = restore_best_weights
        self.validation_fraction = validation_fraction
        self.augment = augment
        self.balance = balance
        self.image_shape = image_shape
        self.ssim_form = ssim_form
        self.ssim_window = ssim_window
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.on_interrupt = on_interrupt
        self.jit_compile = jit_compile
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ checks
    def _check_params(self):
        """Validate every hyper-parameter; return them normalised."""
        p = {"latent_dim": check_int(self.latent_dim, "latent_dim", low=1)}
        for name in ("lambda_recon", "lambda_adv", "lambda_contra", "lambda_cov"):
            p[name] = check_number(getattr(self, name), name, low=0)
        p["temperature"] = check_number(self.temperature, "temperature", low=0, low_open=True)
        p["noise_std"] = check_number(self.noise_std, "noise_std", low=0)
        p["batch_size"] = check_int(self.batch_size, "batch_size", low=2)
        p["learning_rate"] = check_number(self.learning_rate, "learning_rate", low=0,
                                          low_open=True)
        for name, low in (("stage1_epochs", 0), ("min_epochs", 0), ("max_epochs", 1),
                          ("checkpoint_every", 1), ("ssim_window", 1)):
            p[name] = check_int(getattr(self, name), name, low=low)
        if p["min_epochs"] > p["max_epochs"]:
            raise ValueError(
                f"min_epochs ({p['min_epochs']}) must not exceed max_epochs ({p['max_epochs']})."
            )
        p["min_centroid_distance"] = check_number(
            self.min_centroid_distance, "min_centroid_distance", low=0)
        p["max_kl"] = check_number(self.max_kl, "max_kl", low=0)
        for name in ("min_accuracy", "min_precision"):
            p[name] = check_number(getattr(self, name), name, low=0, high=1)
        p["validation_fraction"] = check_number(
            self.validation_fraction, "validation_fraction", low=0, high=1, high_open=True)
        for name in ("augment", "balance", "restore_best_weights"):
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False; got {value!r}.")
        for name, allowed in (("ssim_form", ("product", "sum")),
                              ("criterion_precision", ("balanced", "ordinary")),
                              ("on_interrupt", ("stop", "raise"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be {' or '.join(map(repr, allowed))}; got "
                                 f"{getattr(self, name)!r}.")
        if self.checkpoint_dir is not None:
            if not isinstance(self.checkpoint_dir, (str, os.PathLike)):
                raise TypeError(
                    f"checkpoint_dir must be a folder path or None; got {self.checkpoint_dir!r}."
                )
            if os.path.exists(self.checkpoint_dir) and not os.path.isdir(self.checkpoint_dir):
                raise ValueError(
                    f"checkpoint_dir must be a folder; {os.fspath(self.checkpoint_dir)!r} is a "
                    "file."
                )
        if isinstance(self.verbose, str) and self.verbose != "auto" or (
                not isinstance(self.verbose, str) and self.verbose not in (0, 1, 2)):
            raise ValueError(f"verbose must be 'auto', 0, 1 or 2; got {self.verbose!r}.")
        check_random_state_param(self.random_state)
        if not (isinstance(self.jit_compile, (bool, np.bool_))
                or isinstance(self.jit_compile, str) and self.jit_compile == "auto"):
            raise ValueError(
                f'jit_compile must be "auto", True or False; got {self.jit_compile!r}.')
        p["jit_compile"] = self.jit_compile if self.jit_compile == "auto" else bool(
            self.jit_compile)
        if self.image_shape is not None:
            shape = self.image_shape
            ok = isinstance(shape, (tuple, list)) and len(shape) in (2, 3) and all(
                isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1
                for s in shape
            )
            if not ok:
                raise ValueError(
                    "image_shape must be (height, width) or (height, width, channels) "
                    f"of positive integers; got {shape!r}."
                )
        return p

    def _check_X(self, X):
        """Validate images for a fitted model (transform, predict, score)."""
        shape = self.image_shape_
        single = {tuple(shape)} | ({tuple(shape[:2])} if shape[2] == 1 else set())
        if self._layout != "flat" and tuple(np.shape(X)) in single:
            raise ValueError(
                f"X has shape {np.shape(X)}: that is one image without the batch axis. "
                f"Pass a batch of images, e.g. X[None] for a single image of shape "
                f"{np.shape(X)}."
            )
        try:
            images, _ = check_images(X, image_shape=shape, name="X")
        except ValueError as exc:
            if "was expected" in str(exc):
                raise ValueError(
                    f"{exc} The model was fitted on images of shape {self.image_shape_}."
                ) from None
            raise
        return images

    def _resolve_verbose(self):
        from .training.loop import resolve_verbose

        return resolve_verbose(self.verbose)

    # --------------------------------------------------------------------- fit
    def fit(self, X, y, groups=None, *, resume=False):
        """Train the autoencoder in two stages and fit the latent classifier.

        Everything is validated before any fitted attribute changes: a fit
        that fails (bad input, or an error during training) leaves a fitted
        estimator exactly as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels])
            Crops with intensities in [0, 1]; flat ``(n_samples, n_pixels)``
            rows when ``image_shape`` is set.
        y : array-like of shape (n_samples,)
            Fate labels; at least two classes.
        groups : array-like of shape (n_samples,), optional
            Group labels (e.g. lineage ids): the validation split keeps each
            group on one side.
        resume : bool, default=False
            Continue from the checkpoint in ``checkpoint_dir`` when there is
            one (otherwise warn and start afresh). The data and parameters
            must be those of the interrupted fit (checked); the run continues
            with the interrupted run's seed, so the result equals that of an
            uninterrupted fit on the same backend.

        Returns
        -------
        self : CellFateAAE
            The fitted estimator.

        Raises
        ------
        ValueError, TypeError
            Invalid hyper-parameters or input, before any training.
        FloatingPointError
            A loss became NaN or infinite; the estimator keeps the weights of
            the last finite epoch and ``stop_reason_`` is ``"non-finite loss"``.
        KeyboardInterrupt
            Only with ``on_interrupt="raise"``, after the estimator was left
            fitted with the weights of the last completed epoch.

        Warns
        -----
        LatentWarning
            The latent collapsed, its features are correlated beyond
            ``ai4cellfate._diagnostics.MAX_LATENT_CORRELATION`` (|r| > 0.5), or
            its KL divergence exceeds ``max_kl`` (see
            :func:`ai4cellfate._diagnostics.latent_warnings`).
        """
        state = self._fit_state(X, y, groups, resume)
        for name in _FITTED:  # commit: the new model replaces the old one whole
            self.__dict__.pop(name, None)
        self.__dict__.update(state)
        self._fit_params = self.get_params(deep=False)  # what save() records
        self._warn_latent(state.pop("_z_train"), self.max_kl)
        self.__dict__.pop("_z_train", None)
        if self.stop_reason_ == "non-finite loss":
            raise FloatingPointError(state["_message"])
        if self.stop_reason_ == "interrupted" and self.on_interrupt == "raise":
            raise KeyboardInterrupt(
                f"CellFateAAE.fit interrupted after {self.n_epochs_} epochs; the estimator "
                "holds the model of the last completed epoch"
                + (f" and can resume from {self.checkpoint_dir}" if self.checkpoint_dir else "")
                + "."
            )
        return self

    def _fit_state(self, X, y, groups, resume):
        """Validate, train and return the fitted attributes (``self`` untouched)."""
        p = self._check_params()
        if not isinstance(resume, (bool, np.bool_)):
            raise TypeError(f"resume must be True or False; got {resume!r}.")
        if resume and self.checkpoint_dir is None:
            raise ValueError(
                "resume=True needs checkpoint_dir: set CellFateAAE(checkpoint_dir=...) to the "
                "folder of the interrupted fit's checkpoint."
            )
        images, layout = check_images(X, image_shape=self.image_shape, name="X")
        y_arr = np.asarray(check_labels(y))
        if y_arr.ndim == 2 and y_arr.shape[1] == 1:
            y_arr = y_arr.ravel()
        if y_arr.ndim != 1:
            raise ValueError(f"y must be 1-D (one label per sample); got shape {y_arr.shape}.")
        if len(y_arr) != len(images):
            raise ValueError(
                f"X has {len(images)} samples but y has {len(y_arr)}; they must match.")
        check_classification_targets(y_arr)
        encoder = LabelEncoder().fit(y_arr)
        classes = encoder.classes_
        if len(classes) < 2:
            raise ValueError(f"y has a single class ({classes[0]!r}); at least 2 classes are "
                             "needed to learn fates.")
        y_enc = encoder.transform(y_arr).astype(np.int64)
        if groups is not None:
            groups = np.asarray(groups)
            if groups.ndim != 1 or len(groups) != len(images):
                raise ValueError(f"groups must be 1-D with one entry per sample "
                                 f"({len(images)}); got shape {groups.shape}.")
        _check_informative(images)
        from .training import data, loop

        ckpt = self._open_checkpoint(p, images, y_enc, groups, classes, resume)
        seed = ckpt.seed if ckpt is not None and ckpt.seed is not None else _run_seed(
            self.random_state)
        train, val = data.validation_split(y_enc, groups, seed, p["validation_fraction"])
        missing = set(range(len(classes))) - set(np.unique(y_enc[train]).tolist())
        if missing:
            raise ValueError(
                "The training part after the validation split lacks classes "
                f"{sorted(classes[list(missing)].tolist())}; give more samples of "
                "each class or lower validation_fraction.")
        X_tr, y_tr = data.training_images(images[train], y_enc[train], augment=self.augment,
                                          balance=self.balance, seed=seed)
        if len(X_tr) < p["batch_size"]:
            raise ValueError(
                f"batch_size={p['batch_size']} is larger than the {len(X_tr)} training "
                f"images left after the validation split"
                f"{', augmentation' if self.augment else ''}"
                f"{' and class balancing' if self.balance else ''}; lower batch_size or "
                "give more data.")
        X_fit, y_fit = images[train], y_enc[train]
        X_val, y_val = (X_fit, y_fit) if val is train else (images[val], y_enc[val])

        loop.seed_everything(seed)
        steps = (p["stage1_epochs"] + p["min_epochs"] + 1) * (len(X_tr) // p["batch_size"])
        model = self._build_model(p, images.shape[1:], len(classes), seed,
                                  jit_compile=_resolve_jit_compile(p["jit_compile"], steps))
        weights = {k: p[k] for k in ("lambda_recon", "lambda_adv", "lambda_contra", "lambda_cov")}
        schedule = loop.Schedule(p["stage1_epochs"], p["min_epochs"], p["max_epochs"],
                                 p["batch_size"], weights)
        rule = loop.StoppingRule(p["min_centroid_distance"], p["max_kl"], p["min_accuracy"],
                                 p["min_precision"], self.criterion_precision,
                                 bool(self.restore_best_weights))
        verbose = self._resolve_verbose()
        from .training.model import backend_module

        try:
            with backend_module().cpu_threads():
                result = loop.train_two_stage(
                    model, (X_tr, y_tr), (X_fit, y_fit, X_val, y_val), schedule, rule,
                    seed=seed, encode=lambda A: _predict_net(model.encoder, A),
                    checkpoint=ckpt, verbose=verbose,
                    keras_verbose=1 if verbose == 2 else 0,
                    fit_info={"random_state": (int(self.random_state) if isinstance(
                        self.random_state, numbers.Integral) else None)})
        finally:
            # A compiled PyTorch step (and its compiled code) is not kept
            # with the fitted model.
            model._compiled_losses = None
        # The latent classifier sees all of the user's training data.
        Z = _predict_net(model.encoder, images)
        if not np.all(np.isfinite(Z)):
            raise FloatingPointError(
                "The encoder produced non-finite latents; the training diverged.")
        from .training.criteria import fit_latent_classifier

        model.classifier.get_layer("logits").set_weights(list(fit_latent_classifier(Z, y_enc)))
        return {
            "classes_": classes, "image_shape_": tuple(int(s) for s in images.shape[1:]),
            "n_features_in_": int(np.prod(images.shape[1:])), "_layout": layout,
            "model_": model, "history_": result.history, "n_epochs_": result.n_epochs,
            "stop_reason_": result.stop_reason, "best_epoch_": result.best_epoch,
            "resumed_from_epoch_": result.resumed_from_epoch, "_message": result.message,
            "_z_train": Z,
        }

    def _build_model(self, p, image_shape, n_classes, seed, jit_compile="auto"):
        from .training import AdversarialAutoencoder
        from .training.model import make_adam

        model = AdversarialAutoencoder(
            image_shape, latent_dim=p["latent_dim"], n_classes=n_classes,
            lambda_recon=p["lambda_recon"], lambda_adv=p["lambda_adv"],
            lambda_contra=p["lambda_contra"], lambda_cov=p["lambda_cov"],
            temperature=p["temperature"], noise_std=p["noise_std"],
            ssim_window=p["ssim_window"], ssim_form=self.ssim_form, seed=seed,
        )
        model.compile(optimizer=make_adam(p["learning_rate"], beta_1=0.0, beta_2=0.9),
                      jit_compile=jit_compile)
        # Built here, in a fixed variable order, so a checkpoint restores it.
        model.optimizer.build(model.trainable_variables)
        return model

    _FINGERPRINT_EXCLUDES = ("verbose", "checkpoint_dir", "checkpoint_every", "on_interrupt",
                             "jit_compile", "random_state")

    def _open_checkpoint(self, p, images, y_enc, groups, classes, resume):
        """Checkpoint bookkeeping: fingerprint of this fit and (with resume) its state."""
        if self.checkpoint_dir is None:
            return None
        from ._checkpoint import data_fingerprint
        from .training.loop import open_checkpoint

        params = {k: v for k, v in self.get_params().items()
                  if k not in self._FINGERPRINT_EXCLUDES}
        if params["image_shape"] is not None:
            params["image_shape"] = list(params["image_shape"])
        fingerprint = {
            "params": json.loads(json.dumps(params, default=str)),
            "data": data_fingerprint(images, y_enc, groups),
            "classes": [str(c) for c in classes],
            "backend": _keras().backend.backend(),
        }
        seed = (_run_seed(self.random_state)
                if isinstance(self.random_state, numbers.Integral) else None)
        return open_checkpoint(self.checkpoint_dir, p["checkpoint_every"], fingerprint,
                               resume=resume, random_seed=seed)

    @staticmethod
    def _warn_latent(Z, max_kl):
        from ._diagnostics import latent_warnings

        for message in latent_warnings(Z, max_kl):
            warnings.warn(message, LatentWarning, stacklevel=3)

    # --------------------------------------------------------------- inference
    def _encode(self, images):
        return _predict_net(self.model_.encoder, images)

    @property
    def encoder_(self):
        check_is_fitted(self, "model_")
        return self.model_.encoder

    @property
    def decoder_(self):
        check_is_fitted(self, "model_")
        return self.model_.decoder

    def transform(self, X):
        """Latent vectors of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels])
            Crops shaped like the training images.

        Returns
        -------
        Z : ndarray of shape (n_samples, latent_dim)
        """
        check_is_fitted(self, "model_")
        return self._encode(self._check_X(X))

    def predict_latent_proba(self, Z):
        """Class probabilities of latent vectors from the latent classifier.

        Parameters
        ----------
        Z : array-like of shape (n_samples, latent_dim)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns in ``classes_`` order.
        """
        check_is_fitted(self, "model_")
        Z = self._check_Z(Z)
        kernel, bias = self.model_.classifier.get_layer("logits").get_weights()
        return _softmax(Z.astype(np.float64) @ kernel + bias)

    def predict_proba(self, X):
        """Fate probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels])

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns in ``classes_`` order.
        """
        return self.predict_latent_proba(self.transform(X))

    def predict(self, X):
        """Predicted fate of each crop.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels])

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def score(self, X, y, sample_weight=None):
        """Accuracy of :meth:`predict` on ``X`` against ``y``.

        Same as scikit-learn's classifier score, but labels the model was not
        fitted on are an error rather than silently counted wrong. For the
        preprint's (balanced) accuracy use
        :func:`ai4cellfate.metrics.balanced_accuracy` or
        ``scoring="balanced_accuracy"``.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels])
        y : array-like of shape (n_samples,)
            True labels, all among ``classes_``.
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        float
            Fraction of correctly predicted samples.

        Raises
        ------
        ValueError
            ``y`` holds labels the model was not fitted on, or its length
            differs from ``X``.
        """
        check_is_fitted(self, "model_")
        y_arr = np.asarray(y)
        if y_arr.ndim != 1:
            raise ValueError(f"y must be 1-D (one label per sample); got shape {y_arr.shape}.")
        known = set(self.classes_.tolist())
        unseen = sorted({v for v in y_arr.tolist() if v not in known}, key=repr)
        if unseen:
            raise ValueError(
                f"y contains labels the model was not fitted on: {unseen[:10]}; its classes "
                f"are {self.classes_.tolist()}."
            )
        if len(y_arr) != len(X):
            raise ValueError(
                f"X has {len(X)} samples but y has {len(y_arr)}; they must match."
            )
        return super().score(X, y_arr, sample_weight=sample_weight)

    def _check_Z(self, Z):
        try:
            A = np.asarray(Z)
        except ValueError:
            raise ValueError(
                f"Z must be a rectangular array of shape (n, {self.model_.latent_dim}); its "
                "rows have different lengths."
            ) from None
        if A.dtype.kind not in "fiub":
            raise TypeError(f"Z must be numeric latent vectors; got dtype {A.dtype}.")
        A = A.astype(np.float32)
        if A.ndim == 1:
            A = A[None, :]
        if A.ndim != 2 or A.shape[1] != self.model_.latent_dim:
            raise ValueError(
                f"Z must have shape (n, {self.model_.latent_dim}) (latent_dim="
                f"{self.model_.latent_dim}); got shape {np.shape(Z)}."
            )
        if len(A) == 0:
            raise ValueError("Z is empty: it has 0 latent vectors.")
        if not np.all(np.isfinite(A)):
            raise ValueError("Z contains NaN or infinite values.")
        return A

    def decode(self, Z):
        """Images generated from latent vectors.

        Parameters
        ----------
        Z : array-like of shape (n_samples, latent_dim) or (latent_dim,)

        Returns
        -------
        images : ndarray
            In the layout of the training ``X``: ``(n, H, W)``,
            ``(n, H, W, C)`` or flat ``(n, H * W * C)``.
        """
        check_is_fitted(self, "model_")
        out = _predict_net(self.model_.decoder, self._check_Z(Z))
        if self._layout == "hw":
            return out[..., 0]
        if self._layout == "flat":
            return out.reshape(len(out), -1)
        return out

    def inverse_transform(self, Z):
        """Same as :meth:`decode`."""
        return self.decode(Z)

    def get_feature_names_out(self, input_features=None):
        """Names of the latent features: ``z0, z1, ...``.

        Parameters
        ----------
        input_features : ignored
            Present for API consistency.

        Returns
        -------
        names : ndarray of str
        """
        check_is_fitted(self, "model_")
        return np.asarray([f"z{d}" for d in range(self.model_.latent_dim)], dtype=object)

    def latent_diagnostics(self, X, y=None, *, bins=100):
        """Latent diagnostics of ``X``: KL to N(0, 1), correlations, centroid distance.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels])
        y : array-like of shape (n_samples,), optional
            Labels, for the class-centroid distance.
        bins : int, default=100
            Histogram bins of the KL estimate.

        Returns
        -------
        diagnostics : pandas.Series
            KL divergence per dimension, correlations, class-centroid
            distance and normality p-values; see
            :func:`ai4cellfate.metrics.latent_diagnostics`.
        """
        from .metrics import latent_diagnostics

        return latent_diagnostics(self.transform(X), y, bins=bins)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        tags.input_tags.allow_nan = False
        return tags

    # ----------------------------------------------------------- persistence
    def save(self, path, *, overwrite=False):
        """Save the fitted model to one ``.keras`` file.

        The file is a Keras archive of the network with this estimator's
        parameters, classes and history inside (``ai4cellfate.json``); it
        loads under any backend with :func:`ai4cellfate.load`. The file is
        written to a temporary name first and renamed, so a failure leaves no
        half-written file.

        Parameters
        ----------
        path : str or path-like
            Destination; must end with ``.keras``.
        overwrite : bool, default=False
            Replace an existing file.
        """
        from . import _persistence

        _persistence.save(self, path, overwrite=overwrite)

    def __getstate__(self):
        state = self.__dict__.copy()
        if "model_" in state:
            from ._persistence import model_to_bytes

            state["model_"] = model_to_bytes(state["model_"])
        return state

    def __setstate__(self, state):
        model = state.get("model_")
        if isinstance(model, bytes):
            from ._persistence import model_from_bytes

            state["model_"] = model_from_bytes(model)
        self.__dict__.update(state)


def _predict_net(net, A):
    from .training.inference import predict

    return predict(net, A)


def _check_informative(images):
    """Refuse data with nothing to learn: every crop constant (e.g. all zero)."""
    flat = images.reshape(len(images), -1)
    spread = flat.max(axis=1) - flat.min(axis=1)
    if np.all(spread == 0):
        values = np.unique(flat[:, 0])
        shown = ", ".join(f"{v:g}" for v in values[:5]) + (", ..." if len(values) > 5 else "")
        raise ValueError(
            f"X holds no image structure: every one of its {len(images)} crops is constant "
            f"(values {shown}), so there is nothing to reconstruct or classify. Check the "
            "crops (empty masks? wrong channel? intensities scaled to zero?)."
        )
