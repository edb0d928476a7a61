"""Build the site from the chapters executed in smoke mode, then drive the system Chromium over the built pages
(the ``executed_book`` and ``browser`` fixtures live in conftest.py).

With ``FLOWLIB_SITE=_build/html`` the same tests read a site that is already built — ``.ci/run`` points them at
the full-mode build of README command 1, so that figures, tables and controls are checked as a reader sees them.
"""

from __future__ import annotations

import functools
import http.server
import json
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


#: a site built beforehand (README command 1), read instead of a smoke-mode build
BUILT_SITE = os.environ.get("FLOWLIB_SITE", "").strip()


@pytest.fixture(scope="session")
def site(request, tmp_path_factory) -> Path:
    """Build the whole book, with warnings as errors, from the chapters executed in smoke mode (no re-execution);
    or, with ``FLOWLIB_SITE``, the site already built there."""
    if BUILT_SITE:
        built = Path(BUILT_SITE).resolve()
        assert (built / "index.html").exists(), f"FLOWLIB_SITE={BUILT_SITE}: no built site there"
        return built
    folder, runs = request.getfixturevalue("executed_book")
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


#: sphinx-exercise's solution admonitions, whatever the order of their classes
SOLUTION_CLASS = re.compile(r'class="[^"]*\bsolution(-start)?\b[^"]*"')


@pytest.fixture(scope="session")
def student_site(request, tmp_path_factory) -> Path:
    """The student site (``FLOWMAPS_EDITION=student``) built from the same smoke-mode chapters as the reader site.

    The site CI reads afterwards (``FLOWLIB_SITE``) is README command 1's reader site; the student site is checked
    in the test command's own run, from the chapters that run executed."""
    if BUILT_SITE:
        pytest.skip("the student site is built and checked in the test command's own run (smoke mode)")
    folder, runs = request.getfixturevalue("executed_book")
    assert not [name for name, run in runs.items() if run.error is not None], "chapters failed in smoke mode"
    out = tmp_path_factory.mktemp("student-site")
    env = dict(os.environ, FLOWLIB_SMOKE="1", FLOWLIB_CACHE=str(out / "cache"), FLOWMAPS_EDITION="student")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    command = [str(jupyter_book), "build", str(folder), "--all", "-W", "-n", "--keep-going", "--path-output", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, f"student site build failed:\n{(done.stdout + done.stderr)[-6000:]}"
    return out / "_build" / "html"


def test_the_student_site_leads_to_no_solution(student_site):
    """No solution on any chapter page, and no door to one: no download, source or repository buttons, no copied
    sources, and the Colab badge and button open the student editions (issue 33, part 3)."""
    assert not (student_site / "_sources").exists(), "page sources (with solutions) were copied"
    for chapter in CHAPTERS:
        html = (student_site / "book" / f"{chapter.stem}.html").read_text()
        for button in ("btn-download-source-button", "btn-download-pdf-button", "btn-source-repository-button",
                       "btn-source-issues-button", "btn-source-edit-button"):  # fmt: skip
            assert button not in html, f"{chapter.name}: {button} on the student site"
        colab = re.findall(r'href="(https://colab\.research\.google\.com/github/[^"]+)"', html)
        assert colab and all("/student/" in url for url in colab), f"{chapter.name}: {colab}"
        assert not SOLUTION_CLASS.search(html), f"{chapter.name}: a solution on the student site"
        assert "BEGIN SOLUTION" not in html and "BEGIN HIDDEN TESTS" not in html


def test_every_chapter_page_is_built(site):
    for chapter in CHAPTERS:
        page = site / "book" / f"{chapter.stem}.html"
        assert page.exists(), page
        assert ("mode full" if BUILT_SITE else "mode smoke") in page.read_text()
    assert (site / "index.html").exists()


def test_no_progress_bars_on_the_pages(site):
    """A progress bar is for the reader waiting in Jupyter or Colab; the page shows what the training did instead
    (the model's record), so no bar, final or intermediate, is left on a page."""
    for chapter in CHAPTERS:
        html = (site / "book" / f"{chapter.stem}.html").read_text()
        bars = re.findall(r"\d+%\|[^|<]*\|\s*[\d.]+/[\d.]+", html)
        assert not bars, f"{chapter.name} shows progress bars: {bars[:2]}"
    trained = (site / "book" / f"{CHAPTERS[6].stem}.html").read_text()
    assert "steps" in trained and "s" in trained, "the training cells' own output stays on the page"


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
def test_on_the_built_site_a_click_starts_a_path_that_the_library_confirms(server, browser):
    """Chapter 5's explorer as the site serves it: a click's jump, its tangent and the composition residual
    against flowlib's exact map, and s, t and u each change the drawing (issue 32)."""
    import torch

    from flowlib import data

    mix = data.mixture("eight_gaussians")
    chapter = next(c for c in CHAPTERS if c.stem.startswith("05_"))
    page = Page(browser, chapter_url(server, chapter))
    root = page.page.locator(".flowlib-explorer[data-flowlib-explorer='1']").first
    canvas = root.locator("canvas.fx-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    canvas.click(position={"x": 0.62 * box["width"], "y": 0.3 * box["height"]})
    state = json.loads(root.get_attribute("data-state"))
    x = torch.tensor([state["x"]], dtype=torch.float64)
    end, tangent = mix.flow_map(x, state["s"], state["t"])[0], mix.velocity(x, state["s"])[0]
    assert torch.allclose(torch.tensor(state["exact_end"], dtype=torch.float64), end, atol=1e-3)
    assert torch.allclose(torch.tensor(state["exact_tangent"], dtype=torch.float64), tangent, atol=1e-6)
    via = mix.flow_map(mix.flow_map(x, state["s"], state["u"]), state["u"], state["t"])
    residual = float((via - mix.flow_map(x, state["s"], state["t"])).norm())
    assert abs(state["exact_residual"] - residual) < 1e-3
    image = root.evaluate("el => el.querySelector('canvas.fx-canvas').toDataURL()")
    for name, value in (("s", "0.1"), ("t", "0.95"), ("u", "0.3")):
        root.locator(f"input.fx-{name}").fill(value)
        after = root.evaluate("el => el.querySelector('canvas.fx-canvas').toDataURL()")
        assert after != image, f"moving {name} did not redraw"
        image = after
    assert page.errors == []
    page.page.close()


def test_the_live_explorer_shows_its_precomputed_page_on_the_site(site):
    """Chapters 5 and 9's explorers are live in a kernel (tests/test_live_explorer.py); the site has none, so its
    pages hold the widget's HTML fallback, which says that its learned map is precomputed, and no widget view."""
    for chapter in ("05_three_notions_of_consistency", "09_the_family_tree"):
        html = (site / "book" / f"{chapter}.html").read_text()
        assert 'data-flowlib-explorer="1"' in html, chapter
        assert "a static page; in a running notebook, live=True asks the model itself" in html, chapter
        assert 'type="application/vnd.jupyter.widget-view+json"' not in html, chapter


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
@pytest.mark.parametrize(("prefix", "first", "fourth", "fifth"), [("12_", "0.5", "4", "8"), ("13_", "0", "2", "4")])
def test_the_strength_control_shows_another_precomputed_frame(server, browser, prefix, first, fourth, fifth):
    """Chapters 12's and 13's sliders over lambda work on the static page, by pointer and by keyboard: moving one
    shows another frame and says which strength it shows; it is a numbered figure with alt text."""
    chapter = next(c for c in CHAPTERS if c.stem.startswith(prefix))
    page = Page(browser, chapter_url(server, chapter))
    control = page.page.locator(".flowlib-frames").first
    assert control.count() == 1, "no strength control on the page"
    slider, image, value = control.locator("input[type=range]"), control.locator("img"), control.locator("output")
    assert value.inner_text() == first and "λ" in control.locator("label").inner_text()
    before = image.get_attribute("src")
    slider.evaluate("(el, value) => { el.value = value; el.dispatchEvent(new Event('input', {bubbles: true})); }", "3")
    page.page.wait_for_timeout(200)
    assert image.get_attribute("src") != before, "moving the slider did not change the frame"
    assert value.inner_text() == fourth, "the control should say which strength its frame shows"
    slider.focus()
    page.page.keyboard.press("ArrowRight")
    page.page.wait_for_timeout(200)
    assert value.inner_text() == fifth, "the arrow keys move the control"
    assert len(image.get_attribute("alt")) > 20
    caption = control.evaluate("el => (el.closest('figure') || {}).textContent || ''")
    assert "Fig" in caption and "strength" in caption, f"the control is not a numbered figure: {caption[:80]!r}"
    assert page.errors == []
    page.page.close()


# ------------------------------------------------------------------------------------------ layout
WIDTHS = {"laptop": 1280, "phone": 390}


def open_at(browser, url: str, width: int) -> Page:
    page = Page(browser, url)
    page.page.set_viewport_size({"width": width, "height": 900})
    page.page.wait_for_timeout(250)
    page.page.evaluate("() => Promise.all([...document.images].map(img => img.decode().catch(() => null)))")
    return page


@pytest.mark.browser
@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_figures_keep_their_shape_at_every_width(server, browser, width):
    """Every figure of every chapter is drawn with the aspect ratio of its image (within 3%), on a laptop and on
    a phone: a ring of modes stays a ring however narrow the column."""
    squashed = []
    for chapter in CHAPTERS:
        page = open_at(browser, chapter_url(server, chapter), width)
        shapes = page.page.evaluate(
            """() => [...document.querySelectorAll('article div.cell_output img, article figure img')]
                   .filter(img => img.naturalWidth > 50 && img.getBoundingClientRect().width > 0)
                   .map(img => { const box = img.getBoundingClientRect();
                                 return {src: img.src.slice(-40), natural: img.naturalHeight / img.naturalWidth,
                                         shown: box.height / box.width}; })"""
        )
        assert shapes, f"{chapter.name}: no figure measured"
        squashed += [(chapter.stem, s) for s in shapes if abs(s["shown"] / s["natural"] - 1) > 0.03]
        page.page.close()
    assert not squashed, f"figures drawn out of shape at {width} px: {squashed[:5]}"


@pytest.mark.browser
def test_printed_output_and_tables_fit_the_column_on_a_laptop(server, browser):
    """At 1280 px nothing a cell prints runs past the text column (text wraps; result tables are HTML that fits),
    and no page scrolls sideways."""
    too_wide = []
    for chapter in CHAPTERS:
        page = open_at(browser, chapter_url(server, chapter), WIDTHS["laptop"])
        found = page.page.evaluate(
            """() => { const column = document.querySelector('article').getBoundingClientRect().width;
                 const wide = [...document.querySelectorAll('article div.cell_output pre, article div.flowlib-table')]
                     .filter(el => el.scrollWidth > el.clientWidth + 1 || el.getBoundingClientRect().width > column + 1)
                     .map(el => el.textContent.slice(0, 60));
                 const page = document.documentElement;
                 if (page.scrollWidth > window.innerWidth + 1) wide.push('the page scrolls sideways');
                 return wide; }"""
        )
        too_wide += [(chapter.stem, text) for text in found]
        page.page.close()
    assert not too_wide, f"wider than the column at 1280 px: {too_wide[:6]}"


@pytest.mark.browser
def test_result_tables_are_html_that_scrolls_inside_itself_on_a_phone(server, browser):
    """Chapters 11-13 show their result tables as HTML tables; on a phone a wide table scrolls inside its own
    box and the page itself does not scroll sideways."""
    for chapter in [c for c in CHAPTERS if c.stem[:2] in ("11", "12", "13")]:
        page = open_at(browser, chapter_url(server, chapter), WIDTHS["phone"])
        tables = page.page.locator("article div.flowlib-table table")
        assert tables.count() >= 2, f"{chapter.name}: its results should be HTML tables"
        boxes = page.page.evaluate(
            """() => [...document.querySelectorAll('article div.flowlib-table')].map(el => ({
                   box: el.getBoundingClientRect().right, overflow: getComputedStyle(el).overflowX}))"""
        )
        assert all(b["box"] <= 391 and b["overflow"] == "auto" for b in boxes), boxes
        assert page.page.evaluate("() => document.documentElement.scrollWidth") <= 391, (
            f"{chapter.name} scrolls sideways"
        )
        page.page.close()
