r"""How consistent is a map with a flow? The three rules of chapter 5 as measurable residuals.

For a map :math:`X_{s,t}` and a velocity :math:`b_t`:

* **compositional**: :math:`X_{u,t}(X_{s,u}(x)) - X_{s,t}(x)`
* **Lagrangian**: :math:`\partial_t X_{s,t}(x) - b_t(X_{s,t}(x))` (the end of a jump moves with the flow)
* **Eulerian**: :math:`\partial_s X_{s,t}(x) + \nabla X_{s,t}(x)\,b_s(x)` (the end does not move when the
  start slides along its path)

All three vanish for the exact flow map. Each function returns the residual's norm per point,
shape ``(batch,)``. Maps may be any callable ``flow_map(x, s, t)``; derivatives then come from
central differences (in the caller's dtype: use float64). A :class:`~flowlib.flowmap.FlowMap`
gets exact derivatives from its JVP instead.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from flowlib._validate import as_points, as_times, check_callable, check_choice, column
from flowlib.flowmap import FlowMap
from flowlib.nets import detached, placement

MapFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
KINDS = ("compositional", "lagrangian", "eulerian")


def _times(value: float | torch.Tensor, name: str, x: torch.Tensor) -> torch.Tensor:
    return as_times(value, name, x.shape[0], like=x)


def _norm(residual: torch.Tensor) -> torch.Tensor:
    return residual.flatten(1).norm(dim=1)


def compositional_residual(
    flow_map: MapFn, x: torch.Tensor, s: float | torch.Tensor, u: float | torch.Tensor, t: float | torch.Tensor
) -> torch.Tensor:
    r""":math:`\|X_{u,t}(X_{s,u}(x)) - X_{s,t}(x)\|` per point, ``(batch,)``."""
    check_callable(flow_map, "flow_map", "flow_map(x, s, t)")
    as_points(x, "x")
    ss, uu, tt = _times(s, "s", x), _times(u, "u", x), _times(t, "t", x)
    plain = detached(flow_map) if isinstance(flow_map, nn.Module) else flow_map
    with torch.no_grad():
        return _norm(plain(plain(x, ss, uu), uu, tt) - plain(x, ss, tt))


def _derivative(
    flow_map: MapFn | FlowMap, x: torch.Tensor, s: torch.Tensor, t: torch.Tensor, dx: torch.Tensor | None,
    ds: float, dt: float, eps: float
) -> torch.Tensor:  # fmt: skip
    r"""The derivative of :math:`X_{s + \varepsilon\dot s,\, t + \varepsilon\dot t}(x + \varepsilon\dot x)` at
    :math:`\varepsilon = 0`: a :class:`FlowMap`'s JVP, or a central difference that stays inside [0, 1]
    (one-sided at the ends), in ``x``'s dtype.
    """
    if isinstance(flow_map, FlowMap):
        dtype, device = placement(flow_map)
        on_model = [v.to(dtype=dtype, device=device) for v in (x, s, t)]
        tangent = dx.to(dtype=dtype, device=device) if dx is not None else None
        derivative = flow_map.jvp(*on_model, dx=tangent, ds=ds, dt=dt)[1]
        return derivative.detach().to(dtype=x.dtype, device=x.device)
    check_callable(flow_map, "flow_map", "flow_map(x, s, t)")
    moving = s if ds else t
    ahead, behind = (1.0 - moving).clamp(max=eps), moving.clamp(max=eps)
    direction = torch.zeros_like(x) if dx is None else dx
    with torch.no_grad():
        plus = flow_map(x + column(ahead, x) * direction, s + ahead * ds, t + ahead * dt)
        minus = flow_map(x - column(behind, x) * direction, s - behind * ds, t - behind * dt)
    return (plus - minus) / column(ahead + behind, x)


def lagrangian_residual(
    flow_map: MapFn | FlowMap,
    velocity: Velocity,
    x: torch.Tensor,
    s: float | torch.Tensor,
    t: float | torch.Tensor,
    eps: float = 1e-4,
) -> torch.Tensor:
    r""":math:`\|\partial_t X_{s,t}(x) - b_t(X_{s,t}(x))\|` per point, ``(batch,)``.

    Central differences in t, one-sided at t = 0 or 1; a :class:`FlowMap` uses its JVP.
    """
    check_callable(velocity, "velocity", "velocity(x, t)")
    as_points(x, "x")
    ss, tt = _times(s, "s", x), _times(t, "t", x)
    d_end = _derivative(flow_map, x, ss, tt, None, 0.0, 1.0, eps)
    plain = detached(flow_map) if isinstance(flow_map, nn.Module) else flow_map
    with torch.no_grad():
        return _norm(d_end - velocity(plain(x, ss, tt), tt))


def eulerian_residual(
    flow_map: MapFn | FlowMap,
    velocity: Velocity,
    x: torch.Tensor,
    s: float | torch.Tensor,
    t: float | torch.Tensor,
    eps: float = 1e-4,
) -> torch.Tensor:
    r""":math:`\|\partial_s X_{s,t}(x) + \nabla X_{s,t}(x)\,b_s(x)\|` per point, ``(batch,)``.

    Both terms together are the derivative of :math:`X_{s+\varepsilon,t}(x + \varepsilon\,b_s(x))` at
    :math:`\varepsilon = 0`: one directional derivative along :math:`(b_s(x), 1, 0)` (central differences,
    one-sided at s = 0 or 1; a :class:`FlowMap` uses its JVP).
    """
    check_callable(velocity, "velocity", "velocity(x, t)")
    as_points(x, "x")
    ss, tt = _times(s, "s", x), _times(t, "t", x)
    with torch.no_grad():
        b = velocity(x, ss)
    return _norm(_derivative(flow_map, x, ss, tt, b, 1.0, 0.0, eps))


def residual_grid(
    kind: str,
    flow_map: MapFn | FlowMap,
    velocity: Velocity,
    sample_at: Callable[[int, float], torch.Tensor],
    times: torch.Tensor,
    n: int = 256,
    eps: float = 1e-4,
) -> torch.Tensor:
    r"""Mean residual of one rule over a grid of :math:`(s, t)`, with :math:`x \sim p_s` at each :math:`s`.

    Args:
        kind: ``"compositional"`` (with :math:`u` halfway), ``"lagrangian"`` or ``"eulerian"``.
        flow_map: the map to test.
        velocity: the true velocity :math:`b_t` (unused by the compositional rule).
        sample_at: ``sample_at(n, s) -> (n, d)`` points of the flow at time s (e.g. a
            mixture's ``sample_marginal``).
        times: grid of times in [0, 1], ``(G,)``.
        n: points per grid time.
        eps: finite-difference step.

    Returns:
        ``(G, G)`` tensor: entry ``[i, j]`` is the mean residual for :math:`s = t_i`, :math:`t = t_j`.
    """
    check_choice(kind, "kind", KINDS)
    grid = torch.as_tensor(times, dtype=torch.float64)
    out = torch.zeros(len(grid), len(grid), dtype=torch.float64)
    for i, s in enumerate(grid.tolist()):
        x = sample_at(n, s)
        # every end time at once: one batched call per start time (the oracle's cost is per call)
        xs = x.repeat(len(grid), *([1] * (x.ndim - 1)))
        t = grid.to(x.dtype).repeat_interleave(n)
        start = torch.full_like(t, s)
        if kind == "compositional":
            residual = compositional_residual(flow_map, xs, start, 0.5 * (start + t), t)
        elif kind == "lagrangian":
            residual = lagrangian_residual(flow_map, velocity, xs, start, t, eps)
        else:
            residual = eulerian_residual(flow_map, velocity, xs, start, t, eps)
        out[i] = residual.reshape(len(grid), n).mean(1)
    return out
