"""Configuration of a generative prior: what to build and how to train it (JSON round-trip)."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import jax

from pinnprob.domain import Box
from pinnprob.generators import LowRankGenerator, PushForwardGenerator, SpectralGenerator
from pinnprob.losses import GAUSSIAN_DIVERGENCES, SAMPLE_DIVERGENCES, WeakFormLoss
from pinnprob.parameters import Axis, ParameterSpace
from pinnprob.spde.base import AbstractSPDE, DiagonalSPDE, LocalSPDE
from pinnprob.spde.matern import MaternSPDE
from pinnprob.testfunctions.eigen import BoxEigenbasis

__all__ = ["PriorConfig", "build_generator", "build_loss", "build_spde", "FAMILIES", "SPDES"]

FAMILIES = ("spectral", "lowrank", "pushforward", "convolution", "eigendense", "fourier-ou", "mixture")


def _spdes() -> dict:
    """The SPDEs a configuration can name: name → class with ``default_space()``."""
    from pinnprob.spde.advection_diffusion import AdvectionDiffusion
    from pinnprob.spde.nig import NIGMatern
    from pinnprob.spde.nonstationary import NonStationaryMatern

    return {"matern": MaternSPDE, "matern-nonstationary": NonStationaryMatern, "matern-nig": NIGMatern,
            "advection-diffusion": AdvectionDiffusion}


SPDES = ("matern", "matern-nonstationary", "matern-nig", "advection-diffusion")
# configuration keys added after prior-file format 1, left out of to_dict() at their default so that
# the identity (fingerprint) of priors saved before them is unchanged
_ADDED_KEYS = {"spde": "matern", "convolution_spacing": 0.02, "test_per_dim": 24, "quadrature_per_panel": 4,
               "mixing_base": "quantile", "lengths": None}


@dataclass(frozen=True)
class PriorConfig:
    """Everything needed to rebuild a prior's architecture and retrain it from scratch.

    ``spde`` names the equation (:data:`SPDES`). ``train_range`` is the box θ is drawn from during
    training: one (lo, hi) per parameter of the SPDE, in the order of its space (for the Matérn
    ((range_min, range_max), (nu_min, nu_max))), or a mapping name → (lo, hi); ``valid_range``
    (default: the same) is what the prior claims as ``param_range``. Ranges are in unit-box units.
    ``lengths`` (default None: the unit box) are the box's side lengths, set by
    :meth:`~pinnprob.GenerativePrior.on_box`.
    """

    family: str = "spectral"
    divergence: str = "kl"
    weighting: str = "none"
    dim: int = 2
    bc: str = "neumann"
    train_range: tuple | dict | None = None  # default: the SPDE's default box
    valid_range: tuple | None = None
    # test functions / trunk: eigenmodes with index < modes_per_dim and |ω| ≤ π·modes_per_dim
    modes_per_dim: int = 128
    # keep only the first max_modes modes (by eigenvalue): a cheaper prior for longer ranges
    max_modes: int | None = None
    modes_per_step: int | None = 512
    width: int = 64
    depth: int = 3
    rank: int = 64
    latent_dim: int | None = None
    quadrature_per_dim: int = 64
    num_samples: int = 256
    steps: int = 4000
    batch_size: int = 32
    learning_rate: float = 3e-3
    seed: int = 0
    spde: str = "matern"
    # process-convolution generator: latent grid spacing; local SPDEs: test functions per axis
    convolution_spacing: float = 0.02
    test_per_dim: int = 24
    quadrature_per_panel: int = 4
    # variance-mixture generator: the mixing law it starts from ("quantile": the noise's exact
    # quantile transform; "lognormal": the log-normal of the same variance)
    mixing_base: str = "quantile"
    # the box's side lengths (None: the unit box). A prior trained on the unit box is moved to a
    # rectangle by GenerativePrior.on_box (spectral generators: their amplitude is a function of λ)
    lengths: tuple | None = None

    def __post_init__(self):
        if self.spde not in SPDES:
            raise ValueError(f"spde must be one of {SPDES}, got {self.spde!r}")
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")
        if self.divergence not in GAUSSIAN_DIVERGENCES + SAMPLE_DIVERGENCES:
            raise ValueError(f"divergence must be one of {GAUSSIAN_DIVERGENCES + SAMPLE_DIVERGENCES}, "
                             f"got {self.divergence!r}")
        template = _spdes()[self.spde].default_space(self.dim)
        box = tuple((a.lo, a.hi) for a in template.axes) if self.train_range is None else self.train_range
        object.__setattr__(self, "train_range", _as_box(box, template))
        if self.valid_range is not None:
            object.__setattr__(self, "valid_range", _as_box(self.valid_range, template))
        Box.unit(self.dim, self.bc)  # validates dim and bc
        if self.lengths is not None:
            lengths = tuple(float(v) for v in self.lengths)
            if len(lengths) != self.dim:
                raise ValueError(f"lengths must give {self.dim} side lengths, got {self.lengths}")
            object.__setattr__(self, "lengths", lengths)
            Box(lengths, self.bc)  # validates them

    def _space(self, box) -> ParameterSpace:
        template = _spdes()[self.spde].default_space(self.dim)
        return ParameterSpace(tuple(Axis(a.name, lo, hi, a.log, a.length_power, a.doc, a.time_power)
                                    for a, (lo, hi) in zip(template.axes, box)))

    @property
    def train_space(self) -> ParameterSpace:
        """The box θ is drawn from during training."""
        return self._space(self.train_range)

    @property
    def param_range(self) -> ParameterSpace:
        """The box the prior claims (``valid_range``, default the training box)."""
        return self._space(self.valid_range or self.train_range)

    @property
    def domain(self) -> Box:
        return Box.unit(self.dim, self.bc) if self.lengths is None else Box(self.lengths, self.bc)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k, default in _ADDED_KEYS.items():
            if d[k] == default:
                del d[k]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PriorConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown configuration keys {sorted(unknown)}; known keys: {sorted(names)}")
        return cls(**d)

    @classmethod
    def from_json(cls, path: str | Path) -> "PriorConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def replace(self, **kw) -> "PriorConfig":
        return dataclasses.replace(self, **kw)


def _as_box(r, template: ParameterSpace) -> tuple:
    """A training box as one (lo, hi) per axis of ``template``, in its order; validated."""
    if isinstance(r, dict):
        unknown = set(r) - set(template.names)
        missing = [n for n in template.names if n not in r]
        if unknown or missing:
            raise ValueError(f"a parameter box needs exactly the axes {list(template.names)}; "
                             f"missing {missing}, unknown {sorted(unknown)}")
        r = [r[n] for n in template.names]
    try:
        pairs = tuple((float(lo), float(hi)) for lo, hi in r)
    except (TypeError, ValueError):
        raise ValueError(f"a parameter box must give (lo, hi) for each of {list(template.names)}, got {r}") from None
    if len(pairs) != template.dim:
        raise ValueError(f"a parameter box must give (lo, hi) for each of {list(template.names)}, got {r}")
    for a, (lo, hi) in zip(template.axes, pairs):
        if a.log and not 0 < lo < hi:
            raise ValueError(f"{a.name}: need 0 < lo < hi, got ({lo:g}, {hi:g}) in the box {r}")
        if not lo <= hi:
            raise ValueError(f"{a.name}: need lo ≤ hi, got ({lo:g}, {hi:g}) in the box {r}")
        if a.name == "nu" and lo <= 0:
            raise ValueError(f"nu: need 0 < lo ≤ hi, got ({lo:g}, {hi:g}) in the box {r}")
    return pairs


def build_spde(config: "PriorConfig", space: ParameterSpace | None = None) -> AbstractSPDE:
    """The SPDE of the configuration, over its training box (or ``space``)."""
    return _spdes()[config.spde](config.domain, space or config.train_space)


def _basis(config: PriorConfig, truncated: bool = True) -> BoxEigenbasis:
    """The eigenbasis of the configuration: every mode below π·modes_per_dim, then (``truncated``)
    only the first ``max_modes``."""
    M = config.modes_per_dim
    b = BoxEigenbasis.create(config.domain, M, max_frequency=math.pi * M)
    if truncated and config.max_modes is not None and config.max_modes < b.size:
        b = b.first(config.max_modes)
    return b


def build_generator(config: PriorConfig, key=None):
    """The (untrained) generator the configuration describes; deterministic given ``config.seed``."""
    key = jax.random.key(config.seed) if key is None else key
    spde = build_spde(config)
    space = spde.space
    if config.family == "spectral":
        if not isinstance(spde, DiagonalSPDE):
            raise ValueError(f"the spectral generator needs an SPDE diagonal on the box eigenbasis; "
                             f"{config.spde!r} is not (use family='convolution')")
        # built on the unit box's full basis, then moved to the configuration's (truncated, or on another
        # box): the branch's frequency scaling (a static field) is set from that basis, as it was when
        # the prior was trained
        unit = config.replace(lengths=None)
        gen = SpectralGenerator(key, _basis(unit, truncated=False), spde, width=config.width, depth=config.depth)
        return gen if config.max_modes is None and config.lengths is None else gen.with_basis(_basis(config))
    if config.family == "lowrank":
        return LowRankGenerator(key, config.dim, space, rank=config.rank)
    if config.family == "eigendense":
        from pinnprob.generators.eigendense import EigenDenseGenerator

        return EigenDenseGenerator(key, _basis(config), space, width=config.width, depth=config.depth)
    if config.family == "fourier-ou":
        from pinnprob.generators.fourier_ou import FourierOUGenerator

        return FourierOUGenerator(key, spde, num_per_dim=config.modes_per_dim, width=config.width, depth=config.depth)
    if config.family == "convolution":
        from pinnprob.generators.convolution import ConvolutionGenerator

        return ConvolutionGenerator(key, config.domain, spde, spacing=config.convolution_spacing,
                                    width=config.width, depth=config.depth)
    if config.family == "mixture":
        # type-G noise on quadrature_per_dim^d cells, its mixing law learned
        from pinnprob.generators.variance_mixture import VarianceMixtureGenerator

        if not isinstance(spde, DiagonalSPDE):
            raise ValueError(f"the variance-mixture generator needs a diagonal SPDE; {config.spde!r} is not")
        return VarianceMixtureGenerator(key, _basis(config), spde, cells_per_side=config.quadrature_per_dim,
                                        width=config.width, depth=config.depth, base=config.mixing_base)
    return PushForwardGenerator(key, _basis(config), space, latent_dim=config.latent_dim,
                                width=max(config.width, 128), depth=config.depth)


@functools.singledispatch
def _weak_form(spde: AbstractSPDE, config: PriorConfig):
    raise TypeError(f"no weak form for {type(spde).__name__}")


@_weak_form.register
def _(spde: DiagonalSPDE, config: PriorConfig) -> WeakFormLoss:
    # test functions = the box eigenbasis, on which the operator acts exactly
    from pinnprob.quadrature import grid_quadrature

    if config.family == "mixture":
        # the generator carries its own cells and tests: random modes and bumps of the range's width
        from pinnprob.mixture_loss import MixtureWeakFormLoss

        return MixtureWeakFormLoss(spde, divergence=config.divergence, num_samples=config.num_samples,
                                   num_modes=config.modes_per_step or 64, num_bumps=config.test_per_dim)
    test = _basis(config)
    exact = config.family in ("spectral", "pushforward")
    if exact:
        pts = wts = None
    else:
        pts, wts = grid_quadrature(config.domain, config.quadrature_per_dim, rule="midpoint")
    return WeakFormLoss(
        spde, test, pts, wts, divergence=config.divergence, weighting=config.weighting,
        num_samples=config.num_samples,
        num_modes=config.modes_per_step if config.family == "spectral" else None,
        exact_projection=exact,
    )


@_weak_form.register
def _(spde: LocalSPDE, config: PriorConfig):
    # test functions = bumps on a grid whose supports may be cut by the boundary (they then test the
    # natural Neumann condition), integrated by a Gauss rule aligned with their kinks
    from pinnprob.local_loss import LocalWeakFormLoss
    from pinnprob.quadrature import boundary_quadrature, grid_quadrature
    from pinnprob.testfunctions.compact import BumpTestFunctions

    test = BumpTestFunctions.covering(config.domain, config.test_per_dim, power=3)
    n = config.test_per_dim - 1
    q = config.quadrature_per_panel
    pts, wts = grid_quadrature(config.domain, q * n, rule="gauss", panels=n)
    boundary = boundary_quadrature(config.domain, q * n, panels=n) if config.dim == 2 else None
    return LocalWeakFormLoss(spde, test, pts, wts, divergence=config.divergence, num_samples=config.num_samples,
                             boundary=boundary, num_cells=config.modes_per_step or 64)


def _register_spacetime():
    from pinnprob.spde.advection_diffusion import AdvectionDiffusion

    @_weak_form.register(AdvectionDiffusion)
    def _(spde, config):
        # Fourier modes in space (exact on the torus), hats in time at each mode's own time scale:
        # test_per_dim hats, quadrature_per_panel midpoints per half-width, modes_per_step modes a step
        from pinnprob.spacetime_loss import OUWeakFormLoss

        return OUWeakFormLoss(spde, num_test=config.test_per_dim, sub=config.quadrature_per_panel,
                              num_modes=config.modes_per_step)


_register_spacetime()


def build_loss(config: PriorConfig):
    """The weak-form loss the configuration describes, chosen by the SPDE's kind: the box eigenbasis
    for diagonal SPDEs, compactly supported bumps and the bilinear form for local ones, Fourier modes
    in space and hats in time for the advection–diffusion SPDE."""
    return _weak_form(build_spde(config), config)
