"""Headless Chromium against the whole running flow: the customer's page as a customer sees it.

One rig (:mod:`hil.rig`: Temporal dev server, mosquitto, moto, the workshop daemon with
simulated lasers, the cloud side, a technician answering QA) and one browser serve the module.
The browser is Debian's ``chromium`` driven by Playwright's async API over ``executable_path``:
no browser is ever downloaded. Tests skip, saying what is missing, only when Playwright or
Chromium is absent.

Screenshots go to ``var/test-artifacts/browser/`` (or ``$CROWN_TEST_ARTIFACTS/browser``); the
directory is printed once per session.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from hil.rig import Rig, rig

CHROMIUM = os.environ.get("CROWN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
#: Simulated machine time per real second: engraving one plaque takes a few seconds, so the
#: workshop reports progress (at most once a second) several times while the page watches.
TIME_SCALE = 0.25

ARTIFACTS = (
    Path(os.environ.get("CROWN_TEST_ARTIFACTS", Path(__file__).parents[2] / "var/test-artifacts"))
    / "browser"
)


def _missing() -> str | None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]' or requirements.lock)"
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)):
        return f"chromium not found at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go (printed at the end of the run)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    _used.append(ARTIFACTS)
    return ARTIFACTS


_used: list[Path] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say where the screenshots are."""
    if _used:
        terminalreporter.write_line(f"browser test screenshots: {_used[0]}")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    """Debian's Chromium, headless, launched by Playwright (never a downloaded browser)."""
    missing = _missing()
    if missing is not None:
        pytest.skip(missing)
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack_rig(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    """The whole flow, machines at :data:`TIME_SCALE`, a technician passing every QA."""
    async with rig(tmp_path_factory.mktemp("browser"), time_scale=TIME_SCALE) as r:
        yield r
