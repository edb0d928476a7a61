import math
import re

import matplotlib
import matplotlib as mpl

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from flowlib import viz  # noqa: E402
from flowlib.exact import LinearField  # noqa: E402


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
    assert "<script" in html and "https://" not in html and "http://" not in html
    frames = re.findall(r'frames\[(\d+)\] = "(data:image/png;base64,[^"]+)"', html)
    assert [int(k) for k, _ in frames] == list(range(12))  # exactly the 12 frames asked for, embedded
    assert len({image for _, image in frames}) == 12  # the points move: every frame differs
    fig, _ = plt.subplots()
    with pytest.raises(ValueError, match="max_frames"):
        viz.animation_html(fig, lambda k: None, n_frames=500)
    with pytest.raises(ValueError, match="path must be"):
        viz.animate_points(path[:, :, :1], times)


def test_plot_helpers_draw_on_axes():
    fig, ax = plt.subplots()
    field = LinearField.shear(1.0)
    viz.quiver(ax, field.velocity, 0.0, lim=2, n=5)
    viz.warped_grid(ax, lambda p: field.flow_map(p, 0.0, 1.0), n_lines=3, resolution=10)
    viz.scatter(ax, torch.randn(10, 2))
    viz.square(ax, 2, "title")
    assert len(ax.lines) == 6 and len(ax.collections) == 2
    assert ax.get_title() == "title" and ax.get_xlim() == (-2, 2)
    plt.close(fig)


def test_time_pair_map_and_quality_plot_draw_what_they_are_given():
    values = torch.tensor([[float("nan"), 0.5], [float("nan"), float("nan")]])
    fig, axes = plt.subplots(1, 2)
    image = viz.time_pair_map(axes[0], values, "title", log=True)
    shown = image.get_array()
    assert shown.shape == (2, 2) and math.isclose(float(shown[1, 0]), math.log10(0.5), rel_tol=1e-6)
    with pytest.raises(ValueError, match="square"):
        viz.time_pair_map(axes[0], torch.zeros(2, 3))
    with pytest.raises(ValueError, match="either norm"):
        viz.time_pair_map(axes[0], values, norm=matplotlib.colors.LogNorm(), vmax=1.0)
    viz.plot_quality_by_steps(axes[1], {"a": {1: 0.3, 4: 0.1}}, baseline=0.05, floor=0.01)
    assert len(axes[1].lines) == 3
    assert list(axes[1].lines[0].get_xdata()) == [1, 4] and list(axes[1].lines[0].get_ydata()) == [0.3, 0.1]
    plt.close(fig)


def test_time_pair_cells_are_centred_on_the_grid_times_and_map_errors_share_one_scale():
    grid = torch.rand(5, 5) + 0.01
    fig, ax = plt.subplots()
    image = viz.time_pair_map(ax, grid)
    left, right, bottom, top = image.get_extent()
    assert (left, right) == pytest.approx((-0.125, 1.125)) and (bottom, top) == pytest.approx((-0.125, 1.125))
    assert list(ax.get_xticks()) == pytest.approx([0, 0.25, 0.5, 0.75, 1])  # one tick per grid time, at the centres
    errors = viz.map_error_map(ax, grid, "errors")
    assert isinstance(errors.norm, matplotlib.colors.LogNorm)
    assert (errors.norm.vmin, errors.norm.vmax) == viz.MAP_ERROR_RANGE
    plt.close(fig)


def test_consistency_rules_are_drawn_on_the_path_they_name():
    from flowlib import data

    mix = data.mixture("eight_gaussians")
    fig, axes = plt.subplots(1, 3)
    viz.consistency_rules(axes, mix.flow_map, mix.velocity, torch.tensor([-0.2, 0.7]))
    path = axes[0].lines[0].get_xydata()
    end = mix.flow_map(torch.tensor([[-0.2, 0.7]], dtype=torch.float64), 0.4, 0.9)[0].numpy()
    assert min(((path - end) ** 2).sum(1)) < 1e-3, "the jump's end lies on the drawn path"
    labels = [{text.get_text() for text in ax.texts} for ax in axes]
    assert {r"$X_{s,t}$", r"$X_{s,u}$", r"$X_{u,t}$"} <= labels[0]  # two jumps make one
    assert r"$\partial_t X_{s,t} = b_t(X_{s,t})$" in labels[1]  # the end moves with the flow
    assert {r"$X_{s,t}(x)$", r"$X_{s',t}(x')$"} <= labels[2]  # a later start, the same end
    with pytest.raises(ValueError, match="three axes"):
        viz.consistency_rules(axes[:2], mix.flow_map, mix.velocity, torch.zeros(2))
    with pytest.raises(ValueError, match="s < u < t"):
        viz.consistency_rules(axes, mix.flow_map, mix.velocity, torch.zeros(2), s=0.5, u=0.4, t=0.9)
    plt.close(fig)


def test_training_pairs_picture_shows_the_drawn_pairs():
    from flowlib import fitting

    s, t, on_diagonal = fitting.training_pairs("psd", n=400)
    fig, ax = plt.subplots()
    viz.training_pairs(ax, s, t, "psd")
    jumps, diagonal = ax.collections
    assert len(jumps.get_offsets()) == int((~on_diagonal).sum())
    assert len(diagonal.get_offsets()) == int(on_diagonal.sum())
    plt.close(fig)


def test_each_method_has_one_colour_wherever_the_book_names_it():
    same = [
        ("PSD", "psd", "flow map (PSD)"),
        ("MeanFlow", "meanflow"),
        ("improved MeanFlow", "improved_meanflow"),
        ("flow matching (Heun, 2k evaluations)", "flow_matching"),
        ("consistency training", "consistency_training"),
    ]
    for labels in same:
        assert len({viz.method_colour(label) for label in labels}) == 1, labels
    assert viz.method_colour("improved MeanFlow") != viz.method_colour("MeanFlow"), "the longest name wins"
    assert len(set(viz.METHOD_COLOURS.values())) == len(viz.METHOD_COLOURS), "no two methods share a colour"
    from flowlib import fitting

    assert set(viz.METHOD_COLOURS) <= set(fitting.METHODS), "every colour is a method's"
    assert {m for m, spec in fitting.METHODS.items() if spec.benchmarked} <= set(viz.METHOD_COLOURS), "the chart's"
    assert viz.method_colour("data") is None


def test_quality_curves_draw_each_method_in_its_colour():
    fig, ax = plt.subplots()
    viz.plot_quality_by_steps(ax, {"LSD": {1: 0.3, 4: 0.2}, "flow map (PSD)": {1: 0.2, 4: 0.1}, "other": {1: 1, 4: 1}})
    colours = [line.get_color() for line in ax.get_lines()]
    assert colours[:2] == [viz.METHOD_COLOURS["lsd"], viz.METHOD_COLOURS["psd"]]
    plt.close(fig)


def test_a_time_pair_map_shows_its_cells_and_hatches_only_the_undefined_ones():
    """Rendered pixels: a defined cell has its colour, a NaN cell (s = t) the hatch's grey background."""
    values = torch.full((3, 3), float("nan"))
    values[0, 2] = 0.5  # s = 0, t = 1: top left
    fig, ax = plt.subplots(figsize=(3, 3), dpi=100)
    viz.map_error_map(ax, values)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3]

    def pixel(s: float, t: float) -> np.ndarray:
        x, y = ax.transData.transform((s, t))
        return pixels[pixels.shape[0] - int(round(y)), int(round(x))]

    expected = np.array(mpl.colormaps["magma_r"](mpl.colors.LogNorm(*viz.MAP_ERROR_RANGE)(0.5))[:3]) * 255
    assert np.abs(pixel(0.0, 1.0).astype(float) - expected).max() < 12, "the defined cell shows its colour"
    assert np.abs(pixel(0.5, 0.5).astype(float) - 0xEE).max() < 40, "the diagonal shows the hatch's background"
    plt.close(fig)


def test_a_result_table_is_html_for_the_page_and_aligned_text_for_print():
    table = viz.table({"PSD, 1 step": {"FD": 3.14159, "classes": "3–9", "steps": 400}, "teacher": {"FD": 2.0}},
                      {"FD": ".2f"}, index="model", note="floor 2.5")  # fmt: skip
    assert table.columns == ["FD", "classes", "steps"]
    html = table._repr_html_()
    assert html.count("<tr>") == 3 and "3.14" in html and "overflow-x: auto" in html and "floor 2.5" in html
    assert '<td style="text-align: right">–</td>' in html, "a missing value shows as a dash"
    lines = str(table).splitlines()
    assert lines[0].split() == ["model", "FD", "classes", "steps"] and lines[1].split()[-3:] == ["3.14", "3–9", "400"]
    assert "<b>" not in viz.table({"<b>": {"x": 1}})._repr_html_(), "names are escaped"
    with pytest.raises(TypeError, match="rows must be"):
        viz.table([1, 2])
    with pytest.raises(TypeError, match="formats must be"):
        viz.table({"a": {"x": 1}}, formats={"x": 2})


def test_a_frame_slider_holds_one_frame_per_value_and_says_which_it_shows():
    fig, ax = plt.subplots(figsize=(2, 2))
    (line,) = ax.plot([0, 1], [0, 0])
    html = viz.frame_slider(fig, lambda k: line.set_ydata([0, k]), [0.5, 1, 2], "λ", alt="a line that tilts")
    assert html.count("data:image/png;base64,") == 4, "three frames, the first also shown at load"
    assert 'type="range"' in html and 'max="2"' in html and "λ = <output>0.5</output>" in html
    assert 'alt="a line that tilts"' in html and "<script>" in html
    with pytest.raises(ValueError, match="1 to 40 values"):
        viz.frame_slider(plt.figure(), lambda k: None, [], "λ", alt="none")


def test_a_live_frame_slider_redraws_in_the_kernel_at_any_value_and_falls_back_to_its_frames():
    fig, ax = plt.subplots(figsize=(2, 2))
    (line,) = ax.plot([0, 1], [0, 0])
    ax.set_ylim(0, 3)
    drawn = []

    def draw(value):
        drawn.append(value)
        line.set_ydata([0, value])

    widget = viz.live_frame_slider(fig, draw, [0.5, 1, 2], "λ", alt="a line that tilts", step=0.25)
    assert drawn[:3] == [0.5, 1.0, 2.0], "the fallback's frames are drawn by the same function, at the given values"
    bundle = widget._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data
    assert data["text/html"].count("data:image/png;base64,") == 4  # the static frames, where no kernel runs
    assert (widget.slider.min, widget.slider.max, widget.slider.step, widget.slider.value) == (0.5, 2.0, 0.25, 0.5)
    before = widget.image.value
    widget.slider.value = 1.75  # a value with no precomputed frame: the kernel draws it
    assert drawn[-1] == 1.75 and widget.image.value != before and bytes(widget.image.value).startswith(b"\x89PNG")
    plt.close(fig)
    with pytest.raises(TypeError, match="draw must be a callable"):
        viz.live_frame_slider(plt.figure(), None, [1.0], "λ", alt="none")
    with pytest.raises(ValueError, match="at least one value"):
        viz.live_frame_slider(plt.figure(), draw, [], "λ", alt="none")


def test_image_rows_label_each_row_and_show_the_asked_columns():
    images = torch.linspace(-1, 1, 10 * 64).reshape(10, 1, 8, 8)
    fig = viz.image_rows([("real", images), (r"$X_{1,0}$", images)], n_columns=4)
    assert len(fig.axes) == 2 and [t.get_text() for ax in fig.axes for t in ax.texts] == ["real", r"$X_{1,0}$"]
    shown = fig.axes[0].get_images()[0].get_array()
    assert shown.shape == (10, 4 * 9 + 1), "four 8x8 tiles with 1-pixel gutters all round"
    assert shown[0, 0] == viz.IMAGE_GUTTER and -1 < viz.IMAGE_GUTTER < 0, "a light grey gutter, not black"
    plt.close(fig)
    with pytest.raises(ValueError, match="column_labels"):
        viz.show_images(plt.gca(), images[:4], n_columns=4, column_labels=["a"])


def test_cell_labels_and_density_contours_draw_what_they_are_given():
    values = torch.tensor([[float("nan"), 0.2], [0.9, float("nan")]])
    fig, (left, right) = plt.subplots(1, 2)
    viz.time_pair_map(left, values, vmin=0, vmax=1)
    viz.label_cells(left, values, ".1f")
    assert sorted(t.get_text() for t in left.texts) == ["0.2", "0.9"], "one label per finite cell"
    colours = {t.get_text(): t.get_color() for t in left.texts}
    assert colours["0.9"] == "white" and colours["0.2"] == "black", "light text on dark cells"
    gaussian = lambda x: -0.5 * (x**2).sum(1)  # noqa: E731
    viz.samples_over_density(right, torch.randn(50, 2), gaussian, lim=2, title="samples")
    assert right.get_title() == "samples" and len(right.collections) >= 2
    plt.close(fig)
