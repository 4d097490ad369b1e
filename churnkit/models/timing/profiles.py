"""Hour profiles: a customer's daily rhythm read through the population's typical rhythms.

A few events say little about a customer's hours on their own (the modal hour of three
sessions is mostly noise), but customers share rhythms: morning readers, lunch-break shoppers,
evening browsers. A mixture of multinomials over the 24 local hours (a latent-class model, fitted
by EM on the activity-clock hour counts of the training snapshots) learns ``K`` such profiles and
their shares; a customer's hour distribution is the mixture of profiles weighted by their
posterior given the customer's own counts. Few events keep the posterior near the population's
shares; many pick out the customer's own profile. Nothing here assumes a shape of the day.
"""

from __future__ import annotations

import numpy as np

HOURS = 24
#: Pseudo-count added to every hour of every profile at each M-step (no hour is impossible).
PROFILE_SMOOTHING = 0.1


class HourProfiles:
    """Mixture of ``n_profiles`` multinomial hour profiles (scikit-learn style fit / attrs_)."""

    def __init__(self, n_profiles: int = 32, *, n_iter: int = 60, random_state: int = 0) -> None:
        self.n_profiles = n_profiles
        self.n_iter = n_iter
        self.random_state = random_state

    def fit(self, counts: np.ndarray) -> HourProfiles:
        """Fit on (n, 24) hour counts; rows without activity carry no information and are
        skipped."""
        counts = _checked(counts)
        counts = counts[counts.sum(axis=1) > 0]
        if len(counts) == 0:
            raise ValueError("no row has activity: cannot fit hour profiles")
        k = min(self.n_profiles, len(counts))
        rng = np.random.default_rng(self.random_state)
        profiles = rng.dirichlet(np.full(HOURS, 5.0), size=k)
        shares = np.full(k, 1.0 / k)
        for _ in range(self.n_iter):
            resp = _posterior(counts, shares, profiles)
            shares = resp.mean(axis=0) + 1e-9
            shares /= shares.sum()
            profiles = resp.T @ counts + PROFILE_SMOOTHING
            profiles /= profiles.sum(axis=1, keepdims=True)
        self.shares_, self.profiles_ = shares, profiles
        return self

    def hour_probabilities(self, counts: np.ndarray) -> np.ndarray:
        """(n, 24) P(local hour of the next activity) given each row's hour counts."""
        return self.probabilities_of_counts(_checked(counts))

    def probabilities_of_counts(self, counts: np.ndarray) -> np.ndarray:
        """:meth:`hour_probabilities` of counts known to be valid (float64, (n, 24), finite
        and not negative), without checking them: for callers that made the counts
        themselves (the slot model, from the activity clock's features)."""
        # The logarithms of the fitted profiles and shares, taken once per fit.
        logs = getattr(self, "_logs", None)
        if logs is None or logs[0] is not self.profiles_ or logs[1] is not self.shares_:
            logs = (self.profiles_, self.shares_, np.log(self.profiles_).T,
                    np.log(self.shares_)[None, :])
            self._logs = logs
        return _rowwise_matmul(_posterior(counts, self.shares_, self.profiles_, logs[2:]),
                               self.profiles_)

    def to_dict(self) -> dict:
        return {"shares": self.shares_.tolist(), "profiles": self.profiles_.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> HourProfiles:
        model = cls(n_profiles=len(data["shares"]))
        model.shares_ = np.asarray(data["shares"], dtype=float)
        model.profiles_ = np.asarray(data["profiles"], dtype=float)
        return model


def _checked(counts: np.ndarray) -> np.ndarray:
    counts = np.nan_to_num(np.asarray(counts, dtype="float64"), nan=0.0)
    if counts.ndim != 2 or counts.shape[1] != HOURS:
        raise ValueError(f"hour counts must have shape (n, {HOURS}), got {counts.shape}")
    if (counts < 0).any():
        raise ValueError("hour counts must not be negative")
    return counts


def _posterior(counts: np.ndarray, shares: np.ndarray, profiles: np.ndarray,
               logs: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """(n, k) P(profile | counts): multinomial log-likelihoods plus log shares, normalized
    (``logs``: ``np.log(profiles).T`` and ``np.log(shares)[None, :]`` when known)."""
    log_profiles, log_shares = logs if logs is not None else (np.log(profiles).T,
                                                              np.log(shares)[None, :])
    log = _rowwise_matmul(counts, log_profiles) + log_shares
    log -= log.max(axis=1, keepdims=True)
    resp = np.exp(log)
    resp /= resp.sum(axis=1, keepdims=True)
    return resp


def _rowwise_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` summed in a fixed order per row, so a row's result does not depend on which
    other rows share the call (BLAS blocks by matrix size: a customer scored alone or in a
    shard of the nightly job would differ in the last bit)."""
    if a.shape[0] * a.shape[1] * b.shape[1] <= 1 << 16:
        # Few rows: every product at once, then the same additions in the same order (zero
        # first, as below) by one accumulation along the inner dimension.
        products = np.zeros((a.shape[0], a.shape[1] + 1, b.shape[1]))
        np.multiply(a[:, :, None], b[None, :, :], out=products[:, 1:, :])
        return np.cumsum(products, axis=1)[:, -1, :]
    out = np.zeros((a.shape[0], b.shape[1]))
    for j in range(a.shape[1]):
        out += a[:, j, None] * b[None, j, :]
    return out
