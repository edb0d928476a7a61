"""Shared fixtures: every test runs with its own model cache; a headless Chromium for browser tests.

The browser tests need Chromium at /usr/bin/chromium (Debian's ``chromium`` package, or the path in
FLOWLIB_CHROMIUM) and the ``playwright`` Python package; they never download a browser. Without
Chromium they are skipped, unless FLOWLIB_REQUIRE_BROWSER=1 (set by .ci/run) turns the skip into a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

CHROMIUM = Path(os.environ.get("FLOWLIB_CHROMIUM", "/usr/bin/chromium"))
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FLOWLIB_CACHE", str(tmp_path_factory.mktemp("flowlib-cache")))
    torch.manual_seed(0)
    yield


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists() or not os.access(CHROMIUM, os.X_OK):
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("FLOWLIB_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()
