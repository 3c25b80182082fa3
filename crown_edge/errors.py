"""One error tree for crown-edge.

Every error the package raises derives from :class:`CrownEdgeError` and carries its context as
fields, so callers (the CLI, the daemon, Temporal activities) can report one clear line and act on
the fields rather than parse messages. Third-party exceptions are translated at the boundary with
``raise ... from``.
"""

from __future__ import annotations

from typing import Any


class CrownEdgeError(Exception):
    """Base of every crown-edge error. ``fields`` holds the structured context."""

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields: dict[str, Any] = fields

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description: type, message and fields."""
        return {"error": type(self).__name__, "message": self.message, **self.fields}


# --- configuration -------------------------------------------------------------------------------


class ConfigError(CrownEdgeError):
    """A configuration value is missing or out of range; names section, key and allowed values."""

    def __init__(self, section: str, key: str, problem: str, allowed: str | None = None) -> None:
        where = f"{section}.{key}" if key else section
        text = f"config error: [{section}] {key or '(section)'}: {problem}"
        if allowed:
            text += f" (allowed: {allowed})"
        super().__init__(text, section=section, key=key, where=where, allowed=allowed)


# --- validation of input -------------------------------------------------------------------------


class ValidationError(CrownEdgeError):
    """Input (an intake message, a CLI argument) does not fit the contract."""


class MessageInvalid(ValidationError):
    """An intake message failed the schema. ``reasons`` lists field-level problems."""

    def __init__(self, reasons: list[str], job_id: str | None = None) -> None:
        super().__init__("invalid message: " + "; ".join(reasons), reasons=reasons, job_id=job_id)
        self.reasons = reasons


class TextDoesNotFit(ValidationError):
    """The engraving text cannot be laid out legibly in the item's engraving area."""


class GlyphMissing(ValidationError):
    """The chosen font lacks a character of the text; named, never silently dropped."""


class ArtworkError(ValidationError):
    """Artwork could not be fetched or parsed within the limits (size, type, time)."""


# --- jobs, store, scheduling ---------------------------------------------------------------------


class JobError(CrownEdgeError):
    """A job-level problem."""


class UnknownJob(JobError):
    """No job with that id exists in the store."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"unknown job: {job_id}", job_id=job_id)


class UnknownItem(JobError):
    """No item with that id exists in the inventory."""

    def __init__(self, item_id: str) -> None:
        super().__init__(f"unknown item: {item_id}", item_id=item_id)


class UnknownMachine(JobError):
    """No machine with that id is configured."""

    def __init__(self, machine_id: str) -> None:
        super().__init__(f"unknown machine: {machine_id}", machine_id=machine_id)


class IllegalTransition(JobError):
    """The job lifecycle table does not allow this event in this state."""

    def __init__(self, job_id: str, state: str, event: str) -> None:
        super().__init__(
            f"job {job_id}: event {event!r} is not allowed in state {state!r}",
            job_id=job_id,
            state=state,
            event=event,
        )


class NoInventory(JobError):
    """No unit of the item is available to reserve."""

    def __init__(self, item_id: str) -> None:
        super().__init__(f"no inventory for item {item_id}", item_id=item_id)


class StoreError(CrownEdgeError):
    """The durable store failed (I/O, corruption, migration)."""


# --- drivers -------------------------------------------------------------------------------------


class DriverError(CrownEdgeError):
    """A machine driver problem. Fields usually include machine_id."""


class ProtocolError(DriverError):
    """Bytes from a controller do not parse, or a command cannot be encoded."""


class ControllerError(DriverError):
    """The controller answered ``error:n`` to a line."""


class ControllerAlarm(DriverError):
    """The controller raised ``ALARM:n``; motion is stopped and it needs a technician."""


class LinkLost(DriverError):
    """The serial port vanished or the controller went silent."""


class InterlockOpen(DriverError):
    """A safety interlock (door, e-stop, exhaust) is not in its safe state."""


class DeviceError(DriverError):
    """A Modbus device timed out or answered with an exception; names device and point."""


# --- sync / orchestration ------------------------------------------------------------------------


class SyncError(CrownEdgeError):
    """A link to the cloud (MQTT, SQS, Temporal) failed."""


class ControlError(CrownEdgeError):
    """The CLI could not talk to the daemon over the control socket."""
