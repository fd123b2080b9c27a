"""A push-forward generator for SPDEs driven by type-G noise: a normal variance–mean mixture on cells.

Type-G noise (Bolin 2014, Scand. J. Stat. 41, 557, §3) gives a cell of area h the mass
m = μ(V − h) + √V ζ, ζ ~ N(0, 1), with V from a subordinator (inverse Gaussian for NIG noise). The
generator keeps that form on a grid of J cells and learns the law of the mixing variable as a
push-forward of a Gaussian (Salmona et al. 2022, NeurIPS), conditional on θ:

    W_j = exp(g_θ(z_j)) / E exp(g_θ(Z)),   g_θ monotone, piecewise linear in z (a network at nodes),
    g_θ'(z) = b_θ'(z) exp(h_θ(z)),         b_θ the base law's log quantile function,
    n_j = (β (W_j − 1) + √W_j ζ_j) / s,    β = μ_A √h,  s² = 1 + β² Var W  (so Var n_j = 1 exactly),
    ξ_k = Σ_j √h φ_k(c_j) n_j,             u(x) = Σ_k a(θ, λ_k) ξ_k φ_k(x),

with z, ζ ~ N(0, I_J) the latent (2J), μ_A the noise's skewness per unit area, and a(θ, λ) a learned
spectral amplitude (:class:`~pinnprob.generators.SpectralGenerator`'s network). The midpoint rule on
the cells keeps the cosines orthonormal (DCT-II), so Cov ξ = I and the field's covariance is exactly
Φ diag(a²) Φᵀ for any learned g; the mixing law sets the tails only. E Wᵏ are exact for the
piecewise-linear g (Gaussian integrals per segment), so nothing is estimated from samples.

The network h_θ starts at zero (its last layer is zero), where g_θ is the base map: by default the
exact quantile transform of the noise's mixing variable (W = F⁻¹(Φ(z)), tabulated over the training
box's cell variances, :meth:`~pinnprob.noise.NIGNoise.log_mixing_quantiles`), so that the untrained
generator is the noise's cell discretisation and training corrects the interpolation and what the
cells miss; or (``base="lognormal"``) the log-normal with the exact variance, for comparing what the
sample divergences learn from scratch: on small cells the mixing law is far from Gaussian (IG(1, ηh),
variance 1/(ηh) of tens to hundreds), and push-forwards of a Gaussian find heavy tails hard (Salmona
et al. 2022).

The amplitude network sees only the operator's parameters (the noise axes are held at the box's
centre): the tested noise has covariance I for every law, so the covariance cannot depend on them.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr, ndtri
from jaxtyping import Array, Float, PRNGKeyArray

from pinnprob.generators.base import AbstractDiagonalGenerator, AbstractPushForwardGenerator
from pinnprob.generators.spectral import SpectralGenerator
from pinnprob.noise import AbstractTypeGNoise
from pinnprob.spde.base import DiagonalSPDE
from pinnprob.testfunctions.eigen import BoxEigenbasis, _eigenfunction_1d

__all__ = ["VarianceMixtureGenerator", "CellProjection", "MixingQuantiles", "log_gaussian_mass"]


def log_gaussian_mass(lo: Float[Array, "..."], hi: Float[Array, "..."]) -> Float[Array, "..."]:
    """log(Φ(hi) − Φ(lo)) for lo < hi, stable in both tails (by symmetry, on the side of the smaller mass)."""
    flip = lo > 0
    a, b = jnp.where(flip, -hi, lo), jnp.where(flip, -lo, hi)  # now a < b, a ≤ 0
    lb, la = log_ndtr(b), log_ndtr(a)
    return lb + jnp.log1p(-jnp.exp(jnp.minimum(la - lb, -1e-30)))


class CellProjection(eqx.Module):
    """ξ_k = Σ_j √h φ_k(c_j) n_j for values n on a regular grid of cells (M per side), by the 1-D tables
    (M × M_i per axis): n·Π M_i work, no dense J × K matrix. For modes with 1-D index < M the map is
    an isometry (DCT-II orthogonality of cosines at cell midpoints)."""

    tables: tuple[Float[Array, "M Mi"], ...]
    flat_index: Array
    grid: tuple[int, ...] = eqx.field(static=True)
    cells_per_side: int = eqx.field(static=True)

    def __init__(self, basis: BoxEigenbasis, cells_per_side: int):
        M = int(cells_per_side)
        if max(basis.grid) > M:
            raise ValueError(f"{M} cells per side cannot carry modes of 1-D index up to {max(basis.grid) - 1} "
                             f"(need cells_per_side ≥ {max(basis.grid)})")
        self.cells_per_side, self.grid = M, basis.grid
        tabs = []
        for L, Mi in zip(basis.domain.lengths, basis.grid, strict=True):
            c = (jnp.arange(M) + 0.5) * (L / M)
            tabs.append(math.sqrt(L / M) * _eigenfunction_1d(jnp.arange(Mi)[None, :], c[:, None], L, basis.domain.bc))
        self.tables = tuple(tabs)
        self.flat_index = jnp.ravel_multi_index(tuple(jnp.asarray(basis.modes).T), basis.grid, mode="clip")

    @property
    def num_cells(self) -> int:
        return self.cells_per_side ** len(self.tables)

    def __call__(self, n: Float[Array, "*S J"]) -> Float[Array, "*S K"]:
        """The projection of cell values n (..., J), cells in C order, onto the modes: (..., K)."""
        M = self.cells_per_side
        if len(self.tables) == 1:
            G = n @ self.tables[0]
        else:
            T1, T2 = self.tables  # 2-D
            N = n.reshape(n.shape[:-1] + (M, M))
            G = jnp.einsum("...ab,ai,bj->...ij", N, T1, T2)
        return G.reshape(n.shape[:-1] + (-1,))[..., self.flat_index]

    def adjoint(self, xi: Float[Array, "*S K"]) -> Float[Array, "*S J"]:
        """The transpose of :meth:`__call__`: mode values (..., K) to cell values (..., J)."""
        G = jnp.zeros(xi.shape[:-1] + (math.prod(self.grid),), xi.dtype).at[..., self.flat_index].set(xi)
        if len(self.tables) == 1:
            return G @ self.tables[0].T
        T1, T2 = self.tables
        G = G.reshape(xi.shape[:-1] + self.grid)
        return jnp.einsum("...ij,ai,bj->...ab", G, T1, T2).reshape(xi.shape[:-1] + (-1,))


class MixingQuantiles(eqx.Module):
    """log quantiles of the base mixing law at the nodes, tabulated over log Var(W): ``table`` (n, N),
    ``log_variance`` (n,); read by linear interpolation in log variance (clamped at the ends)."""

    log_variance: Float[Array, " n"]
    table: Float[Array, "n N"]

    def __call__(self, variance: Float[Array, ""]) -> Float[Array, " N"]:
        lv = jnp.clip(jnp.log(variance), self.log_variance[0], self.log_variance[-1])
        return jax.vmap(lambda col: jnp.interp(lv, self.log_variance, col), in_axes=1)(self.table)


BASES = ("quantile", "lognormal")


class VarianceMixtureGenerator(AbstractPushForwardGenerator):
    """u = Φ(x) (a(θ) ⊙ ξ(z, θ)), ξ the projection of learned type-G noise on a grid of cells (see the
    module notes); latent z = (mixing latents, Gaussian latents), 2J numbers, J = cells_per_side^d."""

    gaussian: AbstractDiagonalGenerator  # its amplitudes: a SpectralGenerator, or its table (for_inference)
    mixing_net: eqx.nn.MLP
    projection: CellProjection
    base_quantiles: MixingQuantiles
    cell_area: float = eqx.field(static=True)
    num_nodes: int = eqx.field(static=True)
    span: float = eqx.field(static=True)
    base: str = eqx.field(static=True)
    noise_axes: tuple[int, ...] = eqx.field(static=True)

    def __init__(self, key: PRNGKeyArray, basis: BoxEigenbasis, spde: DiagonalSPDE, cells_per_side: int = 64,
                 width: int = 64, depth: int = 3, mixing_width: int = 32, num_nodes: int = 97, span: float = 6.0,
                 base: str = "quantile"):
        k1, k2 = jax.random.split(key)
        if not isinstance(spde.noise, AbstractTypeGNoise):
            raise ValueError(f"the variance-mixture generator needs a type-G noise (a mixing variable with "
                             f"quantiles), got {type(spde.noise).__name__}")
        if base not in BASES:
            raise ValueError(f"base must be one of {BASES}, got {base!r}")
        self.gaussian = SpectralGenerator(k1, basis, spde, width=width, depth=depth)
        net = eqx.nn.MLP(1 + spde.space.dim, "scalar", mixing_width, 3, activation=jax.nn.tanh, key=k2)
        last = net.layers[-1]
        self.mixing_net = eqx.tree_at(lambda n: (n.layers[-1].weight, n.layers[-1].bias), net,
                                      (jnp.zeros_like(last.weight), jnp.zeros_like(last.bias)))
        self.projection = CellProjection(basis, cells_per_side)
        self.num_nodes, self.span, self.base = int(num_nodes), float(span), base
        self.cell_area = float(math.prod(basis.domain.lengths)) / cells_per_side ** basis.domain.dim
        self.noise_axes = tuple(i for i, n in enumerate(spde.space.names) if n in spde.noise.param_names)
        self.base_quantiles = self._tabulate(spde)

    def _tabulate(self, spde, num: int = 48) -> MixingQuantiles:
        """The base law's log quantiles at the nodes over the cell variances of the training box (its
        corners bound them), widened by 20 % at each end."""
        corners = np.array(np.meshgrid(*[[0.0, 1.0]] * spde.space.dim, indexing="ij")).reshape(spde.space.dim, -1).T
        var = np.array([float(spde.noise.mixing_variance(spde.noise_params(th), self.cell_area))
                        for th in np.asarray(spde.space.from_unit(corners))])
        lv = np.linspace(math.log(var.min() / 1.2), math.log(var.max() * 1.2), num)
        z = np.linspace(-self.span, self.span, self.num_nodes)
        if self.base == "quantile":
            table = spde.noise.log_mixing_quantiles(z, np.exp(lv))
        else:  # log-normal of the same variance: log W = σ z + const
            table = np.sqrt(np.log1p(np.exp(lv)))[:, None] * z[None, :]
        table = table - table[:, self.num_nodes // 2 : self.num_nodes // 2 + 1]  # g(0) = 0
        if not np.all(np.isfinite(table)) or np.any(np.diff(table, axis=1) <= 0):
            raise ValueError("the mixing law's quantile table is not finite and increasing over the training box")
        return MixingQuantiles(jnp.asarray(lv), jnp.asarray(table))

    def operator_theta(self, theta: Float[Array, " p"]) -> Float[Array, " p"]:
        """θ with the noise's axes set to the training box's centre: what the amplitudes see."""
        centre = self.space.from_unit(jnp.full(self.space.dim, 0.5))
        idx = jnp.asarray(self.noise_axes, dtype=jnp.int32)
        return jnp.asarray(theta).at[idx].set(centre[idx])

    def log_amplitudes(self, theta, eigenvalues: Float[Array, " K"] | None = None) -> Float[Array, " K"]:
        """log a(θ, λ_k) for each eigenvalue (default: the trunk's), (K,): a function of the operator's
        parameters only."""
        return self.gaussian.log_amplitudes(self.operator_theta(theta), eigenvalues)

    def amplitudes(self, theta) -> Float[Array, " K"]:
        return jnp.exp(self.log_amplitudes(theta))

    # -- the interface ----------------------------------------------------------------------------
    @property
    def space(self):
        return self.gaussian.space

    @property
    def spde(self) -> DiagonalSPDE:
        return self.gaussian.spde

    def for_inference(self, theta_bounds):
        """With the amplitudes read from a table over the operator's parameters within ``theta_bounds``
        (:class:`~pinnprob.generators.TabulatedGenerator`, Hermite in log range): the same law to
        ~1e-5 in log amplitude, without the amplitude network's pass over every mode per evaluation.
        Itself when the operator has other parameters than the first one or two axes."""
        from pinnprob.generators.tabulated import TabulatedGenerator

        op = tuple(i for i in range(self.space.dim) if i not in self.noise_axes)
        if op not in ((0,), (0, 1)) or self.space.dim < 2:
            return self
        centre = np.asarray(self.space.from_unit(jnp.full(self.space.dim, 0.5)), np.float64)
        b = np.asarray(theta_bounds, np.float64)
        second = tuple(b[1]) if op == (0, 1) else (centre[1], centre[1])
        table = TabulatedGenerator(self.gaussian, b[0], second, num_range=49, rest=centre[2:])
        return eqx.tree_at(lambda g: g.gaussian, self, table)

    @property
    def nodes(self) -> Float[Array, " N"]:
        """The nodes of the piecewise-linear g, equispaced on [−span, span]."""
        return jnp.linspace(-self.span, self.span, self.num_nodes)

    @property
    def basis(self) -> BoxEigenbasis:
        return self.gaussian.basis

    @property
    def num_cells(self) -> int:
        return self.projection.num_cells

    @property
    def latent_dim(self) -> int:
        return 2 * self.num_cells

    def features(self, X):
        return self.basis(X)

    def product_features(self, X):
        return self.basis.separable(X)

    def branch(self, theta):
        return theta

    def combine(self, features, theta, z):
        return features @ self.coefficients(z, theta)

    # -- the mixing law ---------------------------------------------------------------------------
    def log_mixing_table(self, theta) -> tuple[Float[Array, " N"], Float[Array, " N"]]:
        """g_θ at the nodes (N,) and its slopes on the N − 1 segments, g increasing with g(0) = 0: the
        network gives the log-slopes relative to the base law's at the segment midpoints."""
        t = self.nodes
        mid = 0.5 * (t[1:] + t[:-1])
        th = self.space.normalize(theta)
        inp = jnp.concatenate([mid[:, None] / t[-1], jnp.broadcast_to(th, (mid.shape[0], th.shape[-1]))], axis=1)
        var = self.spde.noise.mixing_variance(self.spde.noise_params(theta), self.cell_area)
        base_slopes = jnp.diff(self.base_quantiles(var)) / jnp.diff(t)
        slopes = base_slopes * jnp.exp(jax.vmap(self.mixing_net)(inp))
        g = jnp.concatenate([jnp.zeros(1), jnp.cumsum(slopes * jnp.diff(t))])
        g = g - jnp.interp(0.0, t, g)
        return g, slopes

    def log_mixing(self, zv: Float[Array, "..."], theta, table=None) -> Float[Array, "..."]:
        """g_θ(z): piecewise linear between the nodes, continued linearly outside them (``table``:
        :meth:`log_mixing_table` at θ, when the caller has it)."""
        g, slopes = self.log_mixing_table(theta) if table is None else table
        # equispaced nodes: the segment by arithmetic (no search); the end segments continue outside
        dz = 2.0 * self.span / (self.num_nodes - 1)
        i = jnp.clip(jnp.floor((zv + self.span) / dz).astype(jnp.int32), 0, self.num_nodes - 2)
        return g[i] + slopes[i] * (zv - (-self.span + i * dz))

    def log_mixing_moments(self, theta, orders: tuple[int, ...] = (1, 2), table=None) -> tuple[Array, ...]:
        """log E e^{c g(Z)}, Z ~ N(0, 1), for each c in ``orders``, exact for the piecewise-linear g:
        ∫_l^u e^{c(a + b z)} φ(z) dz = e^{ca + c²b²/2} (Φ(u − cb) − Φ(l − cb)) per segment and tail."""
        t = self.nodes
        g, slopes = self.log_mixing_table(theta) if table is None else table
        b = jnp.concatenate([slopes[:1], slopes, slopes[-1:]])
        lo = jnp.concatenate([jnp.array([-jnp.inf]), t])
        hi = jnp.concatenate([t, jnp.array([jnp.inf])])
        anchor = jnp.concatenate([t[:1], t[:-1], t[-1:]])  # g is a + b z on a segment through (anchor, g)
        g_anchor = jnp.concatenate([g[:1], g[:-1], g[-1:]])
        a = g_anchor - b * anchor

        def log_moment(c):
            lo_s, hi_s = lo - c * b, hi - c * b
            lo_s = jnp.where(jnp.isinf(lo), -jnp.inf, lo_s)
            hi_s = jnp.where(jnp.isinf(hi), jnp.inf, hi_s)
            return jax.nn.logsumexp(c * a + 0.5 * (c * b) ** 2 + log_gaussian_mass(lo_s, hi_s))

        return tuple(log_moment(float(c)) for c in orders)

    def cell_cumulants(self, theta) -> tuple[Array, Array]:
        """(κ₃, κ₄) of the standardised cell noise n_j, exact: from E Wᵏ (k ≤ 4) of the mixing law,
        E n³ = (β³E(W−1)³ + 3βE[(W−1)W])/s³, E n⁴ = (β⁴E(W−1)⁴ + 6β²E[(W−1)²W] + 3EW²)/s⁴."""
        l1, l2, l3, l4 = self.log_mixing_moments(theta, (1, 2, 3, 4))
        m2, m3, m4 = (jnp.exp(lk - k * l1) for k, lk in ((2, l2), (3, l3), (4, l4)))  # E W = 1
        beta = self.spde.noise_params(theta)[0] * math.sqrt(self.cell_area)
        s2 = 1.0 + beta**2 * (m2 - 1.0)
        ey3, ey4 = m3 - 3.0 * m2 + 2.0, m4 - 4.0 * m3 + 6.0 * m2 - 3.0
        k3 = (beta**3 * ey3 + 3.0 * beta * (m2 - 1.0)) / s2**1.5
        k4 = (beta**4 * ey4 + 6.0 * beta**2 * (m3 - 2.0 * m2 + 1.0) + 3.0 * m2) / s2**2 - 3.0
        return k3, k4

    def marginal_moments(self, X: Float[Array, "n d"], theta) -> tuple[Array, Array, Array]:
        """Exact (variance, skewness, excess kurtosis) of u(x) at X, each (n,), for σ = 1: u(x) =
        Σ_j v_j(x) n_j with independent n_j, so κ_r(u(x)) = κ_r(n) Σ_j v_j(x)^r."""
        v = self.projection.adjoint(self.covariance_factor(X, theta))  # (n, J)
        k3, k4 = self.cell_cumulants(theta)
        p2, p3, p4 = (jnp.sum(v**r, axis=-1) for r in (2, 3, 4))
        return p2, k3 * p3 / p2**1.5, k4 * p4 / p2**2

    def noise(self, z: Float[Array, " m"], theta) -> Float[Array, " J"]:
        """The standardised cell noise n_j (J,) (variance 1, mean 0 exactly): m_j = √h n_j."""
        J = self.num_cells
        zv, zz = z[:J], z[J:]
        table = self.log_mixing_table(theta)  # once: the moments and the map both read it
        log_m1, log_m2 = self.log_mixing_moments(theta, table=table)
        W = jnp.exp(self.log_mixing(zv, theta, table=table) - log_m1)  # E W = 1
        var_w = jnp.expm1(log_m2 - 2.0 * log_m1)
        mu_area = self.spde.noise_params(theta)[0]
        beta = mu_area * math.sqrt(self.cell_area)
        return (beta * (W - 1.0) + jnp.sqrt(W) * zz) / jnp.sqrt(1.0 + beta**2 * var_w)

    def coefficients(self, z, theta):
        """⟨u, φ_k⟩ = a(θ, λ_k) ξ_k (K,), for σ = 1."""
        return self.amplitudes(theta) * self.projection(self.noise(z, theta))

    def covariance_factor(self, X: Float[Array, "n d"], theta) -> Float[Array, "n K"]:
        """F = Φ(X) diag(a(θ)) (n, K): the field's covariance is exactly F Fᵀ (for σ = 1), whatever the
        mixing law (the tested noise has covariance I)."""
        return self.basis(X) * self.amplitudes(theta)

    def covariance(self, X: Float[Array, "n d"], theta) -> Float[Array, "n n"]:
        """F Fᵀ (n, n), F = :meth:`covariance_factor`: exact for σ = 1."""
        F = self.covariance_factor(X, theta)
        return F @ F.T

    def mixing_quantiles(self, theta, probs: Float[Array, " q"]) -> Float[Array, " q"]:
        """Quantiles of the standardised mixing variable W (mean 1), for comparison with the exact
        subordinator's."""
        table = self.log_mixing_table(theta)
        log_m1, _ = self.log_mixing_moments(theta, table=table)
        return jnp.exp(self.log_mixing(ndtri(probs), theta, table=table) - log_m1)
