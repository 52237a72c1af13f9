"""The web app, driven as a person does: a real headless Chromium on the app served on 127.0.0.1."""

import collections
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastst.app import LIVE_SIZE

pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("no Chromium (apt-get install chromium)", allow_module_level=True)

ROOT = Path(__file__).resolve().parent.parent
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--use-fake-device-for-media-stream",  # a generated camera picture
    "--use-fake-ui-for-media-stream",  # camera permission granted
]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_APP_OUTPUT: collections.deque = collections.deque(maxlen=200)  # the app's last lines, for failures


def _drain(stream) -> None:
    """Read the app's output as it comes (a pipe nobody reads fills and stalls the app)."""
    for line in stream:
        _APP_OUTPUT.append(line)


@pytest.fixture(scope="module")
def app_runs(tmp_path_factory) -> Path:
    """The app's runs folder (where a painting's own network is trained): the test's, not the project's."""
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def app_url(app_runs):
    from fastst.data import data_dir

    port = _free_port()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
        "FASTST_RUNS": str(app_runs),
    }
    if not (data_dir() / "train").is_dir() and os.environ.get("FASTST_DATA_MIRROR"):
        env["FASTST_DATA"] = os.environ["FASTST_DATA_MIRROR"]  # the training photos --refine needs
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastst", "app", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    drain = threading.Thread(target=_drain, args=(proc.stdout,), daemon=True)
    drain.start()
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                drain.join(timeout=10)  # the rest of what it said before exiting
                pytest.fail(f"the app exited: {''.join(_APP_OUTPUT)}")
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("the app did not answer within 120 s")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, permissions=["camera"])
    page = context.new_page()
    page.goto(app_url)
    page.wait_for_selector("#go")
    yield page
    context.close()


def _screenshot(page, name):
    """With FASTST_SCREENSHOTS set, the page as the test left it goes to docs/NAME.png."""
    if os.environ.get("FASTST_SCREENSHOTS"):
        page.screenshot(path=str(ROOT / "docs" / f"{name}.png"), full_page=True)


def _upload(page, path):
    page.locator("#upload input[type=file]").set_input_files(str(path))


def _result_size(page, tmp_path):
    img = page.locator("#result img")
    img.wait_for(timeout=120_000)
    src = img.get_attribute("src")
    target = tmp_path / "result.png"
    target.write_bytes(page.request.get(src).body())
    with Image.open(target) as im:
        return im.size


def test_a_photo_is_stylized_at_full_size(page, data_root, tmp_path):
    photo = sorted((data_root / "test" / "bsds500_test_subset").glob("*.jpg"))[0]
    _upload(page, photo)
    page.get_by_label("the_scream", exact=True).check()  # not a trained run of that style
    page.locator("#go").click()
    with Image.open(photo) as im:
        assert _result_size(page, tmp_path) == im.size
    _screenshot(page, "app_photo")


def _png_bomb(path, side=30000):
    """A PNG of a few hundred bytes that declares 30,000 x 30,000 pixels."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * (1 + side // 8) * 16, 9)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "name, make, message",
    [
        ("photo.jpg", lambda p: p.write_text("this is not an image\n"), "cannot read image photo.jpg"),
        ("bomb.png", _png_bomb, "image too large: bomb.png"),
        (
            "huge.jpg",
            lambda p: p.write_bytes(os.urandom(26 * 1024 * 1024)),
            "exceed the maximum allowed size",
        ),
    ],
)
def test_a_bad_upload_gets_a_message_in_the_page(page, tmp_path, name, make, message):
    bad = tmp_path / name
    make(bad)
    _upload(page, bad)
    page.locator("#go").click()
    page.get_by_text(message).first.wait_for(timeout=60_000)
    assert page.get_by_text("Traceback").count() == 0
    assert page.locator("#result img").count() == 0


def test_the_webcam_is_stylized_live_with_its_frame_rate(page):
    page.get_by_role("tab", name="Live webcam").click()
    page.get_by_label("starry_night", exact=True).check()
    camera = page.locator("#camera")
    # Chromium's fake camera: grant access, then start the stream
    camera.get_by_text("Click to Access Webcam").click()
    page.wait_for_function(  # the camera's picture is playing before the stream is started
        "() => { const v = document.querySelector('#camera video'); return v && v.readyState >= 2; }",
        timeout=60_000,
    )
    width, height = page.evaluate(
        "() => { const v = document.querySelector('#camera video'); return [v.videoWidth, v.videoHeight]; }"
    )
    camera.get_by_role("button", name="capture photo").click()
    try:
        page.wait_for_function(  # a stylized frame the browser has decoded
            "() => { const i = document.querySelector('#live img');"
            " return i && i.complete && i.naturalWidth > 0; }",
            timeout=120_000,
        )
        page.wait_for_function(
            "() => /frames per second: [0-9.]+/.test(document.querySelector('#fps').innerText)",
            timeout=120_000,
        )
    except sync_api.TimeoutError:
        pytest.fail(f"no stylized frame within 120 s; the app's last output:\n{''.join(_APP_OUTPUT)}")
    page.wait_for_timeout(3000)  # a few more frames for the screenshot
    # each frame is the camera's picture with its longer side shrunk to the app's live size
    scale = min(1.0, LIVE_SIZE / max(width, height))
    shown = page.wait_for_function(  # the frame on show, once decoded (a new one may be arriving)
        "() => { const i = document.querySelector('#live img');"
        " return i && i.complete && i.naturalWidth > 0 ? [i.naturalWidth, i.naturalHeight] : null; }",
        timeout=30_000,
    ).json_value()
    assert width > 0 and shown == [round(width * scale), round(height * scale)]
    fps = re.search(r"frames per second: ([0-9.]+)", page.locator("#fps").inner_text())
    assert fps and float(fps.group(1)) > 0, page.locator("#fps").inner_text()
    _screenshot(page, "app_webcam")


def test_any_painting_is_the_style_of_a_photo(page, data_root, tmp_path):
    photo = sorted((data_root / "test" / "bsds500_test_subset").glob("*.jpg"))[0]
    painting = tmp_path / "painting.png"
    Image.effect_noise((120, 90), 80).convert("RGB").save(painting)
    page.locator("#painting input[type=file]").set_input_files(str(painting))
    _upload(page, photo)
    page.locator("#go").click()
    with Image.open(photo) as im:
        assert _result_size(page, tmp_path) == im.size


def test_the_painting_s_colours_slider_gives_the_picture_the_painting_s_colours(page, data_root, tmp_path):
    painting = data_root / "styles" / "starry_night.jpg"
    page.locator("#painting input[type=file]").set_input_files(str(painting))
    _upload(page, painting)  # the painting itself as the photo, at the size its colour map is measured
    page.locator("#max-size input").fill("256")
    gaps, shown = {}, None
    with Image.open(painting) as im:
        target = np.asarray(im.convert("RGB"), np.float64).reshape(-1, 3).mean(0)
    for fraction in ("0", "1"):
        field = page.locator("#palette input[type=number]")
        field.fill(fraction)
        field.press("Enter")
        page.locator("#go").click()
        page.wait_for_function(  # a new result, not the one shown before
            "s => { const i = document.querySelector('#result img'); return i && i.src && i.src !== s; }",
            arg=shown,
            timeout=120_000,
        )
        shown = page.locator("#result img").get_attribute("src")
        (tmp_path / "result.png").write_bytes(page.request.get(shown).body())
        with Image.open(tmp_path / "result.png") as im:
            gaps[fraction] = np.abs(np.asarray(im.convert("RGB"), np.float64).reshape(-1, 3).mean(0) - target)
    # as fastst stylize --palette: all the way, the painting's own picture takes the painting's colour mean
    assert gaps["1"].max() < 3 and gaps["0"].max() > 10, gaps


def test_a_painting_gets_its_own_network_on_a_click_which_the_photo_then_uses(
    page, data_root, tmp_path, app_runs
):
    if not (data_root / "train").is_dir():
        pytest.skip("no training photos: run 'python -m fastst data fetch'")
    photo = sorted((data_root / "test" / "bsds500_test_subset").glob("*.jpg"))[0]
    painting = tmp_path / "painting.png"
    Image.effect_noise((120, 90), 80).convert("RGB").save(painting)
    page.locator("#painting input[type=file]").set_input_files(str(painting))
    page.locator("#refine").click()
    page.get_by_text("its own network is ready").first.wait_for(timeout=600_000)
    assert len(list((app_runs / "refined").glob("*/model.pth"))) == 1
    _upload(page, photo)
    page.locator("#go").click()
    with Image.open(photo) as im:
        assert _result_size(page, tmp_path) == im.size
    page.locator("#painting button[aria-label='Clear']").first.click(timeout=5_000)
    page.locator("#refine").click()  # no painting: a message, no training
    page.get_by_text("upload a painting first").first.wait_for(timeout=60_000)


def test_a_bad_painting_gets_a_message_in_the_page(page, data_root, tmp_path):
    photo = sorted((data_root / "test" / "bsds500_test_subset").glob("*.jpg"))[0]
    bad = tmp_path / "painting.jpg"
    bad.write_text("this is not an image\n")
    page.locator("#painting input[type=file]").set_input_files(str(bad))
    _upload(page, photo)
    page.locator("#go").click()
    page.get_by_text("cannot read image painting.jpg").first.wait_for(timeout=60_000)
    assert page.get_by_text("Traceback").count() == 0
    assert page.locator("#result img").count() == 0
