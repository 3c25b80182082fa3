"""The assembled cloud side and the embedded stack: an order from POST to a workshop event."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any, cast

import pytest

from crown_edge.cloud.auth import Credentials
from crown_edge.cloud.mail import MailError, MailSettings, MailTransport
from crown_edge.cloud.service import CloudServices, CloudSettings
from crown_edge.embedded import EmbeddedServices, MotoServer, MqttBroker
from crown_edge.embedded._proc import port_open
from crown_edge.errors import SyncError
from crown_edge.models import IntakeMessage
from crown_edge.sync import queues
from crown_edge.sync.mqtt import MqttLink
from tests.cloud.client import post_json, request
from tests.sync.fakes import MemoryOutbox, until

pytestmark = pytest.mark.integration

KEY = "services-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
GOOD = {"job_id": "J-1", "customer_id": "C-1", "item_id": "plaque-a5", "due_date": "2026-12-01"}


async def test_order_flows_from_api_to_dispatcher_and_back_from_the_workshop(
    mqtt_broker: MqttBroker, moto_server: MotoServer, sqs_queues: dict[str, str], tmp_path: Path
) -> None:
    started: list[IntakeMessage] = []

    async def start_job(msg: IntakeMessage) -> None:
        started.append(msg)

    settings = CloudSettings(
        designs_dir=tmp_path,
        credentials=Credentials((KEY,), ("services-test-secret-0123",)),
        shops=frozenset({"s1"}),
        metrics_port=0,
        mqtt_host=mqtt_broker.host,
        mqtt_port=mqtt_broker.port,
        mqtt_username=mqtt_broker.cloud().username,
        mqtt_password=mqtt_broker.cloud().password,
        mqtt_tls=mqtt_broker.cloud().tls,
        bridge_client_id=uuid.uuid4().hex,
        sqs_endpoint_url=moto_server.endpoint_url,
        dispatcher_wait_seconds=0,
        intake_journal=tmp_path / "intake.db",
    )
    async with CloudServices(settings, start_job) as cloud:
        async with asyncio.timeout(20):
            await cloud.bridge.wait_connected()
        reply = await post_json(f"{cloud.api.url}/orders", {**GOOD, "shop_id": "s1"}, KEY)
        assert reply.status == 202
        await until(lambda: len(started) == 1)
        assert started[0].shop_id == "s1"
        # what the started workflow's first status does: it tells the bridge the job's shop
        received = {"event_id": "J-1:1", "job_id": "J-1", "seq": 1, "status": "received"}
        await cloud.bridge.cloud_sink("status", {**received, "shop_id": "s1"})

        outbox = MemoryOutbox()
        outbox.put("events", {"event_id": "u1", "job_id": "J-1", "seq": 1, "status": "queued"})
        async with MqttLink(mqtt_broker.workshop_settings("s1"), outbox):
            await until(lambda: cloud.bridge.relayed == 2)
        status = await request(f"{cloud.api.url}/orders/J-1", headers=AUTH)
        assert status.json()["status"] == "queued"
        assert status.json()["source"] == "edge:s1"
        metrics = (await request(f"{cloud.api.url}/metrics", headers=AUTH)).body.decode()
        assert 'crown_dispatcher_messages{outcome="started"} 1.0' in metrics
        assert 'crown_bridge_rejected_total{reason="wrong_shop"} 0.0' in metrics
        assert (await request(f"{cloud.api.url}/metrics")).status == 401
        assert cloud.metrics_server is not None  # its own, private address: no key
        private = await request(f"{cloud.metrics_server.url}/metrics")
        assert private.status == 200
        assert b"crown_orders_accepted_total" in private.body
        assert (await request(f"{cloud.metrics_server.url}/orders/J-1")).status == 404


async def test_embedded_stack_starts_and_stops_everything() -> None:
    async with EmbeddedServices(temporal=False) as services:
        summary = services.summary()
        assert set(summary) == {"mqtt", "sqs"}
        assert len(services.queue_urls) == 4
        broker_port = services.broker.port
        assert port_open("127.0.0.1", broker_port)
    assert not port_open("127.0.0.1", broker_port)


async def test_embedded_stack_cleans_up_when_one_service_fails(tmp_path: Path) -> None:
    services = EmbeddedServices(temporal_binary=tmp_path / "no-temporal")
    with pytest.raises(SyncError):
        async with services:
            pass
    assert not services.broker.running
    assert not services.moto.running


class _Refusing:
    """A mail service that refuses every message for good."""

    async def send(self, message: object) -> None:
        raise MailError("550 no such mailbox", transient=False, code=550)


async def test_a_notice_given_up_is_an_event_on_the_job_events_queue(
    moto_server: MotoServer, sqs_queues: dict[str, str], sqs: Any, tmp_path: Path
) -> None:
    job = f"NF-{uuid.uuid4().hex[:8]}"
    settings = CloudSettings(
        designs_dir=tmp_path,
        credentials=Credentials((KEY,), ("services-test-secret-0123",)),
        shops=frozenset({"s1"}),
        sqs_endpoint_url=moto_server.endpoint_url,
        dispatcher_wait_seconds=0,
        intake_journal=tmp_path / "intake.db",
        mail=MailSettings(store=tmp_path / "notices.db", max_attempts=1),
    )
    async with CloudServices(
        settings, _ignore, mail_transport=cast(MailTransport, _Refusing())
    ) as cloud:
        order = {**GOOD, "job_id": job, "shop_id": "s1", "customer_email": "jane@example.com"}
        assert (await post_json(f"{cloud.api.url}/orders", order, KEY)).status == 202
        done = {"event_id": f"{job}:9", "job_id": job, "seq": 9, "status": "complete"}
        await cloud.cloud_sink("status", {**done, "shop_id": "s1"})
        url = sqs_queues[queues.EVENTS_QUEUE]
        found: list[dict[str, Any]] = []
        async with asyncio.timeout(30):
            while not found:
                got = await asyncio.to_thread(
                    sqs.receive_message, QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                )
                for message in got.get("Messages", []):
                    body = json.loads(message["Body"])
                    if body.get("job_id") == job and body.get("kind") == "notification_failed":
                        found.append(body)
                    await asyncio.to_thread(
                        sqs.delete_message, QueueUrl=url, ReceiptHandle=message["ReceiptHandle"]
                    )
    (event,) = found
    assert event["notification"] == "complete" and "550" in event["error"]


async def _ignore(msg: IntakeMessage) -> None:
    return None
