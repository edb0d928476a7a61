"""The book's figures: one style, colour-blind-safe colours, plotting helpers, small animations.

Colours follow Okabe and Ito's palette (distinguishable with the common forms of
colour blindness). Animations are rendered with matplotlib's ``to_jshtml`` (no ffmpeg,
no CDN): a few dozen small PNG frames and a player that works on the static site.

Example:
    >>> import matplotlib.pyplot as plt
    >>> from flowlib import data, viz
    >>> viz.use_style()
    >>> fig, ax = plt.subplots()
    >>> viz.scatter(ax, data.sample("moons", 500, seed=0), label="data")
    >>> plt.close(fig)
"""

from __future__ import annotations

import base64
import hashlib
import html as html_text
import io
import itertools
import json
import re
from collections.abc import Callable, Sequence

import ipywidgets
import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import animation

from flowlib._validate import check_callable, check_positive_int

#: Okabe-Ito colours: blue, orange, green, vermillion, purple, sky blue, yellow, black.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
NOISE_COLOR = "#999999"
DATA_COLOR = PALETTE[0]
MODEL_COLOR = PALETTE[3]
PATH_COLOR = "#B0B0B0"
#: One colour per method across the book (chapters 6-10, the benchmark chart): Okabe-Ito and Tol's muted colours,
#: black for flow matching (the baseline every chapter compares with).
METHOD_COLOURS = {
    "flow_matching": "#000000",
    "lmd": "#332288",
    "emd": "#44AA99",
    "progressive": "#999933",
    "lsd": "#0072B2",
    "esd": "#56B4E9",
    "psd": "#D55E00",
    "meanflow": "#009E73",
    "improved_meanflow": "#CC79A7",
    "consistency_distillation": "#882255",
    "consistency_training": "#AA4499",
    "shortcut": "#E69F00",
}


#: One colour per way of steering across chapters 12 and 13 (black is always the exact answer).
STEER_COLOURS = {
    "exact": "#000000",
    "importance resampling": "#0072B2",
    "SMC": "#009E73",
    "best-of-N": "#999999",
    "guidance, denoiser": "#CC79A7",
    "guidance, flow map": "#E69F00",
    "fine-tuned": "#D55E00",
    "direct": "#882255",
}


def method_colour(label: str) -> str | None:
    """The book's colour for the method a label names, or None when it names none.

    A label names a method by its key in :data:`METHOD_COLOURS` or its spoken form, anywhere in the label and in
    any case: ``"PSD"``, ``"flow map (PSD)"``, ``"improved MeanFlow"``, ``"consistency training"``,
    ``"flow matching (Heun, 2k evaluations)"``. The longest match wins (``improved meanflow`` before ``meanflow``).
    """
    spoken = label.lower().replace("_", " ").replace("-", " ")
    for method in sorted(METHOD_COLOURS, key=len, reverse=True):
        if method.replace("_", " ") in spoken.split("(")[0] or f"({method.replace('_', ' ')})" in spoken:
            return METHOD_COLOURS[method]
    return None


def use_style() -> None:
    """Apply the book's matplotlib style (called by :func:`flowlib.chapter.setup`)."""
    mpl.rcParams.update(
        {
            "figure.figsize": (6.4, 4.0),
            "figure.dpi": 100,
            "savefig.dpi": 100,
            "font.size": 10,
            "axes.titlesize": 11,
            "axes.labelsize": 10,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.prop_cycle": mpl.cycler(color=PALETTE),
            "image.cmap": "viridis",
            "legend.frameon": False,
            "animation.embed_limit": 8.0,
        }
    )
    _sharp_inline_figures()


def _sharp_inline_figures() -> None:
    """In a notebook, draw inline figures at twice the pixels for their size (sharp on a page that scales them)."""
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:  # plain Python: nothing is drawn inline
        return
    if get_ipython() is not None:
        set_matplotlib_formats("retina")


def to_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Detach, move to the CPU and convert to a NumPy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def square(ax: plt.Axes, lim: float = 3.0, title: str | None = None) -> plt.Axes:
    """Square axes on [-lim, lim]² labelled x₁ (first coordinate) and x₂ (second)."""
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("first coordinate")
    ax.set_ylabel("second coordinate")
    if title:
        ax.set_title(title)
    return ax


def scatter(
    ax: plt.Axes,
    points: torch.Tensor | np.ndarray,
    color: str = DATA_COLOR,
    size: float = 2.0,
    alpha: float = 0.5,
    label: str | None = None,
    max_points: int = 20_000,
) -> None:
    """Scatter ``(n, 2)`` points (at most ``max_points`` of them)."""
    p = to_numpy(points)[:max_points]
    ax.scatter(p[:, 0], p[:, 1], s=size, alpha=alpha, color=color, label=label, linewidths=0, rasterized=True)


def plot_paths(
    ax: plt.Axes,
    path: torch.Tensor | np.ndarray,
    color: str = PATH_COLOR,
    linewidth: float = 0.6,
    alpha: float = 0.8,
    ends: bool = True,
    max_paths: int = 400,
) -> None:
    """Draw trajectories ``(n_times, batch, 2)`` in the plane, with start (grey) and end (blue) dots."""
    p = to_numpy(path)[:, :max_paths]
    ax.plot(p[:, :, 0], p[:, :, 1], color=color, lw=linewidth, alpha=alpha)
    if ends:
        ax.scatter(p[0, :, 0], p[0, :, 1], s=6, color=NOISE_COLOR, zorder=3, linewidths=0)
        ax.scatter(p[-1, :, 0], p[-1, :, 1], s=6, color=DATA_COLOR, zorder=3, linewidths=0)


def plot_paths_1d(
    ax: plt.Axes,
    times: torch.Tensor | np.ndarray,
    path: torch.Tensor | np.ndarray,
    color: str = PALETTE[0],
    linewidth: float = 0.7,
    alpha: float = 0.6,
    max_paths: int = 400,
) -> None:
    """Draw 1D trajectories in the (t, x) plane; ``path`` is ``(n_times, batch)`` or ``(n_times, batch, 1)``."""
    p = to_numpy(path)
    if p.ndim == 3:
        p = p[..., 0]
    ax.plot(to_numpy(times), p[:, :max_paths], color=color, lw=linewidth, alpha=alpha)
    ax.set_xlabel("time t (0 = noise, 1 = data)")
    ax.set_ylabel("position x")


def quiver(
    ax: plt.Axes,
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    t: float,
    lim: float = 3.0,
    n: int = 17,
    color: str = "#333333",
    scale: float | None = None,
) -> None:
    """Arrows of ``velocity(x, t)`` on an n×n grid over [-lim, lim]²."""
    check_positive_int(n, "n", minimum=2)
    g = torch.linspace(-lim, lim, n)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    grid = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    with torch.no_grad():
        v = to_numpy(velocity(grid, torch.full((grid.shape[0],), float(t))))
    ax.quiver(
        to_numpy(grid[:, 0]),
        to_numpy(grid[:, 1]),
        v[:, 0],
        v[:, 1],
        color=color,
        angles="xy",
        scale_units="xy",
        scale=scale,
        width=0.004,
    )


def warped_grid(
    ax: plt.Axes,
    transform: Callable[[torch.Tensor], torch.Tensor],
    lim: float = 2.0,
    n_lines: int = 11,
    resolution: int = 100,
    color: str = PALETTE[0],
    linewidth: float = 0.8,
) -> None:
    """Draw the image of a square grid of lines under ``transform`` (``(n, 2) -> (n, 2)``)."""
    g = torch.linspace(-lim, lim, n_lines, dtype=torch.float64)
    fine = torch.linspace(-lim, lim, resolution, dtype=torch.float64)
    for value in g:
        constant = value.expand(resolution)
        for line in (torch.stack([fine, constant], 1), torch.stack([constant, fine], 1)):
            with torch.no_grad():
                image = to_numpy(transform(line))
            ax.plot(image[:, 0], image[:, 1], color=color, lw=linewidth)


def heatmap(
    ax: plt.Axes,
    values: Callable[[torch.Tensor], torch.Tensor],
    lim: float = 3.0,
    n: int = 160,
    cmap: str = "Greys",
    log: bool = False,
    vmax: float | None = None,
) -> mpl.image.AxesImage:
    """Colour [-lim, lim]² by ``values(points (n², 2)) -> (n²,)``; ``log`` shows exp of the values.

    Returns the image, for a colour bar.
    """
    check_positive_int(n, "n", minimum=2)
    g = torch.linspace(-lim, lim, n, dtype=torch.float64)
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    with torch.no_grad():
        z = values(torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)).reshape(n, n)
    z = z.exp() if log else z
    return ax.imshow(
        to_numpy(z),
        origin="lower",
        extent=(-lim, lim, -lim, lim),
        cmap=cmap,
        vmax=vmax,
        interpolation="bilinear",
        aspect="equal",
    )


def density_contours(
    ax: plt.Axes,
    log_prob: Callable[[torch.Tensor], torch.Tensor],
    lim: float = 3.0,
    n: int = 100,
    levels: int = 4,
    color: str = PALETTE[0],
) -> None:
    """Contour lines of the density ``exp(log_prob(points (n², 2)))`` on [-lim, lim]²."""
    g = torch.linspace(-lim, lim, n, dtype=torch.float64)
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    with torch.no_grad():
        density = log_prob(torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)).exp().reshape(n, n)
    ax.contour(to_numpy(xx), to_numpy(yy), to_numpy(density), levels=levels, colors=color, linewidths=0.6)


def samples_over_density(
    ax: plt.Axes,
    samples: torch.Tensor | np.ndarray,
    log_prob: Callable[[torch.Tensor], torch.Tensor],
    lim: float = 3.0,
    title: str | None = None,
    color: str = MODEL_COLOR,
    fractions: Sequence[float] = (0.01, 0.1, 0.5),
) -> plt.Axes:
    """Samples as dots over the contour lines of a density they should follow (e.g. an exact tilted mixture).

    Contours sit on top of the dots, so the target stays visible where the samples pile up; they are drawn at
    the given fractions of the density's largest value on the plotted square.

    Args:
        ax: the axes (made square on [-lim, lim]²).
        samples: ``(n, 2)`` points.
        log_prob: the target's log-density, ``(m, 2) -> (m,)``.
        lim: half-width of the square.
        title: the panel's title.
        color: the dots' colour.
        fractions: contour levels as fractions of the largest density value.

    Returns:
        The axes.
    """
    g = torch.linspace(-lim, lim, 161, dtype=torch.float64)
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    with torch.no_grad():
        density = log_prob(torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)).exp().reshape(g.numel(), g.numel())
    scatter(ax, samples, color=color, size=1.5, alpha=0.45)
    levels = sorted(float(density.max()) * f for f in fractions)
    ax.contour(to_numpy(xx), to_numpy(yy), to_numpy(density), levels=levels, colors="black", linewidths=0.6, zorder=3)
    return square(ax, lim, title)


def time_density(
    ax: plt.Axes,
    log_prob: Callable[[torch.Tensor, float], torch.Tensor],
    lim: float = 3.0,
    n_times: int = 101,
    n_x: int = 200,
    cmap: str = "Greys",
) -> None:
    """Shade the density p_t(x) of a 1D model in the (t, x) plane; ``log_prob(x (n, 1), t) -> (n,)``."""
    xs = torch.linspace(-lim, lim, n_x, dtype=torch.float64)[:, None]
    times = torch.linspace(0, 1, n_times, dtype=torch.float64)
    with torch.no_grad():
        image = torch.stack([log_prob(xs, float(t)).exp() for t in times], dim=1)  # (n_x, n_times)
    ax.imshow(
        to_numpy(image),
        origin="lower",
        extent=(0, 1, -lim, lim),
        aspect="auto",
        cmap=cmap,
        vmax=float(torch.quantile(image, 0.98)),
    )
    ax.set_xlabel("time t (0 = noise, 1 = data)")
    ax.set_ylabel("position x")


#: the 1-pixel gutter between tiled images: a light grey, lighter than any ink and darker than the background
IMAGE_GUTTER = -0.55


def show_images(
    ax: plt.Axes,
    images: torch.Tensor | np.ndarray,
    n_columns: int = 10,
    title: str | None = None,
    column_labels: Sequence[str] | None = None,
) -> None:
    """Tile ``(n, 1, H, W)`` images in [-1, 1] (white background, black ink) into one picture on ``ax``.

    Args:
        ax: the axes (its frame and ticks are switched off).
        images: ``(n, 1, H, W)`` images in [-1, 1]; values outside are clipped by the colour scale.
        n_columns: images per row.
        title: the panel's title.
        column_labels: one label above each column (e.g. the time of each column).
    """
    x = to_numpy(images)
    n, _, h, w = x.shape
    rows = int(np.ceil(n / n_columns))
    canvas = np.full((rows * (h + 1) + 1, n_columns * (w + 1) + 1), IMAGE_GUTTER)
    for i in range(n):
        r, c = divmod(i, n_columns)
        canvas[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = x[i, 0]
    ax.imshow(canvas, cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if column_labels is not None:
        if len(column_labels) != n_columns:
            raise ValueError(f"column_labels has {len(column_labels)} labels for {n_columns} columns")
        for c, label in enumerate(column_labels):
            ax.text(1 + c * (w + 1) + (w - 1) / 2, -0.6, label, ha="center", va="bottom", fontsize=8)
    if title:
        ax.set_title(title, pad=14 if column_labels is not None else 6)


def image_rows(
    rows: Sequence[tuple[str, torch.Tensor | np.ndarray]],
    n_columns: int,
    width: float = 7.6,
    label_width: float = 1.7,
) -> plt.Figure:
    """A figure of labelled rows of images: each row ``(label, (n, 1, H, W) images)`` shows ``n_columns`` of them.

    The images take the width that the labels leave, so that digits are large enough to judge on a page.

    Args:
        rows: ``[(label, images), ...]``; labels may use mathtext (``"$X_{1,0}$"``).
        n_columns: images per row (the first ``n_columns`` of each row's images).
        width: figure width in inches (7.6: the book's text column).
        label_width: inches reserved on the left for the labels.

    Returns:
        The figure (``plt.show()`` it).
    """
    check_positive_int(n_columns, "n_columns")
    if not rows:
        raise ValueError("rows must hold at least one (label, images) pair")
    tile = (width - label_width) / n_columns
    fig = plt.figure(figsize=(width, tile * len(rows) * 1.04 + 0.1))
    for k, (label, images) in enumerate(rows):
        bottom = 1 - (k + 1) / len(rows)
        ax = fig.add_axes((label_width / width, bottom + 0.02 / len(rows), 1 - label_width / width, 0.96 / len(rows)))
        show_images(ax, images[:n_columns], n_columns=n_columns)
        ax.text(-0.015, 0.5, label, transform=ax.transAxes, ha="right", va="center", fontsize=9)
    return fig


# matplotlib's player draws its buttons with Font Awesome icons from a CDN; the book stays offline, so the
# stylesheet link is dropped and each icon becomes a plain character.
_ICONS = {
    "fa fa-minus": "\u2212",
    "fa fa-plus": "+",
    "fa fa-fast-backward": "|\u25c0\u25c0",
    "fa fa-step-backward": "|\u25c0",
    "fa fa-play fa-flip-horizontal": "\u25c0",
    "fa fa-pause": "\u275a\u275a",
    "fa fa-play": "\u25b6",
    "fa fa-step-forward": "\u25b6|",
    "fa fa-fast-forward": "\u25b6\u25b6|",
}


_animation_counter = itertools.count()


def _offline_player(html: str) -> str:
    """Remove the CDN stylesheet from ``to_jshtml`` output, draw icons as text, and make the id deterministic."""
    html = re.sub(r'<link rel="stylesheet"\s+href="https?://[^"]*font-awesome[^"]*">', "", html)
    for css_class, text in _ICONS.items():
        html = html.replace(f'<i class="{css_class}"></i>', f'<span aria-hidden="true">{text}</span>')
    ids = set(re.findall(r"anim[0-9a-f]{32}", html))
    for old in ids:
        digest = hashlib.sha1(html.replace(old, "").encode("utf-8")).hexdigest()[:24]
        html = html.replace(old, f"anim{digest}{next(_animation_counter):08x}")
    return html


def animation_html(
    fig: plt.Figure,
    update: Callable[[int], object],
    n_frames: int,
    interval: int = 80,
    max_frames: int = 60,
    max_bytes: int = 1_500_000,
) -> str:
    """Render an animation to self-contained HTML with ``to_jshtml`` and close the figure.

    Args:
        fig: the figure, already drawn in its first state.
        update: ``update(frame)`` redraws the figure for ``frame`` in ``range(n_frames)``.
        n_frames: number of frames (at most ``max_frames``).
        interval: milliseconds between frames.
        max_frames: refuse more frames than this (keeps pages light).
        max_bytes: refuse HTML larger than this.

    Returns:
        The HTML string (wrap it in ``IPython.display.HTML`` to show it).
    """
    check_positive_int(n_frames, "n_frames")
    if n_frames > max_frames:
        plt.close(fig)
        raise ValueError(f"n_frames = {n_frames} exceeds max_frames = {max_frames}; use fewer frames")
    anim = animation.FuncAnimation(fig, update, frames=n_frames, interval=interval, blit=False)
    html = _offline_player(anim.to_jshtml(default_mode="loop"))
    plt.close(fig)
    if len(html) > max_bytes:
        raise ValueError(f"animation is {len(html)} bytes > max_bytes = {max_bytes}; lower the dpi or frames")
    return html


def frame_slider(
    fig: plt.Figure,
    update: Callable[[int], object],
    values: Sequence[float],
    label: str,
    alt: str,
    dpi: int = 150,
    max_bytes: int = 1_500_000,
) -> str:
    """A parameter control for the static page: one precomputed frame per value, chosen with a labelled slider.

    Each frame is the figure redrawn by ``update(k)`` for ``values[k]`` and saved as a PNG; the slider shows the
    value it selects (``label = value``) and responds to the keyboard. No kernel is needed, so it works on the
    built site as in Jupyter and Colab.

    Args:
        fig: the figure, laid out for every frame (reserve room for titles that change).
        update: ``update(k)`` redraws the figure for ``values[k]``.
        values: the parameter's values, one frame each (at most 40).
        label: the parameter's name as the control shows it (e.g. ``"λ"``).
        alt: the frames' alt text (what every frame shows).
        dpi: resolution of the frames.
        max_bytes: refuse HTML larger than this.

    Returns:
        The HTML string (wrap it in ``IPython.display.HTML``); the figure is closed.
    """
    if not 1 <= len(values) <= 40:
        plt.close(fig)
        raise ValueError(f"values must hold 1 to 40 values (one frame each), got {len(values)}")
    frames = []
    for k in range(len(values)):
        update(k)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi)
        frames.append("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"))
    plt.close(fig)
    digest = hashlib.sha1("".join(frames).encode("ascii")).hexdigest()[:16]
    element = f"flowlib-frames-{digest}-{next(_animation_counter):04x}"
    shown = [f"{value:g}" for value in values]
    ticks = "".join(f'<option value="{k}" label="{text}"></option>' for k, text in enumerate(shown))
    name = html_text.escape(label)
    page = f"""<div class="flowlib-frames" id="{element}" data-frame="0" style="max-width: 100%">
<img src="{frames[0]}" alt="{html_text.escape(alt)}" style="max-width: 100%; height: auto; display: block">
<div style="display: flex; align-items: center; gap: 0.8em; flex-wrap: wrap; margin-top: 0.3em">
<label for="{element}-range" style="white-space: nowrap">{name} = <output>{shown[0]}</output></label>
<input type="range" id="{element}-range" min="0" max="{len(values) - 1}" step="1" value="0" list="{element}-ticks"
 aria-label="{name}" aria-valuetext="{name} = {shown[0]}" style="flex: 1 1 12em; min-width: 10em">
<datalist id="{element}-ticks">{ticks}</datalist>
<span style="color: #555555; font-size: 0.85em">{name}: {", ".join(shown)}</span>
</div>
<script>(function () {{
  const root = document.getElementById("{element}");
  const frames = {json.dumps(frames)};
  const labels = {json.dumps(shown)};
  const input = root.querySelector("input"), image = root.querySelector("img"), out = root.querySelector("output");
  input.addEventListener("input", function () {{
    const k = Number(input.value);
    image.src = frames[k];
    out.textContent = labels[k];
    input.setAttribute("aria-valuetext", "{name} = " + labels[k]);
    root.dataset.frame = String(k);
  }});
}})();</script>
</div>"""
    if len(page) > max_bytes:
        raise ValueError(f"the frames take {len(page)} bytes > max_bytes = {max_bytes}; lower the dpi or the values")
    return page


def with_html_fallback(bundle: dict | tuple, html: str) -> dict | tuple:
    """A widget's mime bundle with ``html`` as its ``text/html``: what a page without a widget manager shows.

    JupyterLab, Notebook and Colab render the widget view; the static site (``_config.yml`` ranks the widget view
    below HTML) and a saved notebook show ``html``. ``bundle`` is ipywidgets' ``data`` or ``(data, metadata)``.
    """
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    data["text/html"] = html
    return bundle


class LiveFrames(ipywidgets.VBox):
    """A parameter control computed by the kernel at any value, with precomputed frames where no kernel runs.

    The widget is a slider over a continuous range and an image of the figure, redrawn by the kernel for the value
    the reader picks (a matplotlib figure rendered to PNG). Shown where no widget manager runs (the static site, a
    saved notebook), its HTML fallback is :func:`frame_slider`'s precomputed frames. Build it with
    :func:`live_frame_slider`.

    Attributes:
        slider: the ``ipywidgets.FloatSlider`` the reader moves.
        image: the ``ipywidgets.Image`` showing the figure at the slider's value.
        fallback: the precomputed frames' HTML.
    """

    def __init__(self, fig: plt.Figure, draw: Callable[[float], object], slider: ipywidgets.FloatSlider,
                 fallback: str, dpi: int) -> None:  # fmt: skip
        """Args: fig: the figure; draw: redraws it for a value; slider: the control; fallback: frames' HTML."""
        self.fig, self.draw, self.dpi, self.fallback = fig, draw, dpi, fallback
        self.slider, self.image = slider, ipywidgets.Image(format="png", layout=ipywidgets.Layout(max_width="100%"))
        super().__init__([self.image, self.slider])
        self.slider.observe(lambda change: self.show(change["new"]), names="value")
        self.show(self.slider.value)

    def show(self, value: float) -> bytes:
        """Redraw the figure for ``value`` and show it; returns the PNG."""
        self.draw(float(value))
        buffer = io.BytesIO()
        self.fig.savefig(buffer, format="png", dpi=self.dpi)
        png = buffer.getvalue()
        self.image.value = png
        return png

    def _repr_mimebundle_(self, **kwargs: object) -> dict:
        return with_html_fallback(super()._repr_mimebundle_(**kwargs), self.fallback)


def live_frame_slider(
    fig: plt.Figure,
    draw: Callable[[float], object],
    values: Sequence[float],
    label: str,
    alt: str,
    *,
    step: float | None = None,
    dpi: int = 100,
    frames_dpi: int = 150,
) -> LiveFrames:
    """:func:`frame_slider` computed live: in a running notebook the kernel redraws the figure at any value.

    ``draw(value)`` redraws the figure for one parameter value. The slider spans ``min(values)`` to ``max(values)``
    in steps of ``step`` (default: a hundredth of the range) and starts at ``values[0]``; the static fallback holds
    one precomputed frame per entry of ``values``, drawn by the same function, so the site shows what the notebook
    would at those values.

    Args:
        fig: the figure, laid out for every value (reserve room for titles that change).
        draw: ``draw(value)`` redraws the figure for a parameter value.
        values: the values of the precomputed frames (at most 40), which also fix the slider's range.
        label: the parameter's name as the controls show it (e.g. ``"λ"``).
        alt: what every frame shows.
        step: the live slider's step.
        dpi: resolution of the live image.
        frames_dpi: resolution of the precomputed frames.

    Returns:
        A :class:`LiveFrames` widget (display it). The figure is closed in pyplot and redrawn by the widget.
    """
    check_callable(draw, "draw", "draw(value)")
    if not values:
        raise ValueError("values must hold at least one value")
    low, high = float(min(values)), float(max(values))
    step = step if step is not None else max((high - low) / 100, 1e-6)
    # frame_slider closes the figure (so the notebook does not show it once more); a closed figure still draws
    fallback = frame_slider(fig, lambda k: draw(float(values[k])), values, label, alt, dpi=frames_dpi)
    slider = ipywidgets.FloatSlider(value=float(values[0]), min=low, max=high, step=step, description=label,
                                    continuous_update=False, readout_format=".2f")  # fmt: skip
    return LiveFrames(fig, draw, slider, fallback, dpi)


def animate_points(
    path: torch.Tensor | np.ndarray,
    times: Sequence[float] | torch.Tensor | np.ndarray,
    lim: float = 3.0,
    title: str = "",
    n_frames: int = 30,
    color: str = PALETTE[0],
    trail: bool = True,
    max_trails: int = 12,
    dpi: int = 60,
    size: float = 3.6,
) -> str:
    """Animate a cloud moving along trajectories ``(n_times, batch, 2)``; returns HTML.

    Frames are taken at ``n_frames`` evenly spaced indices of the path; the title
    shows the current time. A few trajectories are drawn as faint trails.
    """
    p = to_numpy(path)
    tt = to_numpy(torch.as_tensor(times)).reshape(-1)
    if p.ndim != 3 or p.shape[2] != 2 or p.shape[0] != tt.shape[0]:
        raise ValueError(f"path must be (n_times, batch, 2) with n_times = len(times); got {p.shape}, {tt.shape}")
    frames = np.unique(np.linspace(0, p.shape[0] - 1, min(n_frames, p.shape[0])).round().astype(int))
    fig, ax = plt.subplots(figsize=(size, size), dpi=dpi)
    square(ax, lim)
    ax.set_xlabel("")
    ax.set_ylabel("")
    if trail:
        ax.plot(p[:, :max_trails, 0], p[:, :max_trails, 1], color=PATH_COLOR, lw=0.5, alpha=0.7)
    dots = ax.scatter(p[0, :, 0], p[0, :, 1], s=3, color=color, linewidths=0)
    label = ax.set_title(f"{title} t = {tt[0]:.2f}")
    fig.tight_layout()

    def update(k: int) -> None:
        i = frames[k]
        dots.set_offsets(p[i])
        label.set_text(f"{title} t = {tt[i]:.2f}")

    return animation_html(fig, update, len(frames))


#: The one colour scale of map errors across the book: a mean distance of 0.005 (white) to 1 or more (black),
#: logarithmic, so that a good map's 0.01 and a poor one's 0.4 are both visible.
MAP_ERROR_RANGE = (0.005, 1.0)


def time_pair_map(
    ax: plt.Axes,
    values: torch.Tensor,
    title: str = "",
    log: bool = False,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "magma_r",
    norm: mpl.colors.Normalize | None = None,
) -> mpl.image.AxesImage:
    r"""Draw a quantity over pairs of times: ``values[i, j]`` at start :math:`s_i` (x) and end :math:`t_j` (y).

    Used for consistency residuals (:func:`flowlib.residuals.residual_grid`) and map errors
    (:func:`flowlib.metrics.map_error_grid`) on a uniform grid of [0, 1] with G times. Each cell is centred
    on its pair of grid times (the ticks), and NaN entries — pairs where the quantity is not defined, such
    as :math:`s = t` for a map error — are hatched grey.

    Args:
        ax: the axes.
        values: ``(G, G)`` tensor.
        title: the panel's title.
        log: show :math:`\log_{10}` of the values (clamped at 1e-12).
        vmin: lower colour limit (in log10 units when ``log``).
        vmax: upper colour limit (in log10 units when ``log``).
        cmap: the colour map.
        norm: a matplotlib colour normalisation instead of ``log``/``vmin``/``vmax`` (e.g. a ``LogNorm``,
            whose colour bar then shows the values themselves).

    Returns:
        The image, for a colour bar.
    """
    grid = torch.as_tensor(values, dtype=torch.float64)
    if grid.ndim != 2 or grid.shape[0] != grid.shape[1] or grid.shape[0] < 2:
        raise ValueError(f"values must be a square (G, G) grid with G >= 2; got shape {tuple(grid.shape)}")
    if norm is not None and (log or vmin is not None or vmax is not None):
        raise ValueError("give either norm or log/vmin/vmax, not both")
    shown = grid.clamp(min=1e-12).log10() if log else grid
    size = grid.shape[0]
    half = 0.5 / (size - 1)
    extent = (-half, 1 + half, -half, 1 + half)
    ax.add_patch(
        mpl.patches.Rectangle(
            (-half, -half),
            1 + 2 * half,
            1 + 2 * half,
            facecolor="#eeeeee",
            edgecolor="#bbbbbb",
            hatch="///",
            lw=0,
            zorder=0,  # under the image: only the NaN cells, which the image leaves transparent, show the hatching
        )
    )
    colour = {"norm": norm} if norm is not None else {"vmin": vmin, "vmax": vmax}
    image = ax.imshow(to_numpy(shown.T), origin="lower", extent=extent, cmap=cmap, aspect="equal", zorder=1, **colour)
    ticks = np.linspace(0, 1, size) if size <= 6 else np.linspace(0, 1, 5)  # more labels would collide
    ax.set_xticks(ticks, [f"{tick:g}" for tick in np.round(ticks, 2)])
    ax.set_yticks(ticks, [f"{tick:g}" for tick in np.round(ticks, 2)])
    ax.set_xlim(extent[:2])
    ax.set_ylim(extent[2:])
    ax.grid(False)
    ax.set_xlabel("start time s")
    ax.set_ylabel("end time t")
    if title:
        ax.set_title(title, fontsize=10)
    return image


def label_cells(ax: plt.Axes, values: torch.Tensor, fmt: str = ".2f", fontsize: float = 7.5) -> None:
    """Write each finite value of a :func:`time_pair_map` grid at the centre of its cell.

    The text is white on the darker half of the colour scale and black on the lighter half.

    Args:
        ax: the axes :func:`time_pair_map` drew on.
        values: the same ``(G, G)`` grid (``values[i, j]`` at start time i, end time j); NaN cells stay empty.
        fmt: the number format.
        fontsize: the text size in points.
    """
    grid = torch.as_tensor(values, dtype=torch.float64)
    image = ax.get_images()[-1]
    size = grid.shape[0]
    for i in range(size):
        for j in range(size):
            value = float(grid[i, j])
            if not np.isfinite(value):
                continue
            shade = image.norm(value)
            dark = np.mean(image.cmap(shade)[:3]) < 0.5
            ax.text(i / (size - 1), j / (size - 1), format(value, fmt), ha="center", va="center",
                    fontsize=fontsize, color="white" if dark else "black")  # fmt: skip


def map_error_map(ax: plt.Axes, errors: torch.Tensor, title: str = "") -> mpl.image.AxesImage:
    """:func:`time_pair_map` of map errors on the book's one colour scale (:data:`MAP_ERROR_RANGE`, logarithmic)."""
    return time_pair_map(ax, errors, title, norm=mpl.colors.LogNorm(*MAP_ERROR_RANGE, clip=True))


def plot_quality_by_steps(
    ax: plt.Axes,
    curves: dict[str, dict[int, float]],
    baseline: float | None = None,
    floor: float | None = None,
    baseline_label: str = "flow matching, 100 Heun steps",
) -> None:
    """Quality against the number of sampling steps, one line per model (log-log axes), each method in its colour.

    Args:
        ax: the axes.
        curves: ``{label: {steps: metric}}``, e.g. from :func:`flowlib.metrics.quality_by_steps`.
        baseline: a horizontal reference (e.g. a many-step ODE solve).
        floor: the data-vs-data value of the metric.
        baseline_label: the reference's legend entry.
    """
    for label, curve in curves.items():
        ks = sorted(curve)
        ax.plot(ks, [curve[k] for k in ks], "o-", label=label, color=method_colour(label))  # None: next in cycle
    if baseline is not None:
        ax.axhline(baseline, color="black", linestyle="--", linewidth=1, label=baseline_label)
    if floor is not None:
        ax.axhline(floor, color="grey", linestyle=":", linewidth=1, label="data vs data (floor)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sampling steps")
    ax.set_ylabel("sliced W2 to fresh data")
    ax.legend(fontsize=8)


# ----------------------------------------------------------------------------------------------- diagrams
def _jump_arrow(ax: plt.Axes, start, end, color: str, bend: float = 0.25, label: str | None = None) -> None:
    """A jump from ``start`` to ``end``: a bent arrow (a jump is not a path; the bend keeps it off the path)."""
    ax.annotate(
        "", xy=tuple(end), xytext=tuple(start),
        arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.6, "shrinkA": 3, "shrinkB": 3,
                    "connectionstyle": f"arc3,rad={bend}", "mutation_scale": 12},
    )  # fmt: skip
    if label:
        start, end = np.asarray(start, dtype=float), np.asarray(end, dtype=float)
        chord = end - start
        # the apex of matplotlib's arc3 curve: the chord's middle, pushed sideways by half the bend
        apex = (start + end) / 2 + 0.5 * bend * np.array([chord[1], -chord[0]])
        ax.annotate(label, apex, textcoords="offset points", xytext=(0, 0), color=color, fontsize=9,
                    ha="center", va="center", bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})  # fmt: skip


def consistency_rules(
    axes: Sequence[plt.Axes],
    flow_map: Callable,
    velocity: Callable,
    x: torch.Tensor,
    s: float = 0.4,
    u: float = 0.65,
    t: float = 0.9,
) -> None:
    r"""The three consistency rules drawn on one path of a flow (chapter 5), one panel each.

    The grey curve is the path through ``x`` at time ``s``, :math:`\tau \mapsto X_{s,\tau}(x)`. Compositional:
    the jump :math:`X_{s,t}` equals :math:`X_{s,u}` followed by :math:`X_{u,t}`. Lagrangian: moving the end
    time slides the jump's end along the path with velocity :math:`b_t`. Eulerian: moving the start along
    the path (to :math:`x' = X_{s,s'}(x)`) leaves the end where it was.

    Args:
        axes: three axes.
        flow_map: ``flow_map(x, s, t)`` on ``(batch, 2)`` points with ``(batch,)`` or float times.
        velocity: ``velocity(x, t)``.
        x: one point ``(2,)`` at time ``s``.
        s: the start time.
        u: an intermediate time, ``s < u < t``.
        t: the end time.
    """
    if len(axes) != 3:
        raise ValueError(f"axes must hold three axes (one per rule); got {len(axes)}")
    if not 0.0 <= s < u < t <= 1.0:
        raise ValueError(f"need 0 <= s < u < t <= 1; got s={s}, u={u}, t={t}")
    point = torch.as_tensor(x, dtype=torch.float64).reshape(1, 2)
    taus = torch.linspace(0.0, 1.0, 201, dtype=torch.float64)
    path = to_numpy(flow_map(point.expand(len(taus), 2), torch.full((len(taus),), s, dtype=torch.float64), taus))

    def at(tau: float) -> np.ndarray:
        return to_numpy(flow_map(point, s, tau))[0]

    x_s, x_u, x_t = at(s), at(u), at(t)
    s_later = s + 0.6 * (u - s)
    x_later = at(s_later)
    tangent = to_numpy(velocity(torch.as_tensor(x_t).reshape(1, 2), torch.tensor([t], dtype=torch.float64)))[0]
    pad = 0.35
    low, high = path.min(0) - pad, path.max(0) + pad
    titles = ("compositional:\ntwo jumps make one", "Lagrangian:\nthe end moves with the flow",
              "Eulerian:\nsliding the start keeps the end")  # fmt: skip
    for ax, title in zip(axes, titles, strict=True):
        ax.plot(path[:, 0], path[:, 1], color="#bbbbbb", lw=3, zorder=0)
        ax.set_xlim(low[0], high[0])
        ax.set_ylim(low[1], high[1])
        ax.set_aspect("equal")
        ax.set_axis_off()
        ax.set_title(title, fontsize=10)
    composed, direct, flow = PALETTE[1], PALETTE[0], PALETTE[2]
    ax = axes[0]
    _jump_arrow(ax, x_s, x_t, direct, bend=-0.35, label=r"$X_{s,t}$")
    _jump_arrow(ax, x_s, x_u, composed, bend=0.3, label=r"$X_{s,u}$")
    _jump_arrow(ax, x_u, x_t, composed, bend=0.3, label=r"$X_{u,t}$")
    ax = axes[1]
    _jump_arrow(ax, x_s, x_t, direct, bend=-0.35, label=r"$X_{s,t}$")
    scale = 0.25 / max(float(np.linalg.norm(tangent)), 1e-9)
    ax.annotate("", xy=tuple(x_t + scale * tangent), xytext=tuple(x_t),
                arrowprops={"arrowstyle": "-|>", "color": flow, "lw": 2, "mutation_scale": 12})  # fmt: skip
    ax.annotate(r"$\partial_t X_{s,t} = b_t(X_{s,t})$", x_t + scale * tangent, textcoords="offset points",
                xytext=(4, 4), color=flow, fontsize=9)  # fmt: skip
    ax = axes[2]
    _jump_arrow(ax, x_s, x_t, direct, bend=-0.35, label=r"$X_{s,t}(x)$")
    _jump_arrow(ax, x_later, x_t, composed, bend=0.3, label=r"$X_{s',t}(x')$")
    for ax in axes:
        ax.scatter(*x_s, s=30, color=NOISE_COLOR, zorder=3)
        ax.annotate(r"$x$ at $s$", x_s, textcoords="offset points", xytext=(-10, -14), fontsize=9)
        ax.scatter(*x_t, s=30, color=DATA_COLOR, zorder=3)
    axes[0].scatter(*x_u, s=30, color=composed, zorder=3)
    axes[0].annotate(r"at $u$", x_u, textcoords="offset points", xytext=(6, 4), fontsize=9)
    axes[2].scatter(*x_later, s=30, color=composed, zorder=3)
    axes[2].annotate(r"$x'$ at $s'$", x_later, textcoords="offset points", xytext=(6, 4), fontsize=9)


def training_pairs(ax: plt.Axes, s: torch.Tensor, t: torch.Tensor, title: str = "", size: float = 4.0) -> None:
    r"""The pairs of times a method trains on, as points of the :math:`(s, t)` square (chapter 9).

    Args:
        ax: the axes.
        s: start times ``(n,)``.
        t: end times ``(n,)`` (on the diagonal :math:`t = s` for the velocity's pairs).
        title: the panel's title.
        size: marker size.
    """
    s_np, t_np = to_numpy(s).ravel(), to_numpy(t).ravel()
    if s_np.shape != t_np.shape:
        raise ValueError(f"s and t must have the same length; got {s_np.shape} and {t_np.shape}")
    diagonal = np.isclose(s_np, t_np)
    ax.plot([0, 1], [0, 1], color="#dddddd", lw=1, zorder=0)
    ax.scatter(s_np[~diagonal], t_np[~diagonal], s=size, color=PALETTE[0], alpha=0.5, linewidths=0, label="jumps")
    ax.scatter(s_np[diagonal], t_np[diagonal], s=size, color=PALETTE[3], alpha=0.5, linewidths=0,
               label="diagonal (velocity)")  # fmt: skip
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.set_aspect("equal")
    ax.set_xlabel("start time s")
    ax.set_ylabel("end time t")
    if title:
        ax.set_title(title, fontsize=10)


# ------------------------------------------------------------------------------------------ result tables
class Table:
    """A table of results that renders as HTML in Jupyter, Colab and on the site, and as aligned text elsewhere.

    Build it with :func:`table`; display it (``display(table)``, or as a cell's last expression). The HTML
    scrolls inside itself when it is wider than the page (a phone), so no column is ever out of reach.

    Attributes:
        rows: ``{row name: {column: value}}``; a missing value shows as a dash.
        formats: ``{column: format spec}`` for numbers, e.g. ``{"sliced W2": ".3f"}``.
        index: the header of the column of row names.
        note: a line under the table (what the columns mean, the floor, the sample size).
    """

    def __init__(self, rows: dict, formats: dict[str, str], index: str, note: str):
        self.rows, self.formats, self.index, self.note = rows, formats, index, note

    @property
    def columns(self) -> list[str]:
        """Every column, in the order it first appears."""
        return list(dict.fromkeys(column for cells in self.rows.values() for column in cells))

    def cell(self, row: str, column: str) -> str:
        """One value as the table shows it."""
        value = self.rows[row].get(column)
        if value is None:
            return "–"
        if isinstance(value, str):
            return value
        if isinstance(value, torch.Tensor):
            value = value.item()
        spec = self.formats.get(column)
        if spec is None:
            spec = "d" if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else ".3g"
        return format(value, spec)

    def _repr_html_(self) -> str:
        columns = self.columns
        right = ' style="text-align: right"'
        escape = html_text.escape
        head = f"<th>{escape(self.index)}</th>" + "".join(f"<th{right}>{escape(c)}</th>" for c in columns)
        body = "".join(
            f'<tr><th style="text-align: left; font-weight: normal">{html_text.escape(str(name))}</th>'
            + "".join(f"<td{right}>{html_text.escape(self.cell(name, c))}</td>" for c in columns)
            + "</tr>"
            for name in self.rows
        )
        note = f'<p class="flowlib-table-note">{html_text.escape(self.note)}</p>' if self.note else ""
        return (
            '<div class="flowlib-table" style="overflow-x: auto; max-width: 100%">'
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}</div>"
        )

    def __str__(self) -> str:
        columns = self.columns
        cells = [[str(name)] + [self.cell(name, c) for c in columns] for name in self.rows]
        header = [self.index] + columns
        widths = [max(len(row[k]) for row in [header, *cells]) for k in range(len(header))]
        lines = [
            "  ".join(row[k].ljust(widths[k]) if k == 0 else row[k].rjust(widths[k]) for k in range(len(row)))
            for row in [header, *cells]
        ]
        return "\n".join(lines + ([self.note] if self.note else []))

    __repr__ = __str__


def table(
    rows: dict[str, dict[str, object]], formats: dict[str, str] | None = None, index: str = "", note: str = ""
) -> Table:
    """A result table for the page: HTML in a notebook and on the site, aligned text when printed.

    Args:
        rows: ``{row name: {column: value}}``; values are numbers (formatted by ``formats``), strings or ``None``.
        formats: ``{column: format spec}`` (default: integers as they are, other numbers to 3 significant digits).
        index: the header of the column of row names.
        note: a line under the table.

    Returns:
        A :class:`Table`; display it.

    Raises:
        TypeError: ``rows`` is not a dictionary of dictionaries, or ``formats`` not a dictionary of strings.

    Example:
        >>> print(table({"Euler": {"NFE": 100, "error": 0.01234}}, {"error": ".3f"}, index="solver"))
        solver  NFE  error
        Euler   100  0.012
    """
    if not isinstance(rows, dict) or not all(isinstance(cells, dict) for cells in rows.values()):
        raise TypeError("rows must be a dictionary {row name: {column: value}}")
    formats = {} if formats is None else formats
    if not isinstance(formats, dict) or not all(isinstance(spec, str) for spec in formats.values()):
        raise TypeError("formats must be a dictionary {column: format spec such as '.3f'}")
    if not isinstance(index, str) or not isinstance(note, str):
        raise TypeError("index and note must be strings")
    return Table(rows, dict(formats), index, note)
