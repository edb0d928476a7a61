r"""Steering a generative model toward a reward: rewards, look-aheads and samplers (chapters 12 and 13).

The target of every method here is the **tilted distribution**

.. math:: \tilde p(x) \propto p(x)\, e^{\lambda r(x)},

the data distribution reweighted by a reward :math:`r` at strength :math:`\lambda \ge 0`. For a Gaussian
mixture and a quadratic reward it is again a Gaussian mixture
(:meth:`flowlib.exact.GaussianMixture.tilted`), so every sampler below can be scored against the exact answer.

* Rewards: :class:`QuadraticReward` (exact tilts), :class:`RegionReward` (a smooth disc, not quadratic),
  :func:`class_reward` and :func:`ink_reward` for digits. A reward maps points ``(batch, ...)`` to ``(batch,)``.
* Look-aheads — where a point :math:`x_t` on the path is headed: :func:`denoiser_lookahead`, the posterior mean
  :math:`E[x_1 \mid x_t]` (blurry early on: the average of every end still possible), and
  :func:`flowmap_lookahead`, the flow map's jump :math:`X_{t,1}(x_t)` (where *this* deterministic path lands).
  Neither is the posterior over ends; chapter 12 says what that means for a value function.
* Samplers, each returning a :class:`Steered` (samples, network evaluations, seconds): :func:`best_of_n` and
  :func:`importance_resample` on one-step samples, :func:`guided_sample` (gradient guidance through a
  look-ahead) and :func:`smc` (sequential Monte Carlo along the path with look-ahead potentials).

Example:
    >>> import torch
    >>> from flowlib import data, steer
    >>> mix = data.mixture("eight_gaussians")
    >>> reward = steer.QuadraticReward(center=[2.0, 0.0], precision=1.0)
    >>> target = reward.tilt(mix, strength=3.0)       # exact p~, a GaussianMixture
    >>> result = steer.importance_resample(lambda z: mix.flow_map(z, 0.0, 1.0), reward, 3.0,
    ...                                    n=500, candidates=5000, dim=2, seed=0)
    >>> result.samples.shape, result.nfe
    (torch.Size([500, 2]), 5000)
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from flowlib import metrics, sampling
from flowlib._validate import as_points, check_callable, check_choice, check_positive, check_positive_int
from flowlib.exact import ArrayLike, GaussianMixture
from flowlib.fitting import METHODS, FitRecord, _fingerprint, defaults, fit
from flowlib.flowmap import FlowMap, VelocityModel
from flowlib.nets import detached
from flowlib.train import train

Reward = Callable[[torch.Tensor], torch.Tensor]
Lookahead = Callable[[torch.Tensor, float], torch.Tensor]


# ---------------------------------------------------------------------------------------------- rewards


class QuadraticReward:
    r"""The quadratic reward :math:`r(x) = -\tfrac12 (x - c)^\top P (x - c)`, whose tilts are exact.

    Args:
        center: ``(d,)`` the point :math:`c` the reward prefers (a float: the same in every coordinate).
        precision: ``(d, d)`` symmetric positive semi-definite :math:`P`, or a float :math:`p \ge 0` for
            :math:`P = pI`. A rank-deficient :math:`P` rewards some directions only.
    """

    def __init__(self, center: ArrayLike, precision: ArrayLike = 1.0) -> None:
        self.center = torch.as_tensor(center, dtype=torch.float64)
        self.precision = torch.as_tensor(precision, dtype=torch.float64)

    def _parameters(self, dim: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.center.expand(dim) if self.center.ndim == 0 else self.center
        P = self.precision * torch.eye(dim, dtype=torch.float64) if self.precision.ndim == 0 else self.precision
        if c.shape != (dim,) or P.shape != (dim, dim):
            raise ValueError(f"the reward is {tuple(c.shape)}-dimensional but the points have {dim} coordinates")
        return c.to(like), P.to(like)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, d)`` or images → rewards ``(batch,)`` in ``x``'s dtype."""
        as_points(x, "x")
        flat = x.reshape(x.shape[0], -1)
        c, P = self._parameters(flat.shape[1], flat)
        offset = flat - c
        return -0.5 * ((offset @ P) * offset).sum(1)

    def tilt(self, mixture: GaussianMixture, strength: float) -> GaussianMixture:
        r"""The exact :math:`\tilde p \propto p\, e^{\lambda r}` (:meth:`~flowlib.exact.GaussianMixture.tilted`)."""
        return mixture.tilted(self.center, self.precision, strength)

    def proximal(self, x: torch.Tensor, strength: float, penalty: float) -> torch.Tensor:
        r"""The direct method's optimum: :math:`\arg\max_y \lambda r(y) - \frac\beta2\|y - x\|^2`.

        Setting the gradient to zero, :math:`\lambda P (c - y) = \beta (y - x)`, so
        :math:`y = (\beta I + \lambda P)^{-1}(\beta x + \lambda P c)`: each point moves toward :math:`c` along
        the rewarded directions, by a share :math:`\lambda p / (\beta + \lambda p)` when :math:`P = pI`.
        This is the exact optimum of :func:`finetune`'s ``"direct"`` method applied to the base's samples.

        Args:
            x: ``(n, d)`` points (e.g. the base map's one-step samples).
            strength: :math:`\lambda \ge 0`.
            penalty: :math:`\beta > 0`.

        Returns:
            ``(n, d)`` in ``x``'s dtype.
        """
        as_points(x, "x")
        lam, beta = _check_strength(strength), check_positive(penalty, "penalty")
        flat = x.reshape(x.shape[0], -1)
        c, P = self._parameters(flat.shape[1], flat)
        system = beta * torch.eye(flat.shape[1], dtype=flat.dtype) + lam * P
        right = beta * flat + lam * (P @ c)
        return torch.linalg.solve(system, right.T).T.reshape(x.shape)

    def expected(self, mixture: GaussianMixture) -> float:
        r"""The exact mean reward under a mixture.

        :math:`E[r] = \sum_k \pi_k\, (-\tfrac12)[\operatorname{tr}(P\Sigma_k) + (\mu_k - c)^\top P (\mu_k - c)]`.
        """
        c, P = self._parameters(mixture.dim, mixture.means)
        offset = mixture.means - c
        per_component = -0.5 * (torch.einsum("de,ked->k", P, mixture.covs) + ((offset @ P) * offset).sum(1))
        return float((mixture.weights * per_component).sum())


class RegionReward:
    r"""A smooth reward for being inside a disc: :math:`r(x) = \log \sigma\big(k\,(\rho - \|x - c\|)\big)`.

    Near 0 inside the disc of radius :math:`\rho` around :math:`c`, falling linearly (slope :math:`k`) outside.
    Not quadratic, so its tilt has no closed form; chapter 12 measures against a fine reference instead
    (:func:`reference_samples`).

    Args:
        center: ``(d,)`` the disc's centre.
        radius: :math:`\rho > 0`.
        sharpness: :math:`k > 0`.
    """

    def __init__(self, center: ArrayLike, radius: float, sharpness: float = 4.0) -> None:
        self.center = torch.as_tensor(center, dtype=torch.float64)
        self.radius = check_positive(radius, "radius")
        self.sharpness = check_positive(sharpness, "sharpness")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, d)`` → ``(batch,)``."""
        as_points(x, "x")
        flat = x.reshape(x.shape[0], -1)
        distance = (flat - self.center.to(flat)).norm(dim=1)
        return torch.nn.functional.logsigmoid(self.sharpness * (self.radius - distance))


def class_reward(classifier: torch.nn.Module, digit: int) -> Reward:
    r"""A digits reward: the classifier's log-probability of a class, :math:`r(x) = \log p_\phi(y \mid x)`.

    Args:
        classifier: e.g. :func:`flowlib.metrics.digits_classifier` (logits ``(batch, 10)``).
        digit: 0-9.
    """
    if isinstance(digit, bool) or not isinstance(digit, int) or not 0 <= digit <= 9:
        raise ValueError(f"digit must be an int from 0 to 9, got {digit!r}")

    def reward(x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(classifier(x), dim=1)[:, digit].to(x.dtype)

    return reward


def ink_reward(x: torch.Tensor) -> torch.Tensor:
    r"""A digits reward that is not a class: the share of ink, :math:`r(x) = \operatorname{mean}_i (x_i + 1)/2`.

    Pixels are in [-1, 1] with -1 the background, so 0 is a blank image and 1 a black one. ``(batch, ...)`` →
    ``(batch,)``.
    """
    as_points(x, "x")
    return ((x.reshape(x.shape[0], -1) + 1) / 2).mean(1)


def reward_gradient(reward: Reward, x: torch.Tensor) -> torch.Tensor:
    r""":math:`\nabla_x r(x)` by automatic differentiation; ``x`` ``(batch, ...)`` → the same shape."""
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(True)
        (gradient,) = torch.autograd.grad(reward(leaf).sum(), leaf)
    return gradient


# ---------------------------------------------------------------------------------------------- look-aheads


def denoiser_lookahead(velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Lookahead:
    r"""The posterior-mean look-ahead of a velocity (linear interpolant): :math:`x_t + (1 - t)\, b_t(x_t)`.

    Because :math:`x_t = (1 - t) x_0 + t x_1`, :math:`x_1 = x_t + (1 - t)(x_1 - x_0)`, and :math:`b_t` is the
    posterior mean of :math:`x_1 - x_0`. One network evaluation, differentiable. For a mixture, this equals
    ``mixture.denoiser`` (tested).

    Args:
        velocity: ``velocity(x, t)`` with ``t`` a ``(batch,)`` tensor (a trained velocity, a flow map's diagonal,
            or ``mixture.velocity``).
    """
    check_callable(velocity, "velocity", "velocity(x, t)")

    def lookahead(x: torch.Tensor, t: float) -> torch.Tensor:
        times = torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device)
        return x + (1 - float(t)) * velocity(x, times)

    lookahead.velocity = velocity  # samplers that also need b_t(x) read it off the look-ahead's forward pass
    return lookahead


def flowmap_lookahead(flow_map: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> Lookahead:
    r"""The flow map's look-ahead :math:`X_{t,1}(x_t)`: where this point's own path lands, in one evaluation.

    Args:
        flow_map: ``flow_map(x, s, t)`` with ``(batch,)`` times (a trained :class:`~flowlib.flowmap.FlowMap`
            or ``mixture.flow_map``).
    """
    check_callable(flow_map, "flow_map", "flow_map(x, s, t)")

    def lookahead(x: torch.Tensor, t: float) -> torch.Tensor:
        start = torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device)
        return flow_map(x, start, torch.ones_like(start))

    return lookahead


FlowMapFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def one_step(flow_map: FlowMapFn) -> Callable[[torch.Tensor], torch.Tensor]:
    r"""The one-step sampler of a flow map: noise ``(n, ...)`` → :math:`X_{0,1}(\text{noise})`, without gradients.

    A trained :class:`~flowlib.flowmap.FlowMap` runs in its own dtype and device and returns the noise's dtype
    (:func:`flowlib.nets.detached`); ``mixture.flow_map`` works too. This is the ``generate`` that
    :func:`best_of_n` and :func:`importance_resample` take.
    """
    check_callable(flow_map, "flow_map", "flow_map(x, s, t)")
    call = detached(flow_map) if isinstance(flow_map, torch.nn.Module) else flow_map

    def generate(noise: torch.Tensor) -> torch.Tensor:
        start = torch.zeros(noise.shape[0], dtype=noise.dtype, device=noise.device)
        with torch.no_grad():
            return call(noise, start, torch.ones_like(start))

    return generate


# ---------------------------------------------------------------------------------------------- samplers


@dataclass
class Steered:
    """What a steering sampler returns.

    Attributes:
        samples: ``(n, ...)`` the steered samples.
        nfe: network evaluations spent in all (forward passes of the generator, look-ahead and gradients,
            a backward pass counted as two; see each sampler).
        seconds: wall-clock time.
        ess: for the weighted samplers, the effective sample size of the final weights (else ``None``).
    """

    samples: torch.Tensor
    nfe: int
    seconds: float
    ess: float | None = None


def _noise(n: int, dim: int | tuple[int, ...], seed: int | None, dtype: torch.dtype) -> torch.Tensor:
    shape = (n, dim) if isinstance(dim, int) else (n, *dim)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return torch.randn(shape, generator=generator, dtype=dtype)


def _check_strength(strength: float) -> float:
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength):
        raise ValueError(f"strength must be a finite number >= 0, got {strength!r}")
    if strength < 0:
        raise ValueError(f"strength must be >= 0, got {strength}")
    return float(strength)


def effective_sample_size(log_weights: torch.Tensor) -> float:
    r"""Kish's effective sample size :math:`(\sum w)^2 / \sum w^2` of unnormalised log-weights ``(n,)``."""
    w = torch.softmax(log_weights.double(), 0)
    return float(1.0 / (w * w).sum())


def resample(log_weights: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Multinomial resampling: ``n`` indices drawn with replacement, index :math:`i` with probability
    :math:`w_i / \sum_j w_j`, :math:`w_i = e^{\ell_i}` for the log-weights :math:`\ell` ``(m,)``.

    After resampling every kept particle has the same weight; a particle of large weight is copied several
    times, one of small weight is dropped. Every weighted sampler of :mod:`flowlib.steer` resamples with this.

    Returns:
        ``(n,)`` int64 indices on the log-weights' device.
    """
    check_positive_int(n, "n")
    probabilities = torch.softmax(log_weights.double(), 0)
    return torch.multinomial(probabilities.cpu(), n, replacement=True, generator=generator).to(log_weights.device)


def best_of_n(
    generate: Callable[[torch.Tensor], torch.Tensor],
    reward: Reward,
    n: int,
    candidates: int,
    dim: int | tuple[int, ...],
    seed: int | None = 0,
    nfe_per_sample: int = 1,
    dtype: torch.dtype = torch.float64,
) -> Steered:
    r"""For each of ``n`` outputs draw ``candidates`` samples and keep the one with the highest reward.

    Not a sampler of :math:`\tilde p`: as ``candidates`` grows it concentrates on the reward's maximum over the
    support of :math:`p` (it has no :math:`\lambda`). It costs ``n * candidates * nfe_per_sample`` evaluations.

    Args:
        generate: noise ``(m, *dim)`` → samples, e.g. a one-step map ``lambda z: model(z, 0, 1)``.
        reward: ``r(x)``, ``(m, ...)`` → ``(m,)``.
        n: outputs.
        candidates: draws per output.
        dim: the noise's shape per sample (an int for points).
        seed: seed of the noise.
        nfe_per_sample: network evaluations per call of ``generate`` per sample (1 for a one-step map).
        dtype: the noise's dtype.
    """
    check_callable(generate, "generate", "generate(noise)")
    check_positive_int(n, "n")
    check_positive_int(candidates, "candidates")
    start = time.perf_counter()
    with torch.no_grad():
        samples = generate(_noise(n * candidates, dim, seed, dtype))
        scores = reward(samples).reshape(n, candidates)
    best = scores.argmax(1) + candidates * torch.arange(n)
    return Steered(samples[best], n * candidates * nfe_per_sample, time.perf_counter() - start)


def importance_resample(
    generate: Callable[[torch.Tensor], torch.Tensor],
    reward: Reward,
    strength: float,
    n: int,
    candidates: int,
    dim: int | tuple[int, ...],
    seed: int | None = 0,
    nfe_per_sample: int = 1,
    dtype: torch.dtype = torch.float64,
) -> Steered:
    r"""Sampling importance resampling: ``candidates`` draws of :math:`p` weighted by :math:`e^{\lambda r(x)}`,
    ``n`` of them drawn with replacement in proportion to their weights.

    If ``generate`` samples :math:`p` exactly (an exact one-step map pushes noise to :math:`p`), the result
    tends to :math:`\tilde p` as ``candidates`` grows; its effective sample size (``Steered.ess``) says how many
    distinct draws the weights really use. Costs ``candidates * nfe_per_sample`` evaluations.

    Args:
        generate: noise ``(m, *dim)`` → samples of :math:`p`.
        reward: ``r(x)``.
        strength: :math:`\lambda \ge 0`.
        n: samples returned.
        candidates: draws of :math:`p`.
        dim: the noise's shape per sample.
        seed: seed of the noise and of the resampling.
        nfe_per_sample: network evaluations per sample of ``generate``.
        dtype: the noise's dtype.
    """
    check_callable(generate, "generate", "generate(noise)")
    lam = _check_strength(strength)
    check_positive_int(n, "n")
    check_positive_int(candidates, "candidates")
    start = time.perf_counter()
    with torch.no_grad():
        draws = generate(_noise(candidates, dim, seed, dtype))
        log_weights = lam * reward(draws).double()
    generator = torch.Generator().manual_seed(seed + 1) if seed is not None else None
    picked = resample(log_weights, n, generator)
    return Steered(
        draws[picked], candidates * nfe_per_sample, time.perf_counter() - start, effective_sample_size(log_weights)
    )


def guided_velocity(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    lookahead: Lookahead,
    reward: Reward,
    strength: float,
    anneal: bool = False,
    t_min: float = 1e-2,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    r"""The plug-in guided velocity :math:`\tilde b_t(x) = b_t(x) + \frac{1 - t}{t}\, \lambda_t \nabla_x r(L_t(x))`.

    For the linear interpolant the velocity of the exact tilted marginals is
    :math:`b_t + \frac{1 - t}{t}\nabla \log h_t` with :math:`h_t(x) = E[e^{\lambda r(x_1)} \mid x_t = x]`
    (the score of :math:`\tilde p_t = p_t h_t / Z`, converted to a velocity). Plug-in guidance replaces
    :math:`\log h_t` by :math:`\lambda_t r(L_t(x))`, the reward at a look-ahead :math:`L_t` — exact only when
    the end of the path given :math:`x_t` is certain. With ``anneal=False``, :math:`\lambda_t = \lambda`; the
    factor :math:`(1 - t)/t` then needs a look-ahead whose gradient vanishes as :math:`t \to 0`, as the
    denoiser's does (at :math:`t = 0` it is the data mean, whatever :math:`x`), and is capped at
    :math:`(1 - t_{\min})/t_{\min}`. A flow map's look-ahead keeps an :math:`O(1)` gradient at :math:`t = 0`
    (:math:`\lambda r(X_{t,1})` is the log-ratio of the tilt pulled back along the ODE, not :math:`\log h_t`),
    and the factor blows it up; ``anneal=True`` ramps the tilt along the path, :math:`\lambda_t = \lambda t`,
    so the correction becomes :math:`\lambda (1 - t) \nabla_x r(L_t(x))`: :math:`\lambda` times the gradient at
    the noise, zero at the data. Annealing is a heuristic, not derived from either family of tilted marginals.

    Args:
        velocity: ``velocity(x, t)``, ``t`` a ``(batch,)`` tensor.
        lookahead: :func:`denoiser_lookahead` or :func:`flowmap_lookahead` (differentiable in ``x``).
        reward: ``r(x)``, differentiable.
        strength: :math:`\lambda \ge 0`.
        anneal: ramp the strength, :math:`\lambda_t = \lambda t`.
        t_min: where the factor :math:`(1 - t)/t` stops growing (without annealing).

    Returns:
        ``guided(x, t)`` with the velocity's signature.
    """
    check_callable(velocity, "velocity", "velocity(x, t)")
    check_callable(lookahead, "lookahead", "lookahead(x, t)")
    lam = _check_strength(strength)
    t_min = check_positive(t_min, "t_min")

    def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        times = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[0])
        t0 = float(times[0])
        with torch.no_grad():
            drift = velocity(x, times)
        if lam == 0:
            return drift
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            (gradient,) = torch.autograd.grad(reward(lookahead(leaf, t0)).sum(), leaf)
        factor = lam * (1 - t0) if anneal else lam * (1 - t0) / max(t0, t_min)
        return drift + factor * gradient

    return guided


def guided_sample(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    lookahead: Lookahead,
    reward: Reward,
    strength: float,
    noise: torch.Tensor,
    steps: int,
    anneal: bool = False,
    nfe_per_step: int = 4,
    t_min: float = 1e-2,
) -> Steered:
    r"""Integrate :func:`guided_velocity` from noise with ``steps`` Euler steps.

    Evaluations: each step pays the velocity (one forward pass) and the look-ahead's gradient (a forward and a
    backward pass, counted as three); ``nfe_per_step`` (default 4) is that total for look-aheads that do not
    share the velocity's forward pass.

    Args:
        velocity: ``velocity(x, t)``.
        lookahead: a look-ahead ``L(x, t)``.
        reward: ``r(x)``.
        strength: :math:`\lambda`.
        noise: ``(n, ...)`` starting points at t = 0.
        steps: Euler steps from 0 to 1.
        anneal: ramp the strength along the path (see :func:`guided_velocity`).
        nfe_per_step: evaluations counted per step and sample.
        t_min: see :func:`guided_velocity`.
    """
    as_points(noise, "noise")
    check_positive_int(steps, "steps")
    field = guided_velocity(velocity, lookahead, reward, strength, anneal, t_min)
    start = time.perf_counter()
    x = noise
    for k in range(steps):
        t = torch.full((x.shape[0],), k / steps, dtype=x.dtype, device=x.device)
        x = (x + field(x, t) / steps).detach()
    return Steered(x, steps * nfe_per_step * noise.shape[0], time.perf_counter() - start)


def smc(
    flow_map: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    reward: Reward,
    strength: float,
    noise: torch.Tensor,
    steps: int,
    seed: int | None = 0,
    resample_below: float = 0.5,
) -> Steered:
    r"""Sequential Monte Carlo along the path, with the flow map as look-ahead and as transition.

    Particles start as noise at :math:`t_0 = 0`. At each grid time :math:`t_k = k/K` a particle's look-ahead
    :math:`\hat x_1 = X_{t_k,1}(x_{t_k})` gives its potential :math:`G_k = e^{\lambda r(\hat x_1)}`; its weight is
    multiplied by :math:`G_k / G_{k-1}`, the particles are resampled when the effective sample size falls below
    ``resample_below`` of their number, and each moves to :math:`x_{t_{k+1}} = (1 - t_{k+1})\,z + t_{k+1}\,\hat x_1`
    with fresh noise :math:`z`. With an exact map this transition keeps the marginal :math:`p_{t_{k+1}}` (the
    interpolant of an independent noise and a sample of :math:`p`), and the product of the weight increments
    telescopes to the last potential, the reward of the sample itself, so the weighted particles are a consistent
    estimate of :math:`\tilde p` (exact as the particles grow) whatever the intermediate potentials; good
    look-aheads only lower the variance. A final resampling returns unweighted samples. Costs ``steps`` jumps
    per particle.

    Args:
        flow_map: ``flow_map(x, s, t)`` with ``(batch,)`` times.
        reward: ``r(x)``.
        strength: :math:`\lambda \ge 0`.
        noise: ``(n, ...)`` the particles at t = 0.
        steps: grid times :math:`K` (the number of jumps to t = 1).
        seed: seed of the fresh noise and of the resampling.
        resample_below: resample when the ESS is below this share of the particles.
    """
    check_callable(flow_map, "flow_map", "flow_map(x, s, t)")
    lam = _check_strength(strength)
    as_points(noise, "noise")
    check_positive_int(steps, "steps")
    if not 0 < resample_below <= 1:
        raise ValueError(f"resample_below must be in (0, 1], got {resample_below}")
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    n = noise.shape[0]
    start_time = time.perf_counter()
    x = noise
    log_weights = torch.zeros(n, dtype=torch.float64)
    previous = torch.zeros(n, dtype=torch.float64)
    with torch.no_grad():
        for k in range(steps):
            t = k / steps
            ahead = flow_map(x, torch.full((n,), t, dtype=x.dtype), torch.ones(n, dtype=x.dtype))
            potential = lam * reward(ahead).double()
            log_weights += potential - previous
            previous = potential
            last = k == steps - 1
            if last or effective_sample_size(log_weights) < resample_below * n:
                index = resample(log_weights, n, generator)
                ahead, previous = ahead[index], previous[index]
                log_weights = torch.zeros(n, dtype=torch.float64)
            if last:
                x = ahead
            else:
                t_next = (k + 1) / steps
                fresh = torch.randn(x.shape, generator=generator, dtype=torch.float64).to(x)
                x = (1 - t_next) * fresh + t_next * ahead
    return Steered(x, steps * n, time.perf_counter() - start_time)


def reference_samples(
    mixture: GaussianMixture, reward: Reward, strength: float, n: int, candidates: int = 200_000, seed: int = 0
) -> Steered:
    r"""A fine reference for :math:`\tilde p` when it has no closed form: importance resampling of exact draws.

    ``candidates`` exact samples of the mixture, weighted by :math:`e^{\lambda r}`, ``n`` drawn in proportion.
    Accurate when the effective sample size of the weights (``Steered.ess``) is much larger than ``n``; ``nfe``
    is 0 (no network is evaluated).
    """
    lam = _check_strength(strength)
    check_positive_int(n, "n")
    check_positive_int(candidates, "candidates")
    start = time.perf_counter()
    draws = mixture.sample(candidates, seed=seed)
    log_weights = lam * reward(draws).double()
    picked = resample(log_weights, n, torch.Generator().manual_seed(seed + 1))
    return Steered(draws[picked], 0, time.perf_counter() - start, effective_sample_size(log_weights))


# ---------------------------------------------------------------------------------------------- the exact answers


def exact_guidance(target: GaussianMixture, noise: torch.Tensor, steps: int) -> Steered:
    r"""Guidance with the exact correction: Euler steps of the tilted mixture's own velocity :math:`\tilde b_t`.

    For the linear path the interpolant of :math:`\tilde p` has the velocity
    :math:`\tilde b_t = b_t + \frac{1 - t}{t} \nabla \log h_t`, :math:`h_t(x) = E[e^{\lambda r(x_1)} \mid x_t = x]`:
    guidance done right. When :math:`\tilde p` is itself a Gaussian mixture (a mixture tilted by a quadratic reward,
    :meth:`QuadraticReward.tilt`) that velocity is known in closed form, so this is what every plug-in guidance
    (:func:`guided_sample`) approximates, at no network cost (``nfe`` is 0). Its only error is Euler's.

    Args:
        target: the exact tilted mixture.
        noise: ``(n, d)`` points at t = 0.
        steps: Euler steps from 0 to 1.
    """
    check_positive_int(steps, "steps")
    start = time.perf_counter()
    samples = sampling.sample(target.velocity, noise.double(), steps, solver="euler").to(noise.dtype)
    return Steered(samples, 0, time.perf_counter() - start)


def exact_log_value(
    mixture: GaussianMixture, reward: QuadraticReward, strength: float, x: torch.Tensor, t: float
) -> torch.Tensor:
    r"""The exact log-value :math:`\log h_t(x) = \log E[e^{\lambda r(x_1)} \mid x_t = x]` (mixture, quadratic reward).

    The tilted marginals are :math:`\tilde p_t = p_t h_t / Z` with :math:`Z = E_p[e^{\lambda r}]`, so
    :math:`\log h_t = \log \tilde p_t - \log p_t + \log Z`; and
    :math:`\log Z = \log p(y) + \lambda r(y) - \log \tilde p(y)` at any point :math:`y` (at t = 1,
    :math:`h_1 = e^{\lambda r}`). This is what a look-ahead's
    :math:`\lambda r(L_t(x))` stands in for.

    Args:
        mixture: the data mixture :math:`p`.
        reward: a :class:`QuadraticReward`.
        strength: :math:`\lambda \ge 0`.
        x: ``(n, d)`` points at time ``t``.
        t: the time, in [0, 1].

    Returns:
        ``(n,)`` float64.
    """
    lam = _check_strength(strength)
    if not isinstance(reward, QuadraticReward):
        raise TypeError(f"exact_log_value needs a QuadraticReward (its tilt is exact), got {type(reward).__name__}")
    target = reward.tilt(mixture, lam)
    y = mixture.means[:1]
    log_z = mixture.log_prob(y) + lam * reward(y) - target.log_prob(y)
    x64 = x.double()
    return target.log_prob(x64, t) - mixture.log_prob(x64, t) + log_z


def posterior_lookahead(mixture: GaussianMixture, seed: int | None = 0) -> Lookahead:
    r"""The exact posterior look-ahead of a mixture: one end :math:`x_1 \sim p(x_1 \mid x_t)` per point.

    Unlike the denoiser (the posterior's mean) and the flow map (the end of this point's ODE path), its samples
    average to the value: :math:`E[e^{\lambda r(L_t(x))}] = h_t(x)`. Stochastic flow maps learn to draw it
    (Meta Flow Maps, Diamond Maps). See :meth:`flowlib.exact.GaussianMixture.posterior_sample`.
    """
    generator = torch.Generator().manual_seed(seed) if seed is not None else None

    def lookahead(x: torch.Tensor, t: float) -> torch.Tensor:
        return mixture.posterior_sample(x, t, generator=generator)

    return lookahead


# ---------------------------------------------------------------------------------------------- tilted SDEs


def _lookahead_and_gradient(
    lookahead: Lookahead, reward: Reward, x: torch.Tensor, t: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The look-ahead's reward ``(n,)``, its gradient in x and the look-ahead (a forward and a backward pass)."""
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(True)
        ahead = lookahead(leaf, t)
        value = reward(ahead)
        (gradient,) = torch.autograd.grad(value.sum(), leaf)
    return value.detach(), gradient, ahead.detach()


def _velocity_of(lookahead: Lookahead, velocity: Callable, x: torch.Tensor, t: float, ahead: torch.Tensor):
    """The velocity at x and the evaluations it cost: read off a denoiser look-ahead's forward pass when it is
    built on ``velocity`` (:math:`D_t = x + (1 - t) b_t`), else one evaluation.
    """
    if getattr(lookahead, "velocity", None) == velocity and t < 1:  # == : bound methods are made afresh
        return (ahead - x) / (1 - t), 0
    with torch.no_grad():
        return velocity(x, torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)), 1


def _particles(
    velocity: object, lookahead: object, strength: float, noise: torch.Tensor, steps: int, seed: int | None
) -> tuple[float, torch.Generator | None, int, float]:
    r"""The checks and set-up the particle samplers share: the strength, the generator of their Brownian increments
    and resampling (on the noise's device), the number of particles and the step :math:`h = 1/\text{steps}`.
    """
    check_callable(velocity, "velocity", "velocity(x, t)")
    check_callable(lookahead, "lookahead", "lookahead(x, t)")
    lam = _check_strength(strength)
    as_points(noise, "noise")
    check_positive_int(steps, "steps")
    generator = torch.Generator(device=noise.device).manual_seed(seed) if seed is not None else None
    return lam, generator, noise.shape[0], 1.0 / steps


def fmtt(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    lookahead: Lookahead,
    reward: Reward,
    strength: float,
    noise: torch.Tensor,
    steps: int,
    *,
    mode: str = "sample",
    weight_rule: str = "flow map",
    noise_scale: float = 1.0,
    keep: float = 0.25,
    resample_below: float = 0.5,
    seed: int | None = 0,
) -> Steered:
    r"""Flow-map trajectory tilting (FMTT, Sabour et al. 2025): a tilted SDE along the path, with importance weights.

    The intermediate targets tilt the path's marginals by the look-ahead reward, ramped up in time:
    :math:`q_t(x) \propto p_t(x)\, e^{\phi_t(x)}` with :math:`\phi_t(x) = \lambda t\, r(L_t(x))`, so :math:`q_0` is the
    noise and :math:`q_1 = \tilde p`. Each particle takes Euler-Maruyama steps (:func:`flowlib.sampling.sde_step`) of

    .. math:: dx = \big[b_t + \epsilon_t(\nabla \log p_t + \nabla \phi_t)\big]\,dt + \sqrt{2\epsilon_t}\,dW,
        \qquad \epsilon_t = c\,(1 - t),

    the flow plus Langevin dynamics toward :math:`q_t`. The flow carries :math:`p_t` along, not :math:`q_t`: the
    particles lag behind the change of :math:`\phi_t` along the ODE's paths, and a log-weight :math:`A` corrects it,
    :math:`dA = (\partial_t \phi_t + b_t \cdot \nabla \phi_t)\,dt`. For the flow map's look-ahead the Eulerian rule
    :math:`\partial_t X_{t,1} + (\nabla X_{t,1})\, b_t = 0` (chapter 5) removes the second term's work:
    :math:`dA = \lambda\, r(X_{t,1}(x_t))\,dt`, the look-ahead reward integrated along the trajectory, which the steps
    have already computed (``weight_rule="flow map"``, the paper's Proposition 2.2; integrated here by the
    trapezoid rule, whose right end is the next step's look-ahead). Any other look-ahead needs the
    change of :math:`\phi` along the ODE, :math:`\phi_{t+h}(x + h\,b_t(x)) - \phi_t(x)`, one more look-ahead per step
    (``weight_rule="along the ODE"``, this book's discretisation for the denoiser).

    ``mode="sample"`` resamples (:func:`resample`) when the effective sample size falls below ``resample_below`` of
    the particles, and once at the end: exact as the particles grow, with an exact look-ahead and its rule.
    ``mode="search"`` drops the weights: at every step the ``keep`` share of particles with the highest look-ahead
    reward is copied over the rest (the noise then separates the copies) — it seeks reward, not :math:`\tilde p`.

    Evaluations per particle and step: the look-ahead and its gradient (a forward and a backward pass, counted as
    three), the velocity (one; none for a :func:`denoiser_lookahead` of the same velocity, whose forward pass gives
    :math:`b_t`) and, for ``"along the ODE"``, one more look-ahead.

    Args:
        velocity: ``velocity(x, t)``, ``t`` a ``(batch,)`` tensor (a flow map's diagonal or a velocity model).
        lookahead: a differentiable look-ahead ``L(x, t)`` (:func:`flowmap_lookahead`, :func:`denoiser_lookahead`).
        reward: ``r(x)``, differentiable.
        strength: :math:`\lambda \ge 0`.
        noise: ``(n, ...)`` particles at t = 0 (also the number returned).
        steps: Euler-Maruyama steps from 0 to 1.
        mode: ``"sample"`` or ``"search"``.
        weight_rule: ``"flow map"`` or ``"along the ODE"``.
        noise_scale: :math:`c \ge 0` in :math:`\epsilon_t = c(1 - t)`.
        keep: the share of particles kept at each step of ``"search"``.
        resample_below: resample when the ESS is below this share of the particles (``"sample"``).
        seed: seed of the Brownian increments and the resampling.
    """
    lam, generator, n, h = _particles(velocity, lookahead, strength, noise, steps, seed)
    if mode not in ("sample", "search"):
        raise ValueError(f"mode must be 'sample' or 'search', got {mode!r}")
    if weight_rule not in ("flow map", "along the ODE"):
        raise ValueError(f"weight_rule must be 'flow map' or 'along the ODE', got {weight_rule!r}")
    if isinstance(noise_scale, bool) or not isinstance(noise_scale, (int, float)) or noise_scale < 0:
        raise ValueError(f"noise_scale must be a number >= 0, got {noise_scale!r}")
    if not 0 < keep <= 1 or not 0 < resample_below <= 1:
        raise ValueError(f"keep and resample_below must be in (0, 1], got {keep} and {resample_below}")
    x, log_weights, evaluations = noise, torch.zeros(n, dtype=torch.float64, device=noise.device), 0
    start_time = time.perf_counter()
    for k in range(steps):
        t = k * h
        value, gradient, ahead = _lookahead_and_gradient(lookahead, reward, x, t)
        b, spent = _velocity_of(lookahead, velocity, x, t, ahead)
        evaluations += 3 + spent
        if mode == "search" and k > 0:
            best = value.argsort(descending=True)[: max(1, round(keep * n))]
            index = best[torch.arange(n, device=best.device) % best.numel()]
            x, b, gradient, value = x[index], b[index], gradient[index], value[index]
        if mode == "sample" and weight_rule == "flow map":
            # the reward integrated by the trapezoid rule: this end of the last step, then the start of this one
            if k > 0:
                log_weights += 0.5 * lam * h * value.double()
                if effective_sample_size(log_weights) < resample_below * n:
                    index = resample(log_weights, n, generator)
                    x, b, gradient, value = x[index], b[index], gradient[index], value[index]
                    log_weights = torch.zeros_like(log_weights)
            log_weights += 0.5 * lam * h * value.double()
        elif mode == "sample":
            with torch.no_grad():
                later = reward(lookahead(x + h * b, t + h)).double()
            log_weights += lam * ((t + h) * later - t * value.double())
            evaluations += 1
        x = sampling.sde_step(b, x, t, h, noise_scale * (1 - t), generator, extra_drift=lam * t * gradient).detach()
        if mode == "sample" and weight_rule != "flow map" and effective_sample_size(log_weights) < resample_below * n:
            x = x[resample(log_weights, n, generator)]
            log_weights = torch.zeros_like(log_weights)
    ess = None
    if mode == "sample":
        if weight_rule == "flow map":
            with torch.no_grad():
                log_weights += 0.5 * lam * h * reward(x).double()  # at t = 1 the look-ahead is the point itself
        ess = effective_sample_size(log_weights)
        x = x[resample(log_weights, n, generator)]
    return Steered(x, evaluations * n, time.perf_counter() - start_time, ess)


def fk_steering(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    lookahead: Lookahead,
    reward: Reward,
    strength: float,
    noise: torch.Tensor,
    steps: int,
    *,
    noise_scale: float = 1.0,
    resample_below: float = 0.5,
    seed: int | None = 0,
) -> Steered:
    r"""Sequential Monte Carlo with look-ahead potentials and moves of the base SDE (twisted SMC, FK steering).

    Particles move by the untilted SDE (:func:`flowlib.sampling.sde_step` with :math:`\epsilon_t = c(1 - t)`), which
    keeps the path's marginals :math:`p_t`. At each grid time a particle's potential is
    :math:`\phi_k = \lambda r(L_{t_k}(x_{t_k}))` and its log-weight grows by :math:`\phi_k - \phi_{k-1}`; after the
    last step the potential is the reward itself, :math:`\lambda r(x_1)`, so the increments telescope and the
    weighted particles estimate :math:`\tilde p` consistently whatever the look-ahead: a good look-ahead only keeps
    the weights even (Wu et al. 2023; Singhal et al. 2025). With :func:`denoiser_lookahead` of the same velocity this
    needs no flow map and one evaluation per step (the look-ahead's forward pass gives :math:`b_t`); with a flow
    map's look-ahead, two.

    Args:
        velocity: ``velocity(x, t)``.
        lookahead: a look-ahead ``L(x, t)``.
        reward: ``r(x)``.
        strength: :math:`\lambda \ge 0`.
        noise: ``(n, ...)`` particles at t = 0.
        steps: SDE steps from 0 to 1.
        noise_scale: :math:`c \ge 0` in :math:`\epsilon_t = c(1 - t)`.
        resample_below: resample when the ESS is below this share of the particles.
        seed: seed of the Brownian increments and the resampling.
    """
    lam, generator, n, h = _particles(velocity, lookahead, strength, noise, steps, seed)
    if not 0 < resample_below <= 1:
        raise ValueError(f"resample_below must be in (0, 1], got {resample_below}")
    x, evaluations = noise, 0
    log_weights = torch.zeros(n, dtype=torch.float64, device=noise.device)
    previous = torch.zeros_like(log_weights)
    start_time = time.perf_counter()
    with torch.no_grad():
        for k in range(steps + 1):
            t = k * h
            ahead = x if k == steps else lookahead(x, t)
            potential = lam * reward(ahead).double()
            log_weights += potential - previous
            previous = potential
            if k == steps:
                break
            b, spent = _velocity_of(lookahead, velocity, x, t, ahead)
            evaluations += 1 + spent
            if effective_sample_size(log_weights) < resample_below * n:
                index = resample(log_weights, n, generator)
                x, b, previous = x[index], b[index], previous[index]
                log_weights = torch.zeros_like(log_weights)
            x = sampling.sde_step(b, x, t, h, noise_scale * (1 - t), generator)
        ess = effective_sample_size(log_weights)
        x = x[resample(log_weights, n, generator)]
    return Steered(x, evaluations * n, time.perf_counter() - start_time, ess)


def noise_space_mala(
    flow_map: FlowMapFn,
    reward: Reward,
    strength: float,
    noise: torch.Tensor,
    steps: int,
    step_size: float = 0.05,
    seed: int | None = 0,
) -> Steered:
    r"""Sample the tilt in noise space: Metropolis-adjusted Langevin on the noise tilted by its sample's reward,
    :math:`\pi(z) \propto N(z; 0, I)\, e^{\lambda r(X_{0,1}(z))}`.

    If :math:`X_{0,1}` carries the noise to :math:`p` exactly, it carries :math:`\pi` to :math:`\tilde p`: tilting the
    noise by the reward of its one-step sample is tilting the data. Each chain starts at a noise, proposes
    :math:`z' = z + \tau \nabla \log \pi(z) + \sqrt{2\tau}\,\xi`, and accepts with the Metropolis-Hastings
    probability, so its law tends to :math:`\pi` for any step :math:`\tau`; the gradient of
    :math:`\lambda r(X_{0,1}(z))` goes through one evaluation of the map. The samples returned are
    :math:`X_{0,1}(z)` of the last state. ReNO (Eyring et al. 2024) optimises the noise of a one-step model for a
    reward; this samples it instead. Evaluations per chain: a forward and a backward pass per proposal (three).

    Args:
        flow_map: ``flow_map(x, s, t)`` (a trained :class:`~flowlib.flowmap.FlowMap` or ``mixture.flow_map``).
        reward: ``r(x)``, differentiable.
        strength: :math:`\lambda \ge 0`.
        noise: ``(n, ...)`` starting noises (one chain each).
        steps: proposals per chain.
        step_size: :math:`\tau > 0`.
        seed: seed of the proposals and the accept/reject draws.
    """
    check_callable(flow_map, "flow_map", "flow_map(x, s, t)")
    lam = _check_strength(strength)
    as_points(noise, "noise")
    check_positive_int(steps, "steps")
    tau = check_positive(step_size, "step_size")
    generator = torch.Generator(device=noise.device).manual_seed(seed) if seed is not None else None
    n = noise.shape[0]
    zeros, ones = (
        torch.zeros(n, dtype=noise.dtype, device=noise.device),
        torch.ones(n, dtype=noise.dtype, device=noise.device),
    )

    def log_target(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            leaf = z.detach().requires_grad_(True)
            ends = flow_map(leaf, zeros, ones)
            value = -0.5 * leaf.reshape(n, -1).square().sum(1) + lam * reward(ends)
            (gradient,) = torch.autograd.grad(value.sum(), leaf)
        return value.detach().double(), gradient, ends.detach()

    def log_proposal(to: torch.Tensor, start: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
        return -((to - start - tau * gradient).reshape(n, -1).square().sum(1)).double() / (4 * tau)

    start_time = time.perf_counter()
    z = noise
    value, gradient, ends = log_target(z)
    accepted = 0
    for _ in range(steps):
        kick = torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)
        proposal = z + tau * gradient + (2 * tau) ** 0.5 * kick
        new_value, new_gradient, new_ends = log_target(proposal)
        log_ratio = new_value + log_proposal(z, proposal, new_gradient) - value - log_proposal(proposal, z, gradient)
        uniform = torch.rand(n, generator=generator, dtype=torch.float64, device=z.device)
        accept = uniform.log() < log_ratio
        accepted += int(accept.sum())
        mask = accept.reshape(n, *([1] * (z.ndim - 1)))
        z = torch.where(mask, proposal, z)
        gradient = torch.where(mask, new_gradient, gradient)
        ends = torch.where(mask, new_ends, ends)
        value = torch.where(accept, new_value, value)
    result = Steered(ends, 3 * (steps + 1) * n, time.perf_counter() - start_time)
    result.acceptance = accepted / (steps * n)
    return result


# ---------------------------------------------------------------------------------------------- scoring


def mode_weights(samples: torch.Tensor, mixture: GaussianMixture) -> torch.Tensor:
    r"""The share of samples in each component: each sample counts for its most likely component at t = 1.

    Args:
        samples: ``(n, d)`` points (or images).
        mixture: the mixture whose components are counted (e.g. the exact tilted target).

    Returns:
        float64 ``(K,)`` summing to one.
    """
    as_points(samples, "samples", dim=mixture.dim)
    nearest = mixture.posterior(samples.detach().double().reshape(samples.shape[0], -1), 1.0).argmax(1)
    return torch.bincount(nearest, minlength=mixture.n_components).double() / samples.shape[0]


@dataclass
class SteeringScore:
    r"""How close steered samples are to the exact tilted target.

    Attributes:
        sliced_w2: sliced W2 to as many exact samples of the target.
        floor: the same between two exact sample sets (what a perfect sampler scores).
        mean_reward: the samples' mean reward.
        exact_reward: the target's exact mean reward (``None`` when it has no closed form).
        mode_error: total variation between the samples' mode shares and the target's weights,
            :math:`\tfrac12 \sum_k |\hat w_k - \tilde\pi_k|` (0: every mode gets its exact share).
    """

    sliced_w2: float
    floor: float
    mean_reward: float
    exact_reward: float | None
    mode_error: float


def score(
    samples: torch.Tensor, target: GaussianMixture, reward: Reward, seed: int = 0, repeats: int = 1
) -> SteeringScore:
    """Score steered samples ``(n, d)`` against the exact target mixture (see :class:`SteeringScore`).

    ``repeats`` > 1 averages the sliced W2 and the floor over that many fresh exact sample sets (one draw's
    ratio to the floor varies by about ±0.3 at 2,000 points).
    """
    as_points(samples, "samples", dim=target.dim)
    check_positive_int(repeats, "repeats")
    flat = samples.detach().double().reshape(samples.shape[0], -1)
    n = flat.shape[0]
    distances, floors = [], []
    for k in range(repeats):
        reference = target.sample(n, seed=seed + 2 * k)
        distances.append(metrics.sliced_w2(flat, reference))
        floors.append(metrics.sliced_w2(target.sample(n, seed=seed + 2 * k + 1), reference))
    exact = reward.expected(target) if isinstance(reward, QuadraticReward) else None
    return SteeringScore(
        sliced_w2=sum(distances) / repeats,
        floor=sum(floors) / repeats,
        mean_reward=float(reward(flat).mean()),
        exact_reward=exact,
        mode_error=0.5 * float((mode_weights(flat, target) - target.weights).abs().sum()),
    )


# ---------------------------------------------------------------------------------------------- reward fine-tuning


@dataclass
class FinetuneRecord:
    r"""How :func:`finetune` trained a model (its ``record`` attribute).

    Attributes:
        method: one of :data:`FINETUNE_METHODS`.
        strength: :math:`\lambda`.
        result: the training loop's :class:`flowlib.train.TrainResult` (losses, steps, seconds, cache).
        options: the base model's :class:`flowlib.fitting.FitOptions` (``"weighted"``, ``"reference"``).
        penalty: :math:`\beta` of the direct method.
        candidates: one-step samples drawn and weighted (``"weighted"``).
        ess: effective sample size of the candidates' weights (``"weighted"``).
        prepare_seconds: seconds spent drawing and weighting the candidates.
    """

    method: str
    strength: float
    result: object
    options: object = None
    penalty: float | None = None
    candidates: int = 0
    ess: float | None = None
    prepare_seconds: float = 0.0

    @property
    def losses(self) -> list[float]:
        """The loss at every step."""
        return self.result.losses

    @property
    def seconds(self) -> float:
        """Preparation plus training time (of the original run when loaded from the cache)."""
        return self.prepare_seconds + self.result.seconds

    def __str__(self) -> str:
        return f"fine-tuned ({self.method}, lambda = {self.strength:g}): {self.result}"


def _sample_shape(base: torch.nn.Module, shape: tuple[int, ...] | None) -> tuple[int, ...]:
    if shape is not None:
        if not isinstance(shape, (tuple, list)) or not all(isinstance(n, int) and n > 0 for n in shape):
            raise ValueError(f"shape must be a tuple of positive ints (one sample's shape), got {shape!r}")
        return tuple(shape)
    dim = getattr(base.net, "dim", None)
    if dim is None:
        raise ValueError("shape is needed for an image flow map: pass shape=(C, H, W), e.g. (1, 8, 8)")
    return (dim,)


def _reward_key(reward: Reward) -> str:
    """What defines a reward for the cache: a function's code and what its closure holds (a classifier, a
    digit), or an object's class and parameters (never its address, which changes from run to run).
    """
    if hasattr(reward, "__code__"):
        cells = getattr(reward, "__closure__", None) or ()
        return "|".join([_fingerprint(reward), *(_fingerprint(cell.cell_contents) for cell in cells)])
    parameters = {k: v.tolist() if isinstance(v, torch.Tensor) else v for k, v in vars(reward).items()}
    return f"{type(reward).__module__}.{type(reward).__qualname__}|{parameters!r}"


def _weighted_pool(
    base: torch.nn.Module,
    reward: Reward,
    lam: float,
    shape: tuple[int, ...],
    candidates: int,
    seed: int,
    candidate_steps: int | None = None,
) -> tuple[torch.Tensor, float]:
    r"""``candidates`` samples of ``base`` (one-step, or ``candidate_steps`` Heun steps of a velocity), resampled in
    proportion to :math:`e^{\lambda r}`; and the ESS of the weights.
    """
    if candidate_steps is None:
        generate = one_step(base)
    else:
        call = detached(base)

        def generate(noise: torch.Tensor) -> torch.Tensor:
            return sampling.sample(call, noise, candidate_steps)

    noise = _noise(candidates, shape, seed, torch.float32)
    samples = torch.cat([generate(chunk) for chunk in noise.split(8192)])
    with torch.no_grad():
        log_weights = lam * reward(samples).double()
    picked = resample(log_weights, candidates, torch.Generator().manual_seed(seed + 1))
    return samples[picked], effective_sample_size(log_weights)


def _direct_loss(
    base: torch.nn.Module, reward: Reward, lam: float, penalty: float, shape: tuple[int, ...], batch_size: int
) -> Callable:
    r"""Direct objective: :math:`E_z[-\lambda r(X_\theta(z)) + \frac\beta2 \|X_\theta(z) - X_0(z)\|^2]`."""

    def loss_fn(model: torch.nn.Module, generator: torch.Generator, progress: float) -> torch.Tensor:
        device = generator.device
        z = torch.randn((batch_size, *shape), generator=generator, device=device)
        s, t = torch.zeros(batch_size, device=device), torch.ones(batch_size, device=device)
        jumped = model(z, s, t)
        with torch.no_grad():
            anchor = base(z, s, t)
        distance = (jumped - anchor).reshape(batch_size, -1).square().sum(1)
        return (-lam * reward(jumped) + 0.5 * penalty * distance).mean()

    return loss_fn


def _kl_loss(
    reward: Reward, lam: float, log_density: Callable[[torch.Tensor], torch.Tensor], shape: tuple[int, ...],
    batch_size: int,
) -> Callable:  # fmt: skip
    r"""KL-penalised objective: :math:`E_z[-\lambda r(x) - \log p(x) - \log|\det \partial_z X_\theta(z)|]`.

    With :math:`x = X_\theta(z)`, the one-step map pushes :math:`N(0, I)` to :math:`q_\theta`, whose log-density at x is
    :math:`\log N(z) - \log|\det \partial_z X_\theta(z)|` (change of variables). So the loss is
    :math:`\mathrm{KL}(q_\theta \,\|\, \tilde p) - \log Z` up to the constant :math:`E \log N(z)`: minimised exactly
    when :math:`q_\theta = \tilde p`. The Jacobian costs one backward pass per dimension (cheap in 2D).
    """

    def loss_fn(model: torch.nn.Module, generator: torch.Generator, progress: float) -> torch.Tensor:
        device = generator.device
        z = torch.randn((batch_size, *shape), generator=generator, device=device).requires_grad_(True)
        x = model(z, torch.zeros(batch_size, device=device), torch.ones(batch_size, device=device))
        flat = x.reshape(batch_size, -1)
        # row i of every sample's Jacobian: the gradient of output i (each sample's output depends on its own z only)
        rows = [torch.autograd.grad(flat[:, i].sum(), z, create_graph=True)[0].reshape(batch_size, -1)
                for i in range(flat.shape[1])]  # fmt: skip
        jacobian = torch.stack(rows, 1)
        log_det = torch.linalg.slogdet(jacobian).logabsdet
        return (-lam * reward(x) - log_density(x) - log_det).mean()

    return loss_fn


@dataclass(frozen=True)
class _FinetuneCall:
    """One call of :func:`finetune`, checked: what every method may read."""

    base: torch.nn.Module
    reward: Reward
    lam: float
    train_steps: int
    target: object
    log_density: Callable[[torch.Tensor], torch.Tensor] | None
    penalty: float
    candidates: int
    candidate_steps: int | None
    shape: tuple[int, ...]
    overrides: dict  # batch_size and lr where the caller set them
    run: dict  # seed, progress, cache, max_seconds, checkpoint, resume

    @property
    def batch_size(self) -> int:
        return self.overrides.get("batch_size", self.base.record.options.batch_size)


def _weighted_data(call: _FinetuneCall) -> tuple[torch.Tensor, float, int]:
    r"""The base's candidates resampled by :math:`e^{\lambda r}`, their ESS, and how many were drawn."""
    pool, ess = _weighted_pool(
        call.base, call.reward, call.lam, call.shape, call.candidates, call.run["seed"], call.candidate_steps
    )
    return pool, ess, call.candidates


def _reference_data(call: _FinetuneCall) -> tuple[object, None, int]:
    """Exact samples of the tilt (``target``): what the weighted method reaches with perfect candidates."""
    if call.target is None:
        raise ValueError(
            "method 'reference' trains on exact samples of the tilt: pass target=<a GaussianMixture or samples>"
        )
    return call.target, None, 0


def _direct_objective(call: _FinetuneCall) -> tuple[Callable, dict, float]:
    """The direct loss, what its cache key adds, and the penalty its record keeps."""
    anchor = copy.deepcopy(call.base).requires_grad_(False).eval()
    loss = _direct_loss(anchor, call.reward, call.lam, call.penalty, call.shape, call.batch_size)
    return loss, {"penalty": call.penalty}, call.penalty


def _kl_objective(call: _FinetuneCall) -> tuple[Callable, dict, None]:
    """The KL-penalised loss and what its cache key adds (the log-density it penalises against)."""
    if call.log_density is None:
        raise ValueError(
            "method 'kl' penalises the divergence from p: pass log_density=<log p(x)>, e.g. mixture.log_prob"
        )
    check_callable(call.log_density, "log_density", "log_density(x) -> (batch,)")
    loss = _kl_loss(call.reward, call.lam, call.log_density, call.shape, call.batch_size)
    return loss, {"log_density": _reward_key(call.log_density)}, None


@dataclass(frozen=True)
class Finetuner:
    """One way :func:`finetune` moves a model toward the tilt: a row of :data:`FINETUNERS`.

    Attributes:
        flow_map_only: it trains the one-step jump, which a velocity does not have.
        data: ``data(call) -> (training data, ESS or None, candidates drawn)``: the method continues training with
            the base's own objective (:func:`flowlib.fit` with ``init=base``) on these data; or ``None``.
        loss: ``loss(call) -> (loss_fn, cache-key extras, penalty for the record)``: the method minimises this
            loss of the one-step jump with :func:`flowlib.train.train`; or ``None``.
    """

    flow_map_only: bool
    data: Callable[[_FinetuneCall], tuple] | None = None
    loss: Callable[[_FinetuneCall], tuple] | None = None


#: The ways :func:`finetune` moves a model toward the tilted target, by name (see :func:`finetune`).
FINETUNERS: dict[str, Finetuner] = {
    "weighted": Finetuner(flow_map_only=False, data=_weighted_data),
    "direct": Finetuner(flow_map_only=True, loss=_direct_objective),
    "reference": Finetuner(flow_map_only=False, data=_reference_data),
    "kl": Finetuner(flow_map_only=True, loss=_kl_objective),
}
FINETUNE_METHODS = tuple(FINETUNERS)


def _finetune_on_data(method: str, data_of: Callable, call: _FinetuneCall) -> torch.nn.Module:
    """Continue training ``call.base`` with its own objective and options on ``data_of(call)``."""
    options = call.base.record.options
    fit_options = {k: getattr(options, k) for k in defaults(call.base.record.method)} | call.overrides
    start = time.perf_counter()
    data, ess, candidates = data_of(call)
    prepare = time.perf_counter() - start
    model = fit(
        call.base.record.method, data, call.train_steps, name=f"finetune-{method}", init=call.base, **call.run,
        **fit_options,
    )  # fmt: skip
    model.record = FinetuneRecord(method, call.lam, model.record.result, options, None, candidates, ess, prepare)
    return model


def _finetune_on_reward(method: str, objective: Callable, call: _FinetuneCall) -> torch.nn.Module:
    """Minimise ``objective(call)``'s loss of the one-step jump, starting from a copy of ``call.base``."""
    model = copy.deepcopy(call.base).requires_grad_(True)
    loss, key_extras, penalty = objective(call)
    key = {
        "finetune": method,
        "base": _fingerprint(call.base),
        "reward": _reward_key(call.reward),
        "strength": call.lam,
        "batch_size": call.batch_size,
        "shape": list(call.shape),
        **key_extras,
    }
    run = dict(call.run)
    result = train(
        model,
        loss,
        call.train_steps,
        lr=call.overrides.get("lr", call.base.record.options.lr),
        grad_clip=call.base.record.options.grad_clip,
        seed=run.pop("seed"),
        cache_key=key if run.pop("cache") else None,
        name=f"finetune-{method}",
        **run,
    )
    model = result.model
    model.record = FinetuneRecord(method, call.lam, result, call.base.record.options, penalty)
    return model


def finetune(
    base: torch.nn.Module,
    reward: Reward,
    strength: float,
    method: str = "weighted",
    train_steps: int = 500,
    *,
    target: object = None,
    log_density: Callable[[torch.Tensor], torch.Tensor] | None = None,
    penalty: float = 1.0,
    candidates: int = 100_000,
    candidate_steps: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    shape: tuple[int, ...] | None = None,
    seed: int = 0,
    progress: bool = True,
    cache: bool = True,
    checkpoint: str | None = None,
    resume: bool = False,
    max_seconds: float | None = None,
) -> torch.nn.Module:
    r"""Fine-tune a flow map (or, for ``"weighted"`` and ``"reference"``, a velocity) from :func:`flowlib.fit` toward
    the tilt :math:`\tilde p \propto p\, e^{\lambda r}`.

    Three methods, each starting from ``base``'s weights:

    * ``"weighted"`` (reward-weighted self-distillation): draw ``candidates`` one-step samples
      :math:`X_{0,1}(z)` of the base map, resample them in proportion to :math:`e^{\lambda r}` (importance
      weights toward :math:`\tilde p`, as :func:`importance_resample`), and continue training with the base's
      own objective and options on these samples. Consistent as the candidates grow, if the base map is exact.
    * ``"direct"``: maximise the reward of one-step samples through the map, with a penalty that keeps each
      sample near the base map's sample of the same noise,

      .. math::
          \min_\theta\; E_z\big[-\lambda\, r(X^\theta_{0,1}(z))
          + \tfrac\beta2 \|X^\theta_{0,1}(z) - X^{\text{base}}_{0,1}(z)\|^2\big].

      Each sample moves to a proximal point of the reward from its base sample: the mode weights stay the
      base's (a bias), and as :math:`\beta \to 0` every sample collapses onto the reward's maximiser. Only the
      one-step jump is trained; the map's other jumps are not kept consistent.
    * ``"reference"``: the base's objective on exact samples of ``target`` (e.g. ``reward.tilt(mixture, λ)``)
      for the same budget: what the weighted method would reach with perfect candidates.
    * ``"kl"`` (KL-penalised): the reward of one-step samples with the reverse KL divergence to :math:`p` as the
      penalty, :math:`\min_\theta E_{q_\theta}[-\lambda r] + \mathrm{KL}(q_\theta \| p)`, whose minimiser is exactly
      :math:`\tilde p` (the Gibbs variational principle). The density of the one-step samples comes from the map's
      Jacobian (change of variables), so this needs ``log_density``, :math:`\log p` — the exact mixture's here, a
      base model's own density in general. Like ``"direct"`` it trains the one-step jump only.

    Placed by the divergence they minimise: ``"weighted"`` fits :math:`\tilde p`'s (resampled) samples, a forward KL
    projection :math:`\mathrm{KL}(\tilde p \| q_\theta)`; ``"kl"`` minimises the reverse KL
    :math:`\mathrm{KL}(q_\theta \| \tilde p)`; ``"direct"`` is a proximal step in the Wasserstein-2 sense (a squared
    distance to the base's samples), which keeps the base's mode weights.

    Like :func:`flowlib.fit`: a progress bar, the cache (keyed by the base's weights, the reward, the strength
    and every option), checkpoints with ``resume``, and a clear error on NaN.

    Args:
        base: a flow map returned by :func:`flowlib.fit` (its ``record`` gives the objective and options).
        reward: ``r(x)``, ``(batch, ...)`` → ``(batch,)``; differentiable for ``"direct"``.
        strength: :math:`\lambda \ge 0`.
        method: a name in :data:`FINETUNERS`.
        train_steps: optimisation steps.
        target: for ``"reference"``: a :class:`~flowlib.exact.GaussianMixture` or samples of :math:`\tilde p`.
        log_density: for ``"kl"``: :math:`\log p(x)`, ``(batch, ...)`` → ``(batch,)``, differentiable.
        penalty: :math:`\beta > 0` of ``"direct"``.
        candidates: samples drawn for ``"weighted"`` (one-step samples of a flow map).
        candidate_steps: for ``"weighted"`` with a velocity ``base`` (a flow-matching model): the Heun steps of each
            candidate, which then costs ``2 * candidate_steps`` evaluations instead of one.
        batch_size: samples per step (default: the base's).
        lr: learning rate (default: the base's).
        shape: one sample's shape; needed for image maps (e.g. ``(1, 8, 8)``), else read from the network.
        seed: seed of the candidates, the batches and the resampling.
        progress: show a progress bar.
        cache: load/save the result in the cache.
        checkpoint: file for periodic checkpoints (``resume=True`` continues an interrupted run).
        resume: continue from ``checkpoint`` if it exists.
        max_seconds: stop after this much training time.

    Returns:
        The fine-tuned :class:`~flowlib.flowmap.FlowMap` in eval mode, with ``record`` a :class:`FinetuneRecord`.

    Raises:
        TypeError: ``base`` is not a flow map or velocity from :func:`flowlib.fit`.
        ValueError: an unknown method, a negative strength, a missing ``target``, ``log_density`` or
            ``candidate_steps``, a method a velocity cannot use, a bad penalty or count.
    """
    if not isinstance(base, (FlowMap, VelocityModel)) or not isinstance(getattr(base, "record", None), FitRecord):
        raise TypeError(
            "base must be a flow map or a velocity returned by flowlib.fit (it carries .record), "
            f"got {type(base).__name__}"
        )
    check_choice(method, "method", FINETUNERS)
    row = FINETUNERS[method]
    if isinstance(base, VelocityModel) and row.flow_map_only:
        raise ValueError(
            f"method {method!r} trains a one-step jump: base must be a flow map (a velocity has none to train)"
        )
    if isinstance(base, VelocityModel) and method == "weighted" and candidate_steps is None:
        raise ValueError("a velocity draws its candidates with a solver: pass candidate_steps=<Heun steps>, e.g. 20")
    if candidate_steps is not None:
        check_positive_int(candidate_steps, "candidate_steps")
    check_callable(reward, "reward", "reward(x) -> (batch,)")
    lam = _check_strength(strength)
    check_positive_int(train_steps, "train_steps")
    check_positive_int(candidates, "candidates")
    penalty = check_positive(penalty, "penalty")
    shape = _sample_shape(base, shape)
    if METHODS[base.record.method].teacher != "none":
        raise ValueError(
            f"base must be self-distilled (its own objective needs no teacher); {base.record.method!r} needs one"
        )
    call = _FinetuneCall(
        base, reward, lam, train_steps, target, log_density, penalty, candidates, candidate_steps, shape,
        {k: v for k, v in (("batch_size", batch_size), ("lr", lr)) if v is not None},
        dict(seed=seed, progress=progress, cache=cache, max_seconds=max_seconds, checkpoint=checkpoint, resume=resume),
    )  # fmt: skip
    if row.data is not None:
        return _finetune_on_data(method, row.data, call)
    return _finetune_on_reward(method, row.loss, call)
