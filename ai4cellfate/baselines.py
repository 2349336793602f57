"""Baseline classifiers of the preprint, as scikit-learn estimators on Keras.

- :class:`SimpleClassifier`: the "simple" classifier that AI4CellFate puts on
  its latent space, ``Dropout(0.3) -> Dense(n_classes, softmax, L2 1e-4)``
  (a regularised multinomial logistic regression); the preprint also uses it
  on pairs of hand-picked features.
- :class:`OptimisedMLP`: the "optimised" tabular MLP of Supplementary
  Table 6, ``BatchNorm -> Dense(32, relu) -> Dropout(0.3) -> Dense(16, relu)
  -> Dropout(0.3) -> Dense(8, relu) -> Dropout(0.3) -> Dense(n_classes,
  softmax)``, every Dense with L2 1e-4.

Both train with Adam on the (class-weighted) cross-entropy, standardise
their inputs with a :class:`~sklearn.preprocessing.StandardScaler` fitted in
:meth:`fit`, use only ``keras.ops`` and run on every Keras backend.
"""

from __future__ import annotations

import numbers

import keras
import numpy as np
from keras import layers, ops
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

__all__ = ["SimpleClassifier", "OptimisedMLP"]

_PREDICT_CHUNK = 8192


def _seed_from(random_state):
    """An int seed from ``random_state`` (None stays None)."""
    if random_state is None:
        return None
    if isinstance(random_state, numbers.Integral):
        return int(random_state)
    return int(check_random_state(random_state).randint(0, 2**31 - 1))


def _glorot(seed, k):
    """A Glorot-uniform initializer with its own seed (``None``: unseeded)."""
    return keras.initializers.GlorotUniform(seed=None if seed is None else seed + k)


def _build_simple_classifier(n_features, n_classes=2, dropout=0.3, l2=1e-4, seed=None):
    """The preprint's simple classifier, with seeded weights and dropout.

    ``Dropout(dropout) -> Dense(n_classes, softmax, L2 l2)``, as
    :func:`ai4cellfate.networks.build_latent_classifier`.
    """
    inputs = keras.Input(shape=(int(n_features),), name="features")
    x = layers.Dropout(dropout, seed=seed)(inputs)
    outputs = layers.Dense(
        int(n_classes),
        activation="softmax",
        kernel_initializer=_glorot(seed, 0),
        kernel_regularizer=keras.regularizers.L2(l2),
        name="probabilities",
    )(x)
    return keras.Model(inputs, outputs, name="simple_classifier")


def _build_tabular_mlp(
    n_features, n_classes=2, hidden=(32, 16, 8), dropout=0.3, l2=1e-4, seed=None
):
    """The preprint's optimised tabular MLP (Supplementary Table 6).

    ``BatchNorm -> [Dense(h, relu) -> Dropout(dropout)] for h in hidden ->
    Dense(n_classes, softmax)``, every Dense with an L2 penalty ``l2``; every
    kernel and dropout layer seeded from ``seed`` (``None``: unseeded).
    """
    inputs = keras.Input(shape=(int(n_features),), name="features")
    x = layers.BatchNormalization(name="input_norm")(inputs)
    for k, units in enumerate(hidden):
        x = layers.Dense(
            int(units),
            activation="relu",
            kernel_initializer=_glorot(seed, k),
            kernel_regularizer=keras.regularizers.L2(l2),
            name=f"dense_{k}",
        )(x)
        x = layers.Dropout(dropout, seed=None if seed is None else seed + 100 + k)(x)
    outputs = layers.Dense(
        int(n_classes),
        activation="softmax",
        kernel_initializer=_glorot(seed, len(hidden)),
        kernel_regularizer=keras.regularizers.L2(l2),
        name="probabilities",
    )(x)
    return keras.Model(inputs, outputs, name="optimised_mlp")


class _KerasClassifier(ClassifierMixin, BaseEstimator):
    """Shared fit / predict / pickling of the Keras baselines.

    Subclasses implement ``_build_network(n_features, n_classes, seed)``.
    """

    def __init__(
        self,
        *,
        epochs=50,
        batch_size=32,
        learning_rate=1e-3,
        class_weight="balanced",
        standardize=True,
        jit_compile="auto",
        random_state=None,
        verbose=0,
    ):
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.class_weight = class_weight
        self.standardize = standardize
        self.jit_compile = jit_compile
        self.random_state = random_state
        self.verbose = verbose

    # -- hooks ------------------------------------------------------------
    def _build_network(self, n_features, n_classes, seed):  # pragma: no cover
        raise NotImplementedError

    def _targets(self, y_enc):
        return y_enc

    def _loss(self):
        return keras.losses.SparseCategoricalCrossentropy()

    def _prepare(self, X):
        """Network input from the (standardised) feature matrix."""
        return X

    # -- validation -------------------------------------------------------
    def _check_params(self):
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        lr = self.learning_rate
        if not isinstance(lr, numbers.Real) or not np.isfinite(lr) or lr <= 0:
            raise ValueError(f"learning_rate must be a positive number, got {lr!r}.")
        cw = self.class_weight
        if not (cw is None or cw == "balanced" or isinstance(cw, dict)):
            raise ValueError(
                f'class_weight must be None, "balanced" or a dict, got {cw!r}.'
            )
        if not isinstance(self.standardize, (bool, np.bool_)):
            raise TypeError(f"standardize must be a bool, got {self.standardize!r}.")
        if not (self.jit_compile == "auto" or isinstance(self.jit_compile, (bool, np.bool_))):
            raise ValueError(
                f'jit_compile must be "auto", True or False, got {self.jit_compile!r}.'
            )
        if not isinstance(self.verbose, numbers.Integral):
            raise TypeError(f"verbose must be an int, got {self.verbose!r}.")
        if not (
            self.random_state is None
            or isinstance(self.random_state, (numbers.Integral, np.random.RandomState))
        ):
            raise TypeError(
                "random_state must be None, an int or a numpy RandomState, got "
                f"{self.random_state!r}."
            )

    # -- sklearn API ------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Train the network on ``X``, ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training features.
        y : array-like of shape (n_samples,)
            Class labels (at least two classes).
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights, multiplied with the class weights.

        Returns
        -------
        self : object
            The fitted classifier.
        """
        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float32, ensure_min_samples=2)
        check_classification_targets(y)
        classes, y_enc = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"y must contain at least two classes, got only {classes.tolist()}."
            )
        if isinstance(self.class_weight, dict):
            unknown = set(self.class_weight) - set(classes.tolist())
            if unknown:
                raise ValueError(
                    f"class_weight has labels {sorted(unknown)} that are not in y."
                )
        weights = np.ones(len(y), dtype=np.float64)
        if self.class_weight is not None:
            weights *= compute_sample_weight(self.class_weight, y)
        if sample_weight is not None:
            weights *= _check_sample_weight(sample_weight, X)
        if weights.sum() <= 0:
            raise ValueError("sample_weight must give some sample a positive weight.")
        weights = (weights / weights.mean()).astype(np.float32)
        self.classes_ = classes

        if self.standardize:
            self.scaler_ = StandardScaler().fit(X, sample_weight=None)
            X = self.scaler_.transform(X).astype(np.float32)
        else:
            self.scaler_ = None
        # Every random choice comes from ``seed``: the initializers and dropout
        # layers get explicit seeds, and the batches are shuffled here with a
        # numpy Generator (Keras' own shuffling would draw from global state).
        seed = _seed_from(self.random_state)
        if seed is None:
            seed = int(np.random.default_rng().integers(0, 2**31 - 1))
        rng = np.random.default_rng(seed)
        # One batch shape only (a partial last batch would be a second compile
        # on jax): pad with randomly chosen rows of weight zero.
        n = len(X)
        batch_size = min(int(self.batch_size), n)
        n_pad = (-n) % batch_size
        jit_compile = "auto" if self.jit_compile == "auto" else bool(self.jit_compile)
        model = self._build_network(X.shape[1], len(classes), seed)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=float(self.learning_rate)),
            loss=self._loss(),
            jit_compile=jit_compile,
        )
        targets = self._targets(y_enc.astype(np.int32))
        inputs = self._prepare(X)
        if n_pad:
            extra = rng.integers(0, n, size=n_pad)
            inputs = np.concatenate([inputs, inputs[extra]])
            targets = np.concatenate([targets, targets[extra]])
            weights = np.concatenate([weights, np.zeros(n_pad, np.float32)])
        loss_curve = []
        for _ in range(int(self.epochs)):
            order = rng.permutation(len(inputs))
            history = model.fit(
                inputs[order],
                targets[order],
                sample_weight=weights[order],
                batch_size=batch_size,
                epochs=1,
                shuffle=False,
                verbose=self.verbose,
            )
            loss_curve.extend(float(v) for v in history.history.get("loss", []))
        self.model_ = model
        self.loss_curve_ = loss_curve
        self.n_iter_ = int(self.epochs)
        return self

    def _forward(self, X):
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        if self.scaler_ is not None:
            X = self.scaler_.transform(X).astype(np.float32)
        X = self._prepare(X)
        out = [
            ops.convert_to_numpy(self.model_(X[i : i + _PREDICT_CHUNK], training=False))
            for i in range(0, len(X), _PREDICT_CHUNK)
        ]
        return np.concatenate(out, axis=0).astype(np.float64)

    def predict_proba(self, X):
        """Class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities of the classes in ``classes_`` order.
        """
        return self._forward(X)

    def predict(self, X):
        """Most probable class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Predicted labels, taken from ``classes_``.
        """
        check_is_fitted(self, "model_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=-1)]

    # -- pickling ---------------------------------------------------------
    def __getstate__(self):
        state = self.__dict__.copy()
        model = state.pop("model_", None)
        if model is not None:
            state["_model_weights"] = [np.asarray(w) for w in model.get_weights()]
        return state

    def __setstate__(self, state):
        weights = state.pop("_model_weights", None)
        self.__dict__.update(state)
        if weights is not None:
            model = self._build_network(self.n_features_in_, len(self.classes_), None)
            model.set_weights(weights)
            self.model_ = model

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags


_PARAMS_DOC = """
    Parameters
    ----------
    epochs : int, default=50
        Training epochs.
    batch_size : int, default=32
        Mini-batch size (capped at the number of samples). The training set
        is padded to a whole number of batches with zero-weight rows, so
        every step has the same shape.
    learning_rate : float, default=1e-3
        Adam learning rate.
    class_weight : "balanced", dict or None, default="balanced"
        Class weights of the cross-entropy, as in scikit-learn
        (``"balanced"``: inversely proportional to class frequencies, the
        preprint's choice for its tabular baselines).
    standardize : bool, default=True
        Standardise the features with a StandardScaler fitted in ``fit``.
    jit_compile : "auto" or bool, default="auto"
        Keras' ``jit_compile`` for the training step (``"auto"``: compile
        where the backend supports it).
    random_state : int, RandomState instance or None, default=None
        Seed of the weights, dropout and shuffling. An int makes ``fit``
        reproducible on a given backend; no global random state is read or
        changed.
    verbose : int, default=0
        Keras ``fit`` verbosity (0 silent).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    n_features_in_ : int
        Number of features seen in ``fit``.
    scaler_ : StandardScaler or None
        The fitted scaler (None when ``standardize=False``).
    model_ : keras.Model
        The trained network.
    loss_curve_ : list of float
        Training loss after every epoch.
"""


class SimpleClassifier(_KerasClassifier):
    __doc__ = (
        """The preprint's "simple" classifier: dropout and one softmax layer.

    ``Dropout(0.3) -> Dense(n_classes, softmax, L2 1e-4)`` on standardised
    features: a regularised multinomial logistic regression, the classifier
    AI4CellFate puts on its 2-D latent space and the preprint's simple
    baseline on pairs of hand-picked features.
"""
        + _PARAMS_DOC
        + """
    Examples
    --------
    >>> import numpy as np
    >>> from ai4cellfate.baselines import SimpleClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 2)); y = (X[:, 0] + X[:, 1] > 0).astype(int)
    >>> clf = SimpleClassifier(epochs=100, random_state=0).fit(X, y)
    >>> clf.predict_proba(X).shape
    (200, 2)
    >>> bool(clf.score(X, y) > 0.9)
    True
    """
    )

    def _build_network(self, n_features, n_classes, seed):
        return _build_simple_classifier(n_features, n_classes, seed=seed)


class OptimisedMLP(_KerasClassifier):
    __doc__ = (
        """The preprint's "optimised" MLP for tabular features (Supp. Table 6).

    ``BatchNorm -> Dense(32, relu) -> Dropout(0.3) -> Dense(16, relu) ->
    Dropout(0.3) -> Dense(8, relu) -> Dropout(0.3) -> Dense(n_classes,
    softmax)``, every Dense with an L2 penalty of 1e-4, trained with Adam on
    the class-weighted cross-entropy.
"""
        + _PARAMS_DOC
        + """
    Examples
    --------
    >>> import numpy as np
    >>> from ai4cellfate.baselines import OptimisedMLP
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 5)); y = (X[:, 0] - X[:, 2] > 0).astype(int)
    >>> clf = OptimisedMLP(epochs=30, random_state=0).fit(X, y)
    >>> clf.predict(X[:3]).shape
    (3,)
    >>> bool(clf.score(X, y) > 0.8)
    True
    """
    )

    def _build_network(self, n_features, n_classes, seed):
        return _build_tabular_mlp(n_features, n_classes, seed=seed)


class _PairDense(layers.Layer):
    """Independent ``Dense(units, activation)`` layers, one per feature pair.

    Input ``(batch, n_pairs, n_inputs)``, output ``(batch, n_pairs, units)``;
    ``activation`` is ``"softmax"`` (over units) or ``"relu"``.
    """

    def __init__(self, n_pairs, units, l2=1e-4, seed=None, activation="softmax", **kwargs):
        super().__init__(**kwargs)
        self.n_pairs = int(n_pairs)
        self.units = int(units)
        self.l2 = float(l2)
        self.seed = seed
        if activation not in ("softmax", "relu"):
            raise ValueError(f"activation must be 'softmax' or 'relu', got {activation!r}.")
        self.activation = activation

    def build(self, input_shape):
        n_inputs = int(input_shape[-1])
        limit = float(np.sqrt(6.0 / (n_inputs + self.units)))  # Glorot uniform
        self.kernel = self.add_weight(
            shape=(self.n_pairs, n_inputs, self.units),
            initializer=keras.initializers.RandomUniform(-limit, limit, seed=self.seed),
            regularizer=keras.regularizers.L2(self.l2),
            name="kernel",
        )
        self.bias = self.add_weight(
            shape=(self.n_pairs, self.units), initializer="zeros", name="bias"
        )

    def call(self, x):
        logits = ops.einsum("bpi,piu->bpu", x, self.kernel) + self.bias
        if self.activation == "relu":
            return ops.relu(logits)
        return ops.softmax(logits, axis=-1)


def _summed_pair_crossentropy(y_true, y_pred):
    """Cross-entropy summed over pairs: each pair trains as if alone."""
    y_true = ops.reshape(y_true, ops.shape(y_pred)[:-1])
    per_pair = keras.losses.sparse_categorical_crossentropy(y_true, y_pred)
    return ops.sum(per_pair, axis=-1)


class _PairSimpleClassifier(_KerasClassifier):
    """:class:`SimpleClassifier` on every pair of features, trained at once.

    One Keras model holds an independent ``Dropout(0.3) -> Dense(n_classes,
    softmax, L2 1e-4)`` per pair; the loss is the sum of the pairs' losses,
    so (Adam being per-parameter) every pair trains as its own simple
    classifier would, at the cost of one fit. ``predict_proba`` returns
    ``(n_samples, n_pairs, n_classes)``; ``predict`` ``(n_samples,
    n_pairs)``. ``pairs`` is a sequence of column-index pairs.
    """

    def __init__(
        self,
        pairs=None,
        *,
        epochs=50,
        batch_size=32,
        learning_rate=1e-3,
        class_weight="balanced",
        standardize=True,
        jit_compile="auto",
        random_state=None,
        verbose=0,
    ):
        self.pairs = pairs
        super().__init__(
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            class_weight=class_weight,
            standardize=standardize,
            jit_compile=jit_compile,
            random_state=random_state,
            verbose=verbose,
        )

    def _pair_index(self, n_features):
        if self.pairs is None:
            from itertools import combinations

            return np.asarray(list(combinations(range(n_features), 2)), dtype=int)
        pairs = np.asarray(self.pairs, dtype=int)
        if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) == 0:
            raise ValueError(f"pairs must be a sequence of index pairs, got {self.pairs!r}.")
        if pairs.min() < 0 or pairs.max() >= n_features:
            raise ValueError(f"pairs has indices outside 0..{n_features - 1}.")
        return pairs

    def fit(self, X, y, sample_weight=None):
        n_features = np.shape(X)[1] if np.ndim(X) == 2 else None
        if n_features is not None:
            self.pairs_ = self._pair_index(n_features)
        return super().fit(X, y, sample_weight=sample_weight)

    def _prepare(self, X):
        return np.ascontiguousarray(X[:, self.pairs_])

    def _targets(self, y_enc):
        return np.repeat(y_enc[:, None], len(self.pairs_), axis=1)

    def _loss(self):
        return _summed_pair_crossentropy

    def _build_network(self, n_features, n_classes, seed):
        inputs = keras.Input(shape=(len(self.pairs_), 2), name="pairs")
        x = layers.Dropout(0.3, seed=seed)(inputs)
        outputs = _PairDense(len(self.pairs_), n_classes, l2=1e-4, seed=seed)(x)
        return keras.Model(inputs, outputs, name="pair_classifiers")


class _PairOptimisedMLP(_PairSimpleClassifier):
    """:class:`OptimisedMLP` on every pair of features, trained at once.

    Per pair, ``BatchNorm -> [PairDense(h, relu) -> Dropout(0.3)] for h in
    (32, 16, 8) -> PairDense(n_classes, softmax)``, L2 1e-4 on every kernel;
    the pairs share no weight (batch normalisation is per input column, which
    is per pair) and the loss is the sum of the pairs' losses, so every pair
    trains as its own optimised MLP would. Same outputs as
    :class:`_PairSimpleClassifier`.
    """

    def _build_network(self, n_features, n_classes, seed):
        n_pairs = len(self.pairs_)

        def sub(k):
            return None if seed is None else seed + k

        inputs = keras.Input(shape=(n_pairs, 2), name="pairs")
        x = layers.Reshape((2 * n_pairs,))(inputs)
        x = layers.BatchNormalization(name="input_norm")(x)
        x = layers.Reshape((n_pairs, 2))(x)
        for k, units in enumerate((32, 16, 8)):
            x = _PairDense(n_pairs, units, l2=1e-4, seed=sub(k), activation="relu",
                           name=f"pair_dense_{k}")(x)
            x = layers.Dropout(0.3, seed=sub(100 + k))(x)
        outputs = _PairDense(n_pairs, n_classes, l2=1e-4, seed=sub(3), name="probabilities")(x)
        return keras.Model(inputs, outputs, name="pair_optimised_mlps")
