"""Shared fixtures.

The seed for the property tests comes from ``ASSESS_TEST_SEED`` (default 0) and is printed in the
report header, so a failure in a rotated CI run can be reproduced (STYLE §13). Every seeded test
must pass for any seed 0–99.
"""
from __future__ import annotations

import os
import random

import pytest

import assess
from assess import instrument as _instrument

from _support import GBT, SEED_ENV


def _seed() -> int:
    return int(os.environ.get(SEED_ENV, "0"))


def pytest_report_header(config):
    return f"{SEED_ENV}={_seed()} (export it to reproduce the seeded tests)"


@pytest.fixture
def seed() -> int:
    return _seed()


@pytest.fixture
def rng(seed) -> random.Random:
    return random.Random(seed)


@pytest.fixture(scope="session")
def gbt():
    """GB/T 42195-2022 with its default settings."""
    return assess.load_instrument(GBT)


@pytest.fixture
def fresh_index():
    """Forget the installed-instrument index before and after a test that changes the search path."""
    _instrument._index.cache_clear()
    yield
    _instrument._index.cache_clear()
