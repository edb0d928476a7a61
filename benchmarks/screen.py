r"""Screening a method's options at the benchmark's budget: the evidence behind ``BUDGET_OPTIONS``.

One flow-matching baseline is trained on a dataset for the budget (seed 0) and scored by the benchmark's
:class:`~benchmarks.run.Evaluator`; then every setting is trained for the same budget with every seed and scored
at the same step counts, as a ratio of its sliced W2 to the baseline's (paired repeats, as in the benchmark).
Chapter 7's comparison with Boffi et al. asks that every from-scratch method get the screening PSD got (batch
size, learning rate, share of the diagonal); this runs it.

Run it with, for example::

    python -m benchmarks.screen --method lsd --dataset checkerboard --seeds 1 2 \
        --setting '{}' --setting '{"batch_size": 256}' --setting '{"batch_size": 256, "lr": 0.004}'

It prints one row per setting and seed and writes ``screen-<method>-<dataset>.json`` in ``--out``. Several methods
share one baseline with ``--plan plan.json``, a file mapping each method to its list of settings.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import flowlib
from benchmarks.run import BenchConfig, Evaluator, _baseline_run, _fresh, _sampler, _summarise
from flowlib.fitting import METHODS


def screen(
    method: str,
    dataset: str,
    settings: list[dict],
    seeds: tuple[int, ...],
    budget: float = 90.0,
    steps: tuple[int, ...] = (1, 4),
    progress: bool = True,
) -> dict:
    """Train ``method`` with every setting and seed for ``budget`` seconds; ratios to one baseline.

    Returns:
        ``{"baseline": {...}, "runs": [{"setting", "seed", "train_steps", "ratio": {steps: mean}}, ...]}``.
    """
    return screen_plan({method: settings}, dataset, seeds, budget, steps, progress)[method]


def screen_plan(
    plan: dict[str, list[dict]],
    dataset: str,
    seeds: tuple[int, ...],
    budget: float = 90.0,
    steps: tuple[int, ...] = (1, 4),
    progress: bool = True,
) -> dict[str, dict]:
    """:func:`screen` for several methods against one baseline (trained once): ``plan`` maps a method to its settings.

    Returns:
        One :func:`screen` result per method of ``plan``, keyed by the method.

    Raises:
        ValueError: a method of ``plan`` that :func:`flowlib.fit` does not know, or an empty plan.
    """
    if not plan:
        raise ValueError("plan must name at least one method with its settings, got an empty plan")
    for method in plan:
        if method not in METHODS:
            raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    config = BenchConfig(budget=budget, steps=steps, baseline_seeds=1)
    evaluator = Evaluator(dataset, config)
    summary, baseline_scores, _ = _baseline_run(dataset, config, evaluator, seed=0)
    pool = _fresh(dataset, 100_000, seed=0)
    results = {}
    for method, settings in plan.items():
        runs = [
            _screen_run(method, pool, setting, seed, budget, steps, evaluator, baseline_scores, progress)
            for setting in settings
            for seed in seeds
        ]
        results[method] = {"method": method, "dataset": dataset, "budget": budget, "steps": list(steps),
                           "threads": torch.get_num_threads(), "baseline": summary, "runs": runs}  # fmt: skip
    return results


def _screen_run(method, pool, setting, seed, budget, steps, evaluator, baseline_scores, progress) -> dict:
    started = time.perf_counter()
    try:
        model = flowlib.fit(method, pool, train_steps=10**9, seed=seed, max_seconds=budget, progress=False,
                            cache=False, **setting)  # fmt: skip
    except FloatingPointError as error:
        if progress:
            print(f"{method} {json.dumps(setting)} seed {seed}: diverged ({error})", flush=True)
        return {"setting": setting, "seed": seed, "diverged": str(error)}
    ratios = {}
    for k in steps:
        scored = _summarise(evaluator.scores(_sampler(model, k), 1), baseline_scores)
        ratios[str(k)] = scored["sliced_w2"]["ratio"]
    if progress:
        shown = " / ".join(f"{v:.2f}" for v in ratios.values())
        print(f"{method} {json.dumps(setting)} seed {seed}: {shown} at {steps} steps ({model.record.steps} steps)",
              flush=True)  # fmt: skip
    return {"setting": setting, "seed": seed, "train_steps": model.record.steps, "ratio": ratios,
            "seconds": time.perf_counter() - started}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.screen", description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", help="the method to screen (or --plan)")
    parser.add_argument("--plan", type=Path, help="a JSON file mapping methods to lists of settings, one baseline")
    parser.add_argument("--dataset", default="checkerboard")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--setting", action="append", type=json.loads, help="a JSON dict of fit options")
    parser.add_argument("--budget", type=float, default=90.0)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if (args.method is None) == (args.plan is None):
        parser.error("give either --method (with --setting) or --plan")
    plan = json.loads(args.plan.read_text()) if args.plan else {args.method: args.setting or [{}]}
    results = screen_plan(plan, args.dataset, tuple(args.seeds), args.budget)
    args.out.mkdir(parents=True, exist_ok=True)
    for method, result in results.items():
        (args.out / f"screen-{method}-{args.dataset}.json").write_text(json.dumps(result, indent=2, default=str))
    return results


if __name__ == "__main__":
    main()
