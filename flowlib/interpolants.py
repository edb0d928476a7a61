r"""Interpolants: how a noise point and a data point are joined in time (chapter 2).

An interpolant is :math:`I_t = \alpha_t x_0 + \beta_t x_1` with :math:`x_0 \sim N(0, I)`
(noise, at :math:`t = 0`) and :math:`x_1 \sim p_{\mathrm{data}}` (data, at :math:`t = 1`),
:math:`\alpha_0 = \beta_1 = 1` and :math:`\alpha_1 = \beta_0 = 0`. Its time derivative
:math:`\dot I_t = \dot\alpha_t x_0 + \dot\beta_t x_1` is the *conditional* velocity that
flow matching regresses on.

Example:
    >>> import torch
    >>> from flowlib.interpolants import get_interpolant
    >>> lin = get_interpolant("linear")
    >>> x0, x1 = torch.randn(4, 2), torch.ones(4, 2)
    >>> batch = lin.sample_path(x0, x1, 0.25)   # a PathSample with xt and dxt
    >>> torch.allclose(batch.xt, 0.75 * x0 + 0.25 * x1), torch.allclose(batch.dxt, x1 - x0)
    (True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from flowlib._validate import TimeLike, as_points, as_times, check_choice, column


@dataclass(frozen=True)
class PathSample:
    r"""One batch of points on conditional paths.

    Attributes:
        x0: noise, ``(batch, ...)``.
        x1: data, ``(batch, ...)``.
        t: times, ``(batch,)``.
        xt: :math:`I_t = \alpha_t x_0 + \beta_t x_1`, ``(batch, ...)``.
        dxt: :math:`\dot I_t`, the conditional velocity, ``(batch, ...)``.
    """

    x0: torch.Tensor
    x1: torch.Tensor
    t: torch.Tensor
    xt: torch.Tensor
    dxt: torch.Tensor


class Interpolant:
    r"""Base class: subclasses give :math:`\alpha_t, \beta_t` and their derivatives.

    All methods take ``t`` as a tensor of any shape and work elementwise.
    """

    name = "interpolant"

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        r"""Weight of the noise, :math:`\alpha_t`."""
        raise NotImplementedError

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        r"""Weight of the data, :math:`\beta_t`."""
        raise NotImplementedError

    def dalpha(self, t: torch.Tensor) -> torch.Tensor:
        r""":math:`\dot\alpha_t = d\alpha_t / dt`."""
        raise NotImplementedError

    def dbeta(self, t: torch.Tensor) -> torch.Tensor:
        r""":math:`\dot\beta_t = d\beta_t / dt`."""
        raise NotImplementedError

    def _times(self, x0: torch.Tensor, x1: torch.Tensor, t: TimeLike) -> torch.Tensor:
        as_points(x0, "x0")
        as_points(x1, "x1")
        if x0.shape != x1.shape:
            raise ValueError(f"x0 and x1 must have the same shape; got {tuple(x0.shape)} and {tuple(x1.shape)}")
        return column(as_times(t, "t", x0.shape[0], like=x0), x0)

    def __call__(self, x0: torch.Tensor, x1: torch.Tensor, t: TimeLike) -> torch.Tensor:
        r""":math:`I_t = \alpha_t x_0 + \beta_t x_1`; ``x0``, ``x1`` ``(batch, ...)``, ``t`` float or ``(batch,)``."""
        tt = self._times(x0, x1, t)
        return self.alpha(tt) * x0 + self.beta(tt) * x1

    def derivative(self, x0: torch.Tensor, x1: torch.Tensor, t: TimeLike) -> torch.Tensor:
        r""":math:`\dot I_t = \dot\alpha_t x_0 + \dot\beta_t x_1`, same shapes as :meth:`__call__`."""
        tt = self._times(x0, x1, t)
        return self.dalpha(tt) * x0 + self.dbeta(tt) * x1

    def sample_path(self, x0: torch.Tensor, x1: torch.Tensor, t: TimeLike) -> PathSample:
        r"""Both :math:`I_t` and :math:`\dot I_t` in one :class:`PathSample`."""
        tt = self._times(x0, x1, t)
        xt = self.alpha(tt) * x0 + self.beta(tt) * x1
        dxt = self.dalpha(tt) * x0 + self.dbeta(tt) * x1
        return PathSample(x0=x0, x1=x1, t=tt.reshape(-1), xt=xt, dxt=dxt)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LinearInterpolant(Interpolant):
    r""":math:`\alpha_t = 1 - t`, :math:`\beta_t = t`, so :math:`\dot I_t = x_1 - x_0` (straight lines)."""

    name = "linear"

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return 1.0 - t

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def dalpha(self, t: torch.Tensor) -> torch.Tensor:
        return -torch.ones_like(t)

    def dbeta(self, t: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(t)


class TrigonometricInterpolant(Interpolant):
    r""":math:`\alpha_t = \cos(\pi t / 2)`, :math:`\beta_t = \sin(\pi t / 2)`: variance-preserving arcs."""

    name = "trigonometric"

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.cos(0.5 * math.pi * t)

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sin(0.5 * math.pi * t)

    def dalpha(self, t: torch.Tensor) -> torch.Tensor:
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * t)

    def dbeta(self, t: torch.Tensor) -> torch.Tensor:
        return 0.5 * math.pi * torch.cos(0.5 * math.pi * t)


INTERPOLANTS: dict[str, type[Interpolant]] = {
    "linear": LinearInterpolant,
    "trigonometric": TrigonometricInterpolant,
}


def get_interpolant(interpolant: str | Interpolant) -> Interpolant:
    """Return an :class:`Interpolant` from its name (``"linear"``, ``"trigonometric"``) or pass one through."""
    if isinstance(interpolant, Interpolant):
        return interpolant
    check_choice(interpolant, "interpolant", INTERPOLANTS)
    return INTERPOLANTS[interpolant]()
