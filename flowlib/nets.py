r"""Small networks that take a point and one or two times (chapters 2 and later).

* :class:`TimeEmbedding` — :math:`t \mapsto (t, \sin 2\pi f_k t, \cos 2\pi f_k t)_k` with
  frequencies :math:`f_k = 2^k`: lets a small MLP resolve fast changes in time.
* :class:`MLP` — ``forward(x, *times)``: the input is x concatenated with one embedding per
  time. With one time it is a velocity model :math:`b_t(x)`; with two, :math:`v_{s,t}(x)`.

Example:
    >>> net = MLP(dim=2, width=128, depth=3)         # b_t(x)
    >>> v = net(torch.randn(64, 2), torch.rand(64))   # (64, 2)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from flowlib._checks import TimeLike, as_times, check_choice, check_positive, check_positive_int

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
        dim: number of features of a point (inputs ``(batch, dim)``).
        width: hidden width.
        depth: number of hidden layers.
        n_times: how many times the network takes (1 for :math:`b_t`, 2 for :math:`v_{s,t}`).
        n_frequencies: frequencies of each :class:`TimeEmbedding`.
        activation: ``"silu"``, ``"gelu"``, ``"relu"`` or ``"tanh"``.
        gap: with two times :math:`(s, t)`, also embed the gap :math:`t - s` (helps a flow map
            tell short jumps from long ones).
        space_features: random Fourier features of the point appended to it,
            :math:`(\sin 2\pi Bx, \cos 2\pi Bx)` with a fixed ``(space_features, dim)`` matrix
            :math:`B \sim \mathcal N(0, \text{space\_scale}^2)` drawn from torch's global generator
            (Tancik et al., 2020); 0 (the default) feeds x alone. Meant to let a small MLP bend as
            sharply as a one-step map must where the basins of two modes meet; at the benchmark's budget
            they helped PSD for one seed of three and not for the others (``flowlib.bench.BUDGET_OPTIONS``).
        space_scale: standard deviation of the rows of B (frequencies per unit of x).

    Shapes:
        ``forward(x, t_1, …)``: x ``(batch, dim)``, each time a float or ``(batch,)`` → ``(batch, dim)``.
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
        space_features: int = 0,
        space_scale: float = 1.0,
    ) -> None:
        super().__init__()
        check_positive_int(dim, "dim")
        check_positive_int(space_features, "space_features", minimum=0)
        check_positive(space_scale, "space_scale")
        check_positive_int(width, "width")
        check_positive_int(depth, "depth")
        check_positive_int(n_times, "n_times")
        check_choice(activation, "activation", ACTIVATIONS)
        if gap and n_times != 2:
            raise ValueError(f"gap=True needs n_times=2 (the times s and t); got n_times={n_times}")
        self.dim, self.n_times, self.gap = dim, n_times, gap
        self.embedding = TimeEmbedding(n_frequencies)
        # None when unused, so a plain MLP's state_dict (and the caches that hold one) is unchanged.
        frequencies = space_scale * torch.randn(space_features, dim) if space_features else None
        self.register_buffer("space_frequencies", frequencies)
        layers: list[nn.Module] = []
        features = dim + 2 * space_features + (n_times + int(gap)) * self.embedding.out_features
        for _ in range(depth):
            layers += [nn.Linear(features, width), ACTIVATIONS[activation]()]
            features = width
        layers.append(nn.Linear(features, dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, *times: TimeLike) -> torch.Tensor:
        if len(times) != self.n_times:
            raise TypeError(f"this MLP takes {self.n_times} time(s) after x; got {len(times)}")
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (batch, {self.dim}); got {tuple(x.shape)}")
        checked = [as_times(t, f"time {i + 1}", x.shape[0], like=x) for i, t in enumerate(times)]
        if self.gap:
            checked.append(checked[1] - checked[0])
        inputs = [x, *(self.embedding(t) for t in checked)]
        if self.space_frequencies is not None:
            angles = 2.0 * math.pi * x @ self.space_frequencies.to(x.dtype).T
            inputs += [torch.sin(angles), torch.cos(angles)]
        return self.layers(torch.cat(inputs, dim=1))


class TimeWeight(nn.Module):
    r"""A learned log-variance :math:`w(s, t)` for loss weighting (chapter 10).

    Minimising :math:`\ell\,e^{-w} + w` over :math:`w` gives :math:`w = \log \ell`: each pair of times is
    weighted by the inverse of its typical loss, so no range of jumps dominates the gradient.

    Args:
        width: hidden width of the small MLP on the two time embeddings.
    """

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        check_positive_int(width, "width")
        self.embedding = TimeEmbedding(4)
        self.layers = nn.Sequential(nn.Linear(2 * self.embedding.out_features, width), nn.SiLU(), nn.Linear(width, 1))

    def forward(self, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``(batch,)`` log-weights for times ``(batch,)``."""
        return self.layers(torch.cat([self.embedding(s), self.embedding(t)], dim=1)).squeeze(1)


def detached(model: nn.Module, method: Callable | None = None) -> Callable[..., torch.Tensor]:
    """Wrap a network (or one of its methods) as a plain function for solvers, plots and metrics.

    The wrapper runs without gradients, in the network's dtype and on its device, and returns the
    result in the caller's dtype and device, so a float32 network can be integrated and compared
    against the float64 oracle directly. Times may be floats or tensors.

    Args:
        model: the module whose parameters fix the dtype and device.
        method: what to call (default: ``model`` itself), e.g. ``flow_map.velocity``.

    Returns:
        ``fn(x, *times)`` with ``x`` of shape ``(batch, ...)``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    target = model if method is None else method
    parameter = next(model.parameters(), None)
    dtype = parameter.dtype if parameter is not None else torch.float32
    device = parameter.device if parameter is not None else torch.device("cpu")

    def cast(time: TimeLike) -> TimeLike:
        return time.to(device=device, dtype=dtype) if isinstance(time, torch.Tensor) else time

    def call(x: torch.Tensor, *times: TimeLike) -> torch.Tensor:
        with torch.no_grad():
            out = target(x.to(device=device, dtype=dtype), *(cast(t) for t in times))
        return out.to(device=x.device, dtype=x.dtype)

    call.module = model  # for cache keys (flowlib.fitting) and inspection
    call.method_name = getattr(method, "__name__", "")
    return call


def as_velocity(model: nn.Module) -> Callable[[torch.Tensor, TimeLike], torch.Tensor]:
    """A velocity network ``model(x, t)`` as a plain ``velocity(x, t)`` (see :func:`detached`)."""
    return detached(model)
