"""The shared evaluation helpers of chapters 5-10: map-error and residual grids, quality by steps,
posterior pairs, saved-activation memory, per-method defaults and the (s, t) plot."""

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import flowlib  # noqa: E402
from flowlib import consistency, data, exact, metrics, nets, train, viz  # noqa: E402
from flowlib.flowmap import FlowMap  # noqa: E402

MIX = data.mixture("eight_gaussians")


def euler_jump(x, s, t):
    s, t = torch.as_tensor(s, dtype=x.dtype).expand(x.shape[0]), torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0])
    return x + (t - s)[:, None] * MIX.velocity(x, s)


def test_map_error_grid_is_zero_for_the_oracle_and_matches_a_direct_computation():
    times = torch.linspace(0, 1, 3)
    exact_grid = metrics.map_error_grid(MIX.flow_map, MIX, times, n=50, seed=3)
    assert exact_grid.shape == (3, 3)
    assert torch.isnan(exact_grid[1, 0]) and torch.isnan(exact_grid[1, 1])  # only s < t is scored
    assert exact_grid[0, 2] < 1e-10
    euler_grid = metrics.map_error_grid(euler_jump, MIX, times, n=50, seed=3)
    x = MIX.sample_marginal(50, 0.0, seed=3)  # start time 0 uses seed + 0
    direct = metrics.map_error(euler_jump(x, 0.0, 1.0), MIX.flow_map(x, 0.0, 1.0))
    assert math.isclose(euler_grid[0, 2].item(), direct, rel_tol=1e-9)
    assert euler_grid[0, 2] > 0.1


def test_map_error_grid_accepts_a_float32_network():
    torch.manual_seed(0)
    model = FlowMap(nets.MLP(2, width=16, depth=1, n_times=2))
    grid = metrics.map_error_grid(model, MIX, [0.0, 1.0], n=20)
    assert torch.isfinite(grid[0, 1])
    with pytest.raises(TypeError, match="flow_map must be callable"):
        metrics.map_error_grid("not a map", MIX, [0.0, 1.0])


def test_batched_residual_grid_matches_pointwise_residuals():
    times = torch.linspace(0, 1, 3, dtype=torch.float64)
    grid = consistency.residual_grid(
        "lagrangian", euler_jump, MIX.velocity, lambda n, s: MIX.sample_marginal(n, s, seed=1), times, n=40, eps=1e-4
    )
    x = MIX.sample_marginal(40, 0.5, seed=1)
    direct = consistency.lagrangian_residual(euler_jump, MIX.velocity, x, 0.5, 1.0, 1e-4).mean()
    assert math.isclose(grid[1, 2].item(), direct.item(), rel_tol=1e-9)


def test_quality_by_steps_scores_each_step_count_and_flags_non_finite_samples():
    reference = data.sample("checkerboard", 500, seed=1)
    noise = torch.randn(500, 2)
    perfect = metrics.quality_by_steps(lambda z, k: data.sample("checkerboard", 500, seed=2), noise, reference, (1, 2))
    useless = metrics.quality_by_steps(lambda z, k: z, noise, reference, (1, 2))
    assert set(perfect) == {1, 2}
    assert perfect[1] < useless[1]
    broken = metrics.quality_by_steps(lambda z, k: z * float("nan"), noise, reference, (1,))
    assert broken[1] == math.inf
    with pytest.raises(ValueError, match="steps"):
        metrics.quality_by_steps(lambda z, k: z, noise, reference, (0,))


def test_posterior_pairs_pass_through_the_point_and_average_to_the_velocity():
    point = torch.tensor([0.5, -0.4], dtype=torch.float64)
    x0, x1 = exact.posterior_pairs(MIX.sample(100_000, seed=0), point, 0.4, n=20_000, seed=1)
    assert torch.allclose(0.6 * x0 + 0.4 * x1, point.expand(20_000, 2), atol=1e-12)
    estimate = (x1 - x0).mean(0)
    truth = MIX.velocity(point[None], torch.tensor([0.4], dtype=torch.float64))[0]
    standard_error = (x1 - x0).std(0) / 20_000**0.5
    assert ((estimate - truth).abs() < 5 * standard_error + 1e-3).all()
    with pytest.raises(ValueError, match="x must be one point"):
        exact.posterior_pairs(MIX.sample(10, seed=0), torch.zeros(3, 2), 0.4, n=5)
    with pytest.raises(ValueError, match="t must be"):
        exact.posterior_pairs(MIX.sample(10, seed=0), point, 1.0, n=5)


def test_saved_activation_bytes_grow_with_the_jvp_and_vanish_without_gradients():
    torch.manual_seed(0)
    model = FlowMap(nets.MLP(2, width=64, depth=2, n_times=2))
    x, s, t = torch.randn(128, 2), torch.full((128,), 0.2), torch.full((128,), 0.7)
    forward = train.saved_activation_bytes(lambda: model(x, s, t).square().mean())
    jvp = train.saved_activation_bytes(lambda: model.jvp(x, s, t, dt=1.0)[1].square().mean())
    assert forward >= 128 * 64 * 4  # at least one hidden activation in float32
    assert jvp > forward
    with torch.no_grad():
        assert train.saved_activation_bytes(lambda: model(x, s, t).sum()) == 0
    with pytest.raises(TypeError):
        train.saved_activation_bytes("loss")


def test_method_defaults_apply_unless_the_caller_overrides_them():
    from flowlib.fitting import METHOD_DEFAULTS, resolve_options

    assert set(METHOD_DEFAULTS) <= set(flowlib.METHODS)
    assert resolve_options("psd", {})["diagonal_fraction"] == METHOD_DEFAULTS["psd"]["diagonal_fraction"]
    assert resolve_options("psd", {"diagonal_fraction": 0.1})["diagonal_fraction"] == 0.1
    model = flowlib.fit("psd", "moons", steps=3, seed=0, width=16, depth=1, cache=False, progress=False)
    assert model.fit_config["diagonal_warmup"] == METHOD_DEFAULTS["psd"]["diagonal_warmup"]
    assert model.fit_config["lr"] == METHOD_DEFAULTS["psd"]["lr"]
    assert model.fit_config["psd_jumps"] == METHOD_DEFAULTS["psd"]["psd_jumps"]
    assert model.fit_config["diagonal_target"] == METHOD_DEFAULTS["psd"]["diagonal_target"]


def test_time_pair_map_and_quality_plot_draw_what_they_are_given():
    values = torch.tensor([[float("nan"), 0.5], [float("nan"), float("nan")]])
    fig, axes = plt.subplots(1, 2)
    image = viz.time_pair_map(axes[0], values, "title", log=True)
    shown = image.get_array()
    assert shown.shape == (2, 2) and math.isclose(float(shown[1, 0]), math.log10(0.5), rel_tol=1e-6)
    with pytest.raises(ValueError, match="square"):
        viz.time_pair_map(axes[0], torch.zeros(2, 3))
    viz.plot_quality_by_steps(axes[1], {"a": {1: 0.3, 4: 0.1}}, baseline=0.05, floor=0.01)
    assert len(axes[1].lines) == 3
    plt.close(fig)


def test_map_error_grid_scores_a_dictionary_of_maps_like_each_alone():
    times = [0.0, 0.5, 1.0]
    together = metrics.map_error_grid({"exact": MIX.flow_map, "euler": euler_jump}, MIX, times, n=30, seed=4)
    alone = metrics.map_error_grid(euler_jump, MIX, times, n=30, seed=4)
    assert set(together) == {"exact", "euler"}
    assert torch.allclose(together["euler"], alone, equal_nan=True)
    with pytest.raises(TypeError, match="'bad' must be callable"):
        metrics.map_error_grid({"bad": 3}, MIX, times)


def test_sliced_w2_floor_averages_independent_draws():
    reference = MIX.sample(2000, seed=1)
    floor = metrics.sliced_w2_floor(MIX.sample, reference, repeats=3, seed=10)
    singles = [metrics.sliced_w2(MIX.sample(2000, seed=10 + r).float(), reference.float(), 256) for r in range(3)]
    assert math.isclose(floor, sum(singles) / 3, rel_tol=1e-9)
    shifted = metrics.sliced_w2_floor(lambda n, seed: MIX.sample(n, seed=seed) + 1.0, reference, repeats=3, seed=10)
    assert shifted > 5 * floor
    with pytest.raises(TypeError, match="draw must be callable"):
        metrics.sliced_w2_floor("data", reference)
