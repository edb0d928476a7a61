r"""Reporting: the benchmark's result as the book's table, its targets, its precision, and merging runs."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from benchmarks.run import DATASETS, VARIANTS, from_scratch

#: The targets for the best from-scratch method: one step within 1.5x of the baseline's 100-step
#: sliced W2, four steps within 1.0x, and a mean map error of at most 0.05.
TARGETS = {"one_step_ratio": 1.5, "four_step_ratio": 1.0, "map_error": 0.05}


def precision(result: dict) -> dict:
    """How precise the reported sliced-W2 ratios are: their standard errors relative to the ratio.

    Returns:
        ``{"median": m, "max": M, "count": n}`` over every finite ratio of every method, dataset
        and step count.
    """
    relative = [
        entry["sliced_w2"]["ratio_se"] / entry["sliced_w2"]["ratio"]
        for section in result["datasets"].values()
        for row in section["methods"].values()
        for entry in row.get("steps", {}).values()
        if math.isfinite(entry["sliced_w2"]["ratio"]) and entry["sliced_w2"]["ratio"] > 0
    ]
    if not relative:
        return {"median": None, "max": None, "count": 0}
    ordered = sorted(relative)
    return {"median": ordered[len(ordered) // 2], "max": ordered[-1], "count": len(ordered)}


def check_targets(result: dict) -> dict:
    """The :data:`TARGETS` for the best from-scratch method on each dataset (by one-step ratio)."""
    verdicts = {}
    for dataset, section in result["datasets"].items():
        candidates = {m: r for m, r in section["methods"].items() if from_scratch(m) and "steps" in r}
        if not candidates:
            continue
        best = min(candidates, key=lambda m: candidates[m]["steps"]["1"]["sliced_w2"]["ratio"])
        row = candidates[best]
        four = row["steps"].get("4", {}).get("sliced_w2", {}).get("ratio")
        verdict = {
            "best_method": best,
            "one_step_ratio": row["steps"]["1"]["sliced_w2"]["ratio"],
            "four_step_ratio": four,
            "map_error": row["map_error"],
        }
        verdict["met"] = {
            "one_step": verdict["one_step_ratio"] <= TARGETS["one_step_ratio"],
            "four_step": four is not None and four <= TARGETS["four_step_ratio"],
            "map_error": None if row["map_error"] is None else row["map_error"] <= TARGETS["map_error"],
        }
        verdicts[dataset] = verdict
    return verdicts


#: Settings that two runs must share for their datasets to sit in one table.
MERGE_KEYS = (
    "budget",
    "n_eval",
    "repeats",
    "renoise_draws",
    "projections",
    "energy_points",
    "steps",
    "map_times",
    "map_points",
    "method_options",
    "baseline_seeds",
)


def merge(previous: dict, new: dict) -> dict:
    """Replace the datasets of ``previous`` that ``new`` ran, keeping the others (``--merge``).

    Rerunning one dataset after a change that only concerns it takes half the time of a full run.
    Both runs must have the same evaluation settings and thread count, or their ratios would not
    be comparable; the targets and the precision summary are recomputed over the merged datasets.

    Args:
        previous: an earlier :func:`run` result (``benchmark.json``).
        new: a later result, usually of fewer datasets.

    Returns:
        The merged result: ``new``'s datasets, then ``previous``'s others, in :data:`DATASETS` order.

    Raises:
        ValueError: a setting of :data:`MERGE_KEYS`, the methods or the thread count differ.
    """
    for key in (*MERGE_KEYS, "methods"):
        old_value, new_value = previous["config"].get(key), new["config"].get(key)
        if old_value != new_value:
            raise ValueError(f"cannot merge runs whose {key!r} differ: {old_value!r} before, {new_value!r} now")
    old_threads, new_threads = previous["machine"]["cpu_threads"], new["machine"]["cpu_threads"]
    if old_threads != new_threads:
        raise ValueError(
            f"cannot merge runs on {old_threads} and {new_threads} CPU threads; pass --threads {old_threads}"
        )
    sections = {**previous["datasets"], **new["datasets"]}
    ordered = {name: sections[name] for name in DATASETS if name in sections}
    merged = {**previous, "config": {**new["config"], "datasets": list(ordered)}, "datasets": ordered}
    return finish(merged)


NBSP = "\u00a0"  # keeps "1.14 ± 0.02" on one line in a narrow column


def _ratio(entry: dict, metric: str) -> str:
    stats = entry[metric]
    return f"{stats['ratio']:.2f}{NBSP}±{NBSP}{stats['ratio_se']:.2f}"


def _baseline_runs(base: dict) -> str:
    """How the reference baseline was chosen among several seeds, e.g. ", the median of 3 seeds (...)"."""
    runs = base["runs"]
    if len(runs) < 2:
        return ", a single training"
    values = ", ".join(f"{run['sliced_w2']['value']:.4f}" for run in runs)
    return f", the median of {len(runs)} seeds' baselines (sliced W2 {values}; seed {base['seed']} is the reference)"


def _mark(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "not met")


def to_markdown(result: dict) -> str:
    """The benchmark as Markdown tables (one per dataset), as the book's appendix shows it."""
    config, machine = result["config"], result["machine"]
    lines = [
        f"Budget: **{config['budget']:g} s** of training per model on {machine['cpu_threads']} CPU "
        f"thread{'' if machine['cpu_threads'] == 1 else 's'} "
        f"(torch {machine['torch']}). Scores are sliced W2 to fresh data as a ratio to the baseline (flow "
        f"matching, the EMA of its weights, sampled with 100 Heun steps): mean ± standard error over "
        f"{config['repeats']} paired quasi-random sets of {config['n_eval']:,} points (fresh data and noise); "
        "lower is better, 1.00 is as good as the baseline.",
    ]
    if config["renoise_draws"] > 1:
        lines[-1] += (
            f" Consistency models re-noise between steps: their score on each set is the mean over "
            f"{config['renoise_draws']} re-noise draws."
        )
    overrides = config.get("method_options") or {}
    if overrides:
        listed = "; ".join(
            f"{method}: " + ", ".join(f"`{key}={value}`" for key, value in options.items())
            for method, options in overrides.items()
        )
        lines[-1] += f" Options set for this wall-clock budget on top of the engineered defaults: {listed}."
    spread = result.get("precision", {})
    if spread.get("count"):
        lines[-1] += (
            f" Standard errors of the {spread['count']} ratios: median {100 * spread['median']:.1f}%, "
            f"largest {100 * spread['max']:.1f}% of the ratio."
        )
    lines.append("")
    steps = [str(k) for k in config["steps"]]
    for dataset, section in result["datasets"].items():
        base, floor = section["baseline"], section["floor"]
        lines += [
            f"## {dataset.replace('_', ' ')}",
            "",
            f"Baseline sliced W2 {base['sliced_w2']['value']:.4f} ± {base['sliced_w2']['se']:.4f} "
            f"({base['train_steps']:,} training steps; {base['sampling_seconds_per_10k']:.2f} s per 10k samples)"
            f"{_baseline_runs(base)}; "
            f"data-vs-data floor {floor['sliced_w2']['value']:.4f} ± {floor['sliced_w2']['se']:.4f} "
            f"(ratio {floor['sliced_w2']['value'] / base['sliced_w2']['value']:.2f}). "
            f"Energy distance: baseline {base['energy']['value']:.5f}, floor {floor['energy']['value']:.5f}."
            + (f" Run on {section['ran']}." if "ran" in section else ""),
            "",
        ]
        step_headers = " | ".join(f"{k} step{'' if k == '1' else 's'}" for k in steps)
        lines += [
            f"**Sliced W2 ratio to the baseline, by number of sampling steps** ({dataset.replace('_', ' ')})",
            "",
            f"| method | {step_headers} |",
            "|---|" + "---|" * len(steps),
        ]
        for method, row in section["methods"].items():
            if "diverged" in row:
                lines.append(f"| {method} | diverged |" + " |" * (len(steps) - 1))
                continue
            lines.append(f"| {method} | " + " | ".join(_ratio(row["steps"][k], "sliced_w2") for k in steps) + " |")
        lines += [
            "",
            f"**Training and cost** ({dataset.replace('_', ' ')}): steps reached in the budget, forward-pass "
            "equivalents per training sample, energy-distance ratio at one step, mean map error, seconds per "
            "10 000 one-step samples",
            "",
            "| method | setting | train steps | FPE/sample | energy, 1 step | map error | s per 10k |",
            "|---|---|---|---|---|---|---|",
        ]
        for method, row in section["methods"].items():
            if "diverged" in row:
                lines.append(f"| {method} | diverged | | | | | |")
                continue
            map_error = "—" if row["map_error"] is None else f"{row['map_error']:.3f}"
            lines.append(
                f"| {method} | {row['setting']} | {row['train_steps']:,} | "
                f"{row['forward_equivalents_per_sample']:.1f} | {_ratio(row['steps'][steps[0]], 'energy')} | "
                f"{map_error} | {row['sampling_seconds_per_10k']:.3f} |"
            )
        lines.append("")
    lines += [
        "## Targets (best from-scratch method by its one-step score)",
        "",
        "| dataset | method | 1 step (≤ 1.5) | 4 steps (≤ 1.0) | map error (≤ 0.05) |",
        "|---|---|---|---|---|",
    ]
    for dataset, verdict in result.get("targets", {}).items():
        met = verdict["met"]
        map_error = "—" if verdict["map_error"] is None else f"{verdict['map_error']:.3f}"
        four = "—" if verdict["four_step_ratio"] is None else f"{verdict['four_step_ratio']:.2f}"
        lines.append(
            f"| {dataset} | {verdict['best_method']} | {verdict['one_step_ratio']:.2f} ({_mark(met['one_step'])}) | "
            f"{four} ({_mark(met['four_step'])}) | {map_error} ({_mark(met['map_error'])}) |"
        )
    return "\n".join(lines) + "\n"


def fingerprint(result: dict) -> str:
    """A short hash of the result, written into the chart so that a test can tell it was drawn from it."""
    return hashlib.sha256(json.dumps(result, sort_keys=True, default=str).encode()).hexdigest()[:16]


def chart(result: dict, path: Path) -> None:
    """Draw the ratio to the baseline against the number of sampling steps, one panel per dataset, to ``path``.

    One line per method (solid: from scratch, dashed: distilled from the baseline's velocity; error bars: the
    ratio's standard error), the baseline at 1 and the data floor's ratio dotted; the SVG's description
    holds :func:`fingerprint` of ``result``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from flowlib import viz

    steps = [str(k) for k in result["config"]["steps"]]
    sections = result["datasets"]
    methods = list(dict.fromkeys(m for section in sections.values() for m in section["methods"]))
    colours = {m: viz.method_colour(m) for m in methods}  # the book's colour of each method
    # solid: from scratch; dashed: distilled from a teacher; dash-dot: a variant, in its method's colour
    styles = {m: "-." if m in VARIANTS else ("-" if from_scratch(m) else "--") for m in methods}
    with plt.rc_context({"svg.hashsalt": "flow-maps-benchmark", "font.size": 9}):
        fig, axes = plt.subplots(1, len(sections), figsize=(3.6 * len(sections) + 1.8, 3.6), sharey=True, squeeze=False)
        for ax, (dataset, section) in zip(axes[0], sections.items(), strict=True):
            for method, row in section["methods"].items():
                if "diverged" in row:
                    continue
                ratios = [row["steps"][k]["sliced_w2"]["ratio"] for k in steps]
                errors = [row["steps"][k]["sliced_w2"]["ratio_se"] for k in steps]
                xs = [int(k) for k in steps]
                ax.errorbar(xs, ratios, yerr=errors, label=method, color=colours[method], ls=styles[method],
                            marker="o", ms=3, lw=1.2, capsize=2)  # fmt: skip
            floor = section["floor"]["sliced_w2"]["value"] / section["baseline"]["sliced_w2"]["value"]
            ax.axhline(1.0, color="black", lw=1, label="baseline (100 Heun steps)")
            ax.axhline(floor, color="grey", lw=1, ls=":", label="data floor")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks([int(k) for k in steps], steps)
            ax.set_xlabel("sampling steps")
            ax.set_title(dataset.replace("_", " "))
        axes[0, 0].set_ylabel("sliced W2 / baseline's")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
        fig.tight_layout()
        fig.savefig(path, bbox_inches="tight", metadata={"Date": None, "Description": fingerprint(result)})
        plt.close(fig)


def finish(result: dict) -> dict:
    """``result`` with its targets and precision summary (recomputed from its datasets)."""
    return {**result, "targets": check_targets(result), "precision": precision(result)}
