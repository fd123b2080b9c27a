"""Training: a pure, jit-compiled step and a thin loop around it.

The step (functional core) draws a batch of θ uniformly over the training box of the
SPDE's parameter space (natural coordinates: log on log axes), evaluates the weak-form loss at each, and applies an Optax
update to the trainable leaves of the generator. The loop (shell) adds a
progress bar, periodic evaluation against the exact solution, checkpoints,
resume, and stops with :class:`TrainingDivergedError` on a non-finite loss.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, PRNGKeyArray

from pinnprob.generators.base import AbstractGenerator, FourierFeatures
from pinnprob.generators.variance_mixture import CellProjection, MixingQuantiles
from pinnprob.parameters import ParameterSpace
from pinnprob.testfunctions.eigen import BoxEigenbasis

__all__ = ["TrainingDivergedError", "sample_theta", "trainable_filter", "make_step", "fit_generator", "TrainState"]


class TrainingDivergedError(RuntimeError):
    """The loss or the parameters became non-finite during training."""


def sample_theta(key: PRNGKeyArray, space: ParameterSpace, batch_size: int) -> Array:
    """θ batch uniform over the box in natural coordinates (log ρ uniform for the Matérn), (B, p)."""
    return space.sample(key, batch_size)


def trainable_filter(gen: AbstractGenerator):
    """Filter spec: inexact arrays are trained, except fixed bases, cell projections, quantile tables and Fourier frequencies."""
    spec = jax.tree_util.tree_map(eqx.is_inexact_array, gen)
    is_fixed = lambda x: isinstance(x, (BoxEigenbasis, FourierFeatures, CellProjection, MixingQuantiles))  # noqa: E731
    return jax.tree_util.tree_map(lambda s, x: False if is_fixed(x) else s, spec, gen, is_leaf=is_fixed)


def make_step(loss: Callable, optimizer: optax.GradientTransformation, space: ParameterSpace,
              batch_size: int, filter_spec) -> Callable:
    """A pure step ``(gen, opt_state, key) -> (gen, opt_state, loss_value)``, jit-compiled."""

    @eqx.filter_jit
    def step(gen, opt_state, key):
        k_theta, k_loss = jax.random.split(key)
        theta = sample_theta(k_theta, space, batch_size)
        keys = jax.random.split(k_loss, batch_size)
        params, static = eqx.partition(gen, filter_spec)

        def batch_loss(p):
            g = eqx.combine(p, static)
            return jnp.mean(jax.vmap(lambda k, t: loss(g, k, t))(keys, theta))

        value, grads = jax.value_and_grad(batch_loss)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return eqx.combine(params, static), opt_state, value

    return step


@dataclass
class TrainState:
    """What a checkpoint holds: generator, optimiser state, step, key and the loss history."""

    gen: AbstractGenerator
    opt_state: optax.OptState
    step: int
    key: Array
    history: dict = field(default_factory=lambda: {"step": [], "loss": [], "eval": []})


def _save_checkpoint(path: Path, state: TrainState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        header = json.dumps({"step": state.step, "history": state.history}).encode()
        f.write(len(header).to_bytes(8, "little"))
        f.write(header)
        eqx.tree_serialise_leaves(f, (state.gen, state.opt_state, jax.random.key_data(state.key)))
    os.replace(tmp, path)  # atomic: a crash mid-write never leaves a half checkpoint


def _load_checkpoint(path: Path, template: TrainState) -> TrainState:
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n).decode())
        like = (template.gen, template.opt_state, jax.random.key_data(template.key))
        gen, opt_state, key_data = eqx.tree_deserialise_leaves(f, like)
    return TrainState(gen, opt_state, int(header["step"]), jax.random.wrap_key_data(key_data), header["history"])


def fit_generator(
    gen: AbstractGenerator,
    loss: Callable,
    *,
    space: ParameterSpace,
    key: PRNGKeyArray,
    steps: int,
    batch_size: int = 16,
    learning_rate: float = 3e-3,
    evaluate: Callable[[AbstractGenerator], dict] | None = None,
    eval_every: int = 500,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 500,
    resume: bool = False,
    progress: bool = True,
) -> tuple[AbstractGenerator, dict]:
    """Train ``gen`` for ``steps`` steps of Adam (cosine-decayed, clipped); return it and the history.

    ``steps=0`` returns the initialisation (evaluated once): for generators whose initial state is
    already a solution (the analytic kernel of a process convolution).
    ``evaluate(gen) -> dict`` runs every ``eval_every`` steps (e.g. covariance error
    against the exact solution). With ``checkpoint`` set, the state is saved every
    ``checkpoint_every`` steps and at the end; ``resume=True`` continues from it.
    """
    from tqdm.auto import tqdm

    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    warmup = min(200, steps // 10)
    schedule = optax.warmup_cosine_decay_schedule(0.0 if warmup else learning_rate, learning_rate, warmup,
                                                  max(steps, warmup + 1), end_value=learning_rate * 1e-2)
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule))
    spec = trainable_filter(gen)
    opt_state = optimizer.init(eqx.filter(gen, spec))
    state = TrainState(gen, opt_state, 0, key)
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if resume and ckpt is not None and ckpt.exists():
        state = _load_checkpoint(ckpt, state)
    step_fn = make_step(loss, optimizer, space, batch_size, spec)

    bar = tqdm(total=steps, initial=state.step, disable=not progress, desc="training", dynamic_ncols=True)
    t0 = time.perf_counter()
    ema = None
    while state.step < steps:
        k_step, k_next = jax.random.split(state.key)
        gen, opt_state, value = step_fn(state.gen, state.opt_state, k_step)
        value = float(value)  # blocks; a host sync per step is negligible next to the step itself
        if not math.isfinite(value):
            raise TrainingDivergedError(
                f"training diverged at step {state.step + 1}: loss = {value}. "
                f"Lower the learning rate (now {learning_rate:g}), or narrow the parameter box; "
                f"the last finite state is in the checkpoint if one was set."
            )
        state = TrainState(gen, opt_state, state.step + 1, k_next, state.history)
        ema = value if ema is None else 0.98 * ema + 0.02 * value
        if state.step % 10 == 0 or state.step == steps:
            state.history["step"].append(state.step)
            state.history["loss"].append(value)
            bar.set_postfix(loss=f"{ema:.3e}")
        bar.update(1)
        if evaluate is not None and (state.step % eval_every == 0 or state.step == steps):
            metrics = evaluate(state.gen)
            state.history["eval"].append({"step": state.step, **metrics})
            bar.write(f"step {state.step}: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
        if ckpt is not None and (state.step % checkpoint_every == 0 or state.step == steps):
            _save_checkpoint(ckpt, state)
    bar.close()
    if steps == 0 and evaluate is not None:
        state.history["eval"].append({"step": 0, **evaluate(state.gen)})
    state.history["train_seconds"] = state.history.get("train_seconds", 0.0) + time.perf_counter() - t0
    return state.gen, state.history
