"""A finite-element truth for the α = 2 Matérn SPDE in 2-D, stationary or not:

    (κ²(x) − ∇·H(x)∇)(τ(x) u) = W   on the box [0, L₁] × [0, L₂], Neumann (natural) boundary,

with P1 elements on a regular triangulation and a lumped mass matrix (Lindgren, Rue & Lindström
2011, JRSS-B 73(4), §2.3 and appendix C). With C̃ the lumped mass, G_ij = ∫ (H∇ψ_j)·∇ψ_i, K = D(κ²) C̃ + G
and T = D(τ) at the nodes, the weights w of u = Σ w_i ψ_i have precision Q = T K C̃⁻¹ K T.

For α = 2 nothing needs a Cholesky factor of Q: K w' = C̃^{1/2} ξ with ξ ~ N(0, I) and w = T⁻¹ w'
is an exact sample (Cov w = T⁻¹ K⁻¹ C̃ K⁻¹ T⁻¹ = Q⁻¹), and point covariances are
A T⁻¹ K⁻¹ C̃ K⁻¹ T⁻¹ Bᵀ with A, B the P1 interpolation matrices. Assembly is scikit-fem's; the one
factorisation, of the sparse SPD matrix K, is SciPy's SuperLU (scikit-sparse's CHOLMOD has no wheels
on PyPI, and K need not be symmetric-factorised to sample exactly).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

__all__ = ["FEMMatern", "anisotropy_matrix", "box_sites"]


def anisotropy_matrix(angle, log_ratio):
    """H = R(θ) diag(r, 1/r) R(θ)ᵀ with r = exp(log_ratio): det H = 1, the range stretched by √r along
    the direction at angle θ (radians) and shrunk by √r across it. Broadcasts; shape (..., 2, 2).
    NumPy in, NumPy out (float64); JAX arrays in, JAX out (differentiable, for :mod:`pinnprob.gmrf`)."""
    import jax

    xp = jax.numpy if isinstance(angle, jax.Array) or isinstance(log_ratio, jax.Array) else np
    a, lr = xp.broadcast_arrays(xp.asarray(angle, float), xp.asarray(log_ratio, float))
    c, s, r = xp.cos(a), xp.sin(a), xp.exp(lr)
    h11 = r * c**2 + s**2 / r
    h22 = r * s**2 + c**2 / r
    h12 = (r - 1 / r) * c * s
    return xp.stack([xp.stack([h11, h12], -1), xp.stack([h12, h22], -1)], -2)


def box_sites(X, lengths) -> np.ndarray:
    """Sites X as a float64 (n, 2) copy, checked: finite and inside [0, L₁] × [0, L₂] (one ValueError)."""
    X = np.atleast_2d(np.array(X, np.float64, copy=True))
    if X.ndim != 2 or X.shape[1] != 2 or not np.all(np.isfinite(X)):
        raise ValueError(f"sites must be a finite array of shape (n, 2), got shape {X.shape}")
    L = np.asarray(lengths, np.float64)
    if np.any(X < 0) or np.any(X > L):
        raise ValueError(f"sites must lie in the box [0, {L[0]:g}] × [0, {L[1]:g}]")
    return X


class FEMMatern:
    """P1 finite elements for (κ²(x) − ∇·H(x)∇)(τ(x)u) = W on a box with ``num_per_side`` cells per
    side (2·num² triangles, (num + 1)² nodes).

    ``kappa2(x)``, ``tau(x)`` map points (n, 2) to (n,) and ``H(x)`` maps them to (n, 2, 2) (default:
    the identity). :meth:`stationary` builds the stationary field from (range, σ). Sites passed to
    :meth:`covariance` and :meth:`sample` must lie in the box.
    """

    def __init__(self, num_per_side: int, kappa2: Callable, tau: Callable, H: Callable | None = None,
                 lengths=(1.0, 1.0)):
        import scipy.sparse as sp
        import skfem
        from scipy.sparse.linalg import splu
        from skfem.helpers import grad

        if int(num_per_side) < 2:
            raise ValueError(f"num_per_side must be at least 2, got {num_per_side}")
        self.lengths = tuple(float(v) for v in lengths)
        n = int(num_per_side)
        self.mesh = skfem.MeshTri.init_tensor(np.linspace(0, self.lengths[0], n + 1),
                                              np.linspace(0, self.lengths[1], n + 1))
        self.basis = skfem.Basis(self.mesh, skfem.ElementTriP1())
        nodes = self.mesh.p.T  # (N, 2)

        def coefficient(x):  # quadrature points (2, elements, points) → H entries there
            pts = x.reshape(2, -1).T
            Hx = np.broadcast_to(np.eye(2), (len(pts), 2, 2)) if H is None else np.asarray(H(pts), np.float64)
            return [Hx[:, i, j].reshape(x.shape[1:]) for i, j in ((0, 0), (0, 1), (1, 1))]

        @skfem.BilinearForm
        def stiffness(u, v, w):
            h11, h12, h22 = coefficient(w.x)
            gu, gv = grad(u), grad(v)
            return h11 * gu[0] * gv[0] + h12 * (gu[0] * gv[1] + gu[1] * gv[0]) + h22 * gu[1] * gv[1]

        @skfem.BilinearForm
        def mass(u, v, w):
            return u * v

        G = stiffness.assemble(self.basis).tocsc()
        self.lumped = np.asarray(mass.assemble(self.basis).sum(axis=1)).ravel()  # C̃_ii = ∫ψ_i
        k2 = np.asarray(kappa2(nodes), np.float64).reshape(-1)
        self.tau = np.asarray(tau(nodes), np.float64).reshape(-1)
        if np.any(k2 <= 0) or np.any(self.tau <= 0) or not (np.all(np.isfinite(k2)) and np.all(np.isfinite(self.tau))):
            raise ValueError("kappa2 and tau must be finite and positive at every node")
        self.K = (sp.diags(k2 * self.lumped) + G).tocsc()
        self._lu = splu(self.K)

    @classmethod
    def stationary(cls, num_per_side: int, *, range: float, sigma: float = 1.0, angle: float = 0.0,
                   log_ratio: float = 0.0, lengths=(1.0, 1.0)) -> "FEMMatern":
        """The stationary field with practical range √8/κ and marginal sd σ on R² (ν = 1), optionally
        anisotropic (:func:`anisotropy_matrix`; det H = 1, so σ is unchanged)."""
        return cls.from_range_field(num_per_side, lambda x: np.full(len(x), float(range)), sigma=sigma,
                                    angle=angle, log_ratio=log_ratio, lengths=lengths)

    @classmethod
    def from_range_field(cls, num_per_side: int, range_field: Callable, *, sigma: float = 1.0, angle=0.0,
                         log_ratio=0.0, lengths=(1.0, 1.0)) -> "FEMMatern":
        """A range that varies in space, ``range_field(x)`` (n,), with κ(x) = √8/ρ(x) and τ(x) set so that
        the local stationary variance is σ² (for ν = 1 in 2-D, σ² = 1/(4π κ² τ² √det H) with det H = 1).
        ``angle`` and ``log_ratio`` are numbers or functions of x."""
        def kappa2(x):
            return 8.0 / np.asarray(range_field(x), np.float64) ** 2

        def field(v):
            return v if callable(v) else (lambda x: np.full(len(x), float(v)))

        ang, lr = field(angle), field(log_ratio)
        return cls(num_per_side, kappa2, lambda x: 1.0 / (float(sigma) * np.sqrt(4 * math.pi * kappa2(x))),
                   H=lambda x: anisotropy_matrix(ang(x), lr(x)), lengths=lengths)

    @property
    def num_nodes(self) -> int:
        return self.mesh.p.shape[1]

    def interpolation(self, X):
        """The P1 interpolation matrix A (n, nodes) of sites X (n, 2): u(X) = A w."""
        return self._interpolation(X)

    def _interpolation(self, X):
        return self.basis.probes(box_sites(X, self.lengths).T).tocsr()

    def _solve(self, B) -> np.ndarray:
        """K⁻¹ T⁻¹ Bᵀ for sparse B (p, N): dense (N, p)."""
        rhs = (B.T.toarray() / self.tau[:, None])
        return self._lu.solve(rhs)

    def covariance(self, X, Y=None) -> np.ndarray:
        """Cov(u(x_i), u(y_j)) of the finite-element field, (n, p); Y defaults to X."""
        VX = self._solve(self._interpolation(X))
        VY = VX if Y is None else self._solve(self._interpolation(Y))
        return VX.T @ (self.lumped[:, None] * VY)

    def variance(self, X, chunk: int = 256) -> np.ndarray:
        """Var u(x_i) at X (n,), in chunks of ``chunk`` sites (memory: num_nodes × chunk numbers)."""
        A = self._interpolation(X)
        out = np.empty(A.shape[0])
        for s in range(0, A.shape[0], chunk):
            V = self._solve(A[s:s + chunk])
            out[s:s + chunk] = np.einsum("np,n,np->p", V, self.lumped, V)
        return out

    def sample(self, seed: int, X, num_samples: int) -> np.ndarray:
        """Exact samples of the finite-element field at X, shape (num_samples, n)."""
        A = self._interpolation(X)
        xi = np.random.default_rng(seed).standard_normal((self.num_nodes, int(num_samples)))
        W = self._lu.solve(np.sqrt(self.lumped)[:, None] * xi) / self.tau[:, None]
        return np.asarray((A @ W).T)

    def coefficient_covariance(self, values) -> np.ndarray:
        """Cov(c) (K, K) of the field's coefficients c_k = ∫ u v_k (lumped: Σ_i C̃_ii w_i v_k(node_i)) on
        functions given by their values at the nodes (N, K): Yᵀ C̃ Y with Y = K⁻¹ T⁻¹ C̃ v (K symmetric),
        e.g. the FEM law projected on a basis."""
        v = np.asarray(values, np.float64)
        Y = self._lu.solve(self.lumped[:, None] * v / self.tau[:, None])
        return Y.T @ (self.lumped[:, None] * Y)

    def sample_nig(self, seed: int, X, num_samples: int, mu: float, eta: float) -> np.ndarray:
        """Exact samples at X (num_samples, n) of the finite-element field driven by unit-variance NIG
        noise (:class:`~pinnprob.noise.NIGNoise`) instead of W: K T w = m with m_i the noise's mass on
        node i's lumped area C̃_ii, independent (Bolin 2014, Scand. J. Stat. 41, 557, §3.1). Drawn with
        NumPy and SciPy's inverse Gaussian, independently of the JAX sampler it checks."""
        import scipy.stats as st

        from pinnprob.noise import NIGNoise

        NIGNoise.check(mu, eta)
        rng = np.random.default_rng(seed)
        h = self.lumped[:, None]
        V = st.invgauss.rvs(1.0 / (eta * h), scale=eta * h**2, size=(self.num_nodes, int(num_samples)),
                            random_state=rng)  # IG(mean h, shape η h²)
        m = (mu * (V - h) + np.sqrt(V) * rng.standard_normal(V.shape)) / math.sqrt(1.0 + mu**2 / eta)
        W = self._lu.solve(m) / self.tau[:, None]
        return np.asarray((self._interpolation(X) @ W).T)

    def nig_moments(self, X, mu: float, eta: float) -> tuple:
        """Exact (variance, skewness, excess kurtosis) at X, each (n,), of :meth:`sample_nig`'s field:
        u(x_s) = Σ_i V_si m_i with independent m_i, so κ_n(u(x_s)) = c_n Σ_i V_si^n C̃_ii
        (:meth:`~pinnprob.noise.NIGNoise.cumulant_factors`)."""
        from pinnprob.noise import NIGNoise

        NIGNoise.check(mu, eta)
        V = self._solve(self._interpolation(X))  # (N, n)
        p2, p3, p4 = (np.einsum("i,in->n", self.lumped, V**k) for k in (2, 3, 4))
        return NIGNoise.tested_moments(mu, eta, p2, p3, p4)

    def precision(self):
        """Q = T K C̃⁻¹ K T of the node weights (sparse, N × N)."""
        import scipy.sparse as sp

        T = sp.diags(self.tau)
        return (T @ self.K @ sp.diags(1.0 / self.lumped) @ self.K @ T).tocsc()
