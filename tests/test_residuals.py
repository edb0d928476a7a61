"""The three consistency rules as residuals: zero for the exact flow map, large for a wrong one."""

import math

import pytest
import torch

from flowlib import data, nets, residuals
from flowlib.exact import LinearField
from flowlib.flowmap import FlowMap

MIX = data.mixture("eight_gaussians")


def euler_jump(x, s, t):
    s = torch.as_tensor(s, dtype=x.dtype).expand(x.shape[0])
    t = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0])
    return x + (t - s)[:, None] * MIX.velocity(x, s)


def model64(seed=0):
    torch.manual_seed(seed)
    return FlowMap(nets.MLP(2, width=32, depth=2, n_times=2, gap=True)).double()


def test_residuals_vanish_for_the_exact_map_and_not_for_the_euler_jump():
    x = MIX.sample_marginal(100, 0.3, seed=0)
    for kind, fn in [
        ("compositional", lambda m: residuals.compositional_residual(m, x, 0.3, 0.6, 0.9)),
        ("lagrangian", lambda m: residuals.lagrangian_residual(m, MIX.velocity, x, 0.3, 0.9, 1e-3)),
        ("eulerian", lambda m: residuals.eulerian_residual(m, MIX.velocity, x, 0.3, 0.9, 1e-3)),
    ]:
        exact = fn(MIX.flow_map)
        assert exact.shape == (100,), kind
        assert exact.mean() < 1e-4, kind
        assert fn(euler_jump).mean() > 0.05, kind


def test_residuals_are_one_sided_at_the_ends_of_the_interval():
    """At t = 1 (Lagrangian) or s = 0 (Eulerian) a central difference would leave [0, 1], where the map refuses."""
    field = LinearField.spiral(0.5, 1.0)
    x = torch.randn(50, 2, dtype=torch.float64)
    for s, t in [(0.0, 1.0), (1.0, 0.0)]:
        assert residuals.lagrangian_residual(field.flow_map, field.velocity, x, s, t, 1e-5).max() < 1e-3
        assert residuals.eulerian_residual(field.flow_map, field.velocity, x, s, t, 1e-5).max() < 1e-3
    assert residuals.lagrangian_residual(field.flow_map, field.velocity, x, 0.5, 0.5, 1e-5).max() < 1e-8  # central
    wrong = tangent_jump(field)  # one Euler step of any length: wrong away from the diagonal
    assert residuals.lagrangian_residual(wrong, field.velocity, x, 0.0, 1.0, 1e-5).mean() > 0.1


def tangent_jump(field):
    """The tangent used as a map, x + (t - s) b_s(x)."""
    return lambda x, s, t: x + (t - s)[:, None] * field.velocity(x, s)


def test_residual_grid_shape_and_diagonal():
    grid = residuals.residual_grid(
        "lagrangian", euler_jump, MIX.velocity, MIX.sample_marginal, torch.linspace(0, 1, 4), n=32, eps=1e-3
    )
    assert grid.shape == (4, 4)
    assert grid.diagonal().max() < 1e-2  # the tangent is right on the diagonal
    assert grid[0, 3] > grid.diagonal().max()
    assert set(residuals.KINDS) == {"compositional", "lagrangian", "eulerian"}
    with pytest.raises(ValueError, match="unknown kind 'hamiltonian'"):
        residuals.residual_grid("hamiltonian", euler_jump, MIX.velocity, MIX.sample_marginal, [0.0, 1.0])


def test_batched_residual_grid_matches_pointwise_residuals():
    times = torch.linspace(0, 1, 3, dtype=torch.float64)
    for kind, direct in [
        ("lagrangian", lambda x: residuals.lagrangian_residual(euler_jump, MIX.velocity, x, 0.5, 1.0, 1e-4)),
        ("compositional", lambda x: residuals.compositional_residual(euler_jump, x, 0.5, 0.75, 1.0)),
    ]:
        grid = residuals.residual_grid(
            kind, euler_jump, MIX.velocity, lambda n, s: MIX.sample_marginal(n, s, seed=1), times, n=40, eps=1e-4
        )
        x = MIX.sample_marginal(40, 0.5, seed=1)
        assert math.isclose(grid[1, 2].item(), direct(x).mean().item(), rel_tol=1e-9), kind


def test_flow_map_residuals_use_the_jvp():
    model = model64()
    x = MIX.sample_marginal(16, 0.2, seed=1)
    plain = lambda y, s, t: model(y, s, t).detach()  # noqa: E731  (a callable: finite differences)
    by_jvp = residuals.lagrangian_residual(model, MIX.velocity, x, 0.2, 0.7)
    by_fd = residuals.lagrangian_residual(plain, MIX.velocity, x, 0.2, 0.7, 1e-5)
    assert torch.allclose(by_jvp, by_fd, atol=1e-6)
    by_jvp = residuals.eulerian_residual(model, MIX.velocity, x, 0.2, 0.7)
    by_fd = residuals.eulerian_residual(plain, MIX.velocity, x, 0.2, 0.7, 1e-5)
    assert torch.allclose(by_jvp, by_fd, atol=1e-6)


def test_a_float32_flow_map_is_scored_in_the_callers_dtype():
    torch.manual_seed(0)
    model = FlowMap(nets.MLP(2, width=16, depth=1, n_times=2))
    x = MIX.sample_marginal(8, 0.2, seed=1)  # float64
    for residual in (
        residuals.compositional_residual(model, x, 0.2, 0.5, 0.8),
        residuals.lagrangian_residual(model, MIX.velocity, x, 0.2, 0.8),
        residuals.eulerian_residual(model, MIX.velocity, x, 0.2, 0.8),
    ):
        assert residual.dtype == torch.float64 and residual.shape == (8,) and not residual.requires_grad


def test_bad_inputs():
    x = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"flow_map must be a callable flow_map\(x, s, t\)"):
        residuals.compositional_residual("map", x, 0.0, 0.5, 1.0)
    with pytest.raises(TypeError, match="velocity must be a callable"):
        residuals.lagrangian_residual(MIX.flow_map, None, x, 0.0, 1.0)
    with pytest.raises(ValueError, match="u must lie"):
        residuals.compositional_residual(MIX.flow_map, x, 0.0, 1.5, 1.0)
