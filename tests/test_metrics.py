import math
from functools import partial

import pytest
import torch

from flowlib import data, metrics, nets
from flowlib.exact import LinearField
from flowlib.flowmap import FlowMap, VelocityModel

MIX = data.mixture("eight_gaussians")


def euler_jump(x, s, t):
    s = torch.as_tensor(s, dtype=x.dtype).expand(x.shape[0])
    t = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0])
    return x + (t - s)[:, None] * MIX.velocity(x, s)


def gauss(n, seed, shift=0.0, dim=2):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) + shift


def test_identical_sets_have_zero_distance():
    a = gauss(500, 0)
    assert metrics.sliced_w2(a, a) == 0.0
    assert metrics.energy_distance(a, a) == pytest.approx(0.0, abs=1e-12)
    assert metrics.w2(a, a) == 0.0


def test_exact_w2_of_a_translation_is_its_length():
    a = gauss(300, 1)
    shift = torch.tensor([0.3, -0.4])
    assert metrics.w2(a, a + shift) == pytest.approx(0.5, abs=1e-6)


def test_sliced_w2_of_a_translation():
    """For a shift delta in 2D, sliced W2 = |delta| sqrt(E cos^2) = |delta| / sqrt(2)."""
    a = gauss(2000, 2)
    shift = torch.tensor([0.6, 0.8])
    assert metrics.sliced_w2(a, a + shift, n_projections=4000) == pytest.approx(1 / math.sqrt(2), rel=0.02)


def test_metrics_grow_with_the_discrepancy():
    ref = gauss(2000, 3)
    for metric in (metrics.sliced_w2, metrics.energy_distance):
        values = [metric(gauss(2000, 4, shift=d), ref) for d in (0.0, 0.3, 1.0)]
        assert values[0] < values[1] < values[2]


def test_determinism_and_seeds():
    a, b = gauss(400, 5), gauss(400, 6)
    assert metrics.sliced_w2(a, b, seed=1) == metrics.sliced_w2(a, b, seed=1)
    assert metrics.sliced_w2(a, b, seed=1) != metrics.sliced_w2(a, b, seed=2)
    # energy distance is exact below max_points; above, the subsample follows the seed
    assert metrics.energy_distance(a, b, max_points=100, seed=1) == metrics.energy_distance(
        a, b, max_points=100, seed=1
    )
    assert metrics.energy_distance(a, b, max_points=100, seed=1) != metrics.energy_distance(
        a, b, max_points=100, seed=2
    )
    assert metrics.energy_distance(a, b, max_points=400, seed=1) == metrics.energy_distance(a, b, seed=2)


def test_unequal_sizes_and_images():
    a, b = gauss(300, 7), gauss(500, 8)
    assert metrics.sliced_w2(a, b) > 0
    # a set and the same set with every point twice have the same quantile function in every direction
    assert metrics.sliced_w2(a, a.repeat(2, 1)) == pytest.approx(0.0, abs=1e-12)
    assert metrics.sliced_w2(a, a.repeat(2, 1) + 1.0) > 0.5
    images = torch.randn(50, 1, 4, 4)
    assert metrics.energy_distance(images, images + 1) > 0


def test_against_floor_reports_ratio_near_one_for_data():
    data = lambda n, seed: gauss(n, seed)  # noqa: E731
    report = metrics.against_floor(metrics.sliced_w2, data, data, n=1000, repeats=6)
    assert report.ratio == pytest.approx(1.0, abs=0.35)
    assert report.value_se > 0 and report.floor_se > 0
    shifted = metrics.against_floor(
        partial(metrics.sliced_w2), lambda n, s: gauss(n, s, 0.5), data, n=1000, repeats=3, name="sliced W2"
    )
    assert shifted.ratio > 3
    assert "sliced W2" in str(shifted)


def test_map_error():
    a = torch.zeros(10, 2)
    assert metrics.map_error(a + torch.tensor([3.0, 4.0]), a) == pytest.approx(5.0)


def test_bad_inputs():
    with pytest.raises(ValueError, match="same number of features"):
        metrics.sliced_w2(torch.zeros(5, 2), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="same size"):
        metrics.w2(torch.zeros(5, 2), torch.zeros(6, 2))
    with pytest.raises(ValueError, match="max_points"):
        metrics.w2(torch.zeros(50, 2), torch.zeros(50, 2), max_points=10)
    with pytest.raises(ValueError, match="NaN"):
        metrics.energy_distance(torch.full((5, 2), float("nan")), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="at least n \\* repeats"):
        metrics.against_floor(metrics.sliced_w2, torch.zeros(10, 2), lambda n, s: gauss(n, s), n=10, repeats=3)


def test_mean_se():
    mean, se = metrics.mean_se([1.0, 2.0, 3.0])
    assert mean == 2.0 and se == pytest.approx(1 / math.sqrt(3))
    mean, se = metrics.mean_se([4.0])
    assert mean == 4.0 and math.isnan(se)
    with pytest.raises(ValueError, match="at least one value"):
        metrics.mean_se([])


def test_floor_report_ratio_and_its_error():
    report = metrics.FloorReport("m", value=2.0, value_se=0.2, floor=1.0, floor_se=0.1, n=10, repeats=3)
    assert report.ratio == 2.0
    assert report.ratio_se == pytest.approx(2.0 * math.hypot(0.1, 0.1))
    assert metrics.FloorReport("m", 1.0, 0.1, 0.0, 0.0, 10, 3).ratio == math.inf
    lines = str(metrics.FloorReport("energy distance", 0.00123, 0.0001, 0.001, 0.0001, 4000, 10)).splitlines()
    assert len(lines) == 2 and all(len(line) <= 60 for line in lines), "a report fits a page's code column"
    assert "ratio 1.23 ± 0.16" in lines[1]


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


class RotatingCloud:
    """A stand-in for a mixture with a cheap exact map: standard normal points carried by a rotation."""

    field = LinearField.rotation(0.25)

    def sample_marginal(self, n, s, seed=None):
        return torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))

    def flow_map(self, x, s, t):
        return self.field.flow_map(x, s, t)


def test_map_error_grid_scores_backward_jumps_on_request():
    cloud = RotatingCloud()
    times = [0.0, 0.5, 1.0]
    exact = metrics.map_error_grid(cloud.flow_map, cloud, times, n=20, forward_only=False)
    assert not torch.isnan(exact).any() and exact.max() < 1e-12
    standing_still = metrics.map_error_grid(lambda x, s, t: x, cloud, times, n=20, forward_only=False)
    assert standing_still.diagonal().max() == 0.0
    assert standing_still[2, 0] > 0.5 and standing_still[0, 2] > 0.5  # a quarter turn, either way
    forward = metrics.map_error_grid(lambda x, s, t: x, cloud, times, n=20)
    assert torch.isnan(forward[2, 0]) and forward[0, 2] == standing_still[0, 2]


def test_map_error_grid_accepts_a_float32_network():
    torch.manual_seed(0)
    model = FlowMap(nets.MLP(2, width=16, depth=1, n_times=2))
    grid = metrics.map_error_grid(model, MIX, [0.0, 1.0], n=20)
    assert torch.isfinite(grid[0, 1])
    with pytest.raises(TypeError, match="flow_map must be callable"):
        metrics.map_error_grid("not a map", MIX, [0.0, 1.0])


def test_map_error_grid_scores_a_dictionary_of_maps_like_each_alone():
    times = [0.0, 0.5, 1.0]
    together = metrics.map_error_grid({"exact": MIX.flow_map, "euler": euler_jump}, MIX, times, n=30, seed=4)
    alone = metrics.map_error_grid(euler_jump, MIX, times, n=30, seed=4)
    assert set(together) == {"exact", "euler"}
    assert torch.allclose(together["euler"], alone, equal_nan=True)
    with pytest.raises(TypeError, match="'bad' must be callable"):
        metrics.map_error_grid({"bad": 3}, MIX, times)


def test_quality_by_steps_samples_the_model_at_each_step_count():
    reference = MIX.sample(500, seed=1).float()
    noise = torch.randn(500, 2, generator=torch.Generator().manual_seed(2))
    exact = metrics.quality_by_steps(MIX.velocity, noise, reference, (1, 2, 16))
    standing_still = metrics.quality_by_steps(lambda x, t: torch.zeros_like(x), noise, reference, (1, 2))
    assert set(exact) == {1, 2, 16}
    assert exact[16] < exact[2] < exact[1]  # more Heun steps of the exact velocity, closer to the data
    assert standing_still[1] == standing_still[2] > 3 * exact[16]  # noise left as it is
    floor = metrics.sliced_w2_floor(MIX.sample, reference, repeats=3)
    assert exact[16] < 1.5 * floor  # 16 steps of the exact velocity: as good as fresh data
    samples = sampling_heun(MIX.velocity, noise, 2)
    assert exact[2] == pytest.approx(metrics.sliced_w2(samples.float(), reference, 256))
    broken = metrics.quality_by_steps(lambda x, t: x * float("nan"), noise, reference, (1,))
    assert broken[1] == math.inf
    with pytest.raises(ValueError, match="steps must be >= 1"):
        metrics.quality_by_steps(MIX.velocity, noise, reference, (0,))


def sampling_heun(velocity, noise, steps):
    from flowlib import ode

    return ode.integrate(velocity, noise, ode.uniform_grid(steps), solver="heun")


def test_quality_by_steps_takes_every_kind_of_model_and_seeds_the_renoising():
    torch.manual_seed(0)
    reference = MIX.sample(300, seed=1).float()
    noise = torch.randn(300, 2)
    net = nets.MLP(2, width=16, depth=1, n_times=2)
    composed = metrics.quality_by_steps(FlowMap(net), noise, reference, (1, 2))
    renoised = metrics.quality_by_steps(FlowMap(net, kind="consistency"), noise, reference, (1, 2), seed=3)
    assert composed[1] == renoised[1]  # one step: the same jump from 0 to 1
    assert composed[2] != renoised[2]  # two steps: composing jumps is not re-noising
    assert renoised == metrics.quality_by_steps(FlowMap(net, kind="consistency"), noise, reference, (1, 2), seed=3)
    assert renoised[2] != metrics.quality_by_steps(FlowMap(net, kind="consistency"), noise, reference, (2,), seed=4)[2]
    velocity = metrics.quality_by_steps(VelocityModel(nets.MLP(2, width=16, depth=1)), noise, reference, (1,))
    assert math.isfinite(velocity[1])


def test_data_floor_and_sliced_w2_floor_average_independent_draws():
    reference = MIX.sample(2000, seed=1)
    values = metrics.data_floor(lambda a, b: metrics.sliced_w2(a, b, 256), MIX.sample, reference, repeats=3, seed=10)
    singles = [metrics.sliced_w2(MIX.sample(2000, seed=10 + r).float(), reference.float(), 256) for r in range(3)]
    assert values == pytest.approx(singles, rel=1e-12)
    floor = metrics.sliced_w2_floor(MIX.sample, reference, repeats=3, seed=10)
    assert math.isclose(floor, sum(singles) / 3, rel_tol=1e-9)
    shifted = metrics.sliced_w2_floor(lambda n, seed: MIX.sample(n, seed=seed) + 1.0, reference, repeats=3, seed=10)
    assert shifted > 5 * floor
    with pytest.raises(TypeError, match="draw must be callable"):
        metrics.sliced_w2_floor("data", reference)
    with pytest.raises(TypeError, match="draw must be callable"):
        metrics.data_floor(metrics.sliced_w2, "data", reference)


def test_the_exact_map_scores_a_ratio_of_one_against_the_floor():
    """Calibration behind every quality claim: samples of the exact map, from fresh noise in each repeat and at
    the floor's sample size, average a ratio of 1 to the data-vs-data floor; a map 10% too wide does not."""
    exact_draws = {}

    def pushed(scale: float):
        def draw(n: int, seed: int) -> torch.Tensor:
            if (n, seed) not in exact_draws:
                z = torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
                exact_draws[n, seed] = MIX.flow_map(z, 0.0, 1.0, steps_per_unit=64)  # RK4 error ~3e-5
            return scale * exact_draws[n, seed]

        return draw

    def fresh(n: int, seed: int) -> torch.Tensor:
        return MIX.sample(n, seed=seed)

    exact = metrics.against_floor(metrics.sliced_w2, pushed(1.0), fresh, n=1000, repeats=10, seed=500)
    assert exact.ratio_se < 0.25, "too few repeats to tell anything"
    assert abs(exact.ratio - 1) < max(3 * exact.ratio_se, 0.1), str(exact)
    wide = metrics.against_floor(metrics.sliced_w2, pushed(1.1), fresh, n=1000, repeats=10, seed=500)
    assert wide.ratio - 3 * wide.ratio_se > 1, str(wide)
