"""One ``sample(model, x, steps)`` for every kind of model: what a step means follows the model's kind."""

import pytest
import torch
from conftest import gen

from flowlib import data, nets, ode, sampling
from flowlib.flowmap import FlowMap, VelocityModel

MIX = data.mixture("eight_gaussians")


def flow_map(seed=0, kind="flow_map", dtype=torch.float32):
    torch.manual_seed(seed)
    return FlowMap(nets.MLP(2, width=16, depth=1, n_times=2), kind=kind).to(dtype)


def velocity_model(seed=0):
    torch.manual_seed(seed)
    return VelocityModel(nets.MLP(2, width=16, depth=1))


def test_kind_of_every_model():
    assert sampling.kind_of(MIX.velocity) == "velocity"
    assert sampling.kind_of(velocity_model()) == "velocity"
    assert sampling.kind_of(flow_map()) == "flow_map"
    assert sampling.kind_of(flow_map(kind="consistency")) == "consistency"
    with pytest.raises(TypeError, match="model must be a VelocityModel, a FlowMap or a velocity"):
        sampling.kind_of("model")
    with pytest.raises(TypeError, match="model must be"):
        sampling.sample(3, torch.zeros(2, 2))


def test_a_velocity_function_is_integrated_with_the_solver():
    z = torch.randn(50, 2, dtype=torch.float64)
    torch.testing.assert_close(sampling.sample(MIX.velocity, z, 8), ode.integrate(MIX.velocity, z, ode.uniform_grid(8)))
    rk4 = sampling.sample(MIX.velocity, z, 4, solver="rk4")
    torch.testing.assert_close(rk4, ode.integrate(MIX.velocity, z, ode.uniform_grid(4), solver="rk4"))
    assert not torch.allclose(rk4, sampling.sample(MIX.velocity, z, 4))
    grid = [0.0, 0.3, 0.9]
    path = sampling.sample(MIX.velocity, z, grid, return_path=True)
    assert path.shape == (3, 50, 2) and torch.equal(path[0], z)
    torch.testing.assert_close(path, ode.integrate(MIX.velocity, z, grid, return_path=True))
    # many steps of the exact velocity approach the exact flow map
    close = sampling.sample(MIX.velocity, z, 64, solver="rk4")
    assert (close - MIX.flow_map(z, 0.0, 1.0)).norm(dim=1).max() < 1e-4


def test_a_velocity_model_is_integrated_without_gradients_in_the_callers_dtype():
    model = velocity_model()
    z = torch.randn(20, 2, dtype=torch.float64)
    out = sampling.sample(model, z, 3, solver="midpoint")
    assert out.dtype == torch.float64 and not out.requires_grad
    # the points stay in the caller's float64; each evaluation runs in the network's float32
    with torch.no_grad():
        by_hand = ode.integrate(lambda x, t: model(x.float(), t.float()).double(), z, ode.uniform_grid(3), "midpoint")
    torch.testing.assert_close(out, by_hand, rtol=0, atol=0)
    with pytest.raises(ValueError, match="generator and noise are for consistency models"):
        sampling.sample(model, z, 2, generator=torch.Generator())


def test_a_flow_map_composes_its_jumps():
    model = flow_map(dtype=torch.float64)
    x0 = torch.randn(5, 2, dtype=torch.float64)
    two = sampling.sample(model, x0, steps=2)
    with torch.no_grad():
        by_hand = model(model(x0, 0.0, 0.5), 0.5, 1.0)
    torch.testing.assert_close(two, by_hand)
    path = sampling.sample(model, x0, [0.0, 0.25, 1.0], return_path=True)
    assert path.shape == (3, 5, 2) and torch.equal(path[0], x0)
    with torch.no_grad():
        torch.testing.assert_close(path[1], model(x0, 0.0, 0.25))
        torch.testing.assert_close(sampling.sample(model, x0, [1.0, 0.0]), model(x0, 1.0, 0.0))
    torch.testing.assert_close(sampling.compose_jumps(model, x0, ode.uniform_grid(2)), two)
    # the solver is irrelevant to a map, but a wrong name is still an error
    torch.testing.assert_close(sampling.sample(model, x0, 2, solver="rk4"), two)
    with pytest.raises(ValueError, match="unknown solver"):
        sampling.sample(model, x0, 2, solver="rk45")


def test_a_flow_map_can_also_be_integrated_through_its_diagonal():
    model = flow_map(dtype=torch.float64)
    z = torch.randn(8, 2, dtype=torch.float64)
    out = sampling.integrate_velocity(model, z, ode.uniform_grid(4), "euler")
    with torch.no_grad():
        by_hand = ode.integrate(model.velocity, z, ode.uniform_grid(4), solver="euler")
    torch.testing.assert_close(out, by_hand)


def test_a_consistency_model_jumps_to_the_data_and_renoises():
    model = flow_map(kind="consistency")
    x0, fixed = torch.randn(64, 2), torch.randn(64, 2)
    with torch.no_grad():
        torch.testing.assert_close(sampling.sample(model, x0, 1), model(x0, 0.0, 1.0))
    given = sampling.sample(model, x0, 3, noise=lambda k: fixed * k)
    with torch.no_grad():  # the same steps written out: jump to data, re-noise with the given noise
        x = model(x0, 0.0, 1.0)
        for k in (1, 2):
            x = model((1 - k / 3) * fixed * k + (k / 3) * x, k / 3, 1.0)
    torch.testing.assert_close(given, x)
    path = sampling.sample(model, x0, 3, noise=lambda k: fixed * k, return_path=True)
    assert path.shape == (4, 64, 2) and torch.equal(path[0], x0) and torch.equal(path[-1], given)
    a = sampling.sample(model, x0, 3, generator=torch.Generator().manual_seed(0))
    again = sampling.sample(model, x0, 3, generator=torch.Generator().manual_seed(0))
    b = sampling.sample(model, x0, 3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, again) and not torch.allclose(a, b)  # fresh noise at each re-noising
    assert not torch.allclose(given, a)
    # a flow map of the same weights composes its jumps instead
    composed = sampling.sample(FlowMap(model.net), x0, 3)
    assert not torch.allclose(composed, given)


def test_consistency_sampling_checks_its_grid_and_noise():
    model = flow_map(kind="consistency")
    x0 = torch.randn(64, 2)
    with pytest.raises(ValueError, match=r"noise\(1\) must return a tensor of shape \(64, 2\)"):
        sampling.sample(model, x0, 2, noise=lambda k: torch.randn(8, 2))
    with pytest.raises(ValueError, match="ends at t = 1"):
        sampling.sample(model, x0, [0.0, 0.5])
    with pytest.raises(ValueError, match="increasing grid"):
        sampling.sample(model, x0, [1.0, 0.0])


def test_bad_steps():
    z = torch.randn(4, 2)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        sampling.sample(MIX.velocity, z, 0)
    with pytest.raises(ValueError, match="strictly increasing"):
        sampling.sample(flow_map(), z, [0.0, 0.5, 0.2])
    with pytest.raises(ValueError, match="one grid of times"):
        sampling.sample(flow_map(), z, torch.zeros(3, 4))
    with pytest.raises(ValueError, match="NaN"):
        sampling.sample(flow_map(), torch.full((4, 2), float("nan")), 1)


def test_nfe_counts_network_evaluations():
    assert sampling.nfe(MIX.velocity, 8) == 16  # Heun: two per step
    assert sampling.nfe(velocity_model(), 8, solver="rk4") == 32
    assert sampling.nfe(flow_map(), 8) == 8  # one per jump
    assert sampling.nfe(flow_map(kind="consistency"), [0.0, 0.5, 1.0]) == 2
    calls = []

    def counting(x, t):
        calls.append(1)
        return -x

    sampling.sample(counting, torch.zeros(3, 2), 5, solver="midpoint")
    assert len(calls) == sampling.nfe(counting, 5, solver="midpoint")


@pytest.mark.parametrize("kind", ["velocity", "velocity_model", "flow_map", "consistency"])
def test_sample_returns_on_the_callers_device_and_dtype(kind, device):
    if kind == "velocity":
        model = MIX.velocity
    elif kind == "velocity_model":
        model = velocity_model().to(device)
    else:
        model = flow_map(kind=kind).to(device)
    for x in (torch.randn(16, 2, dtype=torch.float64), torch.randn(16, 2, device=device)):
        extra = {"generator": torch.Generator(device=x.device).manual_seed(0)} if kind == "consistency" else {}
        out = sampling.sample(model, x, 2, **extra)
        assert out.device == x.device and out.dtype == x.dtype and out.shape == x.shape
        assert torch.isfinite(out).all()


# ------------------------------------------------------------------------------------------ stochastic sampling
def test_score_from_velocity_is_the_gradient_of_the_log_density():
    mix = data.mixture("eight_gaussians")
    x = torch.randn(64, 2, dtype=torch.float64, generator=gen(0)).requires_grad_(True)
    for t in (0.0, 0.3, 0.9):
        (exact,) = torch.autograd.grad(mix.log_prob(x, t).sum(), x)
        assert torch.allclose(sampling.score_from_velocity(mix.velocity, x.detach(), t), exact, atol=1e-8)
    with pytest.raises(ValueError, match="t must be in"):
        sampling.score_from_velocity(mix.velocity, x.detach(), 1.0)


def test_sde_without_noise_is_euler_and_with_noise_keeps_the_marginal_but_not_the_paths():
    mix = data.mixture("eight_gaussians")
    z = torch.randn(2000, 2, dtype=torch.float64, generator=gen(1))
    euler = sampling.sample(mix.velocity, z, 40, solver="euler")
    assert torch.allclose(sampling.integrate_sde(mix.velocity, z, 40, epsilon=0.0), euler)
    noisy = sampling.integrate_sde(mix.velocity, z, 60, epsilon=1.0, generator=gen(2))
    exact = sampling.sample(mix.velocity, z, 20)  # the ODE's end points (to the nearest mode, exact enough)
    modes = torch.cdist(noisy, mix.means).argmin(1)
    share = torch.bincount(modes, minlength=8).double() / len(modes)
    assert (share - 1 / 8).abs().max() < 0.035, f"the SDE's samples should fill the eight modes equally: {share}"
    assert float(torch.cdist(noisy, mix.means).min(1).values.mean()) < 0.4, "samples should sit on the modes"
    same_mode = (modes == torch.cdist(exact, mix.means).argmin(1)).double().mean()
    assert same_mode < 0.6, "from the same noise the SDE should often end in another mode than the ODE"


def test_sde_rejects_bad_noise_levels_and_grids():
    mix = data.mixture("eight_gaussians")
    z = torch.randn(8, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="epsilon"):
        sampling.integrate_sde(mix.velocity, z, 10, epsilon=-1.0)
    with pytest.raises(ValueError, match="ends at t = 1"):
        sampling.integrate_sde(mix.velocity, z, torch.tensor([0.0, 0.5]))


def test_slerp_keeps_the_norm_of_noise_and_passes_through_its_ends():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 1, 8, 8, generator=generator, dtype=torch.float64)
    path = sampling.slerp(a, b, torch.linspace(0, 1, 11, dtype=torch.float64))
    assert path.shape == (11, 1, 8, 8)
    assert torch.allclose(path[0], a) and torch.allclose(path[-1], b)
    equal = sampling.slerp(a, b * a.norm() / b.norm(), torch.linspace(0, 1, 11, dtype=torch.float64))
    assert torch.allclose(equal.flatten(1).norm(dim=1), a.norm().expand(11)), "equal norms stay equal"
    # between ends of equal norm, the point at weight w has turned by w times the angle between them
    unit_a, unit_b = a.flatten() / a.norm(), b.flatten() / b.norm()
    theta = torch.arccos(unit_a @ unit_b)
    turned = torch.arccos(equal[3].flatten() @ unit_a / equal[3].norm())
    assert torch.allclose(turned, 0.3 * theta, atol=1e-9)
    assert torch.allclose(sampling.slerp(a, 2 * a, [0.5])[0], 1.5 * a), "parallel ends: the straight line"


def test_slerp_explains_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        sampling.slerp(torch.zeros(3), torch.zeros(4), [0.5])
    with pytest.raises(TypeError, match="b must be a torch.Tensor"):
        sampling.slerp(torch.zeros(3), [1, 2, 3], [0.5])
    with pytest.raises(ValueError, match="weights"):
        sampling.slerp(torch.ones(3), torch.ones(3), [[0.5]])
