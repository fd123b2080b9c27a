"""A space-time generator on a torus: Fourier modes in space, each a learned complex Ornstein–Uhlenbeck
process in time.

    u(x, t) = A_0(t) + Σ_{ω ∈ half lattice} Re(A_ω(t) e^{iω·x}),
    dA_ω = −λ̂_ω A_ω dt + √(2 Re λ̂_ω v̂_ω) dW_ω,   λ̂_ω = r̂(θ, ω) + i m̂(θ, ω),  E|A_ω|² = v̂(θ, ω),

with (log v̂, log r̂, m̂) one small network of θ and the operator's base symbol at ω. The law is Gaussian
and exact in time (no truncation of time frequencies: an OU path is rough, its spectrum a Lorentzian):

    C(h, s) = v̂_0/4 e^{−r̂_0|s|} + Σ_ω (v̂_ω/2) e^{−r̂_ω|s|} cos(ω·h − m̂_ω s) + δ(θ) 1[h = 0, s = 0],

δ(θ) the spatial marginal's variance beyond the trunk's modes (put back as independent noise, as the
stationary default does). For an SPDE whose every term is diagonal in the Fourier modes — the
advection–diffusion SPDE of Clarotto et al. (2024, §2.2) — the true law is of this form, so the network
can represent it; what it is trained on is the equation's weak form in time
(:class:`pinnprob.spacetime_loss.OUWeakFormLoss`).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from pinnprob.spde.advection_diffusion import AdvectionDiffusion
from pinnprob.special import betainc

__all__ = ["FourierOUGenerator", "half_lattice"]


def half_lattice(lengths, num_per_dim: int) -> np.ndarray:
    """The spatial frequencies ω = 2πk/L of the half lattice (k ≠ 0, its first nonzero coordinate > 0,
    |k_i| < num_per_dim, |k| < num_per_dim), ordered by |ω|; shape (K, d)."""
    L = np.asarray(lengths, np.float64)
    d = L.shape[0]
    grids = np.meshgrid(*[np.arange(-num_per_dim + 1, num_per_dim) for _ in range(d)], indexing="ij")
    k = np.stack([g.ravel() for g in grids], -1)
    first = np.where(k[:, 0] != 0, k[:, 0], k[:, -1])
    k = k[(first > 0) & (np.sum(k**2, 1) < num_per_dim**2)]
    omega = 2 * np.pi * k / L
    return omega[np.argsort(np.sum(omega**2, 1), kind="stable")]


class FourierOUGenerator(eqx.Module):
    """Learned OU modes on the Fourier trunk of a torus, for an :class:`AdvectionDiffusion` SPDE (σ = 1).

    ``omega`` (K, d) the trunk's half lattice; ``net`` maps (normalised θ, base-symbol features) to
    (log v̂, log r̂, m̂) per mode."""

    spde: AdvectionDiffusion
    omega: Float[Array, "K d"]
    net: eqx.nn.MLP
    feature_scale: float = eqx.field(static=True)

    def __init__(self, key: PRNGKeyArray, spde: AdvectionDiffusion, num_per_dim: int = 128, width: int = 64,
                 depth: int = 3):
        self.spde = spde
        self.omega = jnp.asarray(half_lattice(spde.domain.lengths, num_per_dim))
        self.net = eqx.nn.MLP(spde.space.dim + 2, 3, width, depth, activation=jax.nn.tanh, key=key)
        self.feature_scale = float(math.log1p(float(jnp.max(jnp.sum(self.omega**2, 1)))))

    @property
    def space(self):
        return self.spde.space

    @property
    def num_modes(self) -> int:
        return int(self.omega.shape[0])

    def features(self, omega: Float[Array, "K d"], theta: Float[Array, " p"]) -> Float[Array, "K 2"]:
        """The operator's base symbol at each ω, as the network sees it: log(κ² + ωᵀHω) scaled to about
        [−1, 1], and v·ω/(|ω| v_max), the advection's phase speed along ω relative to the box's largest."""
        p = self.spde.operator_params(theta)
        q = jnp.einsum("ka,ab,kb->k", omega, p.H, omega)
        s1 = 2.0 * jnp.log(p.kappa**2 + q) / self.feature_scale - 1.0
        norm = jnp.sqrt(jnp.sum(omega**2, 1))
        s2 = (omega @ (p.gamma / p.c)) / (self.max_speed * jnp.where(norm > 0, norm, 1.0))
        return jnp.stack([s1, s2], -1)

    @property
    def max_speed(self) -> float:
        return max(max(abs(a) for a in self.space.bounds(n)) for n in self.spde.velocity_names)

    @property
    def alpha_mid(self) -> float:
        return 0.5 * sum(self.space.bounds("alpha"))

    def mode_params(self, theta: Float[Array, " p"], omega: Float[Array, "K d"] | None = None):
        """(log v̂, log r̂, m̂) at the modes ω (default: the trunk's), each (K,). v̂ = E|A_ω|² in the
        normalisation u = Re Σ A_ω e^{iω·x}; r̂, m̂ the real and imaginary parts of the rate."""
        omega = jax.lax.stop_gradient(self.omega if omega is None else omega)  # the trunk is fixed
        th = self.space.normalize(theta)
        f = self.features(omega, theta)
        out = jax.vmap(self.net)(jnp.concatenate([jnp.broadcast_to(th, (f.shape[0], th.shape[-1])), f], 1))
        # the outputs are the powers of the base symbol κ² + ωᵀHω in the mode's variance and rate (around
        # the middle ᾱ of the box's α) and the relative error of its phase speed, with the operator's τ and c
        # as the scales: an OU mode with rate (κ² + ωᵀHω)^{ᾱ+o₁}/c, variance 2τ²(κ² + ωᵀHω)^{−ᾱ−o₀}/Lᵈ and
        # phase speed (1 + o₂) v·ω. The network learns the powers and the speed, not orders of magnitude.
        p = self.spde.operator_params(theta)
        log_base = jnp.log(p.kappa**2 + jnp.einsum("ka,ab,kb->k", omega, p.H, omega))
        vol = math.prod(self.spde.domain.lengths)
        log_v = math.log(2.0) + 2.0 * jnp.log(p.tau) - math.log(vol) - (self.alpha_mid + out[:, 0]) * log_base
        log_r = (self.alpha_mid + out[:, 1]) * log_base - jnp.log(p.c)
        m = (1.0 + out[:, 2]) * (omega @ (p.gamma / p.c))
        return log_v, log_r, m

    def tail_variance(self, theta: Float[Array, " p"]) -> Array:
        """The spatial marginal's variance (σ = 1) beyond the trunk's largest |ω| = Ω, in the continuum:
        (τ²/2) ∫_{|ω|>Ω} (κ² + ωᵀHω)^{−α} dω/(2π)^d. 1-D: I_x(ν, ½), x = κ²/(κ² + Ω²) (the regularised
        incomplete beta); 2-D, in polar coordinates with h(φ) = eᵀHe: (τ²/8π²) ∫₀^{2π} (κ² + Ω²h)^{1−α}
        / (2h(α − 1)) dφ, by the trapezoidal rule (periodic, so spectrally accurate)."""
        p = self.spde.operator_params(theta)
        Omega2 = jnp.max(jnp.sum(jax.lax.stop_gradient(self.omega) ** 2, 1))
        if self.spde.dim == 1:
            return betainc(p.alpha - 0.5, 0.5, p.kappa**2 / (p.kappa**2 + Omega2))
        phi = jnp.arange(128) * (2 * math.pi / 128)
        e = jnp.stack([jnp.cos(phi), jnp.sin(phi)], -1)
        h = jnp.einsum("ka,ab,kb->k", e, p.H, e)
        radial = (p.kappa**2 + Omega2 * h) ** (1.0 - p.alpha) / (2.0 * h * (p.alpha - 1.0))
        return p.tau**2 / (8 * math.pi**2) * jnp.mean(radial) * 2 * math.pi

    def covariance(self, X: Float[Array, "n d"], T: Float[Array, " n"], Y: Float[Array, "p d"],
                   S: Float[Array, " p"], theta: Float[Array, " p"]) -> Float[Array, "n p"]:
        """The generator's exact covariance between (X_i, T_i) and (Y_j, S_j), σ = 1, shape (n, p)."""
        h = X[:, None, :] - Y[None, :, :]
        s = T[:, None] - S[None, :]
        return self.stationary_covariance(h, s, theta)

    def covariance_table(self, H: Float[Array, "P d"], lags: Float[Array, " L"],
                         theta: Float[Array, " p"]) -> Float[Array, "P L"]:
        """C(h, s) for every spatial separation H_a and time lag s_l (σ = 1), shape (P, L): the law is
        stationary, so the covariance of many site-time pairs on few sites and lags is a gather from this
        table (:class:`pinnprob.spacetime_prior.PairLagIndex`)."""
        # cos(ω·h − m s) = cos ω·h cos m s + sin ω·h sin m s: the θ-free (P, K) and the θ-dependent (K, L)
        # factors meet in two matrix products, O((P + L) K) transcendentals instead of O(P L K)
        log_v, log_r, m = self.mode_params(theta)
        zero = self.mode_params(theta, jnp.zeros((1, self.spde.dim)))
        a = 0.5 * jnp.exp(log_v[:, None] - jnp.exp(log_r)[:, None] * jnp.abs(lags)[None, :])  # (K, L)
        ms = m[:, None] * lags[None, :]
        wh = H @ jax.lax.stop_gradient(self.omega).T  # (P, K)
        C = jnp.cos(wh) @ (a * jnp.cos(ms)) + jnp.sin(wh) @ (a * jnp.sin(ms))
        C = C + 0.25 * jnp.exp(zero[0][0] - jnp.exp(zero[1][0]) * jnp.abs(lags))[None, :]
        same = (jnp.sum(H**2, -1) == 0)[:, None] & (lags == 0)[None, :]
        return C + self.tail_variance(theta) * same

    def stationary_covariance(self, h: Float[Array, "*b d"], s: Float[Array, "*b"],
                              theta: Float[Array, " p"]) -> Float[Array, "*b"]:
        """C(h, s) = cov(u(x + h, t + s), u(x, t)) (σ = 1) at separations h (..., d) and lags s (...)."""
        log_v, log_r, m = self.mode_params(theta)
        zero = self.mode_params(theta, jnp.zeros((1, self.spde.dim)))
        phase = jnp.einsum("...d,kd->...k", h, self.omega) - s[..., None] * m
        C = jnp.sum(0.5 * jnp.exp(log_v - jnp.exp(log_r) * jnp.abs(s)[..., None]) * jnp.cos(phase), -1)
        C = C + 0.25 * jnp.exp(zero[0][0] - jnp.exp(zero[1][0]) * jnp.abs(s))
        same = (jnp.sum(h**2, -1) == 0) & (s == 0)
        return C + self.tail_variance(theta) * same

    def sample(self, key: PRNGKeyArray, X: Float[Array, "n d"], times: Float[Array, " T"],
               theta: Float[Array, " p"], num: int) -> Float[Array, "num T n"]:
        """``num`` exact draws of the generator's field at sites X and increasing times, (num, T, n): each
        mode stepped exactly between the times, started in its stationary law (a ``lax.scan``)."""
        log_v, log_r, m = self.mode_params(theta)
        zl = self.mode_params(theta, jnp.zeros((1, self.spde.dim)))
        v = jnp.concatenate([jnp.exp(log_v), 0.25 * jnp.exp(zl[0])])  # the zero mode is real: E A₀² = v̂₀/4
        lam = jnp.concatenate([jnp.exp(log_r) + 1j * m, jnp.exp(zl[1]) + 0j])
        E = jnp.concatenate([jnp.exp(1j * (X @ self.omega.T)), jnp.ones((X.shape[0], 1))], 1)  # (n, K + 1)
        is_real = jnp.arange(v.shape[0]) == v.shape[0] - 1
        k0, k1, k2 = jax.random.split(key, 3)

        def noise(k):
            a, b = jax.random.normal(k, (2, num, v.shape[0]))
            return jnp.where(is_real, a, (a + 1j * b) / math.sqrt(2.0))

        A0 = jnp.sqrt(v) * noise(k0)
        dts = jnp.diff(times, prepend=times[:1])

        def step(A, inp):
            dt, k = inp
            A = jnp.exp(-lam * dt) * A + jnp.sqrt(v * -jnp.expm1(-2.0 * lam.real * dt)) * noise(k)
            return A, (A @ E.T).real

        _, U = jax.lax.scan(step, A0, (dts, jax.random.split(k1, times.shape[0])))
        U = jnp.moveaxis(U, 0, 1)
        return U + jnp.sqrt(self.tail_variance(theta)) * jax.random.normal(k2, U.shape)
