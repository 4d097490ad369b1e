"""The recipe of a generated shop: the arguments that regenerate it, tables and ground truth.

``churnkit generate`` writes ``synth.json`` beside the tables instead of serializing the latent
state: the generator is deterministic for its arguments, so :func:`read_recipe` plus
:func:`churnkit.synth.generate` give back the exact ground truth (for oracle baselines).
"""

from __future__ import annotations

import json
from pathlib import Path

RECIPE_FILE = "synth.json"


def write_recipe(directory: str | Path, *, n_customers: int, seed: int, start: str,
                 end: str) -> Path:
    """Write the generator arguments as ``synth.json`` into ``directory``."""
    path = Path(directory) / RECIPE_FILE
    recipe = {"n_customers": n_customers, "seed": seed, "start": str(start), "end": str(end)}
    path.write_text(json.dumps(recipe, indent=2) + "\n", encoding="utf-8")
    return path


def read_recipe(directory: str | Path) -> dict | None:
    """The generator arguments of a generated shop, or None for a real shop's data."""
    path = Path(directory) / RECIPE_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
