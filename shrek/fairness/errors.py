"""Warnings of the fairness audit."""

from __future__ import annotations

from shrek.errors import ShrekWarning


class FairnessWarning(ShrekWarning):
    """The audit ran on input it had to trim: users without a group, users without lists.

    The audit still returns a report; the warning says which users were left out and why,
    and the same sentence is kept in the report's ``notes``.
    """


class FairnessGateWarning(ShrekWarning):
    """A model failed the fairness audit but the gate runs in ``"warn"`` mode."""
