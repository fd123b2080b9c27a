"""Laplacian eigenbases of a box: the test functions on which the Matérn operator is diagonal.

On D = Π[0, L_i] the eigenfunctions of −Δ are products of 1-D functions:

* Neumann:   c_m cos(π m x / L),  m ≥ 0,  c_0 = 1/√L, c_m = √(2/L);  λ = (π m / L)²
* Dirichlet: √(2/L) sin(π m x / L), m ≥ 1;                            λ = (π m / L)²
* periodic:  1/√L, √(2/L) cos(2π j x/L), √(2/L) sin(2π j x/L);       λ = (2π j / L)²

They are orthonormal in L²(D), so the white-noise Gram matrix G = I, and the
operator acts as L φ_k = τ(κ² + λ_k)^{α/2} φ_k for any real α.
"""

from __future__ import annotations

import functools
import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from pinnprob.domain import Box

__all__ = ["BoxEigenbasis", "ProductRule", "SeparableFeatures", "dense_features"]


# sites per block when ΦᵀΦ is summed from the 1-D tables without a product rule: the block's dense rows
# (GRAM_BLOCK × K) are the only n-sized temporary (at 10⁵ sites and 8 269 modes in float64 the dense Φ
# alone would be 6.9 GB)
GRAM_BLOCK = 2048
# rows of ΦᵀΦ assembled at once from the harmonic moments (ProductRule): 2^d temporaries of
# GRAM_ROWS × K numbers
GRAM_ROWS = 256


def _frequency_1d(m: np.ndarray, L: float, bc: str) -> np.ndarray:
    """Angular frequency of 1-D eigenfunction number m."""
    if bc == "periodic":
        return 2.0 * math.pi * np.ceil(m / 2.0) / L
    return math.pi * m / L


def _eigenfunction_1d(m, x, L: float, bc: str):
    """The 1-D eigenfunction number m (integer array) at x, broadcast (see the module notes)."""
    if bc == "neumann":
        c = jnp.where(m == 0, 1.0 / math.sqrt(L), math.sqrt(2.0 / L))
        return c * jnp.cos(math.pi * m * x / L)
    if bc == "dirichlet":
        return math.sqrt(2.0 / L) * jnp.sin(math.pi * m * x / L)
    # periodic: m = 0 const, odd m cos, even m sin
    j = jnp.ceil(m / 2.0)
    arg = 2.0 * math.pi * j * x / L
    return jnp.where(m == 0, 1.0 / math.sqrt(L), math.sqrt(2.0 / L) * jnp.where(m % 2 == 1, jnp.cos(arg), jnp.sin(arg)))


class BoxEigenbasis(eqx.Module):
    """K orthonormal Laplacian eigenfunctions of a box, ordered by eigenvalue.

    ``modes`` holds the 1-D index of each factor, shape (K, d); ``eigenvalues``
    holds λ_k, shape (K,). Call it on points X of shape (n, d) to get Φ of shape (n, K).
    ``grid`` (static, from the concrete modes at construction) is 1 + the largest 1-D index on
    each axis: the shape of the tensor-product grid of modes that :meth:`separable` uses.
    """

    domain: Box
    modes: Int[Array, "K d"]
    eigenvalues: Float[Array, " K"]
    grid: tuple[int, ...] = eqx.field(static=True)

    def __init__(self, domain: Box, modes, eigenvalues):
        self.domain, self.modes, self.eigenvalues = domain, modes, eigenvalues
        self.grid = tuple(int(m) + 1 for m in np.max(np.asarray(modes), axis=0))

    @classmethod
    def create(cls, domain: Box, num_per_dim: int, max_frequency: float | None = None) -> "BoxEigenbasis":
        """All modes with 1-D index < ``num_per_dim`` on each axis, optionally only those
        whose frequency |ω| = √λ is at most ``max_frequency`` (a disk instead of a square).
        """
        if num_per_dim < 1:
            raise ValueError(f"num_per_dim must be >= 1, got {num_per_dim}")
        start = 1 if domain.bc == "dirichlet" else 0
        axes = [np.arange(start, start + num_per_dim) for _ in range(domain.dim)]
        grid = np.array(list(itertools.product(*axes)), dtype=np.int32).reshape(-1, domain.dim)
        freqs = np.stack(
            [_frequency_1d(grid[:, i], domain.lengths[i], domain.bc) for i in range(domain.dim)], axis=1
        )
        lam = np.sum(freqs**2, axis=1)
        keep = np.ones(len(lam), bool) if max_frequency is None else lam <= max_frequency**2 * (1 + 1e-12)
        order = np.lexsort((np.arange(keep.sum()), lam[keep]))
        return cls(domain, jnp.asarray(grid[keep][order]), jnp.asarray(lam[keep][order]))

    @property
    def size(self) -> int:
        return int(self.eigenvalues.shape[0])

    def first(self, k: int) -> "BoxEigenbasis":
        """The basis of the ``k`` lowest modes (the modes are sorted by eigenvalue)."""
        return BoxEigenbasis(self.domain, self.modes[:k], self.eigenvalues[:k])

    def tables(self, X: Float[Array, "n d"]) -> list[Float[Array, "n M"]]:
        """The 1-D eigenfunctions f_j(x_i), j = 0 .. grid_i − 1, on each axis i: shape (n, grid_i) each."""
        return [_eigenfunction_1d(jnp.arange(M)[None, :], X[:, i : i + 1], L, self.domain.bc)
                for i, (L, M) in enumerate(zip(self.domain.lengths, self.grid, strict=True))]

    def factors(self, X: Float[Array, "n d"]) -> list[Float[Array, "n K"]]:
        """The 1-D factors f_{m_i}(x_i) for each axis i, each of shape (n, K)."""
        return [_eigenfunction_1d(self.modes[:, i][None, :], X[:, i : i + 1], L, self.domain.bc)
                for i, L in enumerate(self.domain.lengths)]

    def separable(self, X: Float[Array, "n d"]) -> "SeparableFeatures":
        """Φ(X) kept as its 1-D tables (:class:`SeparableFeatures`): products with it cost
        n·Π grid_i in matrix products instead of reading the n × K matrix."""
        X = jnp.asarray(X)
        flat = jnp.ravel_multi_index(tuple(jnp.asarray(self.modes).T), self.grid, mode="clip")
        products = tuple(ProductRule.create(M, L, self.domain.bc)
                         for L, M in zip(self.domain.lengths, self.grid, strict=True))
        return SeparableFeatures(tuple(self.tables(X)), flat.astype(jnp.int32), self.grid, X, products)

    def __call__(self, X: Float[Array, "n d"]) -> Float[Array, "n K"]:
        """Φ_ik = φ_k(x_i)."""
        X = jnp.asarray(X)
        out = None
        for f in self.factors(X):
            out = f if out is None else out * f
        return out


def _harmonic_1d(c, x, L: float, bc: str):
    """The unnormalised harmonic number c (integer array) at x, broadcast: cos(π c x / L) for a Neumann
    or Dirichlet axis; 1, cos(2π j x / L), sin(2π j x / L) (c = 0, 2j − 1, 2j) for a periodic one."""
    if bc != "periodic":
        return jnp.cos(math.pi * c * x / L)
    arg = 2.0 * math.pi * jnp.ceil(c / 2.0) * x / L
    return jnp.where(c == 0, 1.0, jnp.where(c % 2 == 1, jnp.cos(arg), jnp.sin(arg)))


# cached: BoxEigenbasis.separable makes a rule per axis at every call (a fit, each prediction chunk), and
# the rule depends on the axis alone (the periodic one is a Python loop over M² pairs); callers only read it
@functools.lru_cache(maxsize=64)
def _product_rule_1d(M: int, L: float, bc: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(index (M, M, 2), weight (M, M, 2), H): f_a f_b = Σ_e weight[a, b, e] h_{index[a, b, e]} for the
    1-D eigenfunctions f_0 .. f_{M−1} of an axis and its harmonics h_0 .. h_{H−1} (:func:`_harmonic_1d`),
    from cos A cos B = ½[cos(A − B) + cos(A + B)], sin A sin B = ½[cos(A − B) − cos(A + B)] and
    sin A cos B = ½[sin(A + B) + sin(A − B)]."""
    a, b = np.meshgrid(np.arange(M), np.arange(M), indexing="ij")
    if bc != "periodic":
        index = np.stack([np.abs(a - b), a + b], -1)
        if bc == "neumann":
            c = np.where(np.arange(M) == 0, 1.0 / math.sqrt(L), math.sqrt(2.0 / L))
            half = 0.5 * c[a] * c[b]
            weight = np.stack([half, half], -1)
        else:  # dirichlet: (2/L) sin sin
            weight = np.stack([np.full(a.shape, 1.0 / L), np.full(a.shape, -1.0 / L)], -1)
        return index.astype(np.int32), weight, 2 * M - 1
    # periodic: f_0 = 1/√L, f_{2j−1} = √(2/L) cos(2πjx/L), f_{2j} = √(2/L) sin(2πjx/L); the harmonics
    # alike, unnormalised
    c = np.where(np.arange(M) == 0, 1.0 / math.sqrt(L), math.sqrt(2.0 / L))
    j = np.ceil(np.arange(M) / 2.0).astype(int)
    is_sin = (np.arange(M) % 2 == 0) & (np.arange(M) > 0)
    index = np.zeros((M, M, 2), np.int32)
    weight = np.zeros((M, M, 2))

    def hcos(k):
        return 0 if k == 0 else 2 * k - 1

    def hsin(k):  # (index, sign) of sin(2πkx/L), k of any sign; sin 0 = 0
        return (2 * abs(k), float(np.sign(k)))

    for p in range(M):
        for q in range(M):
            cc = c[p] * c[q]
            if p == 0 or q == 0:  # a constant times f: f itself, harmonic number = its own number
                index[p, q] = (max(p, q), 0)
                weight[p, q] = (cc, 0.0)
                continue
            jp, jq = j[p], j[q]
            if not is_sin[p] and not is_sin[q]:
                index[p, q] = (hcos(abs(jp - jq)), hcos(jp + jq))
                weight[p, q] = (0.5 * cc, 0.5 * cc)
            elif is_sin[p] and is_sin[q]:
                index[p, q] = (hcos(abs(jp - jq)), hcos(jp + jq))
                weight[p, q] = (0.5 * cc, -0.5 * cc)
            else:  # sin(jp)cos(jq) or cos(jp)sin(jq): ½[sin(js + jc) + sin(js − jc)]
                js, jc = (jp, jq) if is_sin[p] else (jq, jp)
                (i0, s0), (i1, s1) = hsin(js + jc), hsin(js - jc)
                index[p, q] = (i0, i1)
                weight[p, q] = (0.5 * cc * s0, 0.5 * cc * s1)
    return index, weight, 2 * (2 * int(j.max())) + 1


class ProductRule(eqx.Module):
    """How products of the 1-D eigenfunctions of one axis reduce to its harmonics: f_a(x) f_b(x) =
    Σ_e weight[a, b, e] h_{index[a, b, e]}(x), e = 0, 1 (product-to-sum identities; the harmonics go to
    twice the axis's largest frequency). With one per axis, ΦᵀΦ of a tensor-product eigenbasis needs only
    the moments S = Σ_sites ⊗_i h(x_i): :meth:`SeparableFeatures.gram`."""

    index: Int[Array, "M M 2"]
    weight: Float[Array, "M M 2"]
    num_harmonics: int = eqx.field(static=True)
    length: float = eqx.field(static=True)
    bc: str = eqx.field(static=True)

    @classmethod
    def create(cls, M: int, length: float, bc: str) -> "ProductRule":
        index, weight, H = _product_rule_1d(M, float(length), bc)
        return cls(jnp.asarray(index), jnp.asarray(weight), H, float(length), bc)

    def harmonics(self, x: Float[Array, " n"]) -> Float[Array, "n H"]:
        """h_c(x), c = 0 .. H − 1, shape (n, H)."""
        return _harmonic_1d(jnp.arange(self.num_harmonics)[None, :], x[:, None], self.length, self.bc)


class SeparableFeatures(eqx.Module):
    """The trunk features Φ(X) (n × K) of a tensor-product eigenbasis, kept as the 1-D tables
    T_i (n × M_i) and the flat index of each mode in the grid Π M_i.

    Φ_nk = Π_i T_i[n, m_ki], so Φw = contract(T_1, ..., T_d; W) with W the grid holding w at the
    modes: matrix products of cost n·Π M_i (≈ 1.3 n K for a disk of modes) whose operands fit in
    cache, where Φw with a dense Φ is memory-bound (it reads n·K numbers per product: a NUTS gradient
    2× dearer at n = 2000, K = 2946 on a quiet CPU, more under shared memory bandwidth;
    docs/results/inference.md). ``dense()`` builds Φ. ``gram()`` gives ΦᵀΦ, from the harmonic moments
    when ``sites`` and a :class:`ProductRule` per axis (``products``) are given (a box eigenbasis gives
    them), else summed block by block.
    """

    tables: tuple[Float[Array, "n M"], ...]
    flat_index: Int[Array, " K"]
    grid: tuple[int, ...] = eqx.field(static=True)
    sites: Float[Array, "n d"] | None = None
    products: tuple[ProductRule, ...] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.tables[0].shape[0]), int(self.flat_index.shape[0]))

    def _grid(self, w: Float[Array, " K"]) -> Float[Array, "..."]:
        # the modes are distinct, so a scatter-set (its adjoint is a gather)
        return jnp.zeros(math.prod(self.grid), w.dtype).at[self.flat_index].set(w, unique_indices=True).reshape(self.grid)

    def __matmul__(self, w: Float[Array, " K"]) -> Float[Array, " n"]:
        """Φ w, by contracting the last axis with a matrix product, then the others row by row."""
        if w.ndim != 1:
            raise ValueError(f"SeparableFeatures @ w takes w of shape (K,), got {w.shape}")
        W = self._grid(w)
        n, Md = self.tables[0].shape[0], self.grid[-1]
        V = (self.tables[-1] @ W.reshape(-1, Md).T).reshape((n,) + self.grid[:-1])  # (n, M_1 .. M_{d-1})
        for T in reversed(self.tables[:-1]):
            V = jnp.einsum("n...j,nj->n...", V, T)
        return V

    def __rmatmul__(self, r: Float[Array, " n"]) -> Float[Array, " K"]:
        """rᵀΦ (= Φᵀr), shape (K,)."""
        if r.ndim != 1:
            raise ValueError(f"r @ SeparableFeatures takes r of shape (n,), got {r.shape}")
        n = self.tables[0].shape[0]
        if len(self.tables) == 1:
            G = r @ self.tables[0]
        else:
            V = r[:, None] * self.tables[0]  # (n, M_1), then (n, M_1, .., M_{d-1})
            for T in self.tables[1:-1]:
                V = jnp.einsum("n...,nj->n...j", V, T)
            G = V.reshape(n, -1).T @ self.tables[-1]  # (Π M_{<d}, M_d)
        return G.reshape(-1)[self.flat_index]

    def dense(self) -> Float[Array, "n K"]:
        """Φ itself, (n, K)."""
        out = None
        for T, i in zip(self.tables, jnp.unravel_index(self.flat_index, self.grid), strict=True):
            out = T[:, i] if out is None else out * T[:, i]
        return out

    def gram(self, progress_bar: bool = False) -> Float[Array, "K K"]:
        """ΦᵀΦ, (K, K). With product rules (a box eigenbasis): from the moments S = Σ_s ⊗_i h(x_si) of the
        harmonics, n·Π H_i flops, then G_kl = Σ_{e ∈ {0,1}^d} Π_i w_i[k_i, l_i, e_i] S[c_1, …, c_d] with
        c_i = index_i[k_i, l_i, e_i]: at 10⁵ sites and 8 269 modes a second or two, where the sum over
        sites costs n K² (minutes). Without: summed over blocks of ``GRAM_BLOCK`` sites, the dense Φ never
        formed (memory O(GRAM_BLOCK·K + K²); ``progress_bar``: a bar over the blocks)."""
        if self.products is None:
            return _blocked_gram(self, progress_bar)
        S = _harmonic_moments(self.sites, self.products)
        K = int(self.flat_index.shape[0])
        rows = -(-K // GRAM_ROWS) * GRAM_ROWS
        axes = jnp.stack(jnp.unravel_index(self.flat_index, self.grid), -1)  # (K, d): each mode's 1-D numbers
        padded = jnp.pad(axes, ((0, rows - K), (0, 0)))
        return _gram_from_moments(S, self.products, axes, padded.reshape(-1, GRAM_ROWS, axes.shape[1]))[:K]


def _harmonic_moments(sites, products) -> Float[Array, "..."]:
    """S[c_1, …, c_d] = Σ_s Π_i h_{c_i}(x_si), shape (H_1, …, H_d), summed over blocks of sites so that
    the block's outer products (block × Π_{i<d} H_i) stay small."""
    n, d = sites.shape
    shape = tuple(p.num_harmonics for p in products)
    block = max(1, min(n, 2**22 // max(1, math.prod(shape[:-1]))))
    blocks = -(-n // block)
    # padding sites at x = 0 would add h(0) ≠ 0 to S: they get weight 0
    mask = jnp.pad(jnp.ones(n, sites.dtype), (0, blocks * block - n))
    X = jnp.pad(sites, ((0, blocks * block - n), (0, 0)))
    return _moments(X.reshape(blocks, block, d), mask.reshape(blocks, block), products)


@eqx.filter_jit
def _moments(X, mask, products):
    def one(S, xm):
        x, w = xm
        V = w[:, None] * products[0].harmonics(x[:, 0])  # (b, H_1), then (b, H_1, …, H_{d−1})
        for i, p in enumerate(products[1:-1], start=1):
            V = jnp.einsum("n...,nj->n...j", V, p.harmonics(x[:, i]))
        if len(products) == 1:
            return S + jnp.sum(V, 0), None
        return S + (V.reshape(V.shape[0], -1).T @ products[-1].harmonics(x[:, -1])).reshape(S.shape), None

    shape = tuple(p.num_harmonics for p in products)
    S, _ = jax.lax.scan(one, jnp.zeros(shape, X.dtype), (X, mask))
    return S


@eqx.filter_jit
def _gram_from_moments(S, products, cols, row_blocks):
    """Rows of ΦᵀΦ from the moments, GRAM_ROWS at a time: (blocks × GRAM_ROWS, K)."""
    flatS = S.reshape(-1)
    strides = np.cumprod((1,) + tuple(p.num_harmonics for p in products[::-1]))[:-1][::-1]

    def rows(r):  # r: (B, d) the 1-D numbers of B modes
        G = 0.0
        for e in itertools.product((0, 1), repeat=len(products)):
            w, flat = 1.0, 0
            for i, p in enumerate(products):
                a, b = r[:, i][:, None], cols[:, i][None, :]
                w = w * p.weight[a, b, e[i]]
                flat = flat + int(strides[i]) * p.index[a, b, e[i]]
            G = G + w * flatS[flat]
        return G

    return jax.lax.map(rows, row_blocks).reshape(-1, cols.shape[0])


def _blocked_gram(features: "SeparableFeatures", progress_bar: bool) -> Float[Array, "K K"]:
    """ΦᵀΦ summed over blocks of GRAM_BLOCK sites (zero rows pad the last block: a site whose 1-D tables
    are zero has Φ's row zero, and adds nothing)."""
    from tqdm.auto import tqdm

    n, m = features.shape
    blocks = -(-n // GRAM_BLOCK)
    tables = tuple(jnp.pad(T, ((0, blocks * GRAM_BLOCK - n), (0, 0))) for T in features.tables)
    G = jnp.zeros((m, m), jnp.result_type(*features.tables))
    for b in tqdm(range(blocks), desc="Gram matrix", disable=not progress_bar or blocks < 2):
        rows = slice(b * GRAM_BLOCK, (b + 1) * GRAM_BLOCK)
        G = _add_block(G, SeparableFeatures(tuple(T[rows] for T in tables), features.flat_index, features.grid))
        G.block_until_ready()  # the bar counts finished blocks (each block needs the last one anyway)
    return G


@functools.partial(jax.jit, donate_argnums=0)
def _add_block(G, block: SeparableFeatures):
    """G + ΦᵀΦ of one block of sites (G's buffer reused)."""
    Phi = block.dense()
    return G + Phi.T @ Phi


def dense_features(features) -> Float[Array, "n K"]:
    """Φ as an array, whether given dense or as :class:`SeparableFeatures`."""
    return features.dense() if isinstance(features, SeparableFeatures) else features
