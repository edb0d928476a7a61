"""Input validation shared by every ``flowlib`` module, and the one broadcast helper.

Each check raises a ``TypeError`` or ``ValueError`` whose message names the
argument and says what was expected, so that a reader who passes the wrong thing
sees one clear sentence instead of a stack trace from deep inside torch.

Checks of shapes and types are free. Checks of *values* (finite, times inside [0, 1]) read the
tensor back to the host, which on a GPU waits for every queued kernel. They run once per public
call; inside :func:`flowlib.fit`'s training step, whose inputs the library drew itself, they are
switched off with :func:`trusted` (the loss is still checked for NaN at every step).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterable, Iterator, Sequence

import torch

TimeLike = float | int | torch.Tensor

_TRUSTED = contextvars.ContextVar("flowlib_trusted_inputs", default=False)


@contextlib.contextmanager
def trusted() -> Iterator[None]:
    """Skip the value scans (finite, inside [0, 1]) of points and times within this block; shapes are still checked."""
    token = _TRUSTED.set(True)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def column(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape per-sample values ``(batch,)`` to ``(batch, 1, ..., 1)`` so they multiply ``x`` ``(batch, ...)``."""
    return t.reshape(-1, *([1] * (x.ndim - 1)))


def as_points(x: object, name: str = "x", *, dim: int | None = None, min_ndim: int = 2) -> torch.Tensor:
    """Check that ``x`` is a finite batch of points and return it as a tensor.

    Args:
        x: a tensor of shape ``(batch, dim)`` or ``(batch, C, H, W)``.
        name: the argument's name, used in error messages.
        dim: when given, the required size of the trailing dimension (for
            ``(batch, dim)`` inputs) or the required number of features per point.
        min_ndim: the smallest accepted number of dimensions.

    Returns:
        ``x`` unchanged (a floating-point tensor).

    Raises:
        TypeError: ``x`` is not a floating-point tensor.
        ValueError: ``x`` has the wrong shape or holds NaN/inf.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (batch, dim), got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must have shape (batch, dim) or (batch, C, H, W); got shape {tuple(x.shape)}")
    if dim is not None:
        features = int(math.prod(x.shape[1:]))
        if features != dim:
            raise ValueError(f"{name} must have {dim} features per point; got shape {tuple(x.shape)}")
    if not _TRUSTED.get() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def as_times(
    t: TimeLike,
    name: str,
    batch: int,
    *,
    like: torch.Tensor,
    low: float = 0.0,
    high: float = 1.0,
) -> torch.Tensor:
    """Turn a time (float or tensor) into a ``(batch,)`` tensor inside ``[low, high]``.

    Args:
        t: a float, a 0-d tensor, or a ``(batch,)`` tensor of times.
        name: the argument's name, used in error messages.
        batch: the batch size the times must match.
        like: a tensor whose dtype and device the result takes.
        low: the smallest allowed time.
        high: the largest allowed time.

    Returns:
        A ``(batch,)`` tensor with ``like``'s dtype and device.

    Raises:
        TypeError: ``t`` is neither a number nor a tensor.
        ValueError: wrong shape, non-finite, or outside ``[low, high]``.
    """
    if isinstance(t, bool) or not isinstance(t, (int, float, torch.Tensor)):
        raise TypeError(f"{name} must be a float or a (batch,) tensor of times, got {type(t).__name__}")
    tt = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if tt.ndim == 0:
        tt = tt.expand(batch).clone()  # a real tensor, not a stride-0 view (forward-mode AD writes into it)
    elif tt.ndim != 1 or tt.shape[0] != batch:
        raise ValueError(f"{name} must be a float or a tensor of shape ({batch},); got shape {tuple(tt.shape)}")
    if _TRUSTED.get():
        return tt
    if not bool(torch.isfinite(tt).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    tol = 1e-6
    if bool((tt < low - tol).any()) or bool((tt > high + tol).any()):
        raise ValueError(
            f"{name} must lie in [{low}, {high}] (t = 0 is noise, t = 1 is data); "
            f"got values in [{tt.min().item():.4g}, {tt.max().item():.4g}]"
        )
    return tt


def check_choice(value: object, name: str, choices: Iterable[str]) -> str:
    """Check that ``value`` is one of ``choices`` and return it.

    Raises:
        TypeError: ``value`` is not a string.
        ValueError: ``value`` is not one of ``choices``; the message lists them.
    """
    options = sorted(choices)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {options}; got {type(value).__name__}")
    if value not in options:
        raise ValueError(f"unknown {name} {value!r}; valid values are {options}")
    return value


def check_positive_int(value: object, name: str, *, minimum: int = 1) -> int:
    """Check that ``value`` is an integer ``>= minimum`` and return it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_positive(value: object, name: str) -> float:
    """Check that ``value`` is a finite number ``> 0`` and return it as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return float(value)


def check_callable(value: object, name: str, signature: str) -> None:
    """Check that ``value`` is callable; ``signature`` says how it will be called."""
    if not callable(value):
        raise TypeError(f"{name} must be a callable {signature}, got {type(value).__name__}")


def as_time_grid(times: Sequence[float] | torch.Tensor, name: str = "times") -> torch.Tensor:
    """Check a time grid: a 1-d sequence of at least two times in ``[0, 1]``, strictly monotone.

    Also accepts a 2-d tensor of shape ``(n_times, batch)``: one grid per sample,
    each column strictly monotone (columns may run in different directions).

    Returns:
        The grid as a float64 tensor of shape ``(n_times,)`` or ``(n_times, batch)``.
    """
    if isinstance(times, torch.Tensor):
        grid = times.detach().to(torch.float64)
    else:
        try:
            grid = torch.as_tensor(list(times), dtype=torch.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be a sequence of floats or a tensor, got {type(times).__name__}") from err
    if grid.ndim not in (1, 2) or grid.shape[0] < 2:
        raise ValueError(
            f"{name} must have shape (n_times,) or (n_times, batch) with n_times >= 2; got {tuple(grid.shape)}"
        )
    if not bool(torch.isfinite(grid).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    if bool((grid < -1e-9).any()) or bool((grid > 1 + 1e-9).any()):
        raise ValueError(f"{name} must lie in [0, 1] (t = 0 is noise, t = 1 is data)")
    steps = grid[1:] - grid[:-1]
    increasing = (steps > 0).all(dim=0)
    decreasing = (steps < 0).all(dim=0)
    constant = (steps == 0).all(dim=0)
    if not bool((increasing | decreasing | constant).all()):
        raise ValueError(f"{name} must be strictly increasing or strictly decreasing")
    return grid
