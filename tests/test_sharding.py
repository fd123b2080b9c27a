"""Several devices: chains one per device (NumPyro's parallel chains) and prediction sites split across
devices (jax.sharding), on a CPU given two devices by XLA_FLAGS, in a fresh process (the device count is
fixed when JAX starts). In float64 the parallel chains reproduce the sequential ones to rounding; in
float32 NUTS trajectories part after a few hundred steps (benchmarks/sharding.py measures that)."""

import json
import os
import subprocess
import sys

SCRIPT = r"""
import json
import numpy as np
import jax
import pinnprob
from pinnprob.inference.arviz_data import group
from pinnprob.inference.sharding import shard_sites, site_mesh

rng = np.random.default_rng(0)
X = rng.uniform(0, 10, (20, 2))
y = np.sin(X[:, 0] / 3) + 0.3 * rng.standard_normal(20)
prior = pinnprob.pretrained("matern2d").truncate(0.5)
kw = dict(prior=prior, nu=1.5, num_warmup=10, num_samples=6, num_chains=2, seed=3, progress_bar=False, field_draws=2)
auto = pinnprob.fit(X, y, **kw)
seq = pinnprob.fit(X, y, chain_method="sequential", **kw)
pa, ps = group(auto, "posterior"), group(seq, "posterior")
out = {"devices": jax.local_device_count(), "chain_method": json.loads(auto.attrs["pinnprob"])["chain_method"],
       "diff": max(float(np.nanmax(np.abs(pa[k].values - ps[k].values))) for k in ("range", "sigma", "noise", "field")),
       "chains_differ": float(np.abs(pa["range"].values[0] - pa["range"].values[1]).max())}
Xn = rng.uniform(0, 10, (101, 2))  # not a multiple of the device count
p1 = pinnprob.predict(auto, Xn, shard=True, return_draws=True, chunk=40)
p0 = pinnprob.predict(auto, Xn, shard=False, return_draws=True, chunk=40)
out["predict_diff"] = float(np.max(np.abs(p1["draws"] - p0["draws"])))
x, n = shard_sites(np.arange(7.0)[:, None], site_mesh())
out["sharded"] = [len(x.sharding.device_set), x.shape[0], n]
print("RESULT " + json.dumps(out))
"""


def test_two_cpu_devices_parallel_chains_and_sharded_prediction():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu",
               JAX_ENABLE_X64="1")
    r = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in r.stdout.splitlines() if line.startswith("RESULT ")]
    assert r.returncode == 0 and lines, r.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["devices"] == 2 and out["chain_method"] == "parallel"  # the default with as many devices as chains
    assert out["chains_differ"] > 1e-3  # two chains, not one twice
    assert out["diff"] < 1e-6  # parallel = sequential, to float64 rounding
    assert out["predict_diff"] < 1e-9  # sharded = unsharded
    assert out["sharded"] == [2, 8, 7]  # padded to a multiple of 2 and laid over both devices
