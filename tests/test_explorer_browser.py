"""The explorer's HTML works the way each notebook front end inserts outputs (no site build needed)."""

import json

import pytest
import torch

import flowlib
from flowlib import data, explorer, nets, steer
from flowlib.flowmap import FlowMap

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


# ----------------------------------------------------------------------------- the mixture explorer (any point)
@pytest.fixture(scope="module")
def mixture_page(browser):
    """A page with the mixture explorer of the eight Gaussians and a small learned map beside the exact one."""
    mix = data.mixture("eight_gaussians")
    model = flowlib.fit("psd", mix, train_steps=5, progress=False, cache=False, width=16, depth=2)
    view = explorer.explore_mixture(mix, model, start=(0.3, -0.5), s=0.2, t=0.8, u=0.5, grid_size=9, time_grid=5)
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_content("<!DOCTYPE html><html><body></body></html>")
    page.evaluate(f"html => {{ {INSERTIONS['page']} }}", view.html)
    page.wait_for_function("() => document.querySelector('.flowlib-explorer').dataset.state !== undefined")
    yield page, mix, model, view, errors
    page.close()


def _state(page):
    return page.evaluate("() => JSON.parse(document.querySelector('.flowlib-explorer').dataset.state)")


def test_a_click_starts_a_path_whose_jump_is_the_librarys_exact_flow_map(mixture_page):
    page, mix, _, view, errors = mixture_page
    canvas = page.locator(".fx-canvas")
    box = canvas.bounding_box()
    canvas.click(position={"x": box["width"] * 0.62, "y": box["height"] * 0.35})
    state = _state(page)
    x = torch.tensor([state["x"]], dtype=torch.float64)
    assert state["x"] != view.payload["start"]
    for key, (s, t) in {"exact_end": ("s", "t"), "exact_mid": ("s", "u")}.items():
        expected = mix.flow_map(x, state[s], state[t])[0]
        assert torch.allclose(torch.tensor(state[key], dtype=torch.float64), expected, atol=1e-3), key
    tangent = mix.velocity(x, state["s"])[0]
    assert torch.allclose(torch.tensor(state["exact_tangent"], dtype=torch.float64), tangent, atol=1e-6)
    via = mix.flow_map(mix.flow_map(x, state["s"], state["u"]), state["u"], state["t"])
    library_residual = float((via - mix.flow_map(x, state["s"], state["t"])).norm())
    assert abs(state["exact_residual"] - library_residual) < 1e-3
    assert errors == []


def test_moving_s_t_and_u_redraws_and_the_keyboard_moves_the_point(mixture_page):
    page, mix, _, _, errors = mixture_page
    picture = "() => document.querySelector('.fx-canvas').toDataURL()"
    for name, value in (("s", "0.05"), ("t", "0.95"), ("u", "0.3")):
        before = (page.evaluate(picture), _state(page))
        page.locator(f"input.fx-{name}").fill(value)
        after = _state(page)
        assert after[name] == pytest.approx(float(value)) and page.evaluate(picture) != before[0], name
    x = _state(page)["x"]
    page.locator(".fx-canvas").focus()
    page.keyboard.press("ArrowRight")
    assert _state(page)["x"][0] == pytest.approx(x[0] + 0.05)
    state = _state(page)
    expected = mix.flow_map(torch.tensor([state["x"]], dtype=torch.float64), state["s"], state["t"])[0]
    assert torch.allclose(torch.tensor(state["exact_end"], dtype=torch.float64), expected, atol=1e-3)
    assert errors == []


def _assert_page_jump_is_the_models(page, view, index: int, model, nodes: tuple, times: tuple) -> None:
    """At a node of learned field ``index`` (grid ``nodes``, field ``times``), the page's jump is the model's."""
    field = view.payload["learned"][index]
    axis = torch.linspace(-view.payload["extent"], view.payload["extent"], field["grid"])
    point, s, t = [float(axis[nodes[0]]), float(axis[nodes[1]])], field["times"][times[0]], field["times"][times[1]]
    page_jump = page.evaluate("([p, s, t]) => document.querySelector('.flowlib-explorer').flowlib.learnedJump(p, s, t)",
                              [point, s, t])  # fmt: skip
    with torch.no_grad():
        expected = model(torch.tensor([point]), torch.tensor([s]), torch.tensor([t]))[0]
    assert torch.allclose(torch.tensor(page_jump, dtype=torch.float64), expected.double(), atol=2e-3)


def test_the_learned_jump_at_the_fields_nodes_is_the_models(mixture_page):
    page, _, model, view, errors = mixture_page
    _assert_page_jump_is_the_models(page, view, 0, model, nodes=(2, 6), times=(1, 3))
    state = _state(page)
    assert {"learned_end", "learned_residual", "learned_error", "tangent_error"} <= set(state)
    assert "learned X_s,t(x)" in page.locator(".fx-readout").inner_text()
    assert errors == []


def test_a_menu_picks_which_of_several_learned_maps_is_drawn(browser):
    """Chapter 9 shows four maps of the family in one explorer: the menu switches the field the page reads."""
    mix = data.mixture("eight_gaussians")
    maps = {
        "first": FlowMap(nets.MLP(2, width=8, depth=1, n_times=2)),
        "second": FlowMap(nets.MLP(2, width=8, depth=1, n_times=2)),
    }
    view = explorer.explore_mixture(mix, maps, grid_size=5, time_grid=3)
    assert view.payload["learned_names"] == list(maps) and len(view.payload["learned"]) == 2
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_content(f"<!DOCTYPE html><html><body>{view.html}</body></html>")
    root = page.locator(".flowlib-explorer")
    first = json.loads(root.get_attribute("data-state"))
    assert first["learned_model"] == "first"
    root.locator("select.fx-model").select_option("1")
    second = json.loads(root.get_attribute("data-state"))
    assert second["learned_model"] == "second"
    assert second["learned_end"] != first["learned_end"]
    # at a node of the field's grid the page's jump is the second model's own
    _assert_page_jump_is_the_models(page, view, 1, maps["second"], nodes=(1, 3), times=(0, 2))
    assert errors == []
    page.close()


def test_bad_model_arguments_are_named():
    mix = data.mixture("eight_gaussians")
    with pytest.raises(ValueError, match="at least one learned map"):
        explorer.explore_mixture(mix, {})
    with pytest.raises(TypeError, match="model's keys must be names"):
        explorer.explore_mixture(mix, {3: FlowMap(nets.MLP(2, width=8, depth=1, n_times=2))})


# ----------------------------------------------------------------------------- the look-ahead (chapter 12)
def test_the_look_ahead_is_the_mixtures_exact_posterior_and_value(browser):
    """The page's denoiser, posterior draws and log-value against flowlib.exact and steer.exact_log_value."""
    mix = data.mixture("eight_gaussians")
    reward = steer.QuadraticReward(center=[1.6, 1.6], precision=0.5)
    view = explorer.explore_mixture(mix, reward=reward, strength=2.0, s=0.3, t=0.9)
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_content(f"<!DOCTYPE html><html><body>{view.html}</body></html>")
    call = "([name, args]) => document.querySelector('.flowlib-explorer').flowlib[name](...args)"
    point, s = [0.4, 0.2], 0.3
    x = torch.tensor([point], dtype=torch.float64)
    page_mean = torch.tensor(page.evaluate(call, ["denoiser", [point, s]]), dtype=torch.float64)
    assert torch.allclose(page_mean, mix.denoiser(x, s)[0], atol=1e-9)
    draws = torch.tensor(page.evaluate(call, ["posteriorSamples", [point, s, 4096]]), dtype=torch.float64)
    library = mix.posterior_sample(x.expand(20_000, 2), s, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(draws.mean(0), library.mean(0), atol=0.08)
    assert torch.allclose(torch.cov(draws.T), torch.cov(library.T), atol=0.12)
    page_log_h = page.evaluate(call, ["logValue", [point, s, 4096]])
    assert abs(page_log_h - float(steer.exact_log_value(mix, reward, 2.0, x, s)[0])) < 0.05
    page.evaluate("p => document.querySelector('.flowlib-explorer').flowlib.setPoint(p)", point)
    state = json.loads(page.locator(".flowlib-explorer").get_attribute("data-state"))
    assert state["plugin_denoiser"] == pytest.approx(2.0 * float(reward(mix.denoiser(x, s))[0]), abs=1e-3)
    assert "log h_s(x)" in page.locator(".fx-readout").inner_text()
    page.locator("input.fx-show-ahead").click()  # the look-ahead switched off: no value in the readout
    assert "log h_s(x)" not in page.locator(".fx-readout").inner_text()
    assert errors == []
    page.close()


def test_a_reward_that_is_not_one_value_per_point_is_refused():
    mix = data.mixture("eight_gaussians")
    with pytest.raises(ValueError, match="one finite value per point"):
        explorer.explore_mixture(mix, reward=lambda x: x)
    with pytest.raises(ValueError, match="strength must be a finite number"):
        explorer.explore_mixture(mix, reward=lambda x: x[:, 0], strength=float("nan"))
