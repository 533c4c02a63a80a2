#!/bin/bash
# Audit log at scale (bench/README.md, "bench/audit"). Grows one log
# through the library (bench/audit/genlog.c, one process, no fsync per
# entry) to each size of SIZES (default 1000 100000 1000000) and at each
# size measures what one signing command costs the log:
#   - genlog step, R times (default 5, median): the gate, one fsynced
#     append, the checkpoint (its gate, signature, git commit), in-process,
#     and a git commit of one more entry alone (hs_auditgit_commit);
#   - hsmsign sign raw, R times (median): the whole command, process start
#     and token included;
#   - the .git directory's size and its growth per commit (du: each loose
#     object takes at least one 4 KiB block);
#   - `audit verify` (wall and CPU seconds);
# and at the largest size `audit verify --git` and
# `audit verify --git --checkpoint OLD` (OLD: the checkpoint before the
# last R steps and R commands). Asserts nothing about the times.
# Usage: bench/audit/run.sh [BUILD_DIR]   (SIZES="1000 10000" R=3 ...)
set -eu
# Every run measures the HSM: the signature cache (on by default,
# docs/cache.md) would turn repeated runs into reuses (bench/cache measures it).
export HSMSIGN_SIGNATURE_CACHE=off
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
HSMSIGN=$BUILD/src/cli/hsmsign
SIZES=${SIZES:-1000 100000 1000000}
R=${R:-5}
WORK=$(mktemp -d /tmp/hsmsign-bench-audit.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -I"$ROOT/src/lib" \
    $(pkg-config --cflags p11-kit-1) "$ROOT/bench/audit/genlog.c" -o "$WORK/genlog" \
    "$BUILD/src/lib/libhsmsign.a" $(pkg-config --libs p11-kit-1 libcrypto jansson libgit2) \
    -lz -pthread -ldl
cd "$WORK"
export HSMSIGN_PIN=bench-user HSMSIGN_SO_PIN=bench-so HSMSIGN_KEYSTORE=$WORK/keys \
    HSMSIGN_AUDIT_LOG=$WORK/audit
"$HSMSIGN" -q token init --dir "$WORK/tok" --label bench >/dev/null
export SOFTHSM2_CONF=$WORK/tok/softhsm2.conf
"$HSMSIGN" -q wrapkey create >/dev/null
"$HSMSIGN" -q key generate bench --algorithm ec-p256 >/dev/null
"$HSMSIGN" -q audit key >audit.pem
echo data >in.txt

now() { date +%s.%N; }
secs() { local s e; s=$(now); "$@" >/dev/null; e=$(now); echo "$e - $s" | bc; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
kib() { du -sk "$1" | cut -f1; }

# CPU seconds (user + sys) and wall seconds of one command: "wall cpu".
timed() { /usr/bin/time -f '%e %U %S' -o "$WORK/time" "$@" >/dev/null; awk '{print $1, $2 + $3}' "$WORK/time"; }

printf '%-9s %8s %9s %8s %8s %8s %8s %8s %10s %9s %9s\n' entries gate_ms append_ms ckpt_ms git_ms \
    step_ms sign_ms git_MiB KiB/commit verify_s verify_cpu | tee results.txt
for n in $SIZES; do
    "$WORK/genlog" grow audit "$n"
    cp audit/checkpoint old.checkpoint
    : >steps
    before=$(kib audit/.git)
    for _ in $(seq "$R"); do "$WORK/genlog" step audit >>steps; done
    : >signs
    for _ in $(seq "$R"); do
        echo "$(secs "$HSMSIGN" -q sign raw --key bench in.txt out.sig) * 1000" | bc >>signs
    done
    after=$(kib audit/.git)
    commits=$((3 * R)) # per step: the checkpoint's and the lone commit; one per sign raw
    gate=$(cut -d' ' -f1 steps | median)
    app=$(cut -d' ' -f2 steps | median)
    ckpt=$(cut -d' ' -f3 steps | median)
    gitc=$(cut -d' ' -f4 steps | median)
    step=$(awk '{print $1 + $2 + $3}' steps | median)
    read -r vwall vcpu < <(timed "$HSMSIGN" audit verify --public-key audit.pem)
    printf '%-9s %8.2f %9.2f %8.1f %8.1f %8.1f %8.1f %8.1f %10.0f %9.2f %9.2f\n' \
        "$(wc -l <audit/entries.jsonl)" "$gate" "$app" "$ckpt" "$gitc" "$step" "$(median <signs)" \
        "$(echo "$after / 1024" | bc -l)" "$(echo "($after - $before) / $commits" | bc -l)" \
        "$vwall" "$vcpu" | tee -a results.txt
done
entries=$(wc -l <audit/entries.jsonl)
commits=$(git -C audit rev-list --count HEAD)
segments=$(git -C audit ls-tree -r --name-only HEAD log | wc -l)
echo "log: $entries entries, $(kib audit/entries.jsonl) KiB, $commits commits, $segments segments in git" | tee -a results.txt
read -r w c < <(timed "$HSMSIGN" audit verify --public-key audit.pem --git)
echo "audit verify --git (every commit):     $w s wall, $c s CPU" | tee -a results.txt
read -r w c < <(timed "$HSMSIGN" audit verify --public-key audit.pem --git --checkpoint old.checkpoint)
echo "audit verify --git --checkpoint OLD:   $w s wall, $c s CPU ($((3 * R)) commits after OLD)" | tee -a results.txt
mkdir -p "$ROOT/bench/work" && cp results.txt "$ROOT/bench/work/audit-results.txt"
