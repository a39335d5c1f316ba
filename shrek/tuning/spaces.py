"""Search spaces: which hyperparameters of each model the tuning explores, and over what range.

A space is a function that draws one candidate from an :class:`optuna.trial.Trial` and returns
the model's constructor keywords. Conditional parameters (BM25's ``k1`` and ``b``) are drawn
only when they matter, so the sampler does not waste trials on them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import optuna

#: Settings every ALS candidate shares (not searched).
ALS_FIXED: dict[str, Any] = {"random_state": 42, "num_threads": 0}
#: Settings every LightFM candidate shares (not searched); one thread keeps fits repeatable.
LIGHTFM_FIXED: dict[str, Any] = {"random_state": 42, "num_threads": 1}
#: How a LightFM study treats the user and movie features: ``search`` draws each switch,
#: ``on`` keeps both on (and searches ``feature_weight``), ``off`` keeps both off.
FEATURE_CHOICES: tuple[str, ...] = ("search", "on", "off")


def als_space(trial: optuna.trial.BaseTrial) -> dict[str, Any]:
    """One ALS candidate: factors, regularization, iterations, confidence weighting.

    Returns
    -------
    dict
        Keywords of :class:`shrek.models.ALSRecommender`.
    """
    weighting = trial.suggest_categorical("weighting", ["binary", "bm25", "tfidf", "none"])
    params: dict[str, Any] = {
        "factors": trial.suggest_int("factors", 8, 256, log=True),
        "regularization": trial.suggest_float("regularization", 1e-2, 1e2, log=True),
        "alpha": trial.suggest_float("alpha", 0.1, 100.0, log=True),
        "iterations": trial.suggest_int("iterations", 5, 40),
        "weighting": weighting,
    }
    if weighting == "bm25":
        params["bm25_k1"] = trial.suggest_float("bm25_k1", 1.0, 1000.0, log=True)
        params["bm25_b"] = trial.suggest_float("bm25_b", 0.0, 1.0)
    return {**params, **ALS_FIXED}


def lightfm_space(trial: optuna.trial.BaseTrial, *, features: str = "search") -> dict[str, Any]:
    """One LightFM candidate: components, loss, learning rate, epochs, penalties, features.

    Parameters
    ----------
    trial : optuna.trial.BaseTrial
        Draws the values.
    features : {"search", "on", "off"}, default "search"
        ``search`` draws ``use_user_features`` and ``use_item_features``; ``on`` and ``off``
        fix both (see :func:`feature_switches`). ``feature_weight`` is drawn unless ``off``.

    Returns
    -------
    dict
        Keywords of :class:`shrek.models.LightFMRecommender`.

    Notes
    -----
    The losses searched are the two ranking losses, ``warp`` and ``warp-kos``. ``bpr`` is
    left out: in a first study on MovieLens 100K its 4 trials scored validation nDCG@10
    0.07–0.14 against 0.16–0.24 for WARP, and each LightFM trial costs 5–20 s.
    ``feature_weight`` (metadata against identity features) matters only when a feature set
    is on; a small weight keeps known users' quality and still lets new users be answered.
    """
    switches = feature_switches(features)
    loss = trial.suggest_categorical("loss", ["warp", "warp-kos"])
    params: dict[str, Any] = {
        "no_components": trial.suggest_int("no_components", 16, 192, log=True),
        "loss": loss,
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "epochs": trial.suggest_int("epochs", 5, 60),
        "max_sampled": trial.suggest_int("max_sampled", 5, 60, log=True),
        "item_alpha": trial.suggest_float("item_alpha", 1e-9, 1e-4, log=True),
        "user_alpha": trial.suggest_float("user_alpha", 1e-9, 1e-4, log=True),
    }
    for name in ("use_user_features", "use_item_features"):
        fixed = switches.get(name)
        params[name] = trial.suggest_categorical(name, [True, False]) if fixed is None else fixed
    if features != "off":
        params["feature_weight"] = trial.suggest_float("feature_weight", 0.01, 1.0, log=True)
    return {**params, **LIGHTFM_FIXED}


def feature_switches(features: str) -> dict[str, bool]:
    """The feature switches a LightFM study fixes: none for ``search``, both for ``on``/``off``.

    Raises
    ------
    ValueError
        ``features`` is not one of :data:`FEATURE_CHOICES`.
    """
    if features not in FEATURE_CHOICES:
        raise ValueError(f"features must be one of {', '.join(FEATURE_CHOICES)}, got {features!r}")
    if features == "search":
        return {}
    on = features == "on"
    return {"use_user_features": on, "use_item_features": on}


#: The searchable models and their spaces.
SPACES: dict[str, Callable[[optuna.trial.BaseTrial], dict[str, Any]]] = {
    "als": als_space,
    "lightfm": lightfm_space,
}


def space_for(
    model: str, *, features: str = "search"
) -> Callable[[optuna.trial.BaseTrial], dict[str, Any]]:
    """The search space of ``model`` (``als`` or ``lightfm``).

    ``features`` (see :func:`lightfm_space`) applies to LightFM; ALS has no features.
    """
    if model not in SPACES:
        raise ValueError(f"model must be one of {', '.join(SPACES)}, got {model!r}")
    feature_switches(features)
    if model == "lightfm":
        return functools.partial(lightfm_space, features=features)
    return SPACES[model]


def best_params(
    model: str, trial_params: dict[str, Any], *, features: str = "search"
) -> dict[str, Any]:
    """Constructor keywords of ``model`` from a finished trial's ``params``.

    Replays the space on a :class:`optuna.trial.FixedTrial`, so conditional parameters and
    the fixed settings come out exactly as the trial fitted them.
    """
    return space_for(model, features=features)(optuna.trial.FixedTrial(trial_params))
