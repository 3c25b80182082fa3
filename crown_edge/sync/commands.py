"""The commands a workshop takes over MQTT (``commands/{verb}``), as a schema. Pure: no I/O.

The broker's ACL lets only the cloud identity publish under ``commands/``; this schema is the
workshop's own second wall behind it. A command is accepted only when its verb is known and its
payload is exactly that verb's shape: unknown or missing fields, wrong types, ids the store would
never hold (the intake message's job-id rule, the configuration's machine-id rule) — all are
refused with a reason, and the caller logs it and does nothing.

:func:`parse_command` is total: it returns a typed command or a
:class:`~crown_edge.sync.wire.Rejected`, never raises. ``MAX_PAYLOAD`` bounds the raw bytes the
link decodes (:func:`~crown_edge.sync.wire.decode_object`).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, StringConstraints
from pydantic import ValidationError as PydanticValidationError

from crown_edge.models import MAX_ID_LEN
from crown_edge.sync.wire import IDENT_PATTERN, JOB_ID_PATTERN, Rejected

MAX_PAYLOAD = 4096
MAX_VERB_LEN = 32

#: A job id as :meth:`crown_edge.models.IntakeMessage.parse` accepts it.
JobId = Annotated[str, StringConstraints(pattern=JOB_ID_PATTERN, max_length=MAX_ID_LEN)]
#: A machine id as the ``[[machines]] id`` key of the configuration accepts it.
MachineId = Annotated[str, StringConstraints(pattern=IDENT_PATTERN, max_length=64)]


class Command(BaseModel):
    """A validated remote command: which control handler runs it, with which arguments."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    #: The control-socket command that carries it out (:mod:`crown_edge.daemon.handlers`).
    handler: ClassVar[str]

    def args(self) -> dict[str, Any]:
        """Arguments for the control handler; a remote command records ``reason="remote"``."""
        return {**self.model_dump(), "reason": "remote"}


class CancelJob(Command):
    """``commands/cancel``: cancel a job (its machine run stops, its stock is released)."""

    handler: ClassVar[str] = "jobs.cancel"
    job_id: JobId


class TopJob(Command):
    """``commands/top``: move a queued job to the head of the queue."""

    handler: ClassVar[str] = "jobs.top"
    job_id: JobId


class PauseMachine(Command):
    """``commands/pause``: take no new job on a machine (the running one finishes)."""

    handler: ClassVar[str] = "machines.pause"
    machine_id: MachineId


class ResumeMachine(Command):
    """``commands/resume``: let a paused machine take jobs again."""

    handler: ClassVar[str] = "machines.resume"
    machine_id: MachineId


#: ``commands/{verb}`` → the command's schema.
COMMANDS: dict[str, type[Command]] = {
    "cancel": CancelJob,
    "top": TopJob,
    "pause": PauseMachine,
    "resume": ResumeMachine,
}


def parse_command(verb: str, payload: object) -> Command | Rejected:
    """The command ``payload`` (a decoded JSON object) asks for on ``commands/{verb}``.

    Never raises: anything that is not exactly one of :data:`COMMANDS` is a :class:`Rejected`
    whose reason names the field at fault (never echoing the payload's values).
    """
    try:
        schema = COMMANDS.get(verb) if isinstance(verb, str) else None
        if schema is None:
            return Rejected(f"unknown command verb {str(verb)[:MAX_VERB_LEN]!r}")
        if not isinstance(payload, dict):
            return Rejected(f"{verb}: payload must be a JSON object")
        return schema.model_validate(payload)
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])[:40] or 'payload'!r}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)[:5]
        )
        return Rejected(f"{verb}: {problems}")
    except Exception as exc:  # total by contract
        return Rejected(f"{str(verb)[:MAX_VERB_LEN]!r}: invalid command ({type(exc).__name__})")
