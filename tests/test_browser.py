"""The drawing page in a real browser: headless Chromium draws digits and reads the answer.

The page is also checked by axe-core (vendored by the axe-playwright-python package: no
network) at desktop and phone size, laid out for a 390x844 phone, and used by keyboard alone.

Needs Debian's Chromium (/usr/bin/chromium; never ``playwright install``: no network) and a
model that reads hand-drawn digits: the shipped model if installed, else a cnn trained for
one epoch on 10,000 real MNIST images (about 10 s; needs $MNISTLAB_DATA). Screenshots go to
$MNISTLAB_TEST_ARTIFACTS (default
$TMPDIR/mnistlab-test-artifacts) for a person to look at.
"""

import math
import os
import socket
import tempfile
import threading
import time

import pytest

from tests.conftest import real_data_path

CHROMIUM = "/usr/bin/chromium"
# outside the repository (no test writes into it); MNISTLAB_TEST_ARTIFACTS names another folder
ARTIFACTS = os.environ.get("MNISTLAB_TEST_ARTIFACTS") or os.path.join(
    tempfile.gettempdir(), "mnistlab-test-artifacts"
)
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}  # CSS pixels of a current phone held upright
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason=f"{CHROMIUM} is absent: apt-get install chromium to run the browser test",
    ),
]


@pytest.fixture(scope="module")
def drawing_model(tmp_path_factory):
    """A model that recognises drawn digits: the shipped one, else one trained briefly."""
    from mnistlab.models.saved import PRETRAINED_MODEL

    if os.path.exists(PRETRAINED_MODEL):
        return None
    if not real_data_path():
        pytest.skip("no shipped model and no MNIST ($MNISTLAB_DATA) to train one on")
    import mnistlab
    from mnistlab.data.mnist import load_mnist

    (x_train, y_train), (x_test, y_test) = load_mnist()
    folder = str(tmp_path_factory.mktemp("browser") / "cnn")
    data = ((x_train[:10000], y_train[:10000]), (x_test[:1000], y_test[:1000]))
    mnistlab.train("cnn", data=data, out=folder, epochs=1, val_size=500, verbose=0)
    return folder


@pytest.fixture(scope="module")
def server_url(drawing_model):
    """The app served by uvicorn on a free loopback port, in a thread of this process."""
    import uvicorn

    from mnistlab.serving.inference import load_predictor
    from mnistlab.serving.serve import create_app

    app = create_app(load_predictor(drawing_model))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def page(server_url, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    profile = str(tmp_path_factory.mktemp("chromium-profile"))  # fresh: no state, no sync
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=DESKTOP,
            reduced_motion="reduce",  # no transitions: what axe measures is what stays shown
        )
        page = context.pages[0] if context.pages else context.new_page()
        page.problems = []  # console errors, page errors, requests to other hosts
        page.on("pageerror", lambda error: page.problems.append(f"page error: {error}"))
        page.on(
            "console",
            lambda message: (
                message.type == "error" and page.problems.append(f"console: {message.text}")
            ),
        )
        page.on(
            "request",
            lambda request: (
                request.url.startswith((server_url, "data:"))
                or page.problems.append(f"request to another host: {request.url}")
            ),
        )
        page.goto(server_url)
        page.wait_for_function(
            "document.getElementById('model-info').textContent.includes('model')"
        )
        yield page
        context.close()


def draw(page, points):
    """One stroke through points given as fractions (0-1) of the canvas."""
    box = page.locator("#pad").bounding_box()
    x, y = points[0]
    page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=2)
    page.mouse.up()


def shown_digit(page) -> str:
    """Presses Predict and returns the digit the page shows for that request's answer."""
    with page.expect_response(lambda response: "/api/predict" in response.url) as answer:
        page.click("#predict")
    assert answer.value.status == 200, answer.value.text()
    page.wait_for_selector("#result[data-status=ready]")
    return page.locator("#digit").inner_text()


ONE = [(0.52, 0.15), (0.5, 0.5), (0.48, 0.85)]  # a vertical stroke
ZERO = [  # a ring, taller than wide, closed
    (0.5 + 0.22 * math.sin(2 * math.pi * k / 40), 0.5 - 0.32 * math.cos(2 * math.pi * k / 40))
    for k in range(42)
]


@pytest.mark.parametrize("digit, strokes, live", [("1", [ONE], False), ("0", [ZERO], True)])
def test_drawn_digit_is_recognised(page, digit, strokes, live):
    page.click("#clear")
    if page.locator("#live").is_checked() != live:
        page.locator(".toggle").click()
    for stroke in strokes:
        draw(page, stroke)
    assert shown_digit(page) == digit
    # the page shows all ten probabilities (the largest on the shown digit) and the 28x28 input
    values = page.locator(".bar .value").all_inner_texts()
    assert len(values) == 10 and all(text.endswith("%") for text in values)
    assert page.locator(".bar.best .name").inner_text() == digit
    seen_ink = page.evaluate(
        "Array.from(document.getElementById('seen').getContext('2d')"
        ".getImageData(0, 0, 28, 28).data).filter((v, i) => i % 4 === 0 && v > 128).length"
    )
    assert 20 < seen_ink < 500  # a digit's worth of bright pixels out of 784
    assert page.locator("#maps canvas").count() > 0  # first layer responses
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, f"browser-digit-{digit}.png"), full_page=True)
    assert page.problems == []


def test_clear_and_blank_canvas(page):
    page.click("#clear")
    assert page.locator("#digit").inner_text() == "?"
    page.click("#predict")  # nothing drawn: the page says so instead of asking the server
    assert "Draw a digit first" in page.locator("#message").inner_text()
    assert page.problems == []


def ink_on_pad(page) -> int:
    return page.evaluate(
        "Array.from(document.getElementById('pad').getContext('2d')"
        ".getImageData(0, 0, 280, 280).data).filter((v, i) => i % 4 === 0 && v > 128).length"
    )


def test_undo_takes_back_the_last_stroke(page):
    page.click("#clear")
    if page.locator("#live").is_checked():
        page.locator(".toggle").click()
    draw(page, ONE)
    one_stroke = ink_on_pad(page)
    draw(page, [(0.2, 0.5), (0.8, 0.5)])  # a crossbar
    assert ink_on_pad(page) > one_stroke
    page.keyboard.press("Control+z")
    assert ink_on_pad(page) == one_stroke
    assert shown_digit(page) == "1"
    page.click("#undo")
    assert ink_on_pad(page) == 0 and page.locator("#digit").inner_text() == "?"
    assert page.problems == []


def test_photo_upload_and_example_digit_then_clear_resets_everything(page, tmp_path):
    from PIL import Image, ImageDraw

    photo = Image.new("RGB", (600, 800), (235, 230, 220))  # dark ink on paper, a phone photo
    ImageDraw.Draw(photo).line([(310, 120), (290, 680)], fill=(30, 30, 40), width=40)
    path = tmp_path / "one.jpg"
    photo.save(path, "JPEG")
    page.click("#clear")
    with page.expect_response(lambda response: "/api/predict" in response.url) as answer:
        page.set_input_files("#file", str(path))
    assert answer.value.status == 200, answer.value.text()
    page.wait_for_selector("#result[data-status=ready]")
    assert page.locator("#digit").inner_text() == "1"
    assert "one.jpg" in page.locator("#message").inner_text()
    assert page.locator("#probability-list li").count() == 10
    assert page.locator("#probability-list li").first.inner_text().startswith("1: ")

    with page.expect_response(lambda response: "/api/example" in response.url) as answer:
        page.click("#example")
    if answer.value.status == 503:  # no MNIST on this machine: one clear error state
        page.wait_for_selector("#result[data-status=error]")
        assert "MNISTLAB_DATA" in page.locator("#message").inner_text()
    else:
        page.wait_for_selector("#result[data-status=ready]")
        assert "MNIST test image" in page.locator("#message").inner_text()
        assert ink_on_pad(page) > 0  # the example, drawn large on the pad
        assert page.locator("#maps canvas").count() > 0

    page.click("#clear")
    assert page.locator("#digit").inner_text() == "?"
    assert page.locator("#layer-block").is_hidden() and page.locator("#maps canvas").count() == 0
    assert page.locator("#probability-list li").count() == 0 and ink_on_pad(page) == 0
    assert page.problems == []


def test_unreachable_server_is_one_clear_error_state(page):
    page.click("#clear")
    page.route("**/api/predict*", lambda route: route.abort())
    try:
        draw(page, ONE)
        page.click("#predict")
        page.wait_for_selector("#result[data-status=error]")
        assert page.locator("#confidence").inner_text() == "no answer"
        assert "cannot be reached" in page.locator("#message").inner_text()
    finally:
        page.unroute("**/api/predict*")
    page.problems.clear()  # the aborted request is logged as a console error: expected here


def set_live(page, on: bool):
    if page.locator("#live").is_checked() != on:
        page.locator(".toggle").click()


def answer_a_drawn_one(page):
    page.click("#clear")
    set_live(page, False)
    draw(page, ONE)
    assert shown_digit(page) == "1"


# rules that must have found something to check on this page, not merely have nothing to say
AXE_RULES_APPLIED = {
    "color-contrast",
    "label",
    "button-name",
    "role-img-alt",
    "aria-valid-attr-value",
    "aria-allowed-attr",
    "aria-hidden-focus",
    "list",
    "page-has-heading-one",
}


def axe_problems(page) -> list[str]:
    """What axe-core (every rule it runs by default: WCAG 2 A and AA, and best practice) finds
    on the page as shown; contrast measured on single characters too, and any text whose
    contrast axe could not measure counts as a problem."""
    axe = pytest.importorskip(
        "axe_playwright_python.base", reason="pip install axe-playwright-python"
    )
    page.evaluate(axe.AXE_SCRIPT)
    results = page.evaluate(
        "axe.run(document, {checks: {'color-contrast': {options: {ignoreLength: true}}}})"
    )
    problems = [
        f"{rule['id']}: {node['target']}: {node['failureSummary']}"
        for rule in results["violations"]
        for node in rule["nodes"]
    ]
    problems += [
        f"contrast not measurable: {node['target']}: {node['any'][0]['data']['messageKey']}"
        for rule in results["incomplete"]
        if rule["id"] == "color-contrast"
        for node in rule["nodes"]
    ]
    unapplied = AXE_RULES_APPLIED - {rule["id"] for rule in results["passes"]}
    return problems + [f"{rule}: checked nothing" for rule in sorted(unapplied)]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_axe_finds_nothing_blank_and_answered(page, viewport):
    page.set_viewport_size(viewport)
    try:
        page.click("#clear")
        assert axe_problems(page) == []
        answer_a_drawn_one(page)
        assert axe_problems(page) == []
    finally:
        page.set_viewport_size(DESKTOP)
    assert page.problems == []


def test_phone_shows_the_answer_and_top_three_above_the_pad(page):
    page.set_viewport_size(PHONE)
    try:
        answer_a_drawn_one(page)
        # the top three, most likely first, as the text list gives them ("1: 100%")
        top_three = [
            int(text.split(":")[0])
            for text in page.locator("#probability-list li").all_inner_texts()[:3]
        ]
        boxes = [page.locator("#result .answer").bounding_box()] + [
            page.locator("#bars .bar").nth(digit).bounding_box() for digit in top_three
        ]
        pad = page.locator("#pad").bounding_box()
        scroll = page.evaluate("[scrollX, scrollY, document.documentElement.scrollWidth]")
        os.makedirs(ARTIFACTS, exist_ok=True)
        page.screenshot(path=os.path.join(ARTIFACTS, "browser-phone.png"))
    finally:
        page.set_viewport_size(DESKTOP)
    assert scroll == [0, 0, PHONE["width"]]  # nothing scrolled, nothing wider than the phone
    for box in boxes:
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
        assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], box
    answer = boxes[0]
    assert answer["y"] + answer["height"] <= pad["y"] or answer["x"] >= pad["x"] + pad["width"]
    assert page.problems == []


FOCUS_SHOWN = """() => {
  const active = document.activeElement;
  // the checkbox and the file input are hidden: their switch and their button show the focus
  const shown = active.id === "live" ? active.nextElementSibling
    : active.id === "file" ? active.closest("label") : active;
  const style = getComputedStyle(shown);
  return [active.id, style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2];
}"""


def test_keyboard_reaches_and_works_every_control(page):
    page.click("#clear")
    set_live(page, False)
    page.click(".tagline")  # Tab starts from here: the first control next
    controls = page.evaluate(
        "Array.from(document.querySelectorAll('button, input, select, textarea, a[href],"
        " [tabindex]')).map((element) => element.id)"
    )
    reached = []
    for _ in controls:
        page.keyboard.press("Tab")
        reached.append(page.evaluate(FOCUS_SHOWN))
    assert reached == [[control, True] for control in controls]  # each in order, focus visible
    assert controls == ["clear", "undo", "predict", "pen", "file", "example", "live"]

    page.keyboard.press("Space")  # on "predict as you draw"
    assert page.locator("#live").is_checked()
    page.keyboard.press("Space")
    assert not page.locator("#live").is_checked()
    page.focus("#pen")
    page.keyboard.press("ArrowRight")
    assert page.locator("#pen").input_value() == "22"
    page.keyboard.press("ArrowLeft")

    draw(page, ONE)
    one_stroke = ink_on_pad(page)
    draw(page, [(0.2, 0.5), (0.8, 0.5)])
    page.focus("#undo")
    page.keyboard.press("Enter")
    assert ink_on_pad(page) == one_stroke
    page.evaluate("document.activeElement.blur()")
    with page.expect_response(lambda response: "/api/predict" in response.url):
        page.keyboard.press("Enter")  # Enter away from any control: predict
    page.wait_for_selector("#result[data-status=ready]")
    assert page.locator("#digit").inner_text() == "1"
    page.keyboard.press("Escape")
    assert page.locator("#digit").inner_text() == "?" and ink_on_pad(page) == 0
    assert page.problems == []
