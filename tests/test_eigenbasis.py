"""The box eigenbasis kept as 1-D tables (SeparableFeatures) against the dense trunk Φ."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pinnprob.domain import Box
from pinnprob.testfunctions import BoxEigenbasis, SeparableFeatures, dense_features


@pytest.mark.parametrize("dim, bc", [(1, "neumann"), (2, "neumann"), (2, "dirichlet"), (2, "periodic"), (3, "neumann")])
def test_separable_products_equal_dense(dim, bc):
    with jax.enable_x64(True):
        basis = BoxEigenbasis.create(Box((1.0,) * dim, bc), 7, max_frequency=6.5 * math.pi)
        X = jax.random.uniform(jax.random.key(0), (17, dim))
        Phi, S = basis(X), basis.separable(X)
        assert isinstance(S, SeparableFeatures) and S.shape == Phi.shape == (17, basis.size)
        w = jax.random.normal(jax.random.key(1), (basis.size,))
        r = jax.random.normal(jax.random.key(2), (17,))
        np.testing.assert_allclose(S.dense(), Phi, rtol=0, atol=1e-13)
        np.testing.assert_allclose(dense_features(S), dense_features(Phi), rtol=0, atol=1e-13)
        np.testing.assert_allclose(S @ w, Phi @ w, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(r @ S, r @ Phi, rtol=1e-12, atol=1e-12)
        # under jit and vmap, and its gradient (the adjoint of the scatter is a gather)
        W = jax.random.normal(jax.random.key(3), (4, basis.size))
        np.testing.assert_allclose(jax.jit(jax.vmap(lambda S, w: S @ w, (None, 0)))(S, W), W @ Phi.T, atol=1e-12)
        gs = jax.grad(lambda w: jnp.sum(jnp.sin(S @ w)))(w)
        gd = jax.grad(lambda w: jnp.sum(jnp.sin(Phi @ w)))(w)
        np.testing.assert_allclose(gs, gd, rtol=1e-10, atol=1e-12)


def test_separable_rejects_batched_operands():
    basis = BoxEigenbasis.create(Box((1.0, 1.0), "neumann"), 4)
    S = basis.separable(jnp.full((5, 2), 0.3))
    with pytest.raises(ValueError, match="shape \\(K,\\)"):
        S @ jnp.ones((2, basis.size))
    with pytest.raises(ValueError, match="shape \\(n,\\)"):
        jnp.ones((2, 5)) @ S


@pytest.mark.parametrize("bc", ["neumann", "dirichlet", "periodic"])
@pytest.mark.parametrize("lengths", [(1.3,), (1.0, 0.7), (1.0, 1.2, 0.8)])
def test_gram_from_harmonic_moments_equals_dense(bc, lengths):
    """ΦᵀΦ from the product-to-sum rule (moments of the harmonics) is the dense product, for each boundary
    condition, unequal sides, 1-3 dimensions and a disk of modes (not the full grid), with more modes
    than a block of rows (GRAM_ROWS) so that the row blocks and their padding are exercised."""
    from pinnprob.testfunctions.eigen import GRAM_ROWS

    d = len(lengths)
    with jax.enable_x64(True):
        basis = BoxEigenbasis.create(Box(lengths, bc), (60, 25, 10)[d - 1], max_frequency=(150.0, 75.0, 30.0)[d - 1])
        assert d == 1 or basis.size > GRAM_ROWS
        X = jax.random.uniform(jax.random.key(4), (301, d)) * jnp.asarray(lengths)
        S, Phi = basis.separable(X), np.asarray(basis(X))
        G = np.asarray(S.gram())
        assert G.shape == (basis.size, basis.size)
        np.testing.assert_allclose(G, Phi.T @ Phi, rtol=0, atol=1e-11 * np.abs(Phi.T @ Phi).max())
