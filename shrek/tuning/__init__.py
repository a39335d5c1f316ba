"""Hyperparameter tuning: search spaces, the validation objective, studies, saved parameters.

The tuning scores candidates on a validation split carved from the training part of the
stratified split (:func:`tuning_data`); the test part is never an input.
"""

from shrek.tuning.objective import TARGETS, Objective
from shrek.tuning.params_file import write_best_params
from shrek.tuning.spaces import SPACES, als_space, best_params, lightfm_space, space_for
from shrek.tuning.study import (
    ALL_MODELS,
    TuningResult,
    prepare_tuning_data,
    results_table,
    run_studies,
    run_study,
    save_result,
    save_studies,
)
from shrek.tuning.validation import TuningData, tuning_data, validation_split

__all__ = [
    "ALL_MODELS",
    "SPACES",
    "TARGETS",
    "Objective",
    "TuningData",
    "TuningResult",
    "als_space",
    "best_params",
    "lightfm_space",
    "prepare_tuning_data",
    "results_table",
    "run_studies",
    "run_study",
    "save_result",
    "save_studies",
    "space_for",
    "tuning_data",
    "validation_split",
    "write_best_params",
]
