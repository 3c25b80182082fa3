"""The simulator's controller logic, pure: every line gets exactly one answer, never a crash."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from crown_edge.drivers.grbl import protocol as p
from crown_edge.sim.grbl_core import GrblCore, job_id_of

GCODE_ISH = st.text(alphabet="GMXYZAFSPNQ$=.-0123456789 ()#;J", max_size=90)


@settings(deadline=None)  # no wall-clock limit on a shared CI box
@given(st.lists(GCODE_ISH | st.text(max_size=40), max_size=40))
def test_every_line_gets_exactly_one_answer(lines: list[str]) -> None:
    core = GrblCore()
    for line in lines:
        if "\n" in line or "\r" in line:
            continue
        out = core.execute(line)
        if core.state == "Home":  # the homing cycle answers when it ends
            assert out == []
            core.state = "Idle"
            continue
        events = [p.parse_line(text) for text in out]
        answers = [e for e in events if isinstance(e, p.Ok | p.Error)]
        assert len(answers) == 1 and events[-1] is answers[0]
        core.queue.clear()  # as if executed, so the planner never fills


def test_job_comments() -> None:
    assert job_id_of("(job J-1)") == "J-1"
    assert job_id_of("(job: J-2)") == "J-2"
    assert job_id_of("(JOB_ID=abc.3)") == "abc.3"
    assert job_id_of("(crown-edge toolpath v1)") is None
    assert job_id_of("G1 X1 (job J-1)") is None


def test_status_report_parses_and_follows_settings() -> None:
    core = GrblCore({10: 3})
    report = p.parse_line(core.status(feed=0.0, power=0.0, rx_free=127))
    assert isinstance(report, p.Status)
    assert report.state == "Idle" and report.planner_free == 15 and report.rx_free == 127
    assert report.wco == (0.0, 0.0, 0.0)
