"""The FastAPI app of ``ferlab serve``: a page, and a JSON API the page uses.

FastAPI (on Starlette, served by uvicorn) because typed routes give an OpenAPI spec for free,
which the tests hold the API to with schemathesis, and python-multipart parses uploads.

Routes (``/openapi.json`` documents those under ``/api``):

* ``GET /``: the page (``static/``, served from memory: no path from a client is ever opened).
* ``POST /api/analyze``: a photo in (multipart field ``file``), its faces out, in the shape of
  ``ferlab predict --image PHOTO --json``.
* ``POST /api/explain?face=I&method=M``: the same photo and one face's explanation (saliency,
  gradcam or lime) as a 48x48 map and an overlay image. The server keeps nothing between requests,
  so the page sends the photo again: it is re-analysed (tens of milliseconds) and nothing
  uploaded is stored, on disk or in memory.
* ``GET /api/model``: which model, which precision, which limits. ``GET /api/health``.

Every error is JSON ``{"error": "..."}`` with a 4xx status (503/504 when busy or too slow).

Example:
    >>> app = create_app("bundled")                                     # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)                   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import re
import time
from importlib import resources
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, File, Query, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartParser

from .. import __version__, precision
from ..constants import EMOTIONS, IMAGE_SIZE
from ..errors import FerlabError
from ..faces.draw import COLORS
from ..faces.photo import load_photo
from ..faces.recognizer import Recognizer, photo_record
from . import schemas
from .limits import Gate, LimitsMiddleware, ServeLimits, UploadRefused, check_photo
from .overlay import data_url, normalized_magnitude, overlay_jpeg
from .workers import JobTimeout, RecognizerPool

log = logging.getLogger("ferlab.serve")

METHODS = ("saliency", "gradcam", "lime")  # the page's three; /api/explain takes these
Method = Literal["saliency", "gradcam", "lime"]
MAX_FACE_INDEX = 255
PHOTO_HELP = "a JPEG, PNG, WebP, GIF, BMP or TIFF photo"
STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}

_ERRORS = {code: {"model": schemas.ErrorOut, "description": text} for code, text in (
    (400, "the request body cannot be parsed"),
    (408, "the body did not arrive in time"),
    (413, "the upload or the photo is too large"),
    (415, "the upload is not a photo this server reads"),
    (422, "a field is missing or out of range, or the photo cannot be decoded"),
    (503, "the server is busy (try again)"),
    (504, "the answer took longer than the server's timeout"),
)}


def upload_name(filename: str | None) -> str:
    """A label for an uploaded file: its base name, printable, at most 120 characters.

    The name is only echoed in the answer (``"photo"``), never used as a path.

    Example:
        >>> upload_name("../../etc/passwd"), upload_name(None), upload_name("C:\\\\x\\\\me.jpg")
        ('passwd', 'upload', 'me.jpg')
    """
    name = PurePosixPath((filename or "").replace("\\", "/")).name
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip()[:120]
    return name or "upload"


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#" + "".join(f"{c:02x}" for c in rgb)


def model_info(rec: Recognizer, limits: ServeLimits, workers: int, detector: str) -> dict:
    """What ``GET /api/model`` answers: the model, its precision, the server's limits."""
    from ..evaluate import model_description  # scikit-learn, only for this one answer

    return {
        "model": rec.model_name,
        "architecture": model_description(rec.model),
        "parameters": int(sum(p.numel() for p in rec.model.parameters())),
        # What Recognizer.classify actually runs: torch in bf16 or fp32, or ONNX Runtime's
        # graph (int8 for the bundled model), as ferlab.runtime.choice picked for this CPU.
        "precision": rec.computes_in,
        "runtime": rec.runtime,
        "bf16_native": precision.bf16_is_native(),
        "detector": detector,
        "classes": list(EMOTIONS),
        "colors": {e: _hex(COLORS[e]) for e in EMOTIONS},
        "methods": list(METHODS),
        "limits": {**limits.as_dict(), "workers": workers},
        "version": __version__,
    }


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors():
        loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query")]
        parts.append(f"{'.'.join(loc) or 'request'}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _static_files() -> dict[str, bytes]:
    root = resources.files("ferlab.serve") / "static"
    return {name: (root / name).read_bytes() for name in ("index.html", *STATIC)}


def create_app(model: Any = "bundled", limits: ServeLimits | None = None, *,
               detector: str | None = None, warm_up: bool = True,
               **recognizer_options: Any) -> FastAPI:
    """The app, with its models loaded (one per worker, see :class:`RecognizerPool`).

    Args:
        model: ``"bundled"``, a model file, a run or ensemble folder.
        limits: upload, pixel, time and concurrency limits (:class:`ServeLimits`).
        detector: face detector, as in :class:`~ferlab.faces.recognizer.Recognizer`.
        warm_up: run every model and explainer once before serving (see
            :class:`RecognizerPool`); tests that time nothing can skip it.
        recognizer_options: further Recognizer options (``bf16=``, ``min_face=``).

    Raises:
        FerlabError: the model cannot be loaded.
    """
    limits = limits or ServeLimits()
    workers = limits.worker_count(os.cpu_count())
    pool = RecognizerPool(model, workers, warm_up=warm_up, methods=METHODS, detector=detector,
                          **recognizer_options)
    gate = Gate(limits.max_concurrent)
    info = model_info(pool.first, limits, workers, detector or "auto")
    files = _static_files()
    # Starlette keeps an uploaded file in memory up to this size and writes the rest to a
    # temporary file; the body is already capped at max_upload_bytes, so with this nothing
    # uploaded ever reaches the disk.
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size,
                                         limits.max_upload_bytes + 1)

    app = FastAPI(title="ferlab serve", version=__version__,
                  docs_url=None, redoc_url=None,  # their pages load scripts from a CDN
                  description="Faces and their emotions in a photo, and why: the API of "
                              "`ferlab serve`. Errors are `{\"error\": \"...\"}`.")
    app.state.pool, app.state.gate, app.state.limits, app.state.info = pool, gate, limits, info

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request, exc: RequestValidationError):
        return _error(422, _validation_message(exc))

    @app.exception_handler(HTTPException)
    async def _http(_request, exc: HTTPException):
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _bug(_request, exc: Exception):  # a bug in ferlab: logged, answered in one line
        log.exception("internal error")
        return _error(500, f"internal error: {type(exc).__name__}")

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return Response(files["index.html"], media_type="text/html; charset=utf-8")

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        # A fixed table of files read at start-up: the name only picks an entry.
        if name not in STATIC:
            return _error(404, "no such file")
        return Response(files[name], media_type=STATIC[name])

    @app.get("/api/health", response_model=schemas.HealthOut, summary="Is the server up")
    async def health() -> dict:
        return {"status": "ok", "in_flight": gate.in_flight, "capacity": gate.capacity}

    @app.get("/api/model", response_model=schemas.ModelOut,
             summary="The model, its precision and the server's limits")
    async def model_route() -> dict:
        return info

    async def _run(job) -> Any:
        try:
            return await pool.run(job, limits.timeout_s)
        except UploadRefused as e:
            return _error(e.status, e.message)
        except JobTimeout as e:
            return _error(504, str(e))
        except FerlabError as e:  # a photo whose header reads but whose pixels do not
            return _error(422, f"file: {' '.join(str(e).split())}")

    def _faces(rec: Recognizer, data: bytes, name: str):
        check_photo(data, limits.max_pixels)
        return rec.analyze(load_photo(data, name=name))

    @app.post("/api/analyze", response_model=schemas.AnalyzeOut, responses=_ERRORS,
              summary="Detect and classify every face in a photo")
    async def analyze(file: Annotated[UploadFile, File(description=PHOTO_HELP)]) -> Any:
        """Faces, largest first: box, detector, label and the seven probabilities, in the
        shape of ``ferlab predict --image PHOTO --json``."""
        data, name = await file.read(), upload_name(file.filename)

        def job(rec: Recognizer) -> dict:
            photo, faces = _faces(rec, data, name)
            return {"model": rec.model_name, "photos": [photo_record(name, photo, faces)]}

        return await _run(job)

    @app.post("/api/explain", response_model=schemas.ExplainOut, responses=_ERRORS,
              summary="Explain one face of a photo with one method")
    async def explain(
            file: Annotated[UploadFile, File(description=PHOTO_HELP)],
            face: Annotated[int, Query(ge=0, le=MAX_FACE_INDEX,
                                       description="index of the face in analyze's answer")] = 0,
            method: Annotated[Method, Query(description="saliency, gradcam or lime")] = "gradcam",
    ) -> Any:
        """Where the model looks for the face's predicted emotion: a 48x48 map (magnitude,
        scaled to 0..1) and a JPEG of it over the face."""
        data, name = await file.read(), upload_name(file.filename)

        def job(rec: Recognizer) -> dict:
            _photo, faces = _faces(rec, data, name)
            if face >= len(faces):
                raise UploadRefused(422, f"face: the photo has {len(faces)} face"
                                         f"{'' if len(faces) == 1 else 's'}, no face {face}")
            f = faces[face]
            start = time.perf_counter()
            heat = normalized_magnitude(rec.explain(f, method))
            seconds = time.perf_counter() - start
            return {"method": method, "face": face, "label": f.label, "target": f.label,
                    "size": IMAGE_SIZE, "heatmap": np.round(heat, 3).tolist(),
                    "overlay": data_url(overlay_jpeg(f.crop, heat)),
                    "seconds": round(seconds, 4)}

        return await _run(job)

    app.add_middleware(LimitsMiddleware, limits=limits, gate=gate)
    return app
