"""The live explorer in a real Jupyter server with a kernel: a click in the widget makes the kernel compute the jump.

The test starts JupyterLab, and then Notebook 7, on the loopback address with a random token
(:func:`benchmarks.live.jupyter_server`), opens a notebook that builds ``explorer.explore_mixture(..., live=True)``
over a stand-in learned map whose answer is known in closed form, runs it in a real kernel, clicks in the widget,
and reads what the page drew. The server (and its kernel) is stopped by the test. The static fallback of the same
widget is checked on the built site (tests/test_site.py) and here, through the bundle a front end without a widget
manager shows.
"""

import json

import pytest
import torch

from benchmarks import live
from flowlib import data, explorer

DRIFT = (1.0, -0.5)  # the stand-in map moves every point by (t - s) * DRIFT

NOTEBOOK_CODE = f'''import torch
from flowlib import data, explorer


class Drift(torch.nn.Module):
    """A stand-in learned map with a known answer: X_s,t(x) = x + (t - s) * {DRIFT}."""

    def forward(self, x, s, t):
        return x + (t - s)[:, None] * torch.tensor({list(DRIFT)}, dtype=x.dtype)


mixture = data.mixture("eight_gaussians")
view = explorer.explore_mixture(mixture, Drift(), grid_size=3, time_grid=2, n_cloud=50, live=True)
view'''


#: Notebook 7.6 raises this in its own bundle on every notebook page, a notebook without any widget and with every
#: extension disabled included (seen 2026-12-07); an error anywhere else fails the test.
OWN_ERRORS = {"Notebook 7": ("Cannot read properties of undefined (reading 'schema')", "/static/notebook/")}


def _not_the_front_ends_own(errors: list[str], front_end: str) -> list[str]:
    """The page's errors without the one its front end raises on every page (``OWN_ERRORS``)."""
    message, bundle = OWN_ERRORS.get(front_end, ("", ""))
    return [error for error in errors if not (message and error.startswith(message) and bundle in error)]


@pytest.fixture(params=list(live.FRONT_ENDS))
def jupyter_server(request, tmp_path):
    """JupyterLab or Notebook 7 on 127.0.0.1 with a notebook holding the live explorer; yields its URL and name."""
    live.write_notebook(tmp_path / "live.ipynb", NOTEBOOK_CODE)
    try:
        with live.jupyter_server(tmp_path, request.param) as server:
            yield server.url("live.ipynb"), request.param
    except RuntimeError as error:
        pytest.fail(str(error))


def _state(page) -> dict:
    return json.loads(page.locator(".flowlib-explorer[data-flowlib-explorer=live]").get_attribute("data-state"))


@pytest.mark.browser
def test_a_click_in_the_live_widget_makes_the_kernel_compute_the_jump(browser, jupyter_server):
    url, front_end = jupyter_server
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda error: errors.append(f"{error}\n{error.stack}"))
    page.goto(url)
    live.run_all_cells(page)
    page.wait_for_function(live.SETTLED, timeout=120_000)
    first = _state(page)
    canvas = page.locator(".flowlib-explorer[data-flowlib-explorer=live] canvas.fx-canvas")
    box = canvas.bounding_box()
    canvas.click(position={"x": 0.3 * box["width"], "y": 0.35 * box["height"]})
    page.wait_for_function(f"() => ({live.SETTLED})() && JSON.parse(document.querySelector("
                           "'.flowlib-explorer[data-flowlib-explorer=live]').dataset.state).x[0] !== "
                           f"{first['x'][0]}", timeout=30_000)  # fmt: skip
    state = _state(page)
    x, s, t = torch.tensor(state["x"], dtype=torch.float64), state["s"], state["t"]
    drift = torch.tensor(DRIFT, dtype=torch.float64)
    # what only the kernel knows: the stand-in model's jump, its composition through u, and its tangent
    assert torch.allclose(torch.tensor(state["learned_end"], dtype=torch.float64), x + (t - s) * drift, atol=1e-5)
    assert torch.allclose(torch.tensor(state["learned_via"], dtype=torch.float64), x + (t - s) * drift, atol=1e-5)
    assert torch.allclose(torch.tensor(state["learned_tangent"], dtype=torch.float64), drift, atol=1e-2)
    assert "running kernel" in page.locator(".flowlib-explorer[data-flowlib-explorer=live] .fx-source").inner_text()
    # moving t asks the kernel again
    page.locator(".flowlib-explorer[data-flowlib-explorer=live] input.fx-t").fill("0.3")
    page.wait_for_function(f"() => ({live.SETTLED})() && JSON.parse(document.querySelector("
                           "'.flowlib-explorer[data-flowlib-explorer=live]').dataset.state).t === 0.3",
                           timeout=30_000)  # fmt: skip
    state = _state(page)
    x = torch.tensor(state["x"], dtype=torch.float64)
    assert torch.allclose(torch.tensor(state["learned_end"], dtype=torch.float64), x + (0.3 - s) * drift, atol=1e-5)
    assert _not_the_front_ends_own(errors, front_end) == []
    page.close()


@pytest.mark.browser
def test_without_a_kernel_the_widget_shows_the_precomputed_explorer(browser):
    """A front end without a widget manager (the static site, a saved notebook) shows the HTML fallback."""

    class Drift(torch.nn.Module):
        def forward(self, x, s, t):
            return x + (t - s)[:, None] * torch.tensor(DRIFT, dtype=x.dtype)

    view = explorer.explore_mixture(data.mixture("eight_gaussians"), Drift(), grid_size=5, time_grid=3, live=True)
    bundle = view._repr_mimebundle_()
    html = (bundle[0] if isinstance(bundle, tuple) else bundle)["text/html"]
    page = browser.new_page()
    page.set_content(f"<!DOCTYPE html><html><body>{html}</body></html>")
    source = page.locator(".flowlib-explorer .fx-source").inner_text()
    assert "precomputed" in source and "live=True" in source
    assert json.loads(page.locator(".flowlib-explorer").get_attribute("data-state"))["learned_source"] == "field"
    page.close()


def test_live_needs_a_model():
    with pytest.raises(ValueError, match="live=True needs a model"):
        explorer.explore_mixture(data.mixture("eight_gaussians"), live=True)


def test_the_kernel_side_answers_a_query_and_reports_a_failing_model():
    class Drift(torch.nn.Module):
        def forward(self, x, s, t):
            return x + (t - s)[:, None] * torch.tensor(DRIFT, dtype=x.dtype)

    view = explorer.explore_mixture(data.mixture("eight_gaussians"), Drift(), grid_size=3, time_grid=2, live=True)
    view.query = {"key": "a", "x": [0.3, -0.5], "s": 0.2, "t": 0.8, "u": 0.5}
    assert view.answer["key"] == "a"
    assert view.answer["end"] == pytest.approx([0.3 + 0.6, -0.5 - 0.3], abs=1e-6)
    assert view.answer["mid"] == pytest.approx([0.3 + 0.3, -0.5 - 0.15], abs=1e-6)
    assert view.answer["tangent"] == pytest.approx(list(DRIFT), abs=1e-2)
    assert view.answer["ahead"] == pytest.approx([0.3 + 0.8, -0.5 - 0.4], abs=1e-6)  # X_s,1(x), the look-ahead

    class Broken(torch.nn.Module):
        def forward(self, x, s, t):
            raise RuntimeError("shapes do not match")

    view.models = {"learned map": Broken()}
    view.query = {"key": "b", "x": [0.0, 0.0], "s": 0.0, "t": 1.0, "u": 0.5}
    assert view.answer == {"key": "b", "error": "RuntimeError: shapes do not match"}


def test_the_kernel_answers_with_the_map_the_menu_names():
    class Drift(torch.nn.Module):
        def __init__(self, speed: float) -> None:
            super().__init__()
            self.speed = speed

        def forward(self, x, s, t):
            return x + self.speed * (t - s)[:, None]

    maps = {"slow": Drift(1.0), "fast": Drift(3.0)}
    view = explorer.explore_mixture(data.mixture("eight_gaussians"), maps, grid_size=3, time_grid=2, live=True)
    view.query = {"key": "f", "model": "fast", "x": [0.0, 0.0], "s": 0.0, "t": 0.5, "u": 0.25}
    assert view.answer["end"] == pytest.approx([1.5, 1.5], abs=1e-6)
    view.query = {"key": "s", "model": "slow", "x": [0.0, 0.0], "s": 0.0, "t": 0.5, "u": 0.25}
    assert view.answer["end"] == pytest.approx([0.5, 0.5], abs=1e-6)
    assert view.payload["learned_names"] == ["slow", "fast"]


def test_a_server_that_cannot_start_fails_with_its_own_last_messages(tmp_path, monkeypatch):
    # pip stands in for a front end that exits at once, complaining on stderr about the server's options
    monkeypatch.setitem(live.FRONT_ENDS, "broken", ("pip", [], "lab"))
    with pytest.raises(RuntimeError, match=r"broken did not start: (?s:.*)no such option"):
        with live.jupyter_server(tmp_path, "broken", timeout=30):
            pass
    assert (tmp_path / "server.log").read_text(), "the server's messages go to a log file in the served folder"
