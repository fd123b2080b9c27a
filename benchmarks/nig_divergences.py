"""What the sample divergences learn of a non-Gaussian noise law: the variance-mixture generator's mixing
law trained by MMD, sliced W2 and the energy distance, against the exact cell law (issue 12, Deliver 3).

    python benchmarks/nig_divergences.py --amplitudes nig2d [--steps 100] [--every 50] [--batch 2] [--out docs/results]

The amplitudes are taken from a trained prior (``--amplitudes``: a name or a .eqx; the exact
second-moment term has trained them) so that only the mixing law is learned. For each divergence and
each starting law of the mixing variable (``lognormal``: the log-normal of the exact variance, what a
push-forward of a Gaussian knows without the noise's quantiles; ``quantile``: the exact quantile
transform) the mixing network is trained for ``--steps`` steps of the prior's loss, and every
``--every`` steps the generator's exact statistics are recorded (no sampling error):
* κ₃, κ₄ of the cell noise against the exact NIG cell's, c₃/√h and c₄/h;
* the field's skewness and excess kurtosis at the centre against the continuum's
  (``pinnprob.truth.nig_matern_moments``),
at three parameter points, with the training minutes (evaluation excluded). Writes
nig_divergences.md and .json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import pinnprob
from pinnprob.config import build_generator, build_loss
from pinnprob.noise import NIGNoise
from pinnprob.training import fit_generator
from pinnprob.truth import nig_matern_moments

ROOT = Path(__file__).resolve().parents[1]
POINTS = ({"range": 0.2, "mu": 1.0, "eta": 4.0}, {"range": 0.35, "mu": 0.5, "eta": 20.0},
          {"range": 0.5, "mu": -1.0, "eta": 100.0})


def exact_stats(gen, spde) -> list[dict]:
    """Per point: the cell noise's κ₃, κ₄ and the field's centre skewness and kurtosis, generator and exact."""
    out = []
    X = jnp.array([[0.5, 0.5]])
    for p in POINTS:
        th = spde.space.theta(**p)
        k3, k4 = (float(v) for v in gen.cell_cumulants(th))
        _, s, k = (float(np.asarray(v)[0]) for v in gen.marginal_moments(X, th))
        mu_a, eta_a = (float(v) for v in spde.noise_params(th))
        _, c3, c4 = NIGNoise.cumulant_factors(mu_a, eta_a)
        sk, ku = nig_matern_moments(range=p["range"], mu=mu_a, eta=eta_a)
        out.append({**p, "cell_k3": k3, "cell_k3_exact": c3 / gen.cell_area**0.5, "cell_k4": k4,
                    "cell_k4_exact": c4 / gen.cell_area, "skew": s, "skew_continuum": sk, "exkurt": k,
                    "exkurt_continuum": ku})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--amplitudes", default="nig2d")
    ap.add_argument("--divergences", default="mmd,sliced_w2,energy")
    ap.add_argument("--bases", default="lognormal,quantile")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--batch", type=int, default=2, help="parameter points per step")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results"))
    args = ap.parse_args(argv)
    src = pinnprob.pretrained(args.amplitudes) if not args.amplitudes.endswith(".eqx") else pinnprob.load(args.amplitudes)
    runs = []
    for base in args.bases.split(","):
        for div in args.divergences.split(","):
            cfg = src.config.replace(divergence=div, mixing_base=base, steps=args.steps, batch_size=args.batch)
            gen = build_generator(cfg, jax.random.key(cfg.seed))
            gen = eqx.tree_at(lambda g: g.gaussian, gen, src.generator.gaussian)
            spde = gen.gaussian.spde
            curve, clock = [], {"start": time.perf_counter(), "eval": 0.0, "step": 0}

            def evaluate(g, curve=curve, clock=clock, spde=spde):
                t0 = time.perf_counter()
                minutes = (t0 - clock["start"] - clock["eval"]) / 60.0
                curve.append({"step": clock["step"], "minutes": minutes, "points": exact_stats(g, spde)})
                clock["step"] += args.every
                clock["eval"] += time.perf_counter() - t0
                return {}

            evaluate(gen)
            clock["start"], clock["eval"] = time.perf_counter(), 0.0
            fit_generator(gen, build_loss(cfg), space=cfg.train_space, key=jax.random.key(cfg.seed + 1),
                          steps=args.steps, batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
                          evaluate=evaluate, eval_every=args.every, progress=False)
            runs.append({"base": base, "divergence": div, "curve": curve})
            print(json.dumps(runs[-1]["curve"][-1]), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"amplitudes": args.amplitudes, "fingerprint": src.fingerprint, "steps": args.steps, "batch": args.batch,
            "config": src.config.to_dict()}
    (out / "nig_divergences.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=1))
    (out / "nig_divergences.md").write_text(render(meta, runs))
    return 0


def render(meta, runs) -> str:
    c = meta["config"]
    lines = [
        "# Sample divergences on a non-Gaussian noise law",
        "",
        f"Generated by `python benchmarks/nig_divergences.py --amplitudes {meta['amplitudes']} --steps {meta['steps']} "
        f"--batch {meta['batch']}`. "
        f"The variance-mixture generator ({c['modes_per_dim']} modes per side, {c['quadrature_per_dim']}² cells, "
        f"{meta['batch']} parameter points and {c['num_samples']} samples a step, {c['modes_per_step']} random modes and "
        f"{c['test_per_dim']} bumps of one range as test functions) with the amplitudes of the prior, its "
        "mixing law trained by each divergence from each starting law. Exact statistics of the generator "
        "(no sampling error): the cell noise's κ₄ as a ratio to the exact NIG cell's (1 is right; the "
        "field's kurtosis is proportional to it), and the field's skewness and excess kurtosis at the centre "
        "against the continuum. Minutes of training on one CPU core, evaluation excluded.",
        "",
        "| start | divergence | step | minutes | " + " | ".join(
            f"(ρ {p['range']}, μ {p['mu']:+g}, η {p['eta']:g}): κ₄ ratio, skew / cont., kurt / cont." for p in POINTS) + " |",
        "|---|---|---|---|" + "---|" * len(POINTS),
    ]
    for r in runs:
        for e in r["curve"]:
            cells = " | ".join(f"{q['cell_k4'] / q['cell_k4_exact']:.3g}, {q['skew']:.3f} / {q['skew_continuum']:.3f}, "
                               f"{q['exkurt']:.2f} / {q['exkurt_continuum']:.2f}" for q in e["points"])
            lines.append(f"| {r['base']} | {r['divergence']} | {e['step']} | {e['minutes']:.1f} | {cells} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
