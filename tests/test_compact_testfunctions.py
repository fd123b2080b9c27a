"""Compactly supported test functions (pinnprob.testfunctions.compact) and quadrature rules.

The weak residual ⟨u, L*ψ_j⟩ with bumps ψ_j must agree with the exact action of the
Matérn operator in the Neumann eigenbasis (design notes §3), and, for the exact
spectral law of the SPDE solution, its covariance must be the white-noise Gram matrix.
All numerics in float64.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pinnprob.domain import Box
from pinnprob.quadrature import grid_quadrature, random_quadrature
from pinnprob.spde.matern import to_operator_params
from pinnprob.testfunctions.compact import BumpTestFunctions, apply_adjoint, laplacian
from pinnprob.testfunctions.eigen import BoxEigenbasis
from pinnprob.truth import spectral_std

x64 = jax.enable_x64  # context manager: `with x64(True):`

def _params():
    """(κ, τ, α) for ρ = 0.3, σ = 1, ν = 1 in 2-D (α = 2)."""
    kappa, tau, alpha = to_operator_params(0.3, 1.0, 1.0, 2)
    return float(kappa), float(tau), float(alpha)


# ----------------------------------------------------------------------------------------
# quadrature


@pytest.mark.parametrize("rule,panels", [("midpoint", 1), ("gauss", 1), ("gauss", (3, 2))])
def test_grid_weights_sum_to_volume(rule, panels):
    with x64(True):
        dom = Box((2.0, 0.5))
        X, w = grid_quadrature(dom, (12, 8), rule, panels=panels)
        assert X.shape == (96, 2) and w.shape == (96,)
        assert abs(float(w.sum()) - 1.0) < 1e-13
        assert bool(jnp.all((X > 0) & (X < jnp.asarray([2.0, 0.5]))))
        dom3 = Box((1.0, 2.0, 3.0))
        X3, w3 = grid_quadrature(dom3, 4, rule)
        assert X3.shape == (64, 3) and abs(float(w3.sum()) - 6.0) < 1e-12


def test_gauss_exact_for_polynomials_and_spectral_for_cosines():
    with x64(True):
        dom = Box((2.0, 0.5))
        # degree 5 in x, 3 in y: exact with 3 Gauss nodes per axis
        X, w = grid_quadrature(dom, 3, "gauss")
        f = X[:, 0] ** 5 * X[:, 1] ** 3 - 3.0 * X[:, 0] ** 2
        exact = 2.0**6 / 6 * 0.5**4 / 4 - 3.0 * 2.0**3 / 3 * 0.5
        assert abs(float(w @ f) - exact) < 1e-13 * abs(exact)
        # smooth non-polynomial: composite Gauss converges spectrally
        X, w = grid_quadrature(dom, 16, "gauss", panels=2)
        g = jnp.cos(3.0 * X[:, 0]) * jnp.exp(X[:, 1])
        exact = math.sin(6.0) / 3.0 * (math.exp(0.5) - 1.0)
        assert abs(float(w @ g) - exact) < 1e-13


def test_midpoint_is_second_order():
    with x64(True):
        dom = Box.unit(2)
        exact = (math.sin(3.0) / 3.0) * (math.e - 1.0)
        errs = []
        for n in (16, 32, 64):
            X, w = grid_quadrature(dom, n, "midpoint")
            errs.append(abs(float(w @ (jnp.cos(3.0 * X[:, 0]) * jnp.exp(X[:, 1]))) - exact))
        rates = [math.log2(errs[i] / errs[i + 1]) for i in range(2)]
        assert all(abs(r - 2.0) < 0.05 for r in rates), (errs, rates)


def test_random_quadrature():
    with x64(True):
        dom = Box((2.0, 0.5))
        X, w = random_quadrature(jax.random.PRNGKey(0), dom, 20000)
        assert X.shape == (20000, 2) and w.shape == (20000,)
        assert abs(float(w.sum()) - 1.0) < 1e-12
        assert bool(jnp.all((X >= 0) & (X <= jnp.asarray([2.0, 0.5]))))
        f = X[:, 0] ** 2 * X[:, 1]  # ∫ = (8/3)(1/8) = 1/3, sd of the estimate ≈ 2.6e-3
        assert abs(float(w @ f) - 1.0 / 3.0) < 0.015
        X2, _ = jax.jit(random_quadrature, static_argnums=(1, 2))(jax.random.PRNGKey(1), dom, 10)
        assert not bool(jnp.allclose(X2, X[:10]))


# ----------------------------------------------------------------------------------------
# the bumps and the autodiff adjoint


def test_bump_values_support_and_on_grid():
    with x64(True):
        dom = Box((2.0, 1.0))
        tf = BumpTestFunctions.on_grid(dom, (3, 2), radius_factor=1.0, power=4)
        assert tf.centers.shape == (6, 2) and tf.radius.shape == (6, 2)
        # supports inside the domain
        lo, hi = tf.centers - tf.radius, tf.centers + tf.radius
        assert bool(jnp.all(lo >= -1e-15)) and bool(jnp.all(hi <= jnp.asarray([2.0, 1.0]) + 1e-15))
        V = tf(tf.centers)
        np.testing.assert_allclose(np.diag(np.asarray(V)), 1.0)
        # zero outside, on the boundary of the box in particular
        Xb = jnp.asarray([[0.0, 0.3], [2.0, 0.7], [1.1, 0.0], [0.4, 1.0]])
        assert float(jnp.abs(tf(Xb)).max()) == 0.0
        # the closed-form Gram equals the quadrature Gram
        X, w = grid_quadrature(dom, (4 * 12, 3 * 12), "gauss", panels=(4, 3))
        np.testing.assert_allclose(tf.gram(X, w), tf.exact_gram(), rtol=0, atol=1e-14)
        with pytest.raises(ValueError, match="radius_factor"):
            BumpTestFunctions.on_grid(dom, 3, radius_factor=1.5)


@pytest.mark.parametrize("alpha", [2, 4])
def test_autodiff_adjoint_closed_form_on_cosine(alpha):
    # (κ² − Δ)^{α/2} cos(a·x) = (κ² + |a|²)^{α/2} cos(a·x) exactly
    with x64(True):
        a = jnp.asarray([1.3, -2.1, 0.7])
        fn = lambda x: jnp.cos(a @ x) + 0.0 * x[0]
        X = jax.random.uniform(jax.random.PRNGKey(3), (50, 3))
        kappa, tau = 2.5, 0.8
        got = apply_adjoint(fn, X, kappa, tau, alpha)
        want = tau * (kappa**2 + a @ a) ** (alpha / 2) * jnp.cos(X @ a)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * float(jnp.abs(want).max()))


def _fd_laplacian(f, X, h):
    """Second-order 5-point (2-D) finite-difference Laplacian of a batched function f: (n, 2) -> (n,)."""
    out = -4.0 * f(X)
    for i in range(2):
        e = jnp.zeros(2).at[i].set(h)
        out = out + f(X + e) + f(X - e)
    return out / h**2


@pytest.mark.parametrize("alpha", [2, 4])
def test_autodiff_adjoint_of_bump_vs_finite_differences_and_closed_form(alpha):
    with x64(True):
        kappa, tau, _ = _params()
        tf = BumpTestFunctions(jnp.asarray([[0.45, 0.55], [0.6, 0.4]]), jnp.asarray([0.3, 0.25]), power=alpha + 3)
        fn = lambda x: tf.point(x)[0]  # scalar R^2 -> R
        X = jnp.asarray(np.random.default_rng(0).uniform(0.25, 0.65, (40, 2)))
        got = apply_adjoint(fn, X, kappa, tau, alpha)
        f = lambda Y: tf(Y)[:, 0]

        def fd(h):
            lap = lambda Y: _fd_laplacian(f, Y, h)
            if alpha == 2:
                return tau * (kappa**2 * f(X) - lap(X))
            return tau * (kappa**4 * f(X) - 2 * kappa**2 * lap(X) + _fd_laplacian(lap, X, h))

        h = 2e-3 if alpha == 2 else 4e-3
        coarse, fine = fd(h), fd(h / 2)
        rel = lambda v: float(jnp.linalg.norm(got - v) / jnp.linalg.norm(got))
        # the stencil converges to the autodiff value at exactly second order: measured
        # 6.3e-5 -> 1.6e-5 (α = 2, h = 2e-3 -> 1e-3) and 1.1e-3 -> 2.8e-4 (α = 4, h = 4e-3 -> 2e-3)
        assert rel(coarse) < (1.5e-4 if alpha == 2 else 2.5e-3), rel(coarse)
        assert 3.8 < rel(coarse) / rel(fine) < 4.2, (rel(coarse), rel(fine))
        # Richardson extrapolation removes the h² term
        assert rel((4 * fine - coarse) / 3) < (1e-7 if alpha == 2 else 2e-6), rel((4 * fine - coarse) / 3)
        # the module's closed-form and autodiff routes agree to rounding, for all K at once
        A = tf.adjoint(X, kappa, tau, alpha, method="autodiff")
        B = tf.adjoint(X, kappa, tau, alpha, method="closed")
        np.testing.assert_allclose(A[:, 0], got, rtol=1e-12)
        np.testing.assert_allclose(A, B, rtol=0, atol=1e-11 * float(jnp.abs(B).max()))


def test_laplacian_of_vector_function():
    with x64(True):
        fn = lambda x: jnp.stack([x[0] ** 2 * x[1] ** 3, jnp.sin(x[0]) + x[1] ** 4])
        x = jnp.asarray([0.3, 0.7])
        want = jnp.asarray([2 * x[1] ** 3 + 6 * x[0] ** 2 * x[1], -jnp.sin(x[0]) + 12 * x[1] ** 2])
        np.testing.assert_allclose(laplacian(fn)(x), want, rtol=1e-13)


def test_adjoint_under_jit_and_grad():
    with x64(True):
        tf = BumpTestFunctions.on_grid(Box.unit(2), 3, power=5)
        X, _ = grid_quadrature(Box.unit(2), 8)
        eager = tf.adjoint(X, 3.0, 0.5, 4, method="autodiff")
        f1 = eqx.filter_jit(lambda tf, X, k, t: tf.adjoint(X, k, t, 4.0, method="autodiff"))
        np.testing.assert_allclose(f1(tf, X, 3.0, 0.5), eager, rtol=1e-12, atol=1e-9)
        f2 = jax.jit(lambda X, k, t, alpha: apply_adjoint(tf.point, X, k, t, alpha), static_argnames="alpha")
        np.testing.assert_allclose(f2(X, 3.0, 0.5, alpha=4), eager, rtol=1e-12, atol=1e-9)
        # differentiable in κ: d/dκ τ(κ² − Δ)ψ = 2κτψ
        g = jax.grad(lambda k: tf.adjoint(X, k, 0.5, 2).sum())(3.0)
        np.testing.assert_allclose(g, 2 * 3.0 * 0.5 * tf(X).sum(), rtol=1e-12)
        # a traced α is refused with an explanation
        with pytest.raises(ValueError, match="static"):
            jax.jit(lambda a: tf.adjoint(X, 3.0, 0.5, a))(2.0)


@pytest.mark.parametrize("alpha", [2.5, 1.5, 0.7, 3.3])
def test_fractional_alpha_is_refused(alpha):
    tf = BumpTestFunctions.on_grid(Box.unit(2), 2)
    X = jnp.full((3, 2), 0.5)
    with pytest.raises(ValueError, match="fractional.*BoxEigenbasis"):
        tf.adjoint(X, 1.0, 1.0, alpha)
    with pytest.raises(ValueError, match="fractional.*BoxEigenbasis"):
        apply_adjoint(lambda x: x.sum(), X, 1.0, 1.0, alpha)


@pytest.mark.parametrize("alpha", [1, 3, 5.0])
def test_odd_alpha_is_refused(alpha):
    tf = BumpTestFunctions.on_grid(Box.unit(1), 2, power=6)
    X = jnp.full((3, 1), 0.5)
    with pytest.raises(ValueError, match="odd.*non-local.*BoxEigenbasis"):
        tf.adjoint(X, 1.0, 1.0, alpha)
    with pytest.raises(ValueError, match="odd"):
        apply_adjoint(lambda x: x.sum(), X, 1.0, 1.0, alpha)


def test_other_errors():
    tf = BumpTestFunctions.on_grid(Box.unit(2), 2, power=3)
    X = jnp.full((3, 2), 0.5)
    with pytest.raises(ValueError, match="power"):
        tf.adjoint(X, 1.0, 1.0, 4)  # p = 3 < α = 4: boundary terms would not vanish
    for bad in (0, -2):
        with pytest.raises(ValueError, match="positive"):
            tf.adjoint(X, 1.0, 1.0, bad)
    with pytest.raises(ValueError, match="power"):
        BumpTestFunctions(jnp.zeros((2, 2)), 0.1, power=2.5)
    with pytest.raises(ValueError, match="radius"):
        BumpTestFunctions(jnp.zeros((2, 2)), jnp.ones(3))
    with pytest.raises(ValueError, match="radius must be positive"):
        BumpTestFunctions(jnp.zeros((2, 2)), jnp.asarray([0.1, 0.0]))
    with pytest.raises(ValueError, match="rule"):
        grid_quadrature(Box.unit(2), 4, "simpson")
    with pytest.raises(ValueError, match="multiple"):
        grid_quadrature(Box.unit(2), 10, "gauss", panels=3)


# ----------------------------------------------------------------------------------------
# agreement with the eigenbasis (the stationary case)


@pytest.mark.parametrize("alpha", [2, 4])
@pytest.mark.parametrize(
    "radius_factor,rule,num,panels,method,tol",
    [
        # Gauss panels aligned with the supports' edges: exact up to rounding (measured ≈ 2e-15 / 1e-14)
        (1.0, "gauss", 96, 6, "autodiff", 1e-12),
        (1.0, "gauss", 96, 6, "closed", 1e-12),
        # midpoint, supports not aligned with the cells: quadrature-limited, O(h²);
        # measured 1.5e-3 (α = 2) and 2.7e-2 (α = 4) at 200², 3.7e-4 / 6.3e-3 at 400²
        (0.8, "midpoint", 200, 1, "closed", None),
    ],
)
def test_weak_form_agrees_with_eigenbasis(alpha, radius_factor, rule, num, panels, method, tol):
    with x64(True):
        dom = Box.unit(2)
        kappa, tau, _ = _params()
        basis = BoxEigenbasis.create(dom, 6)  # 36 Neumann modes, frequencies up to 5π√2
        c = jnp.asarray(np.random.default_rng(1).standard_normal(basis.size))
        tf = BumpTestFunctions.on_grid(dom, 5, radius_factor=radius_factor, power=alpha + 1)
        X, w = grid_quadrature(dom, num, rule, panels=panels)
        Phi = basis(X)
        u = Phi @ c
        lhs = (w * u) @ tf.adjoint(X, kappa, tau, alpha, method=method)  # ⟨u, L*ψ_j⟩
        sym = tau * (kappa**2 + basis.eigenvalues) ** (alpha / 2)  # L φ_k = sym_k φ_k
        rhs = (sym * c) @ ((Phi * w[:, None]).T @ tf(X))  # ⟨Lu, ψ_j⟩
        rel = float(jnp.linalg.norm(lhs - rhs) / jnp.linalg.norm(rhs))
        if tol is None:
            tol = 5e-3 if alpha == 2 else 6e-2
        assert rel < tol, rel


# ----------------------------------------------------------------------------------------
# statistical agreement: Cov⟨u, L*ψ⟩ under the exact spectral law = Gram matrix of ψ


def _residual_covariance(num_modes, tf, kappa, tau, q):
    """R = A diag(std²) Aᵀ with A_jk = ⟨φ_k, L*ψ_j⟩ by aligned composite Gauss quadrature.

    The quadrature sum Σ_{a,b} w_a w_b φ_k(x_a, y_b) L*ψ_j(x_a, y_b) is evaluated in factored
    form (φ_k is a product of 1-D cosines): the same numbers as the direct sum, without
    forming the (n, 4096) matrix of eigenfunction values.
    """
    dom = Box.unit(2)
    basis = BoxEigenbasis.create(dom, num_modes)
    std = jnp.asarray(spectral_std(basis, range=0.3, sigma=1.0, nu=1.0))
    m = round(1.0 / float(tf.radius[0, 0])) - 1  # bumps per axis (radius_factor = 1)
    n1 = q * (m + 1)
    X, w = grid_quadrature(dom, n1, "gauss", panels=m + 1)

    @eqx.filter_jit
    def factored(basis, tf, X, w):
        LP = tf.adjoint(X, kappa, tau, 2, method="autodiff") * w[:, None]  # (n, K)
        M = LP.T.reshape(-1, n1, n1)  # [j, a, b]: point a * n1 + b = (x_a, y_b)
        Xg = X.reshape(n1, n1, 2)
        nodes = jnp.stack([Xg[:, 0, 0], Xg[0, :, 1]], axis=1)  # (x_a, y_a)
        F1, F2 = basis.factors(nodes)  # 1-D factors of every mode, (n1, K_modes)
        return LP, jnp.einsum("jab,ak,bk->jk", M, F1, F2)

    LP, A = factored(basis, tf, X, w)
    # spot check against the direct quadrature sum for a few modes
    sel = jnp.asarray([0, 1, 17, basis.size // 2, basis.size - 1])
    some = BoxEigenbasis(dom, basis.modes[sel], basis.eigenvalues[sel])
    direct = LP.T @ some(X)
    np.testing.assert_allclose(A[:, sel], direct, rtol=0, atol=1e-12 * float(jnp.abs(direct).max()))
    return (A * std**2) @ A.T


def test_weak_residual_covariance_equals_gram():
    with x64(True):
        kappa, tau, alpha = _params()
        assert abs(alpha - 2.0) < 1e-12
        tf = BumpTestFunctions.on_grid(Box.unit(2), 4, power=3)  # p = α + 1, h = r = 0.2
        G = tf.exact_gram()
        X, w = grid_quadrature(Box.unit(2), 80, "gauss", panels=5)
        np.testing.assert_allclose(tf.gram(X, w), G, rtol=0, atol=1e-14 * float(G.max()))
        errs = {}
        for modes in (32, 64):
            R = _residual_covariance(modes, tf, kappa, tau, q=16)
            errs[modes] = float(jnp.linalg.norm(R - G) / jnp.linalg.norm(G))
        # measured: 3.5e-7 with 32² modes, 5.4e-9 with 64² modes (truncation of the
        # cosine series: the bump's coefficients decay like ω^-(p+1) per axis; the aligned
        # Gauss quadrature is exact to ~1e-15, changing q does not move the figure)
        print("relative Frobenius error |R - G| / |G| by number of modes per axis:", errs)
        assert errs[64] < 2e-8, errs
        assert errs[32] < 1.5e-6, errs
        assert errs[64] < errs[32] / 20, errs
