r"""Training objectives, one function each, with the loss in the book's notation (chapters 2, 5-9).

Conventions: :math:`x_0 \sim N(0, I)` is noise, :math:`x_1` data, :math:`I_s = \alpha_s x_0 + \beta_s x_1`
the interpolant; ``model`` is a :class:`flowlib.flowmap.FlowMap` :math:`X^\theta_{s,t}(x) = x + (t-s)v^\theta_{s,t}(x)`;
:math:`\mathrm{sg}` is stop-gradient; a prime marks a teacher (the model's own current weights
under :math:`\mathrm{sg}`, an EMA copy, or a separate trained network).

:func:`flowlib.fit` calls these very functions. Every loss takes ``reduction``: ``"mean"`` (the default)
returns a scalar, ``"none"`` the **per-sample** loss, shape ``(batch,)`` (the squared error averaged
over coordinates), which :func:`flowlib.fit` uses to weight the diagonal against the jumps.

Losses by chapter (residuals squared; see each function for its equation):

* chapter 2 — :func:`flow_matching`
* chapter 5 — :func:`diagonal` (the tangent condition :math:`v_{s,s} = b_s` against a target velocity)
* chapter 6 — :func:`lmd` (Lagrangian), :func:`emd` (Eulerian), :func:`progressive` (compositional):
  distillation from a teacher velocity or map
* chapter 7 — :func:`lsd`, :func:`esd`, :func:`psd`: self-distillation, the model is its own teacher
  (:func:`psd` and :func:`shortcut` can regress the diagonal in the same forward pass: ``on_diagonal``)
* chapter 8 — :func:`meanflow`, :func:`improved_meanflow`: learning from conditional velocities
* chapter 9 — :func:`consistency_distillation`, :func:`consistency_training`, :func:`shortcut`
* chapter 10 — :func:`posterior_velocity`: a less noisy target for the diagonal
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from flowlib._validate import TimeLike, check_callable, check_choice, check_positive_int, column
from flowlib.flowmap import FlowMap
from flowlib.interpolants import Interpolant, get_interpolant

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MapFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _reduce(residual: torch.Tensor, reduction: str) -> torch.Tensor:
    """Squared error averaged over the coordinates of each sample, ``(batch, ...)`` → ``(batch,)``,
    then averaged over the batch (``"mean"``) or not (``"none"``).
    """
    per_sample = residual.pow(2).flatten(1).mean(1)
    return per_sample.mean() if check_choice(reduction, "reduction", ("mean", "none")) == "mean" else per_sample


def _check_model(model: object) -> None:
    if not isinstance(model, FlowMap):
        raise TypeError(f"model must be a flowlib.flowmap.FlowMap, got {type(model).__name__}")


# ----------------------------------------------------------------------------------------- chapter 2
def flow_matching(
    velocity: Velocity,
    x0: torch.Tensor,
    x1: torch.Tensor,
    t: TimeLike,
    interpolant: str | Interpolant = "linear",
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Flow matching (chapter 2): regress the velocity on the conditional velocity.

    .. math:: L(\theta) = E\,\| b^\theta_t(I_t) - \dot I_t \|^2

    Its minimiser is the marginal velocity :math:`b_t(x) = E[\dot I_t \mid I_t = x]`,
    although every single target :math:`\dot I_t` is a conditional one.

    Args:
        velocity: ``velocity(x, t)``, e.g. an :class:`flowlib.nets.MLP` with one time.
        x0: noise, ``(batch, ...)``.
        x1: data, ``(batch, ...)``.
        t: times, float or ``(batch,)``.
        interpolant: the interpolant's name or object.
        reduction: ``"mean"`` (a scalar) or ``"none"`` (``(batch,)``).

    Returns:
        The mean squared error per coordinate.
    """
    check_callable(velocity, "velocity", "velocity(x, t)")
    path = get_interpolant(interpolant).sample_path(x0, x1, t)
    prediction = velocity(path.xt, path.t)
    if prediction.shape != path.dxt.shape:
        raise ValueError(f"velocity returned shape {tuple(prediction.shape)}, expected {tuple(path.dxt.shape)}")
    return _reduce(prediction - path.dxt, reduction)


# ----------------------------------------------------------------------------------------- chapter 5
def diagonal(
    model: FlowMap, x: torch.Tensor, s: torch.Tensor, target: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    r"""The tangent condition on the diagonal of a flow map: :math:`\|v^\theta_{s,s}(x) - \mathrm{sg}[b]\|^2`.

    ``target`` is the velocity :math:`b` to learn at :math:`(x, s)`: the conditional velocity
    :math:`\dot I_s` of flow matching (with ``x`` :math:`= I_s`), a lower-variance estimate of the
    marginal one (:func:`posterior_velocity`), or a teacher's :math:`b_s(x)` (chapter 6).

    Args:
        model: the flow map.
        x: points ``(batch, ...)`` at times ``s``.
        s: times ``(batch,)``.
        target: ``(batch, ...)``, used without gradient.
        reduction: ``"mean"`` or ``"none"``.
    """
    _check_model(model)
    return _reduce(model.velocity(x, s) - target.detach().to(x.dtype), reduction)


def posterior_velocity(
    x0: torch.Tensor,
    x1: torch.Tensor,
    t: torch.Tensor,
    references: torch.Tensor,
    interpolant: str | Interpolant = "linear",
) -> torch.Tensor:
    r"""A low-variance estimate of the marginal velocity :math:`b_t(I_t)` at :math:`I_t = \alpha_t x_0 + \beta_t x_1`.

    The flow-matching target :math:`\dot I_t` is the velocity of *one* pair :math:`(x_0, x_1)`; the marginal
    velocity is its mean over every data point that could have produced :math:`I_t`. With references
    :math:`r_1, \dots, r_m` — the batch's own :math:`x_1` and more data — each weighted by how well it
    explains :math:`I_t \sim N(\beta_t r_j, \alpha_t^2 I)`,

    .. math:: w_j \propto \exp\!\Big(-\frac{\|I_t - \beta_t r_j\|^2}{2\alpha_t^2}\Big), \quad
              \hat x_1 = \sum_j w_j r_j, \quad \hat x_0 = \frac{I_t - \beta_t \hat x_1}{\alpha_t}, \quad
              \hat b_t = \dot\alpha_t \hat x_0 + \dot\beta_t \hat x_1,

    the stable-target-field estimate of Xu, Tong and Jaakkola (2023): consistent as m grows, and far less noisy than
    :math:`\dot I_t` where many data points are plausible (small t). Where :math:`\alpha_t < 10^{-4}` the
    pair's own :math:`\dot I_t` is returned.

    Args:
        x0: noise ``(batch, ...)``.
        x1: data ``(batch, ...)``; every row is also a reference.
        t: times ``(batch,)``.
        references: more data samples ``(m, ...)`` (may be empty).
        interpolant: the path.

    Returns:
        ``(batch, ...)``, the estimate at :math:`I_t`.
    """
    path = get_interpolant(interpolant)
    sample = path.sample_path(x0, x1, t)
    if references.ndim != x1.ndim or references.shape[1:] != x1.shape[1:]:
        raise ValueError(
            f"references must have shape (m, {', '.join(map(str, x1.shape[1:]))}); got {tuple(references.shape)}"
        )
    alpha, beta = path.alpha(t)[:, None], path.beta(t)[:, None]
    safe_alpha = alpha.clamp(min=1e-4)
    points = sample.xt.flatten(1)
    pool = torch.cat([x1, references.to(x1.dtype)]).flatten(1)
    squared = (points * points).sum(1, keepdim=True) - 2 * beta * (points @ pool.T) + beta**2 * (pool * pool).sum(1)
    weights = torch.softmax(-squared / (2 * safe_alpha**2), dim=1)
    x1_hat = weights @ pool
    x0_hat = (points - beta * x1_hat) / safe_alpha
    estimate = path.dalpha(t)[:, None] * x0_hat + path.dbeta(t)[:, None] * x1_hat
    return torch.where(alpha < 1e-4, sample.dxt.flatten(1), estimate).reshape(x1.shape)


# ----------------------------------------------------------------------------------------- chapter 6
def lmd(
    model: FlowMap,
    teacher: Velocity,
    x: torch.Tensor,
    s: torch.Tensor,
    t: torch.Tensor,
    stopgrad_target: bool = False,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Lagrangian map distillation:

    .. math:: \|\partial_t X_{s,t}(x_s) - b_t(X_{s,t}(x_s))\|^2

    The Lagrangian rule says each jump's end moves with the teacher's velocity as t grows.

    Args:
        model: the student flow map.
        teacher: the velocity :math:`b_t(x)` to distil (exact or a trained network).
        x: points :math:`x_s` on the flow at time s, ``(batch, ...)``.
        s: start times ``(batch,)``.
        t: end times ``(batch,)``.
        stopgrad_target: evaluate :math:`b_t` at :math:`\mathrm{sg}[X_{s,t}]` (gradient only through
            :math:`\partial_t X`); the default lets the gradient flow through both.
        reduction: ``"mean"`` (a scalar) or ``"none"`` (``(batch,)``).
    """
    _check_model(model)
    check_callable(teacher, "teacher", "teacher(x, t)")
    end, d_end = model.jvp(x, s, t, dt=1.0)
    target = teacher(end.detach() if stopgrad_target else end, t)
    return _reduce(d_end - target, reduction)


def emd(
    model: FlowMap, teacher: Velocity, x: torch.Tensor, s: torch.Tensor, t: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    r"""Eulerian map distillation:

    .. math:: \|\partial_s X_{s,t}(x_s) + \nabla X_{s,t}(x_s)\,b_s(x_s)\|^2

    The Eulerian rule says the jump's end does not move when its start slides along the path.
    One JVP with tangent :math:`(b_s(x_s), 1, 0)` in :math:`(x, s, t)` computes the whole residual.
    """
    _check_model(model)
    check_callable(teacher, "teacher", "teacher(x, t)")
    with torch.no_grad():
        b = teacher(x, s)
    _, residual = model.jvp(x, s, t, dx=b, ds=1.0)
    return _reduce(residual, reduction)


def progressive(
    model: FlowMap,
    teacher_map: MapFn,
    x: torch.Tensor,
    s: torch.Tensor,
    t: torch.Tensor,
    u: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Progressive flow-map matching:

    .. math:: \|X_{s,t}(x_s) - \mathrm{sg}[X'_{u,t}(X'_{s,u}(x_s))]\|^2

    The compositional rule with a teacher that is trusted on the shorter jumps (a pre-trained flow
    map, or a few solver steps of a velocity). ``u`` defaults to the midpoint.
    """
    _check_model(model)
    check_callable(teacher_map, "teacher_map", "teacher_map(x, s, t)")
    u = 0.5 * (s + t) if u is None else u
    with torch.no_grad():
        target = teacher_map(teacher_map(x, s, u), u, t)
    return _reduce(model(x, s, t) - target, reduction)


# ----------------------------------------------------------------------------------------- chapter 7
def lsd(
    model: FlowMap, teacher: FlowMap, x: torch.Tensor, s: torch.Tensor, t: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    r"""Lagrangian self-distillation (off-diagonal part):

    .. math:: \|\partial_t X_{s,t}(x_s) - \mathrm{sg}[v'_{t,t}(\mathrm{sg}\,X_{s,t}(x_s))]\|^2

    The model's own diagonal :math:`v'_{t,t}` (current weights or EMA) plays the teacher's velocity.
    Pair it with :func:`diagonal` on the diagonal pairs.
    """
    _check_model(model)
    _check_model(teacher)
    end, d_end = model.jvp(x, s, t, dt=1.0)
    with torch.no_grad():
        target = teacher.velocity(end.detach(), t)
    return _reduce(d_end - target, reduction)


def esd(
    model: FlowMap, teacher: FlowMap, x: torch.Tensor, s: torch.Tensor, t: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    r"""Eulerian self-distillation (off-diagonal part):

    .. math:: \|\partial_s X_{s,t}(x_s) + \mathrm{sg}[\nabla X_{s,t}(x_s)\,v'_{s,s}(x_s)]\|^2

    The spatial Jacobian term is computed without gradient; only :math:`\partial_s X` is trained.
    This objective is known to be unstable (chapter 7).
    """
    _check_model(model)
    _check_model(teacher)
    with torch.no_grad():
        b = teacher.velocity(x, s)
        _, transport = model.jvp(x, s, t, dx=b)
    _, d_start = model.jvp(x, s, t, ds=1.0)
    return _reduce(d_start + transport, reduction)


def psd(
    model: FlowMap,
    teacher: FlowMap,
    x: torch.Tensor,
    s: torch.Tensor,
    t: torch.Tensor,
    u: torch.Tensor | None = None,
    *,
    jumps: int = 2,
    on_diagonal: torch.Tensor | None = None,
    velocity_target: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Progressive self-distillation, in average-velocity form:

    .. math::
        \big\|v_{s,t}(x_s) - \mathrm{sg}\big[\tfrac{(u-s)\,v'_{s,u}(x_s)
        + (t-u)\,v'_{u,t}(X'_{s,u}(x_s))}{t-s}\big]\big\|^2

    A long jump regresses on two shorter jumps of the teacher :math:`v'` (the model's own weights
    under stop-gradient): ``u`` defaults to the midpoint; ``jumps`` > 2 composes that many equal
    jumps instead (:func:`psd_target`).

    The diagonal can share the forward pass: where ``on_diagonal`` is true, :math:`v_{s,s}(x_s)`
    regresses on ``velocity_target`` instead (the tangent condition, as in :func:`diagonal`), so one
    batch trains the velocity and the jumps with one call of the network.

    Args:
        model: the flow map being trained.
        teacher: the flow map that makes the short jumps (usually ``model`` itself).
        x: points :math:`x_s` ``(batch, ...)``.
        s: start times ``(batch,)``.
        t: end times ``(batch,)``.
        u: intermediate times ``(batch,)`` for two jumps (default: the midpoint).
        jumps: equal jumps composed into each target when ``u`` is not given.
        on_diagonal: ``(batch,)`` bool, the pairs trained on the tangent condition (default: none).
        velocity_target: ``(batch, ...)`` their target velocity (read where ``on_diagonal``).
        reduction: ``"mean"`` or ``"none"``.
    """
    _check_model(model)
    target, off = _targets_with_diagonal(x, on_diagonal, velocity_target)
    target[off] = psd_target(teacher, x[off], s[off], t[off], None if u is None else u[off], jumps=jumps)
    return _reduce(model.average_velocity(x, s, t) - target, reduction)


def _targets_with_diagonal(
    x: torch.Tensor, on_diagonal: torch.Tensor | None, velocity_target: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The regression targets ``(batch, ...)``, filled with ``velocity_target`` on the diagonal, and the
    off-diagonal mask ``(batch,)`` that the caller fills in.
    """
    if on_diagonal is None:
        return torch.empty_like(x), torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    if velocity_target is None or velocity_target.shape != x.shape:
        raise ValueError("on_diagonal needs velocity_target, shaped like x, for the pairs on the diagonal")
    if on_diagonal.shape != (x.shape[0],) or on_diagonal.dtype != torch.bool:
        raise ValueError(f"on_diagonal must be a bool tensor of shape ({x.shape[0]},)")
    return velocity_target.detach().to(x.dtype).clone(), ~on_diagonal


def psd_target(
    teacher: FlowMap,
    x: torch.Tensor,
    s: torch.Tensor,
    t: torch.Tensor,
    u: torch.Tensor | None = None,
    *,
    jumps: int = 2,
) -> torch.Tensor:
    r"""The regression target of :func:`psd`, without gradient, ``(batch, ...)``:
    :math:`\tfrac{(u-s)\,v'_{s,u}(x) + (t-u)\,v'_{u,t}(X'_{s,u}(x))}{t-s}`, the average velocity of
    two jumps of the teacher :math:`v'` (``u`` defaults to the midpoint; where :math:`t = s` the target is
    the teacher's velocity).

    With ``jumps`` = K > 2 the teacher makes K equal jumps :math:`s = \tau_0 < \tau_1 < \dots < \tau_K = t`
    and the target is :math:`(X'_{\tau_{K-1},\tau_K} \circ \dots \circ X'_{\tau_0,\tau_1}(x) - x)/(t - s)`:
    each long jump learns from shorter ones directly, a shallower cascade than halving at every level,
    for K − 2 more forward passes of the teacher.

    """
    _check_model(teacher)
    check_positive_int(jumps, "jumps", minimum=2)
    if u is None:  # equal jumps, each an equal share of the gap
        bounds = [s + (t - s) * (k / jumps) for k in range(jumps + 1)]
        shares = [torch.full_like(s, 1 / jumps)] * jumps
    elif jumps == 2:  # where s = t exactly (independent draws can tie) the first share is a half, not 0 / 0
        gap = t - s
        first = torch.where(gap == 0, 0.5, (u - s) / torch.where(gap == 0, 1.0, gap))
        bounds, shares = [s, u, t], [first, 1 - first]
    else:
        raise ValueError("give either u (an intermediate time for two jumps) or jumps > 2, not both")
    with torch.no_grad():
        point, average = x, torch.zeros_like(x)
        for start, stop, share in zip(bounds[:-1], bounds[1:], shares, strict=True):
            velocity = teacher.average_velocity(point, start, stop)
            point = point + column(stop - start, x) * velocity
            average = average + column(share, x) * velocity
        return average


# ----------------------------------------------------------------------------------------- chapter 8
def meanflow(
    model: FlowMap,
    x0: torch.Tensor,
    x1: torch.Tensor,
    s: torch.Tensor,
    t: torch.Tensor,
    interpolant: str | Interpolant = "linear",
    reduction: str = "mean",
) -> torch.Tensor:
    r"""MeanFlow, in the book's convention:

    .. math::
        \big\|v_{s,t}(I_s) - \mathrm{sg}\big[\dot I_s
        + (t-s)\,(\partial_s v_{s,t} + \nabla v_{s,t}\,\dot I_s)(I_s)\big]\big\|^2

    The Eulerian identity :math:`v_{s,t} = b_s + (t-s)(\partial_s v + \nabla v\, b_s)` with the
    conditional velocity :math:`\dot I_s` in place of :math:`b_s`. Because of the stop-gradient the
    target is linear in :math:`\dot I_s`, so its conditional average is the identity with :math:`b_s`
    (chapter 8). On the diagonal it is flow matching. One JVP with tangent :math:`(\dot I_s, 1, 0)`.
    """
    _check_model(model)
    path = get_interpolant(interpolant).sample_path(x0, x1, s)
    v, dv = model.jvp(path.xt, s, t, dx=path.dxt, ds=1.0, output="velocity")
    target = path.dxt + column(t - s, v) * dv
    return _reduce(v - target.detach(), reduction)


def improved_meanflow(
    model: FlowMap,
    x0: torch.Tensor,
    x1: torch.Tensor,
    s: torch.Tensor,
    t: torch.Tensor,
    interpolant: str | Interpolant = "linear",
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Improved MeanFlow: regress a compound prediction of :math:`b_s` on :math:`\dot I_s`,

    .. math:: W = v_{s,t}(I_s) - (t-s)\,\mathrm{sg}\big[(\partial_s v_{s,t} + \nabla v_{s,t}\,v_{s,s})(I_s)\big],
              \qquad \|W - \dot I_s\|^2 .

    By the Eulerian identity :math:`W = b_s` at the exact map, so the loss is flow matching with
    :math:`W` as the prediction; the JVP's spatial tangent is the model's own :math:`v_{s,s}`, not the
    noisy :math:`\dot I_s`, which lowers the variance of the target.
    """
    _check_model(model)
    path = get_interpolant(interpolant).sample_path(x0, x1, s)
    with torch.no_grad():
        b = model.velocity(path.xt, s)
    v, dv = model.jvp(path.xt, s, t, dx=b, ds=1.0, output="velocity")
    prediction = v - column(t - s, v) * dv.detach()
    return _reduce(prediction - path.dxt, reduction)


# ----------------------------------------------------------------------------------------- chapter 9
def consistency_distillation(
    model: FlowMap,
    target_model: FlowMap,
    teacher: Velocity,
    x: torch.Tensor,
    s: torch.Tensor,
    delta: float,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Consistency distillation:

    .. math:: \|X_{s,1}(x_s) - \mathrm{sg}[X'_{s+\Delta,1}(x_s + \Delta\, b_s(x_s))]\|^2

    A partial flow map that only jumps to data (t = 1). The boundary condition :math:`X_{1,1} = \mathrm{id}`
    holds by construction. ``target_model`` is usually an EMA copy of ``model``.
    """
    _check_model(model)
    _check_model(target_model)
    check_callable(teacher, "teacher", "teacher(x, t)")
    s_next = (s + delta).clamp(max=1.0)
    one = torch.ones_like(s)
    with torch.no_grad():
        x_next = x + column(s_next - s, x) * teacher(x, s)
        target = target_model(x_next, s_next, one)
    return _reduce(model(x, s, one) - target, reduction)


def consistency_training(
    model: FlowMap,
    target_model: FlowMap,
    x0: torch.Tensor,
    x1: torch.Tensor,
    s: torch.Tensor,
    delta: float,
    interpolant: str | Interpolant = "linear",
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Consistency training:

    .. math:: \|X_{s,1}(I_s) - \mathrm{sg}[X'_{s+\Delta,1}(I_{s+\Delta})]\|^2

    No teacher: the next point on the path is replaced by the same pair's interpolant at
    :math:`s + \Delta`, a one-sample estimate of where the path goes.
    """
    _check_model(model)
    _check_model(target_model)
    path = get_interpolant(interpolant)
    s_next = (s + delta).clamp(max=1.0)
    one = torch.ones_like(s)
    with torch.no_grad():
        target = target_model(path(x0, x1, s_next), s_next, one)
    return _reduce(model(path(x0, x1, s), s, one) - target, reduction)


def shortcut(
    model: FlowMap,
    x: torch.Tensor,
    s: torch.Tensor,
    t: torch.Tensor,
    *,
    on_diagonal: torch.Tensor | None = None,
    velocity_target: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Shortcut models, with jumps of :math:`2h = t - s` on a dyadic grid:

    .. math::
        \big\|v_{s,s+2h}(x_s) - \mathrm{sg}\big[\tfrac12\big(v_{s,s+h}(x_s)
        + v_{s+h,s+2h}(x_s + h\,v_{s,s+h}(x_s))\big)\big]\big\|^2

    The compositional rule: a jump of :math:`2h` must equal two jumps of :math:`h` of the model itself.
    It is :func:`psd`'s midpoint rule, with the model as its own teacher, on the pairs of
    :func:`flowlib.times.sample_dyadic_pairs`; ``on_diagonal`` and ``velocity_target`` work as there.
    """
    return psd(
        model, model, x, s, t, jumps=2, on_diagonal=on_diagonal, velocity_target=velocity_target, reduction=reduction
    )
