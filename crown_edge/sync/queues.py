"""SQS queue names and attributes, as data (the queues are listed in docs/architecture.md).

The seed names the queues; AWS requires the ``.fifo`` suffix. Deduplication is always explicit
(``MessageDeduplicationId`` = job id or event id), so content-based deduplication is off.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

ENGRAVING_QUEUE = "crown-trophy-engraving-jobs.fifo"
PRIORITY_QUEUE = "crown-trophy-priority-jobs.fifo"
DLQ_QUEUE = "crown-trophy-engraving-dlq.fifo"
EVENTS_QUEUE = "crown-trophy-job-events.fifo"

RETENTION_14_DAYS = 14 * 24 * 3600
MAX_RECEIVE_COUNT = 3


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """One FIFO queue: name, visibility timeout, retention, and whether it drains into the DLQ."""

    name: str
    visibility_timeout: int = 30
    retention: int = RETENTION_14_DAYS
    redrive_to_dlq: bool = False

    def attributes(self, dlq_arn: str | None = None) -> dict[str, str]:
        """``CreateQueue`` attributes; ``dlq_arn`` is required when ``redrive_to_dlq``."""
        attrs = {
            "FifoQueue": "true",
            "ContentBasedDeduplication": "false",
            "VisibilityTimeout": str(self.visibility_timeout),
            "MessageRetentionPeriod": str(self.retention),
        }
        if self.redrive_to_dlq:
            if dlq_arn is None:
                raise ValueError(f"{self.name}: redrive needs the DLQ's ARN")
            attrs["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
            )
        return attrs


DLQ = QueueSpec(DLQ_QUEUE, visibility_timeout=300)
ENGRAVING = QueueSpec(ENGRAVING_QUEUE, visibility_timeout=300, redrive_to_dlq=True)
PRIORITY = QueueSpec(PRIORITY_QUEUE, visibility_timeout=180, redrive_to_dlq=True)
EVENTS = QueueSpec(EVENTS_QUEUE, visibility_timeout=60)

#: Creation order matters: the DLQ must exist before the queues that redrive into it.
ALL_QUEUES: tuple[QueueSpec, ...] = (DLQ, ENGRAVING, PRIORITY, EVENTS)


def create_queues(sqs: Any, specs: tuple[QueueSpec, ...] = ALL_QUEUES) -> dict[str, str]:
    """Create (or find) every queue with a boto3 SQS client; return ``{name: queue_url}``.

    Idempotent: ``CreateQueue`` with identical attributes returns the existing queue.
    """
    urls: dict[str, str] = {}
    dlq_arn: str | None = None
    for spec in specs:
        url = sqs.create_queue(QueueName=spec.name, Attributes=spec.attributes(dlq_arn))["QueueUrl"]
        urls[spec.name] = url
        if spec.name == DLQ_QUEUE:
            got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            dlq_arn = got["Attributes"]["QueueArn"]
    return urls
