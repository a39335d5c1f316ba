import math
import re

import pytest

from shrek.fairness import FairnessGateWarning, Status, default_checks, gate
from shrek.fairness.checks import decide, overall_verdict

SPD, DIR, *_ = default_checks()


@pytest.mark.parametrize(
    ("low", "high", "status"),
    [(0.01, 0.09, Status.PASS), (0.10, 0.30, Status.FAIL), (0.05, 0.15, Status.INCONCLUSIVE)],
)
def test_upper_bound_checks_decide_on_the_interval(low, high, status):
    assert decide((low + high) / 2, low, high, SPD) == status


@pytest.mark.parametrize(
    ("low", "high", "status"),
    [(0.80, 0.95, Status.PASS), (0.50, 0.79, Status.FAIL), (0.70, 0.90, Status.INCONCLUSIVE)],
)
def test_lower_bound_checks_decide_on_the_interval(low, high, status):
    assert decide((low + high) / 2, low, high, DIR) == status


def test_undefined_values_are_inconclusive_never_nan():
    assert decide(math.nan, math.nan, math.nan, DIR) == Status.INCONCLUSIVE
    assert decide(0.9, math.nan, math.nan, DIR) == Status.INCONCLUSIVE


def test_overall_verdict():
    assert overall_verdict([Status.PASS, Status.FAIL, Status.INCONCLUSIVE]) == Status.FAIL
    assert overall_verdict([Status.PASS, Status.INCONCLUSIVE]) == Status.INCONCLUSIVE
    assert overall_verdict([Status.PASS, Status.NOT_APPLICABLE]) == Status.PASS
    assert overall_verdict([Status.NOT_APPLICABLE]) == Status.NOT_APPLICABLE
    assert overall_verdict([]) == Status.NOT_APPLICABLE


def test_thresholds_are_parameters_and_validated():
    checks = default_checks(spd_max=0.05, ndcg_ratio_min=0.9)

    assert [c.threshold for c in checks] == [0.05, 0.8, 0.8, 0.05, 0.9]
    with pytest.raises(ValueError, match=re.escape("spd_max must be a number in (0, 1], got 1.5")):
        default_checks(spd_max=1.5)
    with pytest.raises(TypeError, match=re.escape("dir_min must be a number in (0, 1], got '0.8'")):
        default_checks(dir_min="0.8")


def test_gate_blocks_failing_models():
    verdicts = {"als": "FAIL", "lightfm": Status.PASS, "pop": "INCONCLUSIVE"}

    assert gate(verdicts, mode="block") == {"als": False, "lightfm": True, "pop": True}
    strict = gate(verdicts, mode="block", fail_on_inconclusive=True)
    assert strict == {"als": False, "lightfm": True, "pop": False}


def test_gate_in_warn_mode_exports_everything_with_a_warning():
    message = (
        "model 'als' has fairness verdict FAIL; exported anyway because the gate mode is 'warn'"
    )
    with pytest.warns(FairnessGateWarning, match=re.escape(message)):
        eligible = gate({"als": "FAIL", "lightfm": "PASS"}, mode="warn")
    assert eligible == {"als": True, "lightfm": True}


def test_gate_rejects_unknown_mode_and_verdict():
    message = "mode must be one of ['block', 'warn'], got 'strict'"
    with pytest.raises(ValueError, match=re.escape(message)):
        gate({"als": "PASS"}, mode="strict")
    message = (
        "verdicts['als'] must be a FairnessReport or one of "
        "['PASS', 'FAIL', 'INCONCLUSIVE', 'NOT_APPLICABLE'], got 'ok'"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        gate({"als": "ok"})
