"""Fetching artwork: an SVG's bytes from a customer's URL or a technician's file, within limits.

The I/O half of artwork, shared by the cloud's design activity, the daemon's program rendering and
the toolpath CLI (the parsing is pure, :mod:`crown_edge.toolpath.artwork`). Every
failure — bad scheme, private address, refused connection, wrong content type, too large, too
slow, not an SVG — is an :class:`~crown_edge.errors.ArtworkError` with a ``reason`` field, never
a crash or a hang.

Only ``https://`` to public addresses is fetched by default, which is what customer-supplied
URLs get. ``allow_file`` adds ``file://`` (the CLI, the technician's own files) and
``allow_insecure`` adds ``http://`` and loopback/private addresses (tests). ``library:NAME``
names the shop's stock artwork (:mod:`crown_edge.toolpath.library`), read from disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPMessage
from pathlib import Path
from typing import IO, Any

from crown_edge.errors import ArtworkError
from crown_edge.toolpath.artwork import Artwork, ArtworkLimits, parse_svg
from crown_edge.toolpath.artwork import artwork_error as _fail
from crown_edge.toolpath.library import SCHEME, library_path

_CHUNK = 64 * 1024


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


def load_artwork(url: str, limits: ArtworkLimits | None = None) -> Artwork:
    """Fetch and parse artwork (blocking; see :func:`load_artwork_async`)."""
    lim = limits or ArtworkLimits()
    return parse_svg(fetch_artwork_bytes(url, lim), max_points=lim.max_points, url=url)


async def load_artwork_async(url: str, limits: ArtworkLimits | None = None) -> Artwork:
    """Fetch and parse artwork without blocking the event loop."""
    return await asyncio.to_thread(load_artwork, url, limits)


def load_job_artwork(url: str, limits: ArtworkLimits | None = None) -> Artwork:
    """Artwork for a job: the shop's library for ``library:NAME``, else a customer URL."""
    if url.startswith(SCHEME):
        lim = limits or ArtworkLimits()
        trusted = ArtworkLimits(
            max_bytes=lim.max_bytes,
            timeout_s=lim.timeout_s,
            allow_file=True,
            max_points=lim.max_points,
        )
        return load_artwork(library_path(url).resolve().as_uri(), trusted)
    return load_artwork(url, limits)
