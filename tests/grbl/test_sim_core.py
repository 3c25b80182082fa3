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


def _run_all(core: GrblCore) -> None:
    """Execute everything queued, as the simulator's motion loop does when time has passed."""
    while core.queue:
        core.finish(core.queue.popleft())
    core.update_idle()


def _fill_planner(core: GrblCore) -> None:
    core.execute("(job J-R)")
    for i in range(core.planner_blocks):
        assert core.execute(f"G1 X{i + 1} F10") == ["ok"]
    assert core.planner_full and core.state == "Run"


def test_reset_in_run_cuts_motion_and_answers_the_blocked_line_after_the_silence() -> None:
    core = GrblCore()
    _fill_planner(core)
    plan = core.soft_reset(line_in_progress=True)
    assert plan.alarm == ["ALARM:3"]
    assert plan.after == ["ok", "", "Grbl 1.1h ['$' for help]", "[MSG:'$H'|'$X' to unlock]"]
    assert core.state == "Alarm" and not core.queue
    record = core.programs[0]
    assert record.interrupted and len(record.received) == 16 and record.executed == ["(job J-R)"]


def test_reset_while_braking_is_an_alarm_but_a_complete_hold_is_not() -> None:
    braking = GrblCore()
    _fill_planner(braking)
    braking.feed_hold(moving=True)
    assert braking.status(feed=0, power=0, rx_free=127).startswith("<Hold:1|")
    plan = braking.soft_reset()
    assert plan.alarm == ["ALARM:3"] and plan.after[-1] == "[MSG:'$H'|'$X' to unlock]"

    held = GrblCore()
    _fill_planner(held)
    held.feed_hold(moving=True)
    held.hold_complete()
    assert held.status(feed=0, power=0, rx_free=127).startswith("<Hold:0|")
    plan = held.soft_reset(line_in_progress=True)
    assert plan.alarm == [] and plan.after == ["ok", "", "Grbl 1.1h ['$' for help]"]
    assert held.state == "Idle"
    assert GrblCore().soft_reset().after == ["", "Grbl 1.1h ['$' for help]"]  # idle, no line


def test_reset_while_homing_is_alarm_6_and_answers_the_homing_line() -> None:
    core = GrblCore({22: 1})
    assert core.execute("$H") == [] and core.state == "Home"
    plan = core.soft_reset()
    assert plan.alarm == ["ALARM:6"] and plan.after[0] == "ok"


def test_cycle_start_restores_the_laser_only_after_a_complete_hold() -> None:
    core = GrblCore()
    core.execute("M4 S500")
    core.execute("G1 X50 F3000")
    core.feed_hold(moving=True)
    assert core.cycle_start() == [] and core.state == "Hold"  # still braking: ~ is ignored
    core.hold_complete()
    assert core.cycle_start() == ["[MSG:Restoring spindle]"] and core.state == "Run"


def test_cycle_start_without_laser_mode_or_spindle_prints_nothing() -> None:
    for dollar, program in (({32: 0}, "M4 S500"), ({}, "M5")):
        core = GrblCore(dollar)
        core.execute(program)
        core.execute("G1 X50 F3000")
        core.feed_hold(moving=True)
        core.hold_complete()
        assert core.cycle_start() == [] and core.state == "Run"
    idle = GrblCore()
    idle.feed_hold(moving=False)
    assert idle.state == "Hold" and not idle.decelerating
    assert idle.cycle_start() == [] and idle.state == "Idle"


def test_laser_power_follows_speed_in_m4_and_is_s_in_m3() -> None:
    core = GrblCore()
    core.execute("M4 S1000")
    core.execute("G1 X10 F600")
    core.execute("M3 S400")
    core.execute("G1 X20")
    core.execute("G0 X0")
    dynamic, constant, rapid = (e for e in core.queue if e.block is not None)
    assert core.power(dynamic, 300.0) == 500.0
    assert core.power(constant, 300.0) == 400.0
    assert core.power(rapid, 6000.0) == 0.0
    assert core.power(None, 0.0) == 0.0  # idle or held
    report = core.status(feed=2373.4, power=316.4, rx_free=127)
    assert "|FS:2373,316" in report
    spindle = GrblCore({32: 0})  # not a laser: the spindle runs whenever it is on
    spindle.execute("M3 S800")
    _run_all(spindle)
    assert spindle.power(None, 0.0) == 800.0


def test_build_info_is_the_default_1_1h_build() -> None:
    assert GrblCore().execute("$I") == ["[VER:1.1h.20190830:]", "[OPT:V,15,128]", "ok"]
    assert GrblCore(mist=True).execute("$I")[1] == "[OPT:VM,15,128]"


def test_settings_dump_formats_as_report_c() -> None:
    lines = set(GrblCore().execute("$$"))
    for line in ("$0=10", "$10=1", "$11=0.010", "$22=0", "$24=25.000", "$26=250", "$30=1000"):
        assert line in lines
    for line in ("$31=0", "$32=1", "$100=80.000", "$110=6000.000", "$120=2000.000"):
        assert line in lines


def test_accessories_show_spindle_direction_and_coolant() -> None:
    core = GrblCore(mist=True)
    for line in ("M4 S300", "M8", "M7", "G1 X1 F100"):
        assert core.execute(line) == ["ok"]
    assert "M7 M8" in core.execute("$G")[0]
    _run_all(core)
    reports = [core.status(feed=0, power=0, rx_free=127) for _ in range(2)]
    assert reports[1].endswith("|Ov:100,100,100|A:CFM>")
    assert core.execute("M9") == ["ok"] and core.execute("M3") == ["ok"]
    _run_all(core)
    parsed = p.parse_line([core.status(feed=0, power=0, rx_free=127) for _ in range(10)][-1])
    assert isinstance(parsed, p.Status) and parsed.accessories == "S"


def test_m7_is_unsupported_in_the_default_build() -> None:
    core = GrblCore()
    assert core.execute("M7") == ["error:20"]
    core.execute("M4 S300")
    core.execute("M8")
    _run_all(core)
    core.status(feed=0, power=0, rx_free=127)
    assert core.status(feed=0, power=0, rx_free=127).endswith("|A:CF>")


def test_reset_while_jogging_cuts_motion() -> None:
    core = GrblCore()
    assert core.execute("$J=G91 X50 F1000") == ["ok"] and core.state == "Jog"
    assert core.soft_reset().alarm == ["ALARM:3"]


def test_each_program_record_starts_at_its_own_header() -> None:
    """The header line before ``(job ID)`` belongs to its program, not to the one before."""
    core = GrblCore()
    first = ["(crown-edge toolpath v1)", "(job A)", "G21 G90", "M5"]
    second = ["(crown-edge toolpath v1)", "(job B)", "G21 G90", "G0 X1 Y1", "M5"]
    for line in [*first, *second, "(job C)", "G0 X0 Y0"]:
        assert core.execute(line)[-1] == "ok"
    records = {r.job_id: r for r in core.programs}
    assert records["A"].received == first and records["B"].received == second
    assert records["C"].received == ["(job C)", "G0 X0 Y0"]  # no header: starts at the job
