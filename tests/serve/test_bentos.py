"""`bentoml build` makes one bento per model and the canary bento from an export (issue 5)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import bentoml
import pytest

ROOT = Path(__file__).resolve().parents[2]
BENTOS = {
    "als": ("shrek-als", ["als"]),
    "lightfm": ("shrek-lightfm", ["lightfm"]),
    "canary": ("shrek-canary", ["als", "lightfm"]),
}


@pytest.mark.parametrize("folder", sorted(BENTOS))
def test_bentoml_build_packs_the_exported_models(exported, bentoml_home, folder):
    name, models = BENTOS[folder]
    env = {
        **os.environ,
        "BENTOML_HOME": str(bentoml_home),
        "SHREK_STABLE_MODEL": exported[models[0]].tag,
        "SHREK_CANDIDATE_MODEL": exported[models[-1]].tag,
    }
    command = [str(Path(sys.executable).parent / "bentoml"), "build"]
    command += ["-f", f"bentos/{folder}/bentofile.yaml", "."]

    built = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)

    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    bento = bentoml.bentos.get(f"{name}:latest")
    assert {str(model.tag) for model in bento.info.all_models} == {
        exported[model].tag for model in models
    }
    assert (Path(bento.path) / "src" / "bentos" / folder / "service.py").is_file()
