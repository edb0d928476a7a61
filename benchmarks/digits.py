r"""The digits rows of the benchmark: a flow-matching teacher and flow maps on the 8x8 digits, one budget each.

For each training seed, a flow-matching velocity (the teacher, sampled with 100 Heun steps) and every method
of :data:`DigitsConfig.methods` are trained on the 1,437 training digits for the same wall-clock budget, with
chapter 11's network and options. Each model draws ``n_eval`` samples from noise that depends only on the seed
(the same noise for every model of a seed), scored against the 360 held-out digits by
:func:`flowlib.metrics.image_report`: the Fréchet distance on the book's classifier's features, its
real-vs-real floor, and the memorisation ratio. Per method and number of steps the result holds, over seeds,
the mean and standard error of FD / floor, of FD / the teacher's FD (paired: the same seed's teacher), and of
the memorisation ratio.

Run it with ``python -m benchmarks --digits`` (about 12 minutes on an idle 2-core CPU with the default three
seeds and a 40-second budget); it writes ``book/generated/benchmark_digits.json`` and ``.md``.
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import asdict, dataclass, field

import torch

import flowlib
from flowlib import data, metrics, sampling

#: chapter 11's options for every digits model (book: "Evidence", images on a CPU)
DIGITS_OPTIONS = {"batch_size": 128, "unet_width": 32, "unet_levels": 2, "ema_decay": 0.99}
#: the issue's targets: teacher FD / floor, best map's FD / teacher at 1 and 2 steps, memorisation range
TARGETS = {"teacher_vs_floor": 1.5, "one_step_vs_teacher": 1.0, "two_steps_vs_teacher": 0.9, "memorisation": (0.8, 1.2)}


@dataclass
class DigitsConfig:
    """Sizes of a digits benchmark run.

    Attributes:
        budget: training seconds per model, the teacher included.
        seeds: training seeds (each also fixes the evaluation noise).
        methods: flow-map methods of :data:`flowlib.METHODS` trained from scratch.
        steps: sampling steps at which every map is scored.
        n_eval: samples per score (at most 360, the held-out digits).
        teacher_steps: Heun steps of the teacher.
    """

    budget: float = 40.0
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = ("psd", "lsd", "shortcut", "meanflow")
    steps: tuple[int, ...] = (1, 2, 4, 8)
    n_eval: int = 360
    teacher_steps: int = 100
    options: dict = field(default_factory=lambda: dict(DIGITS_OPTIONS))

    @classmethod
    def quick(cls) -> DigitsConfig:
        """A seconds-long run for the tests."""
        return cls(budget=1.5, seeds=(0, 1), methods=("psd",), steps=(1, 2), n_eval=40, teacher_steps=4)


def _stats(values: list[float]) -> dict:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return {"mean": mean, "se": None, "values": values}
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return {"mean": mean, "se": math.sqrt(variance / len(values)), "values": values}


def _train(method: str, seed: int, config: DigitsConfig) -> object:
    images = data.digits("train").images
    return flowlib.fit(
        method, images, train_steps=10**7, seed=seed, max_seconds=config.budget, cache=False, progress=False,
        **config.options,
    )  # fmt: skip


def run_digits(config: DigitsConfig, progress: bool = True) -> dict:
    """Train and score the teacher and every method for every seed; returns the result dictionary."""
    if not 2 <= config.n_eval <= 360:
        raise ValueError(f"n_eval must be between 2 and 360 (the held-out digits), got {config.n_eval}")
    raw: dict[str, dict] = {"teacher": {"fd_ratio": [], "memorisation": [], "train_steps": []}}
    for method in config.methods:
        raw[method] = {k: {"fd_ratio": [], "vs_teacher": [], "memorisation": []} for k in config.steps}
        raw[method]["train_steps"] = []
    started = time.perf_counter()
    for seed in config.seeds:
        noise = torch.randn(config.n_eval, 1, 8, 8, generator=torch.Generator().manual_seed(1000 + seed))
        teacher = _train("flow_matching", seed, config)
        report = metrics.digits_report(sampling.sample(teacher, noise, config.teacher_steps))
        teacher_fd = report.fd
        raw["teacher"]["fd_ratio"].append(report.ratio)
        raw["teacher"]["memorisation"].append(report.memorisation)
        raw["teacher"]["train_steps"].append(teacher.record.result.steps)
        if progress:
            print(f"seed {seed}: teacher FD / floor {report.ratio:.2f} ({teacher.record.result.steps} steps)")
        for method in config.methods:
            model = _train(method, seed, config)
            raw[method]["train_steps"].append(model.record.result.steps)
            for k in config.steps:
                report = metrics.digits_report(sampling.sample(model, noise, k))
                raw[method][k]["fd_ratio"].append(report.ratio)
                raw[method][k]["vs_teacher"].append(report.fd / teacher_fd)
                raw[method][k]["memorisation"].append(report.memorisation)
            if progress:
                ratios = ", ".join(f"{k}: {raw[method][k]['vs_teacher'][-1]:.2f}" for k in config.steps)
                print(f"seed {seed}: {method} FD / teacher at {ratios}")
    result = {
        "config": asdict(config),
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads()},
        "seconds": time.perf_counter() - started,
        "teacher": {name: _stats(values) for name, values in raw["teacher"].items()},
        "methods": {
            method: {
                "train_steps": _stats(raw[method]["train_steps"]),
                "steps": {str(k): {name: _stats(v) for name, v in raw[method][k].items()} for k in config.steps},
            }
            for method in config.methods
        },
    }
    result["targets"] = check_digits_targets(result)
    return result


def check_digits_targets(result: dict) -> dict:
    """The issue's targets against the means: ``{target: (measured, goal, met)}``."""
    teacher = result["teacher"]["fd_ratio"]["mean"]
    methods = result["methods"]
    out = {"teacher FD / floor <= 1.5": (teacher, TARGETS["teacher_vs_floor"], teacher <= TARGETS["teacher_vs_floor"])}
    for k, name, goal in (("1", "one_step_vs_teacher", "1.0"), ("2", "two_steps_vs_teacher", "0.9")):
        if all(k in row["steps"] for row in methods.values()):
            best = min(row["steps"][k]["vs_teacher"]["mean"] for row in methods.values())
            out[f"best map, {k} step(s): FD / teacher <= {goal}"] = (best, TARGETS[name], best <= TARGETS[name])
    low, high = TARGETS["memorisation"]
    for method, row in methods.items():
        first = min(row["steps"], key=int)
        value = row["steps"][first]["memorisation"]["mean"]
        out[f"{method}, {first} step(s): memorisation in [{low}, {high}]"] = (value, (low, high), low <= value <= high)
    return out


def _cell(stat: dict) -> str:
    return f"{stat['mean']:.2f}" if stat["se"] is None else f"{stat['mean']:.2f} ± {stat['se']:.2f}"


def to_markdown(result: dict) -> str:
    """The appendix's digits table: one row per model and number of steps, then the targets."""
    config = result["config"]
    seeds = ", ".join(str(s) for s in config["seeds"])
    lines = [
        f"Budget {config['budget']:.0f} s of training per model on {result['machine']['threads']} threads; seeds "
        f"{seeds}; {config['n_eval']} samples per score against the 360 held-out digits; mean ± standard error "
        "over seeds.",
        "",
        "| model | steps (NFE) | FD / floor | FD / teacher | memorisation | training steps |",
        "|---|---|---|---|---|---|",
    ]
    teacher = result["teacher"]
    lines.append(
        f"| flow matching (teacher) | {config['teacher_steps']} Heun ({2 * config['teacher_steps']}) | "
        f"{_cell(teacher['fd_ratio'])} | 1 | {_cell(teacher['memorisation'])} | {teacher['train_steps']['mean']:.0f} |"
    )
    for method, row in result["methods"].items():
        for k, entry in row["steps"].items():
            lines.append(
                f"| {method} | {k} ({k}) | {_cell(entry['fd_ratio'])} | {_cell(entry['vs_teacher'])} | "
                f"{_cell(entry['memorisation'])} | {row['train_steps']['mean']:.0f} |"
            )
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    for name, (value, _, met) in result["targets"].items():
        lines.append(f"| {name} | {value:.2f} | {'yes' if met else 'no'} |")
    return "\n".join(lines) + "\n"


#: the two networks compared at equal budget: name -> options on top of chapter 11's (the MLP drops the U-Net's)
NETWORKS = {
    "U-Net (chapter 11)": dict(DIGITS_OPTIONS),
    "flattened MLP (256 x 4)": {**{k: v for k, v in DIGITS_OPTIONS.items() if not k.startswith("unet_")},
                                "network": "mlp"},
}  # fmt: skip


def run_networks(config: DigitsConfig, progress: bool = True) -> dict:
    """Chapter 11's question "why a U-Net?" measured: each network of :data:`NETWORKS` trains the teacher and PSD
    on the digits for the same budget, per seed, scored as :func:`run_digits` scores (FD / floor, memorisation).

    Returns:
        ``{"config", "machine", "seconds", "networks": {name: {"parameters", "teacher": {...}, "psd": {steps: {...}},
        "train_steps": {...}}}}`` with means and standard errors over seeds.
    """
    images = data.digits("train").images
    raw = {name: {"teacher": {"fd_ratio": [], "memorisation": []}, "psd": {k: {"fd_ratio": [], "memorisation": []}
                                                                          for k in config.steps},
                  "train_steps": {"teacher": [], "psd": []}, "parameters": 0} for name in NETWORKS}  # fmt: skip
    started = time.perf_counter()
    for seed in config.seeds:
        noise = torch.randn(config.n_eval, 1, 8, 8, generator=torch.Generator().manual_seed(1000 + seed))
        for name, options in NETWORKS.items():
            common = dict(train_steps=10**7, seed=seed, max_seconds=config.budget, cache=False, progress=False)
            teacher = flowlib.fit("flow_matching", images, **common, **options)
            report = metrics.digits_report(sampling.sample(teacher, noise, config.teacher_steps))
            raw[name]["teacher"]["fd_ratio"].append(report.ratio)
            raw[name]["teacher"]["memorisation"].append(report.memorisation)
            model = flowlib.fit("psd", images, **common, **options)
            for k in config.steps:
                report = metrics.digits_report(sampling.sample(model, noise, k))
                raw[name]["psd"][k]["fd_ratio"].append(report.ratio)
                raw[name]["psd"][k]["memorisation"].append(report.memorisation)
            raw[name]["train_steps"]["teacher"].append(teacher.record.result.steps)
            raw[name]["train_steps"]["psd"].append(model.record.result.steps)
            raw[name]["parameters"] = sum(p.numel() for p in model.net.parameters())
            if progress:
                first = raw[name]["psd"][config.steps[0]]["fd_ratio"][-1]
                print(f"seed {seed}, {name}: teacher FD / floor {raw[name]['teacher']['fd_ratio'][-1]:.2f}, PSD at "
                      f"{config.steps[0]} step(s) {first:.2f}", flush=True)  # fmt: skip

    def summarise(entry: dict) -> dict:
        return {key: _stats(values) for key, values in entry.items()}

    networks = {
        name: {"parameters": row["parameters"], "teacher": summarise(row["teacher"]),
               "psd": {str(k): summarise(entry) for k, entry in row["psd"].items()},
               "train_steps": summarise(row["train_steps"])}
        for name, row in raw.items()
    }  # fmt: skip
    return {"config": asdict(config), "machine": {"platform": platform.platform(), "threads": torch.get_num_threads()},
            "seconds": time.perf_counter() - started, "networks": networks}  # fmt: skip


def networks_markdown(result: dict) -> str:
    """The evidence page's table: per network, the teacher and PSD at each number of steps, at equal budget."""
    config = result["config"]
    lines = [
        f"Budget {config['budget']:.0f} s of training per model on {result['machine']['threads']} threads; seeds "
        f"{', '.join(str(s) for s in config['seeds'])}; {config['n_eval']} samples per score against the 360 held-out "
        "digits; mean ± standard error over seeds. Both networks get chapter 11's options (batch 128, EMA 0.99).",
        "",
        "| network | parameters | model | steps (NFE) | FD / floor | memorisation | training steps |",
        "|---|---:|---|---|---|---|---:|",
    ]
    for name, row in result["networks"].items():
        teacher, steps = row["teacher"], row["train_steps"]
        heun = f"{config['teacher_steps']} Heun ({2 * config['teacher_steps']})"
        lines.append(f"| {name} | {row['parameters']:,} | flow matching (teacher) | {heun} | "
                     f"{_cell(teacher['fd_ratio'])} | {_cell(teacher['memorisation'])} | "
                     f"{steps['teacher']['mean']:.0f} |")  # fmt: skip
        for k, entry in row["psd"].items():
            lines.append(f"| {name} | {row['parameters']:,} | PSD | {k} ({k}) | {_cell(entry['fd_ratio'])} | "
                         f"{_cell(entry['memorisation'])} | {steps['psd']['mean']:.0f} |")  # fmt: skip
    return "\n".join(lines) + "\n"
