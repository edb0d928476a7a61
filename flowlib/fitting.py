r"""``flowlib.fit``: train a velocity or a flow map with any objective of the book in one call (chapters 5-10).

>>> import torch, flowlib
>>> from flowlib import data, sampling
>>> mix = data.mixture("eight_gaussians")
>>> small = dict(train_steps=20, width=32, depth=2, progress=False, cache=False)
>>> model = flowlib.fit("lsd", "checkerboard", **small)                         # self-distillation
>>> model = flowlib.fit("lmd", mix, teacher=mix.velocity, **small)               # distillation
>>> sampling.sample(model, torch.randn(1000, 2), steps=1).shape                 # one jump
torch.Size([1000, 2])

Every objective is a short record in :data:`METHODS`: which pairs of times it trains on, which
function of :mod:`flowlib.losses` it calls (the very function a chapter prints), what teacher it
needs, which options it reads, and its defaults, each with a one-line reason (the runs behind them
are on the book's page "Evidence for the engineered defaults"). :func:`fit` turns a record into a
loss for the one training loop, :func:`flowlib.train.train`:

1. draw data :math:`x_1`, noise :math:`x_0` and pairs :math:`(s, t)` with their diagonal mask;
2. on the diagonal, the target velocity :math:`b_s(I_s)`: the conditional :math:`\dot I_s`, a
   posterior average (:func:`flowlib.losses.posterior_velocity`), or the teacher's;
3. per-sample losses: where the record says ``diagonal="split"``, :func:`flowlib.losses.diagonal` on
   the diagonal and the method's loss on the other pairs; where it says ``"inside"``, the method's loss
   on the whole batch (MeanFlow is flow matching at s = t; PSD and the shortcut model regress both in
   one forward pass);
4. the diagonal's losses weighted by ``diagonal_weight``, and the mean.

Options are checked when ``fit`` is called: an unknown name, or one that the method does not read,
is an error that says which methods use it.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from flowlib import data as datasets
from flowlib import losses, ode, times, train
from flowlib._validate import as_points, check_choice, check_positive, check_positive_int, trusted
from flowlib.chapter import default_device, seeded_weights
from flowlib.exact import GaussianMixture
from flowlib.flowmap import FlowMap, VelocityModel
from flowlib.interpolants import Interpolant, get_interpolant
from flowlib.nets import MLP, UNet


@dataclass(frozen=True)
class FitOptions:
    r"""Every option of :func:`fit` with its default before a method's own (:attr:`Method.defaults`).

    Common to every method:

    Attributes:
        width: hidden width of the MLP.
        depth: hidden layers of the MLP.
        time_frequencies: Fourier frequencies :math:`2^0, \dots, 2^{n-1}` of each time embedding.
        batch_size: samples per step.
        lr: peak learning rate.
        warmup: learning-rate warm-up steps (``None``: :func:`flowlib.train.default_warmup`).
        schedule: ``"cosine"`` or ``"constant"``.
        grad_clip: gradient-norm clip (``None``: none).
        ema_decay: EMA of the weights for the returned model, warmed up (:func:`flowlib.train.ema_decay_at`);
            ``None``: the raw weights.
        interpolant: ``"linear"`` or ``"trigonometric"``.
        pool_size: data points drawn when ``data`` is a name or a mixture.
        network: ``"auto"`` (a :class:`~flowlib.nets.UNet` for images ``(N, C, H, W)``, else an MLP),
            ``"mlp"`` or ``"unet"``.
        unet_width: channels of the U-Net's first level.
        unet_levels: resolutions of the U-Net.

    Read by some methods only (:func:`users` says which):

    Attributes:
        gap: also embed :math:`t - s` (two-time models).
        time_distribution: ``"uniform"`` or ``"logit_normal"`` for each time.
        diagonal_fraction: share of pairs with :math:`s = t`.
        diagonal_warmup: share of training spent on the diagonal alone before jumps are trained.
        diagonal_weight: weight of a diagonal pair's loss relative to a jump's.
        diagonal_target: the diagonal's target, ``"conditional"`` (flow matching's :math:`\dot I_s`),
            ``"posterior"`` (:func:`flowlib.losses.posterior_velocity`) or ``"teacher"`` (the teacher's
            velocity; the distillation methods' default).
        posterior_references: extra data points per batch for ``diagonal_target="posterior"``.
        pair_sampling: off-diagonal pairs ``"uniform"`` (from ``time_distribution``), ``"grid"`` (the
            jumps of :math:`2^j`-step samplers, :func:`flowlib.times.sample_grid_pairs`) or ``"mixed"``
            (half each).
        grid_levels: :math:`j < \text{grid\_levels}` for grid pairs.
        backward_fraction: share of off-diagonal pairs jumping backwards (:math:`t < s`).
        stopgrad_target: LMD: evaluate the teacher at :math:`\mathrm{sg}[X_{s,t}]`.
        teacher_steps: progressive: RK4 steps per half-jump when a velocity teaches.
        psd_jumps: PSD: equal jumps of the model composed into each target.
        psd_intermediate: PSD: ``"equal"`` (``psd_jumps`` equal jumps) or ``"uniform"`` (two jumps through a time
            :math:`u` drawn uniformly between s and t for each pair, Boffi et al.'s variant; needs ``psd_jumps=2``).
        shortcut_levels: shortcut: the smallest jump is :math:`2^{1-\text{levels}}`.
        consistency_intervals: consistency models: N, with Δ = 1/N.
        target_decay: consistency models: EMA decay of the target network.
    """

    width: int = 256
    depth: int = 4
    time_frequencies: int = 4
    batch_size: int = 512
    lr: float = 1e-3
    warmup: int | None = None
    schedule: str = "cosine"
    grad_clip: float | None = 1.0
    ema_decay: float | None = 0.999
    interpolant: str = "linear"
    pool_size: int = 100_000
    network: str = "auto"
    unet_width: int = 32
    unet_levels: int = 2
    gap: bool = True
    time_distribution: str = "uniform"
    diagonal_fraction: float = 0.25
    diagonal_warmup: float = 0.0
    diagonal_weight: float = 1.0
    diagonal_target: str = "conditional"
    posterior_references: int = 256
    pair_sampling: str = "uniform"
    grid_levels: int = 5
    backward_fraction: float = 0.0
    stopgrad_target: bool = False
    teacher_steps: int = 2
    psd_jumps: int = 2
    psd_intermediate: str = "equal"
    shortcut_levels: int = 7
    consistency_intervals: int = 16
    target_decay: float = 0.9


COMMON_OPTIONS = (
    "width", "depth", "time_frequencies", "batch_size", "lr", "warmup", "schedule",
    "grad_clip", "ema_decay", "interpolant", "pool_size", "network", "unet_width", "unet_levels",
)  # fmt: skip
#: Options of the methods that learn the tangent condition :math:`v_{s,s} = b_s` from a target velocity.
DIAGONAL_OPTIONS = (
    "gap", "time_distribution", "diagonal_fraction", "diagonal_warmup", "diagonal_weight",
    "diagonal_target", "posterior_references",
)  # fmt: skip
#: Options of the methods that train on free pairs (s, t).
PAIR_OPTIONS = ("pair_sampling", "grid_levels", "backward_fraction")
#: MeanFlow's loss is flow matching on the diagonal: it needs no target velocity there.
MEANFLOW_OPTIONS = (
    "gap",
    "time_distribution",
    "diagonal_fraction",
    "diagonal_warmup",
    "diagonal_weight",
    *PAIR_OPTIONS,
)
CONSISTENCY_OPTIONS = ("gap", "consistency_intervals", "target_decay")


class Default(NamedTuple):
    """A method's default for one option, and why (the runs behind it: the book's evidence page)."""

    value: object
    reason: str


@dataclass(frozen=True)
class Batch:
    r"""One training batch: noise, data, pairs of times and the diagonal's target.

    Attributes:
        x0: noise ``(batch, ...)``.
        x1: data ``(batch, ...)``.
        s: start times ``(batch,)``.
        t: end times ``(batch,)``.
        on_diagonal: ``(batch,)`` bool, the pairs with :math:`s = t`.
        xs: :math:`I_s = \alpha_s x_0 + \beta_s x_1`, ``(batch, ...)``.
        velocity_target: the target of :math:`v_{s,s}(I_s)` where ``on_diagonal`` (elsewhere unused),
            or ``None`` for methods that need none.
        u: PSD's intermediate times ``(batch,)`` between s and t (``psd_intermediate="uniform"``), else ``None``.
    """

    x0: torch.Tensor
    x1: torch.Tensor
    s: torch.Tensor
    t: torch.Tensor
    on_diagonal: torch.Tensor
    xs: torch.Tensor
    velocity_target: torch.Tensor | None
    u: torch.Tensor | None = None

    def rows(self, mask: torch.Tensor) -> Batch:
        """The sub-batch where ``mask`` ``(batch,)`` is true."""
        target = self.velocity_target[mask] if self.velocity_target is not None else None
        return Batch(self.x0[mask], self.x1[mask], self.s[mask], self.t[mask], self.on_diagonal[mask],
                     self.xs[mask], target, None if self.u is None else self.u[mask])  # fmt: skip


@dataclass(frozen=True)
class Context:
    """What a method's loss needs besides the model and the batch.

    Attributes:
        options: the resolved :class:`FitOptions`.
        path: the interpolant.
        teacher: a velocity ``b(x, t)`` for distillation (``None`` otherwise).
        teacher_map: a map ``X'(x, s, t)`` for progressive distillation.
        target: the EMA target network of a consistency model.
    """

    options: FitOptions
    path: Interpolant
    teacher: Callable | None = None
    teacher_map: Callable | None = None
    target: FlowMap | None = None


LossCall = Callable[[nn.Module, Batch, Context], torch.Tensor]
PairSampler = Callable[[int, torch.Generator, FitOptions, float], times.Pairs]


# ----------------------------------------------------------------------------- which pairs each method draws
def _diagonal_pairs(n: int, generator: torch.Generator, options: FitOptions, fraction: float) -> times.Pairs:
    t = times.sample_times(n, generator, options.time_distribution)
    return t, t, torch.ones(n, dtype=torch.bool, device=t.device)


def _free_pairs(n: int, generator: torch.Generator, options: FitOptions, fraction: float) -> times.Pairs:
    grid_share = {"uniform": 0.0, "mixed": 0.5, "grid": 1.0}[options.pair_sampling]
    return times.sample_pairs(n, generator, options.time_distribution, fraction, grid_share, options.grid_levels,
                              options.backward_fraction)  # fmt: skip


def _dyadic_pairs(n: int, generator: torch.Generator, options: FitOptions, fraction: float) -> times.Pairs:
    return times.sample_dyadic_pairs(n, generator, fraction, options.shortcut_levels, options.time_distribution)


def _to_data_pairs(n: int, generator: torch.Generator, options: FitOptions, fraction: float) -> times.Pairs:
    return times.sample_to_data(n, generator, options.consistency_intervals)


# ----------------------------------------------------------------------------- each method's call of its loss
def _flow_matching(model: nn.Module, b: Batch, c: Context) -> torch.Tensor:
    return losses.flow_matching(model, b.x0, b.x1, b.s, c.path, reduction="none")


def _lmd(model: nn.Module, b: Batch, c: Context) -> torch.Tensor:
    return losses.lmd(model, c.teacher, b.xs, b.s, b.t, c.options.stopgrad_target, reduction="none")


def _emd(model: nn.Module, b: Batch, c: Context) -> torch.Tensor:
    return losses.emd(model, c.teacher, b.xs, b.s, b.t, reduction="none")


def _progressive(model: nn.Module, b: Batch, c: Context) -> torch.Tensor:
    return losses.progressive(model, c.teacher_map, b.xs, b.s, b.t, reduction="none")


def _lsd(model: nn.Module, b: Batch, c: Context) -> torch.Tensor:
    return losses.lsd(model, model, b.xs, b.s, b.t, reduction="none")


def _esd(model: nn.Module, b: Batch, c: Context) -> torch.Tensor:
    return losses.esd(model, model, b.xs, b.s, b.t, reduction="none")


def _psd(model: nn.Module, b: Batch, c: Context) -> torch.Tensor:
    return losses.psd(model, model, b.xs, b.s, b.t, b.u, jumps=c.options.psd_jumps, on_diagonal=b.on_diagonal,
                      velocity_target=b.velocity_target, reduction="none")  # fmt: skip


def _shortcut(model: nn.Module, b: Batch, c: Context) -> torch.Tensor:
    return losses.shortcut(model, b.xs, b.s, b.t, on_diagonal=b.on_diagonal, velocity_target=b.velocity_target,
                           reduction="none")  # fmt: skip


def _meanflow(model: nn.Module, b: Batch, c: Context) -> torch.Tensor:
    return losses.meanflow(model, b.x0, b.x1, b.s, b.t, c.path, reduction="none")


def _improved_meanflow(model: nn.Module, b: Batch, c: Context) -> torch.Tensor:
    return losses.improved_meanflow(model, b.x0, b.x1, b.s, b.t, c.path, reduction="none")


def _consistency_distillation(model: nn.Module, b: Batch, c: Context) -> torch.Tensor:
    delta = 1.0 / c.options.consistency_intervals
    return losses.consistency_distillation(model, c.target, c.teacher, b.xs, b.s, delta, reduction="none")


def _consistency_training(model: nn.Module, b: Batch, c: Context) -> torch.Tensor:
    delta = 1.0 / c.options.consistency_intervals
    return losses.consistency_training(model, c.target, b.x0, b.x1, b.s, delta, c.path, reduction="none")


@dataclass(frozen=True)
class Method:
    """One objective of the book as :func:`fit` trains it.

    Attributes:
        chapter: the chapter that explains it.
        title: its name in the literature.
        loss: the call of its function in :mod:`flowlib.losses`, per sample ``(batch,)``.
        pairs: how its pairs of times are drawn.
        diagonal: ``"split"`` (:func:`flowlib.losses.diagonal` on the diagonal, ``loss`` on the other
            pairs) or ``"inside"`` (``loss`` takes the whole batch).
        teacher: ``"none"``, ``"velocity"`` (a velocity to distil) or ``"velocity_or_map"``.
        kind: what it trains (:data:`flowlib.flowmap.KINDS`): how its samples are drawn.
        cost: forward-pass equivalents per training sample off the diagonal (forward 1, backward 2, a
            JVP with its forward 2, a backward through a JVP 4).
        options: the options it reads besides :data:`COMMON_OPTIONS`.
        defaults: its defaults, each with a one-line reason.
        benchmarked: whether ``python -m benchmarks`` trains it (its rows in ``book/generated/benchmark.*``);
            a new objective starts unbenchmarked, and its row says ``True`` once the benchmark is regenerated.
    """

    chapter: int
    title: str
    loss: LossCall
    pairs: PairSampler
    diagonal: str
    teacher: str
    kind: str
    cost: int
    options: tuple[str, ...] = ()
    defaults: dict[str, Default] = field(default_factory=dict)
    benchmarked: bool = False

    @property
    def needs_velocity_target(self) -> bool:
        """Whether its batches carry a target velocity for the diagonal."""
        return "diagonal_target" in self.options


_SELF_DISTILLATION = {
    "diagonal_fraction": Default(0.75, "with a quarter on the diagonal LSD diverged"),
    "diagonal_warmup": Default(0.3, "learn the velocity that teaches the jumps before the jumps"),
    "lr": Default(2e-3, "the best shortcut run at the 90 s budget used it"),
}
_CONSISTENCY = {
    "consistency_intervals": Default(16, "with 64 the models had not left the boundary after 2500 steps"),
    "target_decay": Default(0.9, "a slower target (0.99) propagated from the boundary too slowly"),
}
_MEANFLOW = {
    "diagonal_fraction": Default(0.75, "as the MeanFlow paper: most pairs on the diagonal"),
    "lr": Default(2e-3, "as for the self-distillation methods"),
    "time_frequencies": Default(2, "the JVP differentiates the time embedding: 2^3 made it stall"),
}

#: Every objective :func:`fit` knows, in the book's order.
# fmt: off
METHODS: dict[str, Method] = {
    "flow_matching": Method(
        chapter=2, title="flow matching (a velocity, sampled by an ODE solver)", kind="velocity", cost=3,
        loss=_flow_matching, pairs=_diagonal_pairs, diagonal="inside", teacher="none",
        options=("time_distribution",),
        defaults={
            "lr": Default(2e-3, "chapter 2's rate: a velocity alone trains well at it"),
            "time_frequencies": Default(6, "the velocity network of chapters 2-3 and of the benchmark's baseline"),
        },
    ),
    "lmd": Method(
        chapter=6, title="Lagrangian map distillation", kind="flow_map", cost=7, benchmarked=True,
        loss=_lmd, pairs=_free_pairs, diagonal="split", teacher="velocity",
        options=DIAGONAL_OPTIONS + PAIR_OPTIONS + ("stopgrad_target",),
        defaults={"diagonal_target": Default("teacher", "the teacher knows the velocity exactly")},
    ),
    "emd": Method(
        chapter=6, title="Eulerian map distillation", kind="flow_map", cost=8, benchmarked=True,
        loss=_emd, pairs=_free_pairs, diagonal="split", teacher="velocity",
        options=DIAGONAL_OPTIONS + PAIR_OPTIONS,
        defaults={"diagonal_target": Default("teacher", "the teacher knows the velocity exactly")},
    ),
    "progressive": Method(
        chapter=6, title="progressive flow-map matching", kind="flow_map", cost=5, benchmarked=True,
        loss=_progressive, pairs=_free_pairs, diagonal="split", teacher="velocity_or_map",
        options=DIAGONAL_OPTIONS + PAIR_OPTIONS + ("teacher_steps",),
        defaults={"diagonal_target": Default("teacher", "the teacher knows the velocity exactly")},
    ),
    "lsd": Method(
        chapter=7, title="Lagrangian self-distillation", kind="flow_map", cost=7, benchmarked=True,
        loss=_lsd, pairs=_free_pairs, diagonal="split", teacher="none",
        options=DIAGONAL_OPTIONS + PAIR_OPTIONS, defaults=_SELF_DISTILLATION,
    ),
    "esd": Method(
        chapter=7, title="Eulerian self-distillation", kind="flow_map", cost=9, benchmarked=True,
        loss=_esd, pairs=_free_pairs, diagonal="split", teacher="none",
        options=DIAGONAL_OPTIONS + PAIR_OPTIONS, defaults=_SELF_DISTILLATION,
    ),
    "psd": Method(
        chapter=7, title="progressive self-distillation", kind="flow_map", cost=7, benchmarked=True,  # 4 jumps: K + 3
        loss=_psd, pairs=_free_pairs, diagonal="inside", teacher="none",
        options=DIAGONAL_OPTIONS + PAIR_OPTIONS + ("psd_jumps", "psd_intermediate"),
        defaults={
            "diagonal_fraction": Default(0.5, "half the batch on jumps beat a quarter at the 90 s budget"),
            "diagonal_warmup": Default(0.3, "learn the velocity that teaches the jumps before the jumps"),
            "lr": Default(3e-3, "more progress per step in the same time"),
            "pair_sampling": Default("mixed", "the samplers' own jumps, and free ones for every other pair"),
            "psd_jumps": Default(4, "four equal jumps per target: fewer levels between velocity and jumps"),
            "diagonal_target": Default("posterior", "a far less noisy target for the velocity that teaches"),
        },
    ),
    "meanflow": Method(
        chapter=8, title="MeanFlow", kind="flow_map", cost=6, benchmarked=True,
        loss=_meanflow, pairs=_free_pairs, diagonal="inside", teacher="none",
        options=MEANFLOW_OPTIONS, defaults=_MEANFLOW,
    ),
    "improved_meanflow": Method(
        chapter=8, title="improved MeanFlow", kind="flow_map", cost=7, benchmarked=True,
        loss=_improved_meanflow, pairs=_free_pairs, diagonal="inside", teacher="none",
        options=MEANFLOW_OPTIONS, defaults=_MEANFLOW,
    ),
    "consistency_distillation": Method(
        chapter=9, title="consistency distillation", kind="consistency", cost=5, benchmarked=True,
        loss=_consistency_distillation, pairs=_to_data_pairs, diagonal="inside", teacher="velocity",
        options=CONSISTENCY_OPTIONS, defaults=_CONSISTENCY,
    ),
    "consistency_training": Method(
        chapter=9, title="consistency training", kind="consistency", cost=4, benchmarked=True,
        loss=_consistency_training, pairs=_to_data_pairs, diagonal="inside", teacher="none",
        options=CONSISTENCY_OPTIONS, defaults=_CONSISTENCY,
    ),
    "shortcut": Method(
        chapter=9, title="shortcut model", kind="flow_map", cost=5, benchmarked=True,
        loss=_shortcut, pairs=_dyadic_pairs, diagonal="inside", teacher="none",
        options=DIAGONAL_OPTIONS + ("shortcut_levels",), defaults=_SELF_DISTILLATION,
    ),
}
# fmt: on
#: Forward-pass equivalents per training sample off the diagonal, by method (chapter 6 and the benchmark);
#: PSD's counts its default four teacher jumps (``psd_jumps=K`` costs K + 3).
COST = {name: method.cost for name, method in METHODS.items()}
TEACHER_METHODS = tuple(name for name, method in METHODS.items() if method.teacher != "none")


def users(option: str) -> list[str]:
    """The methods that read ``option``."""
    return [name for name, method in METHODS.items() if option in COMMON_OPTIONS or option in method.options]


def defaults(method: str) -> dict[str, object]:
    """Every option's value for ``method`` when the caller sets none (the one source the chapters print)."""
    check_choice(method, "method", METHODS)
    spec = METHODS[method]
    values = {**asdict(FitOptions()), **{k: d.value for k, d in spec.defaults.items()}}
    return {k: v for k, v in values.items() if k in COMMON_OPTIONS or k in spec.options}


def resolve_options(method: str, options: dict[str, object]) -> FitOptions:
    """The caller's options on top of the method's defaults, checked.

    Raises:
        TypeError: an option :func:`fit` does not know (the message lists the valid ones).
        ValueError: an option this method does not read (the message says which methods do), or a bad value.
    """
    check_choice(method, "method", METHODS)
    known = [f.name for f in fields(FitOptions)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown}; valid options are {known}")
    spec = METHODS[method]
    for name in options:
        if name not in COMMON_OPTIONS and name not in spec.options:
            raise ValueError(f"method {method!r} does not use option {name!r}; it is read by {users(name)}")
    resolved = FitOptions(**{**{k: d.value for k, d in spec.defaults.items()}, **options})
    _check_values(resolved, spec)
    return resolved


def training_pairs(method: str, n: int = 2000, seed: int = 0, **options: object) -> times.Pairs:
    r"""The pairs of times :func:`fit` draws for ``method`` after its warm-up: ``(s, t, on_diagonal)``, each ``(n,)``.

    The same sampler and options as a training batch (the method's defaults, then ``options``), so a
    picture of them (chapter 9's family tree in the :math:`(s, t)` plane) shows what the method is taught.

    Raises:
        TypeError, ValueError: as :func:`resolve_options`.
    """
    resolved = resolve_options(method, options)
    generator = torch.Generator().manual_seed(check_positive_int(seed, "seed", minimum=0))
    fraction = 1.0 if method == "flow_matching" else resolved.diagonal_fraction
    return METHODS[method].pairs(check_positive_int(n, "n"), generator, resolved, fraction)


def _check_values(o: FitOptions, spec: Method) -> None:
    for name in ("width", "depth", "time_frequencies", "batch_size", "pool_size", "grid_levels", "teacher_steps",
                 "shortcut_levels", "consistency_intervals", "unet_width", "unet_levels"):  # fmt: skip
        check_positive_int(getattr(o, name), name)
    check_positive_int(o.psd_jumps, "psd_jumps", minimum=2)
    check_positive_int(o.posterior_references, "posterior_references", minimum=0)
    check_positive(o.lr, "lr")
    check_positive(o.diagonal_weight, "diagonal_weight")
    check_choice(o.schedule, "schedule", ("cosine", "constant"))
    check_choice(o.network, "network", ("auto", "mlp", "unet"))
    check_choice(o.psd_intermediate, "psd_intermediate", ("equal", "uniform"))
    if o.psd_intermediate == "uniform" and o.psd_jumps != 2:
        raise ValueError(f"psd_intermediate='uniform' composes two jumps: pass psd_jumps=2 (got {o.psd_jumps})")
    check_choice(o.time_distribution, "time_distribution", times.DISTRIBUTIONS)
    check_choice(o.pair_sampling, "pair_sampling", ("uniform", "grid", "mixed"))
    check_choice(o.diagonal_target, "diagonal_target", ("conditional", "posterior", "teacher"))
    if o.diagonal_target == "teacher" and spec.teacher == "none":
        raise ValueError("diagonal_target='teacher' needs a method with a teacher: " + ", ".join(TEACHER_METHODS))
    for name in ("diagonal_fraction", "diagonal_warmup", "backward_fraction"):
        if not 0.0 <= getattr(o, name) <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {getattr(o, name)}")
    if o.ema_decay is not None and not 0.0 < o.ema_decay < 1.0:  # the rule train.train applies, checked at the call
        raise ValueError(f"ema_decay must be in (0, 1), or None for no weight average; got {o.ema_decay}")
    if not 0.0 <= o.target_decay < 1.0:
        raise ValueError(f"target_decay must be in [0, 1) (0: the online network itself), got {o.target_decay}")


# ----------------------------------------------------------------------------- data, teacher, cache key
def _data_pool(data: object, size: int, seed: int) -> torch.Tensor:
    if isinstance(data, str):
        if data in datasets.SAMPLERS:
            return datasets.sample(data, size, seed=seed)
        if data not in datasets.MIXTURES:
            names = sorted({*datasets.SAMPLERS, *datasets.MIXTURES})
            raise ValueError(f"data: unknown dataset name {data!r}; the named datasets are {names}")
        return datasets.mixture(data).sample(size, seed=seed).float()
    if isinstance(data, GaussianMixture):
        return data.sample(size, seed=seed).float()
    if isinstance(data, torch.Tensor):
        as_points(data, "data")
        if data.shape[0] < 2:
            raise ValueError(f"data must hold at least 2 points to train on; got shape {tuple(data.shape)}")
        if data.ndim == 4:
            _check_image_range(data)
        return data.detach().float()
    raise TypeError(
        "data must be a dataset name, a GaussianMixture, or a tensor of points (N, d) or images (N, C, H, W); "
        f"got {type(data).__name__}"
    )


def _check_image_range(images: torch.Tensor) -> None:
    """Images live in [-1, 1] in this book (-1 the background); refuse pixel values, warn about [0, 1] images.

    Samples of a Gaussian mixture fitted to the digits reach about 3.5 (its tails), so only values far outside,
    such as [0, 255] pixels, are refused.
    """
    largest, smallest = float(images.max()), float(images.min())
    if max(abs(largest), abs(smallest)) > 10:
        raise ValueError(
            f"images must be scaled to [-1, 1] (the book's convention, -1 the background); these reach "
            f"{max(abs(largest), abs(smallest)):.3g}: rescale them, e.g. images / 127.5 - 1 for values in [0, 255]"
        )
    if smallest >= 0:
        warnings.warn(
            f"the images are all >= 0 (in [{smallest:.3g}, {largest:.3g}]); the book's images live in [-1, 1] with "
            "-1 the background: rescale them (e.g. 2 * images - 1 for values in [0, 1]) unless this is intended",
            stacklevel=3,
        )


def _check_device(device: object) -> torch.device:
    """A torch device from ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, a ``torch.device``), or a clear error."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asks for CUDA, but torch sees no GPU here (use 'cpu')")
    return resolved


def _teacher_velocity(teacher: object) -> Callable:
    """A teacher's velocity ``b(x, t)``: a flow map's diagonal, or the callable itself."""
    return teacher.velocity if isinstance(teacher, FlowMap) else teacher


def _teacher_map(teacher: object, steps: int) -> Callable:
    """A map ``X'(x, s, t)``: a teacher flow map, or ``steps`` RK4 steps of a teacher velocity."""
    if isinstance(teacher, FlowMap):
        return teacher
    return lambda x, s, t: ode.integrate(teacher, x, ode.pair_grid(s, t, steps, x.shape[0]), "rk4").to(x.dtype)


def _fingerprint(obj: object) -> str:
    """A short hash of what defines a data pool or a teacher: tensor bytes, weights, mixture parameters."""
    digest = hashlib.sha256()
    if obj is None:
        digest.update(b"none")
    elif isinstance(obj, torch.Tensor):
        digest.update(str(tuple(obj.shape)).encode() + obj.detach().cpu().contiguous().numpy().tobytes())
    elif isinstance(obj, nn.Module):
        digest.update(repr(obj).encode())
        for value in obj.state_dict().values():
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    elif isinstance(obj, GaussianMixture):
        for value in (obj.weights, obj.means, obj.covs):
            digest.update(value.numpy().tobytes())
        digest.update(obj.interpolant.name.encode())
    elif inspect.ismethod(obj):
        digest.update(_fingerprint(obj.__self__).encode() + obj.__name__.encode())
    elif hasattr(obj, "__wrapped__"):  # e.g. nets.detached(network): what it wraps
        digest.update(b"wrapped" + _fingerprint(obj.__wrapped__).encode())
    else:  # a function the reader wrote (a reward): its source; a teacher is keyed by its behaviour (_teacher_key)
        try:
            digest.update(inspect.getsource(obj).encode())
        except (OSError, TypeError):
            digest.update(repr(obj).encode())
    return digest.hexdigest()[:16]


def _teacher_key(teacher: object, pool: torch.Tensor) -> str:
    """What defines a teacher for the cache.

    A model, a mixture or a bound method is keyed by its parameters (:func:`_fingerprint`). A function the reader
    wrote is keyed by what it does: its outputs at 16 fixed points of the data's shape and 16 times in (0, 1). So
    reformatting a lambda does not retrain, and a lambda over a model that has since been retrained does.
    """
    if teacher is None or isinstance(teacher, (nn.Module, GaussianMixture)) or inspect.ismethod(teacher):
        return _fingerprint(teacher)
    if hasattr(teacher, "__wrapped__"):
        return _fingerprint(teacher)
    probes = torch.randn((16, *pool.shape[1:]), generator=torch.Generator().manual_seed(0), dtype=pool.dtype)
    with torch.no_grad():
        answers = torch.as_tensor(teacher(probes, torch.linspace(0.02, 0.98, 16, dtype=pool.dtype)))
    return "behaviour " + _fingerprint(answers.detach().float().cpu())


# ----------------------------------------------------------------------------- the training step
class Trainee(nn.Module):
    """What the optimiser sees: the model, and for consistency models an EMA target copy (not optimised)."""

    def __init__(self, model: nn.Module, target: bool) -> None:
        super().__init__()
        self.model = model
        self.target = copy.deepcopy(model).requires_grad_(False) if target else None


def _draw_batch(
    spec: Method, pool: torch.Tensor, context: Context, generator: torch.Generator, fraction: float
) -> Batch:
    """Data, noise, pairs and (for the methods that need one) the diagonal's target velocity."""
    o, path = context.options, context.path
    x1 = train.draw(pool, o.batch_size, generator)
    x0 = torch.randn(x1.shape, generator=generator, device=x1.device)
    s, t, on_diagonal = spec.pairs(o.batch_size, generator, o, fraction)
    xs = path(x0, x1, s)
    target = None
    if spec.needs_velocity_target:
        if o.diagonal_target == "teacher":  # the teacher is asked on the diagonal only: it may be expensive
            target = torch.zeros_like(xs)
            with torch.no_grad():
                target[on_diagonal] = context.teacher(xs[on_diagonal], s[on_diagonal]).to(xs.dtype)
        elif o.diagonal_target == "posterior":
            d = on_diagonal
            references = train.draw(pool, o.posterior_references, generator) if o.posterior_references else pool[:0]
            target = path.derivative(x0, x1, s)
            target[d] = losses.posterior_velocity(x0[d], x1[d], s[d], torch.cat([x1[~d], references]), path)
        else:
            target = path.derivative(x0, x1, s)
    u = None
    if o.psd_intermediate == "uniform":  # Boffi et al.'s variant: one intermediate time, uniform between s and t
        u = s + (t - s) * torch.rand(s.shape, generator=generator, device=s.device, dtype=s.dtype)
    return Batch(x0, x1, s, t, on_diagonal, xs, target, u)


def _diagonal_share(o: FitOptions, progress: float) -> float:
    """The batch's share on the diagonal: all of it in the warm-up (``diagonal_warmup``), then ``diagonal_fraction``."""
    return 1.0 if progress < o.diagonal_warmup else o.diagonal_fraction


def _make_loss(spec: Method, pool: torch.Tensor, context: Context) -> train.LossFn:
    """The loss of one step, ``loss_fn(trainee, generator, progress)``, for :func:`flowlib.train.train`."""
    o = context.options

    def loss_fn(trainee: Trainee, generator: torch.Generator, progress: float) -> torch.Tensor:
        context_now = Context(o, context.path, context.teacher, context.teacher_map, trainee.target)
        fraction = _diagonal_share(o, progress)
        with trusted():  # the library drew this batch itself: skip the per-call value scans
            batch = _draw_batch(spec, pool, context_now, generator, fraction)
            model, d = trainee.model, batch.on_diagonal
            if spec.diagonal == "split":
                per_sample = torch.zeros(d.shape[0], device=d.device)
                if d.any():
                    per_sample[d] = losses.diagonal(model, batch.xs[d], batch.s[d], batch.velocity_target[d], "none")
                if (~d).any():
                    per_sample[~d] = spec.loss(model, batch.rows(~d), context_now)
            else:
                per_sample = spec.loss(model, batch, context_now)
        return torch.where(d, o.diagonal_weight * per_sample, per_sample).mean()

    return loss_fn


@dataclass(frozen=True)
class FitRecord:
    """How :func:`fit` trained a model (its ``record`` attribute).

    Attributes:
        method: the objective's name in :data:`METHODS`.
        options: every option, resolved.
        result: the training loop's :class:`flowlib.train.TrainResult` (losses, steps, seconds, cache).
    """

    method: str
    options: FitOptions
    result: train.TrainResult

    @property
    def losses(self) -> list[float]:
        """The loss at every step."""
        return self.result.losses

    @property
    def steps(self) -> int:
        """Optimisation steps taken."""
        return self.result.steps

    @property
    def seconds(self) -> float:
        """Training time in seconds (of the original run when loaded from the cache)."""
        return self.result.seconds

    def __str__(self) -> str:
        return f"{self.method}: {self.result}"


def _build_model(spec: Method, pool: torch.Tensor, o: FitOptions, device: torch.device, seed: int) -> nn.Module:
    """The network for ``pool``'s points: a U-Net for images (``network="auto"`` or ``"unet"``), else an MLP.

    The initial weights come from ``seed`` and leave the caller's global random generator where it was (a
    chapter's later draws do not depend on whether it trained a model).
    """
    n_times = 1 if spec.kind == "velocity" else 2
    gap = o.gap and n_times == 2
    images = pool.ndim == 4
    if o.network == "unet" and not images:
        raise ValueError(f"network='unet' needs images (N, C, H, W); the data has shape {tuple(pool.shape)}")
    with seeded_weights(seed):
        if o.network == "unet" or (o.network == "auto" and images):
            net = UNet(pool.shape[1], o.unet_width, o.unet_levels, n_times, o.time_frequencies, gap=gap)
        else:
            net = MLP(int(pool[0].numel()), o.width, o.depth, n_times, o.time_frequencies, gap=gap)
    return (VelocityModel(net) if n_times == 1 else FlowMap(net, kind=spec.kind)).to(device)


def _start_from(model: nn.Module, init: object) -> None:
    """Copy ``init``'s weights into ``model``, with an error that says what differs when they do not fit."""
    if not isinstance(init, nn.Module):
        raise TypeError(f"init must be a model that fit returned (a torch.nn.Module), got {type(init).__name__}")
    ours, theirs = model.state_dict(), init.state_dict()
    mismatched = [k for k in ours if k not in theirs or theirs[k].shape != ours[k].shape]
    if mismatched or len(theirs) != len(ours) or type(model) is not type(init):
        raise ValueError(
            f"init must have the network these options build ({type(model).__name__} with "
            f"{sum(v.numel() for v in ours.values())} weights); it is a {type(init).__name__} whose weights differ "
            f"(first mismatch: {mismatched[0] if mismatched else 'the set of layers'}). Pass the options the model "
            "was trained with (model.record.options)"
        )
    model.load_state_dict({k: v.to(ours[k].device, ours[k].dtype) for k, v in theirs.items()})


def build_model(
    method: str, data: object, seed: int = 0, *, device: str | torch.device | None = None, **options: object
) -> VelocityModel | FlowMap:
    r"""The untrained network that :func:`fit` starts from: same architecture and same initial weights.

    A velocity :math:`v^\theta_t(x)` (:class:`~flowlib.flowmap.VelocityModel`) for ``"flow_matching"``, a flow map
    :math:`X^\theta_{s,t}(x) = x + (t - s)\, v^\theta_{s,t}(x)` (:class:`~flowlib.flowmap.FlowMap`) otherwise; an
    MLP for points ``(N, d)``, a U-Net for images ``(N, C, H, W)``.

    Args:
        method: one of :data:`METHODS`.
        data: what :func:`fit` accepts (a dataset name, a mixture or a tensor); only its shape is read.
        seed: the seed :func:`fit` would get (it seeds the initial weights).
        device: where the network lives (default: :func:`flowlib.chapter.default_device`).
        **options: fields of :class:`FitOptions` the method reads (``width``, ``depth``, …).

    Returns:
        The network in train mode.
    """
    check_choice(method, "method", METHODS)
    spec, o = METHODS[method], resolve_options(method, options)
    device = _check_device(device) if device is not None else default_device()
    pool = _data_pool(data, 2, seed)  # a name or a mixture: two points are enough to read the shape
    return _build_model(spec, pool, o, device, seed)


def draw_batch(
    method: str, pool: torch.Tensor, generator: torch.Generator, *, progress: float = 1.0, **options: object
) -> Batch:
    r"""One training batch exactly as :func:`fit` draws it for ``method`` (the methods without a teacher).

    Data :math:`x_1` from ``pool``, noise :math:`x_0 \sim \mathcal N(0, I)`, time pairs :math:`(s, t)` with a share
    ``diagonal_fraction`` on the diagonal :math:`s = t`, the point :math:`x_s = I_s(x_0, x_1)` and, where the method
    needs one, the diagonal's target velocity (``diagonal_target``; flow matching's :math:`\dot I_s` by default).

    Args:
        method: one of :data:`METHODS` that learns without a teacher.
        pool: training points ``(N, d)`` or images ``(N, C, H, W)`` (:func:`fit` draws its batches from such a pool).
        generator: the source of every random number of the batch (seed it once, before the loop).
        progress: the share of training done, in [0, 1] (only ``diagonal_warmup`` reads it).
        **options: fields of :class:`FitOptions` the method reads (``batch_size``, ``diagonal_fraction``, …).

    Returns:
        A :class:`Batch` of ``batch_size`` rows.
    """
    check_choice(method, "method", METHODS)
    spec, o = METHODS[method], resolve_options(method, options)
    if spec.teacher != "none":
        raise ValueError(f"method: draw_batch draws batches of the methods without a teacher; {method!r} distils one")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must be the share of training done, in [0, 1]; got {progress}")
    if not isinstance(pool, torch.Tensor) or pool.ndim not in (2, 4) or pool.shape[0] < 1:
        kind = f"a tensor of shape {tuple(pool.shape)}" if isinstance(pool, torch.Tensor) else type(pool).__name__
        raise TypeError(f"pool must be a tensor of points (N, d) or images (N, C, H, W), got {kind}")
    fraction = _diagonal_share(o, progress)
    return _draw_batch(spec, pool, Context(o, get_interpolant(o.interpolant)), generator, fraction)


def fit(
    method: str,
    data: object,
    train_steps: int = 2000,
    seed: int = 0,
    teacher: object = None,
    *,
    max_seconds: float | None = None,
    progress: bool = True,
    cache: bool = True,
    name: str | None = None,
    device: str | torch.device | None = None,
    init: nn.Module | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    **options: object,
) -> VelocityModel | FlowMap:
    r"""Train a velocity (``"flow_matching"``) or a flow map :math:`X^\theta_{s,t}` with one of the book's objectives.

    Args:
        method: one of :data:`METHODS` (``"lsd"``, ``"psd"``, ``"meanflow"``, …).
        data: a dataset name (``"checkerboard"``, ``"eight_gaussians"``, …), a
            :class:`~flowlib.exact.GaussianMixture`, or a tensor of points ``(N, d)`` or images ``(N, C, H, W)``.
        train_steps: optimisation steps (an upper bound when ``max_seconds`` is set).
        seed: seed of the data pool, the initial weights and every batch.
        teacher: for ``"lmd"``, ``"emd"``, ``"consistency_distillation"``: a velocity ``b(x, t)``
            (e.g. ``mix.velocity``, a trained velocity or flow map); for ``"progressive"``: a velocity
            or a pre-trained :class:`~flowlib.flowmap.FlowMap`.
        max_seconds: stop after this much training time (the benchmark's fixed budget).
        progress: show a progress bar.
        cache: load/save the weights in the cache, keyed by the method, every option, the seed, the
            training length, the data, the teacher and :data:`flowlib.train.CACHE_FORMAT`.
        name: prefix of the cache file (default: the method).
        device: where to train (default: :func:`flowlib.chapter.default_device`, CUDA when present).
        init: start from this model's weights instead of a fresh initialisation (fine-tuning, chapter 13); it
            must have the network these options build (e.g. a model ``fit`` returned with the same options).
        checkpoint: file for periodic checkpoints of a long run; with ``resume=True`` an interrupted run
            continues from it (see :func:`flowlib.train.train`).
        resume: continue from ``checkpoint`` if it exists.
        **options: fields of :class:`FitOptions` that the method reads.

    Returns:
        The trained model in eval mode (its EMA weights when ``ema_decay`` is set): a
        :class:`~flowlib.flowmap.VelocityModel` for flow matching, else a :class:`~flowlib.flowmap.FlowMap`.
        ``model.record`` is a :class:`FitRecord`.

    Raises:
        TypeError: an unknown option, or a teacher that is not callable.
        ValueError: an unknown method (the message lists them), an option the method does not read,
            a bad value, or a missing teacher.
    """
    check_choice(method, "method", METHODS)
    check_positive_int(train_steps, "train_steps")
    spec, o = METHODS[method], resolve_options(method, options)
    if spec.teacher != "none" and teacher is None:
        raise ValueError(f"method {method!r} distils a teacher: pass teacher=<a velocity b(x, t) or a FlowMap>")
    if spec.teacher == "none" and teacher is not None:
        raise ValueError(f"method {method!r} learns without a teacher; teacher is for {list(TEACHER_METHODS)}")
    if teacher is not None and not callable(teacher):
        raise TypeError(f"teacher must be callable as teacher(x, t), got {type(teacher).__name__}")
    if max_seconds is not None:
        check_positive(max_seconds, "max_seconds")
    device = _check_device(device) if device is not None else default_device()

    pool = _data_pool(data, o.pool_size, seed)
    key = {"method": method, "options": asdict(o), "data": _fingerprint(pool), "teacher": _teacher_key(teacher, pool)}
    if init is not None:
        key["init"] = _fingerprint(init)
    pool = pool.to(device)
    model = _build_model(spec, pool, o, device, seed)
    if init is not None:
        _start_from(model, init)
    trainee = Trainee(model, target=spec.kind == "consistency")
    context = Context(
        o,
        get_interpolant(o.interpolant),
        _teacher_velocity(teacher) if teacher is not None else None,
        _teacher_map(teacher, o.teacher_steps) if method == "progressive" else None,
    )
    result = train.train(
        trainee,
        _make_loss(spec, pool, context),
        train_steps,
        lr=o.lr,
        warmup=o.warmup,
        schedule=o.schedule,
        grad_clip=o.grad_clip,
        ema_decay=o.ema_decay,
        seed=seed,
        cache_key=key if cache else None,
        name=name or method,
        max_seconds=max_seconds,
        progress=progress,
        checkpoint=checkpoint,
        resume=resume,
        after_step=(lambda module: train.ema_update(module.target, module.model, o.target_decay))
        if trainee.target is not None
        else None,
    )
    model = result.best.model
    model.eval()
    model.record = FitRecord(method, o, result)
    return model
