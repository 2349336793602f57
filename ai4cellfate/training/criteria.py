"""Stage-2 stopping criteria of AI4CellFate (method specification, section 4).

After every stage-2 epoch the latents of a validation split carved from the
training data are checked for

1. class separation: distance between class centroids >= ``min_centroid_distance``;
2. a near-Gaussian latent: KL divergence to N(0, 1) <= ``max_kl`` in every
   dimension;
3. a usable latent classifier: balanced accuracy >= ``min_accuracy`` and
   precision >= ``min_precision`` of the closed-form latent classifier fitted
   on the training latents and scored on the validation latents.

Precision (criterion 3b) is prevalence-free by default: it is computed from
the row-normalised validation confusion matrix (every true class weighted
equally), as the authors' reference code does. The ordinary precision of a
fate depends on how common that fate is: with sensitivity = specificity =
0.72 and 17% dividing cells, the ordinary precision of "divides" is 0.345,
and reaching 0.65 would take a specificity of about 0.92, so a threshold of
0.65 could practically never hold at realistic class balances. The other
criteria carry no such trap: balanced accuracy is prevalence-free by
construction, the class-centroid distance does not depend on class sizes, and
the KL divergence is estimated on all training latents (a small sample biases
the histogram estimate upwards).

The authors retrain a Keras classifier for 50 epochs after every epoch; the
classifier here is the same penalised multinomial logistic regression solved
directly (milliseconds), see :func:`fit_latent_classifier`.
"""

from __future__ import annotations

import numpy as np
import keras
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, precision_score

from ..metrics import centroid_distance, kl_divergence_to_normal
from .inference import padded_rows

__all__ = ["fit_latent_classifier", "evaluate_criteria", "balanced_precision",
           "StoppingCriteria"]


def fit_latent_classifier(Z, y, l2=1e-4, class_weight="balanced"):
    """Fit the preprint's simple latent classifier by penalised maximum likelihood.

    The preprint's classifier, ``Dense(n_classes, softmax)`` with a kernel
    penalty ``l2 * ||W||^2`` added to the mean cross-entropy, is a penalised
    multinomial logistic regression, solved here exactly by scikit-learn
    (which minimises ``C * sum_i CE_i + ||W||^2 / 2``):

    * more than two classes: dividing the Keras objective by ``2 * l2`` gives
      ``C = 1 / (2 * l2 * n_samples)``;
    * two classes: the softmax depends only on the difference ``w = w1 - w0``
      of its two columns, and at the optimum ``w1 = -w0 = w / 2``, so the
      penalty is ``l2 * ||w||^2 / 2`` and ``C = 1 / (l2 * n_samples)`` for the
      single weight vector scikit-learn fits.

    Classes are weighted inversely to their frequency. The preprint's
    classifier also has a dropout layer before the softmax; its effect (a
    noisy regulariser during training) is not modelled, since at inference
    dropout is off and the penalised optimum is what the Keras training
    approaches.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, latent_dim)
        Latent vectors.
    y : ndarray of shape (n_samples,)
        Integer class indices ``0 .. n_classes - 1``.
    l2 : float, default=1e-4
        The Keras L2 factor of the preprint's classifier.
    class_weight : "balanced", dict or None, default="balanced"
        Class weighting.

    Returns
    -------
    kernel : ndarray of shape (latent_dim, n_classes)
    bias : ndarray of shape (n_classes,)
        Weights of the softmax layer: ``softmax(Z @ kernel + bias)`` are the
        class probabilities.
    """
    Z = np.asarray(Z, dtype=np.float64)
    y = np.asarray(y)
    n_classes = int(y.max()) + 1
    n_present = len(np.unique(y))
    factor = 1.0 if n_present == 2 else 2.0
    clf = LogisticRegression(
        C=1.0 / (factor * l2 * len(Z)), class_weight=class_weight, max_iter=1000
    )
    clf.fit(Z, y)
    present = clf.classes_.astype(int)
    kernel = np.zeros((Z.shape[1], n_classes))
    bias = np.full(n_classes, -30.0)  # classes absent from y get ~0 probability
    if len(present) == 2 and clf.coef_.shape[0] == 1:
        # Binary: sigmoid(w.z + b) == softmax([0, w.z + b])[1].
        bias[present[0]] = 0.0
        kernel[:, present[1]] = clf.coef_[0]
        bias[present[1]] = clf.intercept_[0]
    else:
        kernel[:, present] = clf.coef_.T
        bias[present] = clf.intercept_
    return kernel.astype("float32"), bias.astype("float32")


def _softmax_predict(Z, kernel, bias):
    return np.argmax(np.asarray(Z) @ kernel + bias, axis=1)


def evaluate_criteria(
    z_train,
    y_train,
    z_val,
    y_val,
    *,
    min_centroid_distance=0.5,
    max_kl=0.2,
    min_accuracy=0.65,
    min_precision=0.65,
    precision="balanced",
    kl_bins=100,
    kl_latents=None,
):
    """Compute the stopping-criterion values and whether all of them hold.

    Parameters
    ----------
    z_train, y_train : ndarray
        Training latents and integer labels (to fit the latent classifier).
    z_val, y_val : ndarray
        Validation latents and labels (to score the criteria).
    min_centroid_distance, max_kl, min_accuracy, min_precision : float
        Thresholds.
    precision : {"balanced", "ordinary"}, default="balanced"
        Which precision criterion 3b compares with ``min_precision``:
        ``"balanced"`` computes it from the row-normalised confusion matrix
        (independent of class prevalence), ``"ordinary"`` is ``TP / (TP + FP)``.
        Both are returned.
    kl_bins : int, default=100
        Histogram bins of the KL estimate.
    kl_latents : ndarray, optional
        Latents on which to estimate the KL divergence (default ``z_val``).
        The 100-bin histogram estimate is biased upwards on small samples (a
        true N(0, 1) sample of 160 scores about 0.34, of 400 about 0.13), so
        the estimator passes all of its training latents here.

    Returns
    -------
    values : dict
        ``centroid_distance``, ``kl_z0`` ... ``kl_max``,
        ``val_balanced_accuracy``, ``val_precision`` (ordinary) and
        ``val_balanced_precision`` (prevalence-free; both of the positive,
        i.e. last, class for two classes, macro averages otherwise),
        ``criterion_precision`` (the one compared with ``min_precision``) and
        ``criteria_met``.
    """
    if precision not in ("balanced", "ordinary"):
        raise ValueError(f"precision must be 'balanced' or 'ordinary'; got {precision!r}.")
    values = {"centroid_distance": centroid_distance(z_val, y_val)}
    kl = kl_divergence_to_normal(z_val if kl_latents is None else kl_latents, bins=kl_bins)
    for d, k in enumerate(kl):
        values[f"kl_z{d}"] = float(k)
    values["kl_max"] = float(np.max(kl))
    kernel, bias = fit_latent_classifier(z_train, y_train)
    pred = _softmax_predict(z_val, kernel, bias)
    n_classes = kernel.shape[1]
    values["val_balanced_accuracy"] = float(balanced_accuracy_score(y_val, pred))
    if n_classes == 2:
        prec = precision_score(y_val, pred, pos_label=1, zero_division=0)
    else:
        prec = precision_score(y_val, pred, average="macro", zero_division=0)
    values["val_precision"] = float(prec)
    values["val_balanced_precision"] = balanced_precision(y_val, pred, n_classes)
    values["criterion_precision"] = values[
        "val_balanced_precision" if precision == "balanced" else "val_precision"]
    values["criteria_met"] = bool(
        values["centroid_distance"] >= min_centroid_distance
        and values["kl_max"] <= max_kl
        and values["val_balanced_accuracy"] >= min_accuracy
        and values["criterion_precision"] >= min_precision
    )
    return values


def balanced_precision(y_true, y_pred, n_classes):
    """Prevalence-free precision from the row-normalised confusion matrix.

    ``R[t, p]`` is the fraction of true class ``t`` predicted as ``p``; the
    precision of class ``p`` is ``R[p, p] / sum_t R[t, p]``, the precision one
    would observe if every class were equally frequent. For two classes it is
    that of the positive (last) class, otherwise the macro average over the
    classes. A class never predicted scores 0.

    Parameters
    ----------
    y_true, y_pred : ndarray of int
        Class indices ``0 .. n_classes - 1``.
    n_classes : int

    Returns
    -------
    float

    Examples
    --------
    >>> balanced_precision(np.array([0, 0, 0, 0, 1, 1]), np.array([0, 0, 0, 1, 1, 0]), 2)
    0.6666666666666666
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    cm = np.zeros((n_classes, n_classes))
    np.add.at(cm, (y_true, y_pred), 1.0)
    rows = cm.sum(axis=1, keepdims=True)
    rates = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    col = rates.sum(axis=0)
    per_class = np.divide(np.diag(rates), col, out=np.zeros(n_classes), where=col > 0)
    return float(per_class[-1] if n_classes == 2 else per_class.mean())


class StoppingCriteria(keras.callbacks.Callback):
    """Keras callback checking the stage-2 criteria after every epoch.

    Parameters
    ----------
    encode : callable
        ``encode(X) -> Z`` with the model's current encoder (inference mode).
    train_data, val_data : tuple (X, y)
        Images and integer labels; the classifier of criterion 3 is fitted on
        the training latents and every criterion is scored on the validation
        latents.
    min_epochs : int
        Stage-2 epochs that must be exceeded before the criteria may stop
        training: the first possible stop is stage-2 epoch ``min_epochs + 1``
        (the authors' ``epoch > min_epochs``).
    thresholds : dict
        Keyword arguments of :func:`evaluate_criteria`.
    first_epoch : int, default=0
        Global index of the first stage-2 epoch.

    Attributes
    ----------
    records : dict
        Criterion values per global epoch index.
    met : bool
        Whether training was stopped because every criterion held.
    """

    def __init__(self, encode, train_data, val_data, min_epochs, thresholds, first_epoch=0):
        super().__init__()
        self.encode = encode
        self.train_data = train_data
        self.val_data = val_data
        self.min_epochs = int(min_epochs)
        self.thresholds = dict(thresholds)
        self.first_epoch = int(first_epoch)
        self.records = {}
        self.met = False
        self._joint = None  # training and validation images, concatenated once

    def _encode_both(self):
        """Training and validation latents: one encoder call on both image
        sets together where that computes fewer (padded) rows than two calls
        (one inference batch fewer each epoch; an image's latent does not
        depend on what else is in its batch)."""
        X_tr, X_val = self.train_data[0], self.val_data[0]
        if X_val is X_tr:
            z = self.encode(X_tr)
            return z, z
        n = len(X_tr)
        if padded_rows(n + len(X_val)) <= padded_rows(n) + padded_rows(len(X_val)):
            if self._joint is None:
                self._joint = np.concatenate([X_tr, X_val])
            z = self.encode(self._joint)
            return z[:n], z[n:]
        return self.encode(X_tr), self.encode(X_val)

    def on_epoch_end(self, epoch, logs=None):
        z_train, z_val = self._encode_both()
        if not (np.all(np.isfinite(z_train)) and np.all(np.isfinite(z_val))):
            return  # the non-finite guard of the estimator reports this
        same = self.val_data[0] is self.train_data[0]
        values = evaluate_criteria(
            z_train, self.train_data[1], z_val, self.val_data[1],
            kl_latents=z_train if same else np.concatenate([z_train, z_val]),
            **self.thresholds,
        )
        self.records[epoch] = values
        stage2_done = epoch - self.first_epoch + 1
        if values["criteria_met"] and stage2_done > self.min_epochs:
            self.met = True
            self.model.stop_training = True
