"""The generative prior: a trained generator with its configuration, validation, sampling and I/O."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from pinnprob._validation import check_sigma, check_sites
from pinnprob.config import PriorConfig, build_generator
from pinnprob.generators.base import AbstractDiagonalGenerator, AbstractGaussianGenerator
from pinnprob.parameters import ParameterSpace
from pinnprob.testfunctions.eigen import SeparableFeatures

__all__ = ["GenerativePrior", "PriorFileError", "load", "from_bytes", "sample_fields", "prior_type", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_MAGIC = b"PINNPROB\n"


class PriorFileError(ValueError):
    """A prior file that cannot be read: not a prior, corrupted, or from an incompatible version."""


def _prefix_for(a2: np.ndarray, tol: float) -> int:
    """The length of the shortest prefix of modes (variances ``a2``, by eigenvalue) whose left-out share
    of the total variance is at most ``tol``."""
    tail = np.cumsum(a2[::-1])[::-1] / a2.sum()  # tail[k] = share in modes k, k+1, ...
    return int(np.argmax(np.append(tail, 0.0) <= tol))


def _round_up(k: int, multiple: int) -> int:
    """k rounded up to a multiple of ``multiple``."""
    return -(-k // multiple) * multiple


class GenerativePrior:
    """A trained generative PINN prior for the field of an SPDE on the unit box (or, after
    :meth:`on_box`, on another box Π [0, L_i]).

    ``sample(key, X, sigma=, num_samples=, **params)`` draws fields at sites X (n, d) in the box,
    with the SPDE's parameters by name (:attr:`param_range` lists them): for the Matérn
    ``range=`` (the practical range √(8ν)/κ in unit-box units) and ``nu=``; ``sigma`` is the marginal
    standard deviation (it fixes τ). The law targeted is that of the exact SPDE solution on the box,
    boundary effects included.
    """

    #: what the prior's fields are indexed by: "space" (sites), or "space-time" (site-time pairs)
    data_kind = "space"

    def __init__(self, generator, config: PriorConfig, history: dict | None = None):
        self.generator = generator
        self.config = config
        self.history = history or {}

    # -- description ------------------------------------------------------------------------
    @property
    def param_range(self) -> ParameterSpace:
        """The parameter box where the prior is claimed accurate; outside it sampling refuses."""
        return self.config.param_range

    @property
    def spde(self):
        """The SPDE the prior was trained for, over the box it claims."""
        from pinnprob.config import build_spde

        return build_spde(self.config, self.param_range)

    @property
    def param_names(self) -> tuple[str, ...]:
        return self.param_range.names

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def gaussian(self) -> bool:
        return isinstance(self.generator, AbstractGaussianGenerator)

    @property
    def latent_dim(self) -> int:
        return self.generator.latent_dim

    def __repr__(self) -> str:
        c = self.config
        return (f"GenerativePrior(spde={c.spde!r}, family={c.family!r}, divergence={c.divergence!r}, dim={c.dim}, "
                f"bc={c.bc!r}, latent_dim={self.latent_dim}, param_range=({self.param_range}))")

    def theta(self, X=None, **params) -> Array:
        """Check the parameters (by name; against the sites X when given) and return θ (p,)."""
        self.spde.check(X, **params)
        return self.param_range.theta(**params)

    # -- sampling -----------------------------------------------------------------------------
    def sample(self, key: PRNGKeyArray, X, *, sigma=1.0, num_samples: int = 1, site_chunk: int = 4096,
               sample_chunk: int = 1000, mode_tol: float = 1e-3, **params) -> Float[Array, "num_samples n"]:
        """Fields at sites X (n, d), shape (num_samples, n). Work is chunked over sites and samples,
        so memory stays bounded; the result does not depend on the chunk sizes.

        For diagonal (spectral) generators, modes whose joint variance is below ``mode_tol`` of the
        total at these parameters are skipped (they change no covariance by more than ``mode_tol``);
        set ``mode_tol=0`` to use every mode."""
        X = check_sites(X, self.dim, lengths=self.config.lengths)
        check_sigma(sigma)
        theta = self.theta(X, **params)
        if not (isinstance(num_samples, (int, np.integer)) and num_samples >= 1):
            raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
        gen = self._active(theta, mode_tol)
        out = []
        for c, start in enumerate(range(0, num_samples, sample_chunk)):
            S = min(sample_chunk, num_samples - start)
            kc = jax.random.fold_in(key, c)
            out.append(self._sample_chunk(gen, kc, X, theta, float(sigma), S, site_chunk))
        return jnp.concatenate(out, axis=0)

    def _active(self, theta, tol: float):
        """The generator restricted to the modes that carry all but ``tol`` of the variance at θ
        (diagonal generators; others unchanged). The count is rounded up to a multiple of 256 so
        that nearby θ share one compiled sampler."""
        gen = self.generator
        if tol <= 0 or not isinstance(gen, AbstractDiagonalGenerator):
            return gen
        keep = _prefix_for(np.asarray(gen.amplitudes(theta), np.float64) ** 2, tol)
        keep = min(gen.latent_dim, max(256, _round_up(keep, 256)))
        if keep == gen.latent_dim:
            return gen
        return gen.with_basis(gen.basis.first(keep))

    def _sample_chunk(self, gen, key, X, theta, sigma, S, site_chunk):
        Z = jax.random.normal(key, (S, gen.latent_dim))
        # the part below the generator's resolution, independent between sites: drawn for all sites at
        # once, so that the fields do not depend on the site chunks
        E = jax.random.normal(jax.random.fold_in(key, 1), (S, X.shape[0])) if self.gaussian else None
        pieces = []
        for start in range(0, X.shape[0], site_chunk):
            Xc = X[start:start + site_chunk]
            u = sample_fields(gen, Z, Xc, theta, sigma)
            if self.gaussian:
                u = u + sigma * jnp.sqrt(site_variance(gen, Xc, theta)) * E[:, start:start + site_chunk]
            pieces.append(u)
        return jnp.concatenate(pieces, axis=1)

    def covariance(self, X, *, sigma=1.0, **params) -> Float[Array, "n n"]:
        """The generator's exact covariance at X, σ² times :meth:`~pinnprob.generators.AbstractGenerator.covariance`
        (Gaussian generators: σ²(ΨΨᵀ + diag δ), δ the site variance; the NIG prior's: σ²FFᵀ, whatever its
        mixing law); TypeError for a generator without one."""
        X = check_sites(X, self.dim, lengths=self.config.lengths)
        check_sigma(sigma)
        theta = self.theta(X, **params)
        return float(sigma) ** 2 * self.generator.covariance(X, theta)

    # -- NumPyro ---------------------------------------------------------------------------------
    def distribution(self, X, *, sigma=1.0, jitter: float = 1e-5, separable: bool | None = None,
                     validate_args: bool | None = None, **params):
        """The field at sites X (n, d) as a NumPyro distribution (event shape (n,)).

        The SPDE's parameters by name (for the Matérn ``range=``, ``nu=``) and ``sigma`` may be
        traced (sampled in a model); concrete values are checked against :attr:`param_range`. The
        sites' trunk features are computed here; ``separable`` (default: whenever the generator's
        trunk is a tensor-product eigenbasis: diagonal generators and the NIG prior's) keeps them as 1-D tables
        (:class:`~pinnprob.testfunctions.SeparableFeatures`): n·Σ M_i numbers instead of n·m, and
        cheaper products for large n·m, with the same values. ``validate_args`` as in NumPyro
        (``log_prob`` then gives −inf for values off the support). See
        :class:`pinnprob.inference.GenerativeField`.
        """
        from pinnprob.inference.distribution import GenerativeField

        X = check_sites(X, self.dim, lengths=self.config.lengths)
        check_sigma(sigma)
        theta = self.theta(X, **params)
        feats = self.generator.features(X) if separable is False else self.generator.product_features(X)
        if separable and not isinstance(feats, SeparableFeatures):
            raise ValueError(f"separable=True needs a tensor-product eigenbasis trunk; the {self.config.family!r} "
                             "generator has none")
        dtype = jnp.result_type(float)  # float32, or float64 with jax_enable_x64
        return GenerativeField(self.generator, feats, jnp.asarray(theta, dtype), jnp.asarray(sigma, dtype),
                               jitter=jitter, validate_args=validate_args)

    def truncate(self, min_range: float, tol: float = 1e-2, nu: float | None = None,
                 multiple_of: int = 1) -> "GenerativePrior":
        """A cheaper prior with only the lowest-frequency modes needed down to ``min_range``.

        Keeps the shortest prefix of modes (by eigenvalue) whose left-out variance is at most
        ``tol`` of the total, at range ``min_range`` and at both ends of the ν range (or at ``nu``
        only, when ν is fixed), ν below 1 counted as 1 (see the comment in the code), its length
        rounded up to a multiple of ``multiple_of`` (within the trunk's modes; more modes, never
        fewer: fits whose cuts round alike share array shapes, hence compilations). Its
        ``param_range`` starts at ``min_range``. Diagonal (spectral) generators of the Matérn only.
        """
        if not isinstance(self.generator, AbstractDiagonalGenerator) or self.param_names != ("range", "nu"):
            raise TypeError("truncate() applies to spectral generators of the Matérn only")
        pr = self.param_range
        if not pr.range[0] <= min_range <= pr.range[1]:
            raise ValueError(f"min_range = {min_range:g} is outside the prior's range {pr.range}")
        if not (isinstance(multiple_of, (int, np.integer)) or (isinstance(multiple_of, float)
                                                               and multiple_of.is_integer())) or multiple_of < 1:
            raise ValueError(f"multiple_of must be a positive integer, got {multiple_of!r}")
        keep = 1
        # below ν = 1 the left-out fraction falls too slowly (∝ λ^{−ν}) for a variance tolerance to cut
        # the trunk anywhere useful: those fields keep ν = 1's modes, and the variance of the rest is
        # the truncation tail a model adds per site (inference.model.truncation_tail; it is exact for
        # the data when the data's spacing exceeds the cut's wavelength)
        for n in sorted({min(max(v, 1.0), pr.nu[1]) for v in (pr.nu if nu is None else (float(nu),))}):
            a2 = np.asarray(self.generator.amplitudes(pr.theta(range=min_range, nu=n)), np.float64) ** 2
            keep = max(keep, _prefix_for(a2, tol))
        keep = min(_round_up(keep, int(multiple_of)), self.latent_dim)
        config = self.config.replace(max_modes=keep, valid_range=((float(min_range), pr.range[1]), pr.nu))
        from pinnprob.config import _basis

        return GenerativePrior(self.generator.with_basis(_basis(config)), config, self.history)

    @property
    def any_box(self) -> bool:
        """Whether :meth:`on_box` can move the prior to another box: its generator is diagonal on the
        box eigenbasis, with an amplitude that is a function of the eigenvalue."""
        return isinstance(self.generator, AbstractDiagonalGenerator)

    def on_box(self, lengths) -> "GenerativePrior":
        """The same prior on the box Π_i [0, L_i] (``lengths``, in the units of its ranges): the SPDE's
        solution on any box is Σ_k a(θ, λ_k) z_k φ_k over that box's orthonormal eigenbasis, and the
        learned amplitude a(θ, λ) is a function of the eigenvalue, so it carries over. Every mode below
        the trained trunk's cutoff frequency is kept, or, for a prior :meth:`truncate` cut, every mode
        up to its largest eigenvalue. A rectangle needs fewer modes than the square around it, in
        proportion to its area. Diagonal (spectral) generators only (:attr:`any_box`); TypeError
        otherwise."""
        if not self.any_box:
            raise TypeError(f"the {self.config.family!r} generator is tied to the box it was trained on; "
                            "only spectral (diagonal) generators move to another box")
        from pinnprob.config import _basis

        config = self.config.replace(lengths=tuple(float(v) for v in lengths), max_modes=None)
        basis = _basis(config)
        if self.config.max_modes is not None:  # the same frequency cut on the new box
            cut = float(np.max(self.generator.basis.eigenvalues))
            keep = max(int(np.sum(np.asarray(basis.eigenvalues) <= cut * (1 + 1e-9))), 1)
            config = config.replace(max_modes=keep)
            basis = basis.first(keep)
        return GenerativePrior(self.generator.with_basis(basis), config, self.history)

    # -- identity and I/O ------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """SHA-256 of the configuration and the generator's arrays (as float32 / int32): equal for
        the same prior in float32 and in float64, different for other weights or architecture."""
        h = hashlib.sha256(json.dumps(self.config.to_dict(), sort_keys=True).encode())
        for leaf in jax.tree_util.tree_leaves(eqx.filter(self.generator, eqx.is_array)):
            a = np.asarray(leaf)
            a = a.astype(np.float32) if np.issubdtype(a.dtype, np.floating) else a.astype(np.int32)
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()

    def to_bytes(self) -> bytes:
        """The prior as the bytes of a prior file (:meth:`save`); :func:`from_bytes` reads them."""
        from pinnprob import __version__

        header = {
            "format": FORMAT_VERSION,
            "pinnprob_version": __version__,
            "config": self.config.to_dict(),
            "history": {k: v for k, v in self.history.items() if k in ("train_seconds", "eval")},
        }
        hb = json.dumps(header).encode()
        buf = io.BytesIO()
        buf.write(_MAGIC)
        buf.write(len(hb).to_bytes(8, "little"))
        buf.write(hb)
        eqx.tree_serialise_leaves(buf, self.generator)
        return buf.getvalue()

    def save(self, path: str | os.PathLike) -> Path:
        """Write weights, configuration and package version to one file (atomically)."""
        path = Path(path)
        data = self.to_bytes()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return path


@functools.singledispatch
def prior_type(generator) -> type:
    """The prior class that wraps a generator, by its type: :class:`GenerativePrior` for fields in space;
    generators of fields on (x, t) register :class:`~pinnprob.spacetime_prior.SpaceTimePrior`."""
    return GenerativePrior


@eqx.filter_jit
def sample_fields(gen, Z: Float[Array, "S m"], X: Float[Array, "n d"], theta: Float[Array, " p"], sigma) -> Float[Array, "S n"]:
    """σ g(X; z_s, θ) for S latents Z (S, m), shape (S, n): one dense Ψ and a product for Gaussian
    generators, the network per latent otherwise."""
    if isinstance(gen, AbstractGaussianGenerator):
        Psi = gen.basis_matrix(X, theta)  # (n, m)
        return sigma * Z @ Psi.T
    return sigma * jax.vmap(lambda z: gen(X, z, theta))(Z)


@eqx.filter_jit
def site_variance(gen, X, theta):
    return gen.site_variance(X, theta)


def _deserialise_leaf(f, like):
    """Read one array leaf and cast it to the dtype of ``like`` (the template built in the running
    precision), so that a prior saved in float32 loads in float64 and the other way round; a shape
    or kind (float / integer) mismatch is left for equinox to report."""
    if isinstance(like, (jax.Array, np.ndarray)):
        arr = np.load(f)
        if arr.shape == like.shape and np.issubdtype(arr.dtype, np.floating) == jnp.issubdtype(like.dtype, jnp.floating):
            arr = arr.astype(like.dtype)
        return jnp.asarray(arr) if isinstance(like, jax.Array) else arr
    return eqx.default_deserialise_filter_spec(f, like)


def from_bytes(data: bytes, source: str = "<bytes>") -> GenerativePrior:
    """Read a prior from the bytes of a prior file (:meth:`GenerativePrior.to_bytes`); a bad payload
    raises :class:`PriorFileError` naming ``source``. Arrays take the running precision (float32, or
    float64 with ``jax_enable_x64``), whatever precision they were saved in."""
    from pinnprob import __version__

    f = io.BytesIO(data)
    try:
        if f.read(len(_MAGIC)) != _MAGIC:
            raise PriorFileError(f"{source} is not a pinnprob prior file (bad magic bytes)")
        n = int.from_bytes(f.read(8), "little")
        if not 0 < n < 10_000_000:
            raise PriorFileError(f"{source} is corrupted (bad header length)")
        header = json.loads(f.read(n).decode())
        fmt = header.get("format")
        if fmt != FORMAT_VERSION:
            raise PriorFileError(
                f"{source} has prior format {fmt} (written by pinnprob {header.get('pinnprob_version')}); "
                f"this pinnprob {__version__} reads format {FORMAT_VERSION}. Retrain it or use a matching version."
            )
        config = PriorConfig.from_dict(header["config"])
        template = build_generator(config)
        generator = eqx.tree_deserialise_leaves(f, template, filter_spec=_deserialise_leaf)
        if f.read(1):
            raise PriorFileError(f"{source} is corrupted (trailing bytes after the weights)")
    except PriorFileError:
        raise
    except Exception as e:  # truncated file, bad JSON, shape mismatch in the weights, ...
        raise PriorFileError(f"{source} could not be read as a pinnprob prior: {type(e).__name__}: {e}") from e
    leaves = jax.tree_util.tree_leaves(eqx.filter(generator, eqx.is_inexact_array))
    if not all(bool(jnp.all(jnp.isfinite(x))) for x in leaves):
        raise PriorFileError(f"{source} is corrupted (non-finite weights)")
    return prior_type(generator)(generator, config, header.get("history"))


def load(path: str | os.PathLike) -> GenerativePrior:
    """Read a prior written by :meth:`GenerativePrior.save`; a bad file raises :class:`PriorFileError`."""
    path = Path(path)
    if not path.is_file():
        raise PriorFileError(f"no prior file at {str(path)!r}")
    return from_bytes(path.read_bytes(), repr(str(path)))
