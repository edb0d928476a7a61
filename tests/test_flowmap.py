import pytest
import torch

from flowlib import consistency, data, nets
from flowlib.flowmap import FlowMap, as_flow_map_fn, as_velocity_fn, consistency_sample
from flowlib.times import sample_dyadic, sample_pairs, sample_times


def model64(seed=0, dim=2):
    torch.manual_seed(seed)
    return FlowMap(nets.MLP(dim, width=32, depth=2, n_times=2, gap=True)).double()


def test_identity_holds_by_construction():
    model = model64()
    x = torch.randn(10, 2, dtype=torch.float64)
    t = torch.rand(10, dtype=torch.float64)
    assert torch.equal(model(x, t, t), x)


def test_velocity_is_the_diagonal_and_the_tangent():
    model = model64()
    x = torch.randn(10, 2, dtype=torch.float64)
    s = torch.full((10,), 0.3, dtype=torch.float64)
    assert torch.allclose(model.velocity(x, s), model.average_velocity(x, s, s))
    _, d_end = model.jvp(x, s, s, dt=1.0)  # d/dt X_{s,t} at t = s is v_{s,s}
    assert torch.allclose(d_end, model.velocity(x, s), atol=1e-12)


@pytest.mark.parametrize("output", ["map", "velocity"])
@pytest.mark.parametrize("tangent", ["dt", "ds", "dx", "all"])
def test_jvp_agrees_with_finite_differences_in_float64(output, tangent):
    model = model64(1)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(64, 2, dtype=torch.float64, generator=gen)
    s = 0.5 * torch.rand(64, dtype=torch.float64, generator=gen)
    t = 0.5 + 0.5 * torch.rand(64, dtype=torch.float64, generator=gen)
    direction = torch.randn(64, 2, dtype=torch.float64, generator=gen)
    kwargs = {
        "dt": {"dt": 1.0},
        "ds": {"ds": 1.0},
        "dx": {"dx": direction},
        "all": {"dx": direction, "ds": 0.7, "dt": -0.3},
    }[tangent]
    value, exact = model.jvp(x, s, t, output=output, **kwargs)
    # the Fourier time features make third derivatives large, so a central difference needs a small step
    _, finite = model.jvp(x, s, t, output=output, method="fd", eps=1e-6, **kwargs)
    assert torch.allclose(exact, finite, rtol=1e-6, atol=1e-7)
    expected = model(x, s, t) if output == "map" else model.average_velocity(x, s, t)
    assert torch.allclose(value, expected)


def test_gradients_flow_through_the_jvp():
    model = model64()
    x = torch.randn(8, 2, dtype=torch.float64)
    _, d_end = model.jvp(x, 0.2, 0.9, dt=1.0)
    d_end.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_sampling_composes_jumps_along_a_grid():
    model = model64()
    x0 = torch.randn(5, 2, dtype=torch.float64)
    two = model.sample(x0, steps=2)
    by_hand = model(model(x0, 0.0, 0.5), 0.5, 1.0)
    assert torch.allclose(two, by_hand)
    path = model.sample(x0, times=[0.0, 0.25, 1.0], return_path=True)
    assert path.shape == (3, 5, 2) and torch.equal(path[0], x0)
    backwards = model.sample(x0, times=[1.0, 0.0])
    assert torch.allclose(backwards, model(x0, 1.0, 0.0))


def test_detached_wrappers_cast_and_do_not_track_gradients():
    model = FlowMap(nets.MLP(2, width=16, depth=1, n_times=2))
    flow_map, velocity = as_flow_map_fn(model), as_velocity_fn(model)
    x = torch.randn(4, 2, dtype=torch.float64)
    out = flow_map(x, torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64))
    assert out.dtype == torch.float64 and not out.requires_grad
    assert torch.allclose(velocity(x, 0.4), model.velocity(x.float(), 0.4).double().detach())


def test_consistency_sampling_renoises_between_jumps():
    model = model64()
    x0 = torch.randn(6, 2, dtype=torch.float64)
    assert torch.allclose(consistency_sample(model, x0, steps=1), model(x0, 0.0, 1.0))
    a = consistency_sample(model, x0, steps=3, generator=torch.Generator().manual_seed(0))
    b = consistency_sample(model, x0, steps=3, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(a, b)  # fresh noise at each re-noising


def test_bad_inputs():
    model = model64()
    with pytest.raises(TypeError, match="net must be a torch.nn.Module"):
        FlowMap(lambda x, s, t: x)
    with pytest.raises(ValueError, match="t must lie"):
        model(torch.zeros(3, 2, dtype=torch.float64), 0.0, 1.5)
    with pytest.raises(ValueError, match="unknown method"):
        model.jvp(torch.zeros(3, 2, dtype=torch.float64), 0.0, 1.0, method="complex-step")
    with pytest.raises(ValueError, match="steps must be >= 1"):
        model.sample(torch.zeros(3, 2, dtype=torch.float64), steps=0)


# --------------------------------------------------------------------------------------------- times
@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.75, 1.0])
def test_the_requested_share_of_pairs_lands_on_the_diagonal(fraction):
    s, t = sample_pairs(1000, torch.Generator().manual_seed(0), diagonal_fraction=fraction)
    assert (s == t).float().mean().item() == pytest.approx(fraction, abs=1e-9)
    assert bool((t >= s).all()) and bool((s >= 0).all()) and bool((t <= 1).all())


def test_pair_options():
    gen = torch.Generator().manual_seed(1)
    s, t = sample_pairs(4000, gen, diagonal_fraction=0.0, max_gap=0.1)
    assert (t - s).max() <= 0.1 + 1e-6
    s, t = sample_pairs(4000, gen, diagonal_fraction=0.5, backward_fraction=0.5)
    off = s != t
    assert 0.4 < (t[off] < s[off]).float().mean() < 0.6
    logit = sample_times(20000, gen, "logit_normal")
    uniform = sample_times(20000, gen, "uniform")
    assert ((logit - 0.5).abs() < 0.25).float().mean() > ((uniform - 0.5).abs() < 0.25).float().mean() + 0.1
    with pytest.raises(ValueError, match="diagonal_fraction must be in"):
        sample_pairs(10, gen, diagonal_fraction=1.5)
    with pytest.raises(ValueError, match="unknown distribution"):
        sample_times(10, gen, "beta")


def test_dyadic_pairs_fit_in_the_unit_interval():
    s, h = sample_dyadic(5000, torch.Generator().manual_seed(0), levels=5)
    assert bool((s + 2 * h <= 1 + 1e-7).all())
    assert set(torch.log2(h).round().int().tolist()) == {-1, -2, -3, -4, -5}
    assert torch.allclose(s / (2 * h), (s / (2 * h)).round())  # s is a multiple of 2h


# --------------------------------------------------------------------------------------------- residuals
def test_residuals_vanish_for_the_exact_map_and_not_for_the_euler_jump():
    mix = data.mixture("eight_gaussians")
    x = mix.sample_marginal(100, 0.3, seed=0)

    def euler_jump(y, s, t):
        return y + (t - s)[:, None] * mix.velocity(y, s)

    for kind, fn in [
        ("compositional", lambda m: consistency.compositional_residual(m, x, 0.3, 0.6, 0.9)),
        ("lagrangian", lambda m: consistency.lagrangian_residual(m, mix.velocity, x, 0.3, 0.9, 1e-3)),
        ("eulerian", lambda m: consistency.eulerian_residual(m, mix.velocity, x, 0.3, 0.9, 1e-3)),
    ]:
        exact = fn(mix.flow_map).mean()
        wrong = fn(euler_jump).mean()
        assert exact < 1e-4, kind
        assert wrong > 0.05, kind


def test_residual_grid_shape_and_diagonal():
    mix = data.mixture("eight_gaussians")

    def euler_jump(y, s, t):
        return y + (t - s)[:, None] * mix.velocity(y, s)

    grid = consistency.residual_grid(
        "lagrangian", euler_jump, mix.velocity, mix.sample_marginal, torch.linspace(0, 1, 4), n=32, eps=1e-3
    )
    assert grid.shape == (4, 4)
    assert grid.diagonal().max() < 1e-2  # the tangent is right on the diagonal
    assert grid[0, 3] > grid.diagonal().max()
    with pytest.raises(ValueError, match="unknown kind"):
        consistency.residual_grid("hamiltonian", euler_jump, mix.velocity, mix.sample_marginal, [0.0, 1.0])


def test_flow_map_residuals_use_the_jvp():
    mix = data.mixture("eight_gaussians")
    model = model64()
    x = mix.sample_marginal(16, 0.2, seed=1)
    by_jvp = consistency.lagrangian_residual(model, mix.velocity, x, 0.2, 0.7)
    by_fd = consistency.lagrangian_residual(lambda y, s, t: model(y, s, t).detach(), mix.velocity, x, 0.2, 0.7, 1e-5)
    assert torch.allclose(by_jvp, by_fd, atol=1e-6)
    by_jvp = consistency.eulerian_residual(model, mix.velocity, x, 0.2, 0.7)
    by_fd = consistency.eulerian_residual(lambda y, s, t: model(y, s, t).detach(), mix.velocity, x, 0.2, 0.7, 1e-5)
    assert torch.allclose(by_jvp, by_fd, atol=1e-6)


def test_diagonal_times_follow_the_requested_distribution():
    """A diagonal time must be uniform, not the smaller of two uniforms (which leans towards 0)."""
    s, t = sample_pairs(20000, torch.Generator().manual_seed(3), diagonal_fraction=1.0)
    assert torch.equal(s, t)
    assert s.mean().item() == pytest.approx(0.5, abs=0.01)
    assert (s > 0.5).float().mean().item() == pytest.approx(0.5, abs=0.02)


def test_consistency_sample_takes_given_renoising_noise_and_checks_its_shape():
    torch.manual_seed(0)
    model = FlowMap(nets.MLP(2, width=16, depth=1, n_times=2))
    x0, fixed = torch.randn(64, 2), torch.randn(64, 2)
    given = consistency_sample(model, x0, steps=3, noise=lambda k: fixed * k)
    with torch.no_grad():  # the same steps written out: jump to data, re-noise with the given noise
        x = model(x0, 0.0, 1.0)
        for k in (1, 2):
            x = model((1 - k / 3) * fixed * k + (k / 3) * x, k / 3, 1.0)
    torch.testing.assert_close(given, x)
    assert not torch.allclose(given, consistency_sample(model, x0, steps=3, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match=r"noise\(1\)"):
        consistency_sample(model, x0, steps=2, noise=lambda k: torch.randn(8, 2))
