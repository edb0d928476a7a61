"""One training loop for every model in the book.

:func:`train` runs Adam with a warm-up and a cosine schedule, gradient clipping, an
optional exponential moving average (EMA) of the weights, a progress bar, a clear error
on NaN/inf, checkpoints every N steps with exact resumption, and a cache keyed by the
whole configuration, so that re-running a chapter (or a later chapter asking for the
same model) loads the weights instead of training again.

The objective is a callable ``loss_fn(model, generator) -> scalar tensor`` that draws
its own batch from ``generator`` (a seeded ``torch.Generator``): then the run is a
deterministic function of its configuration, and a resumed run continues exactly.

Example:
    >>> pool = data.sample("moons", 50_000, seed=1)
    >>> def loss_fn(model, gen):
    ...     x1 = train.draw(pool, 256, gen)
    ...     x0 = torch.randn(x1.shape, generator=gen)
    ...     return losses.flow_matching(model, x0, x1, torch.rand(256, generator=gen))
    >>> result = train.train(nets.MLP(2), loss_fn, steps=2000, cache_key={"data": "moons"})
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from flowlib._checks import check_callable, check_positive, check_positive_int
from flowlib.chapter import cache_dir

LossFn = Callable[[nn.Module, torch.Generator], torch.Tensor]
CACHE_FORMAT = 1  # bump when the saved layout or the loop's numerics change


def progress_bar(iterable: Iterable, total: int | None = None, desc: str = "", disable: bool = False) -> Iterator:
    """A text progress bar (tqdm) that renders in terminals, notebooks, Colab and the built site.

    Text mode is used on purpose: a widget bar needs JavaScript from a CDN on the static site.
    It redraws at most about twenty times, so an executed notebook stores a short record.
    """
    from tqdm import tqdm

    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    every = max(1, (total or 0) // 20)
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        disable=disable,
        file=sys.stdout,
        mininterval=0.5,
        miniters=every,
        ncols=90,
        leave=True,
    )


def draw(pool: torch.Tensor, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """A random batch (with replacement) of rows of ``pool`` ``(N, ...)`` → ``(batch_size, ...)``."""
    index = torch.randint(pool.shape[0], (batch_size,), generator=generator)
    return pool[index.to(pool.device)]


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


def _learning_rate_factor(step: int, steps: int, warmup: int, schedule: str, time_fraction: float = 0.0) -> float:
    """Warm-up, then cosine decay to 5%; with a time budget, progress is the larger of steps and time used."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = max((step - warmup) / max(1, steps - warmup), time_fraction)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _source_of(fn: Callable) -> str:
    """The source text of ``fn`` (for cache keys); falls back to its bytecode."""
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        return code.co_code.hex() if code is not None else repr(fn)


def config_hash(config: dict) -> str:
    """A short hash of a JSON-serialisable configuration."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _state(
    model: nn.Module,
    ema: nn.Module | None,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    step: int,
    losses: list[float],
    seconds: float,
) -> dict:
    return {
        "model": model.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
        "step": step,
        "losses": torch.tensor(losses, dtype=torch.float64),
        "seconds": seconds,
        "format": CACHE_FORMAT,
    }


def _save(state: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, temporary)
    temporary.replace(path)  # atomic: an interrupted save never leaves a broken file


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def train(
    model: nn.Module,
    loss_fn: LossFn,
    steps: int,
    *,
    lr: float = 1e-3,
    warmup: int = 0,
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
        model: the network (its initial weights are part of the run: seed before building it).
        loss_fn: ``loss_fn(model, generator) -> scalar tensor``; it must draw every random
            number from ``generator``.
        steps: number of optimisation steps.
        lr: peak learning rate of Adam.
        warmup: linear warm-up steps.
        schedule: ``"cosine"`` (decays to 5% of ``lr``) or ``"constant"``.
        weight_decay: Adam's weight decay.
        grad_clip: clip the gradient norm to this value (``None``: no clipping).
        ema_decay: keep an EMA of the weights with this decay (e.g. 0.999).
        seed: seed of the generator handed to ``loss_fn``.
        cache_key: a dict describing what ``loss_fn`` cannot say about itself (the data, say);
            with it, the result is cached under a hash of this dict, the model's structure
            and initial weights, ``loss_fn``'s source and every argument here. ``None``: no cache.
        name: a readable prefix for the cache file.
        checkpoint: file for periodic checkpoints (``resume=True`` continues from it).
        checkpoint_every: steps between checkpoints.
        resume: continue from ``checkpoint`` if it exists.
        max_seconds: stop early after this much training time (the step count is recorded).
        progress: show a progress bar.
        after_step: called with the model after every optimiser step (e.g. to update a teacher copy
            that lives inside the model; parameters with ``requires_grad=False`` are not optimised).

    Returns:
        A :class:`TrainResult`.

    Raises:
        FloatingPointError: the loss became NaN or infinite (the message names the step).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_callable(loss_fn, "loss_fn", "loss_fn(model, generator) -> scalar tensor")
    if after_step is not None:
        check_callable(after_step, "after_step", "after_step(model)")
    check_positive_int(steps, "steps")
    check_positive(lr, "lr")
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"schedule must be 'cosine' or 'constant'; got {schedule!r}")
    if ema_decay is not None and not 0.0 < ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in (0, 1) or None; got {ema_decay}")
    settings = dict(
        steps=steps,
        lr=lr,
        warmup=warmup,
        schedule=schedule,
        weight_decay=weight_decay,
        grad_clip=grad_clip,
        ema_decay=ema_decay,
        seed=seed,
        max_seconds=max_seconds,
    )

    cache_file = None
    if cache_key is not None:
        initial = hashlib.sha256(b"".join(p.detach().cpu().numpy().tobytes() for p in model.state_dict().values()))
        full_key = {
            "user": cache_key,
            "model": repr(model),
            "init": initial.hexdigest()[:16],
            "loss": _source_of(loss_fn),
            "settings": settings,
            "format": CACHE_FORMAT,
        }
        cache_file = cache_dir() / f"{name}-{config_hash(full_key)}.pt"
        if cache_file.exists():
            state = _load(cache_file)
            model.load_state_dict(state["model"])
            ema = None
            if state["ema"] is not None:
                ema = copy.deepcopy(model)
                ema.load_state_dict(state["ema"])
                ema.eval()
            model.eval()
            return TrainResult(
                model,
                ema,
                state["losses"].tolist(),
                int(state["step"]),
                float(state["seconds"]),
                from_cache=True,
                cache_file=cache_file,
                config=settings,
            )

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    ema = copy.deepcopy(model).requires_grad_(False) if ema_decay is not None else None
    losses: list[float] = []
    start_step, seconds = 0, 0.0
    checkpoint_path = Path(checkpoint) if checkpoint is not None else None
    if resume and checkpoint_path is not None and checkpoint_path.exists():
        state = _load(checkpoint_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        if ema is not None and state["ema"] is not None:
            ema.load_state_dict(state["ema"])
        start_step, losses, seconds = int(state["step"]), state["losses"].tolist(), float(state["seconds"])

    model.train()
    bar = progress_bar(
        range(start_step, steps), total=steps - start_step, desc=f"training {name}", disable=not progress
    )
    clock = time.perf_counter()
    step = start_step
    for step in bar:
        used = (seconds + time.perf_counter() - clock) / max_seconds if max_seconds else 0.0
        for group in optimizer.param_groups:
            group["lr"] = lr * _learning_rate_factor(step, steps, warmup, schedule, used)
        loss = loss_fn(model, generator)
        if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
            raise TypeError("loss_fn must return a scalar tensor")
        value = float(loss.detach())
        if not math.isfinite(value):
            last = f"{losses[-1]:.4g}" if losses else "none yet"
            raise FloatingPointError(
                f"training {name}: the loss is {value} at step {step} of {steps} (last finite loss: {last}). "
                f"Lower the learning rate (now {lr}), clip gradients harder (now {grad_clip}) or check the data."
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(trainable, grad_clip)
        optimizer.step()
        if after_step is not None:
            after_step(model)
        if ema is not None:
            with torch.no_grad():
                for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
                    p_ema.lerp_(p.detach(), 1.0 - ema_decay)
        losses.append(value)
        if progress and (step % 50 == 0 or step == steps - 1):
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}", refresh=False)
        done = step + 1
        if checkpoint_path is not None and done % checkpoint_every == 0 and done < steps:
            _save(
                _state(model, ema, optimizer, generator, done, losses, seconds + time.perf_counter() - clock),
                checkpoint_path,
            )
        if max_seconds is not None and seconds + time.perf_counter() - clock > max_seconds:
            step = done
            break
    else:
        step = steps
    if hasattr(bar, "close"):
        bar.close()
    seconds += time.perf_counter() - clock
    model.eval()
    if ema is not None:
        ema.eval()
    state = _state(model, ema, optimizer, generator, step, losses, seconds)
    if checkpoint_path is not None:
        _save(state, checkpoint_path)
    if cache_file is not None:
        _save({k: v for k, v in state.items() if k != "optimizer"}, cache_file)
    return TrainResult(model, ema, losses, step, seconds, from_cache=False, cache_file=cache_file, config=settings)


def fit_velocity(
    data: torch.Tensor,
    steps: int,
    *,
    width: int = 256,
    depth: int = 4,
    batch_size: int = 512,
    lr: float = 2e-3,
    interpolant: str = "linear",
    seed: int = 0,
    name: str = "velocity",
    progress: bool = True,
    max_seconds: float | None = None,
    cache: bool = True,
    ema_decay: float | None = None,
) -> TrainResult:
    r"""Flow matching (chapter 2): learn :math:`b_t(x)` from samples of the data, cached.

    Minimises :math:`E\|b^\theta_t(I_t) - \dot I_t\|^2` (:func:`flowlib.losses.flow_matching`)
    over an :class:`flowlib.nets.MLP` with one time input, with batches of ``data``, fresh
    noise and uniform times. The result is cached under a hash of the data and every argument,
    so a later chapter asking for the same model loads it.

    Args:
        data: ``(N, d)`` training points :math:`x_1`.
        steps: optimisation steps.
        width: hidden width of the MLP.
        depth: hidden layers of the MLP.
        batch_size: pairs per step.
        lr: peak learning rate (cosine decay, 2% warm-up).
        interpolant: ``"linear"`` or ``"trigonometric"``.
        seed: seed of the initial weights and of the batches.
        name: prefix of the cache file and the progress bar.
        progress: show the progress bar.
        max_seconds: stop after this much training time (the benchmark's fixed budget).
        cache: load/save the weights in the cache. The benchmark turns it off: a run cut by
            ``max_seconds`` depends on the machine's speed, and each benchmark run must train its own.
        ema_decay: also keep an exponential moving average of the weights with this decay
            (``result.ema``); ``None``: none.

    Returns:
        A :class:`TrainResult`; ``result.model(x, t)`` is the learned velocity (last iterate),
        ``result.ema`` its weight average when ``ema_decay`` is set.
    """
    from flowlib import losses, nets
    from flowlib._checks import as_points

    as_points(data, "data")
    if data.ndim != 2:
        raise ValueError(f"data must have shape (N, d); got {tuple(data.shape)}")
    pool = data.detach().to(torch.float32)
    torch.manual_seed(seed)
    model = nets.MLP(pool.shape[1], width=width, depth=depth, n_times=1)

    def loss_fn(model: nn.Module, generator: torch.Generator) -> torch.Tensor:
        x1 = draw(pool, batch_size, generator)
        x0 = torch.randn(x1.shape, generator=generator)
        t = torch.rand(batch_size, generator=generator)
        return losses.flow_matching(model, x0, x1, t, interpolant)

    data_hash = hashlib.sha256(pool.numpy().tobytes()).hexdigest()[:16]
    key = {"data": data_hash, "batch_size": batch_size, "interpolant": interpolant, "recipe": "fit_velocity"}
    warmup = min(500, max(1, steps // 50))
    return train(
        model,
        loss_fn,
        steps,
        lr=lr,
        warmup=warmup,
        seed=seed,
        cache_key=key if cache else None,
        name=name,
        progress=progress,
        max_seconds=max_seconds,
        ema_decay=ema_decay,
    )


def saved_activation_bytes(compute: Callable[[], torch.Tensor]) -> int:
    """Bytes that autograd keeps for the backward pass of ``compute()`` (chapter 10).

    On a CPU there is no peak-memory counter; what grows with an objective's cost is the set of
    tensors saved for the backward pass (activations, and for a JVP their tangents too). This
    counts them, each storage once (forward-mode tensors by their size), while ``compute`` runs under
    :func:`torch.autograd.graph.saved_tensors_hooks`.

    Args:
        compute: a function that builds a differentiable scalar, e.g. ``lambda: loss(model, batch)``.

    Returns:
        The number of bytes saved for backward (the graph is freed afterwards).
    """
    check_callable(compute, "compute", "compute() -> loss")
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        try:
            storage = tensor.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
        except RuntimeError:  # a forward-mode (dual) tensor has no plain storage: count its elements
            seen[id(tensor)] = tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        result = compute()
    del result
    return sum(seen.values())
