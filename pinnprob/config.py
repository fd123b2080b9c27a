"""Configuration of a generative prior: what to build and how to train it (JSON round-trip)."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import jax

from pinnprob.domain import Box
from pinnprob.generators import LowRankGenerator, PushForwardGenerator, SpectralGenerator
from pinnprob.losses import GAUSSIAN_DIVERGENCES, SAMPLE_DIVERGENCES, WeakFormLoss
from pinnprob.params import ParamRange
from pinnprob.spde.matern import MaternSPDE
from pinnprob.testfunctions.eigen import BoxEigenbasis

__all__ = ["PriorConfig", "build_generator", "build_loss", "FAMILIES"]

FAMILIES = ("spectral", "lowrank", "pushforward")


@dataclass(frozen=True)
class PriorConfig:
    """Everything needed to rebuild a prior's architecture and retrain it from scratch.

    ``train_range`` is the (range, ν) rectangle θ is drawn from during training;
    ``valid_range`` (default: the same) is what the prior claims as ``param_range``.
    Ranges are in unit-box units.
    """

    family: str = "spectral"
    divergence: str = "kl"
    weighting: str = "none"
    dim: int = 2
    bc: str = "neumann"
    train_range: tuple = ((0.05, 1.0), (0.5, 2.5))
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

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")
        if self.divergence not in GAUSSIAN_DIVERGENCES + SAMPLE_DIVERGENCES:
            raise ValueError(f"divergence must be one of {GAUSSIAN_DIVERGENCES + SAMPLE_DIVERGENCES}, "
                             f"got {self.divergence!r}")
        object.__setattr__(self, "train_range", _as_range(self.train_range))
        if self.valid_range is not None:
            object.__setattr__(self, "valid_range", _as_range(self.valid_range))
        Box.unit(self.dim, self.bc)  # validates dim and bc

    @property
    def param_range(self) -> ParamRange:
        return ParamRange(*(self.valid_range or self.train_range))

    @property
    def domain(self) -> Box:
        return Box.unit(self.dim, self.bc)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

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


def _as_range(r) -> tuple:
    (a, b), (c, e) = r
    a, b, c, e = map(float, (a, b, c, e))
    if not (0 < a < b and 0 < c <= e):
        raise ValueError(f"a parameter range must be ((range_min, range_max), (nu_min, nu_max)) with "
                         f"0 < range_min < range_max and 0 < nu_min <= nu_max, got {r}")
    return ((a, b), (c, e))


def _basis(config: PriorConfig, truncated: bool = True) -> BoxEigenbasis:
    """The eigenbasis of the configuration: every mode below π·modes_per_dim, then (``truncated``)
    only the first ``max_modes``."""
    M = config.modes_per_dim
    b = BoxEigenbasis.create(config.domain, M, max_frequency=math.pi * M)
    if truncated and config.max_modes is not None and config.max_modes < b.size:
        b = BoxEigenbasis(b.domain, b.modes[: config.max_modes], b.eigenvalues[: config.max_modes])
    return b


def build_generator(config: PriorConfig, key=None):
    """The (untrained) generator the configuration describes; deterministic given ``config.seed``."""
    key = jax.random.key(config.seed) if key is None else key
    pr = ParamRange(*config.train_range)
    if config.family == "spectral":
        # built on the full basis, then truncated: the branch's frequency scaling (a static field) is
        # set from the full basis, as it was when the prior was trained
        gen = SpectralGenerator(key, _basis(config, truncated=False), pr, width=config.width, depth=config.depth)
        return gen.with_basis(_basis(config)) if config.max_modes is not None else gen
    if config.family == "lowrank":
        return LowRankGenerator(key, config.dim, pr, rank=config.rank)
    return PushForwardGenerator(key, _basis(config), pr, latent_dim=config.latent_dim,
                                width=max(config.width, 128), depth=config.depth)


def build_loss(config: PriorConfig) -> WeakFormLoss:
    """The weak-form loss the configuration describes (test functions = the box eigenbasis)."""
    from pinnprob.quadrature import grid_quadrature

    test = _basis(config)
    exact = config.family in ("spectral", "pushforward")
    if exact:
        pts = wts = None
    else:
        pts, wts = grid_quadrature(config.domain, config.quadrature_per_dim, rule="midpoint")
    return WeakFormLoss(
        MaternSPDE(config.domain), test, pts, wts, divergence=config.divergence, weighting=config.weighting,
        num_samples=config.num_samples,
        num_modes=config.modes_per_step if config.family == "spectral" else None,
        exact_projection=exact,
    )
