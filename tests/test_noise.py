"""Noise laws: exact cell masses and tested noise, against SciPy's inverse Gaussian and the closed-form
cumulants, with tolerances from the Monte Carlo error of the same draws (batch means)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st

from pinnprob.noise import GaussianWhiteNoise, NIGNoise, inverse_gaussian


def _batched(stat, x, batches=25):
    """(statistic of all draws, its Monte Carlo standard error from ``batches`` batch estimates)."""
    parts = np.array([stat(b) for b in np.array_split(x, batches)])
    return stat(x), parts.std(ddof=1) / math.sqrt(batches)


def _check_moments(x, var, skew, exkurt, label=""):
    """E x = 0, E x² = v, E x³ = skew·v^{3/2}, E x⁴ = (exkurt + 3)·v²: each raw moment is a mean, so its
    batch-means standard error is sound (unlike that of the sample skewness or kurtosis, which heavy
    tails bias); within 4 standard errors."""
    targets = (0.0, var, skew * var**1.5, (exkurt + 3.0) * var**2)
    for k, target in enumerate(targets, start=1):
        v, se = _batched(np.mean, x**k)
        assert abs(v - target) < 4 * se, (label, k, v, target, se)


@pytest.mark.parametrize("mean, lam", [(1.0, 0.5), (1.0, 20.0), (1e-4, 1e-8)])  # the last: a small cell, η = 1
def test_inverse_gaussian_matches_scipy(mean, lam):
    x = np.asarray(inverse_gaussian(jax.random.key(0), jnp.float32(mean), jnp.float32(lam), (40_000,)), np.float64)
    assert np.all(x > 0)
    ref = st.invgauss(mean / lam, scale=lam)  # SciPy's IG(μ_s, scale): mean μ_s·scale, shape = scale
    assert st.kstest(x, ref.cdf).pvalue > 1e-3
    m, se = _batched(np.mean, x)
    assert abs(m - mean) < 4 * se


def test_nig_cell_masses_have_the_closed_form_cumulants():
    """One cell of area 1, (μ, η) = (1, 2): mean 0, variance 1, skewness c₃, excess kurtosis c₄."""
    noise = NIGNoise()
    x = np.asarray(noise.cell_masses(jax.random.key(1), jnp.ones(1), 400_000, jnp.array([1.0, 2.0])), np.float64)[:, 0]
    _, c3, c4 = NIGNoise.cumulant_factors(1.0, 2.0)
    assert c3 == pytest.approx(2.25 / 1.5**1.5) and c4 == pytest.approx(7.875 / 2.25)
    _check_moments(x, 1.0, c3, c4)
    # and against a direct simulation with SciPy's inverse Gaussian
    rng = np.random.default_rng(0)
    V = st.invgauss(1 / 2.0, scale=2.0).rvs(200_000, random_state=rng)
    y = (V - 1.0 + np.sqrt(V) * rng.standard_normal(V.size)) / math.sqrt(1.5)
    assert st.ks_2samp(x[:200_000], y).pvalue > 1e-3


def test_tested_nig_noise_on_a_fine_grid_has_the_tested_cumulants():
    """⟨Ṁ, ψ⟩ for a bump ψ, by 32 × 32 cells: variance ∫ψ², skewness c₃∫ψ³/(∫ψ²)^{3/2}, excess kurtosis
    c₄∫ψ⁴/(∫ψ²)²; negative μ flips the skewness; η → ∞ is Gaussian."""
    g = (np.arange(32) + 0.5) / 32
    C = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    r = np.linalg.norm(C - 0.5, axis=1) / 0.3
    psi = np.where(r < 1, (1 - r**2) ** 2, 0.0) * 4.0
    areas = np.full(C.shape[0], 1 / 32**2)
    ints = [float(np.sum(areas * psi**n)) for n in (2, 3, 4)]
    noise = NIGNoise()
    for mu, eta in ((2.0, 20.0), (-2.0, 20.0)):  # skewness ±0.82, excess kurtosis 2.5
        x = np.asarray(noise.tested_samples(jax.random.key(2), jnp.asarray(psi[:, None], jnp.float32),
                                            jnp.asarray(areas, jnp.float32), 40_000, jnp.array([mu, eta])), np.float64)[:, 0]
        var, skew, kurt = NIGNoise.tested_moments(mu, eta, *ints)
        assert abs(skew) > 0.3 and kurt > 0.3  # far from Gaussian: the checks below can tell
        assert np.sign(skew) == np.sign(mu)
        _check_moments(x, var, skew, kurt, mu)
    _, c3, c4 = NIGNoise.cumulant_factors(1.0, 1e6)
    assert abs(c3) < 1e-5 and abs(c4) < 1e-5


def test_white_noise_tested_samples_have_the_gram_covariance():
    g = (np.arange(32) + 0.5) / 32
    C = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    psi = np.stack([np.cos(np.pi * C[:, 0]), np.cos(np.pi * C[:, 1]) + 0.5], 1) * math.sqrt(2)
    areas = np.full(C.shape[0], 1 / 32**2)
    G = (psi * areas[:, None]).T @ psi
    N = 50_000
    x = np.asarray(GaussianWhiteNoise().tested_samples(jax.random.key(3), jnp.asarray(psi, jnp.float32),
                                                        jnp.asarray(areas, jnp.float32), N), np.float64)
    E = x.T @ x / N
    se = np.sqrt((G**2 + np.outer(np.diag(G), np.diag(G))) / N)  # sd of a Gaussian sample covariance
    assert np.all(np.abs(E - G) < 4 * se)


@pytest.mark.parametrize("mu, eta", [(0.0, 0.0), (0.0, -1.0), (float("nan"), 1.0), (0.0, float("inf"))])
def test_nig_bad_parameters_are_refused(mu, eta):
    with pytest.raises(ValueError, match="mu|eta"):
        NIGNoise.check(mu, eta)


# -- the finite-element truth driven by NIG noise ---------------------------------------------------
def test_fem_nig_moments_converge_to_the_continuum():
    """The FEM field's exact skewness and kurtosis at the centre (range 0.2, far from the walls) approach
    the continuum's as the mesh is refined (measured: 9 %, 4.6 %, 1.9 % for skewness at 50, 100, 200)."""
    from pinnprob.fem import FEMMatern

    from pinnprob.truth import nig_matern_moments

    skew, kurt = nig_matern_moments(range=0.2, mu=2.0, eta=20.0)
    errs = []
    for n in (50, 100):
        _, s, k = FEMMatern.stationary(n, range=0.2).nig_moments(np.array([[0.5, 0.5]]), 2.0, 20.0)
        errs.append((abs(s[0] / skew - 1), abs(k[0] / kurt - 1)))
    assert errs[1][0] < 0.06 and errs[1][1] < 0.2
    assert errs[1][0] < 0.7 * errs[0][0]


def test_fem_nig_sampler_matches_its_exact_moments():
    from pinnprob.fem import FEMMatern

    f = FEMMatern.stationary(30, range=0.3)
    X = np.array([[0.5, 0.5], [0.0, 0.5]])  # the centre and an edge
    # skewness 0.48 / 0.68, excess kurtosis 1.6 / 3.1 (centre / edge): tails light enough for the batch
    # standard error of E u⁴ to hold (at (2, 20), excess kurtosis 36, it does not with 20 000 draws)
    U = f.sample_nig(0, X, 20_000, 5.0, 200.0)
    var, skew, kurt = f.nig_moments(X, 5.0, 200.0)
    for j in range(2):
        _check_moments(U[:, j], var[j], skew[j], kurt[j], j)
    with pytest.raises(ValueError, match="eta"):
        f.sample_nig(0, X, 10, 1.0, 0.0)


# -- the NIG-driven Matérn SPDE and its weak-form targets -------------------------------------------
def test_nig_matern_has_the_matern_operator_and_refuses_bad_parameters():
    from pinnprob.domain import Box
    from pinnprob.spde import MaternSPDE
    from pinnprob.spde.nig import NIGMatern

    spde, matern = NIGMatern(Box.unit(2)), MaternSPDE(Box.unit(2))
    lam = jnp.array([0.0, 10.0, 1e3, 1e5])
    th, th_m = jnp.array([math.log(0.2), 1.0, math.log(50.0)]), jnp.array([math.log(0.2), 1.0])
    np.testing.assert_allclose(spde.log_symbol(lam, th), matern.log_symbol(lam, th_m), rtol=1e-6)
    np.testing.assert_allclose(spde.tail_variance(1e4, th), matern.tail_variance(1e4, th_m), rtol=1e-6)
    np.testing.assert_allclose(spde.noise_params(th), [1.0 / 0.2, 50.0 / 0.2**2], rtol=1e-6)  # per range²
    for bad in (dict(eta=0.0), dict(eta=-1.0), dict(mu=float("nan")), dict(mu=5.0), dict(range=0.01)):
        with pytest.raises(ValueError):
            spde.check(**{"range": 0.2, "mu": 0.0, "eta": 50.0, **bad})


def test_weak_form_targets_follow_the_noise_law():
    """The sample-based loss draws its targets from the SPDE's noise: N(0, I) (the same draws as
    before) for white noise; for NIG noise, variance 1 and the tested skewness and kurtosis per mode."""
    from pinnprob.domain import Box
    from pinnprob.losses import WeakFormLoss
    from pinnprob.spde import MaternSPDE
    from pinnprob.spde.nig import NIGMatern
    from pinnprob.testfunctions.eigen import BoxEigenbasis

    box = Box.unit(2)
    basis = BoxEigenbasis.create(box, 3, max_frequency=3 * math.pi)
    key = jax.random.key(4)
    white = WeakFormLoss(MaternSPDE(box), basis, None, None, divergence="mmd", exact_projection=True)
    np.testing.assert_array_equal(white.target_samples(key, jnp.array([math.log(0.2), 1.0]), 8),
                                  jax.random.normal(key, (8, basis.size)))
    nig = NIGMatern(box, noise=NIGNoise(cells_per_side=32))
    loss = WeakFormLoss(nig, basis, None, None, divergence="mmd", exact_projection=True)
    th = jnp.array([math.log(0.2), 0.4, math.log(0.8)])  # per range²: (2, 20) per unit area
    mu, eta = (float(v) for v in nig.noise_params(th))
    np.testing.assert_allclose([mu, eta], [2.0, 20.0], rtol=1e-5)
    y = np.asarray(loss.target_samples(key, th, 40_000), np.float64)
    from pinnprob.noise import cell_grid

    C, areas = cell_grid(box, 32)
    phi = np.asarray(basis(C), np.float64)
    h = float(areas[0])
    for k in (0, 1, 4):  # the constant mode (skewness c₃), a cosine (∫φ³ = 0), a product of cosines
        var, skew, kurt = NIGNoise.tested_moments(mu, eta, *(h * np.sum(phi[:, k] ** n) for n in (2, 3, 4)))
        _check_moments(y[:, k], var, skew, kurt, k)
