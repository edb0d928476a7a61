r"""The book's trained models, shipped with the package: trained far beyond a chapter's budget, loaded in seconds.

A chapter trains its models in a few minutes; published image flow maps train for hundreds of thousands of
steps. So that a reader (and every Colab session, which starts cold) sees what a longer run gives, the book
ships the models of chapter 11 (and of chapter 12's digits), trained by ``python -m flowlib.pretrained`` for
twenty minutes or more each on a two-core CPU, with a record of how: the method, every option, the seed, the steps, the
seconds, the format and code they were made with, and the FD they measured. Chapters load them by default
(:func:`load`) and keep one switch that retrains from scratch within their budget.

Regenerate every shipped model and its record (an hour or more on two CPU cores)::

    python -m flowlib.pretrained            # or: python -m flowlib.pretrained digits-psd

A model whose format or network code has changed since it was made is refused, with a message that names
that command: its weights would no longer mean what its record says.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import hashlib
import inspect
import json
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

import flowlib
from flowlib import data, flowmap, metrics, nets, sampling
from flowlib._validate import check_choice
from flowlib.chapter import cache_dir
from flowlib.fitting import build_model, defaults, fit
from flowlib.flowmap import FlowMap, VelocityModel

#: Version of the files' layout (weights + JSON record); a change refuses every older file.
FORMAT = 1
#: Where the shipped files live (inside the installed package, so that ``pip install`` brings them).
FOLDER = Path(__file__).parent / "assets" / "pretrained"
#: The command that regenerates every shipped model and its record.
COMMAND = "python -m flowlib.pretrained"

_DIGITS_NETWORK = dict(batch_size=128, unet_width=32, unet_levels=2)  # chapter 11's network and batch


@dataclass(frozen=True)
class Recipe:
    """How one shipped model is trained and scored.

    Attributes:
        method: a name in :data:`flowlib.METHODS`.
        dataset: a name in :data:`flowlib.data.IMAGE_DATASETS` (its ``"train"`` split is the training data).
        train_steps: optimisation steps.
        options: the :class:`~flowlib.fitting.FitOptions` fields given to :func:`~flowlib.fitting.fit`.
        sample_steps: the steps its FD is measured at (100 Heun steps for a velocity, one jump for a map).
        seed: the training seed.
    """

    method: str
    dataset: str
    train_steps: int
    options: dict
    sample_steps: int
    seed: int = 0


#: Every shipped model: chapter 11's networks and batch, trained twenty minutes or more each on a two-core CPU
#: (chapter 11 gives them 380-560 steps; the step counts below were set from each method's cost per step).
RECIPES: dict[str, Recipe] = {
    "digits-teacher": Recipe("flow_matching", "digits", 12_000, dict(ema_decay=0.999, **_DIGITS_NETWORK), 100),
    "digits-psd": Recipe("psd", "digits", 7_000, dict(ema_decay=0.999, **_DIGITS_NETWORK), 1),
    "digits-shortcut": Recipe("shortcut", "digits", 12_000, dict(ema_decay=0.999, **_DIGITS_NETWORK), 1),
}

#: Scoring: ``FD_REPEATS`` independent draws of ``FD_SAMPLES`` images (the digits' held-out set's size).
FD_SAMPLES, FD_REPEATS = 360, 4


@dataclass(frozen=True)
class ShippedRecord:
    """How a shipped model was made (``model.record`` of a loaded model).

    Attributes:
        name: its key in :data:`RECIPES`.
        method, dataset, seed: what :func:`~flowlib.fitting.fit` was given.
        options: every option the method reads, resolved (today's defaults may differ; these rebuild it).
        steps: optimisation steps taken.
        seconds: training time.
        threads: torch's CPU threads during training; device: where it trained.
        fd_steps: sampling steps of the FD (NFE = 2 x steps for a velocity's Heun steps).
        fd_values: the FD of each of the ``FD_REPEATS`` draws (noise seeds 0, 1, ...).
        fd, fd_se: their mean and standard error.
        format, code: :data:`FORMAT` and :func:`code_fingerprint` when it was made.
        flowlib_version, torch_version, machine, made: where and when.
    """

    name: str
    method: str
    dataset: str
    seed: int
    options: dict
    steps: int
    seconds: float
    threads: int
    device: str
    fd_steps: int
    fd_values: list[float]
    fd: float
    fd_se: float
    format: int
    code: str
    flowlib_version: str
    torch_version: str
    machine: str
    made: str

    def __str__(self) -> str:
        return (
            f"the book's {self.name} ({self.method}): {self.steps:,} steps in {self.seconds / 60:.0f} min on "
            f"{self.device} ({self.threads} threads); FD {self.fd:.2f} ± {self.fd_se:.2f} at {self.fd_steps} "
            f"step{'s' * (self.fd_steps > 1)} (made by `{COMMAND}`, flowlib {self.flowlib_version})"
        )


def _without_docstrings(source: str) -> str:
    """``ast.dump`` of a module's source with every docstring removed: comments and wording do not count."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def code_fingerprint() -> str:
    """A hash of the code that gives shipped weights their meaning: the networks and the model wrappers.

    Docstrings and comments do not enter it, so rewording leaves the models valid; a change to a layer,
    a time embedding or the map's parametrisation makes them stale.
    """
    digest = hashlib.sha256(str(FORMAT).encode())
    for module in (nets, flowmap):
        digest.update(_without_docstrings(inspect.getsource(module)).encode())
    return digest.hexdigest()[:16]


def _paths(name: str) -> tuple[Path, Path]:
    return FOLDER / f"{name}.pt", FOLDER / f"{name}.json"


def available() -> list[str]:
    """The shipped models present in this installation."""
    return [name for name in RECIPES if all(path.exists() for path in _paths(name))]


def read_record(name: str) -> ShippedRecord:
    """The record of shipped model ``name`` (no weights loaded)."""
    check_choice(name, "name", RECIPES)
    weights, record_file = _paths(name)
    if not record_file.exists() or not weights.exists():
        raise FileNotFoundError(f"the shipped model {name!r} is not in {FOLDER}; make it with `{COMMAND} {name}`")
    return ShippedRecord(**json.loads(record_file.read_text()))


def stale_reason(record: ShippedRecord) -> str | None:
    """Why a shipped model may no longer be used with this code, or ``None`` when it may."""
    if record.format != FORMAT:
        return f"it was saved in format {record.format}, this flowlib reads format {FORMAT}"
    if record.code != code_fingerprint():
        return "the network code (flowlib.nets, flowlib.flowmap) has changed since it was trained"
    return None


def load(name: str, device: str | torch.device | None = None) -> VelocityModel | FlowMap:
    """Load a shipped model, in eval mode, with its :class:`ShippedRecord` as ``model.record``.

    Args:
        name: a key of :data:`RECIPES` (``"digits-teacher"``, ``"digits-psd"``, ``"digits-shortcut"``).
        device: where the model lives (default: :func:`flowlib.chapter.default_device`).

    Raises:
        ValueError: an unknown name (the message lists them), or a stale model (the message names the command
            that regenerates it).
        FileNotFoundError: the model is not shipped in this installation.
    """
    record = read_record(name)
    reason = stale_reason(record)
    if reason is not None:
        raise ValueError(f"the shipped model {name!r} is stale: {reason}. Regenerate it with `{COMMAND} {name}`")
    shape_of = data.images(record.dataset, "train").images[:2]
    model = build_model(record.method, shape_of, record.seed, device=device, **record.options)
    state = torch.load(_paths(name)[0], map_location="cpu", weights_only=True)
    model.load_state_dict({key: value.to(model.state_dict()[key].device) for key, value in state.items()})
    model.eval()
    model.record = record
    return model


def fd_of(model: object, dataset: str, steps: int, seed: int, n: int = FD_SAMPLES) -> float:
    """The FD of ``n`` samples of ``model`` (``steps`` sampler steps, noise seeded by ``seed``) on ``dataset``."""
    shape = data.images(dataset, "train").images.shape[1:]
    noise = torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        samples = sampling.sample(model, noise, steps)
    return metrics.image_report(samples, dataset, n=n, seed=seed).fd


def make(name: str, progress: bool = True) -> ShippedRecord:
    """Train shipped model ``name`` by its recipe, score it, and write its weights and record to :data:`FOLDER`.

    The run checkpoints to the model cache, so an interrupted regeneration continues where it stopped.
    """
    check_choice(name, "name", RECIPES)
    recipe = RECIPES[name]
    training = data.images(recipe.dataset, "train").images
    checkpoint = cache_dir() / f"shipped-{name}.ckpt"
    model = fit(recipe.method, training, recipe.train_steps, recipe.seed, progress=progress, name=f"shipped-{name}",
                checkpoint=checkpoint, resume=True, device="cpu", **recipe.options)  # fmt: skip
    values = [fd_of(model, recipe.dataset, recipe.sample_steps, seed) for seed in range(FD_REPEATS)]
    fd, fd_se = metrics.mean_se(values)
    record = ShippedRecord(
        name=name, method=recipe.method, dataset=recipe.dataset, seed=recipe.seed,
        options={k: v for k, v in dataclasses.asdict(model.record.options).items() if k in defaults(recipe.method)},
        steps=model.record.steps,
        seconds=round(model.record.seconds, 1), threads=torch.get_num_threads(), device="cpu",
        fd_steps=recipe.sample_steps, fd_values=[round(v, 5) for v in values], fd=round(fd, 5),
        fd_se=round(fd_se, 5), format=FORMAT, code=code_fingerprint(), flowlib_version=flowlib.__version__,
        torch_version=torch.__version__, machine=f"{platform.machine()} {platform.system()}",
        made=time.strftime("%Y-%m-%d"),
    )  # fmt: skip
    FOLDER.mkdir(parents=True, exist_ok=True)
    weights, record_file = _paths(name)
    torch.save({key: value.detach().cpu().float() for key, value in model.state_dict().items()}, weights)
    record_file.write_text(json.dumps(dataclasses.asdict(record), indent=1) + "\n")
    return record


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=COMMAND, description="Regenerate the book's shipped models and records.")
    parser.add_argument("names", nargs="*", help=f"models to make (default: all of {', '.join(RECIPES)})")
    parser.add_argument("--check", action="store_true", help="only say which shipped models are missing or stale")
    arguments = parser.parse_args(argv)
    names = arguments.names or list(RECIPES)
    for name in names:
        check_choice(name, "name", RECIPES)
    for name in names:
        if arguments.check:
            try:
                print(f"{name}: {stale_reason(read_record(name)) or 'up to date'}")
            except FileNotFoundError as missing:
                print(f"{name}: {missing}")
            continue
        print(f"{name}: training {RECIPES[name].train_steps:,} steps on CPU ({torch.get_num_threads()} threads)")
        record = make(name)
        size = _paths(name)[0].stat().st_size / 2**20
        print(f"{name}: {record} ({size:.1f} MB)")
        if not math.isfinite(record.fd):
            raise SystemExit(f"{name}: the FD is not finite; the model did not train")


if __name__ == "__main__":
    _main()
