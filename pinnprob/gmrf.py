"""The α = 2 SPDE's finite-element GMRF in JAX: a precision matrix differentiable in the fields
κ²(x), τ(x) and H(x), and the Gaussian marginal likelihood of point data — the reference model
"without a generator" that NUTS can run on a moderate mesh.

Same discretisation as :class:`pinnprob.fem.FEMMatern` (P1 on a regular triangulation of the box,
lumped mass; Lindgren, Rue & Lindström 2011): Q = T K C̃⁻¹ K T with K = D(κ²) C̃ + G, G_ij =
Σ_e |e| ∇ψ_iᵀ H_e ∇ψ_j and H constant on each triangle (its value at the centroid). The mesh
geometry is precomputed once with NumPy; the assembly and the likelihood are pure JAX (dense:
O(N³) per evaluation, for N up to a few thousand nodes).

    log p(y | θ) = log N(y | μ, A Q⁻¹ Aᵀ + s² I),  by Woodbury on P = Q + AᵀA / s²:
    yᵀΣ⁻¹y = rᵀr/s² − bᵀP⁻¹b (b = Aᵀr/s², r = y − μ),  log det Σ = log det P − log det Q + n log s².
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular
from jaxtyping import Array, Float, Int

__all__ = ["FEMGrid"]


class FEMGrid(eqx.Module):
    """The P1 geometry of a regular triangulation of [0, L₁] × [0, L₂] with ``num_per_side`` cells per side.

    ``nodes`` (N, 2), ``triangles`` (E, 3) node indices, ``areas`` (E,), ``grads`` (E, 3, 2) the
    gradients of the three hat functions on each triangle, ``centroids`` (E, 2), ``lumped`` (N,) the
    lumped mass ∫ψ_i. Build it with :meth:`create`; :meth:`interpolation` gives the matrix A of point
    values."""

    nodes: Float[Array, "N 2"]
    triangles: Int[Array, "E 3"]
    areas: Float[Array, " E"]
    grads: Float[Array, "E 3 2"]
    centroids: Float[Array, "E 2"]
    lumped: Float[Array, " N"]
    lengths: tuple[float, float] = eqx.field(static=True)

    @classmethod
    def create(cls, num_per_side: int, lengths=(1.0, 1.0)) -> "FEMGrid":
        import skfem

        if int(num_per_side) < 2:
            raise ValueError(f"num_per_side must be at least 2, got {num_per_side}")
        n = int(num_per_side)
        L = tuple(float(v) for v in lengths)
        mesh = skfem.MeshTri.init_tensor(np.linspace(0, L[0], n + 1), np.linspace(0, L[1], n + 1))
        p, t = mesh.p.T.astype(np.float64), mesh.t.T.astype(np.int64)
        P = p[t]  # (E, 3, 2)
        J = np.stack([P[:, 1] - P[:, 0], P[:, 2] - P[:, 0]], axis=-1)  # (E, 2, 2), columns = edges
        areas = 0.5 * np.abs(np.linalg.det(J))
        ref = np.array([[-1.0, -1.0], [1.0, 0.0], [0.0, 1.0]])  # reference gradients of λ0, λ1, λ2
        grads = np.einsum("ia,eab->eib", ref, np.linalg.inv(J))  # ∇λ_i = ∇̂λ̂_i J⁻¹ (rows)
        lumped = np.zeros(len(p))
        np.add.at(lumped, t, np.repeat(areas[:, None] / 3.0, 3, axis=1))
        return cls(jnp.asarray(p), jnp.asarray(t), jnp.asarray(areas), jnp.asarray(grads), jnp.asarray(P.mean(1)),
                   jnp.asarray(lumped), L)

    @property
    def num_nodes(self) -> int:
        return int(self.nodes.shape[0])

    def interpolation(self, X) -> Float[Array, "n N"]:
        """A (n, N), dense: the P1 interpolation of node values at sites X (n, 2) in the box."""
        import skfem

        from pinnprob.fem import box_sites

        X = box_sites(X, self.lengths)
        mesh = skfem.MeshTri(np.asarray(self.nodes).T, np.asarray(self.triangles).T)
        A = skfem.Basis(mesh, skfem.ElementTriP1()).probes(X.T)
        return jnp.asarray(A.toarray())

    def stiffness(self, H: Float[Array, "E 2 2"]) -> Float[Array, "N N"]:
        """G_ij = Σ_e |e| ∇ψ_iᵀ H_e ∇ψ_j, dense, for one H per triangle (E, 2, 2) (or (2, 2) for all)."""
        H = jnp.broadcast_to(H, (self.triangles.shape[0], 2, 2))
        local = self.areas[:, None, None] * jnp.einsum("eia,eab,ejb->eij", self.grads, H, self.grads)
        rows = jnp.repeat(self.triangles[:, :, None], 3, axis=2)
        cols = jnp.repeat(self.triangles[:, None, :], 3, axis=1)
        N = self.num_nodes
        return jnp.zeros((N, N), local.dtype).at[rows, cols].add(local)

    def precision(self, kappa2: Float[Array, " N"], tau: Float[Array, " N"], H) -> Float[Array, "N N"]:
        """Q = T K C̃⁻¹ K T with K = D(κ²) C̃ + G(H): κ² and τ at the nodes (N,), H per triangle."""
        K = jnp.diag(kappa2 * self.lumped) + self.stiffness(H)
        TK = tau[:, None] * K
        return (TK / self.lumped[None, :]) @ TK.T

    def log_marginal(self, y: Float[Array, " n"], A: Float[Array, "n N"], Q: Float[Array, "N N"], noise,
                     mean=0.0) -> Float[Array, ""]:
        """log N(y | mean, A Q⁻¹ Aᵀ + noise² I), by Woodbury on P = Q + AᵀA/noise² (see module notes)."""
        s2 = noise**2
        r = y - mean
        P = Q + A.T @ A / s2
        Lp = jnp.linalg.cholesky(P)
        Lq = jnp.linalg.cholesky(Q)
        w = solve_triangular(Lp, A.T @ r / s2, lower=True)  # Lp⁻¹ b: bᵀP⁻¹b = |w|²
        quad = r @ r / s2 - w @ w
        logdet = 2 * (jnp.sum(jnp.log(jnp.diag(Lp))) - jnp.sum(jnp.log(jnp.diag(Lq)))) + r.shape[0] * jnp.log(s2)
        return -0.5 * (quad + logdet + r.shape[0] * math.log(2 * math.pi))
