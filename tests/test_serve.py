"""`ferlab serve`: the JSON API, its limits, its OpenAPI spec (schemathesis) and a bounded load
test, on synthetic photos and the bundled astronaut, over real loopback HTTP where it matters."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from fastapi.testclient import TestClient  # noqa: E402

from ferlab import cli  # noqa: E402
from ferlab.constants import EMOTIONS  # noqa: E402
from ferlab.faces.detect import Box  # noqa: E402
from ferlab.precision import bf16_is_native  # noqa: E402
from ferlab.serve import METHODS, ServeLimits, create_app, is_loopback, serving  # noqa: E402
from ferlab.serve.app import upload_name  # noqa: E402
from ferlab.serve.limits import UploadRefused, check_photo  # noqa: E402
from ferlab.serve.loadtest import load_test, multipart  # noqa: E402
from ferlab.serve.workers import JobTimeout  # noqa: E402
from ferlab.synthetic import make_faces  # noqa: E402

ASTRONAUT = Path(cli.__file__).parent / "assets" / "astronaut.jpg"
ASTRONAUT_FACE = Box(176, 66, 95, 95)  # her face in the 512x512 photo (tests/conftest.py)
MB = 1024 * 1024


def encode(img: Image.Image | np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def synthetic_face(side: int = 96) -> np.ndarray:
    """A synthetic face (class in the mouth) blown up to ``side`` pixels: a face crop, which
    the recognizer takes whole whatever the detector."""
    face = make_faces(1, seed=5).images[0]
    return np.asarray(Image.fromarray(face).resize((side, side), Image.Resampling.BILINEAR))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels and holds almost nothing: the start of a
    decompression bomb, to be refused from its header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0"))
            + chunk(b"IEND", b""))


def post(client, path: str, data: bytes, name: str = "photo.png", **params):
    return client.post(path, params=params, files={"file": (name, data, "image/png")})


def assert_error(resp, status: int, *words: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    message = resp.json()["error"]
    assert isinstance(message, str) and message
    for w in words:
        assert w in message, message


# --------------------------------------------------------------------------------------------
# Apps: the bundled model (what users run), and a small untrained one for the limits


@pytest.fixture(scope="module")
def app():
    return create_app("bundled", ServeLimits(workers=2), warm_up=False)


@pytest.fixture(scope="module")
def client(app):
    return TestClient(app)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    import torch

    from ferlab.model_file import save_model
    from ferlab.models import create_model

    torch.manual_seed(0)
    return save_model(create_model("cnn-leaky"), tmp_path_factory.mktemp("m") / "m.safetensors")


@pytest.fixture(scope="module")
def strict_app(small_model):
    """Small limits: 1 MB uploads, 1 megapixel, 1 s, one request at a time, fp32."""
    limits = ServeLimits(max_upload_bytes=MB, max_pixels=1_000_000, timeout_s=1.0,
                         max_concurrent=1, workers=1)
    return create_app(small_model, limits, warm_up=False, bf16=False)


@pytest.fixture(scope="module")
def strict(strict_app):
    return TestClient(strict_app)


@pytest.fixture(scope="module")
def live(app):
    """The bundled app on a real loopback port (stopped at the end of the module)."""
    with serving(app) as url:
        yield url


# --------------------------------------------------------------------------------------------
# The answers


def test_a_photo_is_answered_in_the_shape_of_predict_json(client, tmp_path):
    resp = post(client, "/api/analyze", ASTRONAUT.read_bytes(), name="astronaut.jpg")
    assert resp.status_code == 200, resp.text
    api = resp.json()
    assert cli.main(["predict", "--image", str(ASTRONAUT), "--json",
                     str(tmp_path / "faces.json")]) == 0
    cli_json = json.loads((tmp_path / "faces.json").read_text())
    assert api["model"] == cli_json["model"] == "bundled"
    assert api["photos"][0]["photo"] == "astronaut.jpg"
    assert {**api["photos"][0], "photo": None} == {**cli_json["photos"][0], "photo": None}
    face = api["photos"][0]["faces"][0]
    assert list(face["probabilities"]) == list(EMOTIONS)
    assert Box(**face["box"]).iou(ASTRONAUT_FACE) > 0.6


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"])
def test_synthetic_face_in_every_format(client, fmt):
    face = synthetic_face()
    resp = post(client, "/api/analyze", encode(face, fmt), name=f"face.{fmt.lower()}")
    assert resp.status_code == 200, resp.text
    photo = resp.json()["photos"][0]
    assert (photo["width"], photo["height"]) == (96, 96)
    (f,) = photo["faces"]
    assert f["detector"] == "whole" and f["box"] == {"x": 0, "y": 0, "w": 96, "h": 96}
    assert sum(f["probabilities"].values()) == pytest.approx(1.0, abs=2e-3)
    assert f["label"] == max(f["probabilities"], key=f["probabilities"].get)


def test_a_photo_without_a_face_has_no_faces(client):
    sky = np.zeros((200, 300, 3), np.uint8) + np.array([90, 140, 200], np.uint8)
    resp = post(client, "/api/analyze", encode(sky))
    assert resp.status_code == 200
    assert resp.json()["photos"][0]["faces"] == []
    assert_error(post(client, "/api/explain", encode(sky), face=0), 422, "0 faces")


def test_model_info_gives_the_precision_the_recognizer_runs(app, client, strict):
    info = client.get("/api/model").json()
    rec = app.state.pool.first
    assert info["precision"] == rec.computes_in and info["runtime"] == rec.runtime
    assert rec.bf16 == bf16_is_native()  # the default: bf16 exactly where the CPU has it
    assert info["bf16_native"] == bf16_is_native()
    assert info["model"] == "bundled"
    assert info["architecture"].startswith("ensemble(mean, 3 members: vgg(width=48), 2 x speedrun")
    assert info["classes"] == list(EMOTIONS) and info["methods"] == list(METHODS)
    assert set(info["colors"]) == set(EMOTIONS)
    assert info["limits"]["workers"] == 2
    # A model asked to run in float32 says so.
    assert strict.get("/api/model").json()["precision"] == "fp32"
    assert client.get("/api/health").json() == {"status": "ok", "in_flight": 0, "capacity": 4}


@pytest.mark.parametrize("method", METHODS)
def test_explain_each_method(client, method):
    resp = post(client, "/api/explain", ASTRONAUT.read_bytes(), face=0, method=method)
    assert resp.status_code == 200, resp.text
    ans = resp.json()
    assert ans["method"] == method and ans["face"] == 0 and ans["label"] in EMOTIONS
    assert ans["target"] == ans["label"] and ans["size"] == 48
    heat = np.asarray(ans["heatmap"])
    assert heat.shape == (48, 48) and heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    assert heat.std() > 0.01  # a map, not a constant
    head, jpeg = ans["overlay"].split(",", 1)
    assert head == "data:image/jpeg;base64"
    assert Image.open(io.BytesIO(base64.b64decode(jpeg))).size == (192, 192)
    assert 0 < ans["seconds"] < 30


# --------------------------------------------------------------------------------------------
# Bad input: JSON 4xx with a message, nothing decoded that should not be


def test_bad_uploads_get_json_errors(client):
    assert_error(post(client, "/api/analyze", b"not a photo at all"), 415, "not a photo")
    assert_error(post(client, "/api/analyze", b""), 422, "empty")
    # EPS would be opened through Ghostscript: not a format a client may reach.
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\n"
    assert_error(post(client, "/api/analyze", eps), 415)
    whole = encode(synthetic_face(), "JPEG")
    truncated = whole[:len(whole) * 2 // 3]  # the header reads, the pixels do not
    assert_error(post(client, "/api/analyze", truncated), 422, "file:")
    assert_error(client.post("/api/analyze"), 422, "file")
    assert_error(client.post("/api/analyze", content=b"--x\r\ngarbage",
                             headers={"content-type": "multipart/form-data; boundary=zz"}), 400)
    photo = ASTRONAUT.read_bytes()
    assert_error(post(client, "/api/explain", photo, method="occlusion"), 422, "method")
    assert_error(post(client, "/api/explain", photo, face=-1), 422, "face")
    assert_error(post(client, "/api/explain", photo, face=1), 422, "1 face, no face 1")
    assert_error(client.get("/api/analyze"), 405)
    assert_error(client.get("/api/nothing"), 404)


def test_decompression_bombs_and_big_uploads_are_refused(client, strict):
    bomb = png_header_only(40_000, 40_000)
    assert len(bomb) < 100
    assert_error(post(client, "/api/analyze", bomb), 413, "pixels")
    with pytest.raises(UploadRefused) as e:
        check_photo(bomb, 25_000_000)
    assert e.value.status == 413
    # Over the pixel limit by a little (1,200,000 > 1,000,000), a real, decodable photo.
    assert_error(post(strict, "/api/analyze", encode(np.zeros((1000, 1200), np.uint8))), 413,
                 "1200x1000")
    # Over the byte limit: refused from Content-Length, before the body is read.
    noise = np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    big = encode(noise)
    assert len(big) > MB
    assert_error(post(strict, "/api/analyze", big), 413, "bytes")


def test_no_path_from_a_client_reaches_the_file_system(client, monkeypatch):
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda fp, *a, **k: opened.append(fp) or
                        real_open(fp, *a, **k))
    resp = post(client, "/api/analyze", encode(synthetic_face()), name="../../../etc/passwd")
    assert resp.status_code == 200
    assert resp.json()["photos"][0]["photo"] == "passwd"  # a label, nothing more
    assert opened and all(isinstance(fp, io.BytesIO) for fp in opened)  # decoded from memory
    assert upload_name("..\\..\\boot.ini") == "boot.ini"
    assert upload_name("a\x00b\n.png") == "ab.png" and upload_name("") == "upload"
    for path in ("/static/../app.py", "/static/..%2f..%2fpyproject.toml", "/static/index.html",
                 "/static/%2e%2e/limits.py", "/docs", "/redoc"):
        resp = client.get(path)
        assert resp.status_code == 404, path


def test_nothing_uploaded_is_written_to_disk(client, monkeypatch):
    # Starlette spools an upload to a temporary file past its in-memory size (1 MB by default);
    # the app raises that size above its upload limit, so a 2-3 MB photo never rolls over.
    rolled = []
    real = tempfile.SpooledTemporaryFile.rollover
    monkeypatch.setattr(tempfile.SpooledTemporaryFile, "rollover",
                        lambda self: rolled.append(1) or real(self))
    noise = np.random.default_rng(1).integers(0, 256, (1000, 1000, 3), dtype=np.uint8)
    photo = encode(noise)
    assert 2 * MB < len(photo) < 12 * MB
    assert post(client, "/api/analyze", photo).status_code == 200
    assert rolled == []
    # The check can fail: with Starlette's own 1 MB, the same upload goes to disk.
    from starlette.formparsers import MultiPartParser

    monkeypatch.setattr(MultiPartParser, "spool_max_size", MB)
    assert post(client, "/api/analyze", photo).status_code == 200
    assert rolled


def test_a_busy_server_answers_503_at_once(strict_app, strict):
    gate = strict_app.state.gate
    photo = encode(synthetic_face())
    assert gate.try_enter()  # the one slot is taken (as by a long LIME request)
    try:
        start = time.perf_counter()
        resp = post(strict, "/api/analyze", photo)
        assert time.perf_counter() - start < 1.0
        assert_error(resp, 503, "busy")
        assert resp.headers["retry-after"] == "1"
        assert strict.get("/api/health").status_code == 200  # cheap routes still answer
        assert strict.get("/").status_code == 200
    finally:
        gate.leave()
    assert post(strict, "/api/analyze", photo).status_code == 200
    assert gate.in_flight == 0


def test_a_slow_job_times_out_and_a_queued_one_is_dropped(strict_app, strict, monkeypatch):
    pool = strict_app.state.pool
    ran = []

    async def two_jobs():
        slow = asyncio.create_task(pool.run(lambda rec: time.sleep(0.6) or ran.append(1), 0.2))
        queued = asyncio.create_task(pool.run(lambda rec: ran.append(2), 0.1))
        for task in (slow, queued):
            with pytest.raises(JobTimeout):
                await task

    asyncio.run(two_jobs())
    time.sleep(0.7)
    assert ran == [1]  # the slow one finished on its thread; the queued one never ran

    async def too_slow(job, timeout_s):
        raise JobTimeout(f"not answered within {timeout_s:g} s")

    monkeypatch.setattr(pool, "run", too_slow)
    assert_error(post(strict, "/api/analyze", encode(synthetic_face())), 504, "1 s")


def test_a_slow_upload_gets_408(strict_app):
    with serving(strict_app) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"POST /api/analyze HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
                      b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n")
            start = time.perf_counter()
            answer = s.recv(4096).decode()
            waited = time.perf_counter() - start
            while '"error"' not in answer and (chunk := s.recv(4096)):
                answer += chunk.decode()
        assert 0.8 < waited < 5
        assert answer.startswith("HTTP/1.1 408") and '"error"' in answer


def test_headers_keep_the_page_to_itself(client):
    resp = client.get("/")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    csp = resp.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["x-content-type-options"] == "nosniff"
    html = resp.text
    assert 'src="/static/app.js"' in html and "http" not in html.split("<footer>")[0]
    for name, kind in (("app.js", "javascript"), ("app.css", "css")):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"]
        assert "http://" not in r.text and "https://" not in r.text  # no CDN, works offline


def test_loopback_only_unless_asked():
    assert all(map(is_loopback, ["127.0.0.1", "::1", "localhost", "127.5.0.1"]))
    assert not any(map(is_loopback, ["0.0.0.0", "192.168.1.20", "::", "example.org"]))
    assert cli.build_parser().parse_args(["serve"]).host == "127.0.0.1"


# --------------------------------------------------------------------------------------------
# The OpenAPI spec, and schemathesis against it over HTTP


def test_openapi_documents_the_api(client):
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]) == {"/api/analyze", "/api/explain", "/api/model", "/api/health"}
    for path in ("/api/analyze", "/api/explain"):
        post_op = spec["paths"][path]["post"]
        assert "multipart/form-data" in post_op["requestBody"]["content"]
        assert {"200", "413", "415", "422", "503"} <= set(post_op["responses"])


def test_no_generated_input_makes_a_server_error(live):
    # schemathesis's pytest plugin (from_fixture) does not run under pytest 9, so its Python
    # API drives hypothesis here: for every operation, generated requests (valid and not)
    # pass every check schemathesis has by default (no 5xx; status codes, content types and
    # bodies as the spec documents them) but one: "schema-valid data is accepted". A schema
    # can say "binary", not "a photo with a face 3", so random bytes rightly get 415/422.
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import given
    from schemathesis.checks import positive_data_acceptance

    schema = schemathesis.openapi.from_url(live + "/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) == 4
    for op in operations:
        @given(case=op.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck),
                  derandomize=True, database=None)
        def calls_pass_every_check(case):
            case.call_and_validate(base_url=live, excluded_checks=[positive_data_acceptance])

        calls_pass_every_check()


# --------------------------------------------------------------------------------------------
# Load, over loopback


def test_bounded_load_test_finds_no_error(app, live):
    res = load_test(live, ASTRONAUT.read_bytes(), requests=300, concurrency=4)
    assert res.errors == [] and res.statuses == {200: 300}, res.errors[:3]
    assert res.faces == {1: 300}
    assert 0 < res.percentile(50) <= res.percentile(95)
    assert app.state.gate.in_flight == 0
    print(res.summary())


def test_multipart_body_parses():
    body, ctype = multipart("file", "a.png", b"\x89PNG...")
    assert ctype.startswith("multipart/form-data; boundary=")
    assert b'name="file"; filename="a.png"' in body and body.endswith(b"--\r\n")


# --------------------------------------------------------------------------------------------
# The command


def test_serve_command_refuses_a_port_in_use(small_model, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["serve", "--model", str(small_model), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ferlab serve: error: cannot listen on 127.0.0.1:") and "\n" not in err


def test_cli_start_up_imports_no_web_stack():
    code = ("import sys, ferlab.cli as c; c.build_parser(); "
            "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env={"PYTHONPATH": str(Path(cli.__file__).parents[1])})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
