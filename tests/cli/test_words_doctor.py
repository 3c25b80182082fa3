"""Pure words (queue reasons, design answers, machine states); ``doctor`` against real sockets."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crown_edge.cli import app
from crown_edge.cli.daemons import doctor
from crown_edge.cli.views import duration, machine_state, remaining_s
from crown_edge.daemon.words import decision_done, decision_refused, no_machine_reason
from crown_edge.embedded import TemporalDevServer

runner = CliRunner()


def test_queue_reasons() -> None:
    ids = ["laser-1", "laser-2", "rotary-1"]
    ok = {"availability": "AVAILABLE", "paused": False}
    rows = {
        "laser-1": {**ok, "paused": True},
        "laser-2": {**ok, "alarm": "ALARM:1"},
        "rotary-1": {"availability": "UNAVAILABLE"},
    }
    assert no_machine_reason(0b001, ids, rows) == "the only eligible machine, laser-1, is paused"
    assert no_machine_reason(0b100, ids, rows) == "the only eligible machine, rotary-1, is offline"
    assert no_machine_reason(0b011, ids, rows) == (
        "every eligible machine is out: laser-1 paused, laser-2 in alarm (ALARM:1)"
    )
    assert no_machine_reason(0, ids, rows).startswith("no machine here can engrave this item")


def test_design_answer_words() -> None:
    def refused(**kw: object) -> str:
        args: dict[str, object] = {
            "refusal": "NotAwaitingApproval",
            "detail": "job J-1 is not awaiting approval (queued)",
            "status": "queued",
            "requires_design": True,
        }
        args.update(kw)
        return decision_refused("J-1", True, **args)  # type: ignore[arg-type]

    assert (
        refused(requires_design=False)
        == "job J-1 is a text-only order: it has no design to approve"
    )
    assert refused() == "job J-1: its design was already answered (the job is queued now)"
    assert refused(refusal="AlreadyAnswered") == refused()
    assert refused(status="designing").startswith("job J-1: its design is being drawn again")
    assert refused(status=None) == "job J-1 is not waiting for a design answer"
    assert refused(refusal="InvalidInput", detail="comment too long") == "job J-1: comment too long"
    assert refused(refusal="Other", detail="x") == "job J-1: the design answer was refused: x"
    assert (
        decision_done("J-1", True, "approved", 0) == "J-1: design approved; the job is approved now"
    )
    assert "revision 1" in decision_done("J-1", False, "revision_requested", 1)
    assert "manager" in decision_done("J-1", False, "escalated", 3)


def test_machine_states_and_times() -> None:
    ready = {"availability": "AVAILABLE", "execution": "READY"}
    assert machine_state(ready) == "ready"
    assert machine_state({**ready, "job_id": "J-1"}) == "engraving"
    assert machine_state({**ready, "paused": True}) == "ready, paused"
    assert machine_state({**ready, "alarm": "ALARM:9"}) == "alarm (ALARM:9)"
    assert machine_state({"availability": "UNAVAILABLE", "execution": "READY"}) == "offline"
    assert machine_state({**ready, "execution": "FEED_HOLD", "job_id": "J"}) == "feed hold"
    assert (duration(None), duration(12.4), duration(250), duration(3900)) == (
        "-",
        "12s",
        "4m10s",
        "1h05m",
    )
    assert remaining_s(100.0, 0.25) == 75.0 and remaining_s(None, 0.5) is None


# --- doctor --------------------------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP listener on loopback that accepts and closes (something that is not Temporal)."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(10)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield srv
    stop.set()
    srv.close()
    thread.join(5)


@pytest.fixture
def tls_listener(tmp_path: Path) -> Iterator[tuple[socket.socket, Path]]:
    """A TLS server on loopback with a self-signed certificate for 127.0.0.1 (the "broker")."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(10)

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            try:
                with ctx.wrap_socket(conn, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield srv, cert
    srv.close()
    thread.join(5)


def write_config(tmp_path: Path, mqtt: str, temporal: str) -> Path:
    (tmp_path / "state").mkdir(exist_ok=True)
    path = tmp_path / "edge.toml"
    path.write_text(
        f"""
[edge]
shop_id = "shop-d"
[store]
path = "{tmp_path}/missing/edge.db"
[control]
socket = "{tmp_path}/state/ctl.sock"
[[machines]]
id = "laser-1"
driver = "grbl"
port = "{tmp_path}/ttyUSB0"
{mqtt}
{temporal}
"""
    )
    return path


def checks(result: object) -> dict[str, dict[str, object]]:
    data = json.loads(result.stdout)  # type: ignore[attr-defined]
    return {c["check"]: c for c in data["checks"]}


def test_doctor_gives_a_reason_for_every_fail(
    tmp_path: Path, listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()
    config = write_config(
        tmp_path,
        f'[mqtt]\nhost = "127.0.0.1"\nport = {dead_port}\ntls = false',
        f'[temporal]\ntarget = "127.0.0.1:{listener.getsockname()[1]}"',
    )
    monkeypatch.setenv("CROWN_EDGE_CONFIG", str(config))  # the default, as for every command
    monkeypatch.delenv("CROWN_EDGE_SOCKET", raising=False)
    result = runner.invoke(app, ["doctor", "--json", "--timeout", "2"])
    assert result.exit_code == 1
    found = checks(result)
    assert found["config"]["ok"]
    assert not found["store dir"]["ok"] and f"{tmp_path}/missing: missing" in str(
        found["store dir"]["detail"]
    )
    assert found["socket dir"]["ok"]
    assert not found["daemon"]["ok"] and "not running" in str(found["daemon"]["detail"])
    assert not found["port laser-1"]["ok"]
    assert "no such device" in str(found["port laser-1"]["detail"])
    assert not found["mqtt"]["ok"] and "refused" in str(found["mqtt"]["detail"]).lower()
    # a port that accepts and hangs up is no Temporal frontend
    assert not found["temporal"]["ok"], found["temporal"]
    assert "not answering as Temporal" in str(found["temporal"]["detail"])
    text = runner.invoke(app, ["doctor"])
    assert text.exit_code == 1
    for line in text.stdout.splitlines():
        assert len(line) <= 80
        if line.startswith("FAIL"):
            assert len(line.split(None, 2)) == 3  # a check name and a reason


def test_doctor_checks_tls_with_the_configured_ca(
    tmp_path: Path, tls_listener: tuple[socket.socket, Path]
) -> None:
    srv, cert = tls_listener
    port = srv.getsockname()[1]
    good = write_config(
        tmp_path,
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\nca_file = "{cert}"',
        "[temporal]\nenabled = false",
    )
    found = checks(runner.invoke(app, ["doctor", "--json", "--config", str(good)]))
    assert found["mqtt"]["ok"] and "TLS handshake ok" in str(found["mqtt"]["detail"])
    assert found["temporal"]["ok"] and "disabled" in str(found["temporal"]["detail"])
    # without the CA the broker's self-signed certificate is refused, with the reason
    other = write_config(
        tmp_path, f'[mqtt]\nhost = "127.0.0.1"\nport = {port}', "[temporal]\nenabled = false"
    )
    found = checks(runner.invoke(app, ["doctor", "--json", "-c", str(other)]))
    assert not found["mqtt"]["ok"]
    assert "certificate" in str(found["mqtt"]["detail"])


def test_doctor_without_a_config_says_which_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CROWN_EDGE_CONFIG", str(tmp_path / "nope.toml"))
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1
    assert result.stdout.startswith("FAIL config") and "nope.toml" in result.stdout
    assert callable(doctor)


@pytest.mark.parametrize(("namespace", "ok"), [("default", True), ("no-such-namespace", False)])
def test_doctor_asks_temporal_for_its_namespace(
    tmp_path: Path, temporal_dev_server: TemporalDevServer, namespace: str, ok: bool
) -> None:
    config = write_config(
        tmp_path,
        "[mqtt]\nenabled = false",
        f'[temporal]\ntarget = "{temporal_dev_server.target}"\nnamespace = "{namespace}"',
    )
    found = checks(runner.invoke(app, ["doctor", "--json", "-c", str(config), "--timeout", "5"]))
    assert found["temporal"]["ok"] is ok, found["temporal"]
    detail = str(found["temporal"]["detail"])
    if ok:
        assert "namespace 'default' found" in detail
    else:
        assert "not answering as Temporal" in detail and namespace in detail
