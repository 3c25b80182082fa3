"""The ``[mqtt]`` table: TLS files, identity and secrets; bad values name section, key and allowed
values; the password never shows in a repr, an error or a log line."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from crown_edge import __version__
from crown_edge.cloud.bridge import BridgeSettings
from crown_edge.config import load_config, mqtt_toml, parse_config
from crown_edge.errors import ConfigError
from crown_edge.sync.mqtt import MqttLink, MqttSettings
from crown_edge.sync.mqtt_auth import MqttTls

SECRET = "s3cret-Hunter2-never-printed"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    for name in ("ca.crt", "edge.crt", "edge.key"):
        (tmp_path / name).write_text("PEM\n")
    (tmp_path / "edge.password").write_text(SECRET + "\n")
    return tmp_path


def _mqtt(base: Path, **mqtt: Any) -> Any:
    return parse_config({"edge": {"shop_id": "leeds"}, "mqtt": mqtt}, base).mqtt


def test_defaults_are_tls_on_8883_without_an_identity(tmp_path: Path) -> None:
    cfg = _mqtt(tmp_path)
    assert (cfg.tls, cfg.port, cfg.ca_file, cfg.cert_file, cfg.username, cfg.password) == (
        True,
        8883,
        None,
        None,
        None,
        None,
    )
    assert _mqtt(tmp_path, tls=False).port == 1883


def test_every_key_parses(files: Path) -> None:
    cfg = _mqtt(
        files,
        host="broker.example",
        port=9883,
        keepalive_s=60,
        tls=True,
        ca_file="ca.crt",
        cert_file="edge.crt",
        key_file="edge.key",
        client_id="crown-edge-leeds",
        username="crown-edge-leeds",
        password_file="edge.password",
    )
    assert (cfg.host, cfg.port, cfg.keepalive_s) == ("broker.example", 9883, 60)
    assert (cfg.ca_file, cfg.cert_file, cfg.key_file) == (
        files / "ca.crt",
        files / "edge.crt",
        files / "edge.key",
    )
    assert cfg.client_id == cfg.username == "crown-edge-leeds"
    assert cfg.password == SECRET and cfg.password_file == files / "edge.password"
    inline = _mqtt(files, username="u", password=SECRET)
    assert inline.password == SECRET and inline.password_file is None


def test_config_round_trips_through_toml(files: Path) -> None:
    cfg = _mqtt(
        files,
        ca_file="ca.crt",
        cert_file="edge.crt",
        key_file="edge.key",
        username="crown-edge-leeds",
        password_file="edge.password",
    )
    text = mqtt_toml(cfg)
    assert SECRET not in text  # the file is named, the secret is not copied
    (files / "again.toml").write_text('[edge]\nshop_id = "leeds"\n' + text + "\n")
    assert load_config(files / "again.toml").mqtt == cfg


@pytest.mark.parametrize(
    ("mqtt", "key", "needle"),
    [
        ({"tls": "yes"}, "tls", "true, false"),
        ({"port": 0}, "port", "1..65535"),
        ({"keepalive_s": 1}, "keepalive_s", "5..3600"),
        ({"ca_file": "missing.crt"}, "ca_file", "an existing file"),
        ({"ca_file": 7}, "ca_file", "a file path"),
        ({"cert_file": "edge.crt"}, "key_file", "both cert_file and key_file"),
        ({"key_file": "edge.key"}, "cert_file", "both cert_file and key_file"),
        ({"tls": False, "ca_file": "ca.crt"}, "ca_file", "tls = true"),
        ({"tls": False, "cert_file": "edge.crt", "key_file": "edge.key"}, "cert_file", "tls"),
        ({"client_id": "bad id/#"}, "client_id", "letters, digits"),
        ({"username": ""}, "username", "non-empty"),
        ({"password": "x"}, "password", "username"),
        ({"password_file": "edge.password"}, "password_file", "username"),
        (
            {"username": "u", "password": "x", "password_file": "edge.password"},
            "password_file",
            "one of the two",
        ),
        ({"username": "u", "password_file": "nope"}, "password_file", "an existing file"),
        ({"username": "u", "password_file": "empty"}, "password_file", "a password"),
        ({"certfile": "x"}, "certfile", "cert_file"),
    ],
)
def test_bad_values_name_section_key_and_allowed(
    files: Path, mqtt: dict[str, Any], key: str, needle: str
) -> None:
    (files / "empty").write_text("\n")
    with pytest.raises(ConfigError) as info:
        _mqtt(files, **mqtt)
    err = info.value
    assert err.fields["section"] == "mqtt" and err.fields["key"] == key
    assert needle in str(err) and "\n" not in str(err)


@pytest.mark.parametrize("bad", [12345678, ["s3cret"], ""])
def test_a_bad_password_value_is_not_echoed(tmp_path: Path, bad: Any) -> None:
    with pytest.raises(ConfigError) as info:
        _mqtt(tmp_path, username="u", password=bad)
    assert info.value.fields["key"] == "password"
    assert "12345678" not in str(info.value) and "s3cret" not in str(info.value)


def test_settings_from_config_fixed_identity_persistent_session_real_version(files: Path) -> None:
    config = parse_config(
        {
            "edge": {"shop_id": "leeds"},
            "mqtt": {
                "host": "broker.example",
                "ca_file": "ca.crt",
                "cert_file": "edge.crt",
                "key_file": "edge.key",
                "username": "crown-edge-leeds",
                "password": SECRET,
            },
        },
        files,
    )
    s = MqttSettings.from_config(config)
    assert s.client_id == "crown-edge-leeds"
    assert s.version == __version__ != "0"
    assert s.tls == MqttTls(files / "ca.crt", files / "edge.crt", files / "edge.key")
    assert (s.username, s.password) == ("crown-edge-leeds", SECRET)
    assert MqttSettings.from_config(config, client_id="other").client_id == "other"
    plain = parse_config({"edge": {"shop_id": "leeds"}, "mqtt": {"tls": False}}, files)
    assert MqttSettings.from_config(plain).tls is None
    custom = parse_config({"edge": {"shop_id": "x"}, "mqtt": {"client_id": "thing-7"}}, files)
    assert MqttSettings.from_config(custom).client_id == "thing-7"


async def test_the_link_client_is_persistent_with_tls_and_the_identity(files: Path) -> None:
    from crown_edge.embedded.pki import LocalCa

    ca = LocalCa(files / "pki")
    pair = ca.client("crown-edge-leeds")
    settings = MqttSettings(
        "127.0.0.1",
        8883,
        "leeds",
        client_id="crown-edge-leeds",
        username="crown-edge-leeds",
        password=SECRET,
        tls=MqttTls(ca.cert_file, pair.cert_file, pair.key_file),
    )
    link = MqttLink(settings, outbox=None)  # type: ignore[arg-type]
    client = link._client()
    paho = client._client
    assert paho._client_id == b"crown-edge-leeds"
    assert paho._clean_session is False
    assert paho._ssl is True
    assert paho._username == b"crown-edge-leeds"


def test_secrets_stay_out_of_reprs(files: Path) -> None:
    cfg = _mqtt(files, username="u", password=SECRET)
    settings = MqttSettings("h", 1, "s", username="u", password=SECRET)
    bridge = BridgeSettings("h", 1, username="crown-cloud", password=SECRET)
    config = parse_config({"mqtt": {"username": "u", "password": SECRET}}, files)
    for thing in (cfg, settings, bridge, config):
        assert SECRET not in repr(thing) and SECRET not in str(thing)


async def test_secrets_stay_out_of_the_links_logs(
    files: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from crown_edge.embedded._proc import free_port
    from tests.sync.fakes import MemoryOutbox, until

    settings = MqttSettings(
        "127.0.0.1",
        free_port(),  # nobody listens: the link logs its failures and retries
        "leeds",
        client_id="crown-edge-leeds",
        username="crown-edge-leeds",
        password=SECRET,
        tls=MqttTls(),
        backoff_initial=0.01,
        backoff_max=0.05,
    )
    caplog.set_level(logging.DEBUG)
    link = MqttLink(settings, MemoryOutbox())
    async with link:
        await until(lambda: "mqtt link" in caplog.text and caplog.text.count("down") >= 2)
    assert SECRET not in caplog.text
    for record in caplog.records:
        assert SECRET not in repr(record.__dict__)
