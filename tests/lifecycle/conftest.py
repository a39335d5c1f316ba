"""Fixtures of the lifecycle tests: a temporary BentoML store and a small MovieLens folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Before anything imports BentoML: the tests never touch ~/bentoml.
_BENTOML_HOME = tempfile.mkdtemp(prefix="shrek-lifecycle-bentoml-")
os.environ["BENTOML_HOME"] = _BENTOML_HOME

from lifecycle.helpers import write_ml100k  # noqa: E402


@pytest.fixture(scope="session")
def bentoml_home() -> Path:
    yield Path(_BENTOML_HOME)
    shutil.rmtree(_BENTOML_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def source_dir(tmp_path_factory) -> Path:
    return write_ml100k(tmp_path_factory.mktemp("source"))
