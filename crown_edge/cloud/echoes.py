"""Which workflow statuses the job-events queue does not need: echoes of a workshop event.

Most statuses of a job are said twice: the workshop reports ``queued``, ``engraving``,
``qa_pending``, ``complete``… as its store changes, and the workflow reports the same words a
moment later from its own history. Both used to go to ``crown-trophy-job-events.fifo``, so a
downstream consumer read every status twice (each source with its own ``seq``) and SQS carried
twice the messages. Now a workflow status is relayed only when it says something the workshop's
events do not: a workflow status whose word this job's workshop events already carried to the
relay as often is an echo and stays off the queue. Everything else is relayed as before: statuses
only the workflow knows (``designing``, ``pending_approval``, ``escalated``, a customer's
``cancelled``…), and a workflow status that comes before the workshop's own (both then reach the
queue, as before).

Nothing is lost. A workshop event handed to the relay reaches SQS: the workshop keeps it in its
outbox and sends it again until the cloud acknowledges it, and the bridge acknowledges only once
SQS took it (:mod:`crown_edge.sync.delivery`), so a bridge that dies first is covered by the
resend. The board, the live pages and the other replicas still get every workflow status; only
the queue's copy is left out. Occurrences are matched by count, so the second ``queued`` of a
job (a re-engrave after a failed QA check) is an echo only once the workshop's second one went.

Pure bookkeeping, bounded: the oldest jobs are forgotten past ``max_jobs`` (a forgotten job's
next workflow status is simply relayed).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Any


class Echoes:
    """Counts, per job, each status word the workshop relayed and the workflow said."""

    def __init__(self, max_jobs: int = 10_000) -> None:
        if max_jobs < 1:
            raise ValueError(f"max_jobs must be at least 1, got {max_jobs}")
        self.max_jobs = max_jobs
        #: job → (status words the workshop's events took to the relay, words the workflow said)
        self._jobs: OrderedDict[str, tuple[Counter[str], Counter[str]]] = OrderedDict()
        #: workflow statuses left off the queue as echoes
        self.skipped = 0

    def _counts(self, job_id: str) -> tuple[Counter[str], Counter[str]]:
        counts = self._jobs.get(job_id)
        if counts is None:
            counts = self._jobs[job_id] = (Counter(), Counter())
            while len(self._jobs) > self.max_jobs:
                self._jobs.popitem(last=False)
        return counts

    def workshop_relayed(self, event: dict[str, Any]) -> None:
        """This workshop event went to the relay (it will be in SQS: module docstring)."""
        self._counts(str(event["job_id"]))[0][str(event["status"])] += 1

    def is_echo(self, event: dict[str, Any]) -> bool:
        """A fresh workflow status: whether the workshop's report of it is on its way to the
        queue (this is the workflow's n-th such word for the job, and n of the workshop's went
        to the relay). Counts the status either way; call once per fresh workflow status."""
        sent, said = self._counts(str(event["job_id"]))
        status = str(event["status"])
        said[status] += 1
        if sent[status] >= said[status]:
            self.skipped += 1
            return True
        return False

    def __len__(self) -> int:
        return len(self._jobs)
