"""ferlab report: every section, every image decodes, zh headings, opens in headless Chromium."""

from __future__ import annotations

import base64
import io
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferlab.cli import main
from ferlab.config import AugmentConfig, DataConfig, ModelConfig, RunConfig, TrainConfig
from ferlab.data import make_split
from ferlab.models import create_model
from ferlab.report import SECTION_IDS, Section, figure, para, render_page, write_report
from ferlab.report.layers import layer_table
from ferlab.report.numbers import overfitting_episode, top_confusions
from ferlab.report.text import STRINGS, tr
from ferlab.synthetic import make_split_faces, write_fer2013_csv
from ferlab.training.loop import train

QUICK = {"filter_steps": 4, "lime_samples": 32, "faces_per_class": 20}
REPO = Path(__file__).resolve().parents[1]


class _Page(HTMLParser):
    """Sections (id, h2 text), image sources and every URL-valued attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.h2: list[str] = []
        self.images: list[str] = []
        self.urls: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id", ""))
        if tag == "h2":
            self._in_h2 = True
            self.h2.append("")
        if tag == "img":
            self.images.append(a["src"])
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data):
        if self._in_h2:
            self.h2[-1] += data


def parse(html: str) -> _Page:
    p = _Page()
    p.feed(html)
    return p


@pytest.fixture(scope="session")
def report_runs(tmp_path_factory):
    """Two tiny runs (cnn-leaky and dnn, 2 epochs) on synthetic faces, and their data file."""
    root = tmp_path_factory.mktemp("report")
    faces = make_split_faces(280, 70, seed=0)
    csv = write_fer2013_csv(faces, root / "fer2013.csv")
    data = make_split(faces, "usage")
    no_aug = AugmentConfig(flip=False, shift=0, rotation=0, zoom=0)
    runs = {}
    for name, model, kwargs in (("cnn", "cnn-leaky", {"widths": [8, 16, 16, 16], "hidden": 32}),
                                ("dnn", "dnn", {"hidden": [64, 64]})):
        cfg = RunConfig(DataConfig(path=str(csv)), ModelConfig(model, kwargs), no_aug,
                        TrainConfig(epochs=2, batch_size=32, lr=3e-3, weight_decay=1e-4))
        runs[name] = train(cfg, root / name, data=data, progress=False, log=lambda s: None)
    return {"root": root, "csv": csv, **runs}


@pytest.fixture(scope="session")
def report_build(report_runs):
    """The report of the cnn run beside the dnn run, and the lines it logged as it went."""
    r, lines = report_runs, []
    out = write_report(r["root"] / "report.html", [r["cnn"]], compare=[r["dnn"]], data=r["csv"],
                       progress=False, effort=QUICK, log=lines.append)
    return out, lines


@pytest.fixture(scope="session")
def report_html(report_build):
    return report_build[0]


def test_report_says_what_it_is_doing_section_by_section(report_build):
    lines = report_build[1]
    n = len(SECTION_IDS)
    # Loading errors stay one line on stderr: the first line comes once the faces are read.
    assert lines[0].startswith("evaluating cnn on 70 faces (1/2)")
    for i, sid in enumerate(SECTION_IDS, 1):
        start = lines.index(f"section {i}/{n}: {sid} ...")
        assert re.match(rf"section {i}/{n}: {sid}: \d+ blocks in [\d.]+ s$", lines[start + 1]
                        ) or sid == "explanations", lines[start:start + 2]
    explain = lines.index(f"section 7/{n}: explanations ...")
    assert any("LIME" in ln for ln in lines[explain:])  # and step by step inside it


def test_every_section_is_there_in_order(report_html):
    page = parse(report_html.read_text(encoding="utf-8"))
    assert page.sections == list(SECTION_IDS)
    assert page.h2[1:] == [STRINGS["en"][s] for s in SECTION_IDS]  # h2[0] is the contents


def test_sections_hold_their_content(report_html):
    html = report_html.read_text(encoding="utf-8")
    chunks = dict(re.findall(r'<section id="([a-z]+)">(.*?)</section>', html, re.S))
    # Sections with their inputs given hold figures, not a "missing" note.
    for sid in ("data", "models", "training", "results", "mistakes"):
        assert 'class="note"' not in chunks[sid], sid
    for sid in ("data", "training", "results", "explanations"):
        assert "<img" in chunks[sid], sid
    # One run given: the ensemble section says how to get one; no augmentation pair either.
    assert tr("en", "need_two") in chunks["ensembles"]
    assert tr("en", "no_aug_pair") in chunks["augmentation"]
    for h in ("saliency", "filters", "feature_maps", "filter_emotion", "lime", "gradcam",
              "checks"):
        assert f"<h3>{tr('en', h)}</h3>" in chunks["explanations"], h
    # Observations are generated from the numbers.
    assert re.search(r"dnn: \w+ is most often taken for \w+: \d+%", html)
    assert re.search(r"best validation accuracy \d+\.\d% at epoch [12] of 2", html)


def test_every_image_decodes_and_nothing_is_fetched(report_html):
    page = parse(report_html.read_text(encoding="utf-8"))
    assert len(page.images) >= 15
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        im = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        im.load()
        assert im.width > 20 and im.height > 20
    # Self-contained: every link is an in-page anchor or a data: URI.
    assert all(u.startswith(("#", "data:")) for u in page.urls), [u[:40] for u in page.urls]


def test_zh_headings_without_data_via_cli(report_runs, capsys):
    r = report_runs
    out = r["root"] / "report-zh.html"
    code = main(["report", str(r["cnn"]), "--compare", str(r["dnn"]), "--lang", "zh",
                 "--out", str(out)])
    assert code == 0
    captured = capsys.readouterr()
    assert "wrote" in captured.out
    # The command says on stderr what it is doing, section by section.
    started = [ln for ln in captured.err.splitlines() if ln.endswith(" ...")]
    assert started == [f"ferlab report: section {i}/{len(SECTION_IDS)}: {sid} ..."
                       for i, sid in enumerate(SECTION_IDS, 1)]
    html = out.read_text(encoding="utf-8")
    page = parse(html)
    assert page.h2[1:] == [STRINGS["zh"][s] for s in SECTION_IDS]
    assert '<html lang="zh-CN">' in html
    # No --data: the sections that need faces say so instead of failing.
    assert html.count(tr("zh", "no_data")) >= 4
    assert "<img" in html.split('id="training"')[1]  # curves need no faces


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such run folder" in err
    assert not (tmp_path / "r.html").exists()


def test_render_page_escapes_and_inlines():
    s = Section("x", "<b>title</b>").add(para("a < b & <script>alert(1)</script>"))
    png = io.BytesIO()
    Image.new("L", (30, 20), 128).save(png, format="PNG")
    s.add(figure(png.getvalue(), "grey"))
    html = render_page("T <i>", [s], lang="en")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'width="30" height="20"' in html
    assert "<style>" in html and "@media print" in html
    style = html.split("<style>")[1].split("</style>")[0]
    assert '"Liberation Sans"' in style and "&#34;" not in style  # CSS is not HTML-escaped
    with pytest.raises(ValueError):
        render_page("t", [Section("a", "A"), Section("a", "B")])


def test_layer_table_shapes_and_hooks_removed():
    model = create_model("cnn-leaky").train()
    rows = layer_table(model)
    assert rows[0] == ("body.0.0", "Conv2d", "32×48×48", 32 * 25 + 32)
    assert rows[-1][1:3] == ("Linear", "7")
    assert sum(r[3] for r in rows) == sum(p.numel() for p in model.parameters())
    assert model.training  # mode restored
    assert all(not m._forward_hooks for m in model.modules())


def test_observation_numbers():
    cm = np.diag([50] * 7)
    cm[2, 4] = 22  # fear taken for sad
    cm[2, 2] = 78
    assert top_confusions(cm, 1) == [(2, 4, 0.22)]
    assert tr("en", "obs_confused", true="fear", pred="sad", rate=0.22) == \
        "fear is most often taken for sad: 22%."
    h = [dict(epoch=1, val_loss=1.0, val_acc=0.50, wrong_confidence=0.50),
         dict(epoch=2, val_loss=0.9, val_acc=0.55, wrong_confidence=0.52),
         dict(epoch=3, val_loss=1.1, val_acc=0.58, wrong_confidence=0.61),
         dict(epoch=4, val_loss=1.3, val_acc=0.57, wrong_confidence=0.66)]
    ep = overfitting_episode(h)
    assert (ep["e0"], ep["e1"], ep["c0"], ep["c1"]) == (2, 3, 0.52, 0.61)
    assert overfitting_episode(h[:2]) is None


def test_en_and_zh_have_the_same_words():
    assert set(STRINGS["en"]) == set(STRINGS["zh"])
    for k, v in STRINGS["en"].items():
        fields = set(re.findall(r"{(\w+)", v))
        assert fields == set(re.findall(r"{(\w+)", STRINGS["zh"][k])), k


# --------------------------------------------------------------------------------------------
# Headless Chromium


def _chromium(exe: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", f"--user-data-dir={tmp / 'profile'}",
             "--enable-logging=stderr", "--v=0"]
    return subprocess.run([exe, *flags, *args], capture_output=True, text=True, timeout=300)


def test_opens_in_headless_chromium_without_console_errors(chromium, report_html,
                                                          tmp_path):
    url = report_html.resolve().as_uri()
    dom = _chromium(chromium, tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # The page has no scripts, so any console message is an error (a failed load, bad markup).
    console = [ln for ln in dom.stderr.splitlines() if "CONSOLE" in ln]
    assert not console, console
    page = parse(dom.stdout)
    assert page.sections == list(SECTION_IDS)

    # A screenshot for a person to look at (build/ is ignored by git).
    shots = REPO / "build" / "test-report"
    shots.mkdir(parents=True, exist_ok=True)
    for name, size in (("report-desktop.png", "1200,3000"), ("report-phone.png", "412,2400")):
        shot = _chromium(chromium, tmp_path, f"--window-size={size}",
                         f"--screenshot={shots / name}", url)
        assert shot.returncode == 0, shot.stderr[-2000:]
        im = np.asarray(Image.open(shots / name).convert("L"))
        assert im.std() > 10  # not a blank page
    print(f"screenshots in {shots}")


def test_overfitting_subsection_only_where_it_happens(report_runs, report_html):
    from ferlab.runs import read_history

    html = report_html.read_text(encoding="utf-8")
    training = html.split('<section id="training">')[1].split("</section>")[0]
    episodes = [overfitting_episode(read_history(report_runs[n])) for n in ("cnn", "dnn")]
    assert (tr("en", "overfitting") in training) == any(e is not None for e in episodes)
    assert tr("en", "cap_curves") in training and "solid" in tr("en", "cap_curves")
    flat = [{**r, "val_loss": 1.0 - 0.1 * r["epoch"]} for r in read_history(report_runs["cnn"])]
    assert overfitting_episode(flat) is None  # loss falling throughout: nothing to explain
