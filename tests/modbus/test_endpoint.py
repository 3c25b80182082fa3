"""Device URLs: tcp, rtu+tcp and serial rtu forms; bad URLs are ConfigErrors."""

from __future__ import annotations

import pytest

from crown_edge.drivers.modbus import Endpoint, Transport
from crown_edge.errors import ConfigError


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("tcp://127.0.0.1:5020", Endpoint(Transport.TCP, host="127.0.0.1", port=5020)),
        ("tcp://io.shop.lan", Endpoint(Transport.TCP, host="io.shop.lan", port=502)),
        ("rtu+tcp://10.0.0.9:4001", Endpoint(Transport.RTU_TCP, host="10.0.0.9", port=4001)),
        ("rtu:///dev/ttyUSB0", Endpoint(Transport.RTU, device="/dev/ttyUSB0")),
        (
            "rtu:///dev/ttyS1?baud=9600&parity=E&stopbits=2&bytesize=7",
            Endpoint(
                Transport.RTU, device="/dev/ttyS1", baud=9600, parity="E", stopbits=2, bytesize=7
            ),
        ),
    ],
)
def test_good_urls(url: str, expected: Endpoint) -> None:
    endpoint = Endpoint.parse(url)
    assert endpoint == expected
    assert Endpoint.parse(str(endpoint)) == endpoint


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("udp://host:502", "url"),
        ("tcp://", "url"),
        ("tcp://host:0", "url"),
        ("tcp://host:70000", "url"),
        ("tcp://host:502/path", "url"),
        ("rtu+tcp://host", "url"),
        ("rtu://ttyUSB0", "url"),
        ("rtu:///dev/ttyUSB0?baud=1234", "url.baud"),
        ("rtu:///dev/ttyUSB0?parity=X", "url.parity"),
        ("rtu:///dev/ttyUSB0?speed=9600", "url"),
    ],
)
def test_bad_urls(url: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        Endpoint.parse(url)
    assert info.value.fields["key"] == key
    assert info.value.fields["allowed"]
