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
