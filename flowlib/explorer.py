r"""The path explorer: paths, the tangent at a point, and the jump between two times (chapter 4).

:func:`explore` precomputes everything the picture needs — paths on a grid of times,
the velocity (tangent) at each grid point of a few highlighted paths, and the jump
:math:`X_{s,t}(x_s)` for every pair (s, t) of grid times — and returns an
:class:`Explorer`, a self-contained block of HTML and JavaScript (no CDN, no kernel).
It therefore works the same in JupyterLab, classic Jupyter, Colab and the static site.

The reader moves **s** and **t** with sliders (or presses *play*), picks which paths
are highlighted, and toggles the tangent, the jump and the true point at t. The jump's
distance to the true point is printed: zero for the exact map, visible for a learned one.

Three kinds of state are supported:

* 1D points, drawn in the (t, x) plane;
* 2D points, drawn in the plane;
* anything larger (e.g. images), drawn through a 2D projection (PCA by default), with
  ``image_shape`` adding thumbnails of x_s, the jump and the true x_t.

Example:
    >>> from flowlib import data, explorer
    >>> mix = data.mixture("eight_gaussians")
    >>> view = explorer.explore(mix.velocity, mix.flow_map, n_paths=20, grid_size=5, title="exact flow map")
    >>> view.n_bytes < 1_000_000
    True
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import anywidget
import numpy as np
import torch
import traitlets

from flowlib import ode
from flowlib._validate import as_points, check_callable, check_positive_int
from flowlib.exact import GaussianMixture
from flowlib.nets import detached
from flowlib.viz import PALETTE, with_html_fallback

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
FlowMapFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

_instance_counter = itertools.count()


def _asset(name: str) -> str:
    return resources.files("flowlib").joinpath("assets", name).read_text(encoding="utf-8")


@dataclass
class Explorer:
    """A ready-to-show explorer. Display it in a notebook, or :meth:`save` it as a web page.

    Attributes:
        html: the self-contained HTML + JavaScript block.
        payload: the precomputed arrays (as sent to the page), for inspection and tests.
    """

    html: str
    payload: dict

    def _repr_html_(self) -> str:
        return self.html

    @property
    def n_bytes(self) -> int:
        """Size of the HTML block in bytes."""
        return len(self.html.encode("utf-8"))

    def save(self, path: str | Path) -> Path:
        """Write a standalone web page holding the explorer; returns the path."""
        target = Path(path)
        head = "<meta charset='utf-8'><title>Flow-map explorer</title>"
        page = f"<!DOCTYPE html><html><head>{head}</head><body>{self.html}</body></html>"
        target.write_text(page, encoding="utf-8")
        return target


def _round(array: np.ndarray, decimals: int = 3) -> list:
    return np.round(array.astype(np.float64), decimals).tolist()


def _reference_paths(
    velocity: Velocity | None,
    reference_flow_map: FlowMapFn | None,
    start: torch.Tensor,
    times: torch.Tensor,
    substeps: int,
) -> torch.Tensor:
    """True paths at the grid times, ``(n_times, n_paths, ...)``: chain the exact map, or integrate finely."""
    if reference_flow_map is not None:
        states = [start]
        for k in range(len(times) - 1):
            states.append(reference_flow_map(states[-1], float(times[k]), float(times[k + 1])))
        return torch.stack(states)
    fine = torch.linspace(float(times[0]), float(times[-1]), (len(times) - 1) * substeps + 1, dtype=torch.float64)
    path = ode.integrate(velocity, start, fine, solver="rk4", return_path=True)
    return path[::substeps]


def _default_jumps(velocity: Velocity, substeps: int) -> FlowMapFn:
    """A flow map from fine RK4 integration of ``velocity`` (exact up to solver error)."""

    def jump(x: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return ode.integrate(velocity, x, ode.pair_grid(s, t, substeps, x.shape[0]), solver="rk4")

    return jump


def _projector(project: object, paths: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """A map from flattened states ``(n, D)`` to display coordinates ``(n, 2)``."""
    flat = paths.reshape(-1, paths[0, 0].numel()).to(torch.float64)
    if project is None:
        centre = flat.mean(0)
        _, _, vh = torch.linalg.svd(flat - centre, full_matrices=False)
        basis = vh[:2].T  # (D, 2): the two leading principal directions
        return lambda x: (x.reshape(x.shape[0], -1).to(torch.float64) - centre) @ basis
    if isinstance(project, torch.Tensor):
        if project.shape != (flat.shape[1], 2):
            raise ValueError(f"project must be a ({flat.shape[1]}, 2) matrix; got {tuple(project.shape)}")
        matrix = project.to(torch.float64)
        return lambda x: x.reshape(x.shape[0], -1).to(torch.float64) @ matrix
    check_callable(project, "project", "project(points (n, D)) -> (n, 2)")
    return lambda x: project(x.reshape(x.shape[0], -1)).to(torch.float64)


def _spread_out(points: torch.Tensor, k: int) -> list[int]:
    """Indices of ``k`` rows of ``points`` far from each other (greedy farthest-point choice)."""
    chosen = [0]
    distance = (points - points[0]).norm(dim=1)
    for _ in range(k - 1):
        chosen.append(int(distance.argmax()))
        distance = torch.minimum(distance, (points - points[chosen[-1]]).norm(dim=1))
    return chosen


def _encode_images(images: torch.Tensor) -> str:
    """Quantise values in [-1, 1] to bytes 0..255 and base64-encode them."""
    levels = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
    return base64.b64encode(levels.tobytes()).decode("ascii")


def explore(
    velocity: Velocity | None = None,
    flow_map: FlowMapFn | None = None,
    *,
    start: torch.Tensor | None = None,
    n_paths: int = 100,
    highlight: int | Sequence[int] = 5,
    grid_size: int = 21,
    reference_flow_map: FlowMapFn | None = None,
    substeps: int = 16,
    project: torch.Tensor | Callable | None = None,
    image_shape: tuple[int, ...] | None = None,
    title: str = "",
    jump_label: str = "X_{s,t}(x_s)",
    seed: int = 0,
    max_bytes: int = 1_000_000,
) -> Explorer:
    """Precompute paths, tangents and jumps, and build the explorer.

    Args:
        velocity: ``velocity(x, t)``, the field whose paths are true (tangents come from it).
        flow_map: ``flow_map(x, s, t)``, the map whose jumps are shown — exact, or a learned FlowMap;
            ``s`` and ``t`` arrive as ``(batch,)`` tensors. Default: the true map.
        start: ``(n_paths, ...)`` starting points at t = 0; default ``n_paths`` draws of N(0, I)
            in the velocity's dimension (then ``velocity`` must accept ``(batch, 2)``).
        n_paths: number of paths when ``start`` is not given.
        highlight: how many paths get a tangent and jumps (chosen to end far apart), or their indices.
        grid_size: number of times in the grid on [0, 1] (the sliders' positions).
        reference_flow_map: an exact ``X_{s,t}`` used to draw the true paths (e.g. the
            oracle); default: RK4 integration of ``velocity`` with ``substeps`` per grid cell.
        substeps: RK4 steps per grid interval for the reference paths and default jumps.
        project: for states of more than 2 numbers, a ``(D, 2)`` matrix or a callable
            ``(n, D) -> (n, 2)``; default: the paths' two principal components.
        image_shape: e.g. ``(1, 8, 8)``: also show x_s, the jump and x_t as images.
        title: a heading shown above the picture.
        jump_label: how the jump is named in the legend.
        seed: seed of the default starting points.
        max_bytes: refuse to build an explorer larger than this.

    Returns:
        An :class:`Explorer` (displays itself in a notebook).

    Raises:
        ValueError: bad sizes, a callable returning the wrong shape, or a result over ``max_bytes``.
    """
    if velocity is None and reference_flow_map is None:
        raise ValueError("explore needs velocity (or reference_flow_map) to draw the true paths")
    if velocity is not None:
        check_callable(velocity, "velocity", "velocity(x, t)")
    if isinstance(flow_map, torch.nn.Module):  # a trained FlowMap: no gradients, in its own dtype and device
        flow_map = detached(flow_map)
    if flow_map is not None:
        check_callable(flow_map, "flow_map", "flow_map(x, s, t)")
    check_positive_int(grid_size, "grid_size", minimum=2)
    check_positive_int(substeps, "substeps")
    if start is None:
        check_positive_int(n_paths, "n_paths")
        start = torch.randn(n_paths, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    as_points(start, "start")
    start = start.to(torch.float64)
    n_total = start.shape[0]
    if isinstance(highlight, int):
        check_positive_int(highlight, "highlight")
        chosen = None  # chosen below, once the paths are known
    else:
        chosen = [int(i) for i in highlight]
        if not chosen or any(i < 0 or i >= n_total for i in chosen):
            raise ValueError(f"highlight must name between 1 and {n_total} path indices in [0, {n_total})")
    dim = start[0].numel()
    if image_shape is not None and math.prod(image_shape) != dim:
        raise ValueError(f"image_shape {image_shape} has {math.prod(image_shape)} values; states have {dim}")

    times = torch.linspace(0.0, 1.0, grid_size, dtype=torch.float64)
    with torch.no_grad():
        paths = _reference_paths(velocity, reference_flow_map, start, times, substeps)  # (G, P, ...)
        if chosen is None:
            chosen = _spread_out(paths[-1].reshape(n_total, -1), min(highlight, n_total))
        picked = paths[:, chosen]  # (G, H, ...)
        g, h = picked.shape[0], picked.shape[1]
        flat_x = picked.reshape(g * h, *picked.shape[2:])
        flat_t = times.repeat_interleave(h)
        tangents = velocity(flat_x, flat_t).reshape(picked.shape) if velocity is not None else None
        jump = flow_map if flow_map is not None else (reference_flow_map or _default_jumps(velocity, substeps))
        # every (s_i, t_j) pair: x = path at s_i, repeated over the G target times
        x_rep = picked[:, None].expand(g, g, *picked.shape[1:]).reshape(g * g * h, *picked.shape[2:])
        s_rep = times[:, None, None].expand(g, g, h).reshape(-1)
        t_rep = times[None, :, None].expand(g, g, h).reshape(-1)
        jumps = jump(x_rep, s_rep, t_rep)
        if not isinstance(jumps, torch.Tensor) or jumps.shape != x_rep.shape:
            raise ValueError(f"flow_map(x, s, t) must return x's shape {tuple(x_rep.shape)}")
        jumps = jumps.to(torch.float64).reshape(g, g, *picked.shape[1:])  # (G_s, G_t, H, ...)

    payload = _display_payload(paths, picked, tangents, jumps, times, dim, project, image_shape)
    payload.update(
        title=title,
        jump_label=jump_label,
        colors=[PALETTE[(i + 1) % len(PALETTE)] for i in range(h)],
        path_ids=chosen,
        n_paths=n_total,
        exact_jumps=flow_map is None,
    )
    html = _render(payload)
    if len(html.encode("utf-8")) > max_bytes:
        raise ValueError(
            f"explorer is {len(html.encode('utf-8'))} bytes > max_bytes = {max_bytes}; "
            "use fewer paths, fewer highlighted paths or a coarser grid"
        )
    return Explorer(html=html, payload=payload)


def _display_payload(
    paths: torch.Tensor,
    picked: torch.Tensor,
    tangents: torch.Tensor | None,
    jumps: torch.Tensor,
    times: torch.Tensor,
    dim: int,
    project: object,
    image_shape: tuple[int, ...] | None,
) -> dict:
    """Turn states into display coordinates (and image bytes) for the page."""
    g, n_paths = paths.shape[0], paths.shape[1]
    h = picked.shape[1]

    def flat(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)

    truth = picked[None].expand_as(jumps)  # the true point at t_j on path h, for every s_i
    errors = (jumps - truth).reshape(g, g, h, -1).norm(dim=-1)  # (G_s, G_t, H)
    if dim == 1:
        mode = "1d"
        positions = paths.reshape(g, n_paths)
        path_xy = torch.stack([times[:, None].expand(g, n_paths), positions], -1)
        jump_xy = torch.stack([times[None, :, None].expand(g, g, h), jumps.reshape(g, g, h)], -1)
        tangent_xy = (
            torch.stack([torch.ones(g, h, dtype=torch.float64), tangents.reshape(g, h)], -1)
            if tangents is not None
            else None
        )
        values = {
            "x": picked.reshape(g, h, 1),
            "b": tangents.reshape(g, h, 1) if tangents is not None else None,
            "jump": jumps.reshape(g, g, h, 1),
        }
    else:
        mode = "2d" if dim == 2 else "projected"
        to_xy = (lambda x: flat(x).to(torch.float64)) if dim == 2 else _projector(project, paths)
        path_xy = to_xy(paths.reshape(g * n_paths, -1)).reshape(g, n_paths, 2)
        jump_xy = to_xy(jumps.reshape(g * g * h, -1)).reshape(g, g, h, 2)
        tangent_xy = None
        if tangents is not None:
            base = picked.reshape(g * h, -1)
            step = 1e-3
            tangent_xy = ((to_xy(base + step * tangents.reshape(g * h, -1)) - to_xy(base)) / step).reshape(g, h, 2)
        values = None
        if dim == 2:
            values = {"x": picked, "b": tangents, "jump": jumps}
    payload = {
        "mode": mode,
        "times": _round(times.numpy(), 4),
        "paths": _round(path_xy.transpose(0, 1).numpy()),  # (P, G, 2)
        "jumps": _round(jump_xy.permute(2, 0, 1, 3).numpy()),  # (H, G_s, G_t, 2)
        "tangents": _round(tangent_xy.transpose(0, 1).numpy()) if tangent_xy is not None else None,  # (H, G, 2)
        "errors": _round(errors.permute(2, 0, 1).numpy(), 4),  # (H, G_s, G_t)
        "dim": dim,
    }
    if values is not None:
        payload["values"] = {
            "x": _round(values["x"].transpose(0, 1).numpy()),
            "b": _round(values["b"].transpose(0, 1).numpy()) if values["b"] is not None else None,
            "jump": _round(values["jump"].permute(2, 0, 1, 3).numpy()),
        }
    if image_shape is not None:
        c, hh, ww = (1, *image_shape) if len(image_shape) == 2 else image_shape
        payload["images"] = {
            "shape": [c, hh, ww],
            "paths": _encode_images(picked.transpose(0, 1).reshape(-1)),  # (H, G, D)
            "jumps": _encode_images(jumps.permute(2, 0, 1, *range(3, jumps.ndim)).reshape(-1)),  # (H, G, G, D)
        }
    # frame every path; let jumps widen it only up to their 1%-99% range (a bad learned jump stays visible
    # as an arrow leaving the frame rather than shrinking the picture)
    pts = path_xy.reshape(-1, 2)
    jmp = jump_xy.reshape(-1, 2)
    jmp = jmp[torch.isfinite(jmp).all(1)]
    lo, hi = pts.min(0).values, pts.max(0).values
    if jmp.shape[0]:
        lo = torch.minimum(lo, torch.quantile(jmp, 0.01, dim=0))
        hi = torch.maximum(hi, torch.quantile(jmp, 0.99, dim=0))
    pad = 0.05 * (hi - lo).clamp(min=1e-6)
    payload["bounds"] = _round(torch.stack([lo - pad, hi + pad]).numpy(), 3)
    return payload


def _render(payload: dict, script: str = "explorer.js", entry: str = "flowlibExplorer") -> str:
    """Wrap the payload, the stylesheet and the script into one HTML block."""
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    digest = hashlib.sha1(body.encode("utf-8")).hexdigest()[:8]
    uid = f"fx{digest}{next(_instance_counter)}"
    css = _asset("explorer.css")
    js = _asset(script)
    return (
        f'<div class="flowlib-explorer" id="{uid}" data-flowlib-explorer="1">'
        f"<style>{css}</style>"
        f"<noscript>This interactive explorer needs JavaScript.</noscript>"
        f'<script type="application/json" class="fx-data">{body}</script>'
        # find the root from the running script when possible (JupyterLab runs output scripts when they are
        # attached, Colab in an iframe); fall back to the id (classic Jupyter evaluates scripts out of line)
        f"<script>{js}\n{entry}((document.currentScript && document.currentScript.closest('.flowlib-explorer'))"
        f" || document.getElementById('{uid}'));</script>"
        f"</div>"
    )


def _learned_tangent(model: FlowMapFn, points: torch.Tensor, s: float) -> torch.Tensor:
    r"""A learned map's tangent at time s, :math:`\partial_t X_{s,t}(x)|_{t=s}`, for ``points`` of shape ``(n, 2)``.

    Its diagonal velocity head if it has one, else a one-sided difference of width 1e-3 (backwards at s = 1).
    """
    n = points.shape[0]
    if hasattr(model, "velocity"):
        return detached(model, model.velocity)(points, torch.full((n,), s))
    call, h = detached(model), 1e-3
    if s + h <= 1.0:
        return (call(points, torch.full((n,), s), torch.full((n,), s + h)) - points) / h
    return (points - call(points, torch.full((n,), s), torch.full((n,), s - h))) / h


def _learned_field(model: FlowMapFn, extent: float, grid: int, time_grid: int) -> dict:
    """A learned map's jumps ``[is][it][iy][ix][2]`` and tangents ``[is][iy][ix][2]`` on a grid of the view."""
    axis = torch.linspace(-extent, extent, grid, dtype=torch.float64)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    points = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1).float()
    times = torch.linspace(0.0, 1.0, time_grid)
    call = detached(model)
    n = points.shape[0]
    jumps = torch.stack([
        torch.stack([call(points, torch.full((n,), float(s)), torch.full((n,), float(t))) for t in times])
        for s in times
    ])  # fmt: skip
    tangents = torch.stack([_learned_tangent(model, points, float(s)) for s in times])
    shape = (time_grid, time_grid, grid, grid, 2)
    return {
        "grid": grid,
        "times": _round(times.numpy(), 4),
        "jumps": _round(jumps.reshape(shape).double().numpy(), 3),
        "tangents": _round(tangents.reshape(time_grid, grid, grid, 2).double().numpy(), 3),
    }


def _reward_grid(reward: Callable, extent: float, strength: float, label: str, n: int = 61) -> dict:
    """The reward on an ``n``² grid of the view, ``values[iy][ix]`` (y rows, x columns), for the page's shading."""
    axis = torch.linspace(-extent, extent, n, dtype=torch.float64)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    with torch.no_grad():
        values = torch.as_tensor(reward(torch.stack([xx.reshape(-1), yy.reshape(-1)], 1))).double()
    if values.shape != (n * n,) or not torch.isfinite(values).all():
        raise ValueError(f"reward must return one finite value per point, shape ({n * n},); got {tuple(values.shape)}")
    return {"values": _round(values.reshape(n, n).numpy(), 4), "strength": strength, "label": label}


def _named_models(model: object) -> dict[str, FlowMapFn]:
    """``{name: map}`` from one learned map (named "learned map"), a dict of them, or ``None`` (no learned map)."""
    if model is None:
        return {}
    models = dict(model) if isinstance(model, dict) else {"learned map": model}
    if not models:
        raise ValueError("model must hold at least one learned map when it is a dict; pass None for the exact map only")
    for name, each in models.items():
        if not isinstance(name, str):
            raise TypeError(f"model's keys must be names (str), got {name!r}")
        check_callable(each, f"model[{name!r}]", "model(x, s, t)")
    return models


def explore_mixture(
    mixture: object,
    model: FlowMapFn | dict[str, FlowMapFn] | None = None,
    *,
    start: Sequence[float] = (0.3, -0.5),
    s: float = 0.2,
    t: float = 0.8,
    u: float = 0.5,
    extent: float = 3.5,
    grid_size: int = 17,
    time_grid: int = 9,
    n_cloud: int = 400,
    steps_per_unit: int = 256,
    title: str = "",
    seed: int = 0,
    max_bytes: int = 1_000_000,
    live: bool = False,
    reward: Callable[[torch.Tensor], torch.Tensor] | None = None,
    strength: float = 1.0,
    reward_label: str = "r",
) -> Explorer | LiveMixtureExplorer:
    r"""An explorer of a 2D Gaussian mixture's exact flow map at any point and any times, with composition.

    The page evaluates the mixture's exact velocity from its parameters and integrates it with RK4
    (``steps_per_unit``, as :meth:`~flowlib.exact.GaussianMixture.flow_map`), so a click anywhere starts a path and
    the times s, t and u move continuously. It draws the path through the point, its tangent :math:`b_s(x)`, the
    jump :math:`X_{s,t}(x)` and the two jumps through u, :math:`X_{u,t}(X_{s,u}(x))`, and prints the composition
    residual :math:`\|X_{u,t}(X_{s,u}(x)) - X_{s,t}(x)\|`. With ``model``, a learned flow map
    :math:`X^\theta_{s,t}(x)` (or several, ``{name: map}``, with a menu that picks the one drawn) precomputed on a
    ``grid_size``² grid of the view and ``time_grid`` times (interpolated in the page) is drawn beside the exact one,
    with its tangent (its diagonal velocity), its error and its own composition residual.

    With ``reward``, the look-ahead from x at time s is drawn too (chapter 12): the reward as a shading, the exact
    denoiser :math:`D_s(x) = E[x_1 \mid x_s = x]`, exact draws of the posterior :math:`p(x_1 \mid x_s = x)` (a Gaussian
    mixture, sampled in the page), the end of x's path :math:`X_{s,1}(x)` and the learned one; the readout compares
    the plug-ins :math:`\lambda r(D_s(x))` and :math:`\lambda r(X_{s,1}(x))` with the log-value
    :math:`\log h_s(x) = \log E[e^{\lambda r(x_1)} \mid x_s = x]`, averaged over 1024 exact posterior draws.

    With ``live=True`` the explorer is a widget (:class:`LiveMixtureExplorer`): the page asks the running kernel for
    the learned map at the very point and times the reader picks, instead of interpolating a field. Where no kernel
    runs (the static site, a saved notebook) the widget shows the precomputed page instead and says so.

    Args:
        mixture: a two-dimensional :class:`~flowlib.exact.GaussianMixture`.
        model: a learned map ``model(x, s, t)`` (e.g. a :class:`~flowlib.flowmap.FlowMap`), a dict of them by name,
            or ``None``.
        start: the first point x, at time ``s``.
        s: the first start time, in [0, 1].
        t: the first end time.
        u: the first intermediate time (of the composition).
        extent: the view is the square :math:`[-e, e]^2` (and the learned field's grid).
        grid_size: points per side of the learned field's grid.
        time_grid: times in [0, 1] of the learned field.
        n_cloud: samples of the mixture (with their noise) drawn as the cloud at time s.
        steps_per_unit: RK4 steps per unit of time of the exact map in the page.
        title: a line above the explorer.
        seed: seed of the cloud.
        max_bytes: refuse to build a page larger than this.
        live: ask the kernel for the learned map (needs ``model``; a widget, with the static page as its fallback).
        reward: ``r(x)``, ``(n, 2)`` → ``(n,)``, drawn with the look-ahead (evaluated on a 61² grid of the view).
        strength: the tilt's :math:`\lambda` in the log-value and the plug-ins.
        reward_label: how the legend names the reward.

    Returns:
        An :class:`Explorer` (display it, or :meth:`Explorer.save` it), or with ``live`` a
        :class:`LiveMixtureExplorer`.
    """
    if not isinstance(mixture, GaussianMixture) or mixture.dim != 2:
        raise TypeError(f"mixture must be a two-dimensional GaussianMixture, got {mixture!r}")
    models = _named_models(model)
    for name, value in (("s", s), ("t", t), ("u", u)):
        if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a time in [0, 1], got {value!r}")
    if len(start) != 2:
        raise ValueError(f"start must be one point (x, y), got {start!r}")
    check_positive_int(grid_size, "grid_size", minimum=2)
    check_positive_int(time_grid, "time_grid", minimum=2)
    check_positive_int(n_cloud, "n_cloud")
    check_positive_int(steps_per_unit, "steps_per_unit")
    if reward is not None:
        check_callable(reward, "reward", "reward(x) with x of shape (n, 2)")
    if not isinstance(strength, (int, float)) or not math.isfinite(strength):
        raise ValueError(f"strength must be a finite number, got {strength!r}")
    if live and not models:
        raise ValueError("live=True needs a model: the kernel answers with the learned map (the page has the exact)")
    data = mixture.sample(n_cloud, seed=seed)
    noise = torch.randn(n_cloud, 2, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    payload = {
        "title": title,
        "interpolant": mixture.interpolant.name,
        "weights": mixture.weights.tolist(),
        "means": mixture.means.tolist(),
        "eigenvalues": mixture._eigenvalues.tolist(),
        "eigenvectors": mixture._eigenvectors.tolist(),
        "steps_per_unit": steps_per_unit,
        "extent": float(extent),
        "start": [float(v) for v in start],
        "s": float(s),
        "t": float(t),
        "u": float(u),
        "cloud": _round(torch.cat([noise, data.double()], 1).numpy(), 3),
        "reward": _reward_grid(reward, extent, float(strength), reward_label) if reward is not None else None,
        "learned_names": list(models),
        "learned": [_learned_field(each, extent, grid_size, time_grid) for each in models.values()],
    }
    html = _render(payload, "mixture_explorer.js", "flowlibMixtureExplorer")
    if len(html.encode("utf-8")) > max_bytes:
        raise ValueError(
            f"the explorer would be {len(html.encode('utf-8')):,} bytes (max_bytes={max_bytes:,}): "
            "lower grid_size, time_grid or n_cloud"
        )
    if live:
        return LiveMixtureExplorer(models, {**payload, "learned": []}, fallback=html)
    return Explorer(html, payload)


def _in_colab() -> bool:
    try:
        import google.colab  # noqa: F401  (only importable inside Colab)
    except ImportError:
        return False
    return True


class LiveMixtureExplorer(anywidget.AnyWidget):
    r"""The mixture explorer as a live widget: the page draws the exact map and asks the kernel for the learned one.

    Each time the reader moves the point x or the times s, t, u, the page sets ``query`` to
    ``{key, model, x: [x1, x2], s, t, u}`` (``model``: the name of the learned map the menu shows); the kernel
    answers in ``answer`` with the learned jumps
    :math:`X^\theta_{s,t}(x)`, :math:`X^\theta_{s,u}(x)`, :math:`X^\theta_{u,t}(X^\theta_{s,u}(x))` and the tangent
    (the map's diagonal velocity), or with ``{key, error}`` if the model raised. One query is in flight at a time.
    Shown where no kernel runs (a static site), the widget's HTML fallback is the precomputed explorer.

    Build it with :func:`explore_mixture` (``live=True``). In Colab, the custom widget manager is switched on when
    the widget is made (Colab needs it for any widget outside ipywidgets).
    """

    _esm = _asset("mixture_explorer.js") + _asset("mixture_explorer_live.js")
    _css = _asset("explorer.css")
    payload = traitlets.Dict().tag(sync=True)
    query = traitlets.Dict().tag(sync=True)
    answer = traitlets.Dict().tag(sync=True)

    def __init__(self, models: dict[str, FlowMapFn], payload: dict, fallback: str) -> None:
        """Args: models: learned maps ``model(x, s, t)`` by name; payload: the page's data; fallback: static page."""
        if _in_colab():
            from google.colab import output

            output.enable_custom_widget_manager()
        super().__init__(payload=payload)
        self.models, self.fallback = dict(models), fallback
        self.observe(self._on_query, names="query")

    def learned_at(self, x: Sequence[float], s: float, t: float, u: float, name: str | None = None) -> dict:
        r"""Learned map ``name`` (default: the first) at one point: ``{end, mid, via, tangent, ahead}``, each 2 numbers.

        ``ahead`` is :math:`X_{s,1}(x)`, the look-ahead the page draws when the explorer has a reward.
        """
        model = self.models[name if name is not None else next(iter(self.models))]
        point = torch.tensor([[float(x[0]), float(x[1])]], dtype=torch.float64)
        call = detached(model)

        def jump(y: torch.Tensor, a: float, b: float) -> torch.Tensor:
            return call(y, torch.full((1,), a, dtype=torch.float64), torch.full((1,), b, dtype=torch.float64))

        mid = jump(point, s, u)
        return {
            "end": jump(point, s, t)[0].tolist(),
            "mid": mid[0].tolist(),
            "via": jump(mid, u, t)[0].tolist(),
            "tangent": _learned_tangent(model, point, float(s))[0].tolist(),
            "ahead": jump(point, s, 1.0)[0].tolist(),
        }

    def _on_query(self, change: dict) -> None:
        query = change["new"]
        try:
            reply = self.learned_at(query["x"], query["s"], query["t"], query["u"], query.get("model"))
        except Exception as error:  # noqa: BLE001  (the reader's model: report, never break the page)
            reply = {"error": f"{type(error).__name__}: {error}"}
        self.answer = {"key": query.get("key", ""), **reply}

    def _repr_mimebundle_(self, **kwargs: object) -> dict:
        return with_html_fallback(super()._repr_mimebundle_(**kwargs), self.fallback)
