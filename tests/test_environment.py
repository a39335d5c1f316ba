"""pyproject.toml and environment.yml pin the same packages at the same versions."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def pins_in_pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return dict(_pin(spec) for spec in specs)


def pins_in_environment() -> dict[str, str]:
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    return dict(_pin(spec) for spec in pip if not spec.startswith("-e"))


def _pin(spec: str) -> tuple[str, str]:
    name, _, version = spec.partition("==")
    assert version, f"{spec!r} is not pinned with =="
    return name.strip().lower().replace("_", "-"), version.strip()


def test_environment_yml_agrees_with_pyproject():
    assert pins_in_environment() == pins_in_pyproject()


def test_environment_yml_uses_the_project_python():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in environment["dependencies"]


def test_bento_requirements_use_the_project_pins():
    pins = pins_in_pyproject()
    lines = (ROOT / "bentos" / "requirements.txt").read_text().splitlines()
    bento = dict(_pin(line) for line in lines if line.strip() and not line.startswith("#"))
    assert {name: pins.get(name) for name in bento} == bento
