"""Shrek's exception and warning classes.

Bad values raise ``ValueError`` subclasses, wrong types ``TypeError``, unknown ids ``KeyError``;
failures of Shrek's own domain (a dataset that cannot be found, a broker that does not answer)
derive from :class:`ShrekError`.
"""

from __future__ import annotations


class ShrekError(Exception):
    """Base class of Shrek's domain failures."""


class DataValidationError(ShrekError, ValueError):
    """A source file or table holds a value outside its schema.

    Parameters
    ----------
    message : str
        What is wrong, naming the file, the line and the field where known.
    file : str, optional
        The file (or table) that holds the bad value.
    line : int, optional
        The 1-based line number in ``file``.
    field : str, optional
        The column or field name.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.field = field


class DatasetNotFoundError(ShrekError, FileNotFoundError):
    """The dataset is neither in the data directory nor in the download cache."""


class DownloadError(ShrekError):
    """The dataset could not be downloaded or failed its checksum."""


class ShrekWarning(UserWarning):
    """Base class of Shrek's warnings: input Shrek could use after fixing it."""


class DataQualityWarning(ShrekWarning):
    """A source row was kept but repaired (a missing title, an ambiguous name)."""
