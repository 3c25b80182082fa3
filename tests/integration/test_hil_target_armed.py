"""``--laser-armed`` on the simulated target: the machines fire, and only while the target's
interlocks read safe; the door open (through the bench's relay coil) refuses the run in one line
before anything is ordered."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from crown_edge.toolpath import fires_laser
from hil.rig import LaserRefused, rig
from hil.runner import report

pytestmark = [pytest.mark.integration]

SIMULATED = Path(__file__).parents[2] / "hil" / "targets" / "simulated.toml"
REFUSAL = (
    "REFUSED --laser-armed: interlock io-1:door_closed reads False, needs True (door_open)"
    " before a job"
)


async def test_armed_fires_and_the_door_open_refuses_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with rig(tmp_path, SIMULATED, laser_armed=True) as r:
        config = tomllib.loads((tmp_path / "edge.toml").read_text())
        assert {m["laser"] for m in config["machines"]} == {"armed"}
        assert await report(r, ["happy_path_text_only"]) == 0  # door closed: armed jobs go
        out = capsys.readouterr().out.splitlines()
        assert out[0].endswith("laser ARMED") and out[1].startswith("PASS"), out
        (done,) = await r.ctl("jobs.list", status="complete")
        (record,) = await r.engraved(done["job_id"]) or []
        assert fires_laser(record["received"])  # armed: the real program, power and all

        before = len(await r.ctl("jobs.list"))
        await r.inject("door", "rotary-laser")  # the relay coil opens the door loop
        try:
            status = await report(r, ["happy_path_text_only", "design_approval_flow"])
            with pytest.raises(LaserRefused):
                await r.order()
        finally:
            await r.clear("door", "rotary-laser")
        out = capsys.readouterr().out.splitlines()
        assert status == 2
        assert out[-1] == REFUSAL, out
        assert [line for line in out if line.startswith("REFUSED")] == [REFUSAL]
        assert not any(line.startswith(("PASS", "FAIL")) for line in out), out
        assert len(await r.ctl("jobs.list")) == before  # nothing was ordered
        await r.check_armed()  # the door closed again: armed jobs may go
