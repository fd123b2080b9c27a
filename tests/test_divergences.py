"""Tests for pinnprob.divergences: closed forms against independent computations,
sample estimators against their known limits, and jit / vmap / grad behaviour."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from pinnprob.divergences import (
    energy_distance,
    gaussian_kl,
    gaussian_kl_diag,
    gaussian_w2,
    gaussian_w2_diag,
    mmd,
    moment_matched_kl,
    moment_matched_w2,
    sliced_wasserstein,
)

K = 4

# Jitted once at module level, so tests that share shapes share compilations (and every
# estimator is exercised under jax.jit; XLA on CPU compiles slowly and sorts slowly).
kl_jit = jax.jit(gaussian_kl)
w2_jit = jax.jit(gaussian_w2)
sliced_jit = jax.jit(sliced_wasserstein, static_argnames="num_projections")
mmd_jit = jax.jit(mmd)
energy_jit = jax.jit(energy_distance)
kl_mm_jit = jax.jit(moment_matched_kl)
w2_mm_jit = jax.jit(moment_matched_w2)
w2_grad = jax.jit(jax.grad(gaussian_w2, argnums=(0, 1)))


def random_spd(rng: np.random.Generator, k: int = K, ridge: float = 0.5) -> np.ndarray:
    a = rng.normal(size=(k, k))
    return a @ a.T / k + ridge * np.eye(k)


def f32(a) -> jax.Array:
    return jnp.asarray(a, dtype=jnp.float32)


def numpy_kl(p: np.ndarray, q: np.ndarray) -> float:
    k = p.shape[0]
    return 0.5 * (
        np.trace(np.linalg.solve(q, p)) - k + np.linalg.slogdet(q)[1] - np.linalg.slogdet(p)[1]
    )


def scipy_w2(p: np.ndarray, q: np.ndarray) -> float:
    root_p = scipy.linalg.sqrtm(p).real
    cross = scipy.linalg.sqrtm(root_p @ q @ root_p).real
    return float(np.trace(p) + np.trace(q) - 2.0 * np.trace(cross))


def gaussian_samples(seed: int, n: int, k: int = 3, shift: float = 0.0, scale: float = 1.0) -> jax.Array:
    # NumPy draws: eager jax.random compiles a PRNG kernel for every new shape (slow on CPU).
    return f32(shift + scale * np.random.default_rng(seed).standard_normal((n, k)))


# ---------------------------------------------------------------------------
# gaussian_kl
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_gaussian_kl_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    p, q = random_spd(rng), random_spd(rng)
    expected = numpy_kl(p, q)
    assert expected > 0.05
    np.testing.assert_allclose(kl_jit(f32(p), f32(q)), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("p, q", [(1.0, 2.0), (2.0, 1.0), (0.3, 5.0), (4.0, 4.0)])
def test_gaussian_kl_1d_closed_form(p, q):
    # KL(N(0, p) ‖ N(0, q)) = ½ (p/q − 1 − log(p/q))
    expected = 0.5 * (p / q - 1.0 - np.log(p / q))
    np.testing.assert_allclose(kl_jit(f32([[p]]), f32([[q]])), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gaussian_kl_diag(f32([p]), f32([q])), expected, rtol=1e-5, atol=1e-6)


def test_gaussian_kl_zero_positive_and_monotone():
    p = f32(random_spd(np.random.default_rng(10)))
    values = np.array([kl_jit(p, c * p) for c in (1.0, 1.5, 2.0, 3.0)])
    # Q = cP gives KL = (K/2)(1/c − 1 + log c), which grows with c ≥ 1.
    np.testing.assert_allclose(values[0], 0.0, atol=1e-5)
    assert np.all(values[1:] > 0)
    assert np.all(np.diff(values) > 0)
    expected = [K / 2 * (1 / c - 1 + np.log(c)) for c in (1.0, 1.5, 2.0, 3.0)]
    np.testing.assert_allclose(values, expected, rtol=1e-4, atol=1e-5)


def test_gaussian_kl_diag_matches_dense():
    rng = np.random.default_rng(11)
    p, q = rng.uniform(0.2, 3.0, K), rng.uniform(0.2, 3.0, K)
    np.testing.assert_allclose(
        gaussian_kl_diag(f32(p), f32(q)), kl_jit(f32(np.diag(p)), f32(np.diag(q))), rtol=1e-5
    )


# ---------------------------------------------------------------------------
# gaussian_w2
# ---------------------------------------------------------------------------


def test_gaussian_w2_commuting_closed_form():
    rng = np.random.default_rng(20)
    p = rng.uniform(0.1, 3.0, K)
    q = rng.uniform(0.1, 3.0, K)
    p[0] = 0.0  # a rank-deficient diagonal is allowed
    expected = np.sum((np.sqrt(p) - np.sqrt(q)) ** 2)
    np.testing.assert_allclose(w2_jit(f32(np.diag(p)), f32(np.diag(q))), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gaussian_w2_diag(f32(p), f32(q)), expected, rtol=1e-5, atol=1e-6)
    # Commuting but not diagonal: rotate both by the same orthogonal matrix. (Full rank:
    # rotated, a zero eigenvalue comes back as round-off δ ~ 1e-7 and √δ ~ 3e-4 in float32.)
    p[0] = 0.5
    expected = np.sum((np.sqrt(p) - np.sqrt(q)) ** 2)
    u = np.linalg.qr(rng.normal(size=(K, K)))[0]
    np.testing.assert_allclose(
        w2_jit(f32(u @ np.diag(p) @ u.T), f32(u @ np.diag(q) @ u.T)), expected, rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("seed", range(5))
def test_gaussian_w2_matches_scipy_and_is_symmetric(seed):
    rng = np.random.default_rng(seed)
    p, q = random_spd(rng), random_spd(rng)
    expected = scipy_w2(p, q)
    assert expected > 0.05
    pq, qp = w2_jit(f32(p), f32(q)), w2_jit(f32(q), f32(p))
    np.testing.assert_allclose(pq, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(qp, pq, rtol=1e-4, atol=1e-5)


def test_gaussian_w2_zero_on_equal():
    rng = np.random.default_rng(21)
    for p in (random_spd(rng), np.eye(K), np.diag([2.0, 1.0, 0.0, 0.0])):
        np.testing.assert_allclose(w2_jit(f32(p), f32(p)), 0.0, atol=1e-5 * np.trace(p))


def test_gaussian_w2_gradient_matches_transport_map():
    # ∇_P W2²(P, Q) = I − T with T = P^{-1/2} (P^{1/2} Q P^{1/2})^{1/2} P^{-1/2}.
    rng = np.random.default_rng(22)
    p, q = random_spd(rng), random_spd(rng)
    root_p = scipy.linalg.sqrtm(p).real
    inv_root_p = np.linalg.inv(root_p)
    transport = inv_root_p @ scipy.linalg.sqrtm(root_p @ q @ root_p).real @ inv_root_p
    grad_p, grad_q = w2_grad(f32(p), f32(q))
    np.testing.assert_allclose(grad_p, np.eye(K) - transport, atol=1e-4)
    np.testing.assert_allclose(grad_q, np.eye(K) - np.linalg.inv(transport), atol=1e-4)


@pytest.mark.parametrize("equal", ["random", "identity"])
def test_gaussian_w2_gradient_finite_and_zero_at_equal(equal):
    # "identity" has a repeated eigenvalue, where eigh's own derivative divides by zero.
    p = f32(random_spd(np.random.default_rng(23)) if equal == "random" else np.eye(K))
    for g in w2_grad(p, p):
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, 0.0, atol=1e-3)


def test_gaussian_w2_gradient_finite_for_rank_deficient():
    rng = np.random.default_rng(24)
    v = rng.normal(size=(K, 1))
    p = v @ v.T  # rank 1: three zero eigenvalues, a repeated one
    q = random_spd(rng)
    # rtol 1e-3: float32 eigh returns the zero eigenvalues as ±1e-7, whose roots enter.
    np.testing.assert_allclose(w2_jit(f32(p), f32(q)), scipy_w2(p + 1e-12 * np.eye(K), q), rtol=1e-3)
    grad_p, grad_q = w2_grad(f32(p), f32(q))
    assert np.all(np.isfinite(grad_p)) and np.all(np.isfinite(grad_q))
    # The exact gradient → −∞ along the null space of P; the smoothed one must keep
    # that sign, so gradient descent grows the missing variance.
    null = np.linalg.svd(v.T)[2][1:]  # (K−1, K) orthonormal basis of v^⊥
    assert np.all(np.diag(null @ np.asarray(grad_p) @ null.T) < -1.0)
    grad_diag = jax.grad(gaussian_w2_diag)(f32([0.0, 1.0]), f32([1.0, 1.0]))
    assert np.all(np.isfinite(grad_diag)) and grad_diag[0] < -1.0 and abs(grad_diag[1]) < 1e-6


# ---------------------------------------------------------------------------
# Sample estimators
# ---------------------------------------------------------------------------

N_SAMPLES = 500
SHIFTS = (0.0, 0.5, 1.0, 2.0)
SCALES = (1.0, 1.5, 2.0, 3.0)


def _sliced(x, y):
    return sliced_jit(jax.random.key(7), x, y, num_projections=64)


ESTIMATORS = {"sliced_w2": _sliced, "mmd": mmd_jit, "energy": energy_jit}


@pytest.mark.parametrize("name", ESTIMATORS)
def test_sample_divergence_grows_with_shift_and_scale(name):
    fn = ESTIMATORS[name]
    x = gaussian_samples(0, N_SAMPLES)
    z = gaussian_samples(1, N_SAMPLES)
    by_shift = np.array([fn(x, s + z) for s in SHIFTS])
    by_scale = np.array([fn(x, c * z) for c in SCALES])
    for values in (by_shift, by_scale):
        assert np.all(np.diff(values) > 0), values
        assert np.all(values[1:] > 0)
        # The same-law value is small next to the smallest departure.
        assert abs(values[0]) < 0.1 * values[1], values


@pytest.mark.parametrize("name", ["mmd", "energy"])
def test_unbiased_estimators_average_to_zero(name):
    # For same-law samples the unbiased estimators have mean exactly 0; the plug-in
    # (V-statistic) versions are biased by O(1/N), ≈ 25–30 standard errors here. MMD gets
    # fixed bandwidths: with the data-dependent median heuristic it is only nearly unbiased.
    fn = {"mmd": lambda x, y: mmd(x, y, jnp.array([0.5, 1.0, 2.0, 4.0])), "energy": energy_distance}[name]
    n, repeats = 40, 100

    samples = np.random.default_rng(2).standard_normal((2, repeats, n, 3))
    values = np.asarray(jax.jit(jax.vmap(fn))(f32(samples[0]), f32(samples[1])))
    std_err = values.std(ddof=1) / np.sqrt(repeats)
    assert abs(values.mean()) < 4 * std_err
    assert values.min() < 0 < values.max()


def test_sliced_w2_same_law_bound():
    # E W2²(two empirical N(0,1) samples of size N) ≈ 2 log log N / N; allow 2.5× that.
    n = N_SAMPLES
    for seed in range(3):
        value = _sliced(gaussian_samples(10 + seed, n), gaussian_samples(20 + seed, n))
        assert 0 <= value < 5 * np.log(np.log(n)) / n


def test_sliced_w2_1d_equals_sorted_w2():
    x = gaussian_samples(3, 300, k=1)
    y = gaussian_samples(4, 300, k=1, shift=0.3, scale=1.7)
    expected = np.mean((np.sort(np.asarray(x[:, 0])) - np.sort(np.asarray(y[:, 0]))) ** 2)
    np.testing.assert_allclose(sliced_jit(jax.random.key(4), x, y, num_projections=5), expected, rtol=1e-5)


@pytest.mark.parametrize("s", [0.5, 2.0])
def test_sliced_w2_isotropic_gaussian_limit(s):
    # Every projection of N(0, I) vs N(0, s² I) is N(0, 1) vs N(0, s²): SW2² → (1 − s)².
    # Over seeds the estimate's relative spread is ≈ 2.3 % at this size; allow 8 %.
    n = 10_000
    x = gaussian_samples(5, n)
    y = gaussian_samples(6, n, scale=s)
    value = sliced_jit(jax.random.key(6), x, y, num_projections=16)
    np.testing.assert_allclose(value, (1.0 - s) ** 2, rtol=0.08)


def test_sliced_w2_rejects_unequal_sizes():
    x, y = jnp.zeros((10, 2)), jnp.zeros((11, 2))
    with pytest.raises(ValueError):
        sliced_wasserstein(jax.random.key(0), x, y)
    with pytest.raises(ValueError):
        _sliced(x, y)


def _direct_sq_dists(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.sum((a[:, None] - b[None]) ** 2, -1)


def _off_diag_mean(m):
    return (m.sum() - np.trace(m)) / (m.shape[0] * (m.shape[0] - 1))


def test_mmd_and_energy_match_direct_evaluation():
    # Unequal sizes; an explicit single bandwidth; references in float64 by broadcasting.
    x, y = gaussian_samples(8, 30), gaussian_samples(9, 20, shift=0.5)
    dxx, dyy, dxy = _direct_sq_dists(x, x), _direct_sq_dists(y, y), _direct_sq_dists(x, y)
    h = 1.3
    gram = lambda d2: np.exp(-d2 / (2 * h**2))  # noqa: E731
    expected_mmd = _off_diag_mean(gram(dxx)) + _off_diag_mean(gram(dyy)) - 2 * gram(dxy).mean()
    np.testing.assert_allclose(mmd_jit(x, y, jnp.array([h])), expected_mmd, rtol=1e-4, atol=1e-6)
    expected_energy = 2 * np.sqrt(dxy).mean() - _off_diag_mean(np.sqrt(dxx)) - _off_diag_mean(np.sqrt(dyy))
    np.testing.assert_allclose(energy_jit(x, y), expected_energy, rtol=1e-4, atol=1e-6)
    # The default kernel sums the five median-heuristic bandwidths.
    pooled = np.concatenate([x, y])
    d = np.sqrt(_direct_sq_dists(pooled, pooled)[np.triu_indices(50, 1)])
    hs = np.median(d) * np.array([0.25, 0.5, 1.0, 2.0, 4.0])
    np.testing.assert_allclose(mmd_jit(x, y), mmd_jit(x, y, jnp.asarray(hs, jnp.float32)), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["mmd", "energy"])
def test_sample_divergence_gradients_finite_at_coincident_points(name):
    fn = {"mmd": mmd, "energy": energy_distance}[name]
    x = gaussian_samples(10, 16)
    grads = jax.jit(jax.grad(fn, argnums=(0, 1)))(x, x)
    assert all(np.all(np.isfinite(g)) for g in grads)


# ---------------------------------------------------------------------------
# Moment matching
# ---------------------------------------------------------------------------


def test_moment_matched_divergences():
    rng = np.random.default_rng(30)
    c, c_other = random_spd(rng), random_spd(rng)
    n = 50_000
    for cov in (c, c_other):
        x = gaussian_samples(31, n, k=K) @ f32(np.linalg.cholesky(cov)).T
        kl, w2 = kl_mm_jit(x, f32(c)), w2_mm_jit(x, f32(c))
        if cov is c:
            # E KL(Ĉ ‖ C) ≈ K(K+1) / (4N) = 1e-4.
            assert 0 <= kl < 2e-3
            assert 0 <= w2 < 2e-3 * np.trace(c)
        else:
            np.testing.assert_allclose(kl, numpy_kl(cov, c), rtol=0.03)
            np.testing.assert_allclose(w2, scipy_w2(cov, c), rtol=0.03)
    # For the last sample: exactly the closed forms at its second moment (jitter aside).
    second = np.asarray(x, np.float64).T @ np.asarray(x, np.float64) / n
    np.testing.assert_allclose(kl, numpy_kl(second, c), rtol=1e-3)
    np.testing.assert_allclose(w2, scipy_w2(second, c), rtol=1e-3)


# ---------------------------------------------------------------------------
# jit / vmap of the closed forms
# ---------------------------------------------------------------------------


def test_closed_forms_under_jit_and_vmap():
    rng = np.random.default_rng(40)
    ps = np.stack([random_spd(rng) for _ in range(3)])
    qs = np.stack([random_spd(rng) for _ in range(3)])
    for fn, ref in ((gaussian_kl, numpy_kl), (gaussian_w2, scipy_w2)):
        batched = jax.jit(jax.vmap(fn))(f32(ps), f32(qs))
        np.testing.assert_allclose(batched, [ref(p, q) for p, q in zip(ps, qs)], rtol=1e-4, atol=1e-5)
    vp, vq = rng.uniform(0.5, 2, (3, K)), rng.uniform(0.5, 2, (3, K))
    np.testing.assert_allclose(
        jax.jit(jax.vmap(gaussian_kl_diag))(f32(vp), f32(vq)),
        [numpy_kl(np.diag(a), np.diag(b)) for a, b in zip(vp, vq)],
        rtol=1e-4,
    )
    np.testing.assert_allclose(
        jax.jit(jax.vmap(gaussian_w2_diag))(f32(vp), f32(vq)),
        np.sum((np.sqrt(vp) - np.sqrt(vq)) ** 2, axis=1),
        rtol=1e-4,
    )
