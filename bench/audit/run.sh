#!/bin/bash
# Audit log benchmark: N signatures (default 1000, one `hsmsign sign raw`
# process each, so one checkpoint and one git commit each), then times
# `hsmsign audit verify` (tree, every checkpoint signature) and
# `audit verify --git` (every commit). Usage: bench/audit/run.sh HSMSIGN [N]
set -eu
# Every run measures the HSM: the signature cache (on by default,
# docs/cache.md) would turn repeated runs into reuses (bench/cache measures it).
export HSMSIGN_SIGNATURE_CACHE=off
HSMSIGN=${1:?usage: run.sh path/to/hsmsign [N]}
N=${2:-1000}
WORK=$(mktemp -d /tmp/hsmsign-bench-audit.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
export HSMSIGN_PIN=bench-user HSMSIGN_SO_PIN=bench-so HSMSIGN_KEYSTORE=$WORK/keys \
    HSMSIGN_AUDIT_LOG=$WORK/audit
"$HSMSIGN" -q token init --dir "$WORK/tok" --label bench >/dev/null
export SOFTHSM2_CONF=$WORK/tok/softhsm2.conf
"$HSMSIGN" -q wrapkey create >/dev/null
"$HSMSIGN" -q key generate bench --algorithm ec-p256 >/dev/null
echo data >in.txt
start=$(date +%s.%N)
for i in $(seq 1 "$N"); do "$HSMSIGN" -q sign raw --key bench in.txt out.sig; done
end=$(date +%s.%N)
entries=$(wc -l <audit/entries.jsonl)
checkpoints=$(ls audit/checkpoints | wc -l)
"$HSMSIGN" -q audit key >audit.pem
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
verify=$(t "$HSMSIGN" audit verify --public-key audit.pem)
git=$(t "$HSMSIGN" audit verify --public-key audit.pem --git)
echo "signatures: $N in $(echo "$end - $start" | bc) s (one process each)"
echo "log: $entries entries, $checkpoints checkpoints"
echo "audit verify:       $verify s"
echo "audit verify --git: $git s"
printf 'per 1,000 entries: verify %.3f s, verify --git %.3f s\n' \
    "$(echo "$verify * 1000 / $entries" | bc -l)" "$(echo "$git * 1000 / $entries" | bc -l)"
