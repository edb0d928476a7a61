"""Steering (issue 19, the library): the exact tilt against numerical integration, rewards, look-aheads, and
samplers scored against the exact tilted mixture."""

from __future__ import annotations

import math

import pytest
import torch

import flowlib
from flowlib import data, metrics, steer
from flowlib.exact import GaussianMixture

TWO_BLOBS = GaussianMixture(
    [0.7, 0.3],
    [[-1.0, 0.5], [1.5, -0.5]],
    [[[0.30, 0.10], [0.10, 0.20]], [[0.15, -0.05], [-0.05, 0.40]]],
)


def _grid_moments(mixture: GaussianMixture, center, precision, strength, half_width=6.0, n=801):
    """Weights, means and covariances of each component of p * exp(lam r), by quadrature on a fine grid."""
    axis = torch.linspace(-half_width, half_width, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(axis, axis, indexing="ij")
    points = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    cell = (axis[1] - axis[0]) ** 2
    offset = points - torch.as_tensor(center, dtype=torch.float64)
    P = torch.as_tensor(precision, dtype=torch.float64)
    tilt = torch.exp(-0.5 * strength * ((offset @ P) * offset).sum(1))
    masses, means, covs = [], [], []
    for k in range(mixture.n_components):
        component = torch.distributions.MultivariateNormal(mixture.means[k], mixture.covs[k])
        density = mixture.weights[k] * component.log_prob(points).exp() * tilt
        mass = density.sum() * cell
        mean = (density[:, None] * points).sum(0) * cell / mass
        centred = points - mean
        cov = (density[:, None, None] * centred[:, :, None] * centred[:, None, :]).sum(0) * cell / mass
        masses.append(mass)
        means.append(mean)
        covs.append(cov)
    masses = torch.stack(masses)
    return masses / masses.sum(), torch.stack(means), torch.stack(covs)


@pytest.mark.parametrize(
    "precision",
    [[[2.0, 0.5], [0.5, 1.0]], [[1.0, 0.0], [0.0, 0.0]], [[0.5, 0.5], [0.5, 0.5]]],
    ids=["full rank", "one axis", "rank one, diagonal"],
)
def test_the_tilted_mixture_matches_numerical_integration(precision):
    center, strength = [1.0, 0.5], 1.5
    tilted = TWO_BLOBS.tilted(center, precision, strength)
    weights, means, covs = _grid_moments(TWO_BLOBS, center, precision, strength)
    assert torch.allclose(tilted.weights, weights, atol=1e-6)
    assert torch.allclose(tilted.means, means, atol=1e-6)
    assert torch.allclose(tilted.covs, covs, atol=1e-6)


def test_zero_strength_gives_the_mixture_back_and_a_flat_direction_is_untouched():
    same = TWO_BLOBS.tilted([3.0, -2.0], [[1.0, 0.2], [0.2, 1.0]], 0.0)
    for name in ("weights", "means", "covs"):
        assert torch.equal(getattr(same, name), getattr(TWO_BLOBS, name))
    independent = GaussianMixture([1.0], [[0.0, 0.0]], [[[1.0, 0.0], [0.0, 2.0]]])
    only_x = independent.tilted([1.0, 0.0], [[4.0, 0.0], [0.0, 0.0]], 1.0)
    assert float(only_x.covs[0, 1, 1]) == pytest.approx(2.0) and float(only_x.means[0, 1]) == pytest.approx(0.0)
    assert float(only_x.covs[0, 0, 0]) == pytest.approx(1 / (1 + 4.0))  # (1/1 + 4)^-1
    assert float(only_x.means[0, 0]) == pytest.approx(4.0 / 5.0)


def test_a_strong_tilt_moves_weight_to_the_favoured_mode_and_stays_exact_in_64_dimensions():
    mix = data.mixture("eight_gaussians")
    tilted = mix.tilted([2.0, 0.0], 1.0, 50.0)
    assert int(tilted.weights.argmax()) == int(((mix.means - torch.tensor([2.0, 0.0])).norm(dim=1)).argmin())
    assert float(tilted.weights.max()) > 0.99
    digits = data.digits_mixture()
    ink = torch.zeros(64, dtype=torch.float64)
    tilted_digits = digits.tilted(ink, 0.05, 1.0)
    assert tilted_digits.dim == 64 and math.isclose(float(tilted_digits.weights.sum()), 1.0, abs_tol=1e-9)
    assert torch.isfinite(tilted_digits.velocity(torch.randn(3, 64, dtype=torch.float64), 0.5)).all()


def test_bad_tilts_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="positive semi-definite"):
        TWO_BLOBS.tilted([0.0, 0.0], [[1.0, 0.0], [0.0, -1.0]], 1.0)
    with pytest.raises(ValueError, match="symmetric"):
        TWO_BLOBS.tilted([0.0, 0.0], [[1.0, 0.5], [0.0, 1.0]], 1.0)
    with pytest.raises(ValueError, match="strength must be >= 0"):
        TWO_BLOBS.tilted([0.0, 0.0], 1.0, -1.0)
    with pytest.raises(ValueError, match="strength must be a finite number"):
        TWO_BLOBS.tilted([0.0, 0.0], 1.0, float("nan"))
    with pytest.raises(ValueError, match=r"center must have shape \(2,\)"):
        TWO_BLOBS.tilted([0.0, 0.0, 0.0], 1.0, 1.0)
    with pytest.raises(ValueError, match=r"precision must have shape \(2, 2\)"):
        TWO_BLOBS.tilted([0.0, 0.0], [[1.0]], 1.0)
    with pytest.raises(ValueError, match="scalar precision must be >= 0"):
        TWO_BLOBS.tilted([0.0, 0.0], -2.0, 1.0)


def test_the_quadratic_reward_its_gradient_and_its_exact_mean():
    reward = steer.QuadraticReward([1.0, -1.0], [[2.0, 0.5], [0.5, 1.0]])
    x = torch.randn(50, 2, dtype=torch.float64)
    P = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    offset = x - torch.tensor([1.0, -1.0], dtype=torch.float64)
    assert torch.allclose(reward(x), -0.5 * ((offset @ P) * offset).sum(1))
    assert torch.allclose(steer.reward_gradient(reward, x), -offset @ P)
    tilted = reward.tilt(TWO_BLOBS, 2.0)
    monte_carlo = float(reward(tilted.sample(400_000, seed=0)).mean())
    assert reward.expected(tilted) == pytest.approx(monte_carlo, abs=3e-3)
    with pytest.raises(ValueError, match="coordinates"):
        reward(torch.zeros(4, 3))


def test_region_class_and_ink_rewards():
    disc = steer.RegionReward([0.0, 0.0], radius=1.0, sharpness=10.0)
    values = disc(torch.tensor([[0.0, 0.0], [3.0, 0.0]]))
    assert float(values[0]) > -1e-3 and float(values[1]) < -15
    with pytest.raises(ValueError, match="radius"):
        steer.RegionReward([0.0, 0.0], radius=-1.0)
    images = data.digits("heldout").images[:20]
    classifier = metrics.digits_classifier()
    for digit in (0, 7):
        rewards = steer.class_reward(classifier, digit)(images).detach()
        assert rewards.shape == (20,) and float(rewards.max()) <= 0
        labelled = data.digits("heldout").labels[:20] == digit
        if labelled.any():
            assert float(rewards[labelled].mean()) > float(rewards[~labelled].mean())
    with pytest.raises(ValueError, match="digit"):
        steer.class_reward(classifier, 10)
    assert float(steer.ink_reward(-torch.ones(2, 1, 8, 8)).max()) == 0.0
    assert float(steer.ink_reward(torch.ones(2, 1, 8, 8)).min()) == 1.0


def test_the_look_aheads_are_the_denoiser_and_the_jump_to_the_end():
    mix = data.mixture("eight_gaussians")
    x = mix.sample_marginal(30, 0.4, seed=1)
    denoised = steer.denoiser_lookahead(mix.velocity)(x, 0.4)
    assert torch.allclose(denoised, mix.denoiser(x, 0.4), atol=1e-10), "x + (1 - t) b_t(x) = E[x1 | x_t]"
    landed = steer.flowmap_lookahead(mix.flow_map)(x, 0.4)
    assert torch.allclose(landed, mix.flow_map(x, 0.4, 1.0))
    # the denoiser's look-ahead is the mean of the ends still possible: pulled towards the centre early on
    early = mix.sample_marginal(2000, 0.1, seed=2)
    assert steer.denoiser_lookahead(mix.velocity)(early, 0.1).norm(dim=1).mean() < 1.0
    assert steer.flowmap_lookahead(mix.flow_map)(early, 0.1).norm(dim=1).mean() > 1.7


@pytest.fixture(scope="module")
def tilt():
    mix = data.mixture("eight_gaussians")
    reward = steer.QuadraticReward([2.0, 0.0], 0.5)
    target = reward.tilt(mix, 2.0)
    return mix, reward, target


def test_importance_resampling_of_exact_one_step_samples_reaches_the_tilted_mixture(tilt):
    mix, reward, target = tilt
    result = steer.importance_resample(
        lambda z: mix.flow_map(z, 0.0, 1.0, steps_per_unit=64), reward, 2.0, n=2000, candidates=20_000, dim=2
    )
    assert result.nfe == 20_000 and 0 < result.ess < 20_000
    floor = metrics.sliced_w2(target.sample(2000, seed=10), target.sample(2000, seed=11))
    assert metrics.sliced_w2(result.samples, target.sample(2000, seed=12)) < 2.5 * floor
    assert float(reward(result.samples).mean()) == pytest.approx(reward.expected(target), abs=0.05)
    plain = mix.sample(2000, seed=3)
    assert metrics.sliced_w2(plain, target.sample(2000, seed=12)) > 4 * floor, "the tilt is not a small one"


def test_best_of_n_keeps_the_best_candidate_and_overshoots_the_tilt(tilt):
    mix, reward, target = tilt
    result = steer.best_of_n(lambda z: mix.flow_map(z, 0.0, 1.0, steps_per_unit=32), reward, 300, 8, dim=2)
    assert result.nfe == 2400 and result.samples.shape == (300, 2)
    assert float(reward(result.samples).mean()) > reward.expected(target), "no lambda: it maximises"


def test_smc_with_the_exact_map_targets_the_tilted_mixture(tilt):
    mix, reward, target = tilt

    def exact_map(x, s, t):
        return mix.flow_map(x, s, t, steps_per_unit=64)

    result = steer.smc(exact_map, reward, 2.0, torch.randn(2000, 2, dtype=torch.float64), steps=4, seed=0)
    assert result.nfe == 8000 and result.samples.shape == (2000, 2)
    floor = metrics.sliced_w2(target.sample(2000, seed=10), target.sample(2000, seed=11))
    assert metrics.sliced_w2(result.samples, target.sample(2000, seed=12)) < 2.5 * floor
    assert float(reward(result.samples).mean()) == pytest.approx(reward.expected(target), abs=0.05)


def test_guidance_at_zero_strength_is_the_plain_ode_and_raises_the_reward_otherwise(tilt):
    mix, reward, target = tilt
    noise = torch.randn(500, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    look = steer.denoiser_lookahead(mix.velocity)
    plain = steer.guided_sample(mix.velocity, look, reward, 0.0, noise, steps=50)
    x = noise
    for k in range(50):
        x = x + mix.velocity(x, torch.full((500,), k / 50, dtype=torch.float64)) / 50
    assert torch.allclose(plain.samples, x) and plain.nfe == 50 * 4 * 500
    guided = steer.guided_sample(mix.velocity, look, reward, 2.0, noise, steps=50)
    assert float(reward(guided.samples).mean()) > float(reward(plain.samples).mean()) + 0.2
    with pytest.raises(ValueError, match="strength"):
        steer.guided_velocity(mix.velocity, look, reward, -1.0)
    with pytest.raises(TypeError, match="lookahead"):
        steer.guided_velocity(mix.velocity, "denoiser", reward, 1.0)


def test_the_reference_for_a_non_quadratic_reward_uses_many_weighted_exact_draws():
    mix = data.mixture("eight_gaussians")
    disc = steer.RegionReward([0.0, 2.0], radius=0.8)
    reference = steer.reference_samples(mix, disc, 1.0, n=1000, candidates=50_000)
    assert reference.nfe == 0 and reference.ess > 5000
    assert float(disc(reference.samples).mean()) > float(disc(mix.sample(1000, seed=4)).mean())


def test_the_score_of_exact_samples_is_at_the_floor_and_of_the_untilted_data_far_off(tilt):
    mix, reward, target = tilt
    exact = steer.score(target.sample(3000, seed=5), target, reward)
    assert exact.sliced_w2 < 2 * exact.floor and exact.mode_error < 0.03
    assert exact.mean_reward == pytest.approx(exact.exact_reward, abs=0.05)
    untilted = steer.score(mix.sample(3000, seed=6), target, reward)
    assert untilted.sliced_w2 > 4 * untilted.floor and untilted.mode_error > 0.3
    shares = steer.mode_weights(target.sample(4000, seed=7), target)
    assert torch.allclose(shares, target.weights, atol=0.03) and float(shares.sum()) == pytest.approx(1.0)
    disc = steer.RegionReward([0.0, 2.0], radius=0.8)
    assert steer.score(mix.sample(100, seed=8), target, disc).exact_reward is None


# ---------------------------------------------------------------------------------------------- reward fine-tuning

REWARD = steer.QuadraticReward(center=[1.6, 1.6], precision=0.5)


@pytest.fixture(scope="module")
def small_base():
    """A quickly trained PSD map on the eight Gaussians (poor, but a flow map from fit with a record)."""
    return flowlib.fit("psd", "eight_gaussians", train_steps=40, seed=0, width=32, depth=2, progress=False, cache=False)


def _mean_reward(model, n=2000):
    noise = torch.randn(n, 2, generator=torch.Generator().manual_seed(3))
    return float(REWARD(steer.one_step(model)(noise)).mean())


def test_weighted_finetuning_trains_on_resampled_one_step_samples_and_raises_the_reward(small_base):
    tuned = steer.finetune(small_base, REWARD, 2.0, "weighted", 60, candidates=5000, progress=False, cache=False)
    record = tuned.record
    assert isinstance(record, steer.FinetuneRecord) and record.method == "weighted"
    assert record.candidates == 5000 and 1 < record.ess < 5000
    assert record.result.steps == 60 and record.seconds >= record.result.seconds
    assert _mean_reward(tuned) > _mean_reward(small_base) + 0.5
    base_weights = dict(small_base.named_parameters())
    assert any(not torch.equal(p, base_weights[k]) for k, p in tuned.named_parameters())  # trained, a new model


def test_direct_finetuning_collapses_toward_the_reward_maximiser_as_the_penalty_vanishes(small_base):
    def spread(model):
        noise = torch.randn(2000, 2, generator=torch.Generator().manual_seed(4))
        return float((steer.one_step(model)(noise) - REWARD.center.float()).norm(dim=1).mean())

    strong = steer.finetune(small_base, REWARD, 2.0, "direct", 80, penalty=10.0, progress=False, cache=False)
    weak = steer.finetune(small_base, REWARD, 2.0, "direct", 80, penalty=0.05, progress=False, cache=False)
    assert strong.record.penalty == 10.0 and weak.record.method == "direct"
    assert spread(weak) < 0.5 * spread(strong)
    assert spread(strong) < spread(small_base)


def test_reference_finetuning_trains_from_the_base_weights_on_the_target(small_base):
    target = REWARD.tilt(data.mixture("eight_gaussians"), 2.0)
    tuned = steer.finetune(small_base, REWARD, 2.0, "reference", 60, target=target, progress=False, cache=False)
    assert tuned.record.method == "reference" and tuned.record.ess is None
    assert _mean_reward(tuned) > _mean_reward(small_base) + 0.5


def test_finetune_rejects_bad_input_with_clear_errors(small_base):
    with pytest.raises(TypeError, match="base must be a flow map or a velocity returned by flowlib.fit"):
        steer.finetune(torch.nn.Linear(2, 2), REWARD, 1.0)
    with pytest.raises(ValueError, match=r"unknown method 'greedy'; valid values are \['direct', 'kl'"):
        steer.finetune(small_base, REWARD, 1.0, "greedy")
    with pytest.raises(ValueError, match="pass target="):
        steer.finetune(small_base, REWARD, 1.0, "reference")
    with pytest.raises(ValueError, match="strength must be >= 0"):
        steer.finetune(small_base, REWARD, -1.0)
    with pytest.raises(ValueError, match="penalty"):
        steer.finetune(small_base, REWARD, 1.0, "direct", penalty=0.0)
    with pytest.raises(ValueError, match="shape must be a tuple"):
        steer.finetune(small_base, REWARD, 1.0, shape=(2, -1))


def test_fit_can_start_from_a_model_and_says_when_it_does_not_fit(small_base):
    same = flowlib.fit(
        "psd", "eight_gaussians", 1, width=32, depth=2, lr=1e-12, init=small_base, progress=False, cache=False
    )
    x = torch.randn(64, 2)
    s, t = torch.zeros(64), torch.ones(64)
    with torch.no_grad():
        assert torch.allclose(same(x, s, t), small_base(x, s, t), atol=1e-5)
    with pytest.raises(ValueError, match="init must have the network these options build"):
        flowlib.fit("psd", "eight_gaussians", 1, width=64, depth=2, init=small_base, progress=False, cache=False)
    with pytest.raises(TypeError, match="init must be a model"):
        flowlib.fit("psd", "eight_gaussians", 1, init="psd", progress=False, cache=False)


def test_the_proximal_point_is_where_the_direct_objective_is_stationary():
    reward = steer.QuadraticReward(center=[1.0, -0.5], precision=[[1.0, 0.3], [0.3, 0.2]])
    x = torch.randn(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = reward.proximal(x, 2.0, 0.7).requires_grad_(True)
    objective = 2.0 * reward(y) - 0.35 * ((y - x) ** 2).sum(1)
    (gradient,) = torch.autograd.grad(objective.sum(), y)
    assert gradient.abs().max() < 1e-10
    assert torch.allclose(reward.proximal(x, 0.0, 0.7), x)
    isotropic = steer.QuadraticReward(center=[1.6, 1.6], precision=0.5)  # moves a share lam p / (beta + lam p) toward c
    assert torch.allclose(isotropic.proximal(x, 2.0, 1.0), (x + torch.tensor([1.6, 1.6], dtype=torch.float64)) / 2)
    with pytest.raises(ValueError, match="penalty"):
        reward.proximal(x, 1.0, 0.0)


def test_a_second_identical_finetune_loads_from_the_cache(small_base):
    first = steer.finetune(small_base, REWARD, 2.0, "direct", 5, progress=False)
    same_reward = steer.QuadraticReward(center=[1.6, 1.6], precision=0.5)  # another object, the same reward
    again = steer.finetune(small_base, same_reward, 2.0, "direct", 5, progress=False)
    moved = steer.QuadraticReward(center=[1.0, 1.6], precision=0.5)
    other = steer.finetune(small_base, moved, 2.0, "direct", 5, progress=False)
    assert not first.record.result.from_cache and again.record.result.from_cache
    assert not other.record.result.from_cache  # another reward is another model


# ---------------------------------------------------------------------------------------------- issue 30


def test_resampling_draws_in_proportion_to_the_weights():
    log_weights = torch.tensor([0.0, math.log(3.0), -math.inf])
    index = steer.resample(log_weights, 40_000, torch.Generator().manual_seed(0))
    counts = torch.bincount(index, minlength=3).double() / 40_000
    assert counts[2] == 0 and counts[1] == pytest.approx(0.75, abs=0.01)
    with pytest.raises(ValueError, match="n"):
        steer.resample(log_weights, 0)


def test_exact_guidance_is_the_tilted_velocity_and_lands_on_the_tilt(tilt):
    mix, reward, target = tilt
    noise = torch.randn(2000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    result = steer.exact_guidance(target, noise, 50)
    assert result.nfe == 0 and result.samples.shape == (2000, 2)
    floor = metrics.sliced_w2(target.sample(2000, seed=10), target.sample(2000, seed=11))
    assert metrics.sliced_w2(result.samples, target.sample(2000, seed=12)) < 2.5 * floor
    # the exact correction is (1 - t)/t grad log h_t: the tilted velocity minus the untilted one
    x, t = mix.sample_marginal(5, 0.5, seed=3), 0.5
    with torch.enable_grad():
        leaf = x.clone().requires_grad_(True)
        (grad_log_h,) = torch.autograd.grad(steer.exact_log_value(mix, reward, 2.0, leaf, t).sum(), leaf)
    correction = target.velocity(x, t) - mix.velocity(x, t)
    assert torch.allclose(correction, (1 - t) / t * grad_log_h, atol=1e-8)


def test_the_exact_value_is_the_posterior_average_of_the_tilt(tilt):
    mix, reward, _ = tilt
    x = mix.sample_marginal(4, 0.4, seed=5)
    ends = mix.posterior_sample(x.repeat_interleave(40_000, 0), 0.4, torch.Generator().manual_seed(2))
    monte_carlo = (2.0 * reward(ends)).exp().reshape(4, -1).mean(1).log()
    assert torch.allclose(steer.exact_log_value(mix, reward, 2.0, x, 0.4), monte_carlo, atol=0.03)
    at_data = mix.sample(3, seed=1)
    assert torch.allclose(steer.exact_log_value(mix, reward, 2.0, at_data, 1.0), 2.0 * reward(at_data), atol=1e-8)
    with pytest.raises(TypeError, match="QuadraticReward"):
        steer.exact_log_value(mix, steer.ink_reward, 1.0, x, 0.4)


def test_fmtt_with_the_exact_flow_map_samples_the_tilt_and_its_search_mode_seeks_reward(tilt):
    mix, reward, target = tilt

    def exact_map(x, s, t):
        return mix.flow_map(x, s, t, steps_per_unit=8)

    noise = torch.randn(1500, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    look = steer.flowmap_lookahead(exact_map)
    result = steer.fmtt(mix.velocity, look, reward, 2.0, noise, 20, seed=0)
    assert result.nfe == 20 * 4 * 1500 and 0 < result.ess <= 1500
    floor = metrics.sliced_w2(target.sample(1500, seed=10), target.sample(1500, seed=11))
    assert metrics.sliced_w2(result.samples, target.sample(1500, seed=12)) < 2.5 * floor
    assert float(reward(result.samples).mean()) == pytest.approx(reward.expected(target), abs=0.06)
    search = steer.fmtt(mix.velocity, look, reward, 2.0, noise, 10, mode="search", seed=0)
    assert search.ess is None and float(reward(search.samples).mean()) > reward.expected(target) + 0.1


def test_fmtt_with_the_denoiser_needs_its_weights_along_the_ode(tilt):
    mix, reward, target = tilt
    noise = torch.randn(1500, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    look = steer.denoiser_lookahead(mix.velocity)
    result = steer.fmtt(mix.velocity, look, reward, 2.0, noise, 10, weight_rule="along the ODE", seed=0)
    assert result.nfe == 10 * 4 * 1500, "the denoiser's forward pass gives the velocity: 3 + 1 per step"
    floor = metrics.sliced_w2(target.sample(1500, seed=10), target.sample(1500, seed=11))
    assert metrics.sliced_w2(result.samples, target.sample(1500, seed=12)) < 2.5 * floor
    with pytest.raises(ValueError, match="weight_rule"):
        steer.fmtt(mix.velocity, look, reward, 2.0, noise, 10, weight_rule="denoiser")
    with pytest.raises(ValueError, match="mode"):
        steer.fmtt(mix.velocity, look, reward, 2.0, noise, 10, mode="best")
    with pytest.raises(ValueError, match="noise_scale"):
        steer.fmtt(mix.velocity, look, reward, 2.0, noise, 10, noise_scale=-1)


def test_fk_steering_with_denoiser_potentials_targets_the_tilt_without_a_flow_map(tilt):
    mix, reward, target = tilt
    noise = torch.randn(2000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    result = steer.fk_steering(mix.velocity, steer.denoiser_lookahead(mix.velocity), reward, 2.0, noise, 40)
    assert result.nfe == 40 * 2000, "one evaluation per step: the denoiser's forward pass is the velocity's"
    floor = metrics.sliced_w2(target.sample(2000, seed=10), target.sample(2000, seed=11))
    assert metrics.sliced_w2(result.samples, target.sample(2000, seed=12)) < 3 * floor
    assert float(reward(result.samples).mean()) == pytest.approx(reward.expected(target), abs=0.06)


def test_noise_space_mala_accepts_some_moves_and_raises_the_reward(tilt):
    mix, reward, target = tilt

    def exact_map(x, s, t):
        return mix.flow_map(x, s, t, steps_per_unit=8)

    noise = torch.randn(500, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    result = steer.noise_space_mala(exact_map, reward, 2.0, noise, 20, step_size=0.1)
    assert 0.3 < result.acceptance < 1 and result.nfe == 3 * 21 * 500
    plain = float(reward(mix.flow_map(noise, 0.0, 1.0, steps_per_unit=8)).mean())
    assert float(reward(result.samples).mean()) > plain + 0.3
    with pytest.raises(ValueError, match="step_size"):
        steer.noise_space_mala(exact_map, reward, 2.0, noise, 5, step_size=0.0)


def test_kl_finetuning_moves_the_one_step_samples_toward_the_tilt(small_base):
    mix = data.mixture("eight_gaussians")
    tuned = steer.finetune(small_base, REWARD, 2.0, "kl", 60, log_density=mix.log_prob, lr=1e-3, progress=False,
                           cache=False)  # fmt: skip
    assert tuned.record.method == "kl" and len(tuned.record.losses) == 60
    assert _mean_reward(tuned) > _mean_reward(small_base) + 0.3
    with pytest.raises(ValueError, match="log_density"):
        steer.finetune(small_base, REWARD, 2.0, "kl", 5)


def test_a_velocity_is_fine_tuned_on_its_own_weighted_solver_samples():
    teacher = flowlib.fit("flow_matching", "eight_gaussians", 40, width=32, depth=2, progress=False, cache=False)
    tuned = steer.finetune(teacher, REWARD, 2.0, "weighted", 30, candidates=500, candidate_steps=4, progress=False,
                           cache=False)  # fmt: skip
    assert tuned.kind == "velocity" and tuned.record.candidates == 500 and 0 < tuned.record.ess <= 500
    with pytest.raises(ValueError, match="candidate_steps"):
        steer.finetune(teacher, REWARD, 2.0, "weighted", 5)
    with pytest.raises(ValueError, match="one-step jump"):
        steer.finetune(teacher, REWARD, 2.0, "direct", 5)
