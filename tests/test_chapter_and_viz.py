import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from flowlib import chapter, viz  # noqa: E402
from flowlib.exact import LinearField  # noqa: E402


@pytest.mark.parametrize("value, smoke", [("", False), ("0", False), ("no", False), ("1", True), ("yes", True)])
def test_smoke_switch(monkeypatch, value, smoke):
    monkeypatch.setenv(chapter.SMOKE_ENV, value)
    assert chapter.is_smoke() is smoke
    assert chapter.pick(full=100, smoke=5) == (5 if smoke else 100)
    assert chapter.setup(seed=1).pick(100, 5) == (5 if smoke else 100)


def test_setup_seeds_everything(monkeypatch):
    first = (chapter.setup(seed=3), torch.rand(3))
    second = (chapter.setup(seed=3), torch.rand(3))
    assert torch.equal(first[1], second[1])
    assert "seed 3" in str(first[0])
    with pytest.raises(TypeError, match="seed must be an int"):
        chapter.setup(seed="3")


def test_cache_folder_follows_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(chapter.CACHE_ENV, str(tmp_path / "c"))
    assert chapter.cache_dir() == tmp_path / "c"
    (tmp_path / "c" / "a.pt").write_bytes(b"x")
    assert chapter.clear_cache() == 1
    assert list((tmp_path / "c").iterdir()) == []


def test_style_uses_the_colour_blind_safe_palette():
    viz.use_style()
    colours = [c["color"] for c in matplotlib.rcParams["axes.prop_cycle"]]
    assert colours[:3] == viz.PALETTE[:3]


def test_animation_is_bounded_and_self_contained():
    field = LinearField.rotation(0.5)
    x = torch.randn(50, 2, dtype=torch.float64)
    times = torch.linspace(0, 1, 31, dtype=torch.float64)
    path = torch.stack([field.flow_map(x, 0.0, float(t)) for t in times])
    html = viz.animate_points(path, times, n_frames=12)
    assert "<script" in html and "https://" not in html
    assert html.count("data:image/png;base64") == 12 or html.count("frames[") >= 12
    fig, _ = plt.subplots()
    with pytest.raises(ValueError, match="max_frames"):
        viz.animation_html(fig, lambda k: None, n_frames=500)


def test_plot_helpers_draw_on_axes():
    fig, ax = plt.subplots()
    field = LinearField.shear(1.0)
    viz.quiver(ax, field.velocity, 0.0, lim=2, n=5)
    viz.warped_grid(ax, lambda p: field.flow_map(p, 0.0, 1.0), n_lines=3, resolution=10)
    viz.scatter(ax, torch.randn(10, 2))
    viz.square(ax, 2, "title")
    assert len(ax.lines) == 6 and len(ax.collections) == 2
    plt.close(fig)
