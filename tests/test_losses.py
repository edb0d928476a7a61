"""Every flow-map objective vanishes at the exact flow map, and each one is the formula it documents.

The exact map used here is the closed-form map of a single Gaussian, wrapped as a FlowMap in float64,
so JVPs and gradients run through it exactly. Training through :func:`flowlib.fit` is tested in
test_fitting.py."""

import pytest
import torch
from torch import nn

import flowlib
from flowlib import losses
from flowlib.exact import GaussianMixture, gaussian_flow_map
from flowlib.flowmap import FlowMap

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


def network_map(seed=0, scale=1.0):
    """A small random float64 flow map; ``scale`` spreads its jumps so that composition visibly fails."""
    torch.manual_seed(seed)
    net = flowlib.nets.MLP(2, width=16, depth=2, n_times=2).double()
    with torch.no_grad():
        net.layers[-1].weight.mul_(scale)
    return FlowMap(net)


def batch(variance=0.3, n=64, seed=0, gap=True):
    gen = torch.Generator().manual_seed(seed)
    x1 = MEAN + variance**0.5 * torch.randn(n, 2, dtype=torch.float64, generator=gen)
    x0 = torch.randn(n, 2, dtype=torch.float64, generator=gen)
    s = 0.1 + 0.5 * torch.rand(n, dtype=torch.float64, generator=gen)
    t = s + (0.05 + 0.3 * torch.rand(n, dtype=torch.float64, generator=gen)) if gap else s.clone()
    return x0, x1, s, t, (1 - s)[:, None] * x0 + s[:, None] * x1


def every_loss(model, reduction):
    """Every objective of losses on one batch, by name."""
    x0, x1, s, t, xs = batch()
    velocity = model.net.mixture.velocity if isinstance(model.net, ExactAverageVelocity) else model.velocity
    half = torch.full_like(s, 0.125)
    return {
        "flow_matching": lambda: losses.flow_matching(velocity, x0, x1, s, reduction=reduction),
        "diagonal": lambda: losses.diagonal(model, xs, s, x1 - x0, reduction=reduction),
        "lmd": lambda: losses.lmd(model, velocity, xs, s, t, reduction=reduction),
        "emd": lambda: losses.emd(model, velocity, xs, s, t, reduction=reduction),
        "progressive": lambda: losses.progressive(model, model, xs, s, t, reduction=reduction),
        "lsd": lambda: losses.lsd(model, model, xs, s, t, reduction=reduction),
        "esd": lambda: losses.esd(model, model, xs, s, t, reduction=reduction),
        "psd": lambda: losses.psd(model, model, xs, s, t, reduction=reduction),
        "meanflow": lambda: losses.meanflow(model, x0, x1, s, t, reduction=reduction),
        "improved_meanflow": lambda: losses.improved_meanflow(model, x0, x1, s, t, reduction=reduction),
        "consistency_distillation": lambda: losses.consistency_distillation(
            model, model, velocity, xs, s, 0.05, reduction=reduction
        ),
        "consistency_training": lambda: losses.consistency_training(model, model, x0, x1, s, 0.05, reduction=reduction),
        "shortcut": lambda: losses.shortcut(model, xs, 0.5 * s, 0.5 * s + 2 * half, reduction=reduction),
    }


@pytest.mark.parametrize("name", ["lmd", "emd", "lsd", "esd", "psd", "progressive"])
def test_map_objectives_vanish_at_the_exact_map(name):
    residual = every_loss(exact_map(), "none")[name]()
    assert residual.shape == (64,)
    assert residual.max() < 1e-12


@pytest.mark.parametrize("name", ["meanflow", "improved_meanflow", "consistency_training"])
def test_conditional_objectives_vanish_when_the_conditional_velocity_is_the_velocity(name):
    """With data at one point, dI/dt given I_s is deterministic and equals b_s: the residual is zero."""
    variance = 1e-12
    model = exact_map(variance)
    x0, x1, s, t, _ = batch(variance)
    if name == "consistency_training":
        residual = losses.consistency_training(model, model, x0, x1, s, 0.05, reduction="none")
    else:
        residual = getattr(losses, name)(model, x0, x1, s, t, reduction="none")
    assert residual.shape == (64,)
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
    start = s * 0.5
    # t = s + 2h with h = 1/8: two exact half-jumps are one exact jump
    assert losses.shortcut(model, xs, start, start + 0.25, reduction="none").max() < 1e-12
    # one Euler step of the exact velocity: an O(delta^2) error per step
    delta = 1e-3
    residual = losses.consistency_distillation(model, model, model.net.mixture.velocity, xs, s, delta, "none")
    assert residual.max() < 1e-10


def test_objectives_do_not_vanish_at_a_wrong_map():
    """The counterpart of the tests above: a random network is far from consistent (the exact map scores < 1e-12)."""
    values = every_loss(network_map(scale=10.0), "mean")
    for name in ("lmd", "emd", "lsd", "esd", "psd", "progressive", "shortcut", "meanflow"):
        assert float(values[name]().detach()) > 1e-5, name


@pytest.mark.parametrize("name", sorted(every_loss(exact_map(), "none")))
def test_mean_reduction_is_the_mean_of_the_per_sample_losses(name):
    model = network_map(scale=5.0)
    per_sample = every_loss(model, "none")[name]()
    mean = every_loss(model, "mean")[name]()
    assert per_sample.shape == (64,) and mean.shape == ()
    torch.testing.assert_close(mean, per_sample.mean())
    with pytest.raises(ValueError, match="unknown reduction 'sum'"):
        every_loss(model, "sum")[name]()


def test_the_default_reduction_is_the_mean():
    model = network_map(scale=5.0)
    x0, x1, s, t, xs = batch()
    torch.testing.assert_close(
        losses.lsd(model, model, xs, s, t), losses.lsd(model, model, xs, s, t, reduction="none").mean()
    )
    torch.testing.assert_close(
        losses.diagonal(model, xs, s, x1 - x0), losses.diagonal(model, xs, s, x1 - x0, "none").mean()
    )
    assert losses.flow_matching(model.velocity, x0, x1, s).shape == ()


def test_diagonal_is_the_tangent_condition_against_a_given_target():
    model = network_map(scale=3.0)
    x0, x1, s, _, xs = batch(gap=False)
    target = torch.randn(64, 2, dtype=torch.float64)
    per = losses.diagonal(model, xs, s, target, reduction="none")
    torch.testing.assert_close(per, (model.velocity(xs, s) - target).pow(2).mean(1))
    # with the conditional velocity as target it is flow matching on v_{s,s}
    torch.testing.assert_close(
        losses.diagonal(model, xs, s, x1 - x0, reduction="none"),
        losses.flow_matching(model.velocity, x0, x1, s, reduction="none"),
    )
    # zero at the exact map against the exact velocity
    exact = exact_map()
    assert losses.diagonal(exact, xs, s, exact.net.mixture.velocity(xs, s), "none").max() < 1e-20
    # the target is a constant: no gradient reaches it
    target.requires_grad_(True)
    losses.diagonal(model, xs, s, target).backward()
    assert target.grad is None


def test_flow_matching_is_the_regression_on_the_conditional_velocity():
    torch.manual_seed(0)
    net = flowlib.nets.MLP(4, width=8, depth=1).double()
    x0, x1 = torch.randn(6, 1, 2, 2, dtype=torch.float64), torch.randn(6, 1, 2, 2, dtype=torch.float64)
    t = torch.rand(6, dtype=torch.float64)
    xt = (1 - t)[:, None, None, None] * x0 + t[:, None, None, None] * x1
    expected = (net(xt, t) - (x1 - x0)).pow(2).flatten(1).mean(1)
    torch.testing.assert_close(losses.flow_matching(net, x0, x1, t, reduction="none"), expected)
    with pytest.raises(ValueError, match="velocity returned shape"):
        losses.flow_matching(lambda x, t: x[:, :1], x0.flatten(1), x1.flatten(1), t)


def test_psd_with_a_diagonal_mask_is_the_diagonal_loss_there_and_psd_elsewhere():
    model, teacher = network_map(scale=5.0), network_map(seed=1, scale=5.0)
    x0, x1, s, t, xs = batch()
    on_diagonal = torch.arange(64) % 3 == 0
    t = torch.where(on_diagonal, s, t)
    target = x1 - x0
    fused = losses.psd(
        model, teacher, xs, s, t, jumps=4, on_diagonal=on_diagonal, velocity_target=target, reduction="none"
    )
    diagonal = losses.diagonal(model, xs[on_diagonal], s[on_diagonal], target[on_diagonal], reduction="none")
    d = ~on_diagonal
    jumps = losses.psd(model, teacher, xs[d], s[d], t[d], jumps=4, reduction="none")
    torch.testing.assert_close(fused[on_diagonal], diagonal)
    torch.testing.assert_close(fused[d], jumps)
    assert float(jumps.mean().detach()) > 1e-3  # the jumps' part is not negligible
    with pytest.raises(ValueError, match="on_diagonal needs velocity_target"):
        losses.psd(model, teacher, xs, s, t, on_diagonal=on_diagonal)
    with pytest.raises(ValueError, match="on_diagonal must be a bool tensor"):
        losses.psd(model, teacher, xs, s, t, on_diagonal=on_diagonal.float(), velocity_target=target)


def test_psd_is_the_regression_on_two_jumps_of_the_teacher():
    model, teacher = network_map(scale=5.0), network_map(seed=1, scale=5.0)
    _, _, s, t, xs = batch()
    u = s + 0.3 * (t - s)
    with torch.no_grad():
        first = teacher.average_velocity(xs, s, u)
        second = teacher.average_velocity(teacher(xs, s, u), u, t)
        target = 0.3 * first + 0.7 * second  # shares (u - s)/(t - s) and (t - u)/(t - s)
    expected = (model.average_velocity(xs, s, t) - target).pow(2).mean(1)
    torch.testing.assert_close(losses.psd(model, teacher, xs, s, t, u, reduction="none"), expected)


def test_shortcut_is_psd_midpoint_rule_with_the_model_as_its_own_teacher():
    model = network_map(scale=5.0)
    x0, x1, s, t, xs = batch()
    start, end = 0.5 * s, 0.5 * s + 0.25  # t = s + 2h, h = 1/8
    shortcut = losses.shortcut(model, xs, start, end, reduction="none")
    torch.testing.assert_close(shortcut, losses.psd(model, model, xs, start, end, jumps=2, reduction="none"))
    with torch.no_grad():  # the shortcut paper's formula: v_{s,s+2h} against the mean of two h-jumps
        v1 = model.average_velocity(xs, start, start + 0.125)
        v2 = model.average_velocity(xs + 0.125 * v1, start + 0.125, end)
    expected = (model.average_velocity(xs, start, end) - 0.5 * (v1 + v2)).pow(2).mean(1)
    torch.testing.assert_close(shortcut, expected)
    on_diagonal = torch.arange(64) < 16
    fused = losses.shortcut(
        model, xs, torch.where(on_diagonal, s, start), torch.where(on_diagonal, s, end),
        on_diagonal=on_diagonal, velocity_target=x1 - x0, reduction="none",
    )  # fmt: skip
    torch.testing.assert_close(fused[16:], shortcut[16:])
    torch.testing.assert_close(fused[:16], losses.diagonal(model, xs[:16], s[:16], (x1 - x0)[:16], "none"))


def test_gradients_reach_the_model_and_not_through_the_targets():
    """Self-distillation targets are under stop-gradient: d loss / d theta is the regression's gradient only."""
    model = network_map(scale=5.0)
    _, _, s, t, xs = batch()
    loss = losses.psd(model, model, xs, s, t)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    target = losses.psd_target(model, xs, s, t)
    assert not target.requires_grad
    by_hand = torch.autograd.grad((model.average_velocity(xs, s, t) - target).pow(2).mean(), list(model.parameters()))
    for a, b in zip(grads, by_hand, strict=True):
        torch.testing.assert_close(a, b)


def test_wrong_model_type_is_refused():
    with pytest.raises(TypeError, match="model must be a flowlib.flowmap.FlowMap"):
        losses.lsd(lambda x, s, t: x, exact_map(), torch.zeros(2, 2), torch.zeros(2), torch.ones(2))
    with pytest.raises(TypeError, match="FlowMap"):
        losses.diagonal(flowlib.nets.MLP(2, n_times=2), torch.zeros(2, 2), torch.zeros(2), torch.zeros(2, 2))
    with pytest.raises(TypeError, match=r"teacher must be a callable teacher\(x, t\)"):
        losses.lmd(exact_map(), "b", torch.zeros(2, 2), torch.zeros(2), torch.ones(2))


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


def test_posterior_velocity_on_images_is_the_flat_estimate_reshaped():
    generator = torch.Generator().manual_seed(0)
    x0, x1, references = (torch.randn(n, 4, generator=generator) for n in (8, 8, 32))
    t = torch.rand(8, generator=generator)
    flat = losses.posterior_velocity(x0, x1, t, references)
    images = losses.posterior_velocity(
        x0.reshape(8, 1, 2, 2), x1.reshape(8, 1, 2, 2), t, references.reshape(32, 1, 2, 2)
    )
    assert images.shape == (8, 1, 2, 2)
    torch.testing.assert_close(images.reshape(8, 4), flat)


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


def test_psd_target_is_finite_where_a_drawn_pair_ties():
    """Independent uniform times can tie (s = t) off the diagonal; the target must stay the velocity, not 0/0."""
    torch.manual_seed(0)
    teacher = FlowMap(flowlib.nets.MLP(2, width=16, depth=2, n_times=2))
    x, s = torch.randn(8, 2), 0.5 * torch.rand(8)
    t = s.clone()
    t[4:] += 0.3
    target = losses.psd_target(teacher, x, s, t, u=(s + t) / 2)
    assert torch.isfinite(target).all()
    torch.testing.assert_close(target[:4], teacher.velocity(x[:4], s[:4]).detach())
    torch.testing.assert_close(losses.psd_target(teacher, x, s, t)[:4], teacher.velocity(x[:4], s[:4]).detach())
