"""Fixtures for the data-validation tests: one GX project root per test session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def gx_root(tmp_path_factory):
    return tmp_path_factory.mktemp("gx_root")
