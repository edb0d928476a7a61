"""The oracle is the book's ground truth, so it is tested against independent computations."""

import math

import pytest
import torch

from flowlib import data, exact, metrics
from flowlib.exact import GaussianMixture, LinearField, gaussian_flow_map

MIXTURES = ["eight_gaussians", "three_ellipses"]
MIX = data.mixture("eight_gaussians")


def mixture(name: str, interpolant: str = "linear") -> GaussianMixture:
    base = data.mixture(name)
    return GaussianMixture(base.weights, base.means, base.covs, interpolant=interpolant)


def points(n: int = 64, dim: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- velocity and denoiser
def test_monte_carlo_velocity_refuses_t_equal_one():
    with pytest.raises(ValueError, match=r"t must be a float in \[0, 1\)"):
        exact.monte_carlo_velocity(torch.zeros(5, 2), torch.zeros(1, 2), 1.0)


@pytest.mark.parametrize("interpolant", ["linear", "trigonometric"])
@pytest.mark.parametrize("t", [0.3, 0.6])
def test_velocity_matches_monte_carlo(interpolant, t):
    mix = mixture("eight_gaussians", interpolant)
    x = mix.sample_marginal(6, t, seed=5)
    estimate = exact.monte_carlo_velocity(mix.sample(400_000, seed=1), x, t, interpolant)
    assert torch.allclose(mix.velocity(x, t), estimate, atol=0.03)


@pytest.mark.parametrize("name", MIXTURES)
@pytest.mark.parametrize("interpolant", ["linear", "trigonometric"])
def test_velocity_solves_the_continuity_equation(name, interpolant):
    """d/dt log p_t + div b_t + b_t . grad log p_t = 0, with p_t and b_t both in closed form."""
    assert continuity_residual(mixture(name, interpolant), 0.55).abs().max() < 1e-6


def continuity_residual(oracle: object, t: float, h: float = 1e-5) -> torch.Tensor:
    """d/dt log p_t + div b_t + b_t . grad log p_t at 12 points of p_t, from an oracle's closed-form
    ``log_prob(x, t)`` and ``velocity(x, t)`` in 2D: zero where the two agree."""
    x = oracle.sample_marginal(12, t, seed=2).requires_grad_(True)
    dlogp_dt = (oracle.log_prob(x.detach(), t + h) - oracle.log_prob(x.detach(), t - h)) / (2 * h)
    score = torch.autograd.grad(oracle.log_prob(x, t).sum(), x)[0]
    velocity = oracle.velocity(x, t)
    divergence = sum(torch.autograd.grad(velocity[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(2))
    return dlogp_dt + divergence + (velocity * score).sum(1)


@pytest.mark.parametrize("interpolant", ["linear", "trigonometric"])
def test_single_gaussian_velocity_is_the_time_derivative_of_the_closed_form_map(interpolant):
    mean, cov = torch.tensor([0.5, -1.0]), torch.tensor([[0.5, 0.2], [0.2, 0.3]])
    mix = GaussianMixture([1.0], mean[None], cov[None], interpolant=interpolant)
    x, s, h = points(), 0.4, 1e-5
    derivative = (
        gaussian_flow_map(x, s, s + h, mean, cov, interpolant) - gaussian_flow_map(x, s, s - h, mean, cov, interpolant)
    ) / (2 * h)
    assert torch.allclose(mix.velocity(x, s), derivative, atol=1e-7)


def test_denoiser_relations_linear_interpolant():
    mix = mixture("three_ellipses")
    t = 0.7
    x = mix.sample_marginal(20, t, seed=3).requires_grad_(True)
    denoised = mix.denoiser(x, t)
    # D_t(x) = x + (1 - t) b_t(x) for the linear interpolant
    assert torch.allclose(denoised, x + (1 - t) * mix.velocity(x, t), atol=1e-10)
    # Tweedie: grad log p_t(x) = (beta_t D_t(x) - x) / alpha_t^2
    score = torch.autograd.grad(mix.log_prob(x, t).sum(), x)[0]
    assert torch.allclose(score, (t * denoised - x) / (1 - t) ** 2, atol=1e-8)


def test_velocity_at_the_ends_linear():
    mix = mixture("eight_gaussians")
    x = points()
    mean = (mix.weights[:, None] * mix.means).sum(0)
    assert torch.allclose(mix.velocity(x, 0.0), mean - x, atol=1e-12)  # b_0(x) = E[x1] - x
    assert torch.allclose(mix.velocity(x, 1.0), x, atol=1e-12)  # b_1(x) = x - E[x0 | x1 = x] = x


def test_log_prob_integrates_to_one():
    mix = mixture("eight_gaussians")
    g = torch.linspace(-4.5, 4.5, 301, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    grid = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    cell = (g[1] - g[0]) ** 2
    for t in (0.5, 1.0):
        assert float(mix.log_prob(grid, t).exp().sum() * cell) == pytest.approx(1.0, abs=2e-3)


# --------------------------------------------------------------------------- the oracle flow map
@pytest.mark.parametrize("name", MIXTURES)
def test_identity(name):
    mix = mixture(name)
    x = points()
    for t in (0.0, 0.37, 1.0):
        assert torch.equal(mix.flow_map(x, t, t), x)


@pytest.mark.parametrize("name", MIXTURES)
def test_composition(name):
    mix = mixture(name)
    x = points(200)
    s, u, t = 0.05, 0.537, 0.97  # u deliberately off the solver's grid
    direct = mix.flow_map(x, s, t)
    composed = mix.flow_map(mix.flow_map(x, s, u), u, t)
    assert (direct - composed).norm(dim=1).max() < 1e-5


@pytest.mark.parametrize("name", MIXTURES)
def test_inverse(name):
    mix = mixture(name)
    x = points(200)
    forward = mix.flow_map(x, 0.0, 1.0)
    assert (mix.flow_map(forward, 1.0, 0.0) - x).norm(dim=1).max() < 1e-5
    x_late = mix.sample_marginal(200, 0.8, seed=4)  # points where the flow actually goes at t = 0.8
    back = mix.flow_map(x_late, 0.8, 0.15)  # s > t works too
    assert (mix.flow_map(back, 0.15, 0.8) - x_late).norm(dim=1).max() < 1e-5


def test_per_sample_times():
    mix = mixture("eight_gaussians")
    x = points(5)
    s = torch.tensor([0.0, 0.2, 0.5, 0.9, 0.3], dtype=torch.float64)
    t = torch.tensor([1.0, 0.6, 0.5, 0.1, 0.31], dtype=torch.float64)
    batched = mix.flow_map(x, s, t)
    one_by_one = torch.cat([mix.flow_map(x[i : i + 1], float(s[i]), float(t[i])) for i in range(5)])
    assert torch.allclose(batched, one_by_one, atol=1e-7)


def test_tangent_condition():
    """(X_{s,s+h}(x) - x) / h -> b_s(x), with an error of order h."""
    mix = mixture("three_ellipses")
    x, s = points(50), 0.45
    errors = []
    for h in (1e-1, 1e-2, 1e-3):
        slope = (mix.flow_map(x, s, s + h) - x) / h
        errors.append(float((slope - mix.velocity(x, s)).norm(dim=1).max()))
    assert errors[2] < 1e-2 * 5
    assert errors[1] / errors[2] == pytest.approx(10, rel=0.3)  # first order in h
    assert errors[0] > errors[1] > errors[2]


@pytest.mark.parametrize("interpolant", ["linear", "trigonometric"])
@pytest.mark.parametrize("cov", [0.3, [[0.5, 0.2], [0.2, 0.3]]])
def test_single_gaussian_closed_form_matches_the_oracle(interpolant, cov):
    mean = torch.tensor([1.0, -0.5], dtype=torch.float64)
    cov_t = torch.as_tensor(cov, dtype=torch.float64)
    mix = GaussianMixture(
        [1.0], mean[None], (cov_t if cov_t.ndim == 2 else cov_t * torch.eye(2))[None], interpolant=interpolant
    )
    x = points(100)
    for s, t in [(0.0, 1.0), (0.3, 0.8), (0.9, 0.2)]:
        closed = gaussian_flow_map(x, s, t, mean, cov, interpolant)
        assert (closed - mix.flow_map(x, s, t)).norm(dim=1).max() < 1e-6


def test_single_gaussian_closed_form_linear_isotropic_formula():
    """X_{s,t}(x) = m_t + (sigma_t / sigma_s)(x - m_s), sigma_t^2 = (1-t)^2 + t^2 sigma^2."""
    mu, sigma2 = torch.tensor([2.0, 1.0], dtype=torch.float64), 0.25
    x, s, t = points(10), 0.2, 0.9
    sd = lambda r: math.sqrt((1 - r) ** 2 + r**2 * sigma2)  # noqa: E731
    expected = t * mu + sd(t) / sd(s) * (x - s * mu)
    assert torch.allclose(gaussian_flow_map(x, s, t, mu, sigma2), expected, atol=1e-12)


def test_pushforward_of_noise_is_the_mixture():
    mix = mixture("three_ellipses")
    n = 2000
    noise = points(n, seed=11)
    pushed = mix.flow_map(noise, 0.0, 1.0)
    value = metrics.energy_distance(pushed, mix.sample(n, seed=12))
    floors = [metrics.energy_distance(mix.sample(n, seed=20 + k), mix.sample(n, seed=12)) for k in range(4)]
    # at the floor: no worse than the worst of four fresh data sets, and far from a wrong map
    assert value < 1.25 * max(floors)
    assert metrics.energy_distance(noise, mix.sample(n, seed=12)) > 10 * max(floors)


def test_oracle_is_accurate_to_about_1e6():
    mix = mixture("eight_gaussians")
    x = points(300)
    default = mix.flow_map(x, 0.0, 1.0)
    # RK4 with 4x the steps has 1/256 of the error, so the difference is the default's error to within 0.4%
    fine = mix.flow_map(x, 0.0, 1.0, steps_per_unit=1024)
    assert (default - fine).norm(dim=1).max() < 1e-6


def test_trigonometric_oracle_pushes_noise_to_data():
    mix = mixture("eight_gaussians", "trigonometric")
    noise = points(2000, seed=1)
    pushed = mix.flow_map(noise, 0.0, 1.0)
    value = metrics.energy_distance(pushed, mix.sample(2000, seed=2))
    floor = metrics.energy_distance(mix.sample(2000, seed=3), mix.sample(2000, seed=2))
    assert value < 2 * floor + 1e-3


def test_flow_map_takes_any_solver_of_ode():
    mix = mixture("eight_gaussians")
    x = points(50)
    rk4 = mix.flow_map(x, 0.1, 0.9)
    heun = mix.flow_map(x, 0.1, 0.9, solver="heun")
    assert (heun - rk4).norm(dim=1).max() < 1e-3  # second order with 205 steps: close, not equal
    assert not torch.equal(heun, rk4)
    euler = mix.flow_map(x, 0.1, 0.9, steps_per_unit=8, solver="euler")
    assert (euler - rk4).norm(dim=1).max() > 10 * (heun - rk4).norm(dim=1).max()
    with pytest.raises(ValueError, match="unknown solver"):
        mix.flow_map(x, 0.1, 0.9, solver="rk45")


def test_image_shaped_points_give_the_same_answers_as_flat_ones():
    """A 4-D mixture evaluated on (B, 1, 2, 2) points: the same numbers, returned in the points' shape."""
    generator = torch.Generator().manual_seed(0)
    means = torch.randn(3, 4, dtype=torch.float64, generator=generator)
    mix = GaussianMixture([0.2, 0.3, 0.5], means, [0.1, 0.2, 0.3])
    flat = torch.randn(6, 4, dtype=torch.float64, generator=generator)
    images = flat.reshape(6, 1, 2, 2)
    t = torch.rand(6, dtype=torch.float64, generator=generator)
    for method in ("velocity", "denoiser"):
        out = getattr(mix, method)(images, t)
        assert out.shape == images.shape, method
        torch.testing.assert_close(out.reshape(6, 4), getattr(mix, method)(flat, t), rtol=0, atol=0)
    torch.testing.assert_close(mix.posterior(images, t), mix.posterior(flat, t), rtol=0, atol=0)
    torch.testing.assert_close(mix.log_prob(images, 0.7), mix.log_prob(flat, 0.7), rtol=0, atol=0)
    jumped = mix.flow_map(images, 0.2, t)
    assert jumped.shape == images.shape
    torch.testing.assert_close(jumped.reshape(6, 4), mix.flow_map(flat, 0.2, t), rtol=0, atol=1e-12)
    assert torch.equal(mix.flow_map(images, 0.4, 0.4), images)
    with pytest.raises(ValueError, match="4 features"):
        mix.velocity(torch.zeros(2, 1, 3, 3), 0.5)


def test_an_empty_batch_gives_an_empty_answer():
    """fit asks a teacher about the diagonal rows of a batch only, which may be none."""
    mix = data.mixture("eight_gaussians")
    empty = torch.zeros(0, 2, dtype=torch.float64)
    assert mix.velocity(empty, torch.zeros(0, dtype=torch.float64)).shape == (0, 2)
    assert mix.denoiser(empty, 0.5).shape == (0, 2)


def test_velocity_and_flow_map_run_on_the_points_device_in_their_dtype(device):
    mix = mixture("three_ellipses")
    x = points(32).to(device)
    t = torch.full((32,), 0.4, dtype=torch.float64, device=device)
    velocity = mix.velocity(x, t)
    assert velocity.device.type == device.type and velocity.dtype == torch.float64
    torch.testing.assert_close(velocity.cpu(), mix.velocity(x.cpu(), 0.4))
    single = mix.velocity(x.float(), 0.4)
    assert single.dtype == torch.float32 and single.device.type == device.type
    jumped = mix.flow_map(x.float(), 0.0, 0.5, steps_per_unit=32)
    assert jumped.device.type == device.type and jumped.dtype == torch.float32
    torch.testing.assert_close(jumped.cpu(), mix.flow_map(x.cpu().float(), 0.0, 0.5, steps_per_unit=32))


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


def test_tangent_map_is_one_euler_step_of_any_length():
    jump = exact.tangent_map(MIX.velocity)
    x = points(20)
    s, t = torch.full((20,), 0.2, dtype=torch.float64), torch.full((20,), 0.9, dtype=torch.float64)
    torch.testing.assert_close(jump(x, s, t), x + 0.7 * MIX.velocity(x, s))
    assert torch.equal(jump(x, 0.5, 0.5), x)  # identity holds
    assert (jump(jump(x, 0.2, 0.5), 0.5, 0.9) - jump(x, 0.2, 0.9)).norm(dim=1).mean() > 0.05  # composition fails
    with pytest.raises(TypeError, match="velocity must be callable"):
        exact.tangent_map("b")


# --------------------------------------------------------------------------- linear fields
def test_linear_field_flow_map_is_the_matrix_exponential():
    field = LinearField.rotation(0.25)
    x = points(20)
    quarter = field.flow_map(x, 0.0, 1.0)  # a quarter turn: (x, y) -> (-y, x)
    assert torch.allclose(quarter, torch.stack([-x[:, 1], x[:, 0]], 1), atol=1e-12)


@pytest.mark.parametrize("field", [LinearField.rotation(), LinearField.shear(), LinearField.spiral()])
def test_linear_field_properties(field):
    x = points(30)
    s, u, t, h = 0.1, 0.45, 0.9, 1e-6
    assert torch.allclose(field.flow_map(field.flow_map(x, s, u), u, t), field.flow_map(x, s, t), atol=1e-12)
    assert torch.allclose(field.flow_map(field.flow_map(x, s, t), t, s), x, atol=1e-12)
    derivative = (field.flow_map(x, s, s + h) - field.flow_map(x, s, s - h)) / (2 * h)
    assert torch.allclose(derivative, field.velocity(x, s), atol=1e-7)


# --------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors():
    mix = mixture("eight_gaussians")
    with pytest.raises(ValueError, match="2 features"):
        mix.velocity(torch.zeros(4, 3), 0.5)
    with pytest.raises(ValueError, match=r"t must lie in \[0.0, 1.0\]"):
        mix.velocity(torch.zeros(4, 2), 1.2)
    with pytest.raises(ValueError, match="s must lie"):
        mix.flow_map(torch.zeros(4, 2), -0.5, 0.5)
    with pytest.raises(ValueError, match="NaN"):
        mix.flow_map(torch.full((4, 2), float("nan")), 0.0, 0.5)
    with pytest.raises(TypeError, match="torch.Tensor"):
        mix.velocity([[0.0, 0.0]], 0.5)
    with pytest.raises(ValueError, match="positive definite"):
        GaussianMixture([1.0], [[0.0, 0.0]], [[[1.0, 0.0], [0.0, -1.0]]])
    with pytest.raises(ValueError, match="weights must have shape"):
        GaussianMixture([0.5, 0.5, 0.1], [[0.0, 0.0], [1.0, 1.0]], 0.1)
    with pytest.raises(ValueError, match="covs must be"):
        GaussianMixture([0.5, 0.5], [[0.0, 0.0], [1.0, 1.0]], torch.ones(3, 2, 2))
    with pytest.raises(ValueError, match="square"):
        LinearField([[1.0, 2.0]])
    with pytest.raises(ValueError, match="unknown interpolant"):
        GaussianMixture([1.0], [[0.0]], 1.0, interpolant="spline")


def test_posterior_samples_average_to_the_denoiser_and_are_the_data_at_t_0():
    from flowlib import data, metrics

    mix = data.mixture("eight_gaussians")
    x = mix.sample_marginal(4, 0.5, seed=0)
    ends = mix.posterior_sample(x.repeat_interleave(20_000, 0), 0.5, torch.Generator().manual_seed(1))
    assert torch.allclose(ends.reshape(4, -1, 2).mean(1), mix.denoiser(x, 0.5), atol=0.03)
    at_noise = mix.posterior_sample(torch.zeros(4000, 2, dtype=torch.float64), 0.0, torch.Generator().manual_seed(2))
    floor = metrics.sliced_w2(mix.sample(4000, seed=3), mix.sample(4000, seed=4))
    assert metrics.sliced_w2(at_noise, mix.sample(4000, seed=3)) < 2.5 * floor
    assert torch.allclose(mix.posterior_sample(x, 1.0), x, atol=1e-12), "at t = 1 the point is its own end"


# ------------------------------------------------------------------ the checkerboard's exact oracle
@pytest.mark.parametrize("interpolant", ["linear", "trigonometric"])
@pytest.mark.parametrize("t", [0.3, 0.55, 0.9])
def test_checkerboard_velocity_solves_the_continuity_equation(interpolant, t):
    """The closed-form p_t and b_t of uniform squares agree: d/dt log p_t + div b_t + b_t . grad log p_t = 0."""
    board = exact.UniformSquares(data.exact_checkerboard().corners, 1.0, interpolant)
    assert continuity_residual(board, t).abs().max() < 1e-6


@pytest.mark.parametrize("t", [0.0, 0.3, 0.6])
def test_checkerboard_velocity_matches_monte_carlo(t):
    board = data.exact_checkerboard()
    x = board.sample_marginal(6, t, seed=5)
    estimate = exact.monte_carlo_velocity(board.sample(400_000, seed=1), x, t)
    assert torch.allclose(board.velocity(x, t), estimate, atol=0.03)


def test_checkerboard_marginal_is_normalised_and_the_ends_are_the_limits():
    board = data.exact_checkerboard()
    axis = torch.linspace(-6, 6, 601, dtype=torch.float64)
    xx, yy = torch.meshgrid(axis, axis, indexing="xy")
    grid = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    for t in (0.0, 0.5, 0.9):
        assert abs(float(board.log_prob(grid, t).exp().sum() * (axis[1] - axis[0]) ** 2) - 1) < 1e-3
    x = torch.tensor([[0.5, 0.5], [-3.0, 7.0], [60.0, -45.0]], dtype=torch.float64)
    centre = (board.corners + 0.5).mean(0)
    assert torch.allclose(board.velocity(x, 0.0), centre - x)  # b_0(x) = E[x_1] - x
    assert torch.allclose(board.velocity(x, 1.0), x)  # b_1(x) = x - E[x_0]
    far = board.denoiser(x, 0.999)  # far in the tails: still a point of the board, not NaN
    assert torch.isfinite(far).all() and (far.abs() <= 2).all()
    assert torch.allclose(far[0], x[0] / 0.999, atol=1e-6)  # well inside a square: the untruncated mean x / beta_t


def test_checkerboard_oracle_pushes_noise_to_the_data_and_composes():
    board = data.exact_checkerboard()
    noise = points(2000, seed=1)
    pushed = board.flow_map(noise, 0.0, 1.0)
    assert (board.log_prob(pushed) == -math.inf).float().mean() < 0.01  # the ends lie on the dark squares
    value = metrics.energy_distance(pushed, data.sample("checkerboard", 2000, seed=2).double())
    floor = metrics.energy_distance(board.sample(2000, seed=3), data.sample("checkerboard", 2000, seed=2).double())
    assert value < 2 * floor + 1e-3
    x = noise[:200]
    through = board.flow_map(board.flow_map(x, 0.2, 0.6), 0.6, 0.9)
    assert (through - board.flow_map(x, 0.2, 0.9)).norm(dim=1).max() < 1e-6


def test_uniform_squares_refuse_bad_parameters():
    with pytest.raises(ValueError, match="corners must have shape"):
        exact.UniformSquares(torch.zeros(3), 1.0)
    with pytest.raises(ValueError, match="side must be a finite number > 0"):
        exact.UniformSquares(torch.zeros(3, 2), 0.0)
    with pytest.raises(ValueError, match="x"):
        data.exact_checkerboard().velocity(torch.zeros(4, 3), 0.5)
