"""What ``ferlab serve`` refuses, and the ASGI middleware that refuses it before any work.

Every request body is read into memory by :class:`LimitsMiddleware`, at most
``ServeLimits.max_upload_bytes`` of it and within ``ServeLimits.timeout_s``, and only then handed
to the app; the photo and explanation routes are also admitted at most
``ServeLimits.max_concurrent`` at a time, the rest answered 503 at once. So a flood of uploads
costs at most ``max_concurrent`` bodies of memory, and a slow client cannot hold a worker.
A pure ASGI middleware rather than Starlette's ``BaseHTTPMiddleware``: it sees the body before
FastAPI parses it, and adds no task per request.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
from dataclasses import asdict, dataclass

from PIL import Image

from ..errors import ConfigError

# Formats a browser uploads or a camera writes. Pillow would also open EPS (through Ghostscript,
# an outside program), PSD, ICO and others: none is needed, so none is reachable from a client.
UPLOAD_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")

# The routes that run the model: admitted at most max_concurrent at a time.
GATED_PATHS = frozenset({"/api/analyze", "/api/explain"})

# Headers on every response: the page loads nothing from elsewhere (no CDN) and runs no inline
# script, so the strictest policy that lets it work is also the one that blocks injected code.
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; "
     b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


@dataclass(frozen=True)
class ServeLimits:
    """Limits of one server.

    Attributes:
        max_upload_bytes: largest request body (the photo and its multipart framing).
        max_pixels: largest photo, width x height, checked from its header before decoding, so a
            small file that would decode to gigabytes (a decompression bomb) is refused.
        timeout_s: longest a request may take: reading its body, then waiting for a worker and
            running (LIME takes about a second, a photo tens of milliseconds).
        max_concurrent: photo and explanation requests in progress at once; more get 503.
        workers: models (one per thread) answering them; default the CPU count, at most
            ``max_concurrent``. More than the cores only adds memory.

    Example:
        >>> ServeLimits(max_concurrent=2).max_concurrent
        2
    """

    max_upload_bytes: int = 12 * 1024 * 1024
    max_pixels: int = 25_000_000
    timeout_s: float = 30.0
    max_concurrent: int = 4
    workers: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "max_concurrent"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.timeout_s < float("inf"):
            raise ConfigError(f"timeout_s must be a positive number of seconds, got "
                              f"{self.timeout_s}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be at least 1, got {self.workers}")

    def worker_count(self, cpus: int | None) -> int:
        """Models to load: ``workers``, else one per CPU; never more than ``max_concurrent``."""
        return max(1, min(self.max_concurrent, self.workers or cpus or 1))

    def as_dict(self) -> dict:
        return asdict(self)


class UploadRefused(Exception):
    """An upload the server will not decode; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_photo(data: bytes, max_pixels: int) -> tuple[str, int, int]:
    """``(format, width, height)`` of an uploaded photo, read from its header only.

    Raises:
        UploadRefused: 415 when it is not one of ``UPLOAD_FORMATS``, 413 when it has more than
            ``max_pixels`` pixels.

    Example:
        >>> buf = io.BytesIO(); Image.new("L", (4, 3)).save(buf, "PNG")
        >>> check_photo(buf.getvalue(), 100)
        ('PNG', 4, 3)
    """
    if not data:
        raise UploadRefused(422, "file: the upload is empty")
    try:
        # No warnings.catch_warnings here: it changes process-wide state, and jobs run on
        # several threads. Pillow's bomb warning, raised as an error where another thread's
        # ferlab.images.open_image has made it one, means the same as its bomb error.
        with Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS) as img:
            fmt, (w, h) = img.format, img.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadRefused(413, f"file: the photo has more than the {max_pixels:,} pixels "
                                 "this server accepts") from None
    except Exception:  # noqa: BLE001  (whatever the header parser trips on, the answer is 415)
        raise UploadRefused(415, "file: not a photo this server reads (" +
                            ", ".join(UPLOAD_FORMATS) + ")") from None
    if w * h > max_pixels:
        raise UploadRefused(413, f"file: the photo is {w}x{h} pixels, more than the "
                                 f"{max_pixels:,} this server accepts")
    return fmt, w, h


class Gate:
    """A counter of requests in progress that refuses, rather than queues, past its capacity."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_flight = 0
        self._lock = threading.Lock()

    def try_enter(self) -> bool:
        with self._lock:
            if self.in_flight >= self.capacity:
                return False
            self.in_flight += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


async def _json_response(send, status: int, message: str, headers=()) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            *SECURITY_HEADERS, *headers]})
    await send({"type": "http.response.body", "body": body})


class LimitsMiddleware:
    """Body size, body read time and admission limits, and security headers (see module doc)."""

    def __init__(self, app, limits: ServeLimits, gate: Gate) -> None:
        self.app, self.limits, self.gate = app, limits, gate

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.max_upload_bytes
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await _json_response(send, 400, "Content-Length is not a number")
                return
            if declared > limit:
                await _json_response(send, 413, f"request body of {declared:,} bytes is larger "
                                                f"than the {limit:,} bytes this server accepts")
                return
        gated = scope["path"] in GATED_PATHS
        if gated and not self.gate.try_enter():
            await _json_response(send, 503, f"server busy: {self.gate.capacity} requests in "
                                            "progress; try again in a moment",
                                 [(b"retry-after", b"1")])
            return
        try:
            try:
                body = await asyncio.wait_for(self._read_body(receive, limit),
                                              self.limits.timeout_s)
            except _TooLarge:
                await _json_response(send, 413, f"request body is larger than the {limit:,} "
                                                "bytes this server accepts")
                return
            except _Disconnected:  # the client went away: there is no one to answer
                return
            except TimeoutError:
                await _json_response(send, 408, f"request body not received within "
                                                f"{self.limits.timeout_s:g} s")
                return
            await self.app(scope, _replay(body, receive), _with_headers(send))
        finally:
            if gated:
                self.gate.leave()

    @staticmethod
    async def _read_body(receive, limit: int) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive):
    """An ASGI ``receive`` that gives the buffered body once, then defers to the real one."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _with_headers(send):
    async def wrapped(message):
        if message["type"] == "http.response.start":
            names = {k.lower() for k, _ in message.get("headers", [])}
            extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return wrapped
