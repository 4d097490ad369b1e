"""Compiled forests: a bundle's LightGBM trees as machine code (lleaves, through LLVM).

``Booster.predict`` walks each tree as data; lleaves turns a LightGBM text model into native
code, one function per forest, which predicts the same model 4-8x faster on the batch job's
rows (``benchmarks/RESULTS.md``, "Compiled forests"). Its values agree with LightGBM's to a
few units in the last place, not to the bit, so a bundle either predicts every normal value
through its compiled forests (one row or a million: the service, the batch job and Spark agree
to the bit) or none. SHAP contributions stay LightGBM's (lleaves has none).

A bundle is compiled by ``churnkit compile --model DIR``: the machine code of each forest is
kept in ``DIR/compiled/`` under a key of the forest's text, the compiler's version and the
CPU it was made for, and loaded with the bundle. A forest whose code is missing there (another
CPU, another lleaves) is compiled when the bundle loads, before the first prediction.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import tempfile
import threading
import weakref
from importlib.metadata import version
from pathlib import Path

import lightgbm as lgb
import numpy as np

#: The folder of a bundle that holds its compiled forests.
FOLDER = "compiled"
#: Its marker: present once every forest of the bundle has been compiled there.
MARKER = "compiled.json"

#: lleaves' forest function: ``forest_root(double *rows, double *out, int start, int end)``.
_ENTRY = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32)
_FORESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


class CompiledForest:
    """One booster's forest (the trees up to one iteration) as native code."""

    def __init__(self, model_text: str, cache: Path) -> None:
        import lleaves  # here: only compiled bundles need LLVM

        with tempfile.TemporaryDirectory(prefix="churnkit-forest-") as tmp:
            model_file = Path(tmp) / "model.txt"
            model_file.write_text(model_text)
            model = lleaves.Model(model_file=str(model_file))
            if cache.exists():
                model.compile(cache=str(cache))
            else:
                try:
                    cache.parent.mkdir(parents=True, exist_ok=True)
                    _compile_into(model, cache)
                except OSError:  # a read-only bundle: compiled for this process only
                    cache = Path(tmp) / cache.name
                    _compile_into(model, cache)
        self.path = cache
        self._model = model  # holds the execution engine that owns the code
        # the entry point (rows in, predictions out, first row, end row) called with plain
        # addresses: ctypes makes no pointer objects per call, and releases the GIL in it
        self._entry = _ENTRY(model._execution_engine.get_function_address("forest_root"))
        self.n_feature = model.num_feature()
        self.n_classes = model.num_model_per_iteration()

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """Predictions of the rows of the float64 matrix ``X``, shaped as ``Booster.predict``'s
        (one value per row flat; (rows, classes) for a multiclass forest), on this thread."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_feature:
            raise ValueError(f"expected rows of {self.n_feature} features, got shape {X.shape}")
        n = len(X)
        out = np.zeros(n if self.n_classes == 1 else (n, self.n_classes), dtype=np.float64)
        if n:
            self._entry(X.ctypes.data, out.ctypes.data, 0, n)
        return out


def _compile_into(model: object, cache: Path) -> None:
    """Compile to a scratch name beside ``cache``, then rename: a reader sees all or none."""
    scratch = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
    try:
        model.compile(cache=str(scratch))  # type: ignore[attr-defined]
        os.replace(scratch, cache)
    finally:
        scratch.unlink(missing_ok=True)


@functools.cache
def toolchain() -> dict[str, str]:
    """What compiled forests depend on beside the trees: the compiler's versions and the CPU."""
    import llvmlite.binding as llvm

    return {"lleaves": version("lleaves"), "llvmlite": version("llvmlite"),
            "cpu": llvm.get_host_cpu_name(), "cpu_features": llvm.get_host_cpu_features().flatten()}


def forest_key(model_text: str) -> str:
    """The cache key of a forest: its text and :func:`toolchain`."""
    digest = hashlib.sha256(model_text.encode())
    for part in toolchain().values():
        digest.update(b"\0" + part.encode())
    return digest.hexdigest()[:24]


def resolve_iteration(booster: lgb.Booster, num_iteration: int | None) -> int:
    """The iteration ``Booster.predict`` would use for ``num_iteration``: -1 for all trees."""
    if num_iteration is None:
        num_iteration = booster.best_iteration
    if not num_iteration or num_iteration <= 0 or num_iteration >= booster.current_iteration():
        return -1
    return int(num_iteration)


def attach(booster: lgb.Booster, folder: str | Path, num_iteration: int | None = None) -> None:
    """From now on predict ``booster``'s normal values through compiled forests kept in
    ``folder``: the one at ``num_iteration`` loaded (or compiled) now, any other iteration
    asked for later compiled then, so that the booster never predicts through LightGBM again."""
    with _LOCK:
        entry = _FORESTS.setdefault(booster, {"folder": Path(folder), "forests": {}})
        entry["folder"] = Path(folder)
        _forest(booster, entry, resolve_iteration(booster, num_iteration))


def forest_for(booster: lgb.Booster, num_iteration: int | None) -> CompiledForest | None:
    """The compiled forest of ``booster`` at that iteration, or None when the booster is not
    attached to compiled forests (see :func:`attach`)."""
    entry = _FORESTS.get(booster)
    if entry is None:
        return None
    iteration = resolve_iteration(booster, num_iteration)
    forest = entry["forests"].get(iteration)
    if forest is None:
        with _LOCK:
            forest = _forest(booster, entry, iteration)
    return forest


def _forest(booster: lgb.Booster, entry: dict, iteration: int) -> CompiledForest:
    forest = entry["forests"].get(iteration)
    if forest is None:
        text = booster.model_to_string(num_iteration=iteration)
        forest = CompiledForest(text, entry["folder"] / f"{forest_key(text)}.bin")
        if forest.n_feature != booster.num_feature():
            raise ValueError(f"the compiled forest reads {forest.n_feature} features, the "
                             f"booster {booster.num_feature()}")
        entry["forests"][iteration] = forest
    return forest


def boosters_in(part: object) -> list[lgb.Booster]:
    """Every LightGBM booster a model part holds, in its attributes, their values and nested
    parts (lists, dicts, objects with a ``__dict__``), each once, in attribute order."""
    found: dict[int, lgb.Booster] = {}
    seen: set[int] = set()

    def walk(obj: object) -> None:
        if id(obj) in seen or obj is None or isinstance(obj, str | bytes | float | np.ndarray):
            return
        seen.add(id(obj))
        if isinstance(obj, lgb.Booster):
            found.setdefault(id(obj), obj)
        elif isinstance(obj, dict):
            for value in obj.values():
                walk(value)
        elif isinstance(obj, list | tuple):
            for value in obj:
                walk(value)
        elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("churnkit."):
            for value in vars(obj).values():
                walk(value)

    walk(part)
    return list(found.values())
