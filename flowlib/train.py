"""One training loop for every model in the book (chapters 2 and later).

:func:`train` runs Adam with a warm-up and a cosine schedule, gradient clipping, an optional
exponential moving average (EMA) of the weights, a progress bar, a clear error on NaN/inf,
checkpoints every N steps with exact resumption, and a cache keyed by the configuration, so that
re-running a chapter (or a later chapter asking for the same model) loads the weights instead of
training again.

The objective is a callable ``loss_fn(model, generator, progress) -> scalar tensor`` that draws its
own batch from ``generator`` (a seeded ``torch.Generator`` on the model's device); ``progress`` is the
share of training done, in [0, 1], by steps or by time, whichever is further (a loss may ignore it).
Then a run is a deterministic function of its configuration, and a resumed run continues exactly.

Example:
    >>> import torch
    >>> from flowlib import data, losses, nets, train
    >>> pool = data.sample("moons", 5_000, seed=1)
    >>> def loss_fn(model, generator, progress):
    ...     x1 = train.draw(pool, 128, generator)
    ...     x0 = torch.randn(x1.shape, generator=generator)
    ...     return losses.flow_matching(model, x0, x1, torch.rand(128, generator=generator))
    >>> result = train.train(nets.MLP(2, width=32, depth=2), loss_fn, 20, progress=False)
    >>> result.steps
    20
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from flowlib._validate import check_callable, check_choice, check_positive, check_positive_int
from flowlib.chapter import cache_dir
from flowlib.progress import progress_bar

LossFn = Callable[[nn.Module, torch.Generator, float], torch.Tensor]
#: Part of every cache key. Bump it when a change to the library changes what training produces
#: (a loss, a default, the loop's numerics): every cached model is then retrained. Editing text retrains nothing.
CACHE_FORMAT = 3  # 3: the EMA warms up (ema_decay_at)


def draw(pool: torch.Tensor, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """A random batch (with replacement) of rows of ``pool`` ``(N, ...)`` → ``(batch_size, ...)``."""
    index = torch.randint(pool.shape[0], (batch_size,), generator=generator, device=generator.device)
    return pool[index.to(pool.device)]


def default_warmup(train_steps: int) -> int:
    """Linear warm-up steps when none is given: 2% of training, at least 1 and at most 500."""
    return min(500, max(1, train_steps // 50))


def ema_decay_at(step: int, decay: float) -> float:
    r"""The EMA's decay at optimisation step ``step`` (from 0): :math:`\min(d, (1 + k)/(10 + k))`.

    A fixed decay keeps :math:`d^N` of the *initial* weights after N steps (13.5% for d = 0.999 after 2000
    steps), which spoils short runs; warming the decay up makes the average forget the initialisation at
    any length and reach ``decay`` after about :math:`10/(1 - d)` steps. The measured effect is on the page
    "Evidence for the engineered defaults".
    """
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def ema_update(average: nn.Module, model: nn.Module, decay: float) -> None:
    r"""Move every parameter of ``average`` towards ``model``'s.

    .. math:: \bar\theta \leftarrow d\,\bar\theta + (1 - d)\,\theta
    """
    for p_average, p in zip(average.parameters(), model.parameters(), strict=True):
        p_average.lerp_(p.detach(), 1.0 - decay)


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        model: the trained model (in eval mode).
        ema: the EMA copy of the model, or ``None`` when ``ema_decay`` was not set.
        losses: the loss at every step.
        steps: number of optimisation steps taken.
        seconds: wall-clock training time (of the original run when loaded from cache).
        from_cache: whether the weights were loaded from the cache.
        cache_file: where the weights are cached (``None`` when caching was off).
        config: the loop's settings.
    """

    model: nn.Module
    ema: nn.Module | None
    losses: list[float]
    steps: int
    seconds: float
    from_cache: bool = False
    cache_file: Path | None = None
    config: dict = field(default_factory=dict)

    @property
    def best(self) -> nn.Module:
        """The EMA model when there is one, else the model."""
        return self.ema if self.ema is not None else self.model

    def __str__(self) -> str:
        origin = "loaded from cache" if self.from_cache else "trained"
        tail = sum(self.losses[-100:]) / max(1, len(self.losses[-100:]))
        return f"{origin}: {self.steps} steps in {self.seconds:.1f} s, final loss (last 100 steps) {tail:.4g}"


def _learning_rate_factor(step: int, train_steps: int, warmup: int, schedule: str, progress: float) -> float:
    """Linear warm-up, then cosine decay to 5% (or constant); ``progress`` may run ahead of the steps (time budget)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    after_warmup = max((step - warmup) / max(1, train_steps - warmup), progress)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, after_warmup)))


def config_hash(config: dict) -> str:
    """A short hash of a JSON-serialisable configuration."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _save(state: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, temporary)
    temporary.replace(path)  # atomic: an interrupted save never leaves a broken file


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _finite(loss: torch.Tensor, step: int, train_steps: int, losses: list[float], name: str, hint: str) -> float:
    """The loss as a float; a clear error when it is not a finite scalar."""
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        raise TypeError("loss_fn must return a scalar tensor")
    value = float(loss.detach())
    if not math.isfinite(value):
        last = f"{losses[-1]:.4g}" if losses else "none yet"
        raise FloatingPointError(
            f"training {name}: the loss is {value} at step {step} of {train_steps} (last finite loss: {last}). {hint}"
        )
    return value


@dataclass
class _Run:
    """The state a checkpoint holds: weights, optimiser, random generator, losses and time so far."""

    model: nn.Module
    ema: nn.Module | None
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    losses: list[float] = field(default_factory=list)
    step: int = 0
    seconds: float = 0.0

    def state(self, with_optimizer: bool = True) -> dict:
        state = {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "generator": self.generator.get_state(),
            "step": self.step,
            "losses": torch.tensor(self.losses, dtype=torch.float64),
            "seconds": self.seconds,
            "format": CACHE_FORMAT,
        }
        return {**state, "optimizer": self.optimizer.state_dict()} if with_optimizer else state

    def restore(self, state: dict, to_continue: bool) -> None:
        """Load a saved state: the weights and the record; to continue training, the optimiser and generator too."""
        self.model.load_state_dict(state["model"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        self.losses, self.step, self.seconds = state["losses"].tolist(), int(state["step"]), float(state["seconds"])
        if not to_continue:  # a finished run from the cache: any device can load it
            return
        self.optimizer.load_state_dict(state["optimizer"])
        try:
            self.generator.set_state(state["generator"])
        except RuntimeError as error:
            raise ValueError(
                f"the checkpoint was written on another kind of device than {self.generator.device}: resume it there"
            ) from error


def _cache_file(model: nn.Module, cache_key: dict, settings: dict, name: str) -> Path:
    """Where a run is cached: a hash of the caller's key, the loop's settings, the model and the format."""
    initial = hashlib.sha256(b"".join(p.detach().cpu().numpy().tobytes() for p in model.state_dict().values()))
    key = {"user": cache_key, "settings": settings, "model": repr(model), "init": initial.hexdigest()[:16]}
    return cache_dir() / f"{name}-{config_hash({**key, 'format': CACHE_FORMAT})}.pt"


def _checked_settings(
    train_steps: int, lr: float, warmup: int | None, schedule: str, weight_decay: float, grad_clip: float | None,
    ema_decay: float | None, seed: int, max_seconds: float | None,
) -> dict:  # fmt: skip
    """The loop's settings, checked, with the default warm-up filled in (they enter the cache key)."""
    check_positive_int(train_steps, "train_steps")
    check_positive(lr, "lr")
    check_choice(schedule, "schedule", ("cosine", "constant"))
    if ema_decay is not None and not 0.0 < ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in (0, 1) or None; got {ema_decay}")
    warmup = default_warmup(train_steps) if warmup is None else check_positive_int(warmup, "warmup", minimum=0)
    return dict(
        train_steps=train_steps,
        lr=lr,
        warmup=warmup,
        schedule=schedule,
        weight_decay=weight_decay,
        grad_clip=grad_clip,
        ema_decay=ema_decay,
        seed=seed,
        max_seconds=max_seconds,
    )


def train(
    model: nn.Module,
    loss_fn: LossFn,
    train_steps: int,
    *,
    lr: float = 1e-3,
    warmup: int | None = None,
    schedule: str = "cosine",
    weight_decay: float = 0.0,
    grad_clip: float | None = 1.0,
    ema_decay: float | None = None,
    seed: int = 0,
    cache_key: dict | None = None,
    name: str = "model",
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 500,
    resume: bool = False,
    max_seconds: float | None = None,
    progress: bool = True,
    after_step: Callable[[nn.Module], None] | None = None,
) -> TrainResult:
    """Train ``model`` by minimising ``loss_fn``, with caching, checkpoints and a progress bar.

    Args:
        model: the network, on the device to train on (seed before building it: its initial weights
            are part of the run).
        loss_fn: ``loss_fn(model, generator, progress) -> scalar tensor``; it must draw every random
            number from ``generator``.
        train_steps: number of optimisation steps (an upper bound with ``max_seconds``).
        lr: peak learning rate of Adam.
        warmup: linear warm-up steps (default: :func:`default_warmup`).
        schedule: ``"cosine"`` (decays to 5% of ``lr``) or ``"constant"``.
        weight_decay: Adam's weight decay.
        grad_clip: clip the gradient norm to this value (``None``: no clipping).
        ema_decay: keep an EMA of the weights with this decay (e.g. 0.999), warmed up by :func:`ema_decay_at`.
        seed: seed of the generator handed to ``loss_fn``.
        cache_key: a dict that says what ``loss_fn`` trains on and how (the data, the objective and
            its options); with it, the result is cached under a hash of this dict, the loop's
            settings, the model's structure and initial weights, and :data:`CACHE_FORMAT`.
            ``None``: no cache.
        name: a readable prefix for the cache file and the progress bar.
        checkpoint: file for periodic checkpoints (``resume=True`` continues from it).
        checkpoint_every: steps between checkpoints.
        resume: continue from ``checkpoint`` if it exists.
        max_seconds: stop after this much training time (the step count is recorded).
        progress: show a progress bar.
        after_step: called with the model after every optimiser step (e.g. to update a target copy
            that lives inside the model; parameters with ``requires_grad=False`` are not optimised).

    Returns:
        A :class:`TrainResult`.

    Raises:
        FloatingPointError: the loss became NaN or infinite (the message names the step).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_callable(loss_fn, "loss_fn", "loss_fn(model, generator, progress) -> scalar tensor")
    if after_step is not None:
        check_callable(after_step, "after_step", "after_step(model)")
    settings = _checked_settings(
        train_steps, lr, warmup, schedule, weight_decay, grad_clip, ema_decay, seed, max_seconds
    )
    warmup = settings["warmup"]
    device = next(model.parameters()).device if any(True for _ in model.parameters()) else torch.device("cpu")
    run = _Run(
        model,
        copy.deepcopy(model).requires_grad_(False) if ema_decay is not None else None,
        torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay),
        torch.Generator(device=device).manual_seed(seed),
    )
    cache_file = _cache_file(model, cache_key, settings, name) if cache_key is not None else None
    if cache_file is not None and cache_file.exists():
        run.restore(_load(cache_file), to_continue=False)
        return _finish(run, settings, cache_file, from_cache=True)
    checkpoint_path = Path(checkpoint) if checkpoint is not None else None
    if resume and checkpoint_path is not None and checkpoint_path.exists():
        run.restore(_load(checkpoint_path), to_continue=True)

    model.train()
    hint = f"Lower the learning rate (now {lr}), clip gradients harder (now {grad_clip}) or check the data."
    bar = progress_bar(range(run.step, train_steps), desc=f"training {name}", disable=not progress)
    clock, seconds_before = time.perf_counter(), run.seconds
    for step in bar:
        share_done = max(step / train_steps, (run.seconds / max_seconds) if max_seconds else 0.0)
        for group in run.optimizer.param_groups:
            group["lr"] = lr * _learning_rate_factor(step, train_steps, warmup, schedule, share_done)
        loss = loss_fn(model, run.generator, share_done)
        run.losses.append(_finite(loss, step, train_steps, run.losses, name, hint))
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(run.optimizer.param_groups[0]["params"], grad_clip)
        run.optimizer.step()
        if after_step is not None:
            after_step(model)
        if run.ema is not None:
            ema_update(run.ema, model, ema_decay_at(step, ema_decay))
        run.step, run.seconds = step + 1, seconds_before + time.perf_counter() - clock
        if progress and (step % 50 == 0 or step == train_steps - 1):
            bar.set_postfix(loss=f"{sum(run.losses[-50:]) / len(run.losses[-50:]):.4f}", refresh=False)
        if checkpoint_path is not None and run.step % checkpoint_every == 0 and run.step < train_steps:
            _save(run.state(), checkpoint_path)
        if max_seconds is not None and run.seconds > max_seconds:
            break
    bar.close()
    if checkpoint_path is not None:
        _save(run.state(), checkpoint_path)
    if cache_file is not None:
        _save(run.state(with_optimizer=False), cache_file)
    return _finish(run, settings, cache_file, from_cache=False)


def _finish(run: _Run, settings: dict, cache_file: Path | None, from_cache: bool) -> TrainResult:
    run.model.eval()
    if run.ema is not None:
        run.ema.eval()
    return TrainResult(run.model, run.ema, run.losses, run.step, run.seconds, from_cache, cache_file, settings)
