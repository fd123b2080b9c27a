"""The weak-form loss of a space-time SPDE that is diagonal in the spatial Fourier modes, tested in time
against compactly supported hat functions.

For the advection–diffusion SPDE (Clarotto et al. 2024, §2.2) on a torus the coefficient of mode ω solves
A' + λ_ω A = ξ_ω, ξ_ω complex white noise of intensity q_ω. Tested against hats ψ_1..ψ_J in time (compact
support, so ⟨A', ψ⟩ = −⟨A, ψ'⟩ and no derivative of the generator is needed), the residuals
R_j = ∫ A(t)(−ψ_j'(t) + λ_ω ψ_j(t)) dt of the true solution are circular complex Gaussian with
E[R Rᴴ] = q_ω G, G_jk = ∫ ψ_j ψ_k. For a generator whose modes are OU processes with rate λ̂ and variance v̂
(:class:`~pinnprob.generators.fourier_ou.FourierOUGenerator`), E[R Rᴴ] = ∫∫ f_j(t) C_A(t − t') f̄_k(t') is
computed by the midpoint rule, f_j = −ψ_j' + λψ_j, and the loss is KL(law of R ‖ N_C(0, q_ω G)) per test
function, averaged over modes. Time is measured in units of 1/Re λ_ω for each mode (the hats have spacing
1/Re λ_ω), so that every mode is tested at its own time scale.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from pinnprob.spde.advection_diffusion import AdvectionDiffusion

__all__ = ["OUWeakFormLoss", "ou_residual_covariance"]


def ou_residual_covariance(rho: complex, v: float, mu: float, num_test: int = 8, sub: int = 16,
                           width: float = 1.0):
    """E[R Rᴴ] (J, J) of the residuals R_j = ∫ A(−ψ_j' + (1 + iμ)ψ_j) dt of a stationary complex OU process
    A with rate ρ and E|A|² = v (time in units of the true rate's real part), and the target 2G (J, J) for
    the true law (ρ = 1 + iμ, v = 1). The hats ψ_j(t) = ψ(t − jb) (half-width b = ``width``) are
    translates, so both matrices are Toeplitz: P_jk = p(j − k), p(ℓ) = ∫∫ f(t) C(t − t' + ℓb) f̄(t') dt dt'
    with f = −ψ' + (1 + iμ)ψ on [−b, b], by the midpoint rule with ``sub`` points per half-width."""
    b = width
    t = b * ((jnp.arange(2 * sub) + 0.5) / sub - 1.0)  # midpoints on [−b, b]
    w = b / sub
    psi = 1.0 - jnp.abs(t) / b
    f = (jnp.sign(t) / b + (1.0 + 1j * mu) * psi) * w  # −ψ' = sign(t)/b on the hat's support
    lags = b * jnp.arange(-(num_test - 1), num_test)
    s = t[None, :, None] - t[None, None, :] + lags[:, None, None]  # (2J − 1, N, N)
    # E[A(t) Ā(t')] = v e^{−ρ s} for s = t − t' ≥ 0 and v e^{ρ̄ s} for s < 0: one expression, no overflow
    C = v * jnp.exp(-rho.real * jnp.abs(s) - 1j * rho.imag * s)
    p = jnp.einsum("a,lab,b->l", f, C, jnp.conj(f))
    idx = np.arange(num_test)[:, None] - np.arange(num_test)[None, :] + (num_test - 1)
    return p[idx], jnp.asarray(2.0 * hat_gram(num_test, b), p.real.dtype)  # P_jk = p(j − k)


@functools.lru_cache(maxsize=None)
def hat_gram(num_test: int, width: float) -> np.ndarray:
    """G_jk = ∫ ψ(t − jb) ψ(t − kb) dt for hats of half-width b: 2b/3 on the diagonal, b/6 next to it
    (exact), (J, J) NumPy."""
    d = np.abs(np.arange(num_test)[:, None] - np.arange(num_test)[None, :])
    return width * np.where(d == 0, 2.0 / 3.0, np.where(d == 1, 1.0 / 6.0, 0.0))


def _logdet_toeplitz(t: Array) -> Array:
    """log det of the Hermitian positive definite Toeplitz matrix with first column t (J,), by the
    Levinson–Durbin recursion (Levinson 1947; Durbin 1960): O(J²) array operations, no factorisation call
    (batched LAPACK calls under vmap were seen to deadlock XLA's CPU runtime on a 2-core machine)."""
    J = t.shape[0]
    E = t[0].real
    logdet = jnp.log(E)
    a = jnp.zeros((0,), t.dtype)  # the forward predictor of order m
    for m in range(1, J):
        k = -(t[m] + jnp.sum(a * t[m - 1:0:-1] if m > 1 else 0.0)) / E
        a = jnp.concatenate([a + k * jnp.conj(a[::-1]), k[None]])
        E = E * (1.0 - jnp.abs(k) ** 2)
        logdet = logdet + jnp.log(E)
    return logdet


@functools.lru_cache(maxsize=None)
def _noise_law(num_test: int, width: float, jitter: float):
    # the tested noise Q = 2G (+ jitter), with its inverse and log det: NumPy constants of the loss
    G = 2.0 * hat_gram(num_test, width)
    eps = jitter * float(np.mean(np.diag(G)))
    Q = G + eps * np.eye(num_test)
    return np.linalg.inv(Q), float(np.linalg.slogdet(Q)[1]), eps


def _complex_kl(P, num_test: int, width: float, jitter: float):
    """KL(N_C(0, P) ‖ N_C(0, 2G)) per test function for circular complex Gaussians (the KL of their real
    2J-dimensional forms): tr(Q⁻¹P) − J + log det Q − log det P, P Hermitian Toeplitz (J, J)."""
    Qinv, logdet_q, eps = _noise_law(num_test, float(width), float(jitter))
    t = P[:, 0] + eps * (jnp.arange(num_test) == 0)
    trace = jnp.real(jnp.sum(jnp.asarray(Qinv.T, P.dtype) * P)) + eps * float(np.trace(Qinv))
    return (trace - num_test + logdet_q - _logdet_toeplitz(t)) / num_test


class OUWeakFormLoss(eqx.Module):
    """KL of the time-tested residuals against the tested noise, averaged over spatial modes, at one θ (p,)
    of an :class:`AdvectionDiffusion` SPDE; ``__call__(generator, key, theta) -> scalar``. ``num_modes``
    modes are drawn each step (uniformly in log |ω|), the zero mode always. Two families of hats are used,
    of half-widths ``widths`` (in units of 1/Re λ_ω), with ``sub`` midpoints per unit half-width (at least
    ``sub`` per hat): narrow hats fix the noise intensity 2 Re λ̂ v̂, wide ones the rate λ̂ itself (with
    narrow hats alone the loss is flat along v̂ Re λ̂ = const, and training stalls there)."""

    spde: AdvectionDiffusion
    num_test: int = eqx.field(static=True, default=8)
    sub: int = eqx.field(static=True, default=8)
    num_modes: int | None = eqx.field(static=True, default=None)
    widths: tuple = eqx.field(static=True, default=(1.0, 2.0))
    jitter: float = eqx.field(static=True, default=1e-6)

    def __call__(self, gen, key: PRNGKeyArray, theta: Float[Array, " p"]) -> Array:
        omega = jax.lax.stop_gradient(gen.omega)
        if self.num_modes is not None and self.num_modes < omega.shape[0]:
            norm = jnp.sqrt(jnp.sum(omega**2, 1))
            p = 1.0 / norm
            idx = jax.random.choice(key, omega.shape[0], (self.num_modes,), replace=False, p=p / jnp.sum(p))
            omega = omega[idx]
        omega = jnp.concatenate([jnp.zeros((1, omega.shape[1])), omega])
        re, im = self.spde.rates(omega, theta)
        log_v_true = jnp.log(4.0) + self.spde.log_mode_variance(omega, theta) - jnp.log(
            jnp.prod(jnp.asarray(self.spde.domain.lengths)))
        log_v, log_r, m = gen.mode_params(theta, omega)
        rho = (jnp.exp(log_r) + 1j * m) / re  # the generator's rate in units of the true Re λ
        v = jnp.exp(log_v - log_v_true)  # its variance relative to the true one
        mu = im / re

        def one(rho_k, v_k, mu_k):
            kl = 0.0
            for b in self.widths:
                sub = max(self.sub, int(round(self.sub * b / 2)))
                P, _ = ou_residual_covariance(rho_k, v_k, mu_k, self.num_test, sub, b)
                kl = kl + _complex_kl(P, self.num_test, b, self.jitter)
            return kl / len(self.widths)

        return jnp.mean(jax.vmap(one)(rho, v, mu))
