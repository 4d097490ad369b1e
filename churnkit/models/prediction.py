"""LightGBM predictions as scoring makes them: one thread for a few rows, and LightGBM's
single-row path (its predictor set up once per booster) for one row.

``Booster.predict`` sets up a predictor, sizes its output and converts its input on every call:
for one customer that costs several times the trees themselves, and scoring calls a dozen
boosters per customer. The C API's ``LGBM_BoosterPredictForMatSingleRowFast`` keeps the set-up
(a "fast config", one per booster, kind of prediction and thread) and runs the same prediction
function as ``Booster.predict``, so the values are the same to the bit. When this LightGBM does
not offer it, every call goes through ``Booster.predict``.
"""

from __future__ import annotations

import ctypes
import threading
import weakref

import lightgbm as lgb
import numpy as np

from churnkit.models.compiled import forest_for

#: Up to this many rows LightGBM predicts on one thread: starting a thread team costs more
#: than it saves on so few rows (and far more on a busy machine). Predictions do not depend
#: on the number of threads.
SINGLE_THREAD_ROWS = 256
#: Up to this many rows LightGBM predicts row by row on its single-row path (the timing
#: model's hazards read one row per day bin of each customer).
ROW_BY_ROW = 16
#: LightGBM's C API prediction kinds (c_api.h: C_API_PREDICT_NORMAL, C_API_PREDICT_CONTRIB).
_NORMAL, _CONTRIB = 0, 3


def predict(booster: lgb.Booster, X: np.ndarray, *, num_iteration: int | None = None,
            pred_contrib: bool = False) -> np.ndarray:
    """``booster.predict(X, num_iteration=..., pred_contrib=...)`` on a float64 matrix ``X``
    (the same values and shape), on one thread for up to :data:`SINGLE_THREAD_ROWS` rows and
    through LightGBM's single-row path for up to :data:`ROW_BY_ROW`; a booster attached to
    compiled forests (:mod:`churnkit.models.compiled`) predicts its normal values through them,
    whatever the number of rows."""
    if not pred_contrib:
        forest = forest_for(booster, num_iteration)
        if forest is not None:
            return forest(X)
    if 0 < len(X) <= ROW_BY_ROW:
        out = _predict_rows(booster, X, num_iteration, pred_contrib)
        if out is not None:
            return out
    params: dict[str, object] = {"num_threads": 1} if len(X) <= SINGLE_THREAD_ROWS else {}
    return booster.predict(X, num_iteration=num_iteration, pred_contrib=pred_contrib, **params)


class _RowPredictor:
    """One booster's single-row prediction of one kind (a LightGBM fast config).

    LightGBM keeps one single-row predictor per booster and kind, which every fast config of
    that kind uses: predicting and setting one up again (for other iterations) hold one lock.
    """

    def __init__(self, booster: lgb.Booster, kind: int, ncol: int) -> None:
        self.lib = lgb.basic._LIB  # AttributeError: a LightGBM without this C API
        for name in ("LGBM_BoosterPredictForMatSingleRowFastInit",
                     "LGBM_BoosterPredictForMatSingleRowFast", "LGBM_FastConfigFree"):
            getattr(self.lib, name)
        booster._handle  # noqa: B018  (the booster's C handle; AttributeError without)
        self.kind, self.ncol = kind, ncol
        self.lock = threading.Lock()
        self.handle: ctypes.c_void_p | None = None
        self.num_iteration: int | None = None
        self.size = 0
        self._free: weakref.finalize | None = None
        # One row in, one row out: buffers and their pointers made once (used under the lock).
        self._predict = self.lib.LGBM_BoosterPredictForMatSingleRowFast
        self._row = np.empty(ncol, dtype=np.float64)
        self._row_at = ctypes.c_void_p(self._row.ctypes.data)
        self._written = ctypes.c_int64(0)
        self._out = np.empty(0, dtype=np.float64)
        self._out_at = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))

    def _set_up(self, booster: lgb.Booster, num_iteration: int) -> None:
        lib, handle = self.lib, ctypes.c_void_p()
        _check(lib, lib.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster._handle, ctypes.c_int(self.kind), ctypes.c_int(0),
            ctypes.c_int(num_iteration), ctypes.c_int(1),  # C_API_DTYPE_FLOAT64
            ctypes.c_int32(self.ncol), ctypes.c_char_p(b"num_threads=1"), ctypes.byref(handle)))
        size = ctypes.c_int64(0)
        _check(lib, lib.LGBM_BoosterCalcNumPredict(
            booster._handle, ctypes.c_int(1), ctypes.c_int(self.kind), ctypes.c_int(0),
            ctypes.c_int(num_iteration), ctypes.byref(size)))
        if self._free is not None:  # the config set up for other iterations
            self._free()
        # The config only points into the booster: free it with the booster at the latest.
        self._free = weakref.finalize(booster, lib.LGBM_FastConfigFree, handle)
        self.handle, self.num_iteration, self.size = handle, num_iteration, int(size.value)
        self._out = np.empty(self.size, dtype=np.float64)
        self._out_at = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))

    def __call__(self, booster: lgb.Booster, X: np.ndarray, num_iteration: int) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.ncol:
            raise ValueError(f"expected rows of {self.ncol} features, got shape {X.shape}")
        with self.lock:
            if self.num_iteration != num_iteration:
                self._set_up(booster, num_iteration)
            out = np.empty((len(X), self.size), dtype=np.float64)
            written = ctypes.byref(self._written)
            for i in range(len(X)):
                self._row[:] = X[i]
                _check(self.lib, self._predict(self.handle, self._row_at, written,
                                               self._out_at))
                out[i] = self._out
        # Booster.predict's shape: one value per row flat, several as a row.
        return out.reshape(len(X)) if self.size == 1 else out


_PREDICTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_PREDICTORS_LOCK = threading.Lock()
_UNAVAILABLE = object()


def _predict_rows(booster: lgb.Booster, X: np.ndarray, num_iteration: int | None,
                  contrib: bool) -> np.ndarray | None:
    """The rows' predictions through LightGBM's single-row path, or None when this LightGBM
    offers none."""
    if num_iteration is None:  # as Booster.predict: the best iteration when there is one
        num_iteration = booster.best_iteration
    num_iteration = int(num_iteration) if num_iteration and num_iteration > 0 else -1
    kind, ncol = (_CONTRIB if contrib else _NORMAL), X.shape[1]
    with _PREDICTORS_LOCK:
        per_booster = _PREDICTORS.setdefault(booster, {})
        predictor = per_booster.get((kind, ncol))
        if predictor is None:
            try:
                predictor = _RowPredictor(booster, kind, ncol)
            except AttributeError:
                predictor = _UNAVAILABLE
            per_booster[(kind, ncol)] = predictor
    if predictor is _UNAVAILABLE:
        return None
    return predictor(booster, X, num_iteration)


def _check(lib: ctypes.CDLL, code: int) -> None:
    if code != 0:
        raise lgb.basic.LightGBMError(lib.LGBM_GetLastError().decode("utf-8"))
