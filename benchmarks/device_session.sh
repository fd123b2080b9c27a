#!/usr/bin/env bash
# The checks for a GPU machine lent to a session, as one call of about nine minutes, each part cut off
# at its share so that the ones before it keep their figures:
#   0. a probe: device_check.py at 2 000 sites (laplace, predict), every compile and its time logged — on
#      2026-12-04 one XLA GPU compile took over two minutes and no fit finished (docs/results/device_session.md);
#   1. issue 13: benchmarks/device_check.py — fit (laplace; NUTS at 10⁴) and predict at 10⁴ and 10⁵ sites;
#   2. issue 11: benchmarks/advection_diffusion_speed.py — ESS/s of the velocity by NUTS against the exact
#      GP at 1 000, 2 000 and 5 000 site-times (dense solvers on both sides);
#   3. issue 10: benchmarks/nonstationary.py --device — the non-stationary prior's collapsed gradient at
#      n = 1 000, 2 000, 5 000 and its sampling time for 1 000 fields at 10⁴ sites.
# float32 with full-precision matrix products (no TF32).
#     bash benchmarks/device_session.sh OUTDIR [SECONDS]
set -u
OUT=${1:?usage: device_session.sh OUTDIR [SECONDS]}
BUDGET=${2:-540}
mkdir -p "$OUT"
# JAX_LOG_COMPILES: every compile and its time in the logs (on 2026-12-04 one GPU compile took over 2 minutes)
export PYTHONUNBUFFERED=1 JAX_DEFAULT_MATMUL_PRECISION=highest JAX_LOG_COMPILES=1
export JAX_COMPILATION_CACHE_DIR=/tmp/pinnprob-jax-cache  # shared by the parts: a program compiles once
start=$(date +%s)
part() {  # part NAME SECONDS COMMAND...: run COMMAND for at most SECONDS (and what is left), log to OUT/NAME.log
    local name=$1 secs=$2 left
    shift 2
    left=$((BUDGET - ($(date +%s) - start)))
    [ "$secs" -gt "$left" ] && secs=$left
    if [ "$secs" -lt 20 ]; then echo "=== $name: skipped, $left s left"; return; fi
    echo "=== $name (at most $secs s)"
    timeout "$secs" "$@" 2>&1 | tee "$OUT/$name.log"
    echo "=== $name: exit ${PIPESTATUS[0]} after $(($(date +%s) - start)) s"
}
nvidia-smi -L 2>/dev/null || true
part compile_probe 100 python3 benchmarks/device_check.py --sites 2000 --nuts-sites --draws 50 \
    --out "$OUT/probe"
part device_check 220 python3 benchmarks/device_check.py --out "$OUT" --nuts-sites 10000 --draws 250
part ad_speed 150 python3 benchmarks/advection_diffusion_speed.py --times 100 200 500 --nuts-max 5000 \
    --warmup 200 --samples 200 --solver dense --out "$OUT" --name advection_diffusion_speed_gpu
part ns_gradients 9999 python3 benchmarks/nonstationary.py --device 1000 2000 5000 --out "$OUT"
