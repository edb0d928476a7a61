r"""One way to sample every model of the book: ``sample(model, x, steps)`` (chapters 3, 4 and 9).

What a step means depends on what the model is (its ``kind``, :data:`flowlib.flowmap.KINDS`):

* a **velocity** (a :class:`~flowlib.flowmap.VelocityModel`, or any function ``velocity(x, t)`` such
  as an oracle's): one step of an ODE solver, :math:`x \leftarrow \mathrm{step}(b, x, t_k, t_{k+1} - t_k)`
  (:func:`integrate_velocity`);
* a **flow map**: one jump, :math:`x \leftarrow X_{t_k, t_{k+1}}(x)` (:func:`compose_jumps`);
* a **consistency model**, which only knows jumps to the data: jump to the data, then re-noise to
  the next time, :math:`x \leftarrow X_{t_k,1}(I_{t_k}(z, x))` with fresh noise :math:`z`
  (:func:`jump_and_renoise`).

A velocity can also be sampled stochastically (:func:`integrate_sde`, chapter 9): an SDE whose marginals
are the ODE's at every time, with different paths, which no flow map represents.

The three samplers are flat functions with the same signature ``(model, x, times, ...)``, in the
style of k-diffusion, so they can be read and compared side by side. Models run without gradients,
in their own dtype and on their own device; the result comes back in ``x``'s dtype and device.

Example:
    >>> import torch
    >>> from flowlib import data, sampling
    >>> mix = data.mixture("eight_gaussians")
    >>> z = torch.randn(500, 2, dtype=torch.float64)
    >>> x1 = sampling.sample(mix.velocity, z, steps=8)          # 8 Heun steps of the exact velocity
    >>> sampling.nfe(mix.velocity, steps=8)                     # velocity evaluations they cost
    16
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from flowlib import ode
from flowlib._validate import as_points, as_time_grid, check_choice, check_positive_int
from flowlib.interpolants import Interpolant, get_interpolant
from flowlib.nets import detached

Steps = int | Sequence[float] | torch.Tensor
#: ``noise(k)`` returns the fresh noise a re-noising sampler uses before its k-th jump, shaped like x.
NoiseFn = Callable[[int], torch.Tensor]


def kind_of(model: object) -> str:
    """``model.kind`` (``"velocity"``, ``"flow_map"`` or ``"consistency"``); a plain callable is a velocity."""
    kind = getattr(model, "kind", None)
    if kind is None:
        if not callable(model):
            raise TypeError(f"model must be a VelocityModel, a FlowMap or a velocity(x, t); got {type(model).__name__}")
        return "velocity"
    return check_choice(kind, "model.kind", ("velocity", "flow_map", "consistency"))


def _grid(steps: Steps) -> torch.Tensor:
    """An int k means k equal steps from 0 to 1; a sequence or tensor is the grid itself, ``(n_times,)``."""
    if isinstance(steps, int) and not isinstance(steps, bool):
        return ode.uniform_grid(check_positive_int(steps, "steps"))
    grid = as_time_grid(steps, "steps")
    if grid.ndim != 1:
        raise ValueError("steps must be an int or one grid of times (n_times,) shared by all points")
    return grid


def _plain(model: object, method: str | None = None) -> Callable[..., torch.Tensor]:
    """A network (or one of its methods) as a no-gradient function; anything else passes through."""
    if isinstance(model, nn.Module):
        return detached(model, getattr(model, method) if method else None)
    return model


@torch.no_grad()
def integrate_velocity(
    model: object, x: torch.Tensor, times: torch.Tensor, solver: str = "heun", return_path: bool = False
) -> torch.Tensor:
    r"""Integrate the model's velocity over ``times`` with ``solver`` (:func:`flowlib.ode.integrate`).

    A flow map given here is integrated through its diagonal :math:`v_{t,t}`.
    """
    velocity = _plain(model, "velocity" if getattr(model, "kind", None) in ("flow_map", "consistency") else None)
    return ode.integrate(velocity, x, times, solver, return_path=return_path)


@torch.no_grad()
def compose_jumps(model: nn.Module, x: torch.Tensor, times: torch.Tensor, return_path: bool = False) -> torch.Tensor:
    r"""Compose jumps along the grid, :math:`x \leftarrow X_{t_k, t_{k+1}}(x)` (increasing or decreasing)."""
    jump = _plain(model)
    path = [x]
    for k in range(len(times) - 1):
        path.append(jump(path[-1], float(times[k]), float(times[k + 1])))
    return torch.stack(path) if return_path else path[-1]


@torch.no_grad()
def jump_and_renoise(
    model: nn.Module,
    x: torch.Tensor,
    times: torch.Tensor,
    generator: torch.Generator | None = None,
    noise: NoiseFn | None = None,
    interpolant: str = "linear",
    return_path: bool = False,
) -> torch.Tensor:
    r"""Multistep sampling of a consistency model (chapter 9): jump to the data, re-noise, jump again.

    :math:`x \leftarrow X_{t_0,1}(x)`; then for each later grid time :math:`t_k < 1`,
    :math:`x \leftarrow X_{t_k,1}(I_{t_k}(z_k, x))` with fresh noise :math:`z_k`. Unlike composing
    flow-map jumps, each step forgets the path and draws a new one.

    Args:
        model: a flow map trained to jump to t = 1.
        x: noise ``(batch, ...)`` at ``times[0]``.
        times: an increasing grid ending at 1, ``(n_times,)``.
        generator: the source of the fresh noise (on ``x``'s device).
        noise: ``noise(k)`` returns the fresh noise for step ``k = 1, …, n_times - 2``, shaped like
            ``x`` (default: independent normal draws from ``generator``). The benchmark passes
            quasi-random sets, as it does for ``x``.
        interpolant: the path used for re-noising.
        return_path: also return the point after every jump, ``(n_times, batch, ...)``.
    """
    if not bool((times.diff() > 0).all()) or abs(float(times[-1]) - 1.0) > 1e-9:
        raise ValueError("a consistency model samples on an increasing grid that ends at t = 1")
    jump, path_of = _plain(model), get_interpolant(interpolant)
    path = [x, jump(x, float(times[0]), 1.0)]
    for k in range(1, len(times) - 1):
        if noise is None:
            fresh = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        else:
            fresh = noise(k)
            if not isinstance(fresh, torch.Tensor) or fresh.shape != x.shape:
                got = tuple(fresh.shape) if isinstance(fresh, torch.Tensor) else type(fresh).__name__
                raise ValueError(f"noise({k}) must return a tensor of shape {tuple(x.shape)}; got {got}")
            fresh = fresh.to(dtype=x.dtype, device=x.device)
        t = float(times[k])
        path.append(jump(path_of(fresh, path[-1], t), t, 1.0))
    return torch.stack(path) if return_path else path[-1]


def score_from_velocity(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    t: float,
    interpolant: str = "linear",
) -> torch.Tensor:
    r"""The score :math:`\nabla \log \rho_t(x)` of the path's marginal, from its velocity (Gaussian noise at t = 0).

    With :math:`x = \alpha_t x_0 + \beta_t x_1`, :math:`x_0 \sim \mathcal N(0, I)`, the velocity
    :math:`b_t = \dot\alpha_t \mathbb E[x_0|x] + \dot\beta_t \mathbb E[x_1|x]` and
    :math:`x = \alpha_t \mathbb E[x_0|x] + \beta_t \mathbb E[x_1|x]` give the expected noise, and
    Tweedie's formula the score:

    .. math::
        \mathbb E[x_0 \mid x] = \frac{\beta_t\, b_t(x) - \dot\beta_t\, x}{\dot\alpha_t \beta_t - \dot\beta_t \alpha_t},
        \qquad \nabla \log \rho_t(x) = -\frac{\mathbb E[x_0 \mid x]}{\alpha_t}
        \quad(\text{linear path: } \tfrac{t\, b_t(x) - x}{1 - t}).

    Args:
        velocity: ``velocity(x, t)`` with ``t`` a ``(batch,)`` tensor, the marginal velocity of the path.
        x: points ``(batch, ...)``.
        t: one time in [0, 1) (the score of the data, t = 1, is not defined by the velocity).
        interpolant: the path the velocity belongs to.

    Returns:
        ``(batch, ...)``, like ``x``.
    """
    if not 0.0 <= t < 1.0:
        raise ValueError(f"t must be in [0, 1) (alpha_t = 0 at t = 1); got {t}")
    b = velocity(x, torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device))
    return _score(b, x, t, get_interpolant(interpolant))


def _score(b: torch.Tensor, x: torch.Tensor, t: float, path: Interpolant) -> torch.Tensor:
    """The score at time ``t`` from the velocity ``b`` at ``x`` (the formula of :func:`score_from_velocity`)."""
    tt = torch.tensor(t, dtype=x.dtype, device=x.device)
    alpha, beta, dalpha, dbeta = path.alpha(tt), path.beta(tt), path.dalpha(tt), path.dbeta(tt)
    expected_noise = (beta * b - dbeta * x) / (dalpha * beta - dbeta * alpha)
    return -expected_noise / alpha


@torch.no_grad()
def integrate_sde(
    model: object,
    x: torch.Tensor,
    times: Steps,
    epsilon: float = 1.0,
    generator: torch.Generator | None = None,
    interpolant: str = "linear",
    return_path: bool = False,
) -> torch.Tensor:
    r"""Sample a velocity stochastically: Euler-Maruyama steps of an SDE with the ODE's marginals (chapter 9).

    .. math::
        dX_t = \big(b_t(X_t) + \epsilon\, \nabla \log \rho_t(X_t)\big)\, dt + \sqrt{2\epsilon}\, dW_t

    has the marginals :math:`\rho_t` of the probability-flow ODE :math:`\dot x = b_t(x)` for every
    :math:`\epsilon \ge 0` (the added drift and the noise cancel in the Fokker-Planck equation), but its
    paths are not the ODE's: the same starting point ends at different data points. The score comes from
    the velocity (:func:`score_from_velocity`); the last step, into t = 1, is a plain Euler step (no
    noise: the score is not defined at the data). ``epsilon = 0`` is Euler's method.

    Args:
        model: a :class:`~flowlib.flowmap.VelocityModel`, a flow map (its diagonal) or a ``velocity(x, t)``.
        x: noise ``(batch, ...)`` at ``times[0]``.
        times: the number of equal steps from 0 to 1, or an increasing grid ending at 1, ``(n_times,)``.
        epsilon: the noise level :math:`\epsilon \ge 0`.
        generator: the source of the Brownian increments (on ``x``'s device).
        interpolant: the path the velocity belongs to.
        return_path: also return the point after every step, ``(n_times, batch, ...)``.
    """
    if not isinstance(epsilon, (int, float)) or isinstance(epsilon, bool) or epsilon < 0:
        raise ValueError(f"epsilon must be a number >= 0; got {epsilon!r}")
    as_points(x, "x")
    times = _grid(times)
    if not bool((times.diff() > 0).all()) or abs(float(times[-1]) - 1.0) > 1e-9:
        raise ValueError("the SDE is integrated on an increasing grid that ends at t = 1")
    velocity = _plain(model, "velocity" if getattr(model, "kind", None) in ("flow_map", "consistency") else None)
    marginal_path = get_interpolant(interpolant)
    path = [x]
    for k in range(len(times) - 1):
        t, h = float(times[k]), float(times[k + 1] - times[k])
        current = path[-1]
        b = velocity(current, torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device))
        noise_level = 0.0 if k == len(times) - 2 else epsilon  # the last step is a plain Euler step
        path.append(sde_step(b, current, t, h, noise_level, generator, interpolant=marginal_path))
    return torch.stack(path) if return_path else path[-1]


def sde_step(
    b: torch.Tensor,
    x: torch.Tensor,
    t: float,
    h: float,
    epsilon: float,
    generator: torch.Generator | None = None,
    extra_drift: torch.Tensor | None = None,
    interpolant: str | Interpolant = "linear",
) -> torch.Tensor:
    r"""One Euler-Maruyama step of :func:`integrate_sde`'s SDE, from the velocity ``b`` already evaluated at ``x``:

    .. math::
        x \leftarrow x + h\,\big(b_t(x) + \epsilon\,(\nabla \log \rho_t(x) + g)\big) + \sqrt{2 \epsilon h}\,\xi,
        \qquad \xi \sim \mathcal N(0, I),

    where :math:`g` is an optional extra drift (``extra_drift``, e.g. the gradient of a log-tilt in chapter 12's
    tilted SDE), scaled by the same :math:`\epsilon`, so that the noise and the added drift are Langevin dynamics
    toward :math:`\rho_t e^{\phi}` when :math:`g = \nabla\phi`. ``epsilon = 0`` is an Euler step of the ODE.

    Args:
        b: ``(batch, ...)`` the velocity at ``x`` and ``t``.
        x: ``(batch, ...)`` the points at time ``t``.
        t: the time, in [0, 1) when ``epsilon > 0``.
        h: the step.
        epsilon: the noise level, ``>= 0``.
        generator: the source of the Brownian increment (on ``x``'s device).
        extra_drift: ``(batch, ...)`` or ``None``.
        interpolant: the path the velocity belongs to.

    Returns:
        ``(batch, ...)``, the points at time ``t + h``.
    """
    if epsilon == 0:
        return x + h * b
    path = get_interpolant(interpolant) if isinstance(interpolant, str) else interpolant
    drift = _score(b, x, t, path) if extra_drift is None else _score(b, x, t, path) + extra_drift
    kick = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return x + h * (b + epsilon * drift) + (2 * epsilon * h) ** 0.5 * kick


def sample(
    model: object,
    x: torch.Tensor,
    steps: Steps = 1,
    *,
    solver: str = "heun",
    generator: torch.Generator | None = None,
    noise: NoiseFn | None = None,
    return_path: bool = False,
) -> torch.Tensor:
    r"""Sample any model of the book: ``steps`` steps of the sampler its kind calls for.

    Args:
        model: a :class:`~flowlib.flowmap.VelocityModel`, a :class:`~flowlib.flowmap.FlowMap` (of kind
            ``"flow_map"`` or ``"consistency"``) or a function ``velocity(x, t)``.
        x: starting points ``(batch, ...)`` at the first time (noise at t = 0 by default).
        steps: the number of equal steps from 0 to 1, or the grid of times itself ``(n_times,)``.
        solver: the ODE solver for a velocity (ignored by flow maps).
        generator: the fresh noise of a consistency model's re-noising.
        noise: that fresh noise given explicitly (see :func:`jump_and_renoise`).
        return_path: also return every intermediate point, ``(n_times, batch, ...)``.

    Returns:
        The points at the grid's last time, ``(batch, ...)`` in ``x``'s dtype and device (or the path).

    Raises:
        TypeError: ``model`` is none of the above.
        ValueError: a bad grid, an unknown solver, or options that the model's kind does not use.
    """
    kind = kind_of(model)
    as_points(x, "x")
    grid = _grid(steps)
    if kind == "velocity":
        if generator is not None or noise is not None:
            raise ValueError(
                "generator and noise are for consistency models; a velocity is integrated deterministically"
            )
        return integrate_velocity(model, x, grid, solver, return_path)
    check_choice(solver, "solver", ode.STEPPERS)
    if kind == "flow_map":
        return compose_jumps(model, x, grid, return_path)
    return jump_and_renoise(model, x, grid, generator, noise, return_path=return_path)


def nfe(model: object, steps: Steps, solver: str = "heun") -> int:
    """Network evaluations that :func:`sample` spends: a solver's per step for a velocity, one per jump for a map."""
    n_steps = len(_grid(steps)) - 1
    return ode.nfe(solver, n_steps) if kind_of(model) == "velocity" else n_steps


def slerp(a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor | Sequence[float]) -> torch.Tensor:
    r"""Spherical interpolation between two noise tensors (chapter 11's interpolation through noise space).

    With :math:`\theta` the angle between ``a`` and ``b`` (flattened),

    .. math:: \operatorname{slerp}(a, b; w) = \frac{\sin((1 - w)\theta)}{\sin\theta}\, a
              + \frac{\sin(w\theta)}{\sin\theta}\, b .

    Between two draws of :math:`\mathcal N(0, I)` in many dimensions (nearly orthogonal, of nearly equal norm)
    it keeps the norm that noise has, where the straight line :math:`(1 - w) a + w b` dips to
    :math:`1/\sqrt 2` of it halfway, into a region the noise distribution almost never visits. For parallel
    ``a`` and ``b`` (:math:`\sin\theta \approx 0`) it falls back to the straight line.

    Args:
        a: a tensor of any shape, e.g. one noise image ``(C, H, W)``.
        b: a tensor of the same shape.
        weights: ``(K,)`` interpolation weights, 0 gives ``a`` and 1 gives ``b``.

    Returns:
        ``(K, *a.shape)``: one interpolant per weight.

    Raises:
        TypeError: ``a`` or ``b`` is not a tensor.
        ValueError: shapes differ, or the weights are not a 1-D list of finite numbers.
    """
    for value, name in ((a, "a"), (b, "b")):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    w = torch.as_tensor(weights, dtype=a.dtype, device=a.device)
    if w.ndim != 1 or not bool(torch.isfinite(w).all()):
        raise ValueError(f"weights must be a 1-D sequence of finite numbers, got {weights!r}")
    flat_a, flat_b = a.reshape(-1), b.reshape(-1)
    cosine = (flat_a @ flat_b / (flat_a.norm() * flat_b.norm()).clamp_min(1e-12)).clamp(-1.0, 1.0)
    theta = torch.arccos(cosine)
    shape = (-1,) + (1,) * a.ndim
    if float(torch.sin(theta)) < 1e-6:
        return (1 - w).reshape(shape) * a + w.reshape(shape) * b
    return (torch.sin((1 - w) * theta).reshape(shape) * a + torch.sin(w * theta).reshape(shape) * b) / torch.sin(theta)
