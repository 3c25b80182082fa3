"""Several cloud processes on one host: each instance's names and files, the replica's config
file read back as ``crown-edge cloud`` reads it, and how long a dead dispatcher holds a message."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from crown_edge.cli.cloud import load_cloud_config, with_instance
from crown_edge.cloud.auth import Credentials
from crown_edge.cloud.mail import MailSettings
from crown_edge.cloud.process import CloudProcess, ReplicaConfig, cloud_config_toml
from crown_edge.cloud.service import CloudSettings
from crown_edge.config import MqttConfig
from crown_edge.errors import ConfigError
from crown_edge.sync import queues
from crown_edge.sync.sqs import OrderQueue

CREDS = Credentials(api_keys=("k" * 24,), token_secrets=("s" * 24,))


def test_an_instance_has_its_own_journal_and_broker_session(tmp_path: Path) -> None:
    single = CloudSettings(designs_dir=tmp_path / "designs", credentials=CREDS)
    assert single.intake_journal_path == tmp_path / "intake.db"
    assert single.bridge_identity == "crown-bridge"
    a = CloudSettings(designs_dir=tmp_path / "designs", credentials=CREDS, instance="a")
    assert a.intake_journal_path == tmp_path / "intake-a.db"
    assert a.bridge_identity == "crown-bridge-a"
    # every instance adopts every other's journal, and the single process's
    assert a.intake_siblings == single.intake_siblings == "intake*.db"
    named = CloudSettings(
        designs_dir=tmp_path / "designs",
        credentials=CREDS,
        intake_journal=tmp_path / "var" / "orders.sqlite",
        instance="b-2",
    )
    assert named.intake_journal_path == tmp_path / "var" / "orders-b-2.sqlite"
    assert named.intake_siblings == "orders*.sqlite"


def _replica(tmp_path: Path, **kw: Any) -> ReplicaConfig:
    (tmp_path / "ca.crt").write_text("not read here\n")
    (tmp_path / "key").write_text("k" * 24 + "\n")
    (tmp_path / "secret").write_text("s" * 24 + "\n")
    values: dict[str, Any] = {
        "designs_dir": tmp_path / "designs",
        "intake_journal": tmp_path / "intake.db",
        "default_shop_id": "shop-1",
        "shops": ("shop-1", "shop-2"),
        "http_host": "127.0.0.1",
        "http_port": 18080,
        "temporal_target": "127.0.0.1:7233",
        "sqs_endpoint_url": "http://127.0.0.1:4566",
        "sqs_region": "eu-west-2",
        "mqtt": MqttConfig(
            host="127.0.0.1",
            port=8883,
            tls=True,
            ca_file=tmp_path / "ca.crt",
            username="crown-cloud",
            password_file=tmp_path / "mqtt.password",
        ),
        "key_file": tmp_path / "key",
        "token_secret_file": tmp_path / "secret",
    }
    values.update(kw)
    return ReplicaConfig(**values)


def test_the_replica_config_reads_back(tmp_path: Path) -> None:
    (tmp_path / "mqtt.password").write_text("pw\n")
    mail = MailSettings(store=tmp_path / "notifications.db", smtp_port=2525, retry_max=10.0)
    path = tmp_path / "cloud-replica.toml"
    path.write_text(cloud_config_toml(_replica(tmp_path, mail=mail)))
    cfg = load_cloud_config(path, env={})
    assert cfg.designs_dir == tmp_path / "designs"
    assert cfg.intake_journal == tmp_path / "intake.db"
    assert cfg.shops == frozenset({"shop-1", "shop-2"}) and cfg.default_shop_id == "shop-1"
    assert (cfg.http_host, cfg.http_port) == ("127.0.0.1", 18080)
    assert cfg.sqs_endpoint_url == "http://127.0.0.1:4566" and cfg.sqs_region == "eu-west-2"
    assert cfg.api_keys == ("k" * 24,) and cfg.token_secrets == ("s" * 24,)
    assert cfg.mqtt is not None and cfg.mqtt.username == "crown-cloud"
    assert cfg.mqtt.password == "pw"
    assert cfg.mail == mail
    # the file names the secrets' files, never the secrets
    text = path.read_text()
    assert "k" * 24 not in text and "s" * 24 not in text and "pw" not in text.split()
    one = with_instance(cfg, "c2", http_port=18080, metrics_port=0)
    assert (one.instance, one.http_port, one.metrics_port) == ("c2", 18080, 0)
    assert with_instance(cfg, None) == cfg


def test_a_mail_password_never_goes_into_a_replica_file(tmp_path: Path) -> None:
    mail = MailSettings(smtp_password="secret")
    with pytest.raises(ValueError, match="SMTP password"):
        cloud_config_toml(_replica(tmp_path, mail=mail))


@pytest.mark.parametrize(
    ("instance", "http_port", "flag"),
    [
        ("", None, "--instance"),
        ("-a", None, "--instance"),
        ("a/b", None, "--instance"),
        ("a" * 33, None, "--instance"),
        ("ok", 70000, "--http-port"),
        ("ok", -1, "--http-port"),
    ],
)
def test_bad_instance_flags_are_one_clear_error(
    tmp_path: Path, instance: str, http_port: int | None, flag: str
) -> None:
    (tmp_path / "mqtt.password").write_text("pw\n")
    path = tmp_path / "cloud.toml"
    path.write_text(cloud_config_toml(_replica(tmp_path)))
    cfg = load_cloud_config(path, env={})
    with pytest.raises(ConfigError) as err:
        with_instance(cfg, instance, http_port)
    assert flag in str(err.value)


def test_the_replica_process_command_line(tmp_path: Path) -> None:
    proc = CloudProcess(tmp_path / "cloud-replica.toml", "c3", http_port=8080)
    assert proc.argv()[1:] == [
        "-m",
        "crown_edge",
        "cloud",
        "--config",
        str(tmp_path / "cloud-replica.toml"),
        "--instance",
        "c3",
        "--http-port",
        "8080",
    ]
    assert proc.log_path == tmp_path / "cloud-c3.log"
    assert not proc.running


@pytest.mark.integration
async def test_a_received_message_comes_back_after_the_hold(
    sqs: Any, sqs_queues: dict[str, str]
) -> None:
    """A dispatcher that dies holding a message delays it by ``hold_seconds``, not by the
    queue's 300 s: another consumer gets it once the hold ran out."""
    name = queues.ENGRAVING_QUEUE
    sqs.send_message(
        QueueUrl=sqs_queues[name],
        MessageBody='{"job_id": "J-held"}',
        MessageGroupId="J-held",
        MessageDeduplicationId="J-held",
    )
    dead = OrderQueue(sqs, sqs_queues, hold_seconds=1)
    assert [m.body for m in await dead.receive(name, 10, 0)] == ['{"job_id": "J-held"}']
    other = OrderQueue(sqs, sqs_queues)
    assert await other.receive(name, 10, 0) == []  # hidden while held
    deadline = time.monotonic() + 30
    got: list[Any] = []
    while not got and time.monotonic() < deadline:
        got = await other.receive(name, 10, 1)
    assert [m.body for m in got] == ['{"job_id": "J-held"}']
    assert got[0].receive_count == 2


def test_the_broker_password_can_be_a_systemd_credential(tmp_path: Path) -> None:
    """The template unit's instances share one credential file: ``[mqtt]`` names no password."""
    replica = _replica(tmp_path)
    assert replica.mqtt is not None
    no_password = MqttConfig(
        host="127.0.0.1", port=8883, tls=True, ca_file=tmp_path / "ca.crt", username="c"
    )
    path = tmp_path / "cloud.toml"
    path.write_text(cloud_config_toml(_replica(tmp_path, mqtt=no_password)))
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("from-systemd\n")
    cfg = load_cloud_config(path, env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert cfg.mqtt is not None and cfg.mqtt.password == "from-systemd"
    assert load_cloud_config(path, env={}).mqtt.password is None  # type: ignore[union-attr]
    # a password the config names wins over the credential
    (tmp_path / "mqtt.password").write_text("from-file\n")
    path.write_text(cloud_config_toml(replica))
    cfg = load_cloud_config(path, env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert cfg.mqtt is not None and cfg.mqtt.password == "from-file"
