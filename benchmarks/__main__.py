r"""The benchmark: every method of the book, the same CPU-time budget, scored against a baseline and the floor.

Run it from the repository root::

    python -m benchmarks --threads 2  # the full benchmark (about 90 minutes on an idle 2-core CPU)
    python -m benchmarks --quick      # a seconds-long smoke run (the tests use it)
    python -m benchmarks --threads 2 --datasets eight_gaussians --merge  # rerun one dataset only
    python -m benchmarks --render     # redraw the table and chart from the existing benchmark.json
    python -m benchmarks --digits --threads 2  # the digits rows (about 10 minutes; chapter 11's models)
    python -m benchmarks --steering --threads 2  # steering and fine-tuning against the exact tilt (minutes)
    python -m benchmarks --steering-screens --threads 2  # the screens behind two steering defaults (minutes)
    python -m benchmarks --digits-networks --threads 2  # U-Net against a flattened MLP on the digits (minutes)
    python -m benchmarks --redraw  # ms per slider move of each explorer, and the live one's kernel round trip

It writes ``book/generated/benchmark.json`` (every number, with the configuration and the machine),
``book/generated/benchmark.md`` (the tables the book's appendix includes) and
``book/generated/benchmark.svg`` (the ratio-against-steps chart beside them); with ``--digits``,
``book/generated/benchmark_digits.json`` and ``.md`` (:mod:`benchmarks.digits`); with ``--steering``,
``book/generated/benchmark_steering.json`` and ``.md`` (:mod:`benchmarks.steering`); with ``--steering-screens``,
``book/generated/benchmark_steering_screens.json`` and ``.md``; with ``--digits-networks``,
``book/generated/benchmark_digits_networks.json`` and ``.md``; with ``--redraw``, ``explorer_redraw.json`` and
``.md`` (:mod:`benchmarks.redraw`). Training and scoring live in
:mod:`benchmarks.run`, the table and the targets in :mod:`benchmarks.report`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from benchmarks import digits, redraw
from benchmarks.digits import DigitsConfig, run_digits
from benchmarks.digits import to_markdown as digits_markdown
from benchmarks.report import chart, finish, merge, to_markdown
from benchmarks.run import DATASETS, DISTILLED, FROM_SCRATCH, VARIANTS, BenchConfig, run
from benchmarks.steering import SteeringConfig, run_steering
from benchmarks.steering import to_markdown as steering_markdown


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    parser.add_argument("--budget", type=float, help="training seconds per model (default 90)")
    parser.add_argument("--methods", nargs="+", choices=sorted(FROM_SCRATCH + tuple(VARIANTS) + DISTILLED))
    parser.add_argument("--datasets", nargs="+", choices=DATASETS)
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=Path("book") / "generated", help="where to write the results")
    parser.add_argument(
        "--merge", action="store_true", help="keep the datasets of the existing benchmark.json that this run skips"
    )
    parser.add_argument("--render", action="store_true", help="only redraw the table and chart from benchmark.json")
    parser.add_argument("--digits", action="store_true", help="run the digits rows (benchmarks.digits) instead")
    parser.add_argument(
        "--digits-networks", action="store_true", help="compare chapter 11's U-Net with a flattened MLP instead"
    )
    parser.add_argument(
        "--steering-screens", action="store_true", help="run the screens behind the steering defaults instead"
    )
    parser.add_argument(
        "--steering", action="store_true", help="run the steering and fine-tuning rows (benchmarks.steering) instead"
    )
    parser.add_argument("--redraw", action="store_true", help="time the explorers' redraws in Chromium instead")
    args = parser.parse_args(argv)
    if args.redraw:
        return run_redraw_rows(args)
    if args.digits:
        return run_digits_rows(args)
    if args.digits_networks:
        return run_digits_networks(args)
    if args.steering_screens:
        return run_steering_screens(args)
    if args.steering:
        return run_steering_rows(args)
    if args.render:
        result = finish(json.loads((args.out / "benchmark.json").read_text()))
        write(result, args.out)
        return result
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    config = BenchConfig.quick() if args.quick else BenchConfig()
    if args.budget is not None:
        config.budget = args.budget
    if args.methods:
        config.methods = tuple(args.methods)
    if args.datasets:
        config.datasets = tuple(args.datasets)
    previous_file = args.out / "benchmark.json"
    if args.merge and not previous_file.exists():
        raise ValueError(f"--merge needs an earlier run in {previous_file}; there is none")
    partial_file = args.out / "benchmark.partial.json"

    def keep_finished(partial: dict) -> None:
        args.out.mkdir(parents=True, exist_ok=True)
        partial_file.write_text(json.dumps(finish(partial), indent=2, default=str))

    # An interrupted run leaves its finished datasets in benchmark.partial.json: copy it over
    # benchmark.json and run the missing datasets with --merge.
    result = finish(run(config, on_dataset=keep_finished))
    partial_file.unlink(missing_ok=True)
    if args.merge:
        result = merge(json.loads(previous_file.read_text()), json.loads(json.dumps(result, default=str)))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmark.json").write_text(json.dumps(result, indent=2, default=str))
    write(result, args.out)
    print(to_markdown(result))
    return result


def run_redraw_rows(args: argparse.Namespace) -> dict:
    """``--redraw``: each explorer's milliseconds per slider move in Chromium, ``explorer_redraw.json`` and ``.md``."""
    result = redraw.run_redraw(moves=10 if args.quick else 100, clicks=5 if args.quick else 30)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "explorer_redraw.json").write_text(json.dumps(result, indent=2))
    (args.out / "explorer_redraw.md").write_text(redraw.to_markdown(result))
    print(redraw.to_markdown(result))
    return result


def run_steering_rows(args: argparse.Namespace) -> dict:
    """``--steering``: steer and fine-tune against the exact tilt, write ``benchmark_steering.json`` and ``.md``."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    result = run_steering(SteeringConfig.quick() if args.quick else SteeringConfig())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmark_steering.json").write_text(json.dumps(result, indent=2, default=str))
    (args.out / "benchmark_steering.md").write_text(steering_markdown(result))
    print(steering_markdown(result))
    return result


def run_steering_screens(args: argparse.Namespace) -> dict:
    """``--steering-screens``: FMTT's noise level and the KL fine-tuning's rate, ``benchmark_steering_screens``."""
    from benchmarks.steering import run_screens, screens_markdown

    if args.threads:
        torch.set_num_threads(args.threads)
    quick = SteeringConfig.quick()
    result = (
        run_screens(seeds=(0,), noise_scales=(0.5,), kl_rates=(1e-3,), config=quick) if args.quick else run_screens()
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmark_steering_screens.json").write_text(json.dumps(result, indent=2, default=str))
    (args.out / "benchmark_steering_screens.md").write_text(screens_markdown(result))
    print(screens_markdown(result))
    return result


def run_digits_networks(args: argparse.Namespace) -> dict:
    """``--digits-networks``: the U-Net against a flattened MLP, ``benchmark_digits_networks.json`` and ``.md``."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    config = DigitsConfig.quick() if args.quick else DigitsConfig(steps=(1, 2, 4))
    if args.budget is not None:
        config.budget = args.budget
    result = digits.run_networks(config)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmark_digits_networks.json").write_text(json.dumps(result, indent=2, default=str))
    (args.out / "benchmark_digits_networks.md").write_text(digits.networks_markdown(result))
    print(digits.networks_markdown(result))
    return result


def run_digits_rows(args: argparse.Namespace) -> dict:
    """``--digits``: train and score the digits models, write ``benchmark_digits.json`` and ``.md``."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    config = DigitsConfig.quick() if args.quick else DigitsConfig()
    if args.budget is not None:
        config.budget = args.budget
    if args.methods:
        config.methods = tuple(args.methods)
    result = run_digits(config)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmark_digits.json").write_text(json.dumps(result, indent=2, default=str))
    (args.out / "benchmark_digits.md").write_text(digits_markdown(result))
    print(digits_markdown(result))
    return result


def write(result: dict, out: Path) -> None:
    """The appendix's tables and chart, drawn from ``result``."""
    (out / "benchmark.md").write_text(to_markdown(result))
    chart(result, out / "benchmark.svg")


if __name__ == "__main__":
    main()
