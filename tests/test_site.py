"""Build the site from the chapters executed in smoke mode, then drive the system Chromium over the built pages
(the ``executed_book`` and ``browser`` fixtures live in conftest.py)."""

from __future__ import annotations

import functools
import http.server
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from notebooks import CHAPTERS, ROOT

pytestmark = pytest.mark.slow

REPO_URL = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].rstrip("/")


@pytest.fixture(scope="session")
def site(executed_book, tmp_path_factory) -> Path:
    """Build the whole book, with warnings as errors, from the chapters executed in smoke mode (no re-execution)."""
    folder, runs = executed_book
    failed = [name for name, run in runs.items() if run.error is not None]
    assert not failed, f"chapters failed in smoke mode (see test_notebooks): {failed}"
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, FLOWLIB_SMOKE="1", FLOWLIB_CACHE=str(out / "cache"))
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    command = [str(jupyter_book), "build", str(folder), "--all", "-W", "-n", "--keep-going", "--path-output", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    log = done.stdout + done.stderr
    assert done.returncode == 0, f"site build failed:\n{log[-6000:]}"
    assert not re.search(r"WARNING: (?!Kernel is running over TCP)", log), log[-6000:]
    return out / "_build" / "html"


def test_every_chapter_page_is_built(site):
    for chapter in CHAPTERS:
        page = site / "book" / f"{chapter.stem}.html"
        assert page.exists(), page
        assert "mode smoke" in page.read_text()
    assert (site / "index.html").exists()


def test_progress_bars_show_their_last_state_only(site):
    """A training's bar is one line on the page (its final 100%), not a staircase of redraws."""
    bars = 0
    for chapter in CHAPTERS:
        html = (site / "book" / f"{chapter.stem}.html").read_text()
        percents = re.findall(r"(\d+)%\|", html)
        bars += len(percents)
        assert set(percents) <= {"100"}, f"{chapter.name} shows intermediate progress: {sorted(set(percents))}"
    assert bars > 0, "the chapters train models: some final progress lines must be on the pages"


def test_colab_links_open_the_colab_editions_of_this_repository(site):
    """The badge and the launch button open ``colab/NN.ipynb`` (MyST renders there); no Binder button."""
    owner_repo = REPO_URL.removeprefix("https://github.com/")
    for chapter in CHAPTERS:
        html = (site / "book" / f"{chapter.stem}.html").read_text()
        links = re.findall(r'https://colab\.research\.google\.com/github/([^"\s<>]+?\.ipynb)', html)
        assert len(links) >= 2, f"{chapter.name}: expected the badge and the launch button, found {links}"
        for link in links:
            repo_part, _, path = link.partition("/blob/")
            assert repo_part == owner_repo, link
            branch, _, relative = path.partition("/")
            assert relative == f"colab/{chapter.name}", f"{chapter.name}: a Colab link opens {relative}"
            assert (ROOT / relative).exists(), f"Colab link to a missing notebook: {relative}"
        assert "mybinder.org" not in html, f"{chapter.name} offers Binder, which would install the CUDA torch"


# ------------------------------------------------------------------------------------------ browser
@pytest.fixture(scope="session")
def server(site):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))

    class Quiet(handler.func):  # type: ignore[name-defined]
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class Page:
    """A page opened offline: requests leave only for the local server; errors are collected."""

    def __init__(self, browser, url: str):
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.blocked: list[str] = []  # every request that tried to leave the machine
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        self.page.on("console", self._console)
        self.host = urlparse(url).netloc
        self.page.route("**/*", self._route)
        self.page.goto(url)
        self.page.wait_for_load_state("load")

    def _route(self, route):
        if urlparse(route.request.url).netloc == self.host or route.request.url.startswith("data:"):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def _console(self, message):
        # a blocked outside resource fails to load (test_pages_need_no_network reports it): not a JavaScript error
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.errors.append(f"console: {message.text}")


def chapter_url(server, chapter: Path) -> str:
    return f"{server}/book/{chapter.stem}.html"


@pytest.mark.browser
@pytest.mark.parametrize("chapter", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_pages_load_without_javascript_errors(server, browser, chapter):
    page = Page(browser, chapter_url(server, chapter))
    page.page.wait_for_timeout(300)
    assert page.page.title()
    assert page.errors == []
    page.page.close()


def site_pages() -> list[str]:
    """Every page of the table of contents, as a path under the site root."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    return [f"{name}.html" for name in files]


@pytest.mark.browser
@pytest.mark.parametrize("page_path", site_pages())
def test_pages_need_no_network_and_their_math_renders(server, browser, page_path):
    """Offline (every request to another host is refused), each page loads nothing from outside, and every
    formula is typeset by the local MathJax: no raw TeX delimiters left in the visible text."""
    page = Page(browser, f"{server}/{page_path}")
    formulas = page.page.locator("span.math, div.math").count()
    if formulas:
        page.page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
        page.page.evaluate("() => MathJax.startup.promise")
        page.page.wait_for_timeout(200)
        assert page.page.locator("mjx-container").count() >= formulas, "some formulas were not typeset"
    text = page.page.evaluate(
        """() => { const root = (document.querySelector('article') || document.body).cloneNode(true);
                   const skip = 'pre, code, .highlight, mjx-container, script, style';
                   root.querySelectorAll(skip).forEach(e => e.remove());
                   return root.textContent; }"""
    )  # prose only: code may print TeX on purpose
    for delimiter in ("\\(", "\\)", "\\[", "$$"):
        assert delimiter not in text, f"raw TeX {delimiter!r} left on {page_path}"
    assert page.blocked == [], f"{page_path} asked for outside resources: {page.blocked}"
    assert page.errors == []
    page.page.close()


@pytest.mark.browser
def test_one_search_box_and_a_sidebar_button_that_hides_the_sidebar(server, browser):
    """The theme's known fault (an extra navbar with two more search boxes and a sidebar button bound to a
    hidden twin) is kept off: one visible search field, and the visible button hides the table of contents."""
    page = Page(browser, chapter_url(server, CHAPTERS[0]))
    page.page.set_viewport_size({"width": 1400, "height": 900})
    page.page.wait_for_timeout(300)
    searches = page.page.locator(".search-button-field")
    visible = [i for i in range(searches.count()) if searches.nth(i).is_visible()]
    assert len(visible) == 1, f"{len(visible)} search fields are visible"
    sidebar = page.page.locator("#pst-primary-sidebar")
    assert sidebar.is_visible()
    toggles = page.page.locator(".primary-toggle")
    button = next(toggles.nth(i) for i in range(toggles.count()) if toggles.nth(i).is_visible())
    button.click()
    page.page.wait_for_timeout(600)
    box = sidebar.bounding_box()
    hidden = not sidebar.is_visible() or box is None or box["width"] < 5 or box["x"] + box["width"] <= 0
    assert hidden, f"the sidebar button did not hide the sidebar (its box: {box})"
    assert page.errors == []
    page.page.close()


@pytest.mark.browser
def test_figures_are_sharp_and_described(server, browser):
    """Figures carry at least 1.5 pixels per displayed pixel, a caption, and alt text that is not a file path."""
    page = Page(browser, chapter_url(server, CHAPTERS[6]))
    page.page.wait_for_timeout(300)
    images = page.page.evaluate(
        """() => [...document.querySelectorAll('figure img')].map(img => ({natural: img.naturalWidth,
                 shown: img.getBoundingClientRect().width, alt: img.alt,
                 caption: (img.closest('figure').querySelector('figcaption') || {}).textContent || ''}))"""
    )
    assert len(images) >= 3, f"chapter 7's figures should be numbered figures with captions; found {len(images)}"
    for image in images:
        assert image["natural"] >= 1.5 * image["shown"], f"a blurry figure: {image}"
        assert len(image["alt"]) > 20 and "/" not in image["alt"], f"alt text: {image['alt']!r}"
        assert "Fig" in image["caption"], f"no numbered caption: {image['caption']!r}"
    page.page.close()


def explorer_state(root) -> dict:
    return root.evaluate(
        """el => ({draws: +el.dataset.draws, s: el.dataset.s, t: el.dataset.t, playing: el.dataset.playing,
                   image: el.querySelector('canvas.fx-canvas').toDataURL(),
                   readout: el.querySelector('.fx-readout').textContent})"""
    )


def move_slider(root, name: str, value: int) -> None:
    root.evaluate(
        "(el, args) => { const i = el.querySelector('input.fx-' + args[0]); i.value = args[1];"
        " i.dispatchEvent(new Event('input', {bubbles: true})); }",
        [name, value],
    )


@pytest.mark.browser
def test_explorer_renders_and_responds_to_s_t_and_play(server, browser):
    chapter = next(c for c in CHAPTERS if c.stem.startswith("04_"))
    page = Page(browser, chapter_url(server, chapter))
    explorers = page.page.locator(".flowlib-explorer")
    assert explorers.count() >= 3
    for k in range(explorers.count()):
        root = explorers.nth(k).element_handle()
        first = explorer_state(root)
        assert first["draws"] >= 1, "the explorer drew nothing"
        box = page.page.locator(".flowlib-explorer canvas.fx-canvas").nth(k).bounding_box()
        assert box["width"] > 200 and box["height"] > 150

        move_slider(root, "s", 0)
        after_s = explorer_state(root)
        assert after_s["s"] == "0" and after_s["image"] != first["image"] and after_s["readout"] != first["readout"]

        move_slider(root, "t", 1)
        after_t = explorer_state(root)
        assert after_t["image"] != after_s["image"] and after_t["readout"] != after_s["readout"]

        root.query_selector("button.fx-play").click()
        page.page.wait_for_timeout(800)
        playing = explorer_state(root)
        assert playing["playing"] == "1" and playing["draws"] > after_t["draws"] + 2
        assert playing["t"] != after_t["t"], "play should move t"
        root.query_selector("button.fx-play").click()
        stopped = explorer_state(root)
        page.page.wait_for_timeout(400)
        assert explorer_state(root)["draws"] == stopped["draws"], "pause should stop the animation"

        root.query_selector("input.fx-show-jump").click()  # toggles redraw
        assert explorer_state(root)["image"] != stopped["image"]
    # the exact map's jump error is printed as zero; the Euler jump's is not
    readouts = [explorers.nth(k).locator(".fx-error").inner_text() for k in range(explorers.count())]
    assert float(readouts[0]) < 1e-3 and float(readouts[-1]) > 1e-3
    assert page.errors == []
    page.page.close()


@pytest.mark.browser
def test_animation_plays(server, browser):
    chapter = next(c for c in CHAPTERS if c.stem.startswith("01_"))
    page = Page(browser, chapter_url(server, chapter))
    slider = page.page.locator("input[type=range][id^=_anim_slider]").first
    assert slider.count() == 1, "no matplotlib animation on the page"
    before = slider.input_value()
    page.page.locator("button[title='Play']").first.click()
    page.page.wait_for_timeout(1000)
    assert slider.input_value() != before, "the animation did not advance"
    assert page.errors == []
    page.page.close()


@pytest.mark.browser
def test_the_strength_control_shows_another_precomputed_frame(server, browser):
    """Chapter 13's slider over lambda works on the static page: moving it shows another frame."""
    chapter = next(c for c in CHAPTERS if c.stem.startswith("13_"))
    page = Page(browser, chapter_url(server, chapter))
    slider = page.page.locator("input[type=range][id^=_anim_slider]").first
    assert slider.count() == 1, "no strength control on the page"
    image = page.page.locator("img[id^=_anim_img]").first
    before = image.get_attribute("src")
    last = slider.get_attribute("max")
    slider.evaluate("(el, value) => { el.value = value; el.dispatchEvent(new Event('input', {bubbles: true})); }", last)
    page.page.wait_for_timeout(300)
    assert image.get_attribute("src") != before, "moving the slider did not change the frame"
    assert page.errors == []
    page.page.close()
