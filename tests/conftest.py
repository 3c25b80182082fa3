"""Shared service fixtures: real mosquitto, moto and Temporal dev server on loopback ports.

The fixtures are synchronous and session-scoped: each service runs in a child process or a thread
of its own, so no event loop is shared between tests (pytest-asyncio gives every test its own
loop) and nothing depends on fixture loop scopes. Each service starts on first use only and stops
at the end of the session. ``crown-edge up`` uses the same launchers (:mod:`crown_edge.embedded`).

Tests that restart a service (Temporal with the same database, a broker taken away mid-test)
should start their own instance with the launcher rather than disturb the shared one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import settings

from crown_edge.embedded import MotoServer, MqttBroker, TemporalDevServer, find_mosquitto
from tests.brokers import MOSQUITTO_MISSING

# Property tests draw the same examples on every run, so a gate is never failed by an example no
# earlier run saw; ``HYPOTHESIS_PROFILE=explore`` draws fresh ones (and keeps what fails in
# .hypothesis/) when hunting for new counterexamples on purpose.
settings.register_profile("gate", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "gate"))


@pytest.fixture(scope="session")
def mqtt_broker() -> Iterator[MqttBroker]:
    """The locked-down mosquitto (TLS, passwords, per-workshop ACLs) on 127.0.0.1 and an
    ephemeral port, shared by the session.

    Clients need an identity: ``mqtt_broker.workshop(shop_id)`` (registered on first use) or
    ``mqtt_broker.cloud()``; ``workshop_settings`` / ``bridge_settings`` / ``client`` /
    ``workshop_config`` build the matching link settings, aiomqtt client or ``[mqtt]`` config.
    Skipped, with the reason, when mosquitto is not installed.
    """
    if find_mosquitto() is None:
        pytest.skip(MOSQUITTO_MISSING)
    with MqttBroker() as broker:
        yield broker


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto's server on 127.0.0.1 and an ephemeral port; ``.endpoint_url`` for boto3."""
    with MotoServer() as server:
        yield server


@pytest.fixture
def sqs_queues(moto_server: MotoServer) -> dict[str, str]:
    """Fresh crown-edge queues for this test: moto is reset, then the four FIFO queues created.

    Returns ``{queue_name: queue_url}``.
    """
    moto_server.reset()
    return moto_server.create_queues()


@pytest.fixture
def sqs(moto_server: MotoServer) -> Iterator[Any]:
    """A boto3 SQS client for the moto server, closed after the test."""
    client = moto_server.client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def temporal_dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalDevServer]:
    """``temporal server start-dev`` on 127.0.0.1 and an ephemeral port, with an SQLite file.

    ``.target`` is ``"127.0.0.1:PORT"``. Shared by the session: use unique workflow ids and task
    queues per test.
    """
    db = tmp_path_factory.mktemp("temporal") / "temporal.db"
    with TemporalDevServer(db_filename=db) as server:
        yield server
