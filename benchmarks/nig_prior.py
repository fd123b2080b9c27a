"""The NIG prior against its finite-element truth: covariance, marginal skewness and kurtosis, quantiles
and a two-sample test of whole fields, at the 8 corners of the claimed box and a Latin hypercube
(issue 12, Must show 1).

    python benchmarks/nig_prior.py [--prior nig2d | path.eqx] [--out docs/results] [--lhs 8]

(κ² − Δ)(τu) = Ṁ on the unit square (Neumann, ν = 1), Ṁ unit NIG noise with (μ, η) per range². Per
point:
* the covariance on the 10 × 10 grid of [0.1, 0.9]²: the generator's exact Φ diag(a²) Φᵀ against the
  closed form (image sum), relative Frobenius; goal ≤ 5 %;
* skewness and excess kurtosis at the centre (0.5, 0.5) and at an edge (0, 0.5): the generator's
  exact values (``VarianceMixtureGenerator.marginal_moments``) against the FEM field's exact moments
  on a fine mesh (``FEMMatern.nig_moments``, mesh ``--moments-mesh``; at the centre also the
  continuum's, ``nig_matern_moments``), and ``--gen`` generated fields against the generator's exact
  values, with the sample statistic's Monte Carlo standard error from 20 batch means;
* the 1, 5, 95, 99 % quantiles there: generated against ``--true`` FEM draws
  (``FEMMatern.sample_nig``), standard error of the difference by bootstrap;
* an energy two-sample test (Székely & Rizzo 2004) of ``--true`` generated against ``--true`` FEM
  fields on the 100 grid sites, permutation p-value.
The FEM field is the truth for the tails; its own covariance error against the closed form (mesh
effect) is printed beside the generator's. Writes nig_prior.md and .json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats as st
from _common import rel_fro

import pinnprob
from pinnprob.api import eval_grid
from pinnprob.fem import FEMMatern
from pinnprob.truth import box_covariance, nig_matern_moments

ROOT = Path(__file__).resolve().parents[1]
PROBS = (0.01, 0.05, 0.95, 0.99)
SITES = {"centre": (0.5, 0.5), "edge": (0.0, 0.5)}


def batch_stat_se(u: np.ndarray, stat, batches: int = 20) -> tuple[float, float]:
    """(statistic of all of u, its standard error from ``batches`` batch statistics)."""
    parts = np.array_split(u, batches)
    return float(stat(u)), float(np.std([stat(p) for p in parts], ddof=1) / np.sqrt(batches))


def quantile_z(a: np.ndarray, b: np.ndarray, p: float, rng, boots: int = 200) -> tuple[float, float, float]:
    """(q_a, q_b, z) for the p-quantiles of two samples, z = (q_a − q_b)/se by bootstrap."""
    qa, qb = np.quantile(a, p), np.quantile(b, p)
    da = [np.quantile(rng.choice(a, a.size), p) for _ in range(boots)]
    db = [np.quantile(rng.choice(b, b.size), p) for _ in range(boots)]
    se = float(np.sqrt(np.var(da, ddof=1) + np.var(db, ddof=1)))
    return float(qa), float(qb), float((qa - qb) / se)


def energy_test(x: np.ndarray, y: np.ndarray, perms: int, seed: int) -> tuple[float, float]:
    """Energy statistic and permutation p-value of two samples (n, d), (m, d)."""
    z = np.concatenate([x, y]).astype(np.float64)
    sq = np.sum(z**2, 1)
    D = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * z @ z.T, 0.0)).astype(np.float32)
    n, m = len(x), len(y)

    def stat(lab):  # lab: True for the first sample
        a = lab.astype(np.float32)
        b = 1.0 - a
        Da, Db = D @ a, D @ b
        return 2.0 * float(a @ Db) / (n * m) - float(a @ Da) / n**2 - float(b @ Db) / m**2

    lab = np.arange(n + m) < n
    e0 = stat(lab)
    rng = np.random.default_rng(seed)
    count = sum(stat(rng.permutation(lab)) >= e0 for _ in range(perms))
    return e0, (count + 1) / (perms + 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prior", default="nig2d")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results"))
    ap.add_argument("--lhs", type=int, default=8)
    ap.add_argument("--gen", type=int, default=20_000)
    ap.add_argument("--true", type=int, default=5_000)
    ap.add_argument("--mesh", type=int, default=100)
    ap.add_argument("--moments-mesh", type=int, default=200)
    ap.add_argument("--perms", type=int, default=199)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--render", action="store_true", help="only rewrite the .md from the .json in --out")
    args = ap.parse_args(argv)
    if args.render:
        d = json.loads((Path(args.out) / "nig_prior.json").read_text())
        (Path(args.out) / "nig_prior.md").write_text(render(d["meta"], d["rows"]))
        return 0

    prior = pinnprob.pretrained(args.prior) if not args.prior.endswith(".eqx") else pinnprob.load(args.prior)
    space, spde = prior.param_range, prior.spde
    grid = eval_grid(2)
    extra = np.array(list(SITES.values()))
    X = np.concatenate([grid, extra])
    Xj = jnp.asarray(X)
    pts = space.latin_hypercube(args.lhs, seed=args.seed, corners=True)
    rows, rng = [], np.random.default_rng(args.seed)
    for i, t in enumerate(pts):
        t0 = time.perf_counter()
        vals = {k: float(v) for k, v in space.values(np.asarray(t)).items()}
        th = space.theta(**vals)
        # the covariance: exact for the generator (its tested noise has covariance I) and the truth
        Psi = np.asarray(prior.generator.covariance_factor(jnp.asarray(grid), th), np.float64)
        C = box_covariance(grid, grid, spde.domain, range=vals["range"], sigma=1.0, nu=1.0)
        mu_a, eta_a = (float(v) for v in spde.noise_params(th))
        fem = FEMMatern.stationary(args.mesh, range=vals["range"])
        U = np.asarray(prior.sample(jax.random.key(args.seed + i), Xj, num_samples=args.gen, **vals), np.float64)
        V = fem.sample_nig(args.seed + i, X, args.true, mu_a, eta_a)
        var_x, skew_x, kurt_x = FEMMatern.stationary(args.moments_mesh, range=vals["range"]).nig_moments(extra, mu_a, eta_a)
        var_g, skew_g, kurt_g = (np.asarray(a, np.float64) for a in prior.generator.marginal_moments(jnp.asarray(extra), th))
        skew_c, kurt_c = nig_matern_moments(range=vals["range"], mu=mu_a, eta=eta_a)
        row = {**vals, "mu_area": mu_a, "eta_area": eta_a, "cov_err": rel_fro(Psi @ Psi.T, C),
               "skew_continuum": skew_c, "exkurt_continuum": kurt_c,
               "fem_cov_err": rel_fro(fem.covariance(grid), C),
               "sample_cov_err": rel_fro(U[:, :100].T @ U[:, :100] / len(U), C)}
        for j, name in enumerate(SITES):
            u, v = U[:, 100 + j], V[:, 100 + j]
            s, s_se = batch_stat_se(u, st.skew)
            k, k_se = batch_stat_se(u, st.kurtosis)
            row[name] = {"skew": s, "skew_se": s_se, "skew_gen": float(skew_g[j]), "skew_exact": float(skew_x[j]),
                         "exkurt": k, "exkurt_se": k_se, "exkurt_gen": float(kurt_g[j]),
                         "exkurt_exact": float(kurt_x[j]), "var": float(np.var(u)), "var_gen": float(var_g[j]),
                         "var_exact": float(var_x[j]),
                         "quantiles": [dict(zip(("p", "gen", "fem", "z"), (p, *quantile_z(u, v, p, rng))))
                                       for p in PROBS]}
        e, pval = energy_test(U[: args.true, :100], V[:, :100], args.perms, args.seed + i)
        row.update(energy=e, energy_p=pval, seconds=time.perf_counter() - t0)
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"prior": args.prior, "fingerprint": prior.fingerprint, "gen": args.gen, "true": args.true,
            "mesh": args.mesh, "moments_mesh": args.moments_mesh, "perms": args.perms, "seed": args.seed}
    (out / "nig_prior.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (out / "nig_prior.md").write_text(render(meta, rows))
    return 0


def render(meta, rows) -> str:
    n = len(rows)
    cov_ok = sum(r["cov_err"] <= 0.05 for r in rows)
    z = lambda d, k: (d[k] - d[k + "_gen"]) / d[k + "_se"]  # noqa: E731  sampler against its own exact value
    rel = lambda d, k: d[k + "_gen"] / d[k + "_exact"] - 1.0 if abs(d[k + "_exact"]) > 1e-9 else 0.0  # noqa: E731
    mc_ok = sum(all(abs(z(r[s], k)) <= 3 for s in SITES for k in ("skew", "exkurt")) for r in rows)
    q_ok = sum(all(abs(q["z"]) <= 3 for s in SITES for q in r[s]["quantiles"]) for r in rows)
    p_ok = sum(r["energy_p"] >= 0.01 for r in rows)
    skew_rel = [abs(rel(r[s], "skew")) for r in rows for s in SITES if abs(r[s]["skew_exact"]) > 0.05]
    kurt_rel = [abs(rel(r[s], "exkurt")) for r in rows for s in SITES if r[s]["exkurt_exact"] > 0.05]
    # at the centre against the continuum (R²), where the walls' images are negligible (range ≤ 0.3)
    near = [r for r in rows if r["range"] <= 0.3 and r["centre"]["exkurt_exact"] > 0.05]
    skew_c = [r["centre"]["skew_gen"] / r["skew_continuum"] - 1 for r in near if abs(r["skew_continuum"]) > 0.05]
    kurt_c = [r["centre"]["exkurt_gen"] / r["exkurt_continuum"] - 1 for r in near]
    fem_c = [r["centre"]["exkurt_exact"] / r["exkurt_continuum"] - 1 for r in near]
    out = [
        "# The NIG prior against its finite-element truth",
        "",
        f"Generated by `python benchmarks/nig_prior.py --prior {meta['prior']}` (fingerprint {meta['fingerprint']}). "
        f"(κ² − Δ)(τu) = Ṁ on the unit square, Neumann, ν = 1, Ṁ unit NIG noise with (μ, η) per range²; "
        f"{n} parameter points: the 8 corners of the claimed box, then a Latin hypercube. Covariance: the "
        f"generator's exact one against the closed form (image sum). Skewness and excess kurtosis: the "
        f"generator's exact values against the finite-element field's exact ones on a {meta['moments_mesh']}² "
        f"mesh (`FEMMatern.nig_moments`; the continuum's at the centre for reference), and {meta['gen']} "
        f"generated fields against the generator's exact values (Monte Carlo standard error from 20 batch "
        f"means). Quantiles: {meta['gen']} generated fields against {meta['true']} FEM fields on a "
        f"{meta['mesh']}² mesh (`FEMMatern.sample_nig`, exact NIG node masses), bootstrap se of the "
        f"difference. Energy test of {meta['true']} against {meta['true']} fields on the 100 grid sites, "
        f"{meta['perms']} permutations.",
        "",
        f"- covariance error ≤ 5 %: **{cov_ok}/{n}** (max {100 * max(r['cov_err'] for r in rows):.1f} %);",
        f"- generator's exact skewness against the FEM truth: median relative error "
        f"{100 * np.median(skew_rel):.1f} %, max {100 * max(skew_rel):.1f} %; excess kurtosis: median "
        f"{100 * np.median(kurt_rel):.1f} %, max {100 * max(kurt_rel):.1f} % (points with |skewness| > 0.05, "
        "kurtosis > 0.05);",
        f"- at the centre against the continuum (ranges ≤ 0.3, {len(near)} points): the generator's skewness "
        f"{100 * min(skew_c):+.1f} to {100 * max(skew_c):+.1f} %, its excess kurtosis {100 * min(kurt_c):+.1f} to "
        f"{100 * max(kurt_c):+.1f} %; the FEM truth's kurtosis {100 * min(fem_c):+.1f} to {100 * max(fem_c):+.1f} % "
        "(both are discretisations: the generator's 96 modes per side miss the log-singular Green's function's "
        "shortest scales, which the fourth cumulant weighs most; the FEM mesh overshoots);",
        f"- sampled skewness and kurtosis within 3 se of the generator's exact values, both sites: **{mc_ok}/{n}**;",
        f"- the four quantiles at both sites within 3 se of the FEM draws': **{q_ok}/{n}**;",
        f"- energy test does not reject at 1 %: **{p_ok}/{n}**.",
        "",
        "The sampled moments that miss their exact values by more than 3 batch-means se are at η ≈ 4, the "
        "heaviest tails, and all fall below: the sample excess kurtosis of a variable this heavy-tailed is "
        "dominated by rare fields, most batches fall under the exact value, and the batch spread understates "
        "the error ([the FEM truth's page](nig_truth.md) saw the same of the FEM sampler). The exact values (no sampling) and "
        "the quantiles are the reliable comparison there.",
        "",
        "| range | μ | η | cov err | site | skewness: sampled (se) / generator / FEM | exc. kurtosis: sampled (se) "
        "/ generator / FEM | q01 z | q05 z | q95 z | q99 z | energy p |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for j, s in enumerate(SITES):
            d = r[s]
            q = " | ".join(f"{x['z']:+.1f}" for x in d["quantiles"])
            head = (f"| {r['range']:.3f} | {r['mu']:+.2f} | {r['eta']:.1f} | {100 * r['cov_err']:.1f} % |"
                    if j == 0 else "| | | | |")
            out.append(f"{head} {s} | {d['skew']:.3f} ({d['skew_se']:.3f}) / {d['skew_gen']:.3f} / {d['skew_exact']:.3f} | "
                       f"{d['exkurt']:.2f} ({d['exkurt_se']:.2f}) / {d['exkurt_gen']:.2f} / {d['exkurt_exact']:.2f} | {q} | "
                       + (f"{r['energy_p']:.3f} |" if j == 0 else " |"))
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
