r"""The cost model: XGBoost regressors from configuration features to validation accuracy.

A bagged ensemble of ``B`` regressors: the first is fitted on all measured rows,
member :math:`b > 0` on a bootstrap resample, written as integer row weights
:math:`w_{bi}` (how often row :math:`i` was drawn; for the squared error a row of
weight :math:`w` is exactly :math:`w` copies of it). :meth:`CostModel.predict_spread`
gives the mean and the standard deviation of the members' predictions,

.. math::

    \hat\mu(x) = \frac1B \sum_b f_b(x), \qquad
    \hat\sigma(x) = \sqrt{\frac1B \sum_b \big(f_b(x) - \hat\mu(x)\big)^2},

the model's uncertainty (large where few measurements support a split).

The members are fitted together, boosting rounds of one :class:`xgboost.Booster` on
one :class:`xgboost.DMatrix`: one output per member (its own trees, grown on its own
weights), on one thread, with settings made for a few dozen rows
(few trees, few histogram bins); one prediction call scores every member.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..checks import check_int

__all__ = ["CostModel", "REGRESSOR_DEFAULTS"]

#: Settings of each member (xgboost's training parameters; ``num_boost_round``
#: is the number of trees). :class:`sgquant.search.Strategy` overrides them.
REGRESSOR_DEFAULTS: dict[str, Any] = {
    "num_boost_round": 10, "max_depth": 3, "eta": 0.5, "min_child_weight": 1.0,
    "max_bin": 32, "tree_method": "hist", "nthread": 1}

#: scikit-learn names (``xgboost.XGBRegressor``) accepted for the native ones
_SKLEARN_NAMES = {"n_estimators": "num_boost_round", "learning_rate": "eta",
                  "n_jobs": "nthread", "random_state": "seed"}


class CostModel:
    r"""XGBoost regressor from configuration features to validation accuracy.

    With ``monotone=True`` (default) the prediction is constrained to be
    non-decreasing in every bit field and in average bits / memory, and
    non-increasing in saving: more bits never predict a lower accuracy.

    With ``ensemble = B > 1`` it is a bagged ensemble (see the module docstring);
    :meth:`predict` is the members' mean and :meth:`predict_spread` adds their
    standard deviation. ``params`` override :data:`REGRESSOR_DEFAULTS` (native
    xgboost names, or the scikit-learn ones such as ``n_estimators``).
    """

    def __init__(self, columns: Sequence[str], seed: int = 0, monotone: bool = True,
                 ensemble: int = 1, **params: Any) -> None:
        self.columns = list(columns)
        self.seed = check_int(seed, "seed", minimum=0)
        self.ensemble = check_int(ensemble, "ensemble", minimum=1)
        settings = dict(REGRESSOR_DEFAULTS)
        if monotone:
            signs = [-1 if c == "saving" else 1 for c in self.columns]
            settings["monotone_constraints"] = "(" + ",".join(map(str, signs)) + ")"
        settings.update({_SKLEARN_NAMES.get(k, k): v for k, v in params.items()})
        self.rounds = check_int(settings.pop("num_boost_round"), "n_estimators", minimum=1)
        self.settings = settings
        self.booster: Any = None

    def fit(self, features: np.ndarray, accuracy: np.ndarray) -> "CostModel":
        """Fit all members at once: one booster with one output per member, each
        output's trees grown on that member's row weights (a custom squared error,
        gradient :math:`w_{bi}(f_b(x_i) - y_i)`, hessian :math:`w_{bi}`)."""
        import xgboost

        X = np.asarray(features, dtype=np.float32)
        y = np.asarray(accuracy, dtype=np.float64)
        n, members = len(y), self.ensemble
        rng = np.random.default_rng(self.seed)
        weights = np.ones((n, members))
        for b in range(1, members):
            weights[:, b] = np.bincount(rng.integers(0, n, n), minlength=n)
        labels = np.repeat(y[:, None], members, axis=1)

        def weighted_squared_error(pred: np.ndarray, _: Any) -> tuple[np.ndarray, np.ndarray]:
            return weights * (pred.reshape(n, members) - labels), weights

        params = {**self.settings, "num_target": members, "seed": self.seed,
                  "multi_strategy": "one_output_per_tree", "base_score": float(y.mean())}
        params.pop("objective", None)  # the loss is the weighted squared error above
        train = xgboost.DMatrix(X, label=labels, nthread=1)
        # xgboost.train's rounds without its callbacks and final cache release (a
        # sizeable share of the time for a few dozen rows)
        self.booster = xgboost.Booster(params, [train])
        for i in range(self.rounds):
            self.booster.update(train, i, fobj=weighted_squared_error)
        return self

    def predict_members(self, features: np.ndarray) -> np.ndarray:
        """Every member's prediction, shape ``(ensemble, rows)``, in one pass."""
        if self.booster is None:
            raise ValueError("the cost model is not fitted: call fit() first")
        X = np.asarray(features, dtype=np.float32)
        pred = self.booster.inplace_predict(X)
        return np.asarray(pred, dtype=np.float64).reshape(len(X), self.ensemble).T

    def predict_spread(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of the ensemble's predictions."""
        preds = self.predict_members(features)
        return preds.mean(axis=0), preds.std(axis=0)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.predict_spread(features)[0]
