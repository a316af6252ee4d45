"""A bounded load test: the same photo posted N times, K at a time, over keep-alive HTTP.

Used by ``tests/test_serve.py`` (small) and ``benchmarks/bench_serve.py`` (the README figures).
The client is the standard library's ``http.client``, one connection per thread: no dependency,
and little overhead of its own beside the server's.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np


def multipart(field_name: str, filename: str, data: bytes,
              content_type: str = "application/octet-stream") -> tuple[bytes, str]:
    """``(body, Content-Type header)`` of a multipart/form-data upload of one file.

    Hand-written because the standard library has no multipart encoder, and these five lines
    spare the load generator a dependency.
    """
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field_name}\"; "
            f"filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), (
        f"multipart/form-data; boundary={boundary}")


@dataclass
class LoadResult:
    """Latencies (ms) and statuses of every request, and the wall time of the whole run."""

    latencies_ms: np.ndarray
    statuses: Counter
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    faces: Counter = field(default_factory=Counter)  # faces per answer -> answers

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else 0.0

    def summary(self) -> str:
        return (f"{len(self.latencies_ms)} requests, {self.ok} answered 200, "
                f"{len(self.errors)} errors; p50 {self.percentile(50):.1f} ms, "
                f"p95 {self.percentile(95):.1f} ms, max {self.latencies_ms.max():.1f} ms; "
                f"{len(self.latencies_ms) / self.wall_s:.1f} requests/s")


def load_test(url: str, photo: bytes, requests: int = 300, concurrency: int = 4,
              path: str = "/api/analyze", filename: str = "photo.jpg",
              timeout_s: float = 60.0, on_progress=None) -> LoadResult:
    """Post ``photo`` to ``url + path`` ``requests`` times, ``concurrency`` at a time.

    Args:
        on_progress: called with the number of requests done so far, from a client thread,
            every 10 requests (the benchmark samples the server's memory there).

    Returns:
        Every request's latency and status; a connection error or a non-JSON answer is
        counted as an error (status 0), not raised.

    Example:
        >>> res = load_test("http://127.0.0.1:8000", open("a.jpg", "rb").read())  # doctest: +SKIP
        >>> res.percentile(50), res.statuses                                     # doctest: +SKIP
    """
    parts = urlsplit(url)
    body, ctype = multipart("file", filename, photo, "image/jpeg")
    headers = {"Content-Type": ctype, "Connection": "keep-alive"}
    counter = iter(range(requests))
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: Counter = Counter()
    faces: Counter = Counter()
    errors: list[str] = []
    done = 0

    def worker() -> None:
        nonlocal done
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
        try:
            while True:
                with lock:
                    if next(counter, None) is None:
                        return
                start = time.perf_counter()
                status, n_faces, error = 0, None, ""
                try:
                    conn.request("POST", path, body=body, headers=headers)
                    resp = conn.getresponse()
                    payload = resp.read()
                    status = resp.status
                    answer = json.loads(payload)
                    if status == 200:
                        n_faces = len(answer["photos"][0]["faces"])
                    else:
                        error = f"{status}: {answer.get('error')}"
                except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
                    error = f"{type(e).__name__}: {e}"
                    conn.close()  # reconnect on the next request
                ms = (time.perf_counter() - start) * 1000
                with lock:
                    latencies.append(ms)
                    statuses[status] += 1
                    if error:
                        errors.append(error)
                    if n_faces is not None:
                        faces[n_faces] += 1
                    done += 1
                    now = done
                if on_progress is not None and now % 10 == 0:
                    on_progress(now)
        finally:
            conn.close()

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as ex:
        for f in [ex.submit(worker) for _ in range(concurrency)]:
            f.result()
    return LoadResult(np.asarray(latencies), statuses, errors, time.perf_counter() - start,
                      faces)
