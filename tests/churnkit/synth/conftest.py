"""Small synthetic shops with fixed seeds, shared by the synth tests (built once per session)."""

from __future__ import annotations

import dataclasses

import pytest

from churnkit import synth

START, END = "2023-01-01", "2025-01-01"


@pytest.fixture(scope="session")
def shop():
    """20k customers over two years, with win-back campaigns."""
    return synth.generate(20_000, seed=11, start=START, end=END)


@pytest.fixture(scope="session")
def quiet_shop():
    """The same size without campaigns: the realized future is a draw of the truth's process."""
    params = dataclasses.replace(synth.DEFAULT_PARAMS, campaigns_enabled=False)
    return synth.generate(20_000, seed=12, start=START, end=END, params=params)
