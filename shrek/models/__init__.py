"""Recommenders behind one interface: fit on a users × items matrix, recommend top-N."""

from __future__ import annotations

from typing import Any

from shrek.models.als import ALSRecommender
from shrek.models.base import IdMap, Interactions, Recommender
from shrek.models.lightfm_model import LightFMRecommender
from shrek.models.popularity import PopularityRecommender

MODELS: dict[str, type[Recommender]] = {
    cls.name: cls for cls in (PopularityRecommender, ALSRecommender, LightFMRecommender)
}


def make_model(name: str, **params: Any) -> Recommender:
    """A model by name (``popularity``, ``als``, ``lightfm``) with its hyperparameters."""
    if name not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, got {name!r}")
    try:
        return MODELS[name](**params)
    except TypeError as err:
        raise TypeError(f"bad parameters for model {name!r}: {err}") from None


__all__ = [
    "MODELS",
    "ALSRecommender",
    "IdMap",
    "Interactions",
    "LightFMRecommender",
    "PopularityRecommender",
    "Recommender",
    "make_model",
]
