r"""Small networks that take a point and one or two times (chapters 2 and later).

* :class:`TimeEmbedding` — :math:`t \mapsto (t, \sin 2\pi f_k t, \cos 2\pi f_k t)_k` with
  frequencies :math:`f_k = 2^k`: lets a small MLP resolve fast changes in time.
* :class:`MLP` — ``forward(x, *times)``: the input is x concatenated with one embedding per
  time. With one time it is a velocity model :math:`b_t(x)`; with two, :math:`v_{s,t}(x)`.
* :class:`UNet` — the same interface for images ``(batch, C, H, W)`` (chapter 11).
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


class _ResidualBlock(nn.Module):
    """GroupNorm → SiLU → 3x3 conv, a time-dependent scale and shift, GroupNorm → SiLU → 3x3 conv, plus a skip."""

    def __init__(self, channels_in: int, channels_out: int, time_features: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(math.gcd(groups, channels_in), channels_in)
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, padding=1)
        self.film = nn.Linear(time_features, 2 * channels_out)
        self.norm2 = nn.GroupNorm(math.gcd(groups, channels_out), channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1)
        self.skip = nn.Identity() if channels_in == channels_out else nn.Conv2d(channels_in, channels_out, 1)

    def forward(self, x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        scale, shift = self.film(time)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(nn.functional.silu(h))


class UNet(nn.Module):
    r"""A small U-Net for images ``(batch, C, H, W)`` with one or two times: ``net(x, t)`` or ``net(x, s, t)``.

    Each level has a residual block whose features are scaled and shifted by an embedding of the times
    (:class:`TimeEmbedding` of each time, and of the gap :math:`t - s` when ``gap``); the encoder halves the
    resolution between levels with a strided convolution and the decoder doubles it back, joining the skip
    connections. Odd sizes work (28 → 14 → 7 and back). The last convolution starts at zero, so an untrained
    flow map is the identity and an untrained velocity is zero. Sized for 8x8 digits on a CPU with the
    defaults (about 0.3 M parameters); use ``width=64, levels=3`` for 28x28 on a GPU.

    Args:
        channels: image channels C.
        width: channels of the first level (level ``i`` has ``width · 2^i``).
        levels: resolutions (2: H and H/2).
        n_times: 1 for a velocity :math:`b_t`, 2 for :math:`v_{s,t}`.
        n_frequencies: frequencies of each :class:`TimeEmbedding`.
        gap: with two times, also embed :math:`t - s`.
        groups: GroupNorm groups (reduced to a divisor of the channels where needed).

    Shapes:
        ``forward(x, *times)``: x ``(batch, C, H, W)``, each time a float or ``(batch,)`` → x's shape.
    """

    def __init__(
        self,
        channels: int = 1,
        width: int = 32,
        levels: int = 2,
        n_times: int = 2,
        n_frequencies: int = 6,
        gap: bool = True,
        groups: int = 8,
    ) -> None:
        super().__init__()
        for value, name in ((channels, "channels"), (width, "width"), (levels, "levels"), (n_times, "n_times")):
            check_positive_int(value, name)
        if gap and n_times != 2:
            raise ValueError(f"gap=True needs n_times=2 (the times s and t); got n_times={n_times}")
        self.channels, self.n_times, self.gap = channels, n_times, gap
        self.embedding = TimeEmbedding(n_frequencies)
        time_features = 4 * width
        self.time_mlp = nn.Sequential(
            nn.Linear((n_times + int(gap)) * self.embedding.out_features, time_features),
            nn.SiLU(),
            nn.Linear(time_features, time_features),
        )
        widths = [width * 2**level for level in range(levels)]
        self.stem = nn.Conv2d(channels, width, 3, padding=1)
        self.encoder = nn.ModuleList()
        self.downsample = nn.ModuleList()
        previous = width
        for level, channels_out in enumerate(widths):
            self.encoder.append(_ResidualBlock(previous, channels_out, time_features, groups))
            if level < levels - 1:
                self.downsample.append(nn.Conv2d(channels_out, channels_out, 3, stride=2, padding=1))
            previous = channels_out
        self.middle = _ResidualBlock(previous, previous, time_features, groups)
        self.decoder = nn.ModuleList()
        for channels_out in reversed(widths):
            self.decoder.append(_ResidualBlock(previous + channels_out, channels_out, time_features, groups))
            previous = channels_out
        self.out_norm = nn.GroupNorm(math.gcd(groups, width), width)
        self.out = nn.Conv2d(width, channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, *times: TimeLike) -> torch.Tensor:
        if len(times) != self.n_times:
            raise TypeError(f"this UNet takes {self.n_times} time(s) after x; got {len(times)}")
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != self.channels:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be images of shape (batch, {self.channels}, H, W); got {shape}")
        columns = [_batch_times(t, f"time {i + 1}", x) for i, t in enumerate(times)]
        if self.gap:
            columns.append(columns[1] - columns[0])
        time = self.time_mlp(torch.cat([self.embedding(t) for t in columns], dim=1))
        h = self.stem(x)
        skips = []
        for level, block in enumerate(self.encoder):
            h = block(h, time)
            skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
        h = self.middle(h, time)
        for block in self.decoder:
            skip = skips.pop()
            if h.shape[-2:] != skip.shape[-2:]:
                h = nn.functional.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = block(torch.cat([h, skip], dim=1), time)
        return self.out(nn.functional.silu(self.out_norm(h)))


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
