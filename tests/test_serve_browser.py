"""`nst serve`'s page in a real browser: Playwright driving the system's chromium (Debian's
`chromium` package; Playwright's own browser download is never used). It uploads the example
images (chosen, an example button, dragged and dropped), starts a 10-iteration job, sees the
image and the loss curve update, downloads the PNG, and compares. Skipped where chromium or
Playwright is absent. With NST_SCREENSHOT set, the page's screenshot is saved there (PNG, or
JPEG at quality 60 for .jpg: the README's, docs/serve.jpg, stays under 150 KB)."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest
from PIL import Image

from nst.runtime.config import DEFAULT_WEIGHTS

pytest.importorskip("starlette")
sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("NST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
EXAMPLES = Path(__file__).resolve().parents[1] / "nst" / "serve" / "static" / "examples"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")

# Records every frame the page shows and every length the total's curve had, as they happen.
OBSERVE = """
window.__frames = [];
window.__curve = [];
new MutationObserver(() => {
  const front = document.querySelector('#frame img.front');
  if (front && front.getAttribute('src') && window.__frames.at(-1) !== front.src) window.__frames.push(front.src);
}).observe(document.getElementById('frame'), {attributes: true, subtree: true});
new MutationObserver(() => {
  const line = document.querySelector('#curve polyline[data-term=total]');
  const n = line ? line.getAttribute('points').split(' ').length : 0;
  if (window.__curve.at(-1) !== n) window.__curve.push(n);
}).observe(document.getElementById('curve'), {childList: true, subtree: true});
"""

# A DataTransfer holding one file, as a drag from the desktop brings it.
DROP = """async (url) => {
  const blob = await (await fetch(url)).blob();
  const transfer = new DataTransfer();
  transfer.items.add(new File([blob], url.split('/').pop(), {type: blob.type}));
  return transfer;
}"""


@pytest.fixture
def server(vgg19_onnx, tmp_path):
    """The app as `nst serve` runs it, with uvicorn on a free port, in a thread."""
    from nst.runtime.stylize import Stylizer
    from nst.serve.app import create_app
    from nst.serve.gallery import Gallery
    from nst.serve.runner import JobQueue
    from nst.serve.server import Server, bind, url

    queue = JobQueue([Stylizer(vgg19_onnx, device="cpu")], Gallery(tmp_path / "gallery"))
    app = create_app(queue, queue=queue, info={"mode": "serve", "model": vgg19_onnx.name, "devices": ["cpu"]})
    sock = bind("127.0.0.1", 0)
    uvicorn = Server(app)
    thread = threading.Thread(target=uvicorn.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield url("127.0.0.1", sock.getsockname()[1])
    uvicorn.should_exit = True  # its shutdown stops the queue and waits for the worker
    thread.join(timeout=30)


@pytest.fixture
def page(tmp_path):
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=ARGS, accept_downloads=True,
            viewport={"width": 1400, "height": 1000},
        )  # fmt: skip
        try:
            yield context.new_page()
        finally:
            context.close()


def test_upload_run_watch_download_and_compare_in_chromium(server, page, tmp_path):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server)
    page.wait_for_selector("#opt-iterations")
    page.evaluate(OBSERVE)

    # The content through the file input, the style through its example button (fetched and uploaded).
    page.set_input_files("#content-file", str(EXAMPLES / "astronaut.jpg"))
    page.click("#style-examples button[data-example='hubble-deep-field.jpg']")
    page.wait_for_selector("#style-thumbs img")
    dropped = page.evaluate_handle(DROP, "/static/examples/chelsea.jpg")  # a second style, dragged in
    page.dispatch_event("#style-drop", "drop", {"dataTransfer": dropped})
    page.wait_for_function("document.querySelectorAll('#style-thumbs img').length === 2")
    assert page.locator("#content-thumbs img").count() == 1
    page.fill("#opt-iterations", "10")
    page.fill("#opt-size", "160")  # slow enough, even on a fast machine, for several frames
    page.fill("#opt-seed", "7")
    page.locator("#balance").fill("1")  # style ×10
    # Loss scale auto on a random VGG-19 is balanced: the slider scales its style weight.
    assert page.input_value("#opt-style_weight") == f"{DEFAULT_WEIGHTS['balanced'][1] * 10:g}"
    page.click("#start")

    page.wait_for_function("document.getElementById('status').textContent.includes('done')", timeout=120_000)
    assert page.text_content("#iteration") == "10 / 10"
    page.wait_for_function("window.__frames.at(-1).endsWith('v=final-done')")  # the finished PNG, swapped in
    frames = page.evaluate("window.__frames")
    curve = page.evaluate("window.__curve")
    assert len(frames) >= 2, frames  # the image changed while it ran
    assert len(curve) >= 2 and curve == sorted(curve) and curve[-1] == 10, curve  # the curve grew, to 10 points
    assert set(page.locator("#curve polyline").evaluate_all("ls => ls.map(l => l.dataset.term)")) == {
        "total", "content", "style", "tv"}  # fmt: skip
    page.wait_for_selector("#gallery .card img")
    shot = os.environ.get("NST_SCREENSHOT") or str(tmp_path / "serve.png")
    page.screenshot(path=shot, **({"quality": 60} if shot.endswith((".jpg", ".jpeg")) else {}))

    with page.expect_download() as download:
        page.click("#download")
    saved = tmp_path / "result.png"
    download.value.save_as(saved)
    with Image.open(saved) as result:
        parameters = json.loads(result.text["nst:parameters"])
        assert result.size == (160, 160)
    assert (
        parameters["iterations"] == 10
        and parameters["seed"] == 7
        and parameters["style_weight"] == DEFAULT_WEIGHTS["balanced"][1] * 10
    )
    assert parameters["content"] == "astronaut.jpg" and parameters["styles"] == ["hubble-deep-field.jpg", "chelsea.jpg"]

    page.click("#gallery .card button:text-is('A')")
    page.click("#gallery .card button:text-is('B')")
    assert page.is_visible("#compare-side img#compare-a1")
    assert page.is_hidden("#compare-slider")
    page.check("input[name=compare-mode][value=slider]")
    assert page.is_hidden("#compare-side") and page.is_visible("#compare-slider")
    page.locator("#compare-position").fill("30")
    assert page.get_attribute("#compare-a2", "style") == "clip-path: inset(0px 70% 0px 0px);"
    assert errors == []
