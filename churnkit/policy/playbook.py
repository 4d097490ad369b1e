"""The policy config as :func:`churnkit.policy.rules.decide_columns` reads it on every call:
the actions' names and costs as vectors and each (segment, cause)'s candidate actions, derived
once per config object."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnkit.data.columns import nan_to_zero
from churnkit.policy.config import CAUSES, SEGMENTS, PolicyConfig

DNC = "do_not_contact"


def segment_codes(segment: np.ndarray) -> np.ndarray:
    """Each row's index into :data:`SEGMENTS` (an unknown segment counts as the first)."""
    if len(segment) <= 64:
        at = _SEGMENT_AT
        return np.array([at.get(s, 0) if isinstance(s, str) else 0 for s in segment.tolist()],
                        dtype=np.int64).reshape(len(segment))
    return np.maximum(pd.Categorical(segment, categories=SEGMENTS).codes, 0).astype(np.int64)


_SEGMENT_AT = {s: k for k, s in enumerate(SEGMENTS)}


class Playbook:
    """What the rules read from a config on every call, derived once per config object: the
    action names, their costs as vectors, and each (segment, cause)'s candidate actions (as
    indices into the names, -1 padded) and whether a segment playbook gave them."""

    def __init__(self, config: PolicyConfig) -> None:
        self.config = config
        self.names = list(config.actions)
        self.dnc = self.names.index(DNC)
        specs = [config.actions[a] for a in self.names]
        self.cost = np.array([a.cost for a in specs], dtype=float)
        self.share = np.array([a.value_share for a in specs], dtype=float)
        self.low = np.array([a.min_cost for a in specs], dtype=float)
        self.high = np.array([a.max_cost for a in specs], dtype=float)
        width = max(len(v) for seg in [config.playbook, *config.segment_playbook.values()]
                    for v in seg.values())
        self.table = np.full((len(SEGMENTS), len(CAUSES), width), -1, dtype=np.int64)
        self.by_segment = np.zeros((len(SEGMENTS), len(CAUSES)), dtype=bool)
        self.broken = np.zeros((len(SEGMENTS), len(CAUSES)), dtype=bool)
        for si, seg in enumerate(SEGMENTS):
            for ci, c in enumerate(CAUSES):
                try:
                    actions = config.candidates(seg, c)
                    self.table[si, ci, :len(actions)] = [self.names.index(a) for a in actions]
                except (KeyError, ValueError):  # raised again if a customer needs it
                    self.broken[si, ci] = True
                    continue
                self.by_segment[si, ci] = c in config.segment_playbook.get(seg, {})

    def costs(self, value: np.ndarray) -> np.ndarray:
        """(n, actions) cost of each action for customers worth ``value`` (as
        :meth:`PolicyConfig.action_cost` gives them)."""
        v = nan_to_zero(value)
        return np.clip(self.cost[None, :] + self.share[None, :] * np.maximum(v, 0.0)[:, None],
                       self.low[None, :], self.high[None, :])

    def candidates(self, seg_code: np.ndarray, cause: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the candidate actions of its segment and cause, and whether a segment
        playbook gave them."""
        broken = self.broken[seg_code, cause]
        if broken.any():  # a combination this config cannot answer: raise what it raises
            k = int(np.flatnonzero(broken)[0])
            for a in self.config.candidates(SEGMENTS[seg_code[k]], CAUSES[cause[k]]):
                self.names.index(a)
        return self.table[seg_code, cause], self.by_segment[seg_code, cause]


_PLAYBOOKS: dict[int, Playbook] = {}


def playbook(config: PolicyConfig) -> Playbook:
    """The config's :class:`Playbook` (kept for a few configs; the entry holds its config,
    so an id is not reused while cached)."""
    book = _PLAYBOOKS.get(id(config))
    if book is None or book.config is not config:
        if len(_PLAYBOOKS) >= 16:
            _PLAYBOOKS.clear()
        book = _PLAYBOOKS[id(config)] = Playbook(config)
    return book
