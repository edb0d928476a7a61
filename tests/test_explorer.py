import json
import re

import pytest
import torch

from flowlib import data, explorer, nets
from flowlib.exact import GaussianMixture
from flowlib.flowmap import FlowMap


@pytest.fixture(scope="module")
def mix():
    return data.mixture("eight_gaussians")


def payload_of(ex):
    body = re.search(r'<script type="application/json" class="fx-data">(.*?)</script>', ex.html, re.S).group(1)
    return json.loads(body.replace("<\\/", "</"))


def test_exact_map_has_zero_jump_error_and_consistent_arrays(mix):
    ex = explorer.explore(
        mix.velocity, mix.flow_map, n_paths=30, highlight=4, grid_size=11, reference_flow_map=mix.flow_map
    )
    p = payload_of(ex)
    assert p == ex.payload
    assert len(p["times"]) == 11 and p["times"][0] == 0 and p["times"][-1] == 1
    assert len(p["paths"]) == 30 and len(p["paths"][0]) == 11
    assert len(p["jumps"]) == 4 and len(p["jumps"][0]) == 11 and len(p["jumps"][0][0]) == 11
    assert max(e for h in p["errors"] for row in h for e in row) < 1e-4
    # the jump from s to t lands on the path at t; the jump from s to s stays put
    path0 = p["paths"][p["path_ids"][0]]
    assert p["jumps"][0][2][9] == pytest.approx(path0[9], abs=2e-3)
    assert p["jumps"][0][5][5] == pytest.approx(path0[5], abs=2e-3)
    assert ex.n_bytes < 1_000_000


def test_default_map_integrates_the_velocity(mix):
    ex = explorer.explore(mix.velocity, n_paths=10, highlight=2, grid_size=6)
    assert max(e for h in ex.payload["errors"] for row in h for e in row) < 1e-2


def test_a_wrong_map_shows_its_error(mix):
    def euler_jump(x, s, t):
        return x + (t - s)[:, None] * mix.velocity(x, s)

    ex = explorer.explore(
        mix.velocity, euler_jump, n_paths=20, highlight=3, grid_size=9, reference_flow_map=mix.flow_map
    )
    errors = torch.tensor(ex.payload["errors"])  # (H, Gs, Gt)
    assert errors.diagonal(dim1=1, dim2=2).abs().max() < 1e-6  # no error when t = s
    assert errors[:, 0, -1].mean() > 0.1  # one Euler step from noise to data misses
    assert not ex.payload["exact_jumps"]


def test_a_trained_flow_map_module_is_shown_directly(mix):
    torch.manual_seed(0)
    model = FlowMap(nets.MLP(2, width=16, depth=1, n_times=2))  # float32, with gradients: explore detaches it
    ex = explorer.explore(mix.velocity, model, n_paths=12, highlight=2, grid_size=5, reference_flow_map=mix.flow_map)
    p = ex.payload
    assert not p["exact_jumps"]
    times = p["times"]
    path0 = torch.tensor(p["paths"][p["path_ids"][0]], dtype=torch.float64)
    for i, j in [(0, 4), (1, 3), (2, 2)]:
        with torch.no_grad():
            expected = model(path0[i : i + 1].float(), times[i], times[j])[0]
        assert p["jumps"][0][i][j] == pytest.approx(expected.tolist(), abs=2e-3)
    errors = torch.tensor(p["errors"])
    assert errors.diagonal(dim1=1, dim2=2).abs().max() < 1e-6  # X_{t,t} = x by construction
    assert errors[:, 0, -1].mean() > 0.1  # an untrained map misses the data


def test_one_dimensional_states_are_drawn_in_the_time_plane():
    mix = data.mixture("two_modes_1d")
    start = torch.randn(15, 1, dtype=torch.float64)
    ex = explorer.explore(mix.velocity, start=start, reference_flow_map=mix.flow_map, grid_size=5, highlight=2)
    p = ex.payload
    assert p["mode"] == "1d"
    assert [pt[0] for pt in p["paths"][0]] == pytest.approx(p["times"])  # x-axis is time
    assert p["tangents"][0][0][0] == 1.0  # a tangent moves one unit of time per unit of time


def test_image_states_get_a_projection_and_thumbnails():
    images = data.digits().images
    means = torch.stack([images[data.digits().labels == k].mean(0).reshape(-1) for k in range(2)])
    mix = GaussianMixture([0.5, 0.5], means, 0.05)
    start = torch.randn(12, 64, dtype=torch.float64)
    ex = explorer.explore(
        mix.velocity, start=start, reference_flow_map=mix.flow_map, grid_size=5, highlight=2, image_shape=(1, 8, 8)
    )
    p = ex.payload
    assert p["mode"] == "projected" and p["images"]["shape"] == [1, 8, 8]
    assert len(p["paths"][0][0]) == 2  # display coordinates are 2D
    import base64

    assert len(base64.b64decode(p["images"]["jumps"])) == 2 * 5 * 5 * 64


def test_html_is_self_contained(mix):
    ex = explorer.explore(mix.velocity, n_paths=10, highlight=2, grid_size=5)
    assert "http://" not in ex.html and "https://" not in ex.html
    assert "<script src" not in ex.html
    assert ex.html.count('class="flowlib-explorer"') == 1
    other = explorer.explore(mix.velocity, n_paths=10, highlight=2, grid_size=5)
    assert re.search(r'id="(\w+)"', ex.html).group(1) != re.search(r'id="(\w+)"', other.html).group(1)


def test_save_writes_a_page(tmp_path, mix):
    ex = explorer.explore(mix.velocity, n_paths=5, highlight=1, grid_size=4)
    page = ex.save(tmp_path / "explorer.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "flowlibExplorer" in page


def test_bad_inputs(mix):
    with pytest.raises(ValueError, match="needs velocity"):
        explorer.explore()
    with pytest.raises(ValueError, match="highlight"):
        explorer.explore(mix.velocity, n_paths=5, highlight=[7])
    with pytest.raises(ValueError, match="must return x's shape"):
        explorer.explore(mix.velocity, lambda x, s, t: x[:, :1], n_paths=5, grid_size=3)
    with pytest.raises(ValueError, match="image_shape"):
        explorer.explore(mix.velocity, n_paths=5, image_shape=(1, 8, 8))
    with pytest.raises(ValueError, match="max_bytes"):
        explorer.explore(mix.velocity, n_paths=50, grid_size=11, max_bytes=10_000)
    with pytest.raises(TypeError, match="flow_map must be a callable"):
        explorer.explore(mix.velocity, "map")
