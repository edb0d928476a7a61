"""Every flow-map objective vanishes at the exact flow map, and each one trains on a tiny problem.

The exact map used here is the closed-form map of a single Gaussian, wrapped as a FlowMap in float64,
so JVPs and gradients run through it exactly."""

import pytest
import torch
from torch import nn

import flowlib
from flowlib import losses, metrics
from flowlib.exact import GaussianMixture, gaussian_flow_map
from flowlib.flowmap import FlowMap, as_flow_map_fn

MEAN = torch.tensor([1.0, -0.5], dtype=torch.float64)


class ExactAverageVelocity(nn.Module):
    """v_{s,t}(x) = (X_{s,t}(x) - x) / (t - s) for N(MEAN, variance I) data, with the limit b_s at t = s."""

    def __init__(self, variance: float):
        super().__init__()
        self.variance = variance
        self.mixture = GaussianMixture([1.0], MEAN[None], variance)
        self.dummy = nn.Parameter(torch.zeros(1, dtype=torch.float64))  # gives the module a dtype

    def forward(self, x, s, t):
        gap = (t - s)[:, None]
        safe = torch.where(gap.abs() < 1e-12, torch.ones_like(gap), gap)
        jump = (gaussian_flow_map(x, s, t, MEAN, self.variance) - x) / safe
        return torch.where(gap.abs() < 1e-12, self.mixture.velocity(x, s), jump)


def exact_map(variance=0.3):
    return FlowMap(ExactAverageVelocity(variance))


def batch(variance=0.3, n=64, seed=0, gap=True):
    gen = torch.Generator().manual_seed(seed)
    x1 = MEAN + variance**0.5 * torch.randn(n, 2, dtype=torch.float64, generator=gen)
    x0 = torch.randn(n, 2, dtype=torch.float64, generator=gen)
    s = 0.1 + 0.5 * torch.rand(n, dtype=torch.float64, generator=gen)
    t = s + (0.05 + 0.3 * torch.rand(n, dtype=torch.float64, generator=gen)) if gap else s.clone()
    return x0, x1, s, t, (1 - s)[:, None] * x0 + s[:, None] * x1


@pytest.mark.parametrize("name", ["lmd", "emd", "lsd", "esd", "psd", "progressive"])
def test_map_objectives_vanish_at_the_exact_map(name):
    model = exact_map()
    x0, x1, s, t, xs = batch()
    velocity = model.net.mixture.velocity
    residual = {
        "lmd": lambda: losses.lmd(model, velocity, xs, s, t),
        "emd": lambda: losses.emd(model, velocity, xs, s, t),
        "lsd": lambda: losses.lsd(model, model, xs, s, t),
        "esd": lambda: losses.esd(model, model, xs, s, t),
        "psd": lambda: losses.psd(model, model, xs, s, t),
        "progressive": lambda: losses.progressive(model, model, xs, s, t),
    }[name]()
    assert residual.shape == (64,)
    assert residual.max() < 1e-12


@pytest.mark.parametrize("name", ["meanflow", "improved_meanflow", "consistency_training"])
def test_conditional_objectives_vanish_when_the_conditional_velocity_is_the_velocity(name):
    """With data at one point, dI/dt given I_s is deterministic and equals b_s: the residual is zero."""
    variance = 1e-12
    model = exact_map(variance)
    x0, x1, s, t, _ = batch(variance)
    if name == "consistency_training":
        residual = losses.consistency_training(model, model, x0, x1, s, 0.05)
    else:
        residual = getattr(losses, name)(model, x0, x1, s, t)
    assert residual.max() < 1e-10


def test_meanflow_target_is_the_eulerian_identity_in_conditional_expectation():
    """For Gaussian data the MeanFlow target is linear in dI/dt, so its average over the pairs that
    share one x_s is the identity's right-hand side with b_s: v_{s,t} = b_s + (t - s)(d_s v + grad v b_s)."""
    model = exact_map(0.3)
    x = torch.tensor([[0.4, 0.2]], dtype=torch.float64).repeat(4, 1)
    s = torch.full((4,), 0.3, dtype=torch.float64)
    t = torch.full((4,), 0.8, dtype=torch.float64)
    b = model.net.mixture.velocity(x, s)
    v, dv = model.jvp(x, s, t, dx=b, ds=1.0, output="velocity")
    assert torch.allclose(v, b + (t - s)[:, None] * dv, atol=1e-10)


def test_shortcut_and_consistency_distillation_are_small_at_the_exact_map():
    model = exact_map()
    x0, x1, s, t, xs = batch()
    h = torch.full_like(s, 0.125)
    assert losses.shortcut(model, xs, s * 0.5, h).max() < 1e-12  # two exact half-jumps are one exact jump
    # one Euler step of the exact velocity: an O(delta^2) error per step
    delta = 1e-3
    residual = losses.consistency_distillation(model, model, model.net.mixture.velocity, xs, s, delta)
    assert residual.max() < 1e-10


def test_diagonal_objective_is_flow_matching_on_v_ss():
    model = exact_map()
    x0, x1, s, _, _ = batch(gap=False)
    per = losses.diagonal(model, x0, x1, s)
    path_velocity = x1 - x0
    xs = (1 - s)[:, None] * x0 + s[:, None] * x1
    assert torch.allclose(per, (model.velocity(xs, s) - path_velocity).pow(2).mean(1))


def test_wrong_model_type_is_refused():
    with pytest.raises(TypeError, match="FlowMap"):
        losses.lsd(lambda x, s, t: x, exact_map(), torch.zeros(2, 2), torch.zeros(2), torch.ones(2))


@pytest.mark.parametrize("method", sorted(flowlib.METHODS))
def test_every_method_trains_through_fit(method):
    # a tiny problem: one Gaussian, whose flow map is affine
    mix = GaussianMixture([1.0], [[2.0, 1.0]], (0.09 * torch.eye(2))[None])
    teacher = mix.velocity if method in flowlib.fitting.TEACHER_METHODS else None
    kwargs = dict(teacher=teacher, progress=False, width=32, depth=2, batch_size=128, pool_size=5000, ema_decay=None)
    model = flowlib.fit(method, mix, steps=200, seed=1, **kwargs)
    result = model.fit_result
    assert result.steps == 200 and all(torch.isfinite(torch.tensor(result.losses)))
    # Objectives whose target does not depend on the model (a fixed teacher, or flow matching) must
    # lower their loss. Self-distillation, MeanFlow and consistency targets move with the model (MeanFlow's
    # JVP term grows as the map develops structure), so their loss need not fall; for every method the
    # one-step jump X_{0,1} must move towards the exact one.
    if method in flowlib.fitting.TEACHER_METHODS or method == "flow_matching":
        first, last = torch.tensor(result.losses[:20]).mean(), torch.tensor(result.losses[-20:]).mean()
        assert last < first, f"{method}: the loss did not decrease ({first:.4g} -> {last:.4g})"
    # consistency models learn X_{s,1} backwards from the boundary X_{1,1} = id: score them from s = 0.75
    start = 0.75 if method.startswith("consistency") else 0.0
    x = mix.sample_marginal(2000, start, seed=5)
    exact_end = mix.flow_map(x, start, 1.0)
    untrained = flowlib.fit(method, mix, steps=1, seed=1, cache=False, **kwargs)
    before = metrics.map_error(as_flow_map_fn(untrained)(x, start, 1.0), exact_end)
    after = metrics.map_error(as_flow_map_fn(model)(x, start, 1.0), exact_end)
    assert after < 0.9 * before, f"{method}: map error of X_({start},1) {before:.3f} -> {after:.3f}"
    x = torch.randn(16, 2)
    assert torch.equal(model(x, 0.3, 0.3), x)  # identity by construction
    samples = model.sample(torch.randn(64, 2), steps=2)
    assert samples.shape == (64, 2) and torch.isfinite(samples).all()
    again = flowlib.fit(method, mix, steps=200, seed=1, **kwargs)
    assert again.fit_result.from_cache


@pytest.mark.parametrize("diagonal_weight", [1.0, 0.3])
@pytest.mark.parametrize("method", ["psd", "shortcut"])
def test_fit_batch_loss_is_the_diagonal_plus_the_jumps(method, diagonal_weight):
    """fit regresses the diagonal and the jumps in one forward pass; it must equal the two losses apart,
    with the diagonal's samples weighted by ``diagonal_weight``."""
    from flowlib import fitting, times, train
    from flowlib.interpolants import get_interpolant

    pool, batch = torch.randn(500, 2), 64
    options = fitting.FitOptions(
        **fitting.resolve_options(
            method,
            {
                "batch_size": batch,
                "diagonal_warmup": 0.0,
                "diagonal_weight": diagonal_weight,
                "diagonal_target": "conditional",  # one pair's velocity: no reference draws to replay
            },
        )
    )
    torch.manual_seed(0)
    net = flowlib.nets.MLP(2, width=16, depth=2, n_times=2)
    with torch.no_grad():  # jumps far from zero, so that the jumps' part of the loss is not negligible
        net.layers[-1].weight.mul_(30.0)
    trainee = fitting.Trainee(FlowMap(net), False, False)
    loss_fn = fitting._make_loss(method, pool, None, options, fitting._Progress(100, None))
    fused = loss_fn(trainee, torch.Generator().manual_seed(3))

    generator = torch.Generator().manual_seed(3)  # the same draws, in the same order
    x1 = train.draw(pool, batch, generator)
    x0 = torch.randn(x1.shape, generator=generator)
    diagonal = torch.arange(batch) < round(options.diagonal_fraction * batch)
    if method == "psd":
        s, t = fitting._pairs(batch, generator, options, options.diagonal_fraction)
    else:
        s, h = times.sample_dyadic(batch, generator, options.shortcut_levels)
        uniform = times.sample_times(batch, generator, options.time_distribution)
        s, t = torch.where(diagonal, uniform, s), torch.where(diagonal, uniform, s + 2 * h)
    assert bool((s[diagonal] == t[diagonal]).all()) and bool((s[~diagonal] != t[~diagonal]).all())
    model = trainee.flow_map
    xs = get_interpolant("linear")(x0, x1, s)
    if method == "psd":
        jumps = losses.psd(model, model, xs[~diagonal], s[~diagonal], t[~diagonal], jumps=options.psd_jumps)
    else:
        jumps = losses.shortcut(model, xs[~diagonal], s[~diagonal], (t[~diagonal] - s[~diagonal]) / 2)
    assert float(jumps.mean().detach()) > 0.1  # the jumps' part is far from negligible
    on_diagonal = losses.diagonal(model, x0[diagonal], x1[diagonal], s[diagonal])
    per = torch.cat([diagonal_weight * on_diagonal, jumps])
    torch.testing.assert_close(fused, per.mean(), rtol=1e-5, atol=1e-7)


def test_fit_rejects_a_diagonal_weight_that_is_not_positive():
    with pytest.raises(ValueError, match="diagonal_weight"):
        flowlib.fit("psd", torch.randn(100, 2), steps=2, diagonal_weight=0.0, cache=False, progress=False)


@pytest.mark.parametrize("time", [0.2, 0.6])
def test_posterior_velocity_estimates_the_marginal_velocity_with_little_noise(time):
    """Averaged over references, the target is close to the exact b_t; a single pair's velocity is not."""
    mix = flowlib.data.mixture("eight_gaussians")
    x1 = mix.sample(512, seed=0).float()
    x0 = torch.randn(x1.shape, generator=torch.Generator().manual_seed(1))
    references = mix.sample(4096, seed=2).float()
    t = torch.full((512,), time)
    estimate = losses.posterior_velocity(x0, x1, t, references)
    xt = (1 - time) * x0 + time * x1
    exact = mix.velocity(xt.double(), t.double()).float()
    estimate_error = (estimate - exact).pow(2).sum(1).mean().sqrt()
    conditional_error = (x1 - x0 - exact).pow(2).sum(1).mean().sqrt()
    assert estimate_error < 0.1 and conditional_error > 1.0


def test_posterior_velocity_is_the_pair_velocity_at_the_data_end_and_checks_shapes():
    x0, x1 = torch.randn(8, 2), torch.randn(8, 2)
    at_data = losses.posterior_velocity(x0, x1, torch.ones(8), torch.randn(16, 2))
    torch.testing.assert_close(at_data, x1 - x0)
    with pytest.raises(ValueError, match="references"):
        losses.posterior_velocity(x0, x1, torch.rand(8), torch.randn(16, 3))


def test_fit_trains_with_either_diagonal_target_and_checks_the_option():
    for target in ("posterior", "conditional"):
        model = flowlib.fit(
            "psd", "eight_gaussians", steps=60, batch_size=64, diagonal_target=target, cache=False, progress=False
        )
        assert model.fit_config["diagonal_target"] == target
        losses_seen = model.fit_result.losses
        assert torch.isfinite(torch.as_tensor(losses_seen)).all()
        assert sum(losses_seen[-10:]) < sum(losses_seen[:10])
    with pytest.raises(ValueError, match="diagonal_target"):
        flowlib.fit("psd", torch.randn(100, 2), steps=2, diagonal_target="exact", cache=False, progress=False)


def test_psd_target_with_more_jumps_is_the_composed_teachers_average_velocity():
    torch.manual_seed(0)
    teacher = FlowMap(flowlib.nets.MLP(2, width=16, depth=2, n_times=2))
    x, s = torch.randn(32, 2), 0.5 * torch.rand(32)
    t = s + 0.1 + 0.4 * torch.rand(32)
    end = x
    for k in range(4):
        end = teacher(end, s + (t - s) * k / 4, s + (t - s) * (k + 1) / 4)
    expected = (end - x) / (t - s)[:, None]
    torch.testing.assert_close(losses.psd_target(teacher, x, s, t, jumps=4), expected, rtol=1e-4, atol=1e-5)
    halves = losses.psd_target(teacher, x, s, t)
    assert not torch.allclose(halves, expected, atol=1e-3)  # two jumps are a different target
    with pytest.raises(ValueError, match="jumps"):
        losses.psd_target(teacher, x, s, t, jumps=1)
    with pytest.raises(ValueError, match="not both"):
        losses.psd_target(teacher, x, s, t, u=(s + t) / 2, jumps=4)


def test_fit_psd_trains_with_two_or_four_jumps_and_checks_the_option():
    for jumps in (2, 4):
        model = flowlib.fit(
            "psd", "eight_gaussians", steps=60, batch_size=64, psd_jumps=jumps, cache=False, progress=False
        )
        assert model.fit_config["psd_jumps"] == jumps
        assert sum(model.fit_result.losses[-10:]) < sum(model.fit_result.losses[:10])
    with pytest.raises(ValueError, match="psd_jumps"):
        flowlib.fit("psd", torch.randn(100, 2), steps=2, psd_jumps=1, cache=False, progress=False)


def test_psd_target_is_finite_where_a_drawn_pair_ties():
    """Independent uniform times can tie (s = t) off the diagonal; the target must stay the velocity, not 0/0."""
    torch.manual_seed(0)
    teacher = FlowMap(flowlib.nets.MLP(2, width=16, depth=2, n_times=2))
    x, s = torch.randn(8, 2), 0.5 * torch.rand(8)
    t = s.clone()
    t[4:] += 0.3
    target = losses.psd_target(teacher, x, s, t)
    assert torch.isfinite(target).all()
    torch.testing.assert_close(target[:4], teacher.velocity(x[:4], s[:4]).detach())
