"""Save the best parameters into the ``models:`` section of a run config (``configs/run.yaml``).

Only that section is rewritten, and within it only the tuned models' entries; every other line
of the file, comments included, stays as it was.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import yaml

from shrek.config import load_config

logger = logging.getLogger(__name__)

_TOP_KEY = re.compile(r"^[A-Za-z_][\w-]*:")
_MODEL_KEY = re.compile(r"^  ([A-Za-z_][\w-]*):")


def write_best_params(
    path: str | Path,
    params: dict[str, dict[str, Any]],
    *,
    comments: dict[str, str] | None = None,
) -> Path:
    """Replace the entries of ``params``' models in the ``models:`` section of ``path``.

    Parameters
    ----------
    path : str or Path
        A run config (YAML) with a top-level ``models:`` section.
    params : dict
        Model name -> constructor keywords to store.
    comments : dict, optional
        Model name -> a comment written above its entry (where the values came from);
        wrapped at 100 characters.

    Returns
    -------
    Path
        ``path``, rewritten; it is checked to load as a :class:`~shrek.config.RunConfig`
        before it replaces the old file.

    Raises
    ------
    ValueError
        The file has no top-level ``models:`` section.
    """
    path = Path(path)
    lines = path.read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if line.rstrip() == "models:"), None)
    if start is None:
        raise ValueError(f"{path} has no top-level 'models:' section to write the parameters to")
    end = next((i for i in range(start + 1, len(lines)) if _TOP_KEY.match(lines[i])), len(lines))

    blocks = _model_blocks(lines[start + 1 : end])
    for model, values in params.items():
        blocks[model] = _entry(model, values, (comments or {}).get(model))
    section = ["models:", *(line for block in blocks.values() for line in block)]

    text = "\n".join([*lines[:start], *section, *lines[end:]]) + "\n"
    candidate = path.with_suffix(path.suffix + ".new")
    candidate.write_text(text)
    try:
        load_config(candidate)
    except ValueError:
        candidate.unlink()
        raise
    candidate.replace(path)
    logger.info("wrote the parameters of %s to %s", ", ".join(params), path)
    return path


def _model_blocks(lines: list[str]) -> dict[str, list[str]]:
    """The lines of each model entry, with the comment lines right above it."""
    blocks: dict[str, list[str]] = {}
    pending: list[str] = []
    current: list[str] | None = None
    for line in lines:
        match = _MODEL_KEY.match(line)
        if match:
            current = [*pending, line]
            blocks[match.group(1)] = current
            pending = []
        elif line.strip().startswith("#") and line.startswith("  ") and not line.startswith("   "):
            pending.append(line)
        elif current is not None:
            current.append(line)
        else:
            pending.append(line)
    if pending and current is not None:
        current.extend(pending)
    return blocks


def _entry(model: str, values: dict[str, Any], comment: str | None) -> list[str]:
    body = yaml.safe_dump({model: _plain(values)}, sort_keys=False, default_flow_style=False)
    lines = [f"  {line}" for line in body.splitlines()]
    return [*_comment_lines(comment), *lines] if comment else lines


def _comment_lines(comment: str, width: int = 100) -> list[str]:
    lines, current = [], "  #"
    for word in comment.split():
        if len(current) + 1 + len(word) > width and current != "  #":
            lines.append(current)
            current = "  #"
        current += f" {word}"
    return [*lines, current]


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Python scalars only: numpy numbers become ``int`` or ``float`` (full precision)."""
    plain: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, bool) or value is None or isinstance(value, str):
            plain[name] = value
        elif float(value).is_integer() and not isinstance(value, float):
            plain[name] = int(value)
        else:
            plain[name] = float(value)
    return plain
