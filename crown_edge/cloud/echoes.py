"""Which workflow statuses the job-events queue does not need: echoes of a workshop event.

Most statuses of a job are said twice: the workshop reports ``queued``, ``engraving``,
``qa_pending``, ``complete``… as its store changes, and the workflow reports the same words a
moment later from its own history. Both used to go to ``crown-trophy-job-events.fifo``, so a
downstream consumer read every status twice (each source with its own ``seq``) and SQS carried
twice the messages. Now a workflow status is relayed only when it says something the queue does
not hold yet: a workflow status whose word the workshop's events for that job already carried as
often, and that SQS already *took* (not merely queued for the relay), is an echo and stays off the
queue. Everything else is relayed as before: statuses only the workflow knows (``designing``,
``pending_approval``, ``escalated``, a customer's ``cancelled``…), and a workflow status that
arrives before the workshop's own (both then reach the queue, as before).

Nothing is lost: the echo is the same transition of the same job, and its workshop twin is
already durable in SQS (workshop events are acknowledged only once SQS took them). The board,
the live pages and the other replicas still get every workflow status; only the queue's copy is
left out. Occurrences are matched by count, so the second ``queued`` of a job (a re-engrave after
a failed QA check) is an echo only once the workshop's second ``queued`` is in the queue.

Pure bookkeeping, bounded: the oldest jobs are forgotten past ``max_jobs`` (a forgotten job's
next workflow status is simply relayed).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Any


class Echoes:
    """Counts, per job, each status word the workshop got into SQS and the workflow said."""

    def __init__(self, max_jobs: int = 10_000) -> None:
        if max_jobs < 1:
            raise ValueError(f"max_jobs must be at least 1, got {max_jobs}")
        self.max_jobs = max_jobs
        #: job → (status words SQS took from the workshop, status words the workflow said)
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

    def workshop_sent(self, event: dict[str, Any]) -> None:
        """SQS took this workshop event."""
        self._counts(str(event["job_id"]))[0][str(event["status"])] += 1

    def is_echo(self, event: dict[str, Any]) -> bool:
        """A fresh workflow status: whether the queue already holds the workshop's report of
        it (this is the workflow's n-th such word for the job, and SQS took n of the
        workshop's). Counts the status either way; call once per fresh workflow status."""
        sent, said = self._counts(str(event["job_id"]))
        status = str(event["status"])
        said[status] += 1
        if sent[status] >= said[status]:
            self.skipped += 1
            return True
        return False

    def __len__(self) -> int:
        return len(self._jobs)
