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

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from flowlib import metrics
from flowlib._validate import as_points, check_callable, check_positive, check_positive_int
from flowlib.exact import ArrayLike, GaussianMixture
from flowlib.nets import detached

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
    picked = torch.multinomial(torch.softmax(log_weights, 0), n, replacement=True, generator=generator)
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
    :math:`(1 - t_{\min})/t_{\min}`. A flow map's look-ahead keeps an :math:`O(1)` gradient at :math:`t = 0`, and
    the factor blows it up; ``anneal=True`` ramps the tilt along the path, :math:`\lambda_t = \lambda t`, so
    the correction becomes :math:`\lambda (1 - t) \nabla_x r(L_t(x))`, zero at the noise (whose tilted law is
    the untilted Gaussian) and :math:`\lambda` at the data.

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
    interpolant of an independent noise and a sample of :math:`p`), and the last potential is the reward of the
    sample itself, so the weighted particles target :math:`\tilde p` whatever the intermediate potentials; good
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
                index = torch.multinomial(torch.softmax(log_weights, 0), n, replacement=True, generator=generator)
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
    generator = torch.Generator().manual_seed(seed + 1)
    picked = torch.multinomial(torch.softmax(log_weights, 0), n, replacement=True, generator=generator)
    return Steered(draws[picked], 0, time.perf_counter() - start, effective_sample_size(log_weights))


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


def score(samples: torch.Tensor, target: GaussianMixture, reward: Reward, seed: int = 0) -> SteeringScore:
    """Score steered samples ``(n, d)`` against the exact target mixture (see :class:`SteeringScore`)."""
    as_points(samples, "samples", dim=target.dim)
    flat = samples.detach().double().reshape(samples.shape[0], -1)
    n = flat.shape[0]
    reference = target.sample(n, seed=seed)
    exact = reward.expected(target) if isinstance(reward, QuadraticReward) else None
    return SteeringScore(
        sliced_w2=metrics.sliced_w2(flat, reference),
        floor=metrics.sliced_w2(target.sample(n, seed=seed + 1), reference),
        mean_reward=float(reward(flat).mean()),
        exact_reward=exact,
        mode_error=0.5 * float((mode_weights(flat, target) - target.weights).abs().sum()),
    )
