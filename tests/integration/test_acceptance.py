"""The seed's acceptance tests and the fault scenarios, on the whole flow.

Real Temporal dev server, real MQTT broker, moto's SQS, the Order API over HTTP, the workshop
daemon with GRBL simulators on pseudo-terminals and a Modbus simulator: the HIL rig's ``sim``
target. One rig serves the module; each scenario uses its own jobs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from hil.rig import Rig, rig
from hil.scenarios import ACCEPTANCE, FAULTS

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hil_rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    workdir: Path = tmp_path_factory.mktemp("hil")
    async with rig(workdir) as r:
        yield r


@pytest.mark.parametrize("name", list(ACCEPTANCE))
async def test_seed_acceptance(hil_rig: Rig, name: str) -> None:
    await ACCEPTANCE[name](hil_rig)


@pytest.mark.parametrize("name", list(FAULTS))
async def test_fault_scenario(hil_rig: Rig, name: str) -> None:
    await FAULTS[name](hil_rig)
