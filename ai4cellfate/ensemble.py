"""Seed ensembles: the average fate probability of independently seeded models.

A :class:`~ai4cellfate.CellFateAAE` fitted twice with different seeds gives
two different latent spaces and, on small data sets, noticeably different
predictions. :class:`SeedEnsemble` fits ``n_estimators`` clones of one
estimator, each with its own ``random_state`` drawn from the ensemble's, on
the same data, and averages their ``predict_proba``. It is a plain
scikit-learn meta-estimator: it clones, pickles, sits in a
:class:`~sklearn.pipeline.Pipeline` and tunes its members' parameters in
:class:`~sklearn.model_selection.GridSearchCV` as ``estimator__<param>``.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted

__all__ = ["SeedEnsemble"]

_MAX_SEED = np.iinfo(np.int32).max


def _member_seeds(random_state, n):
    """``n`` distinct integer seeds drawn from ``random_state``."""
    rng = check_random_state(random_state)
    seeds = []
    while len(seeds) < n:
        for s in rng.randint(0, _MAX_SEED, size=n - len(seeds)).tolist():
            if s not in seeds:
                seeds.append(int(s))
    return seeds


def _fit_member(estimator, X, y, fit_params):
    return estimator.fit(X, y, **fit_params)


class SeedEnsemble(ClassifierMixin, BaseEstimator):
    """Average of independently seeded copies of one probabilistic classifier.

    ``fit`` clones ``estimator`` ``n_estimators`` times, sets each clone's
    ``random_state`` to its own seed (distinct seeds drawn from
    ``random_state``, so an int makes the whole ensemble reproducible) and
    fits every clone on all of the data. ``predict_proba`` is the mean of the
    members' ``predict_proba``; ``predict`` the class of highest mean
    probability.

    The ensemble has no ``transform``, on purpose. The latent space of every
    :class:`~ai4cellfate.CellFateAAE` member is only defined up to a
    rotation or reflection (its prior N(0, I) and its losses do not change
    when the axes turn), so ``z0`` of one member is not ``z0`` of another:
    averaging the members' latents mixes unrelated axes, and concatenating
    them gives ``n_estimators * latent_dim`` features that are neither
    decorrelated nor interpretable, which is what the engineered latent is
    for. Use one member's latent, ``ensemble.estimators_[i].transform(X)``.

    Parameters
    ----------
    estimator : estimator, default=None
        Unfitted classifier with ``predict_proba`` and a ``random_state``
        parameter; ``None`` means ``CellFateAAE()`` with its defaults. To tune
        the members' parameters (``estimator__lambda_contra``) in a grid
        search, pass the estimator explicitly.
    n_estimators : int, default=5
        Number of members (at least 1).
    random_state : int, RandomState instance or None, default=None
        Draws the members' seeds. An int makes ``fit`` reproducible (as far
        as the members' own ``random_state`` makes them reproducible).
    n_jobs : int, default=None
        joblib workers fitting the members in parallel; ``None``: one.

    Attributes
    ----------
    estimators_ : list of estimators
        The fitted members, in the order of ``seeds_``.
    seeds_ : ndarray of shape (n_estimators,)
        The ``random_state`` of every member.
    classes_ : ndarray of shape (n_classes,)
        Class labels (the same for every member).
    n_features_in_ : int
        Features (pixels) per sample, as the members have it (only when the
        members set it).

    See Also
    --------
    ai4cellfate.studies.beyond_preprint : compares a seed ensemble with the
        single model under grouped cross-validation.

    Examples
    --------
    >>> from ai4cellfate import CellFateAAE
    >>> from ai4cellfate.datasets import make_nuclei
    >>> from ai4cellfate.ensemble import SeedEnsemble
    >>> X, y = make_nuclei(60, image_size=12, random_state=0)
    >>> tiny = CellFateAAE(stage1_epochs=1, min_epochs=0, max_epochs=1,
    ...                    augment=False, batch_size=16, verbose=0)
    >>> ens = SeedEnsemble(tiny, n_estimators=2, random_state=0)
    >>> ens.fit(X, y).predict_proba(X[:3]).shape
    (3, 2)
    >>> len(ens.estimators_), len(set(ens.seeds_.tolist()))
    (2, 2)

    The members' parameters are nested parameters of the ensemble:

    >>> from sklearn.model_selection import GridSearchCV
    >>> search = GridSearchCV(ens, {"estimator__lambda_contra": [0.0, 6.0]}, cv=2)
    >>> search.get_params()["estimator__estimator__lambda_contra"]  # the default
    6.0
    """

    def __init__(self, estimator=None, n_estimators=5, random_state=None, n_jobs=None):
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _check_params(self):
        n = self.n_estimators
        if (not isinstance(n, numbers.Integral) or isinstance(n, (bool, np.bool_))
                or n < 1):
            raise ValueError(f"n_estimators must be an int >= 1, got {n!r}.")
        if self.n_jobs is not None and (
            not isinstance(self.n_jobs, numbers.Integral)
            or isinstance(self.n_jobs, (bool, np.bool_)) or self.n_jobs == 0
        ):
            raise ValueError(f"n_jobs must be None or a non-zero int, got {self.n_jobs!r}.")
        rs = self.random_state
        valid = rs is None or isinstance(rs, np.random.RandomState) or (
            isinstance(rs, numbers.Integral) and not isinstance(rs, (bool, np.bool_)))
        if not valid:
            raise ValueError(
                "random_state must be None, an int or a numpy RandomState, got "
                f"{self.random_state!r}.")
        return self._template()

    def _template(self):
        if self.estimator is None:
            from .estimator import CellFateAAE  # lazy: keeps the import light

            return CellFateAAE()
        est = self.estimator
        missing = [m for m in ("fit", "predict_proba", "get_params", "set_params")
                   if not hasattr(est, m)]
        if missing:
            raise TypeError(
                f"estimator must be an unfitted classifier with predict_proba and "
                f"get_params/set_params; {type(est).__name__} lacks {missing}.")
        if "random_state" not in est.get_params(deep=False):
            raise TypeError(
                f"estimator must have a random_state parameter to seed the members; "
                f"{type(est).__name__} has none.")
        return est

    def fit(self, X, y, groups=None, **fit_params):
        """Fit ``n_estimators`` independently seeded clones of ``estimator``.

        Parameters
        ----------
        X : array-like
            Training samples, as ``estimator.fit`` takes them (crops for
            CellFateAAE).
        y : array-like of shape (n_samples,)
            Class labels.
        groups : array-like of shape (n_samples,), default=None
            Passed to every member's ``fit`` (CellFateAAE keeps each group on
            one side of its validation split); left out when ``None``.
        **fit_params
            Further keyword arguments of every member's ``fit``.

        Returns
        -------
        self : SeedEnsemble
            The fitted ensemble.

        Raises
        ------
        ValueError, TypeError
            Invalid ``n_estimators``, ``n_jobs``, ``random_state`` or
            ``estimator``, before any member is fitted.
        """
        template = self._check_params()
        seeds = _member_seeds(self.random_state, int(self.n_estimators))
        if groups is not None:
            fit_params = {**fit_params, "groups": groups}
        members = [clone(template).set_params(random_state=s) for s in seeds]
        if self.n_jobs is None or self.n_jobs == 1:
            fitted = [_fit_member(m, X, y, fit_params) for m in members]
        else:
            fitted = Parallel(n_jobs=self.n_jobs)(
                delayed(_fit_member)(m, X, y, fit_params) for m in members)
        classes = fitted[0].classes_
        for k, member in enumerate(fitted[1:], start=1):
            if not np.array_equal(member.classes_, classes):
                raise ValueError(
                    f"member {k} was fitted on classes {member.classes_.tolist()}, member 0 "
                    f"on {classes.tolist()}; the members must see the same classes.")
        for name in ("estimators_", "seeds_", "classes_", "n_features_in_"):
            self.__dict__.pop(name, None)
        self.estimators_ = list(fitted)
        self.seeds_ = np.asarray(seeds, dtype=np.int64)
        self.classes_ = classes
        if hasattr(fitted[0], "n_features_in_"):
            self.n_features_in_ = fitted[0].n_features_in_
        return self

    def predict_proba(self, X):
        """Mean of the members' class probabilities.

        Parameters
        ----------
        X : array-like
            Samples, as the members' ``predict_proba`` takes them.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns in ``classes_`` order; rows sum to one.
        """
        check_is_fitted(self, "estimators_")
        total = None
        for member in self.estimators_:
            p = np.asarray(member.predict_proba(X), dtype=np.float64)
            total = p if total is None else total + p
        return total / len(self.estimators_)

    def predict(self, X):
        """Class of highest mean probability.

        Parameters
        ----------
        X : array-like
            Samples, as the members' ``predict_proba`` takes them.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        try:
            from sklearn.utils import get_tags

            tags.input_tags.allow_nan = get_tags(self._template()).input_tags.allow_nan
        except (TypeError, AttributeError):  # an estimator that is not sklearn-like
            pass
        return tags
