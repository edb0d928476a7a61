"""Shared fixtures: every test runs with its own model cache; the devices to test on; a headless Chromium
for browser tests.

``DEVICES`` is the CPU, plus CUDA when torch sees a GPU; a test that takes the ``device`` fixture runs once
per device (on a machine without a GPU the CUDA cases are simply not generated).

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
#: Where device-parametrised tests run.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
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


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """Each device of ``DEVICES`` in turn."""
    return torch.device(request.param)


def gen(seed: int = 0, device: str | torch.device = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


@pytest.fixture(scope="session")
def executed_book(tmp_path_factory):
    """A copy of the book with every chapter executed in smoke mode: ``(folder, {chapter stem: Run})``."""
    from notebooks import executed_book as execute_into

    folder = tmp_path_factory.mktemp("executed-book")
    return folder, execute_into(folder)


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
