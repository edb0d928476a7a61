"""The explorer's HTML works the way each notebook front end inserts outputs (no site build needed)."""

import pytest
import torch

from flowlib import data, explorer

pytestmark = pytest.mark.browser

INSERTIONS = {
    # the static site and Colab: the HTML is part of the page when it loads
    "page": "document.body.innerHTML = html; document.querySelectorAll('script:not([type])').forEach(old => {"
    " const s = document.createElement('script'); s.textContent = old.textContent; old.replaceWith(s); });",
    # JupyterLab: innerHTML on a detached node, scripts re-created, then the node is attached
    "jupyterlab": "const host = document.createElement('div'); host.innerHTML = html;"
    " host.querySelectorAll('script:not([type])').forEach(old => { const s = document.createElement('script');"
    " s.textContent = old.textContent; old.replaceWith(s); }); document.body.appendChild(host);",
    # classic Jupyter (jQuery): the node is attached, then each script's text is evaluated globally
    "classic": "const host = document.createElement('div'); document.body.appendChild(host); host.innerHTML = html;"
    " host.querySelectorAll('script:not([type])').forEach(s => (0, eval)(s.textContent));",
}


@pytest.fixture(scope="module")
def explorer_html():
    mix = data.mixture("eight_gaussians")
    return explorer.explore(mix.velocity, mix.flow_map, n_paths=20, highlight=3, grid_size=7).html


@pytest.mark.parametrize("front_end", INSERTIONS)
def test_explorer_draws_and_responds_in_every_front_end(browser, explorer_html, front_end):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_content("<!DOCTYPE html><html><body></body></html>")
    page.evaluate(f"html => {{ {INSERTIONS[front_end]} }}", explorer_html)
    root = page.locator(".flowlib-explorer")
    page.wait_for_function("() => +document.querySelector('.flowlib-explorer').dataset.draws >= 1", timeout=5000)
    before = root.locator(".fx-readout").inner_text()
    root.locator("input.fx-t").fill("2")
    assert root.locator(".fx-readout").inner_text() != before
    assert errors == []
    page.close()


def test_two_explorers_on_one_page_are_independent(browser):
    mix = data.mixture("eight_gaussians")
    start = torch.randn(10, 2, dtype=torch.float64)
    a = explorer.explore(mix.velocity, start=start, highlight=2, grid_size=5, title="A").html
    b = explorer.explore(mix.velocity, start=start, highlight=2, grid_size=5, title="B").html
    page = browser.new_page()
    page.set_content(f"<!DOCTYPE html><html><body>{a}{b}</body></html>")
    roots = page.locator(".flowlib-explorer")
    assert roots.count() == 2
    readout_b = roots.nth(1).locator(".fx-readout").inner_text()
    roots.nth(0).locator("input.fx-s").fill("0")
    assert roots.nth(1).locator(".fx-readout").inner_text() == readout_b
    assert roots.nth(0).get_attribute("data-s") == "0" and roots.nth(1).get_attribute("data-s") != "0"
    page.close()


def test_image_explorer_paints_the_three_thumbnails_and_repaints_the_jump(browser):
    """Chapter 11's explorer on image paths: x_s, the jump and the true x_t are drawn, and move with t."""
    from flowlib.exact import GaussianMixture

    digits = data.digits()
    means = torch.stack([digits.images[digits.labels == k].mean(0).reshape(-1) for k in range(2)])
    mix = GaussianMixture([0.5, 0.5], means, 0.05)
    start = torch.randn(8, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    html = explorer.explore(
        mix.velocity, start=start, reference_flow_map=mix.flow_map, grid_size=4, highlight=2, image_shape=(1, 8, 8)
    ).html
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_content(f"<!DOCTYPE html><html><body>{html}</body></html>")
    page.wait_for_function("() => +document.querySelector('.flowlib-explorer').dataset.draws >= 1", timeout=5000)
    thumbnails = page.locator(".fx-thumb canvas")
    assert thumbnails.count() == 3
    pictures = "() => [...document.querySelectorAll('.fx-thumb canvas')].map(c => c.toDataURL())"
    blank = page.evaluate(
        "() => { const c = document.createElement('canvas'); c.width = 8; c.height = 8; return c.toDataURL(); }"
    )
    before = page.evaluate(pictures)
    assert all(picture != blank for picture in before), "every thumbnail is painted"
    page.locator("input.fx-s").fill("0")
    page.locator("input.fx-t").fill("3")
    after = page.evaluate(pictures)
    page.locator("input.fx-t").fill("1")
    assert page.evaluate(pictures)[1] != after[1], "moving t repaints the jump"
    assert errors == []
    page.close()
