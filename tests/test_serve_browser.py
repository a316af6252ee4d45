"""`ferlab serve` in a real browser: Debian's chromium driven by playwright, on the bundled model
and the bundled astronaut photo. Upload, boxes, bars, explanations, the JSON link, the webcam
(Chromium's fake camera), no console error; a screenshot for a person to look at."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")

from ferlab import cli  # noqa: E402
from ferlab.serve import ServeLimits, create_app, serving  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ASTRONAUT = Path(cli.__file__).parent / "assets" / "astronaut.jpg"
SHOTS = REPO / "build" / "test-serve"
# The flags every ferlab test runs chromium with (nothing fetched, no sandbox as root), and
# Chromium's fake camera and permission prompt, so the webcam path runs too.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def site():
    with serving(create_app("bundled", ServeLimits(workers=1), warm_up=False)) as url:
        yield url


@pytest.fixture(scope="module")
def browser(chromium):
    # Playwright's driver ships in its wheel; the browser is Debian's, never a download.
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_api.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=chromium, headless=True,
                                  args=CHROMIUM_FLAGS + FAKE_CAMERA)
        except sync_api.Error as e:
            pytest.skip(f"playwright cannot drive {chromium}: {str(e).splitlines()[0]}")
        yield b
        b.close()


def poll(ready, timeout_s: float = TIMEOUT_MS / 1000) -> None:
    # Not page.wait_for_function: it evaluates a string in the page, which the page's
    # Content-Security-Policy (no eval) rightly refuses, and the test keeps that policy on.
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def download_json(page) -> dict:
    with page.expect_download(timeout=TIMEOUT_MS) as dl:
        page.click("#download")
    assert dl.value.suggested_filename == "faces.json"
    return json.loads(Path(dl.value.path()).read_text())


def test_the_page_works_end_to_end(browser, site):
    page = browser.new_page(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(site + "/", timeout=TIMEOUT_MS)

    # Which model and precision ran, from /api/model.
    info = json.loads(page.evaluate("fetch('/api/model').then(r => r.text())"))
    page.wait_for_selector("#precision", timeout=TIMEOUT_MS)
    assert page.text_content("#precision") == info["precision"] in ("bf16", "fp32", "int8")
    assert page.text_content("#model-name") == "bundled"

    # Pick the photo: a box and a card with seven bars appear.
    page.set_input_files("#file", str(ASTRONAUT))
    page.wait_for_selector(".box", timeout=TIMEOUT_MS)
    assert page.locator(".box").count() == 1 and page.locator(".face-card").count() == 1
    fills = page.locator(".face-card .fill")
    assert fills.count() == 7
    widths = [float(fills.nth(i).evaluate("e => parseFloat(e.style.width)")) for i in range(7)]
    assert sum(widths) == pytest.approx(100, abs=1.0)
    tag = page.text_content(".box .tag")
    label = tag.split()[1]
    assert label in info["classes"]
    assert widths[info["classes"].index(label)] == max(widths)
    box = page.locator(".box").bounding_box()
    photo = page.locator("#photo").bounding_box()
    assert box["width"] > 0.1 * photo["width"] and box["x"] > photo["x"]  # on her face, not 0x0

    # The JSON link downloads the API's answer.
    saved = download_json(page)
    assert saved["model"] == "bundled" and saved["photos"][0]["photo"] == "astronaut.jpg"
    assert saved["photos"][0]["faces"][0]["label"] == label

    # Switch explanations: each one's overlay replaces the last.
    for method in ("gradcam", "lime", "saliency"):
        page.click(f".face-card button[data-method={method}]")
        page.wait_for_selector(f"img.overlay[data-method={method}]", state="visible",
                               timeout=TIMEOUT_MS)
        assert page.locator("img.overlay").evaluate("i => i.naturalWidth") == 192
        assert "computed in" in page.text_content(".face-card .note")
    page.click(".face-card button[data-method=gradcam]")  # the screenshot shows Grad-CAM
    page.wait_for_selector("img.overlay[data-method=gradcam]", state="visible")

    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "serve-page.png"), full_page=True)
    im = np.asarray(Image.open(SHOTS / "serve-page.png").convert("L"))
    assert im.std() > 10  # not a blank page
    print(f"screenshot in {SHOTS / 'serve-page.png'}")

    # The webcam: Chromium's fake camera has no face in it, and the page says so.
    page.click("#camera-start")
    poll(lambda: page.evaluate("document.getElementById('video').videoWidth") > 0)
    page.click("#snap")
    page.wait_for_selector("#summary:has-text('webcam.jpg')", timeout=TIMEOUT_MS)
    assert page.locator(".box").count() == len(download_json(page)["photos"][0]["faces"])
    page.click("#camera-stop")

    assert problems == []
    # Everything came from ferlab's own server (no CDN): the page works offline.
    assert all(u.startswith((site, "blob:", "data:")) for u in requested), requested
    page.close()


def test_a_bad_file_shows_the_servers_message(browser, site, tmp_path):
    page = browser.new_page()
    page.goto(site + "/", timeout=TIMEOUT_MS)
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    page.set_input_files("#file", str(bad))
    page.wait_for_selector("#status.error", timeout=TIMEOUT_MS)
    assert "not a photo" in page.text_content("#status")
    page.close()
