"""Another prior's posterior on the draws of a ``nonstationary_posterior.py --sites 0.1 0.9`` run.

    python benchmarks/nonstationary_posterior_reweight.py PRIOR_FILE [OUT_JSON]

Reads /tmp/nonstationary_posterior_draws.npz (written by that run: the draws, the proposal's log
density, the log prior and both log-likelihoods), rebuilds the same data (seed 0, sites on
[0.1, 0.9]²), evaluates PRIOR_FILE's collapsed likelihood at the draws whose log weight under
either posterior is within 12 of its maximum (the rest carry less than e⁻¹² each) and prints each
parameter's (mean − reference mean)/reference sd and sd ratio, next to the shipped prior's. Used for
the cell-size comparison on docs/results/nonstationary_posterior.md (the 10⁴-cell prior of git
9dc6d38: ``git show 9dc6d38:pinnprob/weights/matern2d-nonstationary.eqx > ns01.eqx``).
"""

import json
import sys
import time

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from nonstationary import fem_for  # benchmarks/ is sys.path[0]
from nonstationary_posterior import NAMES, TRUE, to_values

import pinnprob
from pinnprob.inference.collapsed import CollapsedGaussian
from pinnprob.inference.distribution import GenerativeField

prior = pinnprob.load(sys.argv[1])
out_json = sys.argv[2] if len(sys.argv) > 2 else "/tmp/nonstationary_posterior_reweight.json"
space, gen = prior.param_range, prior.generator
rng = np.random.default_rng(0)
X = rng.uniform(0.1, 0.9, (400, 2))
y = TRUE["sigma"] * fem_for(TRUE, 300).sample(1, X, 1)[0] + TRUE["noise"] * rng.standard_normal(400)
D = np.load("/tmp/nonstationary_posterior_draws.npz")
draws, lq, lp = D["draws"], D["log_q"], D["log_prior"]
lw_ref, lw_gen = lp + D["ref"] - lq, lp + D["gen"] - lq
keep = np.where((lw_ref > np.nanmax(lw_ref) - 12) | (lw_gen > np.nanmax(lw_gen) - 12))[0]
print(len(keep), "draws kept", flush=True)
Xj, yj = jnp.asarray(X), jnp.asarray(y); feats = gen.features(Xj)
@eqx.filter_jit
def ll(theta, s, n):  # noqa: E306
    return CollapsedGaussian(GenerativeField(gen, feats, theta, s), jnp.zeros(400), n).log_prob(yj)
out = np.full(len(draws), -np.inf)
t0 = time.perf_counter()
for j, i in enumerate(keep):
    v = to_values(draws[i])
    out[i] = float(ll(space.theta(**{k: v[k] for k in NAMES[:5]}), jnp.asarray(v["sigma"]), jnp.asarray(v["noise"])))
    if j % 100 == 0:
        print(j, time.perf_counter() - t0, flush=True)
vals = np.array([[to_values(p)[k] for k in NAMES] for p in draws])


def summ(lw):
    lw = np.where(np.isfinite(lw), lw, -np.inf)
    w = np.exp(lw - lw.max())
    w /= w.sum()
    m = w @ vals
    return m, np.sqrt(w @ (vals - m) ** 2), 1 / np.sum(w**2)



(mr, sr, er), (mg, sg, eg), (mh, sh, eh) = summ(lw_ref), summ(lw_gen), summ(lp + out - lq)
print("ESS: reference, shipped generator, this prior", er, eg, eh)
res = {}
for j, k in enumerate(NAMES):
    print(f"{k:>15}: shipped Δ/sd {(mg[j]-mr[j])/sr[j]:+.3f} sd {sg[j]/sr[j]:.3f} | this prior Δ/sd {(mh[j]-mr[j])/sr[j]:+.3f} sd {sh[j]/sr[j]:.3f}")
    res[k] = dict(ref=[mr[j], sr[j]], shipped=[mg[j], sg[j]], this=[mh[j], sh[j]])
json.dump({"prior": sys.argv[1], "ess": [er, eg, eh], "kept": int(len(keep)), "params": res}, open(out_json, "w"), indent=1)
