"""The CLI's commands are attached by ``main()``; tests that drive ``app`` attach them first."""

from __future__ import annotations

import pytest

from crown_edge.cli import _attach_subapps, _register, app


@pytest.fixture(scope="session", autouse=True)
def commands() -> None:
    """Register every command on the typer app once."""
    if not any(c.callback and c.callback.__name__ == "status" for c in app.registered_commands):
        _register()
        _attach_subapps()
