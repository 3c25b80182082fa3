"""The ``[mqtt]`` delivery and outbox keys, and the outbox gauges."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from crown_edge.catalog import load_catalog
from crown_edge.config import DELIVERY_KEYS, MqttConfig, load_config, mqtt_toml, parse_mqtt
from crown_edge.errors import ConfigError
from crown_edge.metrics import EdgeMetrics
from crown_edge.models import IntakeMessage
from crown_edge.store import Store
from crown_edge.sync.mqtt import MqttSettings

ROOT = Path(__file__).resolve().parents[2]


def test_example_config_documents_the_defaults() -> None:
    config = load_config(ROOT / "config" / "edge.example.toml")
    defaults = MqttConfig()
    for key in DELIVERY_KEYS:
        assert getattr(config.mqtt, key) == getattr(defaults, key), key
    settings = MqttSettings.from_config(config)
    assert (settings.ack_timeout, settings.ack_timeout_max, settings.backoff_max) == (10, 120, 5)
    assert (settings.outbox_max_rows, settings.outbox_max_age_s) == (100_000, 604_800)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"ack_timeout_s": 0}, "ack_timeout_s"),
        ({"ack_timeout_s": 5.0, "ack_timeout_max_s": 1.0}, "ack_timeout_max_s"),
        ({"outbox_max_rows": 10}, "outbox_max_rows"),
        ({"outbox_max_age_s": "week"}, "outbox_max_age_s"),
        ({"reconnect_max_s": 3600}, "reconnect_max_s"),
    ],
)
def test_bad_delivery_values_name_their_key(raw: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_mqtt({"tls": False, **raw}, Path("."))
    assert info.value.fields["key"] == key


def test_mqtt_toml_writes_what_differs_and_reads_it_back() -> None:
    config = MqttConfig(tls=False, port=1883, ack_timeout_s=0.5, outbox_max_rows=500)
    text = mqtt_toml(config)
    assert "ack_timeout_max_s" not in text
    assert parse_mqtt(tomllib.loads(text)["mqtt"], Path(".")) == config


async def test_outbox_gauges(tmp_path: Path) -> None:
    async with Store.from_path(tmp_path / "edge.db") as store:
        await store.sync_catalog(load_catalog(), now=0.0)
        message = {"job_id": "J-1", "customer_id": "C", "item_id": "plaque-a5"}
        await store.submit(IntakeMessage.parse({**message, "due_date": "2026-12-01"}), now=100.0)
        metrics = EdgeMetrics(store)
        await metrics.refresh(160.0)
        assert metrics.outbox_backlog._value.get() == 1
        assert metrics.outbox_oldest._value.get() == 60.0
        assert metrics.outbox_dropped._value.get() == 0
