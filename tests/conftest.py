"""Shared fixtures: every test runs with its own model cache and smoke mode unset unless it asks."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FLOWLIB_CACHE", str(tmp_path_factory.mktemp("flowlib-cache")))
    torch.manual_seed(0)
    yield


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
