r"""Small networks that take a point and one or two times (chapters 2 and later).

* :class:`TimeEmbedding` — :math:`t \mapsto (t, \sin 2\pi f_k t, \cos 2\pi f_k t)_k` with
  frequencies :math:`f_k = 2^k`: lets a small MLP resolve fast changes in time.
* :class:`MLP` — ``forward(x, *times)``: the input is x concatenated with one embedding per
  time. With one time it is a velocity model :math:`b_t(x)`; with two, :math:`v_{s,t}(x)`.
* :func:`detached` — any network as a plain no-gradient function for solvers, metrics and plots.

Example:
    >>> import torch
    >>> net = MLP(dim=2, width=128, depth=3)         # b_t(x)
    >>> net(torch.randn(64, 2), torch.rand(64)).shape
    torch.Size([64, 2])
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from flowlib._validate import TimeLike, check_choice, check_positive_int

ACTIVATIONS = {"silu": nn.SiLU, "gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh}


class TimeEmbedding(nn.Module):
    """Fourier features of a time: ``(batch,)`` → ``(batch, 1 + 2·n_frequencies)``.

    Args:
        n_frequencies: number of frequencies :math:`f_k = 2^k`, k = 0, …, n − 1.
    """

    def __init__(self, n_frequencies: int = 6) -> None:
        super().__init__()
        check_positive_int(n_frequencies, "n_frequencies")
        self.register_buffer("frequencies", 2.0 * math.pi * 2.0 ** torch.arange(n_frequencies, dtype=torch.float32))

    @property
    def out_features(self) -> int:
        """Width of the embedding."""
        return 1 + 2 * self.frequencies.numel()

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t[:, None] * self.frequencies.to(t.dtype)
        return torch.cat([t[:, None], torch.sin(angles), torch.cos(angles)], dim=1)


class MLP(nn.Module):
    r"""A multilayer perceptron on ``[x, embed(t_1), …, embed(t_k)]``.

    Args:
        dim: number of features of a point: inputs are ``(batch, dim)``, or ``(batch, C, H, W)``
            with :math:`C H W` = ``dim`` (flattened on the way in, reshaped on the way out).
        width: hidden width.
        depth: number of hidden layers.
        n_times: how many times the network takes (1 for :math:`b_t`, 2 for :math:`v_{s,t}`).
        n_frequencies: frequencies of each :class:`TimeEmbedding`.
        activation: ``"silu"``, ``"gelu"``, ``"relu"`` or ``"tanh"``.
        gap: with two times :math:`(s, t)`, also embed the gap :math:`t - s` (helps a flow map
            tell short jumps from long ones).

    Shapes:
        ``forward(x, t_1, …)``: x ``(batch, ...)``, each time a float or ``(batch,)`` → x's shape.
        Times are not range-checked here: :class:`flowlib.flowmap.FlowMap` checks them once per call.
    """

    def __init__(
        self,
        dim: int,
        width: int = 256,
        depth: int = 4,
        n_times: int = 1,
        n_frequencies: int = 6,
        activation: str = "silu",
        gap: bool = False,
    ) -> None:
        super().__init__()
        check_positive_int(dim, "dim")
        check_positive_int(width, "width")
        check_positive_int(depth, "depth")
        check_positive_int(n_times, "n_times")
        check_choice(activation, "activation", ACTIVATIONS)
        if gap and n_times != 2:
            raise ValueError(f"gap=True needs n_times=2 (the times s and t); got n_times={n_times}")
        self.dim, self.n_times, self.gap = dim, n_times, gap
        self.embedding = TimeEmbedding(n_frequencies)
        layers: list[nn.Module] = []
        features = dim + (n_times + int(gap)) * self.embedding.out_features
        for _ in range(depth):
            layers += [nn.Linear(features, width), ACTIVATIONS[activation]()]
            features = width
        layers.append(nn.Linear(features, dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, *times: TimeLike) -> torch.Tensor:
        if len(times) != self.n_times:
            raise TypeError(f"this MLP takes {self.n_times} time(s) after x; got {len(times)}")
        if x.ndim < 2 or math.prod(x.shape[1:]) != self.dim:
            raise ValueError(
                f"x must have shape (batch, {self.dim}) or (batch, C, H, W) with C·H·W = {self.dim}; "
                f"got {tuple(x.shape)}"
            )
        columns = [_batch_times(t, f"time {i + 1}", x) for i, t in enumerate(times)]
        if self.gap:
            columns.append(columns[1] - columns[0])
        inputs = [x.reshape(x.shape[0], self.dim), *(self.embedding(t) for t in columns)]
        return self.layers(torch.cat(inputs, dim=1)).reshape(x.shape)


def _batch_times(t: TimeLike, name: str, x: torch.Tensor) -> torch.Tensor:
    """A float or ``(batch,)`` time as a ``(batch,)`` tensor in ``x``'s dtype and device (shape checked only)."""
    tt = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if tt.ndim == 0:
        return tt.expand(x.shape[0])
    if tt.shape != (x.shape[0],):
        raise ValueError(f"{name} must be a float or a tensor of shape ({x.shape[0]},); got shape {tuple(tt.shape)}")
    return tt


def placement(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    """The dtype and device of a network's parameters (float32 on the CPU for a network without any)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    parameter = next(model.parameters(), None)
    return (parameter.dtype, parameter.device) if parameter is not None else (torch.float32, torch.device("cpu"))


def detached(model: nn.Module, method: Callable | None = None) -> Callable[..., torch.Tensor]:
    """Wrap a network (or one of its methods) as a plain function for solvers, plots and metrics.

    The wrapper runs without gradients, in the network's dtype and on its device, and returns the
    result in the caller's dtype and device, so a float32 network can be integrated and compared
    against the float64 oracle directly. Times may be floats or tensors.

    Args:
        model: the module whose parameters fix the dtype and device.
        method: what to call (default: ``model`` itself), e.g. ``flow_map.velocity``.

    Returns:
        ``fn(x, *times)`` with ``x`` of shape ``(batch, ...)``; ``fn.__wrapped__`` is what it calls.
    """
    target = model if method is None else method
    dtype, device = placement(model)

    def cast(time: TimeLike) -> TimeLike:
        return time.to(device=device, dtype=dtype) if isinstance(time, torch.Tensor) else time

    def call(x: torch.Tensor, *times: TimeLike) -> torch.Tensor:
        with torch.no_grad():
            out = target(x.to(device=device, dtype=dtype), *(cast(t) for t in times))
        return out.to(device=x.device, dtype=x.dtype)

    call.__wrapped__ = target  # what it wraps (functools' convention), so a cache key can name the network
    return call
