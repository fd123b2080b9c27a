"""Noise laws of an SPDE's forcing, as seen through test functions.

The weak form tests the forcing against test functions ψ_1..ψ_K; a noise law says what the law of
(⟨Ẇ, ψ_1⟩, ..., ⟨Ẇ, ψ_K⟩) is. For Gaussian white noise it is N(0, G) with G_kl = ∫ ψ_k ψ_l
(Walsh 1986, ch. 1), the identity for an orthonormal basis.
"""

from __future__ import annotations

import abc

import equinox as eqx
from jaxtyping import Array, Float

__all__ = ["AbstractNoise", "AbstractGaussianNoise", "GaussianWhiteNoise"]


class AbstractNoise(eqx.Module):
    """A noise law: how the forcing acts on test functions."""


class AbstractGaussianNoise(AbstractNoise):
    """A Gaussian noise law: the tested noise is N(0, Σ(G)) for test functions with Gram matrix G."""

    @abc.abstractmethod
    def tested_covariance(self, gram: Float[Array, "K K"]) -> Float[Array, "K K"]:
        """Covariance of the tested noise, (K, K), from the test functions' Gram matrix (K, K)."""


class GaussianWhiteNoise(AbstractGaussianNoise):
    """Unit Gaussian white noise W: ⟨W, ψ_k⟩ ~ N(0, G), G the Gram matrix of the test functions."""

    def tested_covariance(self, gram):
        return gram
