r"""The book's two kinds of trained model: a velocity :math:`b_t(x)` (chapter 2) and a flow map
:math:`X_{s,t}(x) = x + (t - s)\,v_{s,t}(x)` (chapters 4-10).

:class:`VelocityModel` wraps a network ``net(x, t)``; a sampler integrates it (:mod:`flowlib.ode`).
:class:`FlowMap` wraps any network ``net(x, s, t)`` that returns the average velocity
:math:`v_{s,t}(x)`. The parameterisation makes the identity :math:`X_{t,t}(x) = x` hold by
construction, and the diagonal :math:`v_{t,t}` is a velocity model (the tangent condition).

Each model says what ``kind`` it is, so that :func:`flowlib.sampling.sample` samples it the right
way, and carries ``record``: how :func:`flowlib.fit` trained it (``None`` for a model built by hand).

Derivatives of the map, used by the Lagrangian and Eulerian objectives, come from
forward-mode automatic differentiation (``torch.func.jvp``): one call returns the map and
its derivative along a direction :math:`(\dot x, \dot s, \dot t)`,

.. math::
    \frac{d}{d\varepsilon} X_{s + \varepsilon\dot s,\; t + \varepsilon\dot t}(x + \varepsilon\dot x)
    \Big|_{\varepsilon = 0} = \partial_s X\,\dot s + \partial_t X\,\dot t + \nabla_x X\,\dot x .

A central finite difference is the fallback (``scheme="fd"``); the tests check that the two agree
in float64.

Example:
    >>> import torch
    >>> from flowlib.nets import MLP
    >>> model = FlowMap(MLP(2, width=64, depth=2, n_times=2))
    >>> x = torch.randn(8, 2)
    >>> end, d_end_dt = model.jvp(x, 0.2, 0.7, dt=1.0)      # X_{s,t}(x) and the Lagrangian derivative
    >>> bool(torch.equal(model(x, 0.5, 0.5), x))             # X_{t,t} is the identity
    True
"""

from __future__ import annotations

import torch
from torch import nn

from flowlib._validate import TimeLike, as_points, as_times, check_choice, column

Tangent = torch.Tensor | float | None
#: What a model is, for :func:`flowlib.sampling.sample`: a velocity to integrate, a flow map whose
#: jumps compose, or a consistency model that only jumps to the data (t = 1) and re-noises in between.
KINDS = ("velocity", "flow_map", "consistency")


def _device(model: nn.Module) -> torch.device:
    """The device of a model's parameters (the CPU for a model without any)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _to(time: TimeLike, device: torch.device) -> TimeLike:
    """A time tensor moved to ``device``; a float as it is."""
    return time.to(device) if isinstance(time, torch.Tensor) else time


class VelocityModel(nn.Module):
    r"""A learned velocity :math:`b_t(x)` around a network ``net(x, t)`` (chapter 2).

    Args:
        net: a module called as ``net(x, t)`` with ``x`` ``(batch, ...)`` and ``t`` ``(batch,)``,
            returning a tensor shaped like ``x`` (e.g. :class:`flowlib.nets.MLP` with ``n_times=1``).

    Attributes:
        kind: ``"velocity"``: sampled by integrating it with an ODE solver.
        record: how :func:`flowlib.fit` trained it (a :class:`flowlib.fitting.FitRecord`), or ``None``.
    """

    kind = "velocity"

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module called as net(x, t), got {type(net).__name__}")
        self.net = net
        self.record = None

    def forward(self, x: torch.Tensor, t: TimeLike) -> torch.Tensor:
        r""":math:`b_t(x)`; ``x`` ``(batch, ...)``, ``t`` a float or ``(batch,)`` → ``(batch, ...)``.

        The inputs move to the network's device and the result comes back on ``x``'s (a model on a GPU can be
        called with CPU tensors, as a chapter's noise is made).
        """
        as_points(x, "x")
        home, device = x.device, _device(self)
        x = x.to(device)
        return self.net(x, as_times(_to(t, device), "t", x.shape[0], like=x)).to(home)

    def velocity(self, x: torch.Tensor, t: TimeLike) -> torch.Tensor:
        r"""The same as calling the model: :math:`b_t(x)`, ``(batch, ...)``."""
        return self(x, t)


class FlowMap(nn.Module):
    r"""A flow map :math:`X_{s,t}(x) = x + (t - s)\,v_{s,t}(x)` around a network for :math:`v`.

    Args:
        net: a module called as ``net(x, s, t)`` with ``x`` ``(batch, ...)`` and ``s``, ``t``
            ``(batch,)`` tensors, returning :math:`v_{s,t}(x)` shaped like ``x``
            (e.g. :class:`flowlib.nets.MLP` with ``n_times=2``).
        kind: ``"flow_map"`` (every jump is trained; samplers compose jumps) or ``"consistency"``
            (only jumps to t = 1 are trained; samplers jump to the data and re-noise, chapter 9).

    Attributes:
        kind: as above.
        record: how :func:`flowlib.fit` trained it (a :class:`flowlib.fitting.FitRecord`), or ``None``.
    """

    def __init__(self, net: nn.Module, kind: str = "flow_map") -> None:
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module called as net(x, s, t), got {type(net).__name__}")
        self.kind = check_choice(kind, "kind", ("flow_map", "consistency"))
        self.net = net
        self.record = None

    # ------------------------------------------------------------------ evaluation
    def _times(
        self, x: torch.Tensor, s: TimeLike, t: TimeLike
    ) -> tuple[torch.device, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The caller's device, then ``x`` and the two times on the network's device."""
        as_points(x, "x")
        home, device = x.device, _device(self)
        x = x.to(device)
        ss, tt = as_times(_to(s, device), "s", x.shape[0], like=x), as_times(_to(t, device), "t", x.shape[0], like=x)
        return home, x, ss, tt

    def average_velocity(self, x: torch.Tensor, s: TimeLike, t: TimeLike) -> torch.Tensor:
        r""":math:`v_{s,t}(x)`; ``x`` ``(batch, ...)``, ``s``/``t`` floats or ``(batch,)`` → ``(batch, ...)``.

        Like every evaluation of the model, it runs on the network's device and returns on ``x``'s.
        """
        home, x, ss, tt = self._times(x, s, t)
        return self.net(x, ss, tt).to(home)

    def forward(self, x: torch.Tensor, s: TimeLike, t: TimeLike) -> torch.Tensor:
        r""":math:`X_{s,t}(x) = x + (t - s)\,v_{s,t}(x)`; shapes as in :meth:`average_velocity`."""
        home, x, ss, tt = self._times(x, s, t)
        return self._map(x, ss, tt).to(home)

    def velocity(self, x: torch.Tensor, t: TimeLike) -> torch.Tensor:
        r"""The velocity :math:`b_t(x) = v_{t,t}(x)` (the diagonal of the map); ``(batch, ...)``."""
        home, x, ss, tt = self._times(x, t, t)
        return self.net(x, ss, tt).to(home)

    def _map(self, x: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x + column(t - s, x) * self.net(x, s, t)

    # ------------------------------------------------------------------ derivatives
    def jvp(
        self,
        x: torch.Tensor,
        s: TimeLike,
        t: TimeLike,
        dx: Tangent = None,
        ds: Tangent = None,
        dt: Tangent = None,
        scheme: str = "jvp",
        eps: float = 1e-3,
        output: str = "map",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The map (or average velocity) and its derivative along :math:`(\dot x, \dot s, \dot t)`.

        Args:
            x: points ``(batch, ...)``.
            s: start times, float or ``(batch,)``.
            t: end times, float or ``(batch,)``.
            dx: tangent in x, shaped like ``x`` (``None``: zero).
            ds: tangent in s, float or ``(batch,)`` (``None``: zero).
            dt: tangent in t, float or ``(batch,)`` (``None``: zero).
            scheme: ``"jvp"`` (forward-mode autodiff, exact) or ``"fd"`` (central difference).
            eps: step of the finite difference.
            output: ``"map"`` for :math:`X_{s,t}` or ``"velocity"`` for :math:`v_{s,t}`.

        Returns:
            ``(value, derivative)``, both shaped like ``x``. Gradients flow through both.
        """
        check_choice(scheme, "scheme", ("jvp", "fd"))
        check_choice(output, "output", ("map", "velocity"))
        home, x, ss, tt = self._times(x, s, t)
        x = x.contiguous()  # forward-mode AD refuses broadcast views (e.g. one point expanded to a batch)
        tangents = tuple(
            torch.zeros_like(like)
            if tangent is None
            else torch.as_tensor(tangent, dtype=x.dtype, device=x.device).expand_as(like).contiguous()
            for tangent, like in ((dx, x), (ds, ss), (dt, tt))
        )
        fn = self._map if output == "map" else self.net
        if scheme == "jvp":
            value, derivative = torch.func.jvp(fn, (x, ss, tt), tangents)
        else:
            value = fn(x, ss, tt)
            plus = fn(x + eps * tangents[0], ss + eps * tangents[1], tt + eps * tangents[2])
            minus = fn(x - eps * tangents[0], ss - eps * tangents[1], tt - eps * tangents[2])
            derivative = (plus - minus) / (2 * eps)
        return value.to(home), derivative.to(home)
