"""Divergences between zero-mean Gaussians and between empirical samples.

Closed forms compare two covariance matrices (the target law of the test-function
residuals ⟨W, φ⟩ and a Gaussian model of the generator's). Sample estimators compare
two point clouds of shape ``(N, K)``. Every function is pure ``jax.numpy``, takes
explicit PRNG keys where randomness is needed, and works under ``jax.jit``,
``jax.vmap`` and ``jax.grad``. Shapes are static, so shape errors are raised at trace
time. Matrix products use ``Precision.HIGHEST`` so that accelerators do not fall back
to reduced-precision (TF32) arithmetic, which would corrupt the cancellations in
``tr P + tr Q − 2 tr(...)`` and in pairwise squared distances.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

__all__ = [
    "gaussian_kl",
    "gaussian_kl_diag",
    "gaussian_w2",
    "gaussian_w2_diag",
    "sliced_wasserstein",
    "mmd",
    "energy_distance",
    "moment_matched_kl",
    "moment_matched_w2",
]

# eps inside square roots: the value is the exact √λ, the gradient that of √(λ + eps).
_SQRT_EPS = 1e-12


def _matrix_sqrt_eps(dtype) -> float:
    """gaussian_w2's default eps: above the round-off with which a float32 ``eigh`` returns the zero
    eigenvalues of a rank-deficient matrix (≈ 1e-7 ‖P‖, of either sign), which with eps = 1e-12
    dominate √(λ + eps) and can flip the sign of the smoothed gradient along P's null space."""
    return 1e-6 if jnp.finfo(dtype).bits <= 32 else _SQRT_EPS
# tiny added under the norm in the energy distance: ‖v‖ ≈ √(‖v‖² + tiny).
_NORM_TINY = 1e-12
# Median-heuristic multipliers for the default MMD bandwidths.
_MEDIAN_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)
# Rows of each sample used for the median heuristic.
_MEDIAN_MAX_ROWS = 128
# Relative jitter that keeps a moment-matched covariance positive definite.
_KL_JITTER = 1e-6

_mm = functools.partial(jnp.matmul, precision=jax.lax.Precision.HIGHEST)


def _symmetrize(a: Float[Array, "K K"]) -> Float[Array, "K K"]:
    return 0.5 * (a + a.T)


# ---------------------------------------------------------------------------
# Closed forms between zero-mean Gaussians
# ---------------------------------------------------------------------------


def gaussian_kl(cov_p: Float[Array, "K K"], cov_q: Float[Array, "K K"]) -> Float[Array, ""]:
    """KL(N(0, P) ‖ N(0, Q)) for SPD ``(K, K)`` matrices; returns a scalar.

    NaN if either matrix is not numerically positive definite (Cholesky fails): add
    jitter first.
    """
    k = cov_p.shape[-1]
    chol_p = jnp.linalg.cholesky(_symmetrize(cov_p))
    chol_q = jnp.linalg.cholesky(_symmetrize(cov_q))
    # KL = ½ [tr(Q⁻¹P) − K + log det Q − log det P]
    # with P = L_P L_Pᵀ, Q = L_Q L_Qᵀ: tr(Q⁻¹P) = ‖L_Q⁻¹ L_P‖_F², log det Q = 2 Σ log diag L_Q.
    whitened = solve_triangular(chol_q, chol_p, lower=True)
    trace_term = jnp.sum(whitened**2)
    logdet_q = 2.0 * jnp.sum(jnp.log(jnp.diag(chol_q)))
    logdet_p = 2.0 * jnp.sum(jnp.log(jnp.diag(chol_p)))
    return 0.5 * (trace_term - k + logdet_q - logdet_p)


def gaussian_kl_diag(var_p: Float[Array, "K"], var_q: Float[Array, "K"]) -> Float[Array, ""]:
    """KL(N(0, diag p) ‖ N(0, diag q)) for positive variance vectors ``(K,)``; a scalar."""
    # KL = ½ Σ_i [p_i / q_i − 1 + log q_i − log p_i]
    return 0.5 * jnp.sum(var_p / var_q - 1.0 + jnp.log(var_q) - jnp.log(var_p))


def _smooth_sqrt(x: Float[Array, "*shape"], eps: float) -> Float[Array, "*shape"]:
    """√max(x, 0) in value, with the gradient of √(max(x, 0) + eps), finite at 0."""
    x = jnp.maximum(x, 0.0)
    smooth = jnp.sqrt(x + eps)
    return smooth + jax.lax.stop_gradient(jnp.sqrt(x) - smooth)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _sqrtm_psd(a: Float[Array, "K K"], eps: float) -> Float[Array, "K K"]:
    """(A + eps I)^{1/2} of a symmetric PSD matrix, negative eigenvalues clipped to 0."""
    lam, u = jnp.linalg.eigh(_symmetrize(a))
    root = jnp.sqrt(jnp.maximum(lam, 0.0) + eps)
    return _mm(u * root, u.T)


@_sqrtm_psd.defjvp
def _sqrtm_psd_jvp(eps, primals, tangents):
    # Daleckii–Krein: for A = U diag(λ) Uᵀ and a spectral function f,
    #   d f(A)[E] = U (F ∘ (Uᵀ E U)) Uᵀ,  F_ij = (f(λ_i) − f(λ_j)) / (λ_i − λ_j), F_ii = f'(λ_i).
    # For f(λ) = √(λ + eps), F_ij = 1 / (√(λ_i + eps) + √(λ_j + eps)) in all cases, so
    # repeated eigenvalues (where eigh's own derivative is 1/0) cause no trouble.
    (a,), (da,) = primals, tangents
    lam, u = jnp.linalg.eigh(_symmetrize(a))
    root = jnp.sqrt(jnp.maximum(lam, 0.0) + eps)
    divided_differences = 1.0 / (root[:, None] + root[None, :])
    rotated = _mm(_mm(u.T, _symmetrize(da)), u)
    return _mm(u * root, u.T), _mm(_mm(u, divided_differences * rotated), u.T)


def _bures_cross_term(cov_p: Float[Array, "K K"], cov_q: Float[Array, "K K"], eps: float) -> Float[Array, ""]:
    # tr (P^{1/2} Q P^{1/2})^{1/2}, with eps added to every eigenvalue under a square root.
    root_p = _sqrtm_psd(cov_p, eps)
    return jnp.trace(_sqrtm_psd(_mm(_mm(root_p, cov_q), root_p), eps))


def gaussian_w2(
    cov_p: Float[Array, "K K"], cov_q: Float[Array, "K K"], eps: float | None = None
) -> Float[Array, ""]:
    """Squared 2-Wasserstein (Bures) distance between N(0, P) and N(0, Q); a scalar.

    ``P`` and ``Q`` are symmetric positive semi-definite ``(K, K)``; rank-deficient
    matrices are allowed. Tiny negative eigenvalues from round-off are clipped to 0.

    The value is exact. The gradient is that of the same formula with every square
    root √λ replaced by √(λ + eps): the exact gradient, I − T with T the optimal
    transport map, is unbounded as an eigenvalue of ``P`` tends to 0 (for K = 1,
    d/dp (√p − √q)² = 1 − √(q/p)), so ``eps`` (a static Python float; default 1e-6 in
    float32, where ``eigh``'s round-off of a zero eigenvalue is about 1e-7 ‖P‖, and 1e-12
    in float64) bounds it by about √(q / eps) while keeping its sign. This costs a second
    evaluation.

    Precision: a zero eigenvalue comes back from ``eigh`` as round-off δ ≈ 1e-7 ‖P‖ in
    float32, and √δ ≈ 3e-4 √‖P‖, so for (nearly) rank-deficient matrices expect
    absolute errors of that order; full-rank, well-conditioned inputs agree with a
    float64 reference to about 1e-5 relative.
    """
    # W2² = tr P + tr Q − 2 tr (P^{1/2} Q P^{1/2})^{1/2}
    eps = _matrix_sqrt_eps(jnp.result_type(cov_p, cov_q)) if eps is None else eps
    exact = _bures_cross_term(jax.lax.stop_gradient(cov_p), jax.lax.stop_gradient(cov_q), 0.0)
    smooth = _bures_cross_term(cov_p, cov_q, eps)
    cross = smooth + jax.lax.stop_gradient(exact - smooth)
    w2 = jnp.trace(cov_p) + jnp.trace(cov_q) - 2.0 * cross
    return jnp.maximum(w2, 0.0)  # a squared distance: clip the round-off below 0


def gaussian_w2_diag(
    var_p: Float[Array, "K"], var_q: Float[Array, "K"], eps: float = _SQRT_EPS
) -> Float[Array, ""]:
    """Squared 2-Wasserstein distance between N(0, diag p) and N(0, diag q); a scalar.

    Variances must be non-negative; ``eps`` bounds the gradient at 0 as in
    :func:`gaussian_w2`.
    """
    # W2² = Σ_i (√p_i − √q_i)²
    return jnp.sum((_smooth_sqrt(var_p, eps) - _smooth_sqrt(var_q, eps)) ** 2)


# ---------------------------------------------------------------------------
# Estimators between samples
# ---------------------------------------------------------------------------


def _check_samples(x: Array, y: Array, name: str, *, equal_size: bool = False, min_size: int = 1) -> None:
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"{name}: x and y must have shapes (N, K) and (M, K), got {x.shape} and {y.shape}")
    if equal_size and x.shape[0] != y.shape[0]:
        raise ValueError(f"{name}: needs equally many samples, got N={x.shape[0]} and M={y.shape[0]}")
    if min(x.shape[0], y.shape[0]) < min_size:
        raise ValueError(f"{name}: needs at least {min_size} samples each, got {x.shape[0]} and {y.shape[0]}")


def sliced_wasserstein(
    key: PRNGKeyArray,
    x: Float[Array, "N K"],
    y: Float[Array, "N K"],
    num_projections: int = 128,
) -> Float[Array, ""]:
    """Squared sliced 2-Wasserstein distance between the empirical laws of ``x`` and ``y``.

    ``x`` and ``y`` are ``(N, K)`` with the same N (else ``ValueError``);
    ``num_projections`` random unit directions are drawn from ``key`` (static under jit).
    Returns a scalar, biased upwards by O(1/N) when the two laws are equal.
    """
    _check_samples(x, y, "sliced_wasserstein", equal_size=True)
    # SW2² = E_θ W2²(θᵀX, θᵀY), θ uniform on the sphere; in 1-D the optimal coupling pairs
    # order statistics, W2² = (1/N) Σ_i (x_(i) − y_(i))².
    directions = jax.random.normal(key, (x.shape[1], num_projections), dtype=x.dtype)
    directions = directions / jnp.linalg.norm(directions, axis=0, keepdims=True)
    proj_x = jnp.sort(_mm(x, directions), axis=0)
    proj_y = jnp.sort(_mm(y, directions), axis=0)
    return jnp.mean((proj_x - proj_y) ** 2)


def _centered_pair(x: Array, y: Array) -> tuple[Array, Array]:
    # Distances are translation invariant; centring the pooled sample reduces the
    # cancellation in ‖a‖² + ‖b‖² − 2 a·b.
    centre = jnp.mean(jnp.concatenate([x, y]), axis=0)
    return x - centre, y - centre


def _sq_dists(a: Float[Array, "N K"], b: Float[Array, "M K"]) -> Float[Array, "N M"]:
    # ‖a_i − b_j‖² = ‖a_i‖² + ‖b_j‖² − 2 a_i·b_j, clipped at 0 against round-off.
    d2 = jnp.sum(a**2, axis=1)[:, None] + jnp.sum(b**2, axis=1)[None, :] - 2.0 * _mm(a, b.T)
    return jnp.maximum(d2, 0.0)


def _off_diagonal_mean(m: Float[Array, "N N"]) -> Float[Array, ""]:
    # (1 / (N(N−1))) Σ_{i≠j} m_ij; the masked diagonal receives no gradient.
    n = m.shape[0]
    return jnp.sum(jnp.where(jnp.eye(n, dtype=bool), 0.0, m)) / (n * (n - 1))


def _median_bandwidth(x: Float[Array, "N K"], y: Float[Array, "M K"]) -> Float[Array, ""]:
    # h = median_{i<j} ‖z_i − z_j‖ over the pooled sample z = (x, y), thinned to at most
    # _MEDIAN_MAX_ROWS evenly strided rows of each (sorting is slow on CPU); a constant for
    # jax.grad, which also keeps the sort out of autodiff.
    def thin(a: Array) -> Array:
        return a[:: -(-a.shape[0] // _MEDIAN_MAX_ROWS)]

    z = jax.lax.stop_gradient(jnp.concatenate([thin(x), thin(y)]))
    n = z.shape[0]
    d2 = jnp.where(jnp.eye(n, dtype=bool), 0.0, _symmetrize(_sq_dists(z, z)))
    # Sorted, d2 holds the n diagonal zeros first, then every pair i<j twice, so the k-th
    # smallest pair distance sits at n + 2k (static indices, no triu gather).
    flat = jnp.sort(d2.ravel())
    m = n * (n - 1) // 2
    h = jnp.sqrt(0.5 * (flat[n + 2 * ((m - 1) // 2)] + flat[n + 2 * (m // 2)]))
    return jnp.where(h > 0, h, 1.0)  # all points equal: any bandwidth gives MMD² = 0


def mmd(
    x: Float[Array, "N K"],
    y: Float[Array, "M K"],
    bandwidths: Float[ArrayLike, "B"] | None = None,
) -> Float[Array, ""]:
    """Unbiased squared maximum mean discrepancy between samples ``x`` and ``y``; a scalar.

    The kernel is k(a, b) = Σ_h exp(−‖a − b‖² / (2h²)) over ``bandwidths`` (length
    scales h, shape ``(B,)``). By default h = m · median pairwise distance of the pooled
    sample for m in (0.25, 0.5, 1, 2, 4), treated as a constant under ``jax.grad``; the
    median uses at most 128 evenly strided rows of each sample. Memory is O(N M B).
    Needs N, M ≥ 2. Being unbiased, the value can be slightly negative.
    """
    _check_samples(x, y, "mmd", min_size=2)
    x, y = _centered_pair(x, y)
    if bandwidths is None:
        bandwidths = _median_bandwidth(x, y) * jnp.asarray(_MEDIAN_SCALES, dtype=x.dtype)
    gammas = 1.0 / (2.0 * jnp.asarray(bandwidths, dtype=x.dtype) ** 2)

    def kernel(d2: Array) -> Array:
        return jnp.sum(jnp.exp(-d2[..., None] * gammas), axis=-1)

    # Gretton et al. (2012), Lemma 6:
    # MMD²_u = Σ_{i≠j} k(x_i, x_j) / (N(N−1)) + Σ_{i≠j} k(y_i, y_j) / (M(M−1))
    #          − 2 Σ_{i,j} k(x_i, y_j) / (NM)
    k_xx = _off_diagonal_mean(kernel(_sq_dists(x, x)))
    k_yy = _off_diagonal_mean(kernel(_sq_dists(y, y)))
    k_xy = jnp.mean(kernel(_sq_dists(x, y)))
    return k_xx + k_yy - 2.0 * k_xy


def energy_distance(x: Float[Array, "N K"], y: Float[Array, "M K"]) -> Float[Array, ""]:
    """Unbiased energy distance between samples ``x`` and ``y``; a scalar. Needs N, M ≥ 2.

    Norms are computed as √(‖v‖² + 1e-12) so the gradient at coincident points is finite.
    Being unbiased, the value can be slightly negative.
    """
    _check_samples(x, y, "energy_distance", min_size=2)
    x, y = _centered_pair(x, y)

    def norm(d2: Array) -> Array:
        return jnp.sqrt(d2 + _NORM_TINY)

    # E(X, Y) = 2 E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖ (Székely & Rizzo), with the within-sample
    # expectations as U-statistics over i ≠ j.
    return (
        2.0 * jnp.mean(norm(_sq_dists(x, y)))
        - _off_diagonal_mean(norm(_sq_dists(x, x)))
        - _off_diagonal_mean(norm(_sq_dists(y, y)))
    )


# ---------------------------------------------------------------------------
# Moment matching: samples → Gaussian → closed form
# ---------------------------------------------------------------------------


def _second_moment(x: Float[Array, "N K"]) -> Float[Array, "K K"]:
    # Ĉ = xᵀx / N: the covariance of a zero-mean law, without centring.
    return _symmetrize(_mm(x.T, x) / x.shape[0])


def moment_matched_kl(x: Float[Array, "N K"], target_cov: Float[Array, "K K"]) -> Float[Array, ""]:
    """KL(N(0, Ĉ) ‖ N(0, target_cov)) with Ĉ = xᵀx/N from samples ``x`` ``(N, K)``; a scalar.

    Ĉ gets jitter 1e-6 · mean(diag Ĉ) on its diagonal so it stays SPD; it is still
    near-singular (and the KL huge) when N < K or the samples are rank-deficient.
    The mean is assumed to be 0 (x is not centred).
    """
    cov = _second_moment(x)
    k = cov.shape[0]
    cov = cov + _KL_JITTER * jnp.trace(cov) / k * jnp.eye(k, dtype=cov.dtype)
    return gaussian_kl(cov, target_cov)


def moment_matched_w2(x: Float[Array, "N K"], target_cov: Float[Array, "K K"]) -> Float[Array, ""]:
    """Squared W2 between N(0, Ĉ), Ĉ = xᵀx/N from samples ``x`` ``(N, K)``, and N(0, target_cov).

    Returns a scalar; the mean is assumed to be 0 (x is not centred).
    """
    return gaussian_w2(_second_moment(x), target_cov)
