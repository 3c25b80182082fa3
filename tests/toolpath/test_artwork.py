"""Artwork: fetch limits (size, type, time, reachability, scheme), SVG parsing, fitting."""

from __future__ import annotations

import http.server
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crown_edge.artwork import fetch_artwork_bytes, load_artwork, load_artwork_async
from crown_edge.errors import ArtworkError
from crown_edge.toolpath.artwork import Artwork, ArtworkLimits, fit_artwork, parse_svg
from crown_edge.toolpath.layout import Region
from tests.local_http import serving

SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50" '
    b'viewBox="0 0 100 50"><path d="M10 10 C 20 30, 40 30, 50 10" fill="none"/>'
    b'<rect x="60" y="5" width="30" height="20"/><circle cx="25" cy="40" r="8"/>'
    b"<text x='1' y='1'>ignored</text></svg>"
)
ENTITY = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>
<svg xmlns="http://www.w3.org/2000/svg"><text>&lol2;</text></svg>"""
LOCAL = ArtworkLimits(allow_insecure=True, timeout_s=20)
SHORT = ArtworkLimits(allow_insecure=True, timeout_s=0.6)  # for the slow-server cases


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, body: bytes, ctype: str = "image/svg+xml", length: bool = True) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path
        try:
            if path == "/ok.svg":
                self._send(SVG, "image/svg+xml; charset=utf-8")
            elif path == "/big.svg":
                self._send(b" " * (3 * 1024 * 1024) + SVG)
            elif path == "/big-nolength.svg":
                self._send(b" " * (3 * 1024 * 1024) + SVG, length=False)
            elif path == "/picture.png":
                self._send(b"\x89PNG....", "image/png")
            elif path == "/not-svg.svg":
                self._send(b"hello, world")
            elif path == "/entity.svg":
                self._send(ENTITY)
            elif path == "/slow.svg":
                time.sleep(2.0)
                self._send(SVG)
            elif path == "/drip.svg":
                self.send_response(200)
                self.send_header("Content-Type", "image/svg+xml")
                self.end_headers()
                for _ in range(40):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.05)
            elif path == "/to-file":
                self.send_response(302)
                self.send_header("Location", "file:///etc/passwd")
                self.end_headers()
            elif path == "/to-ftp":
                self.send_response(302)
                self.send_header("Location", "ftp://127.0.0.1/x.svg")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif path == "/to-ok":
                self.send_response(302)
                self.send_header("Location", "/ok.svg")
                self.end_headers()
            else:
                self.send_error(404)
        except OSError:
            pass  # the client gave up, as it should


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serving(_Server(("127.0.0.1", 0), _Handler), join_s=5) as url:
        yield url


def _reason(url: str, limits: ArtworkLimits = LOCAL) -> str:
    with pytest.raises(ArtworkError) as info:
        load_artwork(url, limits)
    assert info.value.fields["url"] == url
    return str(info.value.fields["reason"])


def test_fetch_and_parse(server: str) -> None:
    art = load_artwork(f"{server}/ok.svg", LOCAL)
    assert len(art.polylines) == 3
    assert art.width == pytest.approx(80, abs=0.5) and art.height > 20
    assert load_artwork(f"{server}/to-ok", LOCAL) == art


async def test_fetch_async(server: str) -> None:
    art = await load_artwork_async(f"{server}/ok.svg", LOCAL)
    assert len(art.polylines) == 3


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/big.svg", "size"),
        ("/big-nolength.svg", "size"),
        ("/picture.png", "content_type"),
        ("/not-svg.svg", "content"),
        ("/entity.svg", "content"),
        ("/missing.svg", "status"),
        ("/to-file", "url"),
        ("/to-ftp", "url"),
    ],
)
def test_limits(server: str, path: str, reason: str) -> None:
    assert _reason(server + path) == reason


@pytest.mark.parametrize("path", ["/slow.svg", "/drip.svg"])
def test_slow_servers_time_out(server: str, path: str) -> None:
    assert _reason(server + path, SHORT) == "timeout"


def test_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert _reason(f"http://127.0.0.1:{port}/x.svg") == "unreachable"
    assert _reason("https://no-such-host.invalid/x.svg") == "unreachable"


def test_schemes_and_private_addresses(server: str) -> None:
    strict = ArtworkLimits(timeout_s=20)
    assert _reason(f"{server}/ok.svg", strict) == "url"  # http needs allow_insecure
    assert _reason("https://127.0.0.1:9/x.svg", strict) == "address"
    assert _reason("ftp://example.com/x.svg") == "url"
    assert _reason("javascript:alert(1)") == "url"
    assert _reason("not a url") == "url"
    assert _reason("https://example.com:99999/x.svg") == "url"
    assert _reason("https:///x.svg") == "url"


def test_file_urls(tmp_path: Path) -> None:
    files = ArtworkLimits(allow_file=True)
    good = tmp_path / "logo.svg"
    good.write_bytes(SVG)
    assert len(load_artwork(good.as_uri(), files).polylines) == 3
    assert _reason(good.as_uri(), ArtworkLimits()) == "url"  # not by default: customer URLs
    assert _reason(good.as_uri(), ArtworkLimits(allow_file=True, max_bytes=100)) == "size"
    other = tmp_path / "logo.txt"
    other.write_bytes(SVG)
    assert _reason(other.as_uri(), files) == "content_type"
    assert _reason((tmp_path / "none.svg").as_uri(), files) == "unreachable"
    assert _reason("file://elsewhere/x.svg", files) == "url"


@pytest.mark.parametrize(
    "data",
    [
        b"<svg",
        b"<svg xmlns='http://www.w3.org/2000/svg'></svg>",
        b"<svg xmlns='http://www.w3.org/2000/svg'><path d='M 0 0 Z Q'/></svg>",
        b"\xff\xfe<svg>",
        b"",
    ],
)
def test_bad_svg_is_a_typed_error(data: bytes) -> None:
    with pytest.raises(ArtworkError):
        parse_svg(data)


def test_point_limit() -> None:
    many = b"".join(b"<circle cx='%d' cy='5' r='4'/>" % i for i in range(200))
    svg = b"<svg xmlns='http://www.w3.org/2000/svg'>" + many + b"</svg>"
    with pytest.raises(ArtworkError) as info:
        parse_svg(svg, max_points=1000)
    assert info.value.fields["reason"] == "size"


def test_fetch_bytes_returns_the_body(server: str) -> None:
    assert fetch_artwork_bytes(f"{server}/ok.svg", LOCAL) == SVG


def test_fit_keeps_aspect_and_stays_inside() -> None:
    art = Artwork((((0.0, 0.0), (10.0, 5.0)), ((10.0, 0.0), (0.0, 5.0))), 10.0, 5.0)
    region = Region(2, 3, 40, 40)
    fitted = fit_artwork(art, region)
    xs = [x for p in fitted for x, _ in p]
    ys = [y for p in fitted for _, y in p]
    assert min(xs) == pytest.approx(2) and max(xs) == pytest.approx(42)
    assert max(ys) - min(ys) == pytest.approx(20)
    assert (min(ys) + max(ys)) / 2 == pytest.approx(23)


@settings(max_examples=60, deadline=None)
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=200).map(
            lambda t: f"<svg xmlns='http://www.w3.org/2000/svg'><path d='{t}'/></svg>".encode()
        ),
        st.text(max_size=200).map(lambda t: f"<svg>{t}</svg>".encode("utf-8", "surrogatepass")),
    )
)
def test_random_bytes_only_ever_raise_artwork_error(body: bytes) -> None:
    try:
        art = parse_svg(body)
    except ArtworkError:
        return
    assert art.polylines and all(len(p) >= 2 for p in art.polylines)
