"""The JSON the API answers with, as pydantic models: they are its OpenAPI spec.

A photo's answer has exactly the shape of ``ferlab predict --image PHOTO --json``:
``{"model", "photos": [{"photo", "width", "height", "faces": [{"box", "detector", "label",
"probabilities"}]}]}`` (:func:`ferlab.faces.recognizer.photo_record`), with one photo.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class BoxOut(BaseModel):
    x: int
    y: int
    w: int
    h: int


class FaceOut(BaseModel):
    box: BoxOut = Field(description="where the face is, in the photo's pixels")
    detector: str = Field(description="who found it: blazeface, frontal, profile or whole")
    label: str = Field(description="the most probable emotion")
    probabilities: dict[str, float] = Field(description="emotion -> probability, class order")


class PhotoOut(BaseModel):
    photo: str = Field(description="the uploaded file's name (a label only, never opened)")
    width: int
    height: int
    faces: list[FaceOut] = Field(description="largest face first")


class AnalyzeOut(BaseModel):
    model: str
    photos: list[PhotoOut]


class ExplainOut(BaseModel):
    method: str
    face: int = Field(description="index of the face in the photo's answer")
    label: str = Field(description="the face's predicted emotion")
    target: str = Field(description="the emotion explained (the predicted one)")
    size: int = Field(description="side of the map, the 48x48 face the model saw")
    heatmap: list[list[float]] = Field(description="|map| scaled to 0..1, rows of the face")
    overlay: str = Field(description="JPEG data URL: the map over the face, 192 px")
    seconds: float = Field(description="time the explanation took on the server")


class LimitsOut(BaseModel):
    max_upload_bytes: int
    max_pixels: int
    timeout_s: float
    max_concurrent: int
    workers: int


class ModelOut(BaseModel):
    model: str = Field(description="the model as given to ferlab serve --model")
    architecture: str
    parameters: int
    precision: str = Field(description="what photos are classified in: bf16, fp32 or int8")
    runtime: str = Field(description="who classifies them: torch or onnx (ONNX Runtime)")
    bf16_native: bool = Field(description="whether this CPU computes bfloat16 natively")
    detector: str
    classes: list[str]
    colors: dict[str, str] = Field(description="emotion -> colour of its box and bar")
    methods: list[str] = Field(description="explanation methods of /api/explain")
    limits: LimitsOut
    version: str


class HealthOut(BaseModel):
    status: str
    in_flight: int
    capacity: int


class ErrorOut(BaseModel):
    error: str = Field(description="what was wrong, in one line")
