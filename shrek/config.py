"""Run settings: one typed object, loaded from YAML (``configs/run.yaml``).

Model hyperparameters are passed as-is to the model constructors, which check them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shrek.errors import ShrekWarning

#: The run settings of the repository (outside the package: a non-editable install lacks it).
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "run.yaml"


class MissingConfigWarning(ShrekWarning):
    """``configs/run.yaml`` is missing: the run uses built-in defaults, not the tuned models."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    """Where the run's data comes from."""

    source: Literal["files", "stream"] = "stream"
    data_dir: str | None = None
    topic: str = "shrek-events"
    watch_fraction: float = Field(0.02, ge=0, le=1)
    rating_scale: tuple[int, int] = (1, 5)


class StratifiedSplitConfig(_Strict):
    ratio: float = Field(0.75, gt=0, lt=1)
    filter_by: Literal["item", "user"] = "item"
    seed: int = 42


class TemporalSplitConfig(_Strict):
    test_fraction: float = Field(0.2, gt=0, lt=1)


class SplitsConfig(_Strict):
    stratified: StratifiedSplitConfig = StratifiedSplitConfig()
    temporal: TemporalSplitConfig = TemporalSplitConfig()


class EvaluationConfig(_Strict):
    k: int = Field(10, ge=1)


class FairnessConfig(_Strict):
    """The fairness audit and its release gate (see :mod:`shrek.fairness`)."""

    split: Literal["stratified", "temporal"] = "temporal"
    models: list[str] = ["popularity", "als", "lightfm"]
    gate_mode: Literal["block", "warn"] = "block"
    fail_on_inconclusive: bool = False
    min_group_size: int = Field(30, ge=1)
    n_boot: int = Field(1000, ge=10)
    spd_max: float = 0.1
    dir_min: float = 0.8
    diversity_ratio_min: float = 0.8
    personalization_diff_max: float = 0.05
    ndcg_ratio_min: float = 0.8


class RunConfig(_Strict):
    """Everything a run of the pipeline needs besides the code."""

    data: DataConfig = DataConfig()
    splits: SplitsConfig = SplitsConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    fairness: FairnessConfig = FairnessConfig()
    models: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {"popularity": {}, "als": {}, "lightfm": {}}
    )
    reports_dir: str = "reports"

    def to_yaml(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False))
        return path


def load_config(path: str | Path | None = None) -> RunConfig:
    """Read a :class:`RunConfig` from YAML; ``None`` reads ``configs/run.yaml``.

    Raises
    ------
    ValueError
        Naming the file and every setting that is unknown or out of range.

    Warns
    -----
    MissingConfigWarning
        ``path`` is ``None`` and ``configs/run.yaml`` does not exist: the built-in defaults are
        returned, whose models have their constructor defaults, not the tuned parameters.
    """
    if path is None:
        if not DEFAULT_CONFIG.exists():
            warnings.warn(
                f"{DEFAULT_CONFIG} does not exist: using the built-in defaults, so the models "
                "run with their constructor defaults, not the tuned parameters; pass --config "
                "with a run config (the repository's configs/run.yaml)",
                MissingConfigWarning,
                stacklevel=2,
            )
            return RunConfig()
        path = DEFAULT_CONFIG
    path = Path(path)
    raw = yaml.safe_load(path.read_text()) or {}
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
            for e in err.errors()
        )
        raise ValueError(f"{path}: {problems}") from None
