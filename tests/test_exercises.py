"""The exercise checks pass a right answer and fail a wrong one with a hint (answers written independently here)."""

import math

import pytest
import torch

from flowlib import _answers, _grading, data, exercises, ode, steer
from flowlib.exact import GaussianMixture, LinearField


def test_check_stepper_measures_the_order(capsys):
    exercises.check_stepper(ode.heun_step, expected_order=2)
    assert "converges with order 2.0" in capsys.readouterr().out
    exercises.check_stepper(ode.midpoint_step, expected_order=2)
    exercises.check_stepper(ode.rk4_step, expected_order=4)
    with pytest.raises(AssertionError, match=r"measured order 1\.\d+, expected 2"):
        exercises.check_stepper(ode.euler_step, expected_order=2)
    assert exercises.measured_order(ode.euler_step) == pytest.approx(1.0, abs=0.2)
    assert exercises.measured_order(ode.rk4_step) == pytest.approx(4.0, abs=0.2)


def test_check_stepper_catches_a_slope_taken_at_the_wrong_time():
    """Chapter 1's planted bug: Heun's second slope evaluated at t instead of t + h is first order, and the
    default test field depends on time, so the check sees it (on an autonomous field it could not)."""

    def heun_with_a_stale_time(velocity, x, t, h):
        k1 = velocity(x, t)
        k2 = velocity(x + h * k1, t)
        return x + 0.5 * h * (k1 + k2)

    with pytest.raises(AssertionError, match=r"measured order \d\.\d+, expected 2"):
        exercises.check_stepper(heun_with_a_stale_time, expected_order=2)
    assert exercises.measured_order(heun_with_a_stale_time) < 1.5
    rotation = LinearField.rotation(0.5)  # autonomous: the stale time cannot show
    assert exercises.measured_order(heun_with_a_stale_time, rotation) == pytest.approx(2.0, abs=0.2)


def test_check_stepper_explains_a_stepper_that_returns_nonsense():
    with pytest.raises(AssertionError, match="finite x_next shaped like x"):
        exercises.check_stepper(lambda velocity, x, t, h: x * float("nan"), expected_order=1)
    with pytest.raises(TypeError, match="step must be a callable"):
        exercises.check_stepper("euler", expected_order=1)


def point_mass_velocity(x, t, mu):
    """Data at one point mu, linear path: x0 = (x - t mu)/(1 - t), so b_t(x) = mu - x0 = (mu - x)/(1 - t)."""
    return (mu - x) / (1 - t)


def test_check_point_mass_velocity(capsys):
    exercises.check_point_mass_velocity(point_mass_velocity)
    assert "matches the exact one" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="wrong at t = 0.3"):
        exercises.check_point_mass_velocity(lambda x, t, mu: mu - x)  # right at t = 0 only
    with pytest.raises(AssertionError, match="shaped like x"):
        exercises.check_point_mass_velocity(lambda x, t, mu: (mu - x)[:, :1])


def two_modes_velocity(x, t):
    """The 1D mixture's velocity from its parameters: posterior weights times each component's velocity."""
    weights, means, variance = torch.tensor([0.4, 0.6]), torch.tensor([-1.5, 1.5]), 0.09
    weights, means = weights.to(x.dtype), means.to(x.dtype)
    c = (1 - t) ** 2 + t**2 * variance  # the variance of a component at time t
    log_w = weights.log() - 0.5 * (x - t * means) ** 2 / c - 0.5 * math.log(c)
    posterior = torch.softmax(log_w, dim=1)
    per_component = means + (t * variance - (1 - t)) / c * (x - t * means)
    return (posterior * per_component).sum(1, keepdim=True)


def test_check_mixture_velocity(capsys):
    exercises.check_mixture_velocity(two_modes_velocity)
    assert "0.05, 0.5, 0.9 and 0.99" in capsys.readouterr().out

    def prior_weights(x, t):  # forgets that the posterior over components depends on x
        c = (1 - t) ** 2 + t**2 * 0.09
        means = torch.tensor([-1.5, 1.5], dtype=x.dtype)
        per_component = means + (t * 0.09 - (1 - t)) / c * (x - t * means)
        return (torch.tensor([0.4, 0.6], dtype=x.dtype) * per_component).sum(1, keepdim=True)

    with pytest.raises(AssertionError, match="off by up to .* at t = 0.05"):
        exercises.check_mixture_velocity(prior_weights)
    with pytest.raises(AssertionError, match=r"shape \(batch, 1\)"):
        exercises.check_mixture_velocity(lambda x, t: x[:, 0])


def test_check_time_grid(capsys):
    u = torch.linspace(0, 1, 9, dtype=torch.float64)
    exercises.check_time_grid(1 - (1 - u) ** 2)  # more steps near the data, where the sharp paths turn
    assert "8 heun steps" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="your grid has map error"):
        exercises.check_time_grid((u**2).tolist())  # more steps near the noise: worse than uniform
    with pytest.raises(AssertionError, match="start at 0 and end at 1"):
        exercises.check_time_grid([0.1, 0.5, 1.0])
    with pytest.raises(AssertionError, match="increase strictly"):
        exercises.check_time_grid([0.0, 0.5, 0.5, 1.0])


def test_check_average_velocity(capsys):
    mix = data.mixture("eight_gaussians")

    def average_velocity(x, s, t):
        if s == t:
            return mix.velocity(x, s)
        return (mix.flow_map(x, s, t) - x) / (t - s)

    exercises.check_average_velocity(average_velocity)
    assert "matches the oracle" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="wrong for s = 0.3, t = 0.9"):
        exercises.check_average_velocity(lambda x, s, t: mix.velocity(x, s))  # the tangent is not the average
    with pytest.raises(AssertionError, match="return the limit"):
        exercises.check_average_velocity(lambda x, s, t: (mix.flow_map(x, s, t) - x) / (t - s))


# ---------------------------------------------- hidden tests (grade_*): other cases, no library answer


def heun_written_out(velocity, x, t, h):
    slope = velocity(x, t)
    return x + h / 2 * (slope + velocity(x + h * slope, t + h))


def test_grade_stepper_tries_random_time_dependent_fields_and_refuses_the_library(capsys):
    _grading.grade_stepper(heun_written_out, expected_order=2, evaluations_per_step=2)
    assert "random time-dependent fields" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="flowlib.ode.heun_step itself"):
        _grading.grade_stepper(ode.heun_step, expected_order=2, evaluations_per_step=2)
    with pytest.raises(AssertionError, match="your code called flowlib.ode.heun_step"):
        _grading.grade_stepper(lambda v, x, t, h: ode.heun_step(v, x, t, h), 2, evaluations_per_step=2)
    with pytest.raises(AssertionError, match="evaluates the velocity 4 times per step"):
        _grading.grade_stepper(_two_half_steps, expected_order=2, evaluations_per_step=2)


def _two_half_steps(velocity, x, t, h):
    """Two Heun half steps: order 2, but four evaluations per step."""
    return heun_written_out(velocity, heun_written_out(velocity, x, t, h / 2), t + h / 2, h / 2)


def test_grade_velocities_refuse_the_mixture_oracle():
    _grading.grade_point_mass_velocity(point_mass_velocity)
    with pytest.raises(AssertionError, match="off by up to"):
        _grading.grade_point_mass_velocity(lambda x, t, mu: mu - x)
    _grading.grade_mixture_velocity(two_modes_velocity)
    mix = data.mixture("two_modes_1d")
    with pytest.raises(AssertionError, match="GaussianMixture.velocity"):
        _grading.grade_mixture_velocity(lambda x, t: mix.velocity(x, t))


def test_grade_time_grid_tries_other_step_counts():
    _grading.grade_time_grid(lambda steps: 1 - (1 - ode.uniform_grid(steps)) ** 2)
    with pytest.raises(AssertionError, match="asked for 4 steps"):
        _grading.grade_time_grid(lambda steps: 1 - (1 - ode.uniform_grid(8)) ** 2)


def test_grade_average_velocity_and_euler_residual():
    mix = data.mixture("eight_gaussians")

    def average_velocity(x, s, t):
        return mix.velocity(x, s) if s == t else (mix.flow_map(x, s, t) - x) / (t - s)

    _grading.grade_average_velocity(average_velocity)
    with pytest.raises(AssertionError, match="off by up to"):
        _grading.grade_average_velocity(lambda x, s, t: mix.velocity(x, s))

    def residual(velocity, x, s, t):
        slope = velocity(x, s)
        return (slope - velocity(x + (t - s) * slope, t)).norm(dim=1)

    exercises.check_euler_jump_residual(residual)
    _grading.grade_euler_jump_residual(residual)
    from flowlib import residuals
    from flowlib.exact import tangent_map

    with pytest.raises(AssertionError, match="lagrangian_residual"):
        _grading.grade_euler_jump_residual(lambda v, x, s, t: residuals.lagrangian_residual(tangent_map(v), v, x, s, t))
    with pytest.raises(AssertionError, match="off by up to"):
        exercises.check_euler_jump_residual(lambda v, x, s, t: (v(x, s) - v(x, t)).norm(dim=1))


def test_the_lsd_check_tells_a_stop_gradient_from_a_full_gradient():
    from flowlib import losses

    def no_stopgrad(model, x, s, t):
        end, d_end = model.jvp(x, s, t, dt=1.0)
        return (d_end - model.velocity(end, t)).pow(2).mean(1)

    exercises.check_lsd_without_stopgrad(no_stopgrad)
    _grading.grade_lsd_without_stopgrad(no_stopgrad)
    with pytest.raises(AssertionError, match="stop-gradient version's"):
        _grading.grade_lsd_without_stopgrad(lambda m, x, s, t: losses.lsd(m, m, x, s, t, reduction="none"))


@pytest.mark.parametrize(
    ("check", "grade", "private"),
    [
        ("check_euler_jump_residual", "grade_euler_jump_residual", "_grading._euler_jump_residual"),
        ("check_meanflow_target", "grade_meanflow_target", "exercises._meanflow_target"),
        ("check_lsd_without_stopgrad", "grade_lsd_without_stopgrad", "exercises._lsd_without_stopgrad"),
        ("check_proximal_point", "grade_proximal_point", "exercises._expected_proximal"),
    ],
)
def test_the_private_answers_of_the_checks_pass_nothing(check, grade, private):
    """The helpers that compute the answers the checks and hidden tests compare with; an answer calling one fails."""
    assert f"flowlib.{private}" in _answers.PRIVATE_ANSWERS
    module, name = {"exercises": exercises, "_grading": _grading}[private.split(".")[0]], private.split(".")[1]

    def copied(*args):
        return getattr(module, name)(*args)

    for run in (getattr(exercises, check), getattr(_grading, grade)):
        with pytest.raises(AssertionError, match=f"your code called flowlib.{private}"):
            run(copied)
    assert getattr(module, name).__code__.co_name == name, "the helper is restored afterwards"


def test_the_checks_and_the_hidden_tests_live_apart():
    """A reader's module holds the checks; the hidden tests and the machinery are private modules."""
    public = {name for name in vars(exercises) if not name.startswith("_")}
    assert {name for name in public if name.startswith("check_")} - {"check_callable"} == {
        name.replace("grade_", "check_") for name in vars(_grading) if name.startswith("grade_")
    }, "one check per hidden test"
    assert not any(name.startswith("grade_") for name in public), "no hidden test among the checks"
    assert not hasattr(exercises, "refuse_library_answer") and not hasattr(exercises, "PRIVATE_ANSWERS")


def test_an_unwritten_answer_gets_a_helpful_message():
    def my_heun_step(velocity, x, t, h):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match="my_heun_step is not written yet: replace `raise NotImplementedError"):
        exercises.check_stepper(my_heun_step, expected_order=2)


def test_forbidding_restores_the_library_and_rejects_unknown_names():
    with _answers.forbidding("flowlib.ode.heun_step"):
        with pytest.raises(AssertionError, match="your code called flowlib.ode.heun_step"):
            ode.heun_step(None, None, None, None)
    assert exercises.measured_order(ode.heun_step) == pytest.approx(2.0, abs=0.2)
    with pytest.raises(ValueError, match="has no attribute"):
        with _answers.forbidding("flowlib.ode.no_such_step"):
            pass


def test_every_way_of_reaching_the_library_answer_is_switched_off():
    """The hidden tests swap the function's code, so aliases, the STEPPERS table and bound methods fail too."""
    from flowlib.ode import heun_step as imported

    for cheat in (lambda v, x, t, h: ode.STEPPERS["heun"](v, x, t, h), lambda v, x, t, h: imported(v, x, t, h)):
        with pytest.raises(AssertionError, match="your code called flowlib.ode.heun_step"):
            _grading.grade_stepper(cheat, expected_order=2, evaluations_per_step=2)
    mix_1d = data.mixture("two_modes_1d")
    with pytest.raises(AssertionError, match="flowlib.exact.GaussianMixture.velocity itself"):
        _grading.grade_mixture_velocity(mix_1d.velocity)
    with pytest.raises(AssertionError, match="your code called flowlib.exact.GaussianMixture.denoiser"):
        _grading.grade_mixture_velocity(lambda x, t: (mix_1d.denoiser(x, t) - x) / (1 - t))
    assert exercises.measured_order(ode.STEPPERS["heun"]) == pytest.approx(2.0, abs=0.2), "restored afterwards"
    assert mix_1d.velocity(torch.zeros(2, 1), 0.5).shape == (2, 1)


def test_memorisation_ratio_check_and_hidden_test(capsys):
    def ratio(samples, train, heldout):  # written independently: one nearest neighbour per row, by loops of norms
        flat = train.reshape(train.shape[0], -1).double()

        def mean_nearest(points):
            rows = points.reshape(points.shape[0], -1).double()
            return torch.stack([(flat - row).norm(dim=1).min() for row in rows]).mean()

        return float(mean_nearest(samples) / mean_nearest(heldout))

    exercises.check_memorisation_ratio(ratio)
    _grading.grade_memorisation_ratio(ratio)
    assert "memorisation ratio matches" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="definition gives"):  # nearest held-out image instead of training
        exercises.check_memorisation_ratio(lambda samples, train, heldout: ratio(samples, heldout, heldout))
    from flowlib import metrics

    with pytest.raises(AssertionError, match="memorisation_ratio itself"):
        _grading.grade_memorisation_ratio(metrics.memorisation_ratio)
    with pytest.raises(AssertionError, match="your code called flowlib.metrics.memorisation_ratio"):
        _grading.grade_memorisation_ratio(lambda *args: metrics.memorisation_ratio(*args))


def test_slerp_check_and_hidden_test(capsys):
    def slerp(a, b, weights):  # written independently: rotate a towards b in the plane they span
        unit_a = a.flatten() / a.norm()
        other = b.flatten() - (b.flatten() @ unit_a) * unit_a
        unit_o = other / other.norm()
        theta = torch.atan2(b.flatten() @ unit_o, b.flatten() @ unit_a)
        out = []
        for w in torch.as_tensor(weights, dtype=a.dtype):
            radius = a.norm() * torch.sin((1 - w) * theta) / torch.sin(theta) + b.norm() * torch.sin(
                w * theta
            ) / torch.sin(theta) * torch.cos(theta)
            height = b.norm() * torch.sin(w * theta)
            out.append((radius * unit_a + height * unit_o).reshape(a.shape))
        return torch.stack(out)

    exercises.check_slerp(slerp)
    _grading.grade_slerp(slerp)
    assert "great circle" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="straight-line midpoint"):
        exercises.check_slerp(lambda a, b, w: torch.stack([(1 - wi) * a + wi * b for wi in w]))
    from flowlib import sampling

    with pytest.raises(AssertionError, match="slerp itself"):
        _grading.grade_slerp(sampling.slerp)
    with pytest.raises(AssertionError, match="not written yet"):
        exercises.check_slerp(lambda a, b, w: (_ for _ in ()).throw(NotImplementedError()))


def test_tilt_1d_check_and_hidden_test(capsys):
    def tilt(weights, means, variances, c, p, lam):  # written independently: Bayes' rule with a Gaussian "likelihood"
        if lam == 0:
            return weights, means, variances
        likelihood_variance = 1 / (lam * p)  # exp(-lam p (x - c)^2 / 2) is N(c; x, 1/(lam p)) up to a constant
        new_variances = variances * likelihood_variance / (variances + likelihood_variance)
        new_means = new_variances * (means / variances + c / likelihood_variance)
        evidence = torch.exp(-0.5 * (c - means) ** 2 / (variances + likelihood_variance)) / torch.sqrt(
            variances + likelihood_variance
        )
        new_weights = weights * evidence
        return new_weights / new_weights.sum(), new_means, new_variances

    exercises.check_tilt_1d(tilt)
    _grading.grade_tilt_1d(tilt)
    assert "closed form" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="weights"):  # forgot the leftover constant: weights unchanged
        exercises.check_tilt_1d(lambda w, m, v, c, p, lam: (w, *tilt(w, m, v, c, p, lam)[1:]))
    with pytest.raises(AssertionError, match="tilted"):
        _grading.grade_tilt_1d(
            lambda w, m, v, c, p, lam: (lambda t: (t.weights, t.means[:, 0], t.covs[:, 0, 0]))(
                GaussianMixture(w, m[:, None], v).tilted([c], [[p]], lam)
            )
        )


def test_proximal_point_check_and_hidden_test(capsys):
    def proximal(x, c, precision, lam, beta):  # written independently: gradient ascent to the stationary point
        y = x.clone().requires_grad_(True)
        optimiser = torch.optim.LBFGS([y], max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-14)

        def objective():
            optimiser.zero_grad()
            value = 0.5 * lam * (((y - c) @ precision) * (y - c)).sum() + 0.5 * beta * ((y - x) ** 2).sum()
            value.backward()
            return value

        optimiser.step(objective)
        return y.detach()

    exercises.check_proximal_point(proximal)
    _grading.grade_proximal_point(proximal)
    assert "maximise the reward minus the penalty" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="rewarding x only"):  # right for P = pI only
        exercises.check_proximal_point(
            lambda x, c, P, lam, beta: (beta * x + lam * P[0, 0] * c) / (beta + lam * P[0, 0])
        )
    with pytest.raises(AssertionError, match="QuadraticReward.proximal"):
        _grading.grade_proximal_point(lambda x, c, P, lam, beta: steer.QuadraticReward(c, P).proximal(x, lam, beta))
