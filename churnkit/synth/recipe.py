"""The recipe of a generated shop: the arguments that regenerate it, tables and ground truth.

``churnkit generate`` writes ``synth.json`` beside the tables instead of serializing the latent
state: the generator is deterministic for its arguments, so :func:`read_recipe` plus
:func:`churnkit.synth.generate` give back the exact ground truth (for oracle baselines).
"""

from __future__ import annotations

import json
from pathlib import Path

RECIPE_FILE = "synth.json"
#: The generator's version, recorded in every recipe: the same arguments give other data under
#: another version (2: each customer's own open propensity per channel), so a recipe of another
#: version does not give back its shop's ground truth.
GENERATOR_VERSION = 2


def write_recipe(directory: str | Path, *, n_customers: int, seed: int, start: str,
                 end: str) -> Path:
    """Write the generator arguments as ``synth.json`` into ``directory``."""
    path = Path(directory) / RECIPE_FILE
    recipe = {"n_customers": n_customers, "seed": seed, "start": str(start), "end": str(end),
              "generator": GENERATOR_VERSION}
    path.write_text(json.dumps(recipe, indent=2) + "\n", encoding="utf-8")
    return path


def read_recipe(directory: str | Path) -> dict | None:
    """The generator arguments of a generated shop (and ``generator``, its version; absent in
    recipes written before versions were recorded, i.e. version 1), or None for a real shop's
    data."""
    path = Path(directory) / RECIPE_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def is_current(recipe: dict | None) -> bool:
    """True when ``recipe`` was written by this generator version (so regenerating it gives back
    its shop exactly)."""
    return recipe is not None and recipe.get("generator", 1) == GENERATOR_VERSION
