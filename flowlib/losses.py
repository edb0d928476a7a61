r"""Training objectives, one function each, with the loss in the book's notation.

Every objective returns a scalar tensor: the mean over the batch and over coordinates
of a squared error. Samples are :math:`x_0 \sim N(0, I)` (noise), :math:`x_1` (data) and
times; :math:`I_t = \alpha_t x_0 + \beta_t x_1` is the interpolant (:mod:`flowlib.interpolants`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from flowlib._checks import TimeLike, check_callable
from flowlib.interpolants import Interpolant, get_interpolant

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def flow_matching(
    velocity: Velocity,
    x0: torch.Tensor,
    x1: torch.Tensor,
    t: TimeLike,
    interpolant: str | Interpolant = "linear",
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

    Returns:
        A scalar tensor (mean squared error per coordinate).
    """
    check_callable(velocity, "velocity", "velocity(x, t)")
    path = get_interpolant(interpolant).sample_path(x0, x1, t)
    prediction = velocity(path.xt, path.t)
    if prediction.shape != path.dxt.shape:
        raise ValueError(f"velocity returned shape {tuple(prediction.shape)}, expected {tuple(path.dxt.shape)}")
    return (prediction - path.dxt).pow(2).mean()
