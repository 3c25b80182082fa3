"""Echoes: which workflow statuses the workshop's events already carry to the job-events queue."""

from __future__ import annotations

from typing import Any

import pytest

from crown_edge.cloud.echoes import Echoes


def _ev(status: str, job: str = "J-1") -> dict[str, Any]:
    return {"job_id": job, "status": status}


def test_a_status_the_workshop_relayed_is_an_echo() -> None:
    echoes = Echoes()
    echoes.workshop_relayed(_ev("queued"))
    assert echoes.is_echo(_ev("queued"))
    assert echoes.skipped == 1


def test_a_status_only_the_workflow_says_is_relayed() -> None:
    echoes = Echoes()
    echoes.workshop_relayed(_ev("queued"))
    assert not echoes.is_echo(_ev("designing"))
    assert not echoes.is_echo(_ev("queued", job="J-2"))  # another job's
    assert echoes.skipped == 0


def test_the_workflow_first_means_both_reach_the_queue() -> None:
    """The workflow's status came before the workshop's: it is relayed, and the workshop's
    own (relayed regardless) does not make the next one an echo."""
    echoes = Echoes()
    assert not echoes.is_echo(_ev("queued"))
    echoes.workshop_relayed(_ev("queued"))
    assert not echoes.is_echo(_ev("engraving"))
    echoes.workshop_relayed(_ev("queued"))  # second attempt, the workshop first this time
    assert echoes.is_echo(_ev("queued"))


def test_occurrences_match_by_count() -> None:
    """A re-engrave says ``queued`` twice: the workflow's second one is an echo only once the
    workshop's second one went to the relay."""
    echoes = Echoes()
    echoes.workshop_relayed(_ev("queued"))
    assert echoes.is_echo(_ev("queued"))
    assert not echoes.is_echo(_ev("queued"))  # the workshop's second is not in yet
    echoes.workshop_relayed(_ev("queued"))
    echoes.workshop_relayed(_ev("queued"))
    assert echoes.is_echo(_ev("queued"))  # the third


def test_the_oldest_jobs_are_forgotten() -> None:
    echoes = Echoes(max_jobs=2)
    echoes.workshop_relayed(_ev("queued", job="J-1"))
    echoes.workshop_relayed(_ev("queued", job="J-2"))
    echoes.workshop_relayed(_ev("queued", job="J-3"))
    assert len(echoes) == 2
    assert not echoes.is_echo(_ev("queued", job="J-1"))  # forgotten: relayed, never lost
    assert echoes.is_echo(_ev("queued", job="J-3"))


def test_max_jobs_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_jobs"):
        Echoes(max_jobs=0)
