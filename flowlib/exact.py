r"""Exact answers: the book's oracle (chapters 1, 2 and 4).

* :class:`GaussianMixture` — data :math:`\sum_k \pi_k N(\mu_k, \Sigma_k)` in any dimension.
  Under a Gaussian interpolant :math:`I_t = \alpha_t x_0 + \beta_t x_1` every component stays
  Gaussian, :math:`N(\beta_t\mu_k, C_{k,t})` with :math:`C_{k,t} = \alpha_t^2 I + \beta_t^2\Sigma_k`,
  so the marginal velocity :math:`b_t(x) = E[\dot I_t \mid I_t = x]` and the denoiser
  :math:`D_t(x) = E[x_1 \mid I_t = x]` have closed forms (chapter 2). Its flow map
  :math:`X_{s,t}` comes from integrating :math:`b_t` with many RK4 steps in float64 (the oracle).
* :class:`UniformSquares` — data uniform on equal squares (the checkerboard): the posterior over squares and the
  denoiser are closed forms in the normal CDF, and the flow map is integrated the same way.
* :func:`gaussian_flow_map` — the closed-form flow map when the data is one Gaussian.
* :class:`LinearField` — :math:`b(x) = A x` with :math:`X_{s,t}(x) = e^{(t-s)A} x` (chapter 1).

Example:
    >>> import torch
    >>> mix = GaussianMixture([0.5, 0.5], [[-2.0, 0.0], [2.0, 0.0]], [0.1, 0.1])
    >>> x0 = torch.randn(1000, 2, dtype=torch.float64)
    >>> x1 = mix.flow_map(x0, 0.0, 1.0)   # one exact jump from noise to data
    >>> bool((x1[:, 0].abs() - 2.0).abs().max() < 1.5)   # every point lands near a mode
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from flowlib import ode
from flowlib._validate import TimeLike, as_points, as_times, check_positive_int, column
from flowlib.interpolants import Interpolant, get_interpolant

ArrayLike = torch.Tensor | Sequence | float


def _as_float64(value: ArrayLike, name: str) -> torch.Tensor:
    try:
        tensor = torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name} must be a tensor or a nested list of numbers") from err
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return tensor


def _covariances(covs: ArrayLike, n_components: int, dim: int) -> torch.Tensor:
    """Accept a scalar, ``(K,)`` isotropic variances, or ``(K, d, d)`` full covariances."""
    cov = _as_float64(covs, "covs")
    eye = torch.eye(dim, dtype=torch.float64)
    if cov.ndim == 0:
        cov = cov * eye.expand(n_components, dim, dim)
    elif cov.ndim == 1 and cov.shape[0] == n_components:
        cov = cov[:, None, None] * eye
    elif cov.shape != (n_components, dim, dim):
        raise ValueError(
            f"covs must be a number, a ({n_components},) tensor of variances or a "
            f"({n_components}, {dim}, {dim}) tensor of covariance matrices; got shape {tuple(cov.shape)}"
        )
    if not torch.allclose(cov, cov.transpose(-1, -2), atol=1e-10):
        raise ValueError("covs must be symmetric matrices")
    return cov


class ExactPath:
    r"""What every exact data distribution shares: draws of the marginal :math:`p_t` and the oracle flow map.

    A subclass provides ``dim``, ``interpolant``, ``sample(n, generator=...)`` and an exact ``velocity(x, t)``;
    the flow map integrates that velocity with many RK4 steps in float64.
    """

    dim: int
    interpolant: Interpolant

    def sample_marginal(self, n: int, t: float, seed: int | None = None) -> torch.Tensor:
        """Draw ``n`` points of the marginal :math:`p_t` (the law of :math:`I_t`); float64 ``(n, d)``."""
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        x1 = self.sample(n, generator=generator)
        x0 = torch.randn(n, self.dim, dtype=torch.float64, generator=generator)
        return self.interpolant(x0, x1, t)

    def flow_map(
        self,
        x: torch.Tensor,
        s: TimeLike,
        t: TimeLike,
        steps_per_unit: int = 256,
        solver: str = "rk4",
    ) -> torch.Tensor:
        r"""Oracle flow map :math:`X_{s,t}(x)`: the point at time t on the path through x at time s.

        Integrates :math:`dx/dt = b_t(x)` from s to t in float64 with ``solver`` and
        ``ceil(steps_per_unit · max|t - s|)`` steps (each point on its own grid), which is
        accurate to about 1e-6 on the book's mixtures. Works for s < t and s > t.

        Args:
            x: points at time ``s``, ``(batch, d)`` (or images ``(batch, C, H, W)`` where the velocity takes them,
                as :class:`GaussianMixture`'s does).
            s: start time, float or ``(batch,)`` tensor in [0, 1].
            t: end time, float or ``(batch,)`` tensor in [0, 1].
            steps_per_unit: RK4 steps per unit of time.
            solver: any solver of :mod:`flowlib.ode`.

        Returns:
            ``x``'s shape and dtype.
        """
        as_points(x, "x", dim=self.dim)
        check_positive_int(steps_per_unit, "steps_per_unit")
        x64 = x.to(torch.float64)
        ss = as_times(s, "s", x.shape[0], like=x64)
        tt = as_times(t, "t", x.shape[0], like=x64)
        longest = float((tt - ss).abs().max()) if x.shape[0] else 0.0
        if longest == 0.0:
            return x.clone()
        steps = max(1, math.ceil(steps_per_unit * longest))
        grid = ode.pair_grid(ss, tt, steps, x.shape[0])
        return ode.integrate(self.velocity, x64, grid, solver=solver).to(x.dtype)


class GaussianMixture(ExactPath):
    r"""Data distribution :math:`p_1 = \sum_k \pi_k N(\mu_k, \Sigma_k)` with exact velocity and flow map.

    Args:
        weights: ``(K,)`` positive mixture weights (normalised to sum to one).
        means: ``(K, d)`` component means.
        covs: a variance (shared, isotropic), ``(K,)`` isotropic variances, or
            ``(K, d, d)`` symmetric positive-definite covariance matrices.
        interpolant: ``"linear"``, ``"trigonometric"`` or an :class:`~flowlib.interpolants.Interpolant`.

    Every method takes points ``x`` of shape ``(batch, d)`` — or ``(batch, C, H, W)`` with
    :math:`C H W = d`, flattened inside — and times as floats or ``(batch,)`` tensors, computes in
    float64 on ``x``'s device and returns ``x``'s shape and dtype.
    """

    def __init__(
        self,
        weights: ArrayLike,
        means: ArrayLike,
        covs: ArrayLike,
        interpolant: str | Interpolant = "linear",
    ) -> None:
        w = _as_float64(weights, "weights")
        mu = _as_float64(means, "means")
        if mu.ndim != 2:
            raise ValueError(f"means must have shape (K, d); got {tuple(mu.shape)}")
        n_components, dim = mu.shape
        if w.shape != (n_components,):
            raise ValueError(f"weights must have shape ({n_components},) to match means; got {tuple(w.shape)}")
        if bool((w <= 0).any()):
            raise ValueError("weights must all be > 0")
        cov = _covariances(covs, n_components, dim)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)
        if bool((eigenvalues <= 0).any()):
            raise ValueError("covs must be positive definite (every eigenvalue > 0)")
        self.weights = w / w.sum()
        self.means = mu
        self.covs = cov
        self.interpolant = get_interpolant(interpolant)
        self._eigenvalues = eigenvalues  # (K, d)
        self._eigenvectors = eigenvectors  # (K, d, d), columns are eigenvectors
        self._on_device: dict[torch.device, dict[str, torch.Tensor]] = {}

    @property
    def dim(self) -> int:
        """Dimension d of the data."""
        return self.means.shape[1]

    @property
    def n_components(self) -> int:
        """Number of components K."""
        return self.means.shape[0]

    def __repr__(self) -> str:
        return f"GaussianMixture(K={self.n_components}, d={self.dim}, interpolant={self.interpolant.name!r})"

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, seed: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""Draw ``n`` data points :math:`x_1 \sim p_1`; returns float64 ``(n, d)``."""
        check_positive_int(n, "n")
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(seed)
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, dtype=torch.float64, generator=generator)
        return self.place(component, noise)

    def place(self, component: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        r"""Points :math:`\mu_k + \Sigma_k^{1/2} z` of chosen components.

        Args:
            component: ``(n,)`` int64 component indices ``k``.
            noise: ``(n, d)`` standard normal ``z``.

        Returns:
            float64 ``(n, d)``.
        """
        scaled = noise.to(torch.float64) * self._eigenvalues[component].sqrt()
        return self.means[component] + torch.einsum("nde,ne->nd", self._eigenvectors[component], scaled)

    # ------------------------------------------------------------------ the closed forms
    def _posterior(self, x: torch.Tensor, t: TimeLike, name: str = "t") -> dict[str, torch.Tensor]:
        """Per-component quantities at ``(x, t)`` in each component's eigenbasis."""
        as_points(x, "x", dim=self.dim)
        x64 = x.reshape(x.shape[0], self.dim).to(torch.float64)  # images are flattened to (B, d)
        p = self._parameters_on(x64.device)
        tt = as_times(t, name, x.shape[0], like=x64)
        a = self.interpolant.alpha(tt)[:, None, None]
        b = self.interpolant.beta(tt)[:, None, None]
        centred = x64[:, None, :] - b * p["means"][None]  # (B, K, d)
        z = torch.einsum("kde,bkd->bke", p["eigenvectors"], centred)  # eigen-coordinates
        c = a**2 + b**2 * p["eigenvalues"][None]  # eigenvalues of C_{k,t}, (B, K, d)
        ones = torch.ones(self.dim, dtype=torch.float64, device=x64.device)  # matmul with ones: a fast sum over d
        log_normal = -0.5 * ((z * z / c) @ ones + c.log() @ ones + self.dim * math.log(2 * math.pi))
        log_joint = p["weights"].log()[None] + log_normal  # (B, K)
        return {
            **p,
            "t": tt,
            "a": a,
            "b": b,
            "z": z,
            "c": c,
            "log_joint": log_joint,
            "posterior": torch.softmax(log_joint, dim=1),
        }

    def _parameters_on(self, device: torch.device) -> dict[str, torch.Tensor]:
        """The mixture's float64 parameters on ``device`` (copied once per device, then reused)."""
        if device not in self._on_device:
            tensors = (self.weights, self.means, self._eigenvalues, self._eigenvectors)
            names = ("weights", "means", "eigenvalues", "eigenvectors")
            self._on_device[device] = {n: v.to(device) for n, v in zip(names, tensors, strict=True)}
        return self._on_device[device]

    @staticmethod
    def _from_eigen(q: dict[str, torch.Tensor], coords: torch.Tensor) -> torch.Tensor:
        """Map per-component eigen-coordinates ``(B, K, d)`` back to the standard basis."""
        return torch.einsum("kde,bke->bkd", q["eigenvectors"], coords)

    def velocity(self, x: torch.Tensor, t: TimeLike) -> torch.Tensor:
        r"""Exact marginal velocity :math:`b_t(x) = E[\dot\alpha_t x_0 + \dot\beta_t x_1 \mid I_t = x]`.

        Per component, :math:`E[x_1 \mid I_t = x, k] = \mu_k + \beta_t \Sigma_k C_{k,t}^{-1}(x - \beta_t\mu_k)`
        and :math:`E[x_0 \mid I_t = x, k] = \alpha_t C_{k,t}^{-1}(x - \beta_t\mu_k)`; they are averaged
        with the posterior weights :math:`P(k \mid I_t = x)`.

        Args:
            x: points ``(batch, d)``.
            t: float or ``(batch,)`` times in [0, 1].

        Returns:
            ``(batch, d)``, with ``x``'s dtype.
        """
        q = self._posterior(x, t)
        dalpha = self.interpolant.dalpha(q["t"])[:, None, None]
        dbeta = self.interpolant.dbeta(q["t"])[:, None, None]
        lam = q["eigenvalues"][None]
        coords = q["z"] * (dalpha * q["a"] + dbeta * q["b"] * lam) / q["c"]
        per_component = dbeta * q["means"][None] + self._from_eigen(q, coords)
        return torch.einsum("bk,bkd->bd", q["posterior"], per_component).to(x.dtype).reshape(x.shape)

    def denoiser(self, x: torch.Tensor, t: TimeLike) -> torch.Tensor:
        r"""Exact denoiser :math:`D_t(x) = E[x_1 \mid I_t = x]`; ``x`` ``(batch, d)`` → ``(batch, d)``."""
        q = self._posterior(x, t)
        coords = q["z"] * q["b"] * q["eigenvalues"][None] / q["c"]
        per_component = q["means"][None] + self._from_eigen(q, coords)
        return torch.einsum("bk,bkd->bd", q["posterior"], per_component).to(x.dtype).reshape(x.shape)

    def posterior(self, x: torch.Tensor, t: TimeLike) -> torch.Tensor:
        r"""Responsibilities :math:`P(k \mid I_t = x)`, shape ``(batch, K)``."""
        return self._posterior(x, t)["posterior"].to(x.dtype)

    def posterior_sample(self, x: torch.Tensor, t: TimeLike, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""Draw one end :math:`x_1 \sim p(x_1 \mid I_t = x)` for each point: the posterior, not its mean.

        The posterior of a Gaussian mixture is again a Gaussian mixture: component :math:`k` with probability
        :math:`P(k \mid I_t = x)` (:meth:`posterior`), and within it a Gaussian with the mean of
        :meth:`denoiser`'s component, :math:`\mu_k + \beta_t \Sigma_k C_{k,t}^{-1}(x - \beta_t \mu_k)`, and the
        covariance :math:`\alpha_t^2\, \Sigma_k C_{k,t}^{-1}` (:math:`C_{k,t} = \alpha_t^2 I + \beta_t^2 \Sigma_k`).
        At :math:`t = 0` this is a sample of the data whatever :math:`x`; at :math:`t = 1` it is :math:`x`. It is
        what a stochastic flow map (Meta Flow Maps, Diamond Maps) learns to draw, and the exact third look-ahead
        of chapter 12 beside the denoiser (the posterior's mean) and the flow map (the end of :math:`x`'s path).

        Args:
            x: points ``(batch, d)``.
            t: float or ``(batch,)`` times in [0, 1].
            generator: the source of randomness (on ``x``'s device).

        Returns:
            ``(batch, d)``, with ``x``'s dtype.
        """
        q = self._posterior(x, t)
        lam = q["eigenvalues"][None]  # (1, K, d)
        mean_coords = q["z"] * q["b"] * lam / q["c"]
        sd_coords = (lam * q["a"] ** 2 / q["c"]).sqrt()
        batch = torch.arange(x.shape[0], device=mean_coords.device)
        k = torch.multinomial(q["posterior"], 1, generator=generator)[:, 0]
        noise = torch.randn(x.shape[0], self.dim, generator=generator, dtype=torch.float64, device=mean_coords.device)
        coords = mean_coords[batch, k] + sd_coords[batch, k] * noise
        ends = q["means"][k] + torch.einsum("bde,be->bd", q["eigenvectors"][k], coords)
        return ends.to(x.dtype).reshape(x.shape)

    def log_prob(self, x: torch.Tensor, t: TimeLike = 1.0) -> torch.Tensor:
        """Log-density of the marginal :math:`p_t` at ``x`` (default: the data, t = 1); ``(batch,)``."""
        return torch.logsumexp(self._posterior(x, t)["log_joint"], dim=1).to(x.dtype)

    # ------------------------------------------------------------------ tilting by a quadratic reward
    def tilted(self, center: ArrayLike, precision: ArrayLike, strength: float) -> GaussianMixture:
        r"""The exact tilted mixture :math:`\tilde p \propto p \, e^{\lambda r}` for a quadratic reward (chapter 12).

        With :math:`r(x) = -\tfrac12 (x - c)^\top P (x - c)`, :math:`P` symmetric positive semi-definite
        (rank-deficient allowed: a reward that looks at some directions only), every component stays Gaussian:
        :math:`N(x; \mu_k, \Sigma_k)\, e^{\lambda r(x)} = Z_k\, N(x; \tilde\mu_k, \tilde\Sigma_k)` with

        .. math::
            A_k = I + \lambda P \Sigma_k, \quad
            \tilde\Sigma_k = \Sigma_k A_k^{-1}, \quad
            \tilde\mu_k = \mu_k + \lambda \tilde\Sigma_k P (c - \mu_k),

            \log Z_k = -\tfrac12 \log\det A_k - \tfrac{\lambda}{2} (\mu_k - c)^\top A_k^{-1} P (\mu_k - c),

        and the weights become :math:`\tilde\pi_k \propto \pi_k Z_k` (computed in log space). No inverse of
        :math:`P` or :math:`\Sigma_k` is needed, so :math:`\lambda = 0` returns :math:`p` itself.

        Args:
            center: ``(d,)`` the reward's centre :math:`c` (or a float, the same in every coordinate).
            precision: ``(d, d)`` symmetric positive semi-definite :math:`P`, or a float :math:`\ge 0` for
                :math:`P = p I`.
            strength: :math:`\lambda \ge 0`.

        Returns:
            A :class:`GaussianMixture` with the same interpolant (so its velocity and flow map are exact too).

        Raises:
            ValueError: a centre or precision of the wrong shape, a precision that is not symmetric positive
                semi-definite, or a negative or non-finite strength.
        """
        c, P, lam = self._tilt_parameters(center, precision, strength)
        eye = torch.eye(self.dim, dtype=torch.float64)
        A = eye + lam * P @ self.covs  # (K, d, d)
        tilted_covs = torch.linalg.solve(A.transpose(1, 2), self.covs).transpose(1, 2)  # Sigma A^{-1}
        tilted_covs = 0.5 * (tilted_covs + tilted_covs.transpose(1, 2))
        offset = c - self.means  # (K, d)
        tilted_means = self.means + lam * torch.einsum("kde,ke->kd", tilted_covs, offset @ P)
        pulled = torch.linalg.solve(A, (offset @ P)[..., None])[..., 0]  # A^{-1} P (c - mu)
        log_z = -0.5 * torch.linalg.slogdet(A).logabsdet - 0.5 * lam * (offset * pulled).sum(1)
        weights = torch.softmax(self.weights.log() + log_z, 0).clamp_min(torch.finfo(torch.float64).tiny)
        return GaussianMixture(weights, tilted_means, tilted_covs, self.interpolant)

    def _tilt_parameters(
        self, center: ArrayLike, precision: ArrayLike, strength: float
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        r"""Validated :math:`(c, P, \lambda)` of a quadratic reward in this mixture's dimension."""
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength):
            raise ValueError(f"strength must be a finite number >= 0, got {strength!r}")
        if strength < 0:
            raise ValueError(f"strength must be >= 0 (a negative strength would push samples away), got {strength}")
        c = _as_float64(center, "center")
        c = c.expand(self.dim).clone() if c.ndim == 0 else c
        if c.shape != (self.dim,):
            raise ValueError(f"center must have shape ({self.dim},), got {tuple(c.shape)}")
        P = _as_float64(precision, "precision")
        if P.ndim == 0:
            if float(P) < 0:
                raise ValueError(f"a scalar precision must be >= 0, got {float(P)}")
            P = float(P) * torch.eye(self.dim, dtype=torch.float64)
        if P.shape != (self.dim, self.dim):
            raise ValueError(f"precision must have shape ({self.dim}, {self.dim}) or be a float, got {tuple(P.shape)}")
        if not torch.allclose(P, P.T, atol=1e-10 * (1 + float(P.abs().max()))):
            raise ValueError("precision must be symmetric")
        smallest = float(torch.linalg.eigvalsh(P).min())
        if smallest < -1e-10 * (1 + float(P.abs().max())):
            raise ValueError(f"precision must be positive semi-definite; its smallest eigenvalue is {smallest:.3g}")
        return c, P, float(strength)


class UniformSquares(ExactPath):
    r"""Data uniform on a union of equal, disjoint axis-aligned squares (the checkerboard), with exact velocity.

    Under :math:`I_t = \alpha_t x_0 + \beta_t x_1` the likelihood of an end :math:`y` given :math:`I_t = x`
    is :math:`N(x; \beta_t y, \alpha_t^2 I)`, a product over coordinates; restricted to one square
    :math:`\prod_i [a_{ki}, a_{ki} + w]` it is a product of truncated normals in :math:`y` with mean
    :math:`x_i / \beta_t` and scale :math:`\alpha_t / \beta_t`. So the posterior over squares and the
    denoiser are closed forms in the normal CDF :math:`\Phi`: with :math:`\ell_{ki} = (\beta_t a_{ki} - x_i)/\alpha_t`
    and :math:`h_{ki} = \ell_{ki} + \beta_t w / \alpha_t`,

    .. math::
        P(k \mid I_t = x) \propto \prod_i \big(\Phi(h_{ki}) - \Phi(\ell_{ki})\big), \qquad
        E[y_i \mid I_t = x, k] = \frac{x_i}{\beta_t} + \frac{\alpha_t}{\beta_t}\,
        \frac{\varphi(\ell_{ki}) - \varphi(h_{ki})}{\Phi(h_{ki}) - \Phi(\ell_{ki})},

    and the velocity is :math:`b_t(x) = \dot\alpha_t E[x_0 \mid x] + \dot\beta_t D_t(x)` with
    :math:`E[x_0 \mid x] = (x - \beta_t D_t(x)) / \alpha_t`. The differences of :math:`\Phi` are computed in log
    space on the lower tail, so they stay accurate far from a square. At :math:`t = 0` the posterior is the prior
    (:math:`D_0 = E[x_1]`); at :math:`t = 1` the point is its own end (:math:`D_1(x) = x`, :math:`E[x_0 \mid x] = 0`).
    The flow map integrates this velocity (:class:`ExactPath`), as for :class:`GaussianMixture`.

    Args:
        corners: ``(K, d)`` lower corners of the squares (cubes in d dimensions).
        side: the common side length :math:`w > 0`.
        interpolant: ``"linear"``, ``"trigonometric"`` or an :class:`~flowlib.interpolants.Interpolant`.

    Points are ``(batch, d)``; times floats or ``(batch,)`` tensors; results in ``x``'s dtype.
    """

    def __init__(self, corners: ArrayLike, side: float = 1.0, interpolant: str | Interpolant = "linear") -> None:
        lower = _as_float64(corners, "corners")
        if lower.ndim != 2:
            raise ValueError(f"corners must have shape (K, d); got {tuple(lower.shape)}")
        if isinstance(side, bool) or not isinstance(side, (int, float)) or not math.isfinite(side) or side <= 0:
            raise ValueError(f"side must be a finite number > 0, got {side!r}")
        self.corners, self.side = lower, float(side)
        self.interpolant = get_interpolant(interpolant)

    @property
    def dim(self) -> int:
        """Dimension d of the data."""
        return self.corners.shape[1]

    @property
    def n_components(self) -> int:
        """Number of squares K."""
        return self.corners.shape[0]

    def __repr__(self) -> str:
        name = self.interpolant.name
        return f"UniformSquares(K={self.n_components}, d={self.dim}, side={self.side:g}, interpolant={name!r})"

    def sample(self, n: int, seed: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""Draw ``n`` data points :math:`x_1 \sim p_1` (a square uniformly, then a point in it); float64 ``(n, d)``."""
        check_positive_int(n, "n")
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(seed)
        square = torch.randint(self.n_components, (n,), generator=generator)
        return self.corners[square] + self.side * torch.rand(n, self.dim, dtype=torch.float64, generator=generator)

    def _squares(self, x: torch.Tensor, t: TimeLike) -> dict[str, torch.Tensor]:
        """Per-square terms at ``(x, t)``: log-masses ``(B, K, d)`` of the truncated normals and their means."""
        as_points(x, "x", dim=self.dim)
        x64 = x.to(torch.float64)
        tt = as_times(t, "t", x.shape[0], like=x64)
        a = self.interpolant.alpha(tt)[:, None, None]
        b = self.interpolant.beta(tt)[:, None, None]
        inside = (a > 1e-12) & (b > 1e-12)  # (B, 1, 1): at t = 0 or 1 the callers' limits take over
        a_safe, b_safe = torch.where(inside, a, 1.0), torch.where(inside, b, 1.0)
        low = (b_safe * self.corners[None] - x64[:, None, :]) / a_safe  # (B, K, d)
        log_mass, ratio = _truncated_normal_terms(low, low + b_safe * self.side / a_safe)
        means = (x64[:, None, :] + a_safe * ratio) / b_safe  # the truncated normal's mean, per square
        means = torch.minimum(torch.maximum(means, self.corners[None]), self.corners[None] + self.side)
        return {"x": x64, "t": tt, "a": a[:, 0], "b": b[:, 0], "inside": inside[:, 0], "log_mass": log_mass,
                "means": means}  # fmt: skip

    def _ends(self, x: torch.Tensor, t: TimeLike) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""``(x in float64 (B, d), times (B,), denoiser (B, d))``: :math:`D_t(x) = E[x_1 \mid I_t = x]`."""
        q = self._squares(x, t)
        posterior = torch.softmax(q["log_mass"].sum(2), dim=1)  # (B, K)
        denoiser = torch.einsum("bk,bkd->bd", posterior, q["means"])
        centre = (self.corners + 0.5 * self.side).mean(0).expand_as(denoiser)  # E[x_1]: the posterior at t = 0
        denoiser = torch.where(q["inside"], denoiser, torch.where(q["b"] <= 1e-12, centre, q["x"]))
        return q["x"], q["t"], denoiser

    def denoiser(self, x: torch.Tensor, t: TimeLike) -> torch.Tensor:
        r"""Exact denoiser :math:`D_t(x) = E[x_1 \mid I_t = x]`; ``(batch, d)`` → ``(batch, d)``."""
        return self._ends(x, t)[2].to(x.dtype)

    def velocity(self, x: torch.Tensor, t: TimeLike) -> torch.Tensor:
        r"""Exact marginal velocity :math:`b_t(x) = \dot\alpha_t E[x_0 \mid I_t = x] + \dot\beta_t D_t(x)`.

        Args:
            x: points ``(batch, d)``.
            t: float or ``(batch,)`` times in [0, 1].

        Returns:
            ``(batch, d)``, with ``x``'s dtype.
        """
        x64, tt, ends = self._ends(x, t)
        a, b = self.interpolant.alpha(tt)[:, None], self.interpolant.beta(tt)[:, None]
        noise = torch.where(a > 1e-12, (x64 - b * ends) / torch.where(a > 1e-12, a, 1.0), 0.0)  # E[x_0 | x]
        velocity = self.interpolant.dalpha(tt)[:, None] * noise + self.interpolant.dbeta(tt)[:, None] * ends
        return velocity.to(x.dtype)

    def log_prob(self, x: torch.Tensor, t: TimeLike = 1.0) -> torch.Tensor:
        r"""Log-density of the marginal :math:`p_t` at ``x`` (default: the data, t = 1, ``-inf`` off the squares).

        :math:`p_t(x) = \frac{1}{K w^d \beta_t^d} \sum_k \prod_i \big(\Phi(h_{ki}) - \Phi(\ell_{ki})\big)` for
        :math:`0 < t < 1`; at :math:`t = 0` the standard normal. Returns ``(batch,)`` in ``x``'s dtype.
        """
        q = self._squares(x, t)
        x64, n_squares, d = q["x"][:, None, :], self.n_components, self.dim
        marginal = (torch.logsumexp(q["log_mass"].sum(2), dim=1) - math.log(n_squares) - d * math.log(self.side)
                    - d * q["b"][:, 0].log())  # fmt: skip
        on = ((x64 >= self.corners[None]) & (x64 <= self.corners[None] + self.side)).all(2).any(1)
        data = torch.where(on, -math.log(n_squares) - d * math.log(self.side), -math.inf)
        noise = -0.5 * (q["x"] ** 2).sum(1) - 0.5 * d * math.log(2 * math.pi)
        inside = q["inside"][:, 0]
        return torch.where(inside, marginal, torch.where(q["b"][:, 0] <= 1e-12, noise, data)).to(x.dtype)


def _truncated_normal_terms(low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""For a standard normal on ``[low, high]`` (elementwise): :math:`\log(\Phi(h) - \Phi(\ell))` and the mean
    :math:`(\varphi(\ell) - \varphi(h)) / (\Phi(h) - \Phi(\ell))`.

    Both are computed on the lower tail (an interval above zero is mirrored, which negates the mean) in log space,
    so that an interval far in a tail keeps its relative accuracy instead of cancelling to zero.
    """
    mirror = (low + high) > 0
    lo, hi = torch.where(mirror, -high, low), torch.where(mirror, -low, high)  # now lo < hi, mostly below zero
    log_cdf_hi, log_cdf_lo = torch.special.log_ndtr(hi), torch.special.log_ndtr(lo)
    log_mass = log_cdf_hi + torch.log(-torch.expm1(log_cdf_lo - log_cdf_hi))
    log_pdf_hi, log_pdf_lo = -0.5 * hi**2, -0.5 * lo**2  # log phi up to the same constant
    # phi(lo) - phi(hi) <= 0 on the lower tail's side of the mode; in general its sign is that of |hi| - |lo|
    difference = torch.exp(log_pdf_lo - log_mass - 0.5 * math.log(2 * math.pi)) - torch.exp(
        log_pdf_hi - log_mass - 0.5 * math.log(2 * math.pi)
    )
    return log_mass, torch.where(mirror, -difference, difference)


def _check_time_before_data(t: object) -> None:
    """A posterior over data points needs t in [0, 1): at t = 1 the noise is unidentifiable."""
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 <= t < 1.0:
        raise ValueError(f"t must be a float in [0, 1) (at t = 1 the noise is unidentifiable); got {t!r}")


def monte_carlo_velocity(
    data: torch.Tensor,
    x: torch.Tensor,
    t: float,
    interpolant: str | Interpolant = "linear",
) -> torch.Tensor:
    r"""Estimate :math:`b_t(x) = E[\dot I_t \mid I_t = x]` from data samples alone (chapter 2).

    Given :math:`I_t = x` and a data point :math:`x_1`, the noise must have been
    :math:`x_0 = (x - \beta_t x_1)/\alpha_t`, whose density is :math:`N(x_0; 0, I)`. So the
    posterior over the data points is proportional to :math:`\exp(-|x - \beta_t x_1|^2 / 2\alpha_t^2)`
    and the estimate is the weighted average of :math:`\dot\alpha_t x_0 + \dot\beta_t x_1`
    (self-normalised importance sampling). It needs no formula for the data, only samples,
    and it is accurate when many samples carry weight (not too close to t = 1).

    Args:
        data: ``(n, d)`` samples :math:`x_1` of the data.
        x: ``(batch, d)`` points at time t.
        t: a time in [0, 1).
        interpolant: the interpolant's name or object.

    Returns:
        ``(batch, d)`` estimates (float64).
    """
    as_points(data, "data")
    as_points(x, "x", dim=data.shape[1])
    _check_time_before_data(t)
    path = get_interpolant(interpolant)
    tt = torch.tensor(float(t), dtype=torch.float64)
    a, b, da, db = path.alpha(tt), path.beta(tt), path.dalpha(tt), path.dbeta(tt)
    x1 = data.to(torch.float64)
    estimates = []
    for point in x.to(torch.float64):
        noise = (point - b * x1) / a  # the noise each data point would need, (n, d)
        weights = torch.softmax(-0.5 * (noise**2).sum(1), dim=0)
        estimates.append(weights @ (da * noise + db * x1))
    return torch.stack(estimates)


def tangent_map(velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[..., torch.Tensor]:
    r"""The tangent used as a map, :math:`\hat X_{s,t}(x) = x + (t - s)\,b_s(x)`: one Euler step of any length.

    It satisfies identity and the tangent condition but not composition (chapters 4 and 5): the
    simplest *inconsistent* flow map, used to show what the explorer and the residuals flag.

    Args:
        velocity: ``velocity(x, t)`` with ``x`` ``(batch, d)`` and ``t`` ``(batch,)``.

    Returns:
        ``jump(x, s, t)``; ``s`` and ``t`` are floats or ``(batch,)`` tensors.
    """
    if not callable(velocity):
        raise TypeError("velocity must be callable as velocity(x, t)")

    def jump(x: torch.Tensor, s: TimeLike, t: TimeLike) -> torch.Tensor:
        as_points(x, "x")
        ss, tt = as_times(s, "s", x.shape[0], like=x), as_times(t, "t", x.shape[0], like=x)
        return x + column(tt - ss, x) * velocity(x, ss)

    return jump


def posterior_pairs(
    data: torch.Tensor,
    x: torch.Tensor,
    t: float,
    n: int,
    seed: int = 0,
    interpolant: str | Interpolant = "linear",
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Draw pairs :math:`(x_0, x_1)` whose interpolant passes through one point: :math:`I_t(x_0, x_1) = x`.

    The pairs a flow-matching or MeanFlow batch could have drawn at this point (chapter 8). Data
    points are resampled with the posterior weights of :func:`monte_carlo_velocity`,
    :math:`\propto \exp(-|x - \beta_t x_1|^2 / 2\alpha_t^2)`, and each gets the noise it needs,
    :math:`x_0 = (x - \beta_t x_1)/\alpha_t`. The mean of :math:`\dot I_t` over the pairs
    estimates :math:`b_t(x)`.

    Args:
        data: ``(N, d)`` samples of the data (the more, the better the posterior).
        x: one point ``(d,)`` at time t.
        t: a time in [0, 1).
        n: number of pairs.
        seed: seed of the resampling.
        interpolant: the interpolant's name or object.

    Returns:
        ``x0, x1``, each ``(n, d)`` float64.
    """
    as_points(data, "data")
    point = torch.as_tensor(x, dtype=torch.float64)
    if point.shape != (data.shape[1],):
        raise ValueError(f"x must be one point of shape ({data.shape[1]},); got {tuple(point.shape)}")
    _check_time_before_data(t)
    check_positive_int(n, "n")
    path = get_interpolant(interpolant)
    tt = torch.tensor(float(t), dtype=torch.float64)
    a, b = path.alpha(tt), path.beta(tt)
    x1 = data.to(torch.float64)
    weights = torch.softmax(-0.5 * (((point - b * x1) / a) ** 2).sum(1), dim=0)
    index = torch.multinomial(weights, n, replacement=True, generator=torch.Generator().manual_seed(seed))
    chosen = x1[index]
    return (point - b * chosen) / a, chosen


def gaussian_flow_map(
    x: torch.Tensor,
    s: TimeLike,
    t: TimeLike,
    mean: ArrayLike,
    cov: ArrayLike,
    interpolant: str | Interpolant = "linear",
) -> torch.Tensor:
    r"""Closed-form flow map when the data is a single Gaussian :math:`N(\mu, \Sigma)`.

    The marginal at time t is :math:`N(m_t, C_t)` with :math:`m_t = \beta_t\mu` and
    :math:`C_t = \alpha_t^2 I + \beta_t^2\Sigma`. All :math:`C_t` share :math:`\Sigma`'s
    eigenvectors, so the map is affine:

    .. math:: X_{s,t}(x) = m_t + C_t^{1/2} C_s^{-1/2} (x - m_s).

    For the linear interpolant and :math:`\Sigma = \sigma^2 I` this is
    :math:`m_t + (\sigma_t/\sigma_s)(x - m_s)` with :math:`\sigma_t^2 = (1-t)^2 + t^2\sigma^2`.

    Args:
        x: ``(batch, d)`` points at time s.
        s: start time, float or ``(batch,)`` tensor in [0, 1].
        t: end time, float or ``(batch,)`` tensor in [0, 1].
        mean: ``(d,)`` mean of the data.
        cov: a variance σ² (isotropic) or a ``(d, d)`` covariance matrix.
        interpolant: the interpolant's name or object.

    Returns:
        ``(batch, d)`` with ``x``'s dtype.
    """
    as_points(x, "x")
    mu = _as_float64(mean, "mean").reshape(-1)
    dim = x.shape[1]
    if mu.shape[0] != dim:
        raise ValueError(f"mean must have {dim} entries to match x; got {mu.shape[0]}")
    cov64 = _as_float64(cov, "cov")
    if cov64.ndim == 0:
        cov64 = cov64.reshape(1)
    elif cov64.ndim == 2:
        cov64 = cov64[None]
    else:
        raise ValueError(f"cov must be a variance or a ({dim}, {dim}) matrix; got shape {tuple(cov64.shape)}")
    sigma = _covariances(cov64, 1, dim)[0]
    lam, vec = torch.linalg.eigh(sigma)
    if bool((lam <= 0).any()):
        raise ValueError("cov must be positive definite")
    path = get_interpolant(interpolant)
    x64 = x.to(torch.float64)
    ss = as_times(s, "s", x.shape[0], like=x64)[:, None]
    tt = as_times(t, "t", x.shape[0], like=x64)[:, None]
    c_s = path.alpha(ss) ** 2 + path.beta(ss) ** 2 * lam[None]
    c_t = path.alpha(tt) ** 2 + path.beta(tt) ** 2 * lam[None]
    coords = (x64 - path.beta(ss) * mu[None]) @ vec  # eigen-coordinates, (batch, d)
    moved = path.beta(tt) * mu[None] + (coords * (c_t / c_s).sqrt()) @ vec.T
    return moved.to(x.dtype)


class LinearField:
    r"""A time-independent linear velocity :math:`b(x) = A x` with its exact flow map (chapter 1).

    The solution of :math:`\dot x = A x` is :math:`x(t) = e^{(t-s)A} x(s)`, so
    :math:`X_{s,t}(x) = e^{(t-s)A}x` — for every s and t, forwards and backwards.

    Args:
        matrix: ``(d, d)`` matrix A.
        name: a label for plots.
    """

    def __init__(self, matrix: ArrayLike, name: str = "linear field") -> None:
        a = _as_float64(matrix, "matrix")
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise ValueError(f"matrix must be square (d, d); got shape {tuple(a.shape)}")
        self.matrix = a
        self.name = name

    @classmethod
    def rotation(cls, turns: float = 0.5) -> LinearField:
        r"""Rotation by ``turns`` full turns per unit time: :math:`A = 2\pi\,\mathrm{turns}\,[[0, -1], [1, 0]]`."""
        w = 2 * math.pi * turns
        return cls([[0.0, -w], [w, 0.0]], name=f"rotation ({turns} turn per unit time)")

    @classmethod
    def shear(cls, rate: float = 2.0) -> LinearField:
        """Horizontal shear :math:`A = [[0, k], [0, 0]]`: points slide sideways at speed k·y."""
        return cls([[0.0, rate], [0.0, 0.0]], name=f"shear (rate {rate})")

    @classmethod
    def spiral(cls, turns: float = 0.5, decay: float = 1.0) -> LinearField:
        r"""Rotation plus contraction, :math:`A = -\mathrm{decay}\,I + 2\pi\,\mathrm{turns}\,J`."""
        w = 2 * math.pi * turns
        return cls([[-decay, -w], [w, -decay]], name=f"spiral ({turns} turn, decay {decay})")

    @property
    def dim(self) -> int:
        """Dimension d."""
        return self.matrix.shape[0]

    def __repr__(self) -> str:
        return f"LinearField({self.name!r}, A={self.matrix.tolist()})"

    def velocity(self, x: torch.Tensor, t: TimeLike = 0.0) -> torch.Tensor:
        """:math:`b(x) = A x` for ``x`` of shape ``(batch, d)``; ``t`` is accepted and ignored."""
        as_points(x, "x", dim=self.dim)
        return x @ self.matrix.to(x.dtype).T

    def flow_map(self, x: torch.Tensor, s: TimeLike, t: TimeLike) -> torch.Tensor:
        """:math:`X_{s,t}(x) = e^{(t-s)A} x`; ``x`` ``(batch, d)``, ``s``/``t`` floats or ``(batch,)``."""
        as_points(x, "x", dim=self.dim)
        x64 = x.to(torch.float64)
        ss = as_times(s, "s", x.shape[0], like=x64)
        tt = as_times(t, "t", x.shape[0], like=x64)
        propagators = torch.linalg.matrix_exp((tt - ss)[:, None, None] * self.matrix[None])
        return torch.einsum("bij,bj->bi", propagators, x64).to(x.dtype)
