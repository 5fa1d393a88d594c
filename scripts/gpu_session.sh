#!/usr/bin/env bash
# The prepared GPU check: every GPU number the project records, in one go.
#
# Made for a lent device machine (one H200, 16 cores, no network; its python3
# holds a CUDA build of torch and most of our dependencies, see docs/benchmarks.md
# "GPU session"), run from the repository root. It writes at most 7 files to
# $OUT and prints a summary; each step has its own time limit and a failed step
# does not stop the others. Total about 6-8 minutes on an H200 (plus the
# machine's start), so one call of the device tool with timeout_s=600 does it.
#
# Before the call, on the dev machine (the packages the device image lacks,
# ~56 MiB as wheels; .whl is ignored, name it in the call's carry):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl \
#     SimpleITK==2.5.7 connected-components-3d==4.1.1 platformdirs==4.14.8
# The call: command "bash scripts/gpu_session.sh", carry [".whl"], timeout_s 600.
#
# On the dev CPU, the same steps at toy sizes (the check that this script runs):
#   SMOKE=1 DEVICE=cpu PYTHON=.venv/bin/python OUT=/tmp/gpu-smoke bash scripts/gpu_session.sh
set -u

OUT="${OUT:-$PWD/gpu-session-out}"
DEVICE="${DEVICE:-cuda}"
PYTHON="${PYTHON:-python3}"
SMOKE="${SMOKE:-0}"
mkdir -p "$OUT"
LOG="$OUT/log.txt"
SUMMARY="$OUT/summary.txt"
: >"$LOG"
: >"$SUMMARY"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        >>"$LOG" 2>&1 || echo "wheel install failed (see log.txt)" | tee -a "$SUMMARY"
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [ "$SMOKE" = 1 ]; then
    SLICES=40 RUNS=1 STEPS=2 COMPILE=0
else
    SLICES=300 RUNS=5 STEPS=20 COMPILE=1
fi

# step NAME LIMIT_S COMMAND...: run with a time limit, log it, record its status and time
step() {
    local name="$1" limit="$2"
    shift 2
    local began rc
    began=$(date +%s)
    echo "=== $name: $*" >>"$LOG"
    timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
    rc=$?
    printf '%-22s rc=%-3s %4ss\n' "$name" "$rc" "$(($(date +%s) - began))" | tee -a "$SUMMARY"
    return 0
}

{
    date -u +"%Y-%m-%dT%H:%M:%SZ"
    uname -a
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || echo "no nvidia-smi"
    "$PYTHON" - <<'EOF'
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
print("cuda available", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
for name in ("SimpleITK", "cc3d", "scipy", "onnxruntime", "platformdirs"):
    try:
        module = __import__(name)
        print(name, getattr(module, "__version__", "?"))
    except Exception as exc:  # report, the steps say which ones need it
        print(name, "MISSING", exc)
EOF
    nproc
} >"$OUT/env.txt" 2>&1

BENCH=("$PYTHON" main.py bench --device "$DEVICE" --slices "$SLICES" --runs "$RUNS")
# 1. detection end to end from the loaded volume, default precision (float16 autocast on a GPU),
#    with the book-style pipeline (every slice, batch 4, scipy grouping) on the same volume and weights
step bench_auto_book 240 "${BENCH[@]}" --compare-book --json "$OUT/bench_auto.json"
# 2. the same in float32 (the precision the CPU figures use)
step bench_float32 150 "${BENCH[@]}" --precision float32 --json "$OUT/bench_fp32.json"
# 3. torch.compile with CUDA graphs for the segmentation model (the warm-up run holds the compile time)
if [ "$COMPILE" = 1 ]; then
    step bench_compile 240 "${BENCH[@]}" --compile reduce-overhead --json "$OUT/bench_compile.json"
fi
# 4. training throughput of each trainer on synthetic batches (samples/s)
step train_bench 150 "$PYTHON" -m training bench --device "$DEVICE" --steps "$STEPS" --json "$OUT/train_bench.json"

"$PYTHON" - "$OUT" >>"$SUMMARY" 2>&1 <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
for name in ("bench_auto", "bench_fp32", "bench_compile"):
    path = out / f"{name}.json"
    if not path.exists():
        continue
    data = json.loads(path.read_text())
    for backend, report in data["reports"].items():
        m = report["medians_s"]
        stages = " ".join(f"{k} {m[k]:.3f}" for k in ("segmentation", "grouping", "classification", "malignancy", "total"))
        print(f"{name} [{backend}, {report['precision']}, {report['device']}]: {stages} s; "
              f"warm-up {report['warmup_s']}; peak GPU {report['peak_gpu_mb']} MiB; "
              f"{report['candidates']} candidates, {report['nodules']} >= 0.5")
    for backend, comparison in (data.get("book_comparison") or {}).items():
        print(f"{name} book-style vs {backend}: {json.dumps(comparison)[:600]}")
path = out / "train_bench.json"
if path.exists():
    print("train_bench:", path.read_text()[:1200])
EOF
echo "files in $OUT:" >>"$SUMMARY"
ls -la "$OUT" >>"$SUMMARY"
cat "$SUMMARY"
