r"""Training and scoring: every method, the same CPU-time budget, against a baseline and the data floor.

For each dataset — the checkerboard, and the eight-Gaussian mixture whose exact flow map is known —
it trains a flow-matching velocity with three seeds (the baseline, sampled with 100 Heun steps; the
seed with the median score is the reference) and every flow-map method of :data:`flowlib.METHODS`,
each for the same wall-clock budget. Distillation methods get the reference baseline's velocity as
their teacher, evaluated without gradient. It then reports, per method:

* sliced W2 to fresh data at 1, 2, 4, 8 and 16 steps, raw and as a ratio to the baseline, with
  standard errors from paired repeats (the same fresh data and noise for method and baseline,
  both quasi-random: see :class:`Evaluator`);
* energy distance at the same step counts, and the data-vs-data floor of both metrics;
* the mean map error against the exact flow map over a grid of pairs :math:`s < t` (mixture only);
* training steps and seconds, forward-pass equivalents per training sample, and sampling time per
  10 000 points.

:mod:`benchmarks.report` turns the result into the book's table and checks the targets.
"""

from __future__ import annotations

import copy
import math
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

import flowlib
from flowlib import data, metrics, nets, sampling
from flowlib.fitting import METHODS, TEACHER_METHODS, Method, resolve_options
from flowlib.flowmap import FlowMap, VelocityModel
from flowlib.progress import progress_bar


def benchmarked_methods(methods: dict[str, Method] | None = None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The benchmark's methods, read from the table of methods (those marked ``benchmarked``), in the book's order.

    Args:
        methods: the table to read; :data:`flowlib.fitting.METHODS` as it is at the call when omitted.

    Returns:
        ``(from_scratch, distilled)``: the methods that learn without a teacher, and those distilled from one.
    """
    table = METHODS if methods is None else methods
    chosen = [name for name, method in table.items() if method.benchmarked]
    return (tuple(name for name in chosen if table[name].teacher == "none"),
            tuple(name for name in chosen if table[name].teacher != "none"))  # fmt: skip


FROM_SCRATCH, DISTILLED = benchmarked_methods()
#: Rows that train a method with other options, named ``<method>_<variant>``: PSD as Boffi et al. ran it, with
#: two jumps through the midpoint or through a uniformly drawn intermediate time, beside the book's four jumps.
VARIANTS: dict[str, tuple[str, dict]] = {
    "psd_midpoint": ("psd", {"psd_jumps": 2}),
    "psd_uniform": ("psd", {"psd_jumps": 2, "psd_intermediate": "uniform"}),
}


def method_of(entry: str) -> str:
    """The method a benchmark row trains (``"psd"`` for ``"psd_uniform"``)."""
    return VARIANTS[entry][0] if entry in VARIANTS else entry


def from_scratch(entry: str) -> bool:
    """Whether a benchmark row trains without a teacher."""
    return method_of(entry) in FROM_SCRATCH


DATASETS = ("checkerboard", "eight_gaussians")
#: Options for the 90 s wall-clock budget on top of each method's defaults (which the chapters use at
#: fixed step counts): PSD is limited by steps per second there (book: "Evidence", budget options).
BUDGET_OPTIONS: dict[str, dict] = {
    "psd": {"batch_size": 256, "lr": 4e-3, "diagonal_fraction": 0.4},
    # the same screen for LSD (book: "Evidence", LSD screened like PSD): PSD's budget options and its defaults'
    # posterior diagonal target and mixed pairs took LSD from 5.5 to 2.5 times the baseline at one step
    "lsd": {
        "batch_size": 256,
        "lr": 4e-3,
        "diagonal_fraction": 0.4,
        "diagonal_target": "posterior",
        "pair_sampling": "mixed",
    },
    # the other from-scratch methods screened the same way (book: "Evidence", the other from-scratch methods):
    # PSD's budget options and posterior diagonal took the shortcut model from 2.3 to 1.25 times the baseline at
    # one step; consistency training gained a little from the batch and rate; ESD, MeanFlow and improved
    # MeanFlow did not gain (or diverged) and keep their defaults
    "shortcut": {"batch_size": 256, "lr": 4e-3, "diagonal_fraction": 0.4, "diagonal_target": "posterior"},
    "consistency_training": {"batch_size": 256, "lr": 4e-3},
}


#: A sampler for the evaluation: (noise, repeat r, draw d) -> samples, each of shape (n, 2).
Sampler = Callable[[torch.Tensor, int, int], torch.Tensor]


@dataclass
class BenchConfig:
    """Sizes of a benchmark run.

    Attributes:
        budget: training seconds per model (baseline included).
        n_eval: points per evaluation set.
        repeats: independent evaluation sets (paired between a method and the baseline).
        renoise_draws: re-noise draws averaged within each repeat by samplers that re-noise between
            steps (consistency models); deterministic samplers are scored once per repeat.
        projections: random directions of the sliced W2.
        energy_points: points per set for the O(n²) energy distance.
        steps: step counts at which every method is sampled.
        map_times: grid for the map error, pairs s < t.
        map_points: points per start time for the map error.
        methods: the rows to train: method names and :data:`VARIANTS`.
        datasets: the datasets.
        options: options passed to :func:`flowlib.fit` for every method.
        method_options: per-method overrides of ``options``.
        baseline_seeds: baselines trained (seeds 0, 1, ...); the one with the median sliced W2 is the
            reference of every ratio and the teacher of the distillation methods.
    """

    budget: float = 90.0
    n_eval: int = 20_000
    repeats: int = 6
    renoise_draws: int = 4
    projections: int = 512
    energy_points: int = 4000
    steps: tuple[int, ...] = (1, 2, 4, 8, 16)
    map_times: int = 5
    map_points: int = 2000
    methods: tuple[str, ...] = FROM_SCRATCH + tuple(VARIANTS) + DISTILLED
    datasets: tuple[str, ...] = DATASETS
    options: dict = field(default_factory=dict)
    method_options: dict = field(default_factory=lambda: copy.deepcopy(BUDGET_OPTIONS))
    baseline_seeds: int = 3

    @classmethod
    def quick(cls) -> BenchConfig:
        """A seconds-long configuration for tests: tiny budget and evaluation sets."""
        return cls(
            budget=0.4,
            n_eval=1500,
            repeats=2,
            renoise_draws=2,
            projections=64,
            energy_points=400,
            steps=(1, 4),
            map_times=3,
            map_points=200,
            options={"width": 32, "depth": 2, "batch_size": 128, "pool_size": 5000},
            method_options={},
            baseline_seeds=2,
        )


def _fresh(dataset: str, n: int, seed: int) -> torch.Tensor:
    return data.sample(dataset, n, seed=seed)


class Evaluator:
    """Fixed noise and fresh data for one dataset, shared by every model (paired comparisons).

    Both the fresh data and the noise pushed through the models are randomised quasi-Monte Carlo
    draws (:func:`flowlib.data.sample_quasi_random`, :func:`flowlib.data.quasi_normal`): each repeat
    is an independently scrambled Sobol set, so that how many points land in each mode does not
    dominate the score (the runs that showed it: the book's "Evidence" page, evaluation).
    """

    def __init__(self, dataset: str, config: BenchConfig) -> None:
        self.dataset, self.config = dataset, config
        self.references = [
            data.sample_quasi_random(dataset, config.n_eval, seed=500_000 + r) for r in range(config.repeats)
        ]
        self.noise = [data.quasi_normal(config.n_eval, 2, seed=600_000 + r) for r in range(config.repeats)]
        self.mixture = data.mixture(dataset) if dataset in data.MIXTURES else None

    def _score(self, samples: torch.Tensor, r: int) -> tuple[float, float]:
        k = self.config.energy_points
        sliced = metrics.sliced_w2(samples, self.references[r], self.config.projections, seed=r)
        return sliced, metrics.energy_distance(samples[:k], self.references[r][:k])

    def scores(self, sampler: Sampler, draws: int = 1) -> dict[str, list[float]]:
        """Sliced W2 and energy distance of ``sampler(noise, r, d)`` against reference set ``r``, per repeat r.

        Each repeat's score is the mean over ``draws`` calls, d = 0, ..., draws - 1: a sampler that
        re-noises draws new noise for each d, so the average is less noisy than one draw, while the
        repeats, and so the standard errors, stay independent.
        """
        if not isinstance(draws, int) or draws < 1:
            raise ValueError(f"draws must be a positive integer; got {draws!r}")
        sliced, energy = [], []
        for r in range(self.config.repeats):
            per_draw = []
            for d in range(draws):
                with torch.no_grad():
                    samples = sampler(self.noise[r], r, d).float()
                if not bool(torch.isfinite(samples).all()):
                    return {"sliced_w2": [math.inf] * self.config.repeats, "energy": [math.inf] * self.config.repeats}
                per_draw.append(self._score(samples, r))
            sliced.append(sum(a for a, _ in per_draw) / draws)
            energy.append(sum(b for _, b in per_draw) / draws)
        return {"sliced_w2": sliced, "energy": energy}

    def floor(self) -> dict[str, list[float]]:
        """The same scores for an independent fresh sample of the data itself (:func:`flowlib.metrics.data_floor`)."""
        k, projections = self.config.energy_points, self.config.projections
        scores = {
            "sliced_w2": lambda a, b, r: metrics.sliced_w2(a, b, projections, seed=r),
            "energy": lambda a, b, r: metrics.energy_distance(a[:k], b[:k]),
        }
        return {
            name: [
                metrics.data_floor(lambda a, b, r=r, score=score: score(a, b, r), self._quasi_data,
                                   self.references[r], repeats=1, seed=700_000 + r)[0]
                for r in range(self.config.repeats)
            ]
            for name, score in scores.items()
        }  # fmt: skip

    def _quasi_data(self, n: int, seed: int) -> torch.Tensor:
        return data.sample_quasi_random(self.dataset, n, seed=seed)

    def map_error(self, model: FlowMap) -> float | None:
        """Mean |X_hat - X| over pairs s < t of the grid (only t = 1 for consistency models)."""
        if self.mixture is None:
            return None
        to_data_only = model.kind == "consistency"
        grid = metrics.map_error_grid(
            model, self.mixture, torch.linspace(0, 1, self.config.map_times), n=self.config.map_points, seed=800_000
        )
        return float((grid[:, -1] if to_data_only else grid).nanmean())


def _sampler(model: FlowMap | VelocityModel, steps: int) -> Sampler:
    """``steps``-step sampling through :func:`flowlib.sampling.sample`, as a function of the noise, repeat r and draw d.

    A consistency model's re-noising draws quasi-random normal sets too (one per repeat r, draw d and
    step k, in a fixed random order), like the first noise, so that repeats differ in their re-noise
    as well and the standard errors include that draw. Other samplers are deterministic and ignore r and d.
    """
    if model.kind != "consistency":
        return lambda z, r, d: sampling.sample(model, z, steps)

    def quasi_renoise(z: torch.Tensor, r: int, d: int, k: int) -> torch.Tensor:
        seed = 1_000_000 * (1 + d) + 10_000 * r + 100 * steps + k
        points = data.quasi_normal(z.shape[0], z.shape[1], seed=seed)
        return points[torch.randperm(z.shape[0], generator=torch.Generator().manual_seed(seed))]

    return lambda z, r, d: sampling.sample(model, z, steps, noise=lambda k: quasi_renoise(z, r, d, k))


def _sampling_seconds(sampler: Sampler) -> float:
    z = torch.randn(10_000, 2)
    with torch.no_grad():
        sampler(z[:100], 0, 0)
        start = time.perf_counter()
        sampler(z, 0, 0)
    return time.perf_counter() - start


def _cost_per_sample(method: str, options: dict) -> float:
    """Forward-pass equivalents per training sample, averaged over diagonal and off-diagonal pairs.

    Pairs on the diagonal cost a flow-matching step where the method regresses a target velocity
    there; each PSD teacher jump beyond the four that its row's ``cost`` counts costs one pass.
    """
    spec, resolved = METHODS[method], resolve_options(method, options)
    off_diagonal = spec.cost + (resolved.psd_jumps - 4 if "psd_jumps" in spec.options else 0)
    if not spec.needs_velocity_target:
        return float(off_diagonal)
    fraction = resolved.diagonal_fraction
    return fraction * METHODS["flow_matching"].cost + (1 - fraction) * off_diagonal


def _summarise(raw: dict[str, list[float]], baseline: dict[str, list[float]]) -> dict:
    out = {}
    for metric in ("sliced_w2", "energy"):
        value, value_se = metrics.mean_se(raw[metric])
        ratios = [a / b for a, b in zip(raw[metric], baseline[metric], strict=True)]
        ratio, ratio_se = metrics.mean_se(ratios)
        out[metric] = {"value": value, "se": value_se, "ratio": ratio, "ratio_se": ratio_se}
    return out


def _stats(values: list[float]) -> dict:
    value, se = metrics.mean_se(values)
    return {"value": value, "se": se}


def _baseline_run(dataset: str, config: BenchConfig, evaluator: Evaluator, seed: int) -> tuple[dict, dict, Callable]:
    """Train one flow-matching baseline; return its summary, its raw scores and its velocity."""
    pool = _fresh(dataset, config.options.get("pool_size", 100_000), seed=0)
    network = {k: v for k, v in config.options.items() if k in ("width", "depth", "batch_size", "pool_size")}
    velocity = flowlib.fit(
        "flow_matching", pool, 10**9, seed=seed, max_seconds=config.budget, progress=False, cache=False, **network
    )  # scored with its EMA weights, as every flow map is (book: "Evidence", evaluation)

    def heun(z: torch.Tensor, r: int, d: int) -> torch.Tensor:
        return sampling.sample(velocity, z, 100, solver="heun")

    scores = evaluator.scores(heun)
    summary = {
        "description": f"flow matching with EMA {velocity.record.options.ema_decay} weights, 100 Heun steps (NFE 200)",
        "seed": seed,
        "train_steps": velocity.record.steps,
        "train_seconds": velocity.record.seconds,
        "sliced_w2": _stats(scores["sliced_w2"]),
        "energy": _stats(scores["energy"]),
        "sampling_seconds_per_10k": _sampling_seconds(heun),
    }
    # the distillation methods' teacher: the network's velocity as a plain function, without gradient (LMD
    # then does not back-propagate through the teacher, which would double its cost)
    return summary, scores, nets.detached(velocity)


def _baseline(dataset: str, config: BenchConfig, evaluator: Evaluator) -> tuple[dict, dict, Callable]:
    """Train ``config.baseline_seeds`` baselines; return the median one's summary, raw scores and velocity.

    One 90 s baseline is a noisy reference (its spread is on the book's "Evidence" page), and every
    ratio divides by it, so the benchmark trains several seeds and takes the run with the median
    score as the reference; the summary lists them all (``runs``) so a reader sees the spread.
    """
    runs = [_baseline_run(dataset, config, evaluator, seed) for seed in range(config.baseline_seeds)]
    order = sorted(range(len(runs)), key=lambda i: runs[i][0]["sliced_w2"]["value"])
    summary, scores, velocity = runs[order[(len(runs) - 1) // 2]]
    summary = {
        **summary,
        "runs": [
            {"seed": run[0]["seed"], "train_steps": run[0]["train_steps"], "sliced_w2": run[0]["sliced_w2"]}
            for run in runs
        ],
    }
    return summary, scores, velocity


def _method(
    entry: str, dataset: str, config: BenchConfig, evaluator: Evaluator, baseline_scores: dict, teacher: Callable
) -> dict:
    """Train one row (a method, or a variant of one) for the budget and score it.

    A variant gets its method's budget options (the same effort), then its own.
    """
    method = method_of(entry)
    variant = VARIANTS[entry][1] if entry in VARIANTS else {}
    options = {**config.options, **config.method_options.get(method, {}), **variant}
    pool = _fresh(dataset, options.get("pool_size", 100_000), seed=0)
    started = time.perf_counter()
    try:
        model = flowlib.fit(
            method,
            pool,
            train_steps=10**9,
            seed=0,
            teacher=teacher if method in TEACHER_METHODS else None,
            max_seconds=config.budget,
            progress=False,
            cache=False,
            **options,
        )
    except FloatingPointError as error:
        return {"diverged": str(error)}
    draws = config.renoise_draws if model.kind == "consistency" else 1
    per_steps = {str(k): _summarise(evaluator.scores(_sampler(model, k), draws), baseline_scores) for k in config.steps}
    return {
        "setting": "distilled from the baseline" if method in TEACHER_METHODS else "from scratch",
        "train_steps": model.record.steps,
        "train_seconds": model.record.seconds,
        "wall_seconds": time.perf_counter() - started,
        "forward_equivalents_per_sample": _cost_per_sample(method, options),
        "steps": per_steps,
        "map_error": evaluator.map_error(model),
        "sampling_seconds_per_10k": _sampling_seconds(_sampler(model, 1)),
        "options": options,
    }


def run(config: BenchConfig, progress: bool = True, on_dataset: Callable[[dict], None] | None = None) -> dict:
    """Train and score everything; returns a JSON-serialisable dictionary.

    Args:
        config: the sizes of the run.
        progress: show a progress bar over the jobs (one baseline set and one method each).
        on_dataset: called with the result so far each time a dataset is finished, so that a long
            run that is interrupted keeps its finished datasets.
    """
    result: dict = {"config": asdict(config), "machine": _machine(), "datasets": {}}
    per_dataset = ("baseline", *config.methods)
    jobs = [(d, m) for d in config.datasets for m in per_dataset]
    bar = progress_bar(jobs, desc="benchmark", disable=not progress)
    state: dict[str, tuple] = {}
    for dataset, method in bar:
        section = result["datasets"].setdefault(dataset, {"methods": {}, "ran": time.strftime("%Y-%m-%d")})
        if method == "baseline":
            evaluator = Evaluator(dataset, config)
            summary, scores, velocity = _baseline(dataset, config, evaluator)
            section["baseline"] = summary
            section["floor"] = {k: _stats(v) for k, v in evaluator.floor().items()}
            state[dataset] = (evaluator, scores, velocity)
        else:
            evaluator, scores, velocity = state[dataset]
            section["methods"][method] = _method(method, dataset, config, evaluator, scores, velocity)
        if on_dataset is not None and method == per_dataset[-1]:  # the dataset's last job
            on_dataset(result)
    return result


def _machine() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "processor": platform.processor() or platform.machine(),
        "flowlib": flowlib.__version__,
    }
