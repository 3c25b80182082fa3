"""What a grbl controller's readings mean in MTConnect words: a pure mapping, no port, no clock.

:func:`machine_state` turns the last status report, the latched alarm and what the driver knows
about its own run into a :class:`~crown_edge.models.MachineState`; :func:`not_ready` says what
keeps a controller from taking a program (the error ``wait_ready`` and ``run_program`` raise).

=========================================  ============  ============================
reading                                    availability  execution
=========================================  ============  ============================
no link / no report yet                    UNAVAILABLE   STOPPED (INTERRUPTED after an
                                                         interrupted run)
``Alarm`` or an alarm latched              UNAVAILABLE   same; ``alarm`` ``ALARM:n name``
``Idle`` / ``Check``                       AVAILABLE     READY (ACTIVE while a program
                                                         runs, INTERRUPTED after one was)
``Run`` / ``Jog`` / ``Home``               AVAILABLE     ACTIVE
``Hold`` / ``Door`` / ``Tool``             AVAILABLE     FEED_HOLD (paused; ``Door:n``
                                                         with n > 0: alarm ``door open``)
``Sleep`` / anything else                  AVAILABLE     STOPPED
=========================================  ============  ============================
"""

from __future__ import annotations

from crown_edge.drivers.grbl import protocol as p
from crown_edge.errors import ControllerAlarm, DriverError, InterlockOpen, LinkLost
from crown_edge.models import Availability, Execution, MachineState

EXECUTION = {
    "Idle": Execution.READY,
    "Check": Execution.READY,
    "Run": Execution.ACTIVE,
    "Jog": Execution.ACTIVE,
    "Home": Execution.ACTIVE,
    "Hold": Execution.FEED_HOLD,
    "Door": Execution.FEED_HOLD,
    "Sleep": Execution.STOPPED,
    "Tool": Execution.FEED_HOLD,
}
"""grbl's machine state word -> MTConnect execution."""


def alarm_text(alarm: p.Alarm | None) -> str:
    """``ALARM:n name`` (just ``ALARM`` when the code is not known)."""
    return f"ALARM:{alarm.code} {alarm.name}" if alarm else "ALARM"


def machine_state(
    machine_id: str,
    status: p.Status | None,
    *,
    alarm: p.Alarm | None = None,
    alarm_latched: bool = False,
    running: bool = False,
    interrupted: bool = False,
    heartbeat_at: float | None = None,
    job_id: str | None = None,
    progress: float | None = None,
) -> MachineState:
    """The machine's state from its readings (see the module table).

    ``status``: the last report (None: no link or no report yet); ``alarm``: the alarm to name;
    ``alarm_latched``: the connection saw an ``ALARM:n`` not cleared since (the report may still
    say ``Idle``); ``running``: a program of this driver is running; ``interrupted``: the last
    run ended ``interrupted`` (until the next run, homing or unlock).
    """
    stopped = Execution.INTERRUPTED if interrupted else Execution.STOPPED
    if status is None:
        return MachineState(
            machine_id,
            Availability.UNAVAILABLE,
            stopped,
            heartbeat_at=heartbeat_at,
            job_id=job_id,
            progress=progress,
        )
    if status.state == "Alarm" or alarm_latched:
        return MachineState(
            machine_id,
            Availability.UNAVAILABLE,
            stopped,
            alarm=alarm_text(alarm),
            heartbeat_at=heartbeat_at,
            job_id=job_id,
            progress=progress,
        )
    execution = EXECUTION.get(status.state, Execution.STOPPED)
    if execution is Execution.READY and running:
        execution = Execution.ACTIVE  # a program is running, grbl is between blocks
    elif execution is Execution.READY and interrupted:
        execution = Execution.INTERRUPTED
    return MachineState(
        machine_id,
        Availability.AVAILABLE,
        execution,
        alarm="door open" if status.state == "Door" and status.substate != 0 else None,
        heartbeat_at=heartbeat_at,
        paused=execution is Execution.FEED_HOLD,
        job_id=job_id,
        progress=progress,
    )


def work_position(
    status: p.Status | None, wco: tuple[float, ...] | None
) -> dict[str, float] | None:
    """The head's work position by axis letter: ``WPos``, or ``MPos`` less the last ``WCO``."""
    if status is None:
        return None
    if status.wpos is not None:
        where = status.wpos
    elif status.mpos is not None and wco is not None:
        where = tuple(m - o for m, o in zip(status.mpos, wco, strict=False))
    else:
        return None
    return dict(zip("XYZA", where, strict=False))


def not_ready(
    machine_id: str,
    status: p.Status | None,
    *,
    alarm: p.Alarm | None = None,
    alarm_latched: bool = False,
    url: str | None = None,
) -> DriverError | None:
    """What keeps the controller from taking a program now, as the error to raise (None: ready).

    No link -> LinkLost; ``Alarm`` or a latched alarm -> ControllerAlarm; ``Door`` ->
    InterlockOpen (``door``); anything but ``Idle`` / ``Check`` -> DriverError (busy).
    """
    if status is None:
        fields: dict[str, object] = {"machine_id": machine_id}
        if url is not None:
            fields["url"] = url
        return LinkLost(f"machine {machine_id} is not connected", **fields)
    if status.state == "Alarm" or alarm_latched:
        code = alarm.code if alarm else None
        return ControllerAlarm(
            f"machine {machine_id} is in alarm", machine_id=machine_id, code=code
        )
    if status.state == "Door":
        return InterlockOpen(
            f"machine {machine_id}: safety door open", machine_id=machine_id, interlock="door"
        )
    if status.state not in ("Idle", "Check"):
        return DriverError(
            f"machine {machine_id} is busy ({status.state})",
            machine_id=machine_id,
            state=status.state,
        )
    return None
