"""``flowlib.fit``: every method runs its own loss from flowlib.losses, checks its options, records how it
was trained, caches by what defines the run, and lowers its map error on a problem with a known answer."""

import dataclasses
import math
import re
import sys
from dataclasses import asdict, fields
from pathlib import Path

import pytest
import torch

import flowlib
from flowlib import data, fitting, losses, metrics, nets, sampling, train, viz
from flowlib.exact import GaussianMixture
from flowlib.flowmap import KINDS, FlowMap, VelocityModel
from flowlib.interpolants import get_interpolant

#: The smallest sensible run: every test that only needs fit to run uses it.
TINY = dict(width=16, depth=1, batch_size=32, pool_size=500)
EIGHT = data.mixture("eight_gaussians")
TEACHER = EIGHT.velocity


def teacher_for(method: str):
    return TEACHER if fitting.METHODS[method].teacher != "none" else None


def draw(model, noise, steps=2):
    """Samples of any fitted model (a consistency model re-noises from a seeded generator)."""
    extra = {"generator": torch.Generator().manual_seed(0)} if model.kind == "consistency" else {}
    return sampling.sample(model, noise, steps, **extra)


def tiny_fit(method, data_="eight_gaussians", train_steps=3, **overrides):
    kwargs = dict(teacher=teacher_for(method), cache=False, progress=False, device="cpu", **TINY)
    kwargs.update(overrides)
    return flowlib.fit(method, data_, train_steps, **kwargs)


@pytest.fixture(scope="module")
def profiled_fits():
    """Fit every method once (tiny), recording the code of every Python function each fit ran."""
    fits = {}
    for method in flowlib.METHODS:
        ran = set()

        def profile(frame, event, arg, ran=ran):
            if event == "call":
                ran.add(frame.f_code)

        sys.setprofile(profile)
        try:
            model = tiny_fit(method)
        finally:
            sys.setprofile(None)
        fits[method] = (model, ran)
    return fits


# ----------------------------------------------------------------------------- the table of methods
def test_the_package_exports_fit_the_table_and_its_version():
    assert set(flowlib.__all__) == {"METHODS", "build_model", "draw_batch", "fit", "__version__"}
    assert flowlib.fit is fitting.fit and flowlib.METHODS is fitting.METHODS
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert flowlib.__version__ == re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1)


def _conditional_jump(model: torch.nn.Module, b: fitting.Batch, c: fitting.Context) -> torch.Tensor:
    """A throwaway objective (not the book's): regress the jump X_{s,t}(I_s) on the interpolant's I_t."""
    target = c.path.sample_path(b.x0, b.x1, b.t).xt
    return (model(b.xs, b.s, b.t) - target).square().flatten(1).mean(1)


def test_a_new_objective_is_its_loss_and_its_row(monkeypatch):
    """CONTRIBUTING's recipe: a loss and a ``Method`` row, and fit, draw_batch, the options and the benchmark's
    lists take it from the table; nothing else names it (a colour is optional until it is benchmarked)."""
    from benchmarks import run

    row = fitting.Method(
        chapter=7, title="conditional jump regression", kind="flow_map", cost=3, loss=_conditional_jump,
        pairs=fitting._free_pairs, diagonal="inside", teacher="none", options=fitting.PAIR_OPTIONS,
        defaults={"lr": fitting.Default(1e-3, "a throwaway objective's rate")},
    )  # fmt: skip
    monkeypatch.setitem(fitting.METHODS, "conditional_jump", row)
    model = tiny_fit("conditional_jump", train_steps=4)
    assert model.record.method == "conditional_jump" and model.kind == "flow_map" and model.record.steps == 4
    assert all(math.isfinite(loss) for loss in model.record.losses)
    assert fitting.defaults("conditional_jump")["lr"] == 1e-3 and model.record.options.lr == 1e-3
    batch = flowlib.draw_batch("conditional_jump", EIGHT.sample(100, seed=0).float(), torch.Generator().manual_seed(0))
    context = fitting.Context(model.record.options, get_interpolant("linear"))
    assert _conditional_jump(model, batch, context).shape == batch.s.shape
    with pytest.raises(ValueError, match="conditional_jump"):
        flowlib.fit("conditional_jump", "eight_gaussians", 2, psd_jumps=2, cache=False, progress=False)
    assert "conditional_jump" not in run.benchmarked_methods()[0], "unbenchmarked until its row says so"
    monkeypatch.setitem(fitting.METHODS, "conditional_jump", dataclasses.replace(row, benchmarked=True))
    assert run.benchmarked_methods()[0][-1] == "conditional_jump"
    assert viz.method_colour("conditional jump") is None, "drawn in matplotlib's next colour until it has its own"


def test_every_method_is_a_consistent_record():
    known = {f.name for f in fields(fitting.FitOptions)}
    for name, method in flowlib.METHODS.items():
        assert callable(getattr(losses, name, None)), f"{name}: no function flowlib.losses.{name}"
        assert method.kind in KINDS and method.diagonal in ("split", "inside"), name
        assert method.teacher in ("none", "velocity", "velocity_or_map"), name
        assert set(method.options) <= known, name
        assert set(method.defaults) <= set(method.options) | set(fitting.COMMON_OPTIONS), name
        assert all(reason.strip() for _, reason in method.defaults.values()), f"{name}: a default without a reason"
        assert method.cost >= 3 and method.chapter in range(2, 11), name
    assert [m for m, spec in flowlib.METHODS.items() if spec.kind == "velocity"] == ["flow_matching"]
    assert {m for m, spec in flowlib.METHODS.items() if spec.kind == "consistency"} == {
        "consistency_distillation",
        "consistency_training",
    }


# ----------------------------------------------------------------------------- every method, tiny
@pytest.mark.parametrize("method", list(flowlib.METHODS))
def test_every_method_runs_its_own_loss_function(method, profiled_fits):
    """fit trains with the very function of flowlib.losses that the chapters print."""
    _, ran = profiled_fits[method]
    assert getattr(losses, method).__code__ in ran, f"fit({method!r}) never called flowlib.losses.{method}"
    if flowlib.METHODS[method].diagonal == "split":  # the tangent condition on the diagonal pairs
        assert losses.diagonal.__code__ in ran
    if method == "shortcut":
        assert losses.psd.__code__ in ran  # the shortcut loss is PSD's midpoint rule
    others = {getattr(losses, m).__code__ for m in flowlib.METHODS if m not in (method, "psd")}
    assert not others & ran, f"fit({method!r}) also ran another method's loss"


@pytest.mark.parametrize("method", list(flowlib.METHODS))
def test_fit_returns_the_model_its_method_trains_with_its_record(method, profiled_fits):
    model, _ = profiled_fits[method]
    spec = flowlib.METHODS[method]
    if method == "flow_matching":
        assert isinstance(model, VelocityModel) and model.kind == "velocity"
    else:
        assert isinstance(model, FlowMap) and model.kind == spec.kind
    assert not model.training
    record = model.record
    assert isinstance(record, fitting.FitRecord) and record.method == method
    assert record.steps == 3 and len(record.losses) == 3 and record.seconds > 0
    assert all(torch.isfinite(torch.tensor(record.losses)))
    assert record.result.from_cache is False and record.result.cache_file is None
    assert record.options == fitting.resolve_options(method, TINY)
    assert str(record).startswith(f"{method}: trained: 3 steps")
    samples = draw(model, torch.randn(16, 2))
    assert samples.shape == (16, 2) and torch.isfinite(samples).all()


@pytest.mark.parametrize("method", list(flowlib.METHODS))
def test_defaults_are_what_fit_resolves(method, profiled_fits):
    model, _ = profiled_fits[method]
    spec = flowlib.METHODS[method]
    defaults = fitting.defaults(method)
    assert set(defaults) == set(fitting.COMMON_OPTIONS) | set(spec.options)
    for name, default in spec.defaults.items():
        assert defaults[name] == default.value
    resolved = asdict(fitting.resolve_options(method, {}))
    assert {k: resolved[k] for k in defaults} == defaults
    for name, value in defaults.items():  # every option the caller left alone has its default
        if name not in TINY:
            assert getattr(model.record.options, name) == value, name
    override = {"lr": 5e-4}
    assert fitting.resolve_options(method, override).lr == 5e-4


def test_psd_defaults_apply_unless_the_caller_overrides_them():
    psd = flowlib.METHODS["psd"].defaults
    assert fitting.defaults("psd")["diagonal_fraction"] == psd["diagonal_fraction"].value
    assert fitting.resolve_options("psd", {"diagonal_fraction": 0.1}).diagonal_fraction == 0.1
    assert fitting.resolve_options("psd", {}).diagonal_target == "posterior"
    assert fitting.resolve_options("lmd", {}).diagonal_target == "teacher"
    assert fitting.resolve_options("lsd", {}).diagonal_target == "conditional"


def test_the_diagonal_warmup_trains_the_velocity_alone_first():
    ran = set()
    sys.setprofile(lambda frame, event, arg: ran.add(frame.f_code) if event == "call" else None)
    try:
        model = tiny_fit("lsd", diagonal_warmup=1.0)
    finally:
        sys.setprofile(None)
    assert model.record.options.diagonal_warmup == 1.0
    assert losses.diagonal.__code__ in ran and losses.lsd.__code__ not in ran


# ----------------------------------------------------------------------------- options are checked at call time
def test_an_unknown_option_is_a_type_error_that_lists_the_valid_ones():
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['space_features'\]; valid options are \[.*'width'"):
        flowlib.fit("psd", "moons", space_features=8)
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['steps'\]"):
        flowlib.fit("psd", "moons", steps=10)  # the training length is train_steps
    for removed in ("logit_mean", "max_gap", "weighting", "teacher_mode", "space_scale", "adaptive_p"):
        with pytest.raises(TypeError, match="unknown option"):
            flowlib.fit("lsd", "moons", **{removed: 1})


def test_an_option_the_method_does_not_read_names_the_methods_that_do():
    with pytest.raises(
        ValueError, match=r"method 'flow_matching' does not use option 'psd_jumps'; it is read by \['psd'\]"
    ):
        flowlib.fit("flow_matching", "moons", psd_jumps=4)
    with pytest.raises(ValueError, match=r"'teacher_steps'; it is read by \['progressive'\]"):
        flowlib.fit("lsd", "moons", teacher_steps=4)
    with pytest.raises(ValueError, match="does not use option 'diagonal_target'"):
        flowlib.fit("meanflow", "moons", diagonal_target="posterior")
    assert fitting.users("psd_jumps") == ["psd"]
    assert fitting.users("width") == list(flowlib.METHODS)
    assert set(fitting.users("diagonal_target")) == {"lmd", "emd", "progressive", "lsd", "esd", "psd", "shortcut"}
    assert fitting.users("target_decay") == ["consistency_distillation", "consistency_training"]


@pytest.mark.parametrize(
    ("method", "options", "error", "message"),
    [
        ("psd", {"diagonal_weight": 0.0}, ValueError, "diagonal_weight must be a finite number > 0"),
        ("psd", {"psd_jumps": 1}, ValueError, "psd_jumps must be >= 2"),
        ("psd", {"diagonal_target": "exact"}, ValueError, "unknown diagonal_target 'exact'"),
        ("psd", {"diagonal_target": "teacher"}, ValueError, "needs a method with a teacher: lmd, emd"),
        ("psd", {"diagonal_fraction": 1.5}, ValueError, r"diagonal_fraction must be in \[0, 1\]"),
        ("psd", {"pair_sampling": "sobol"}, ValueError, "unknown pair_sampling"),
        ("lsd", {"ema_decay": 1.0}, ValueError, "ema_decay must be in"),
        ("lsd", {"width": 16.0}, TypeError, "width must be an int"),
        ("lsd", {"schedule": "step"}, ValueError, "unknown schedule"),
        ("consistency_training", {"target_decay": 1.0}, ValueError, "target_decay must be in"),
        ("flow_matching", {"time_distribution": "beta"}, ValueError, "unknown time_distribution"),
    ],
)
def test_bad_option_values_are_refused_before_training(method, options, error, message):
    with pytest.raises(error, match=message):
        flowlib.fit(method, "moons", **options)


def test_bad_calls():
    with pytest.raises(ValueError, match=r"unknown method 'sd'; valid values are \['consistency_distillation'"):
        flowlib.fit("sd", "moons")
    with pytest.raises(ValueError, match="train_steps must be >= 1"):
        flowlib.fit("psd", "moons", 0)
    with pytest.raises(TypeError, match="train_steps must be an int"):
        flowlib.fit("psd", "moons", 2.5)
    with pytest.raises(ValueError, match="method 'lmd' distils a teacher"):
        flowlib.fit("lmd", "moons")
    with pytest.raises(ValueError, match=r"method 'psd' learns without a teacher; teacher is for \['lmd'"):
        flowlib.fit("psd", "moons", teacher=TEACHER)
    with pytest.raises(TypeError, match="teacher must be callable"):
        flowlib.fit("lmd", "moons", teacher="exact")
    with pytest.raises(TypeError, match="data must be a dataset name, a GaussianMixture, or a tensor"):
        tiny_fit("psd", data_=[[0.0, 1.0]])
    with pytest.raises(ValueError, match="unknown dataset name 'nine_gaussians'"):
        tiny_fit("psd", data_="nine_gaussians")
    with pytest.raises(ValueError, match="data contains NaN"):
        tiny_fit("psd", data_=torch.full((10, 2), float("nan")))


# ----------------------------------------------------------------------------- what fit trains on
@pytest.mark.parametrize("method", ["flow_matching", "psd", "meanflow", "consistency_training"])
def test_fit_on_images_returns_a_model_for_images(method):
    images = torch.randn(300, 1, 8, 8, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    model = tiny_fit(method, data_=images, pool_size=300)
    noise = torch.randn(5, 1, 8, 8)
    samples = draw(model, noise)
    assert samples.shape == (5, 1, 8, 8) and torch.isfinite(samples).all()
    assert isinstance(model.net, nets.UNet), "image-shaped data gets the U-Net"


@pytest.mark.parametrize(
    ("method", "diagonal_weight", "psd_jumps"), [("psd", 1.0, 2), ("psd", 0.3, 4), ("shortcut", 0.3, None)]
)
def test_each_step_is_the_weighted_mean_of_what_the_documented_loss_returns(
    monkeypatch, method, diagonal_weight, psd_jumps
):
    """The recipe of fit's step, observed through losses.psd itself (the shortcut model calls it too): the loss
    of every step is the mean of the per-sample losses it returned, the diagonal's weighted by diagonal_weight;
    the batch's diagonal pairs have s = t and their target is given; the psd_jumps option reaches the call."""
    calls = []
    original = losses.psd

    def spy(model, teacher, x, s, t, u=None, *, jumps=2, on_diagonal=None, velocity_target=None, reduction="mean"):
        per_sample = original(model, teacher, x, s, t, u, jumps=jumps, on_diagonal=on_diagonal,
                              velocity_target=velocity_target, reduction=reduction)  # fmt: skip
        calls.append(dict(per_sample=per_sample.detach(), on_diagonal=on_diagonal, s=s, t=t, jumps=jumps,
                          reduction=reduction, target=velocity_target))  # fmt: skip
        return per_sample

    monkeypatch.setattr(losses, "psd", spy)
    options = dict(diagonal_warmup=0.0, diagonal_weight=diagonal_weight, batch_size=64)
    if psd_jumps is not None:
        options["psd_jumps"] = psd_jumps
    model = tiny_fit(method, train_steps=3, **options)
    assert len(calls) == 3
    for call, recorded in zip(calls, model.record.losses, strict=True):
        d = call["on_diagonal"]
        assert call["reduction"] == "none" and d.dtype == torch.bool and 0 < int(d.sum()) < d.numel()
        assert torch.equal(call["s"][d], call["t"][d]) and bool((call["s"][~d] != call["t"][~d]).all())
        assert call["target"] is not None and torch.isfinite(call["target"][d]).all()
        weighted = torch.where(d, diagonal_weight * call["per_sample"], call["per_sample"]).mean()
        assert recorded == pytest.approx(float(weighted), rel=1e-6)
        assert call["jumps"] == (psd_jumps if psd_jumps is not None else 2)


def test_the_posterior_target_lowers_the_diagonals_first_loss():
    """On the same first batch, the posterior average of the pair velocities is a less noisy target than one pair's."""
    first = {}
    for target in ("posterior", "conditional"):
        model = tiny_fit("psd", train_steps=1, diagonal_target=target, diagonal_warmup=1.0, batch_size=256)
        assert model.record.options.diagonal_target == target
        first[target] = model.record.losses[0]
    assert first["posterior"] < 0.8 * first["conditional"]


def test_a_teacher_can_be_a_function_a_trained_velocity_or_a_flow_map():
    velocity = tiny_fit("flow_matching")
    for_lmd = tiny_fit("lmd", teacher=velocity)
    assert for_lmd.record.method == "lmd" and torch.isfinite(torch.tensor(for_lmd.record.losses)).all()
    flow_map = tiny_fit("psd")
    progressive = tiny_fit("progressive", teacher=flow_map)
    assert torch.isfinite(torch.tensor(progressive.record.losses)).all()
    distilled = tiny_fit("consistency_distillation", teacher=flow_map)  # a flow map teaches with its diagonal
    assert distilled.kind == "consistency"


def test_nan_guard_names_the_method_and_the_step():
    huge = torch.randn(100, 2, generator=torch.Generator().manual_seed(0)) * 1e30  # finite, but its square is not
    with pytest.raises(FloatingPointError, match=r"training flow_matching: the loss is (inf|nan) at step 0 of 5"):
        tiny_fit("flow_matching", data_=huge, train_steps=5, pool_size=100)
    with pytest.raises(FloatingPointError, match=r"training mine: .* Lower the learning rate \(now 0.002\)"):
        tiny_fit("lsd", data_=huge, train_steps=5, pool_size=100, name="mine")


# ----------------------------------------------------------------------------- the cache
def test_a_second_identical_fit_loads_from_the_cache_without_running_the_loss(monkeypatch):
    first = tiny_fit("psd", cache=True)
    assert not first.record.result.from_cache and first.record.result.cache_file.exists()
    assert first.record.result.cache_file.name.startswith("psd-")

    def must_not_run(*args, **kwargs):
        raise AssertionError("trained again")

    # the key holds the method, its options, the data, the teacher, the loop and CACHE_FORMAT, not the
    # library's source: replacing the loss function's code does not change it
    monkeypatch.setattr(losses, "psd", must_not_run)
    second = tiny_fit("psd", cache=True)
    assert second.record.result.from_cache
    assert second.record.result.cache_file == first.record.result.cache_file
    assert second.record.losses == pytest.approx(first.record.losses)
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # a change of what defines the run trains afresh (and so runs the loss)
    for changed in ({"seed": 1}, {"lr": 1e-3}, {"data_": "moons"}, {"train_steps": 4}, {"diagonal_fraction": 0.4}):
        with pytest.raises(AssertionError, match="trained again"):
            tiny_fit("psd", cache=True, **changed)
    monkeypatch.setattr(train, "CACHE_FORMAT", train.CACHE_FORMAT + 1)
    with pytest.raises(AssertionError, match="trained again"):
        tiny_fit("psd", cache=True)


def test_the_cache_key_holds_the_teacher_and_the_data_tensor():
    first = tiny_fit("lmd", cache=True, name="key")
    assert tiny_fit("lmd", cache=True, name="key").record.result.from_cache
    other_teacher = GaussianMixture(EIGHT.weights, EIGHT.means + 0.1, EIGHT.covs).velocity
    assert not tiny_fit("lmd", cache=True, name="key", teacher=other_teacher).record.result.from_cache
    pool = torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
    assert not tiny_fit("psd", data_=pool, cache=True, pool_size=200).record.result.from_cache
    assert tiny_fit("psd", data_=pool.clone(), cache=True, pool_size=200).record.result.from_cache
    assert not tiny_fit("psd", data_=pool + 1e-3, cache=True, pool_size=200).record.result.from_cache
    assert first.record.result.cache_file.name.startswith("key-")


def test_two_different_networks_wrapped_as_teachers_do_not_share_a_cache_entry():
    """nets.detached wrappers all have the same source; the key follows what they wrap."""
    velocities = [tiny_fit("flow_matching", seed=seed) for seed in (0, 1)]
    first = tiny_fit("lmd", cache=True, teacher=nets.detached(velocities[0]))
    assert tiny_fit("lmd", cache=True, teacher=nets.detached(velocities[0])).record.result.from_cache
    other = tiny_fit("lmd", cache=True, teacher=nets.detached(velocities[1]))
    assert not other.record.result.from_cache
    assert other.record.result.cache_file != first.record.result.cache_file


def test_a_function_teacher_is_keyed_by_what_it_does_not_how_it_is_written():
    """Reformatting a lambda does not retrain; a lambda over a model retrained since does."""
    velocities = [tiny_fit("flow_matching", seed=seed) for seed in (0, 1)]
    model = velocities[0]
    first = tiny_fit("lmd", cache=True, teacher=lambda x, t: model(x, t))
    assert tiny_fit("lmd", cache=True, teacher=lambda x,   t:  model(x,t)).record.result.from_cache  # fmt: skip
    model = velocities[1]  # the same source text, another network behind it
    other = tiny_fit("lmd", cache=True, teacher=lambda x, t: model(x, t))
    assert not other.record.result.from_cache and other.record.result.cache_file != first.record.result.cache_file


# ----------------------------------------------------------------------------- devices
@pytest.mark.parametrize("method", ["psd", "flow_matching"])
def test_fit_trains_on_the_requested_device_and_samples_from_cpu_noise(method, device):
    model = flowlib.fit(method, "moons", 3, cache=False, progress=False, device=device, **TINY)
    assert all(p.device.type == device.type for p in model.parameters())
    noise = torch.randn(32, 2)
    samples = sampling.sample(model, noise, 2)
    assert samples.device == noise.device and samples.dtype == noise.dtype and torch.isfinite(samples).all()


def test_a_cached_fit_loads_on_any_device(device):
    """The cache key does not hold the device: weights trained on the CPU load where the caller asks."""
    first = tiny_fit("psd", cache=True)
    again = flowlib.fit("psd", "eight_gaussians", 3, cache=True, progress=False, device=device, **TINY)
    assert again.record.result.from_cache
    assert all(p.device.type == device.type for p in again.parameters())
    for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b.cpu())


def test_max_seconds_bounds_the_training_time():
    model = tiny_fit("lsd", train_steps=1_000_000, max_seconds=0.3)
    assert 0 < model.record.steps < 1_000_000 and len(model.record.losses) == model.record.steps


def test_fit_trains_where_flowlib_device_says_by_default(monkeypatch):
    monkeypatch.setenv("FLOWLIB_DEVICE", "cpu")
    model = flowlib.fit("psd", "moons", 2, cache=False, progress=False, **TINY)
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    monkeypatch.setenv("FLOWLIB_DEVICE", "abacus")
    with pytest.raises(ValueError, match="FLOWLIB_DEVICE='abacus' is not a torch device"):
        flowlib.fit("psd", "moons", 2, cache=False, progress=False, **TINY)


# ----------------------------------------------------------------------------- training sanity
SINGLE = GaussianMixture([1.0], [[2.0, 1.0]], (0.09 * torch.eye(2))[None])


@pytest.mark.parametrize("method", list(flowlib.METHODS))
def test_every_method_lowers_its_map_error_against_the_oracle(method):
    """A tiny problem whose flow map is affine (one Gaussian); 100 steps, each fit capped at 20 s."""
    spec = flowlib.METHODS[method]
    teacher = SINGLE.velocity if spec.teacher != "none" else None
    kwargs = dict(teacher=teacher, progress=False, cache=False, device="cpu", width=32, depth=2, batch_size=128,
                  pool_size=5000, ema_decay=None)  # fmt: skip
    model = flowlib.fit(method, SINGLE, 100, seed=1, max_seconds=20.0, **kwargs)
    untrained = flowlib.fit(method, SINGLE, 1, seed=1, **kwargs)
    result = model.record
    assert all(torch.isfinite(torch.tensor(result.losses)))
    # Objectives whose target does not depend on the model (a fixed teacher, or flow matching) must lower
    # their loss. Self-distillation, MeanFlow and consistency targets move with the model, so their loss need
    # not fall; for every method the one-step jump to the data must move towards the exact one.
    if spec.teacher != "none" or method == "flow_matching":
        first, last = torch.tensor(result.losses[:20]).mean(), torch.tensor(result.losses[-20:]).mean()
        assert last < first, f"{method}: the loss did not decrease ({first:.4g} -> {last:.4g})"
    # consistency models learn X_{s,1} backwards from the boundary X_{1,1} = id: score them from s = 0.75
    start = 0.75 if spec.kind == "consistency" else 0.0
    x = SINGLE.sample_marginal(2000, start, seed=5)
    exact_end = SINGLE.flow_map(x, start, 1.0)
    one_step = torch.tensor([start, 1.0])  # one jump, or one Heun step of a velocity

    def error(m):
        return metrics.map_error(sampling.sample(m, x, one_step), exact_end)

    before, after = error(untrained), error(model)
    assert after < 0.9 * before, f"{method}: map error of one step from {start} to 1: {before:.3f} -> {after:.3f}"


def test_training_pairs_are_what_each_method_draws():
    """flow matching: the diagonal only; consistency models: jumps to t = 1; free pairs: t >= s with the default
    share on the diagonal."""
    s, t, on_diagonal = fitting.training_pairs("flow_matching", n=300)
    assert bool(on_diagonal.all()) and torch.equal(s, t)
    s, t, on_diagonal = fitting.training_pairs("consistency_training", n=300)
    assert bool((t == 1).all()) and not bool(on_diagonal.any())
    s, t, on_diagonal = fitting.training_pairs("lsd", n=4000)
    assert bool((t >= s).all())
    assert abs(float(on_diagonal.double().mean()) - fitting.defaults("lsd")["diagonal_fraction"]) < 0.03
    with pytest.raises(ValueError, match="seed"):
        fitting.training_pairs("lsd", seed=-1)
    with pytest.raises(TypeError, match="unknown option"):
        fitting.training_pairs("lsd", nonsense=1)


def test_psd_with_a_uniform_intermediate_time(monkeypatch):
    """Boffi et al.'s variant: each pair's target composes two jumps through u drawn uniformly between s and t."""
    calls = []
    original = losses.psd

    def spy(model, teacher, x, s, t, u=None, **options):
        calls.append((s, t, u, options["jumps"]))
        return original(model, teacher, x, s, t, u, **options)

    monkeypatch.setattr(losses, "psd", spy)
    small = dict(train_steps=3, progress=False, cache=False, width=16, depth=1, batch_size=64, diagonal_warmup=0.0)
    flowlib.fit("psd", "checkerboard", psd_intermediate="uniform", psd_jumps=2, **small)
    s, t, u, jumps = calls[-1]
    assert jumps == 2 and u is not None
    assert bool(((u >= torch.minimum(s, t)) & (u <= torch.maximum(s, t))).all())
    assert not torch.allclose(u, (s + t) / 2), "not the midpoint"
    flowlib.fit("psd", "checkerboard", **small)
    assert calls[-1][2] is None, "the default composes equal jumps"
    with pytest.raises(ValueError, match="pass psd_jumps=2"):
        flowlib.fit("psd", "checkerboard", psd_intermediate="uniform", **small)
    with pytest.raises(ValueError, match="psd_intermediate"):
        flowlib.fit("psd", "checkerboard", psd_intermediate="midpoint", psd_jumps=2, **small)


def test_fit_explains_the_mistakes_a_new_user_makes():
    small = dict(width=16, depth=2, progress=False, cache=False)
    with pytest.raises(ValueError, match="at least 2 points"):
        flowlib.fit("psd", torch.zeros(0, 2), 2, **small)
    with pytest.raises(ValueError, match="max_seconds must be a finite number > 0"):
        flowlib.fit("psd", "eight_gaussians", 2, max_seconds=-1, **small)
    with pytest.raises(ValueError, match=r"unknown dataset name 'checkerbord'.*'checkerboard'.*'eight_gaussians'"):
        flowlib.fit("psd", "checkerbord", 2, **small)
    with pytest.raises(ValueError, match="device must be a torch device such as 'cpu' or 'cuda', got 'tpu'"):
        flowlib.fit("psd", "eight_gaussians", 2, device="tpu", **small)
    with pytest.raises(ValueError, match=r"ema_decay must be in \(0, 1\)"):
        flowlib.fit("psd", "eight_gaussians", 2, ema_decay=0.0, **small)
    images = dict(unet_width=8, unet_levels=1, progress=False, cache=False)
    with pytest.raises(ValueError, match=r"scaled to \[-1, 1\].*images / 127.5 - 1"):
        flowlib.fit("psd", torch.rand(16, 1, 8, 8) * 255, 1, **images)
    with pytest.warns(UserWarning, match=r"all >= 0.*2 \* images - 1"):
        flowlib.fit("psd", torch.rand(16, 1, 8, 8), 1, **images)


# ----------------------------------------------------------------------------- the training step in view (chapter 7)
LOOP_OPTIONS = dict(width=32, depth=2, batch_size=64, lr=3e-3, warmup=0, schedule="constant", grad_clip=None,
                    ema_decay=None)  # fmt: skip


def _hand_loop(method: str, pool: torch.Tensor, steps: int, seed: int) -> torch.nn.Module:
    """Chapter 7's printed loop: build, draw a batch, take the loss, step Adam."""
    model = flowlib.build_model(method, pool, seed=seed, device="cpu", **LOOP_OPTIONS)
    optimiser = torch.optim.Adam(model.parameters(), lr=LOOP_OPTIONS["lr"])
    generator = torch.Generator().manual_seed(seed)
    for step in range(steps):
        batch = flowlib.draw_batch(method, pool, generator, progress=step / steps, **LOOP_OPTIONS)
        loss = losses.psd(model, model, batch.xs, batch.s, batch.t, jumps=4, on_diagonal=batch.on_diagonal,
                          velocity_target=batch.velocity_target)  # fmt: skip
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model


def test_the_printed_training_loop_gives_fits_model_with_the_same_seed():
    pool = data.sample("checkerboard", 5000, seed=0)
    by_hand = _hand_loop("psd", pool, steps=15, seed=3)
    by_fit = flowlib.fit("psd", pool, train_steps=15, seed=3, cache=False, progress=False, device="cpu", **LOOP_OPTIONS)
    for (name, a), b in zip(by_hand.state_dict().items(), by_fit.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    # and the loop is not trivially equal: another seed gives other weights
    other = _hand_loop("psd", pool, steps=15, seed=4)
    assert not all(torch.equal(a, b) for a, b in zip(other.parameters(), by_fit.parameters(), strict=True))


def test_fit_and_build_model_leave_the_global_random_stream_alone():
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    flowlib.build_model("psd", "checkerboard", seed=5, device="cpu", width=16, depth=1)
    flowlib.fit("psd", "checkerboard", train_steps=2, seed=5, cache=False, progress=False, device="cpu", width=16,
                depth=1, pool_size=256)  # fmt: skip
    assert torch.equal(torch.rand(4), expected)  # before this round, fit reseeded the global generator with its seed


def test_build_model_starts_where_fit_starts_and_draw_batch_says_what_it_needs():
    pool = data.sample("checkerboard", 500, seed=0)
    velocity = flowlib.build_model("flow_matching", "checkerboard", seed=1, device="cpu", width=16, depth=1)
    assert type(velocity).__name__ == "VelocityModel"
    same = flowlib.build_model("flow_matching", pool, seed=1, device="cpu", width=16, depth=1)
    for a, b in zip(velocity.state_dict().values(), same.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    batch = flowlib.draw_batch("psd", pool, torch.Generator().manual_seed(0), batch_size=40)
    assert batch.xs.shape == (40, 2) and batch.on_diagonal.dtype == torch.bool
    assert 0 < int(batch.on_diagonal.sum()) < 40 and batch.velocity_target is not None
    with pytest.raises(ValueError, match="without a teacher"):
        flowlib.draw_batch("lmd", pool, torch.Generator())
    with pytest.raises(TypeError, match="generator"):
        flowlib.draw_batch("psd", pool, 0)
    with pytest.raises(TypeError, match="pool"):
        flowlib.draw_batch("psd", "checkerboard", torch.Generator())
    with pytest.raises(ValueError, match="progress"):
        flowlib.draw_batch("psd", pool, torch.Generator(), progress=2.0)
