r"""``flowlib.fit`` (defined here): train a flow map with any objective of the book in one call (chapters 5-10).

>>> model = flowlib.fit("lsd", "checkerboard", steps=4000, seed=0)       # self-distillation
>>> model = flowlib.fit("lmd", mix.sample(100_000), teacher=mix.velocity) # distillation
>>> samples = model.sample(torch.randn(1000, 2), steps=1)

Every method shares the same network (an :class:`~flowlib.nets.MLP` on :math:`x`, :math:`s`, :math:`t`
and :math:`t - s`), data pipeline (batches of data, fresh noise, pairs of times), training loop
(:func:`flowlib.train.train`) and cache: a second call with the same arguments loads the weights.

How a batch is scored. Pairs :math:`(s, t)` are drawn by :func:`flowlib.times.sample_pairs`; a share
``diagonal_fraction`` has :math:`s = t`. On the diagonal every method learns the tangent condition
:math:`v_{s,s} = b_s` — by flow matching on conditional velocities, or, when a teacher velocity is
given, by matching the teacher directly. Off the diagonal each method applies its own rule
(:mod:`flowlib.losses`). Per-sample losses are then weighted (none, adaptive
:math:`\ell / \mathrm{sg}(\ell + c)^p`, or a learned log-variance :math:`\ell e^{-w(s,t)} + w(s,t)`)
and averaged.

Self-distilling methods (LSD, ESD, PSD) take the model's **current** weights as their teacher by
default (``teacher_mode="current"``) or an EMA copy (``"ema"``); consistency models always use an EMA
target network. The returned model is the EMA of the trained weights when ``ema_decay`` is set.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from importlib import resources

import torch
from torch import nn

from flowlib import data as datasets
from flowlib import losses, nets, ode, train
from flowlib._checks import as_points, check_choice, check_positive, check_positive_int
from flowlib.exact import GaussianMixture
from flowlib.flowmap import FlowMap
from flowlib.interpolants import get_interpolant
from flowlib.times import sample_dyadic, sample_grid_pairs, sample_pairs, sample_times

#: Every objective ``fit`` knows, with the chapter that explains it.
METHODS = {
    "flow_matching": "flow matching on the diagonal only: a velocity model (chapter 5)",
    "lmd": "Lagrangian map distillation (chapter 6)",
    "emd": "Eulerian map distillation (chapter 6)",
    "progressive": "progressive flow-map matching from a teacher (chapter 6)",
    "lsd": "Lagrangian self-distillation (chapter 7)",
    "esd": "Eulerian self-distillation (chapter 7)",
    "psd": "progressive self-distillation (chapter 7)",
    "meanflow": "MeanFlow (chapter 8)",
    "improved_meanflow": "improved MeanFlow (chapter 8)",
    "consistency_distillation": "consistency distillation (chapter 9)",
    "consistency_training": "consistency training (chapter 9)",
    "shortcut": "shortcut model (chapter 9)",
}
TEACHER_METHODS = {"lmd", "emd", "progressive", "consistency_distillation"}
SELF_METHODS = {"lsd", "esd", "psd"}
CONSISTENCY_METHODS = {"consistency_distillation", "consistency_training"}
#: Forward-pass equivalents per training step (forward 1, backward 2, a JVP with its forward 2, a
#: backward through a JVP 4), counted per sample for an off-diagonal pair; used by chapter 6 and the benchmark.
COST = {
    "flow_matching": 3,
    "lmd": 7,
    "emd": 8,
    "progressive": 5,
    "lsd": 7,
    "esd": 9,
    "psd": 7,  # fit's default of four teacher jumps without gradient; psd_jumps=K costs K + 3
    "meanflow": 6,
    "improved_meanflow": 7,
    "consistency_distillation": 5,
    "consistency_training": 4,
    "shortcut": 5,
}


@dataclass(frozen=True)
class FitOptions:
    r"""Every knob of :func:`fit`, with its default. Pass any of them as a keyword to :func:`fit`.

    Attributes:
        width: hidden width of the MLP.
        depth: hidden layers of the MLP.
        gap: also embed :math:`t - s`.
        time_frequencies: Fourier frequencies :math:`2^0, \dots, 2^{n-1}` of each time embedding.
        space_features: random Fourier features of x (:class:`flowlib.nets.MLP`; 0: none).
        space_scale: their frequency scale.
        batch_size: samples per step.
        lr: peak learning rate.
        warmup: warm-up steps (default: 2% of the steps).
        schedule: ``"cosine"`` or ``"constant"``.
        grad_clip: gradient-norm clip.
        ema_decay: EMA of the weights for the returned model (``None``: the raw weights).
        diagonal_fraction: share of pairs with :math:`s = t` (``None``: a quarter).
        time_distribution: ``"uniform"`` or ``"logit_normal"``.
        logit_mean: location of the logit-normal.
        logit_std: scale of the logit-normal.
        max_gap: largest :math:`t - s` (``None``: any).
        pair_sampling: ``"uniform"`` (pairs from ``time_distribution``), ``"grid"`` (the jumps a
            :math:`2^j`-step sampler makes, :func:`flowlib.times.sample_grid_pairs`) or ``"mixed"`` (half each).
        grid_levels: :math:`j < \text{grid\_levels}` for grid pairs.
        diagonal_weight: weight of a diagonal sample's loss relative to a jump's. The diagonal regresses
            on the noisy conditional velocity (its loss stays of order one) while a jump's target is
            deterministic, so the diagonal's gradient noise can drown the jumps' signal: with exact
            one-step targets in place of self-distilled ones, weights 1, 0.1 and 0.01 gave one-step
            sliced W2 2.1, 0.84 and 0.61 times the baseline's (eight Gaussians, 90 s). In PSD, whose
            jumps are taught by the model's own velocity, 0.3 measured within seed noise of 1 and 0.1
            diverged: the diagonal anchors the teacher.
        diagonal_target: ``"conditional"`` (flow matching's :math:`\dot I_s`) or ``"posterior"``
            (:func:`flowlib.losses.posterior_velocity`: its mean over the batch's data and
            ``posterior_references`` more points, a far less noisy estimate of :math:`b_s(I_s)`), for
            the methods whose diagonal is flow matching (self-distillation and the shortcut model).
            PSD's default (:data:`METHOD_DEFAULTS`) is ``"posterior"``.
        posterior_references: extra data points per batch for ``diagonal_target="posterior"``.
        diagonal_warmup: share of training (steps, or time with ``max_seconds``) spent on the diagonal
            alone before jumps are trained: the velocity first, then the map.
        backward_fraction: share of off-diagonal pairs jumping backwards.
        interpolant: ``"linear"`` or ``"trigonometric"``.
        weighting: ``"none"``, ``"adaptive"`` or ``"learned"``.
        adaptive_p: exponent p of the adaptive weight.
        adaptive_c: constant c of the adaptive weight.
        teacher_mode: ``"current"`` or ``"ema"`` (self-distillation).
        stopgrad_target: LMD only — evaluate the teacher at :math:`\mathrm{sg}[X_{s,t}]`.
        target_decay: EMA decay of the teacher/target network.
        consistency_intervals: N, with Δ = 1/N, for consistency models.
        shortcut_levels: the smallest shortcut step is :math:`2^{-\text{levels}}`.
        psd_jumps: equal jumps of the model composed into each PSD target (2: the midpoint rule; PSD's
            default in :data:`METHOD_DEFAULTS` is 4).
        teacher_steps: RK4 steps per half-jump when a velocity teaches a progressive map.
        pool_size: data points drawn when ``data`` is a name or a mixture.
    """

    width: int = 256
    depth: int = 4
    gap: bool = True
    time_frequencies: int = 4
    space_features: int = 0
    space_scale: float = 1.0
    batch_size: int = 512
    lr: float = 1e-3
    warmup: int | None = None
    schedule: str = "cosine"
    grad_clip: float | None = 1.0
    ema_decay: float | None = 0.999
    diagonal_fraction: float | None = None
    time_distribution: str = "uniform"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    max_gap: float | None = None
    pair_sampling: str = "uniform"
    grid_levels: int = 5
    diagonal_warmup: float = 0.0
    diagonal_weight: float = 1.0
    diagonal_target: str = "conditional"
    posterior_references: int = 256
    backward_fraction: float = 0.0
    interpolant: str = "linear"
    weighting: str = "none"
    adaptive_p: float = 1.0
    adaptive_c: float = 1e-3
    teacher_mode: str = "current"
    stopgrad_target: bool = False
    target_decay: float = 0.99
    consistency_intervals: int = 64
    shortcut_levels: int = 7
    psd_jumps: int = 2
    teacher_steps: int = 2
    pool_size: int = 100_000


#: Engineered defaults per method, applied where the caller does not pass the option. Measured on the
#: checkerboard with a 90 s budget (independent-draw evaluation, an earlier session): with three quarters
#: of each batch on the diagonal, a velocity warm-up over the first 30% of training (with sampler-grid
#: pairs mixed in) took PSD's one-step sliced W2 from 6.4x to 2.0x the flow-matching baseline's, and the
#: best shortcut run (1.96x) used the same warm-up and a peak learning rate of 2e-3. A quarter on the
#: diagonal made LSD diverge. PSD's current settings are below. At short fixed-step budgets the warm-up
#: can cost more than it gives (chapter 10 measures it).
METHOD_DEFAULTS: dict[str, dict[str, float | int | str]] = {
    "flow_matching": {"diagonal_fraction": 1.0},
    **{m: {"diagonal_fraction": 0.75, "diagonal_warmup": 0.3, "lr": 2e-3} for m in ("lsd", "esd", "shortcut")},
    # PSD's midpoint rule is the shortcut model's rule on free pairs. Half of its jumps on the grids
    # that 1-, 2-, 4-, 8- and 16-step samplers use (the shortcut model's dyadic jumps) and half free,
    # with more jumps (half the batch off the diagonal) and a higher rate, beat both the dyadic-only
    # shortcut model and uniform-only PSD at 90 s of one core (quasi-random evaluation; ratios to the
    # last iterate of a 100-step baseline at 1 / 4 steps; the benchmark now scores the baseline's EMA,
    # a stronger reference): checkerboard 1.32 / 1.07 against 1.60 / 1.09 for the shortcut
    # model and 4.61 / 1.09 for the same PSD with uniform pairs only; eight Gaussians 1.16 / 0.61 with
    # mean map error 0.042 against 1.41 / 0.97 and 0.242 for the shortcut model, whose off-grid jumps
    # such as X_{0,3/4} are never trained.
    # Each PSD target composes four equal jumps of the model instead of two halves (psd_jumps=4: fewer
    # levels between the velocity and the sampler's jumps), and the diagonal regresses on a posterior
    # average of pair velocities instead of one pair's (diagonal_target="posterior", a quieter target).
    # At 1 thread, 90 s, seeds 1-3, ratios to a 2-thread EMA baseline at 1 / 4 steps: checkerboard
    # 2.41/1.94, 1.90/1.57, 1.91/1.81 with both, against 2.68/2.12, 3.19/1.94, 2.72/1.64 with four jumps
    # alone and 3.27/2.75, 2.62/2.27, 2.59/1.72 with neither; eight Gaussians 2.81/1.57, 2.60/1.59,
    # 2.55/1.52 against 3.42/1.86, 3.33/1.77, 3.14/1.74 and 3.60/2.01, 3.24/1.84, 3.25/1.80 (mean map
    # error 0.036 against 0.047), with 20% fewer steps in the same time. The posterior diagonal alone was
    # level with neither; psd_jumps=8 was worse (2.93 and 2.14 at four steps, seed 1). Under a wall-clock
    # budget PSD also does better with batches of 256, a rate of 4e-3 and 40% on the diagonal
    # (flowlib.bench.BUDGET_OPTIONS, measured there); the defaults stay because the chapters train for
    # fixed step counts.
    "psd": {
        "diagonal_fraction": 0.5,
        "diagonal_warmup": 0.3,
        "lr": 3e-3,
        "pair_sampling": "mixed",
        "psd_jumps": 4,
        "diagonal_target": "posterior",
    },
    # MeanFlow differentiates the network in s: with time features up to 2^3 the JVP term was large and
    # training stalled (one-step sliced W2 0.50 on the eight Gaussians after 2000 steps); up to 2^1, 0.14.
    "meanflow": {"diagonal_fraction": 0.75, "lr": 2e-3, "time_frequencies": 2},
    "improved_meanflow": {"diagonal_fraction": 0.75, "lr": 2e-3, "time_frequencies": 2},
    # Consistency models learn X_{s,1} backwards from the boundary, one interval per target update: with
    # 64 intervals and a 0.99 EMA target they had not left the boundary after 2500 steps (one-step sliced
    # W2 0.59 on the eight Gaussians); 16 intervals and a 0.9 target gave 0.26 (distillation), 0.20 (training).
    **{
        m: {"consistency_intervals": 16, "target_decay": 0.9}
        for m in ("consistency_distillation", "consistency_training")
    },
}
#: The share of pairs on the diagonal when neither the caller nor :data:`METHOD_DEFAULTS` sets it.
FALLBACK_DIAGONAL = 0.25


def resolve_options(method: str, options: dict) -> dict:
    """The caller's options on top of the method's engineered defaults (:data:`METHOD_DEFAULTS`)."""
    return {**METHOD_DEFAULTS.get(method, {}), **options}


class Trainee(nn.Module):
    """What the optimiser sees: the flow map, an optional target copy and an optional weight network."""

    def __init__(self, flow_map: FlowMap, target: bool, learned_weight: bool) -> None:
        super().__init__()
        self.flow_map = flow_map
        self.target = copy.deepcopy(flow_map).requires_grad_(False) if target else None
        self.log_weight = nets.TimeWeight() if learned_weight else None

    def update_target(self, decay: float) -> None:
        """EMA update of the target copy towards the current weights."""
        if self.target is None:
            return
        with torch.no_grad():
            for p_target, p in zip(self.target.parameters(), self.flow_map.parameters(), strict=True):
                p_target.lerp_(p, 1.0 - decay)


def _fingerprint(obj: object) -> str:
    """A short stable description of data, a teacher or a network, for cache keys."""
    digest = hashlib.sha256()
    if obj is None:
        return "none"
    if isinstance(obj, torch.Tensor):
        digest.update(obj.detach().cpu().contiguous().numpy().tobytes())
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
    elif hasattr(obj, "module"):  # a nets.detached wrapper
        digest.update(_fingerprint(obj.module).encode() + getattr(obj, "method_name", "").encode())
    else:
        try:
            digest.update(inspect.getsource(obj).encode())
        except (OSError, TypeError):
            digest.update(repr(obj).encode())
    return digest.hexdigest()[:16]


def library_fingerprint() -> str:
    """A hash of the library code that defines a training run, so a code change never reuses a stale cache."""
    digest = hashlib.sha256()
    for name in ("fitting.py", "losses.py", "flowmap.py", "nets.py", "times.py", "train.py", "interpolants.py"):
        digest.update(resources.files("flowlib").joinpath(name).read_bytes())
    return digest.hexdigest()[:16]


def _data_pool(data: object, size: int, seed: int) -> torch.Tensor:
    if isinstance(data, str):
        if data in datasets.SAMPLERS:
            return datasets.sample(data, size, seed=seed)
        return datasets.mixture(data).sample(size, seed=seed).float()
    if isinstance(data, GaussianMixture):
        return data.sample(size, seed=seed).float()
    if isinstance(data, torch.Tensor):
        as_points(data, "data")
        return data.detach().float()
    raise TypeError(f"data must be a dataset name, a GaussianMixture or a (N, d) tensor; got {type(data).__name__}")


def _teacher_map(teacher: object, steps: int) -> Callable:
    """A map X'(x, s, t) from a teacher flow map, or from a few RK4 steps of a teacher velocity."""
    if isinstance(teacher, FlowMap):
        return teacher
    return lambda x, s, t: ode.integrate(teacher, x, ode.pair_grid(s, t, steps, x.shape[0]), "rk4").to(x.dtype)


def _weighted_mean(
    per_sample: torch.Tensor, s: torch.Tensor, t: torch.Tensor, trainee: Trainee, options: FitOptions
) -> torch.Tensor:
    if options.weighting == "adaptive":
        weight = 1.0 / (per_sample.detach() + options.adaptive_c) ** options.adaptive_p
        return (weight * per_sample).mean()
    if options.weighting == "learned":
        log_weight = trainee.log_weight(s, t)
        return (per_sample * torch.exp(-log_weight) + log_weight).mean()
    return per_sample.mean()


def _weigh_diagonal(per_sample: torch.Tensor, on_diagonal: torch.Tensor, options: FitOptions) -> torch.Tensor:
    """Scale the diagonal samples' losses ``(batch,)`` by ``options.diagonal_weight``."""
    if options.diagonal_weight == 1.0:
        return per_sample
    return torch.where(on_diagonal, options.diagonal_weight * per_sample, per_sample)


class _Progress:
    """Share of training done, from the number of calls (steps) or the time used (``max_seconds``)."""

    def __init__(self, steps: int, max_seconds: float | None) -> None:
        self.steps, self.max_seconds, self.calls, self.start = steps, max_seconds, 0, None

    def tick(self) -> float:
        if self.start is None:
            self.start = time.perf_counter()
        self.calls += 1
        by_time = (time.perf_counter() - self.start) / self.max_seconds if self.max_seconds else 0.0
        return max(self.calls / self.steps, by_time)


def _pairs(
    batch: int, generator: torch.Generator, options: FitOptions, diagonal_fraction: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs (s, t): the first round(diagonal_fraction * batch) on the diagonal, the rest by ``pair_sampling``."""
    s, t = sample_pairs(
        batch,
        generator,
        options.time_distribution,
        diagonal_fraction,
        options.max_gap,
        options.backward_fraction,
        options.logit_mean,
        options.logit_std,
    )
    if options.pair_sampling == "uniform":
        return s, t
    gs, gt = sample_grid_pairs(batch, generator, options.grid_levels)
    use_grid = torch.zeros(batch, dtype=torch.bool)
    use_grid[int(round(diagonal_fraction * batch)) :] = True
    if options.pair_sampling == "mixed":
        use_grid &= torch.rand(batch, generator=generator) < 0.5
    return torch.where(use_grid, gs, s), torch.where(use_grid, gt, t)


def _make_loss(method: str, pool: torch.Tensor, teacher: object, options: FitOptions, progress: _Progress) -> Callable:
    """The loss closure ``loss_fn(trainee, generator)`` for ``method``."""
    path = get_interpolant(options.interpolant)
    diagonal_fraction = options.diagonal_fraction if options.diagonal_fraction is not None else FALLBACK_DIAGONAL
    teacher_map = _teacher_map(teacher, options.teacher_steps) if method == "progressive" else None
    delta = 1.0 / options.consistency_intervals
    batch = options.batch_size

    def posterior_target(
        x0: torch.Tensor, x1: torch.Tensor, s: torch.Tensor, others: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """The diagonal's target b_s(I_s) estimated over this batch's data (``x1``, ``others``) and more."""
        count = options.posterior_references
        extra = train.draw(pool, count, generator) if count else pool[:0]
        return losses.posterior_velocity(x0, x1, s, torch.cat([others, extra]), path)

    def loss_fn(trainee: Trainee, generator: torch.Generator) -> torch.Tensor:
        model = trainee.flow_map
        warming_up = progress.tick() < options.diagonal_warmup
        x1 = train.draw(pool, batch, generator)
        x0 = torch.randn(x1.shape, generator=generator)
        if method in CONSISTENCY_METHODS:
            k = torch.randint(0, options.consistency_intervals, (batch,), generator=generator)
            s = k.float() * delta
            if method == "consistency_distillation":
                per = losses.consistency_distillation(model, trainee.target, teacher, path(x0, x1, s), s, delta)
            else:
                per = losses.consistency_training(model, trainee.target, x0, x1, s, delta, path)
            return _weighted_mean(per, s, torch.ones_like(s), trainee, options)
        fraction = 1.0 if warming_up else diagonal_fraction
        if method == "shortcut":
            s, h = sample_dyadic(batch, generator, options.shortcut_levels)
            t = s + 2 * h
        else:
            s, t = _pairs(batch, generator, options, fraction)
        on_diagonal = torch.zeros(batch, dtype=torch.bool)
        on_diagonal[: int(round(fraction * batch))] = True
        if method == "meanflow":
            per = losses.meanflow(model, x0, x1, s, t, path)
            return _weighted_mean(per, s, t, trainee, options)
        if method == "improved_meanflow":
            per = losses.improved_meanflow(model, x0, x1, s, t, path)
            return _weighted_mean(per, s, t, trainee, options)
        if method == "shortcut":  # diagonal pairs get continuous times, not the dyadic grid's
            uniform = sample_times(batch, generator, options.time_distribution, options.logit_mean, options.logit_std)
            s = torch.where(on_diagonal, uniform, s)
            t = torch.where(on_diagonal, uniform, t)
        d, o = on_diagonal, ~on_diagonal
        # Self-distillation targets come from the model itself or, with teacher_mode="ema", its EMA copy.
        own = trainee.target if options.teacher_mode == "ema" and trainee.target is not None else model
        if method in ("psd", "shortcut"):  # regressions: one forward pass over the diagonal and the jumps
            sample = path.sample_path(x0, x1, s)
            target = sample.dxt.clone()  # on the diagonal, v_{s,s}(I_s) regresses on the conditional velocity
            if options.diagonal_target == "posterior" and d.any():
                target[d] = posterior_target(x0[d], x1[d], s[d], x1[o], generator)
            if o.any():
                if method == "psd":
                    target[o] = losses.psd_target(own, sample.xt[o], s[o], t[o], jumps=options.psd_jumps)
                else:
                    target[o] = losses.shortcut_target(model, sample.xt[o], s[o], (t[o] - s[o]) / 2)
            per = (model.average_velocity(sample.xt, s, t) - target).pow(2).flatten(1).mean(1)
            return _weighted_mean(_weigh_diagonal(per, d, options), s, t, trainee, options)
        per = torch.zeros(batch)
        if d.any():  # the tangent condition v_{s,s}(I_s) = b_s(I_s), with b_s from a teacher or the data
            xs = path(x0[d], x1[d], s[d])
            if method in TEACHER_METHODS:
                with torch.no_grad():
                    target = teacher(xs, s[d]) if not isinstance(teacher, FlowMap) else teacher.velocity(xs, s[d])
            elif options.diagonal_target == "posterior":
                target = posterior_target(x0[d], x1[d], s[d], x1[o], generator)
            else:  # flow matching (losses.diagonal): the conditional velocity
                target = path.derivative(x0[d], x1[d], s[d])
            per[d] = (model.velocity(xs, s[d]) - target.to(xs.dtype)).pow(2).flatten(1).mean(1)
        if o.any():
            xs = path(x0[o], x1[o], s[o])
            so, to = s[o], t[o]
            if method == "lmd":
                per[o] = losses.lmd(model, teacher, xs, so, to, options.stopgrad_target)
            elif method == "emd":
                per[o] = losses.emd(model, teacher, xs, so, to)
            elif method == "progressive":
                per[o] = losses.progressive(model, teacher_map, xs, so, to)
            elif method == "lsd":
                per[o] = losses.lsd(model, own, xs, so, to)
            elif method == "esd":
                per[o] = losses.esd(model, own, xs, so, to)
        return _weighted_mean(_weigh_diagonal(per, d, options), s, t, trainee, options)

    return loss_fn


def fit(
    method: str,
    data: object,
    steps: int = 2000,
    seed: int = 0,
    teacher: object = None,
    *,
    max_seconds: float | None = None,
    progress: bool = True,
    cache: bool = True,
    name: str | None = None,
    **options: object,
) -> FlowMap:
    r"""Train a flow map :math:`X^\theta_{s,t}` with one of the book's objectives.

    Args:
        method: one of :data:`METHODS` (``"lsd"``, ``"psd"``, ``"meanflow"``, …).
        data: a dataset name (``"checkerboard"``, ``"eight_gaussians"``, …), a
            :class:`~flowlib.exact.GaussianMixture`, or an ``(N, d)`` tensor of data points.
        steps: optimisation steps (an upper bound when ``max_seconds`` is set).
        seed: seed of the data pool, the initial weights and every batch.
        teacher: for ``"lmd"``, ``"emd"``, ``"consistency_distillation"``: a velocity ``b(x, t)``
            (e.g. ``mix.velocity`` or a trained network); for ``"progressive"``: a velocity or a
            pre-trained :class:`FlowMap`.
        max_seconds: stop after this much training time (the benchmark's fixed budget).
        progress: show a progress bar.
        cache: load/save the weights in the cache (keyed by every argument and the library code).
        name: prefix of the cache file (default: the method).
        **options: any field of :class:`FitOptions`.

    Returns:
        The trained :class:`FlowMap` in eval mode; ``model.fit_result`` holds the
        :class:`flowlib.train.TrainResult` (losses, steps, seconds) and ``model.fit_config`` the options.

    Raises:
        ValueError: an unknown method (the message lists them), a missing teacher, or a bad option.
    """
    check_choice(method, "method", METHODS)
    check_positive_int(steps, "steps")
    unknown = set(options) - {f.name for f in fields(FitOptions)}
    if unknown:
        raise TypeError(
            f"unknown option(s) {sorted(unknown)}; valid options are {[f.name for f in fields(FitOptions)]}"
        )
    config = FitOptions(**resolve_options(method, options))  # type: ignore[arg-type]
    check_choice(config.weighting, "weighting", ("none", "adaptive", "learned"))
    check_choice(config.teacher_mode, "teacher_mode", ("current", "ema"))
    check_choice(config.pair_sampling, "pair_sampling", ("uniform", "grid", "mixed"))
    check_positive(config.diagonal_weight, "diagonal_weight")
    check_choice(config.diagonal_target, "diagonal_target", ("conditional", "posterior"))
    check_positive_int(config.psd_jumps, "psd_jumps", minimum=2)
    check_positive_int(config.posterior_references, "posterior_references", minimum=0)
    if method in TEACHER_METHODS and teacher is None:
        raise ValueError(f"method {method!r} distils a teacher: pass teacher=<a velocity b(x, t) or a FlowMap>")
    if teacher is not None and not callable(teacher):
        raise TypeError(f"teacher must be callable, got {type(teacher).__name__}")

    pool = _data_pool(data, config.pool_size, seed)
    if pool.ndim != 2:
        raise ValueError(f"fit works on (N, d) data; got shape {tuple(pool.shape)}")
    torch.manual_seed(seed)
    net = nets.MLP(
        pool.shape[1],
        width=config.width,
        depth=config.depth,
        n_times=2,
        gap=config.gap,
        n_frequencies=config.time_frequencies,
        space_features=config.space_features,
        space_scale=config.space_scale,
    )
    needs_target = method in CONSISTENCY_METHODS or (method in SELF_METHODS and config.teacher_mode == "ema")
    trainee = Trainee(FlowMap(net), target=needs_target, learned_weight=config.weighting == "learned")
    key = {
        "method": method,
        "data": _fingerprint(pool),
        "teacher": _fingerprint(teacher),
        "options": asdict(config),
        "library": library_fingerprint(),
    }
    result = train.train(
        trainee,
        _make_loss(method, pool, teacher, config, _Progress(steps, max_seconds)),
        steps,
        lr=config.lr,
        warmup=config.warmup if config.warmup is not None else min(500, max(1, steps // 50)),
        schedule=config.schedule,
        grad_clip=config.grad_clip,
        ema_decay=config.ema_decay,
        seed=seed,
        cache_key=key if cache else None,
        name=name or method,
        max_seconds=max_seconds,
        progress=progress,
        after_step=(lambda module: module.update_target(config.target_decay)) if needs_target else None,
    )
    model = result.best.flow_map
    model.eval()
    model.fit_result = result
    model.fit_config = {"method": method, **asdict(config)}
    return model


def describe(model: FlowMap) -> str:
    """One line about how a model from :func:`fit` was trained."""
    result = getattr(model, "fit_result", None)
    config = getattr(model, "fit_config", {})
    if result is None:
        return "a flow map not trained by flowlib.fit"
    return f"{config.get('method', '?')}: {result}"
