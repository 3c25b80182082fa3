"""Edge configuration: one TOML file parsed once into frozen, validated objects.

A wrong value fails start-up with one :class:`~crown_edge.errors.ConfigError` line naming the
section, the key and the allowed values. ``config/edge.example.toml`` documents every key.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crown_edge.errors import ConfigError

BAUD_RATES = (9600, 19200, 38400, 57600, 115200, 230400, 250000, 500000, 1000000)
DRIVERS = ("grbl", "sim")
QA_MODES = ("manual", "auto")
ROTARY_AXES = ("Y", "A")
LASER_MODES = ("armed", "dry")
MAX_MACHINES = 62  # machine eligibility is a 62-bit mask in the store


@dataclass(frozen=True, slots=True)
class MachineConfig:
    """One laser: how to reach it and what it can engrave."""

    id: str
    driver: str = "grbl"
    port: str = ""
    baud: int = 115200
    bed_width_mm: float = 300.0
    bed_height_mm: float = 200.0
    materials: tuple[str, ...] = ()
    rotary: str | None = None
    rotary_axis: str = "Y"
    rotary_per_rotation: float = 360.0
    speed_factor: float = 1.0
    sim_time_scale: float = 0.0
    stall_timeout_s: float = 10.0
    """``Run`` with the position frozen this long (controller still answering) ends the job
    ``interrupted`` (reason ``stalled``); 0 turns the watchdog off."""
    laser: str = "armed"
    """``"dry"``: every program runs in its dry-run form (all motion, laser power held at zero;
    :func:`crown_edge.toolpath.dry_run`), e.g. a machine on the HIL rig or being commissioned."""

    @property
    def has_rotary(self) -> bool:
        """True when a rotary chuck is attached (cylindrical items possible)."""
        return self.rotary is not None


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """A Modbus device (rotary chuck, machine I/O)."""

    id: str
    profile: str
    url: str


@dataclass(frozen=True, slots=True)
class TemporalConfig:
    """Where the Temporal frontend is."""

    enabled: bool = True
    target: str = "127.0.0.1:7233"
    namespace: str = "default"


@dataclass(frozen=True, slots=True)
class MqttConfig:
    """The MQTT broker the workshop publishes to, and the workshop's identity there.

    TLS is on unless ``tls`` is false: the broker is checked against ``ca_file`` (None: the system
    trust store) and, with ``cert_file`` + ``key_file``, the workshop shows its own certificate
    (mutual TLS). ``client_id`` None means ``crown-edge-{shop_id}``. ``password`` is the secret
    itself (read from ``password_file`` when that is how it was given); it is kept out of reprs.
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8883
    keepalive_s: int = 30
    tls: bool = True
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    client_id: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: Path | None = None
    #: end-to-end delivery (crown_edge.sync.delivery): an event not acknowledged by the cloud
    #: ``ack_timeout_s`` after it was sent goes again, the wait doubling up to
    #: ``ack_timeout_max_s``; ``reconnect_max_s`` caps the broker reconnect back-off
    ack_timeout_s: float = 10.0
    ack_timeout_max_s: float = 120.0
    reconnect_max_s: float = 5.0
    #: outbox bounds: rows waiting longer than ``outbox_max_age_s`` or beyond the newest
    #: ``outbox_max_rows`` are given up (logged, counted, replayable from the job history);
    #: acknowledged rows are deleted after ``outbox_keep_done_s``
    outbox_max_rows: int = 100_000
    outbox_max_age_s: float = 7 * 86_400.0
    outbox_keep_done_s: float = 86_400.0


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """Prometheus exposition."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 9464


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    """The whole edge configuration."""

    shop_id: str
    store_path: Path
    control_socket: Path
    catalog_path: Path | None = None
    qa_mode: str = "manual"
    machines: tuple[MachineConfig, ...] = ()
    devices: tuple[DeviceConfig, ...] = ()
    temporal: TemporalConfig = TemporalConfig()
    mqtt: MqttConfig = MqttConfig()
    metrics: MetricsConfig = MetricsConfig()
    heartbeat_timeout_s: float = 300.0

    def machine(self, machine_id: str) -> MachineConfig | None:
        """The machine with that id, if configured."""
        return next((m for m in self.machines if m.id == machine_id), None)

    @property
    def task_queue(self) -> str:
        """The workshop's own Temporal task queue."""
        return f"crown-edge-{self.shop_id}"


# --- typed getters that name section and key ---------------------------------------------------


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    raw = data.get(key, {})
    if not isinstance(raw, dict):
        raise ConfigError(key, "", f"must be a table, got {type(raw).__name__}")
    return raw


def _str(sec: str, raw: dict[str, Any], key: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(sec, key, f"got {value!r}", "a non-empty string")
    return value


def _ident(sec: str, raw: dict[str, Any], key: str, default: str | None = None) -> str:
    value = _str(sec, raw, key, default)
    if not all(c.isascii() and (c.isalnum() or c in "-_") for c in value) or len(value) > 64:
        raise ConfigError(sec, key, f"got {value!r}", "letters, digits, '-' and '_', 1..64 chars")
    return value


def _bool(sec: str, raw: dict[str, Any], key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(sec, key, f"got {value!r}", "true, false")
    return value


def _int(sec: str, raw: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(sec, key, f"got {value!r}", f"an integer {lo}..{hi}")
    return value


def _float(sec: str, raw: dict[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ConfigError(sec, key, f"got {value!r}", f"a number {lo}..{hi}")
    return float(value)


def _choice(sec: str, raw: dict[str, Any], key: str, default: Any, allowed: tuple[Any, ...]) -> Any:
    value = raw.get(key, default)
    if value not in allowed:
        raise ConfigError(sec, key, f"got {value!r}", ", ".join(str(a) for a in allowed))
    return value


def _path(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path)


def known_keys(sec: str, raw: dict[str, Any], keys: set[str]) -> None:
    """Raise ConfigError for the first key of ``raw`` not in ``keys``."""
    for key in raw:
        if key not in keys:
            raise ConfigError(sec, key, "unknown key", ", ".join(sorted(keys)))


#: ``[mqtt]`` keys of end-to-end delivery and the outbox bounds
DELIVERY_KEYS = (
    "ack_timeout_s",
    "ack_timeout_max_s",
    "reconnect_max_s",
    "outbox_max_rows",
    "outbox_max_age_s",
    "outbox_keep_done_s",
)

MQTT_KEYS = {
    "enabled",
    "host",
    "port",
    "keepalive_s",
    "tls",
    "ca_file",
    "cert_file",
    "key_file",
    "client_id",
    "username",
    "password",
    "password_file",
    *DELIVERY_KEYS,
}


def _file(sec: str, raw: dict[str, Any], key: str, base: Path) -> Path | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(sec, key, f"got {value!r}", "a file path")
    path = _path(base, value)
    if not path.is_file():
        raise ConfigError(sec, key, f"no such file: {path}", "an existing file")
    return path


def _secret(sec: str, raw: dict[str, Any], key: str) -> str | None:
    """A secret string; a bad value is described by its type, never echoed."""
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        shown = "an empty string" if value == "" else f"a {type(value).__name__}"
        raise ConfigError(sec, key, f"got {shown}", "a non-empty string")
    return value


def parse_mqtt(raw: dict[str, Any], base_dir: Path, sec: str = "mqtt") -> MqttConfig:
    """The ``[mqtt]`` table (already checked for unknown keys) as an :class:`MqttConfig`.

    TLS files must exist; ``cert_file`` and ``key_file`` come together; ``password`` and
    ``password_file`` exclude each other and need a ``username``. ``port`` defaults to 8883 with
    TLS and 1883 without.
    """
    tls = _bool(sec, raw, "tls", True)
    files = {key: _file(sec, raw, key, base_dir) for key in ("ca_file", "cert_file", "key_file")}
    if not tls:
        for key, path in files.items():
            if path is not None:
                raise ConfigError(sec, key, "set while tls = false", "tls = true, or drop the key")
    if (files["cert_file"] is None) != (files["key_file"] is None):
        missing = "key_file" if files["key_file"] is None else "cert_file"
        raise ConfigError(sec, missing, "missing", "both cert_file and key_file, or neither")
    username = _str(sec, raw, "username") if raw.get("username") is not None else None
    password = _secret(sec, raw, "password")
    password_file = _file(sec, raw, "password_file", base_dir)
    if password is not None and password_file is not None:
        raise ConfigError(sec, "password_file", "set together with password", "one of the two")
    if password_file is not None:
        try:
            password = password_file.read_text("utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(sec, "password_file", f"cannot read {password_file}") from exc
        if not password:
            raise ConfigError(sec, "password_file", f"{password_file} is empty", "a password")
    if password is not None and username is None:
        key = "password" if password_file is None else "password_file"
        raise ConfigError(sec, key, "set without username", "username and a password")
    client_id = _ident(sec, raw, "client_id") if raw.get("client_id") is not None else None
    ack_timeout_s = _float(sec, raw, "ack_timeout_s", 10.0, 0.1, 3600.0)
    ack_timeout_max_s = _float(sec, raw, "ack_timeout_max_s", 120.0, 0.1, 86_400.0)
    if ack_timeout_max_s < ack_timeout_s:
        raise ConfigError(
            sec, "ack_timeout_max_s", f"got {ack_timeout_max_s!r}", "at least ack_timeout_s"
        )
    return MqttConfig(
        enabled=_bool(sec, raw, "enabled", True),
        host=_str(sec, raw, "host", "127.0.0.1"),
        port=_int(sec, raw, "port", 8883 if tls else 1883, 1, 65535),
        keepalive_s=_int(sec, raw, "keepalive_s", 30, 5, 3600),
        tls=tls,
        ca_file=files["ca_file"],
        cert_file=files["cert_file"],
        key_file=files["key_file"],
        client_id=client_id,
        username=username,
        password=password,
        password_file=password_file,
        ack_timeout_s=ack_timeout_s,
        ack_timeout_max_s=ack_timeout_max_s,
        reconnect_max_s=_float(sec, raw, "reconnect_max_s", 5.0, 0.1, 300.0),
        outbox_max_rows=_int(sec, raw, "outbox_max_rows", 100_000, 100, 100_000_000),
        outbox_max_age_s=_float(sec, raw, "outbox_max_age_s", 7 * 86_400.0, 60.0, 366 * 86_400.0),
        outbox_keep_done_s=_float(sec, raw, "outbox_keep_done_s", 86_400.0, 0.0, 366 * 86_400.0),
    )


def parse_config(data: dict[str, Any], base_dir: Path) -> EdgeConfig:
    """Validate parsed TOML; relative paths are resolved against ``base_dir``."""
    known_keys(
        "(top)",
        data,
        {"edge", "store", "control", "qa", "machines", "devices", "temporal", "mqtt", "metrics"},
    )
    edge = _table(data, "edge")
    known_keys("edge", edge, {"shop_id", "heartbeat_timeout_s"})
    store = _table(data, "store")
    known_keys("store", store, {"path", "catalog"})
    control = _table(data, "control")
    known_keys("control", control, {"socket"})
    qa = _table(data, "qa")
    known_keys("qa", qa, {"mode"})

    machines: list[MachineConfig] = []
    raw_machines = data.get("machines", [])
    if not isinstance(raw_machines, list):
        raise ConfigError("machines", "", "must be an array of tables ([[machines]])")
    if len(raw_machines) > MAX_MACHINES:
        raise ConfigError(
            "machines", "", f"{len(raw_machines)} machines", f"at most {MAX_MACHINES}"
        )
    devices: list[DeviceConfig] = []
    raw_devices = data.get("devices", [])
    if not isinstance(raw_devices, list):
        raise ConfigError("devices", "", "must be an array of tables ([[devices]])")
    for i, raw in enumerate(raw_devices):
        sec = f"devices[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError(sec, "", "must be a table")
        known_keys(sec, raw, {"id", "profile", "url"})
        dev_id = _ident(sec, raw, "id")
        sec = f"devices.{dev_id}"
        url = _str(sec, raw, "url")
        if not url.startswith(("tcp://", "rtu://", "rtu+tcp://")):
            raise ConfigError(
                sec, "url", f"got {url!r}", "tcp://HOST:PORT, rtu+tcp://HOST:PORT, rtu:///dev/ttyX"
            )
        devices.append(DeviceConfig(id=dev_id, profile=_str(sec, raw, "profile"), url=url))
    device_ids = {d.id for d in devices}
    if len(device_ids) != len(devices):
        raise ConfigError("devices", "id", "duplicate device id")
    mkeys = {
        "id",
        "driver",
        "port",
        "baud",
        "bed_width_mm",
        "bed_height_mm",
        "materials",
        "rotary",
        "rotary_axis",
        "rotary_per_rotation",
        "speed_factor",
        "sim_time_scale",
        "stall_timeout_s",
        "laser",
    }
    for i, raw in enumerate(raw_machines):
        sec = f"machines[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError(sec, "", "must be a table")
        known_keys(sec, raw, mkeys)
        mid = _ident(sec, raw, "id")
        sec = f"machines.{mid}"
        driver = _choice(sec, raw, "driver", "grbl", DRIVERS)
        port = raw.get("port", "")
        if driver == "grbl" and (not isinstance(port, str) or not port):
            raise ConfigError(sec, "port", f"got {port!r}", "a pyserial URL or device path")
        materials = raw.get("materials", [])
        if not isinstance(materials, list) or not all(isinstance(m, str) for m in materials):
            raise ConfigError(sec, "materials", f"got {materials!r}", "an array of material names")
        rotary = raw.get("rotary")
        if rotary is not None and rotary not in device_ids:
            raise ConfigError(
                sec, "rotary", f"unknown device {rotary!r}", ", ".join(sorted(device_ids)) or "none"
            )
        machines.append(
            MachineConfig(
                id=mid,
                driver=driver,
                port=str(port),
                baud=_choice(sec, raw, "baud", 115200, BAUD_RATES),
                bed_width_mm=_float(sec, raw, "bed_width_mm", 300.0, 10, 5000),
                bed_height_mm=_float(sec, raw, "bed_height_mm", 200.0, 10, 5000),
                materials=tuple(materials),
                rotary=rotary,
                rotary_axis=_choice(sec, raw, "rotary_axis", "Y", ROTARY_AXES),
                rotary_per_rotation=_float(sec, raw, "rotary_per_rotation", 360.0, 1.0, 100_000.0),
                speed_factor=_float(sec, raw, "speed_factor", 1.0, 0.1, 10.0),
                sim_time_scale=_float(sec, raw, "sim_time_scale", 0.0, 0.0, 10.0),
                stall_timeout_s=_float(sec, raw, "stall_timeout_s", 10.0, 0.0, 600.0),
                laser=_choice(sec, raw, "laser", "armed", LASER_MODES),
            )
        )
    if len({m.id for m in machines}) != len(machines):
        raise ConfigError("machines", "id", "duplicate machine id")

    temporal = _table(data, "temporal")
    known_keys("temporal", temporal, {"enabled", "target", "namespace"})
    mqtt = _table(data, "mqtt")
    known_keys("mqtt", mqtt, MQTT_KEYS)
    metrics = _table(data, "metrics")
    known_keys("metrics", metrics, {"enabled", "host", "port"})
    catalog = store.get("catalog")
    if catalog is not None and (not isinstance(catalog, str) or not catalog):
        raise ConfigError("store", "catalog", f"got {catalog!r}", "a file path")
    return EdgeConfig(
        shop_id=_ident("edge", edge, "shop_id", "shop-1"),
        heartbeat_timeout_s=_float("edge", edge, "heartbeat_timeout_s", 300.0, 1.0, 86400.0),
        store_path=_path(base_dir, _str("store", store, "path", "var/crown-edge.db")),
        catalog_path=_path(base_dir, catalog) if catalog else None,
        control_socket=_path(base_dir, _str("control", control, "socket", "var/crown-edge.sock")),
        qa_mode=_choice("qa", qa, "mode", "manual", QA_MODES),
        machines=tuple(machines),
        devices=tuple(devices),
        temporal=TemporalConfig(
            enabled=_bool("temporal", temporal, "enabled", True),
            target=_str("temporal", temporal, "target", "127.0.0.1:7233"),
            namespace=_str("temporal", temporal, "namespace", "default"),
        ),
        mqtt=parse_mqtt(mqtt, base_dir),
        metrics=MetricsConfig(
            enabled=_bool("metrics", metrics, "enabled", False),
            host=_str("metrics", metrics, "host", "127.0.0.1"),
            port=_int("metrics", metrics, "port", 9464, 0, 65535),
        ),
    )


def mqtt_toml(mqtt: MqttConfig) -> str:
    """``mqtt`` as a ``[mqtt]`` TOML table :func:`parse_mqtt` reads back.

    The password goes by its file when it came from one; otherwise it is written inline and the
    caller must keep the file private (mode 0600).
    """
    lines = [
        "[mqtt]",
        f"enabled = {json.dumps(mqtt.enabled)}",
        f"host = {json.dumps(mqtt.host)}",
        f"port = {mqtt.port}",
        f"keepalive_s = {mqtt.keepalive_s}",
        f"tls = {json.dumps(mqtt.tls)}",
    ]
    for key in ("ca_file", "cert_file", "key_file", "password_file"):
        value = getattr(mqtt, key)
        if value is not None:
            lines.append(f"{key} = {json.dumps(str(value))}")
    for key in ("client_id", "username"):
        if getattr(mqtt, key) is not None:
            lines.append(f"{key} = {json.dumps(getattr(mqtt, key))}")
    if mqtt.password is not None and mqtt.password_file is None:
        lines.append(f"password = {json.dumps(mqtt.password)}")
    defaults = MqttConfig()
    for key in DELIVERY_KEYS:  # only what differs from the defaults
        if getattr(mqtt, key) != getattr(defaults, key):
            lines.append(f"{key} = {json.dumps(getattr(mqtt, key))}")
    return "\n".join(lines)


def load_config(path: Path) -> EdgeConfig:
    """Read and validate a config file; every problem is a one-line ConfigError."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError("(file)", str(path), f"cannot read: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("(file)", str(path), f"invalid TOML: {exc}") from exc
    return parse_config(data, path.parent)
