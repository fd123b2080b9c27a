"""Top-level entry points: :func:`train` and :func:`pretrained`."""

from __future__ import annotations

import functools
import os
from importlib import resources

import jax
import numpy as np

from pinnprob.config import PriorConfig, build_generator, build_loss, build_spde
from pinnprob.prior import GenerativePrior, load, prior_type
from pinnprob.training import fit_generator

__all__ = ["train", "pretrained", "PRETRAINED", "DEFAULT_CONFIG_FILE", "covariance_error_evaluator", "eval_grid",
           "evaluation_thetas"]

PRETRAINED = {"matern2d": "matern2d.eqx", "matern2d-nonstationary": "matern2d-nonstationary.eqx",
              "advection-diffusion-1d": "advection-diffusion-1d.eqx", "advection-diffusion-2d": "advection-diffusion-2d.eqx",
              "nig2d": "nig2d.eqx"}
DEFAULT_CONFIG_FILE = resources.files("pinnprob") / "weights" / "matern2d.json"


def eval_grid(dim: int = 2, num: int = 10, lo: float = 0.1, hi: float = 0.9) -> np.ndarray:
    """The num^d grid over [lo, hi]^d used to measure covariance errors, shape (num^d, d)."""
    g = np.linspace(lo, hi, num)
    return np.stack(np.meshgrid(*([g] * dim), indexing="ij"), -1).reshape(-1, dim)


def evaluation_thetas(space, num: int = 6, seed: int = 0) -> list[dict]:
    """Parameter points where training measures its error, by name: the corners and centre of the box
    for a space of dimension ≤ 2, else ``num`` points of a Latin hypercube (deterministic)."""
    if space.dim <= 2:
        pts = space.latin_hypercube(0, corners=True)
        pts = np.concatenate([pts, np.asarray(space.from_unit(np.full(space.dim, 0.5)))[None]])
    else:
        pts = space.latin_hypercube(num, seed=seed, corners=False)
    return [{k: float(v) for k, v in space.values(np.asarray(t)).items()} for t in pts]


def covariance_error_evaluator(config: PriorConfig, thetas=None, num_samples: int = 2000, seed: int = 0):
    """``evaluate(gen) -> {"cov_err_max", "cov_err_median"}``: relative Frobenius error of the
    generator's covariance on :func:`eval_grid` against the SPDE's reference covariance
    (:func:`pinnprob.truth.reference_covariance`: the image sum for the Matérn, finite elements for
    the non-stationary one), at :func:`evaluation_thetas` of the training box (or ``thetas``, a list of
    parameter dicts; for the Matérn also (range, ν) pairs). Exact where the generator's type gives its
    covariance (:meth:`~pinnprob.generators.AbstractGenerator.covariance`), from ``num_samples``
    fields otherwise."""
    from pinnprob import truth
    from pinnprob.config import build_spde

    spde = build_spde(config)
    if thetas is None:
        thetas = evaluation_thetas(spde.space)
    thetas = [t if isinstance(t, dict) else dict(zip(spde.space.names, t)) for t in thetas]
    X = eval_grid(config.dim)
    truths = [truth.reference_covariance(spde, X, **t) for t in thetas]
    Xj = jax.numpy.asarray(X)
    key = jax.random.key(seed)

    def evaluate(gen) -> dict:
        errs = []
        for t, C in zip(thetas, truths):
            th = spde.space.theta(**t)
            try:  # the type's closed form: ΨΨᵀ + diag δ for Gaussian generators, FFᵀ for the NIG prior's
                Cg = np.asarray(gen.covariance(Xj, th), np.float64)
            except TypeError:  # none: from fields
                Z = jax.random.normal(key, (num_samples, gen.latent_dim))
                U = np.asarray(jax.vmap(lambda z: gen(Xj, z, th))(Z), np.float64)
                Cg = U.T @ U / num_samples
            errs.append(float(np.linalg.norm(Cg - C) / np.linalg.norm(C)))
        return {"cov_err_max": max(errs), "cov_err_median": float(np.median(errs))}

    return evaluate


def train(config: PriorConfig | None = None, *, checkpoint: str | os.PathLike | None = None,
          resume: bool = False, progress: bool = True, evaluate: bool = True, eval_every: int = 1000,
          **overrides) -> GenerativePrior:
    """Train a generative prior from the SPDE alone and return it.

    ``config`` (a :class:`PriorConfig`) or keyword overrides of its fields
    (``spde``, ``family``, ``divergence``, ``train_range``, ``steps``, ``seed``, ...) say what
    to train; ``checkpoint`` is a file saved during training and ``resume=True``
    continues from it. Training is reproducible from ``config.seed``.
    """
    config = (config or PriorConfig()).replace(**overrides) if overrides else (config or PriorConfig())
    key = jax.random.key(config.seed)
    k_init, k_train = jax.random.split(key)
    gen = build_generator(config, k_init)
    loss = build_loss(config)
    evaluator = _evaluator(build_spde(config, config.param_range), config) if evaluate else None
    gen, history = fit_generator(
        gen, loss, space=config.train_space, key=k_train, steps=config.steps,
        batch_size=config.batch_size, learning_rate=config.learning_rate, evaluate=evaluator,
        eval_every=eval_every, checkpoint=checkpoint, resume=resume, progress=progress,
    )
    return prior_type(gen)(gen, config, history)


@functools.singledispatch
def _evaluator(spde, config):
    # what training measures every eval_every steps, by the SPDE's type: the covariance error on the
    # 10 × 10 grid against the reference covariance (space-time SPDEs register their own)
    return covariance_error_evaluator(config)


def pretrained(name: str = "matern2d") -> GenerativePrior:
    """A prior shipped inside the package (no training):

    * ``"matern2d"`` — the stationary Matérn field on the unit square with Neumann boundaries,
      parameters (range, ν), Gaussian spectral generator;
    * ``"matern2d-nonstationary"`` — the α = 2 (ν = 1) Matérn with a log-linear range field and a
      constant anisotropy, parameters (range, range_trend_x1, range_trend_x2, angle, ratio), Neumann,
      a process-convolution generator (:class:`~pinnprob.generators.ConvolutionGenerator`);
    * ``"advection-diffusion-1d"`` — the space-time advection–diffusion SPDE (Clarotto et al. 2024) on the
      unit circle × time, parameters (range, time_range, velocity_x1, alpha), Fourier modes that are
      learned Ornstein–Uhlenbeck processes in time (:class:`~pinnprob.spacetime_prior.SpaceTimePrior`);
    * ``"advection-diffusion-2d"`` — the same on the unit torus, parameters (range, time_range,
      velocity_x1, velocity_x2, alpha, angle, ratio), α ∈ [2, 2.5], |v_i| ≤ 0.3;
    * ``"nig2d"`` — the α = 2 (ν = 1) Matérn driven by normal-inverse-Gaussian noise on the unit square,
      Neumann, parameters (range, mu, eta) with μ, η per range² (skewed, heavy-tailed fields), a
      variance-mixture generator (:class:`~pinnprob.generators.VarianceMixtureGenerator`; latent
      only: use it through ``fit`` or :func:`~pinnprob.inference.latent_field`).

    Their claimed boxes are ``pretrained(name).param_range``; the configurations that retrain them
    are ``pinnprob/weights/<name>.json``."""
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained prior {name!r}; available: {sorted(PRETRAINED)}")
    ref = resources.files("pinnprob") / "weights" / PRETRAINED[name]
    with resources.as_file(ref) as path:
        return load(path)
