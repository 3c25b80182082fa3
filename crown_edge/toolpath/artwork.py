"""Artwork: fetch an SVG within limits, turn its shapes into polylines, fit them into a region.

This is the one module of the toolpath package that does I/O (:func:`fetch_artwork_bytes`,
:func:`load_artwork`, :func:`load_artwork_async`). Every failure — bad scheme, private address,
refused connection, wrong content type, too large, too slow, not an SVG — is an
:class:`~crown_edge.errors.ArtworkError` with a ``reason`` field, never a crash or a hang.

Only ``https://`` to public addresses is fetched by default, which is what customer-supplied
URLs get. ``allow_file`` adds ``file://`` (the CLI, the technician's own files) and
``allow_insecure`` adds ``http://`` and loopback/private addresses (tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import ipaddress
import math
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from http.client import HTTPMessage
from pathlib import Path
from typing import IO, Any

from crown_edge.errors import ArtworkError
from crown_edge.toolpath.fonts import Polyline
from crown_edge.toolpath.layout import Region

DEFAULT_MAX_BYTES = 2 * 1024 * 1024
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class ArtworkLimits:
    """What a fetch may cost: bytes, seconds, accepted content types, allowed sources."""

    max_bytes: int = DEFAULT_MAX_BYTES
    timeout_s: float = 10.0
    content_types: tuple[str, ...] = ("image/svg+xml",)
    allow_file: bool = False
    """``file://`` URLs: for the technician's own files (the CLI), never for customer URLs."""
    allow_insecure: bool = False
    """``http://`` and loopback/private hosts: tests and the workshop's own network only."""
    max_points: int = 200_000
    max_redirects: int = 3


@dataclass(frozen=True, slots=True)
class Artwork:
    """Artwork as polylines in its own units, y up, bounding box from (0, 0) to (width, height)."""

    polylines: tuple[Polyline, ...]
    width: float
    height: float


def _fail(url: str, reason: str, detail: str) -> ArtworkError:
    shown = url if len(url) <= 120 else url[:117] + "..."
    return ArtworkError(f"artwork {shown}: {detail}", url=url, reason=reason)


def _check_host(url: str, host: str | None, port: int | None, limits: ArtworkLimits) -> None:
    if not host:
        raise _fail(url, "url", "no host in URL")
    try:
        infos = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise _fail(url, "unreachable", f"cannot resolve host: {exc}") from exc
    if limits.allow_insecure:
        return
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not address.is_global:
            raise _fail(url, "address", f"host resolves to a non-public address {address}")


class _Redirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, url: str, limits: ArtworkLimits) -> None:
        super().__init__()
        self.url = url
        self.limits = limits
        self.max_redirections = limits.max_redirects  # type: ignore[misc]

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        parts = urllib.parse.urlsplit(newurl)
        if parts.scheme != "https" and not (parts.scheme == "http" and self.limits.allow_insecure):
            fp.close()
            raise _fail(self.url, "url", f"redirect to a {parts.scheme or 'relative'} URL refused")
        try:
            _check_host(self.url, parts.hostname, parts.port, self.limits)
        except (ArtworkError, ValueError):
            fp.close()
            raise
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch_http(url: str, limits: ArtworkLimits, deadline: float, holder: dict[str, Any]) -> bytes:
    parts = urllib.parse.urlsplit(url)
    _check_host(url, parts.hostname, parts.port, limits)
    opener = urllib.request.build_opener(_Redirects(url, limits))
    request = urllib.request.Request(
        url, headers={"Accept": ", ".join(limits.content_types), "User-Agent": "crown-edge"}
    )
    remaining = max(0.05, deadline - time.monotonic())
    try:
        response = opener.open(request, timeout=remaining)
    except urllib.error.HTTPError as exc:
        exc.close()
        if 300 <= exc.code < 400:
            raise _fail(url, "url", f"redirect refused (HTTP {exc.code})") from None
        raise _fail(url, "status", f"server answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError | socket.timeout):
            raise _fail(url, "timeout", "no answer in time") from exc
        raise _fail(url, "unreachable", f"cannot connect: {reason}") from exc
    with response:
        holder["response"] = response
        ctype = (response.headers.get_content_type() or "").lower()
        if ctype not in limits.content_types:
            raise _fail(url, "content_type", f"content type {ctype!r} is not accepted")
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > limits.max_bytes:
            raise _fail(url, "size", f"{declared} bytes exceeds the {limits.max_bytes} limit")
        chunks: list[bytes] = []
        total = 0
        while True:
            if time.monotonic() > deadline:
                raise _fail(url, "timeout", f"not complete within {limits.timeout_s:g} s")
            try:
                chunk = response.read1(_CHUNK)
            except (OSError, ValueError) as exc:
                if isinstance(exc, TimeoutError | socket.timeout):
                    raise _fail(url, "timeout", "server stopped sending") from exc
                raise _fail(url, "unreachable", f"read failed: {exc}") from exc
            if not chunk:
                break
            total += len(chunk)
            if total > limits.max_bytes:
                raise _fail(url, "size", f"more than the {limits.max_bytes} byte limit")
            chunks.append(chunk)
    return b"".join(chunks)


def _fetch_file(url: str, limits: ArtworkLimits) -> bytes:
    if not limits.allow_file:
        raise _fail(url, "url", "file URLs are not allowed here")
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise _fail(url, "url", "file URL with a remote host")
    path = Path(urllib.request.url2pathname(parts.path))
    if path.suffix.lower() != ".svg":
        raise _fail(url, "content_type", "only .svg files are accepted")
    try:
        with path.open("rb") as fh:
            data = fh.read(limits.max_bytes + 1)
    except OSError as exc:
        raise _fail(url, "unreachable", f"cannot read file: {exc.strerror}") from exc
    if len(data) > limits.max_bytes:
        raise _fail(url, "size", f"more than the {limits.max_bytes} byte limit")
    return data


def fetch_artwork_bytes(url: str, limits: ArtworkLimits | None = None) -> bytes:
    """Fetch the artwork's bytes from a ``file://`` or ``https://`` URL within ``limits``.

    The whole fetch (name lookup, connect, redirects, body) runs against one deadline in a
    worker thread, so a slow or silent server costs at most ``timeout_s``.
    """
    lim = limits or ArtworkLimits()
    if not isinstance(url, str) or len(url) > 2048:
        raise _fail(str(url)[:120], "url", "not a usable URL")
    try:
        split = urllib.parse.urlsplit(url)
        scheme = split.scheme.lower()
        _ = split.port  # raises for a malformed port
    except ValueError as exc:
        raise _fail(url, "url", f"malformed URL: {exc}") from exc
    if scheme == "file":
        return _fetch_file(url, lim)
    if scheme != "https" and not (scheme == "http" and lim.allow_insecure):
        raise _fail(url, "url", f"scheme {scheme or '(none)'!r} is not allowed")
    deadline = time.monotonic() + lim.timeout_s
    holder: dict[str, Any] = {}

    def work() -> None:
        try:
            holder["data"] = _fetch_http(url, lim, deadline, holder)
        except ArtworkError as exc:
            holder["error"] = exc
        except Exception as exc:  # translated at the boundary, never a crash
            holder["error"] = _fail(url, "unreachable", f"{type(exc).__name__}: {exc}")

    worker = threading.Thread(target=work, name="artwork-fetch", daemon=True)
    worker.start()
    worker.join(lim.timeout_s + 0.5)
    if worker.is_alive():
        response = holder.get("response")
        if response is not None:
            with contextlib.suppress(Exception):  # best effort to wake the worker
                response.close()
        raise _fail(url, "timeout", f"not complete within {lim.timeout_s:g} s")
    error = holder.get("error")
    if isinstance(error, ArtworkError):
        raise error
    data: bytes = holder["data"]
    return data


def _flatten(segment: Any, step: float) -> list[tuple[float, float]]:
    start = segment.start
    end = segment.end
    chord = math.hypot(end.x - start.x, end.y - start.y)
    try:
        approx = float(segment.length(error=1e-3, min_depth=2))
    except Exception:
        approx = chord
    count = max(2, min(256, math.ceil(max(approx, chord) / step)))
    pts = []
    for i in range(1, count + 1):
        p = segment.point(i / count)
        pts.append((float(p.x), float(p.y)))
    return pts


def parse_svg(data: bytes, *, max_points: int = 200_000, url: str = "") -> Artwork:
    """Turn SVG bytes into :class:`Artwork` (shapes only; text and images are ignored)."""
    import svgelements as se

    head = data[:4096].lower()
    if b"<svg" not in data[:65536].lower() or b"<!entity" in head:
        raise _fail(url, "content", "not an SVG document")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            svg = se.SVG.parse(io.BytesIO(data), reify=True, on_error="raise")
            shapes = [e for e in svg.elements() if isinstance(e, se.Shape)]
            paths: list[Any] = []
            for shape in shapes:
                path = se.Path(shape)
                path.reify()
                paths.extend(se.Path(sub) for sub in path.as_subpaths())
            boxes = [p.bbox() for p in paths]
    except ArtworkError:
        raise
    except Exception as exc:
        raise _fail(url, "parse", f"SVG does not parse: {type(exc).__name__}") from exc
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        raise _fail(url, "empty", "the SVG has no drawable shapes")
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[2] for b in boxes)
    y1 = max(b[3] for b in boxes)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise _fail(url, "parse", "the SVG has non-finite coordinates")
    step = max(x1 - x0, y1 - y0, 1e-9) / 500
    polylines: list[Polyline] = []
    total = 0
    try:
        for path in paths:
            pts: list[tuple[float, float]] = []
            for seg in path:
                if isinstance(seg, se.Move):
                    pts = [(float(seg.end.x), float(seg.end.y))]
                    continue
                if isinstance(seg, se.Line | se.Close):
                    if seg.end is not None:
                        pts.append((float(seg.end.x), float(seg.end.y)))
                else:
                    pts.extend(_flatten(seg, step))
                total += 1
                if len(pts) + total > max_points:
                    raise _fail(url, "size", f"more than {max_points} points")
            if len(pts) >= 2:
                total += len(pts)
                polylines.append(tuple((x - x0, y1 - y) for x, y in pts))
    except ArtworkError:
        raise
    except Exception as exc:
        raise _fail(url, "parse", f"SVG geometry failed: {type(exc).__name__}") from exc
    if not polylines:
        raise _fail(url, "empty", "the SVG has no drawable shapes")
    return Artwork(tuple(polylines), x1 - x0, y1 - y0)


def load_artwork(url: str, limits: ArtworkLimits | None = None) -> Artwork:
    """Fetch and parse artwork (blocking; see :func:`load_artwork_async`)."""
    lim = limits or ArtworkLimits()
    return parse_svg(fetch_artwork_bytes(url, lim), max_points=lim.max_points, url=url)


async def load_artwork_async(url: str, limits: ArtworkLimits | None = None) -> Artwork:
    """Fetch and parse artwork without blocking the event loop."""
    return await asyncio.to_thread(load_artwork, url, limits)


def fit_artwork(art: Artwork, region: Region) -> tuple[Polyline, ...]:
    """Scale artwork uniformly into ``region`` (area coordinates, mm), centred."""
    if art.width <= 0 and art.height <= 0:
        scale = 0.0
    elif art.width <= 0:
        scale = region.height / art.height
    elif art.height <= 0:
        scale = region.width / art.width
    else:
        scale = min(region.width / art.width, region.height / art.height)
    ox = region.cx - art.width * scale / 2
    oy = region.cy - art.height * scale / 2
    return tuple(tuple((ox + x * scale, oy + y * scale) for x, y in p) for p in art.polylines)


def artwork_extent(polylines: Sequence[Polyline]) -> tuple[float, float, float, float]:
    """Bounding box ``(x0, y0, x1, y1)`` of polylines."""
    xs = [x for p in polylines for x, _ in p]
    ys = [y for p in polylines for _, y in p]
    return min(xs), min(ys), max(xs), max(ys)
