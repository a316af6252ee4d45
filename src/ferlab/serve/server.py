"""Running the app: ``ferlab serve`` in the foreground, or a server on a thread for tests."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from ..errors import ConfigError

# uvicorn refuses connections past this many (503): a floor under the app's own admission
# limit, so that idle keep-alive connections cannot pile up without end.
MAX_CONNECTIONS = 64
KEEP_ALIVE_S = 5


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _config(app, **kw) -> uvicorn.Config:
    return uvicorn.Config(app, limit_concurrency=MAX_CONNECTIONS, timeout_keep_alive=KEEP_ALIVE_S,
                          server_header=False, lifespan="on", **kw)


def listen(host: str = "127.0.0.1", port: int = 8000) -> socket.socket:
    """A socket bound to ``host:port``, for :func:`serve`. Bound before the models load, so that
    a port in use is one line from ferlab at once rather than uvicorn's exit seconds later.

    Raises:
        ConfigError: the port is out of range or cannot be bound.
    """
    if not 0 < port < 65536:
        raise ConfigError(f"port must be 1-65535, got {port}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


def serve(app, sock: socket.socket, log_level: str = "info") -> None:
    """Serve ``app`` on ``sock`` (from :func:`listen`) until Ctrl-C / SIGTERM."""
    try:
        uvicorn.Server(_config(app, log_level=log_level)).run(sockets=[sock])
    finally:
        sock.close()


@contextmanager
def serving(app, host: str = "127.0.0.1", log_level: str = "warning",
            start_timeout_s: float = 30.0) -> Iterator[str]:
    """A real HTTP server for ``app`` on a free port of ``host``, on a thread; yields its URL.

    The server is stopped and its thread joined on leaving, also after an error.

    Example:
        >>> with serving(create_app()) as url:                          # doctest: +SKIP
        ...     urllib.request.urlopen(url + "/api/health").read()
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))  # port 0: the system picks a free one
    port = sock.getsockname()[1]
    server = uvicorn.Server(_config(app, log_level=log_level))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name=f"ferlab-serve-{port}")
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
