#!/bin/bash
# Group commit of audit entries, watched from outside with strace: the
# signer may append an APK's v2/v3 entries without fsync and make them
# durable with one fsync (the output's entry) per APK, but no byte is ever
# written to an output file, and no output is renamed into place, while
# the log holds entries that are not yet fsynced. Checked for sign batch
# (v2+v3), sign apk with v1 (its .SF signature goes into section 1) and
# with v4 (.idsig written from the finished APK).
. "$(dirname "$0")/lib.sh"
if ! command -v strace >/dev/null; then
    echo "skipped: strace is not installed (scripts/install-deps installs it)"
    exit 77
fi
setup_token
openssl genrsa -out rsa.pem 2048 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in rsa.pem -outform DER -out rsa.pk8
openssl req -new -x509 -sha256 -key rsa.pem -subj "/CN=durability" -days 3650 -out rsa.crt
check "import a key" hs key import platform --pk8 rsa.pk8 --cert rsa.crt

APK="$HSMSIGN_VECTORS/apk/app21.apk"
mkdir -p in signed
n=6
for i in $(seq 1 $n); do cp "$APK" "in/a$i.apk"; done
python3 - "$n" >batch.json <<'PY'
import json, sys
n = int(sys.argv[1])
print(json.dumps([{"input": f"in/a{i}.apk", "output": f"signed/a{i}.apk", "key": "platform"}
                  for i in range(1, n + 1)]))
PY

# trace FILE: every write to a file, fsync and rename of one process tree,
# with file descriptors shown as paths (-y).
traced() { # trace-file args...
    local t=$1
    shift
    # LeakSanitizer cannot run under ptrace (the process aborts): no leak
    # check for the traced runs under `make check-asan`; the same commands
    # run with it in the other tests.
    ASAN_OPTIONS=${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0 strace -f -y -qq -s 4096 -o "$t" \
        -e trace=write,pwrite64,writev,copy_file_range,fsync,fdatasync,rename,renameat,renameat2 \
        "$HSMSIGN" "$@"
}

# The checker: replays the trace in order. Mode "strict" (one APK): the
# log is dirty from a write to entries.jsonl until an fsync/fdatasync of it
# has returned; while dirty, no write to an output's temporary file
# ("<out>.tmp.XXXXXX" outside the audit directory) and no rename may happen.
# Mode "batch" (sign batch: its threads copy one APK's entries while
# another's signatures are being recorded, and publish a group while the
# next one is signed): each entry is attributed to its APK by the input it
# names (in/aK.apk), and the last 3 writes to an output's temporary file
# (signing block, central directory, EOCD: the bytes holding signatures)
# and its rename must come after an fsync of the log that started once
# every entry naming its input had been written (a file of no APK, such as
# a signature cache entry: after the whole log was durable). strace -f splits a call
# another thread interrupts into "<unfinished ...>" and "<... resumed>":
# a write counts once resumed, an fsync covers what was written before it
# started and counts once it has returned. Prints the number of fsyncs of
# entries.jsonl, of writes to outputs, and of violations.
check_trace() { # trace-file [strict|batch]
    python3 - "$1" "$HSMSIGN_AUDIT_LOG" "${2:-strict}" <<'PY'
import re, sys
trace, audit, mode = sys.argv[1], sys.argv[2], sys.argv[3]
syncs, bad, output_writes = 0, [], 0
written = []        # entries.jsonl writes, in completion order: their text
durable = 0         # written[:durable] are covered by a returned fsync
unfinished = {}     # pid -> (call, entries?, text, number written at start)
out_writes = {}     # output temporary file -> [(durable, written, line)]
renames = []        # (durable, written, destination, line)
def apk_of(path):
    m = re.search(r"/(a\d+)\.apk(?:\.tmp\.|$)", path)
    return m.group(1) if m else None
for line in open(trace):
    m = re.match(r"(\d+)\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()(.*)", line)
    if not m:
        continue
    pid, resumed_call, call, rest = m.groups()
    if resumed_call:
        if pid not in unfinished:
            continue
        call, entries, text, at_start = unfinished.pop(pid)
    else:
        paths = re.findall(r"<([^>]*)>", rest.split('"', 1)[0])
        entries = any(p.endswith("/entries.jsonl") for p in paths)
        text, at_start = rest, len(written)
        if "<unfinished" in rest:
            unfinished[pid] = (call, entries, text, at_start)
            continue
    if call in ("fsync", "fdatasync") and entries:
        durable = max(durable, at_start)
        syncs += 1
    elif call in ("write", "pwrite64", "writev") and entries:
        written.append(text)
    elif call in ("write", "pwrite64", "writev", "copy_file_range"):
        outs = [p for p in re.findall(r"<([^>]*)>", text) if ".tmp." in p and not p.startswith(audit)]
        if outs:
            output_writes += 1
            out_writes.setdefault(outs[0], []).append((durable, len(written), line.strip()))
    elif call.startswith("rename"):
        dest = re.findall(r'"([^"]*)"', text)
        renames.append((durable, len(written), dest[-1] if dest else "", line.strip()))
def ok(apk, durable_then, written_then):
    # Files of no APK (signature cache entries): the log wholly durable.
    if mode == "strict" or apk is None:
        return durable_then >= written_then
    # every entry naming this APK's input, written so far, is durable
    named = [i for i in range(written_then) if f"in/{apk}.apk\\\"" in written[i]]
    return all(i < durable_then for i in named)
for path, ws in out_writes.items():
    apk = apk_of(path)
    for d, w, l in (ws if mode == "strict" else ws[-3:]):
        if not ok(apk, d, w):
            bad.append(l)
for d, w, dest, l in renames:
    if not dest.startswith(audit) and not ok(apk_of(dest), d, w):
        bad.append(l)
if mode == "batch":
    # Not vacuous: every output's entries (v2, v3, output) were attributed.
    for path in (p for p in out_writes if apk_of(p) is not None):
        k = sum(f"in/{apk_of(path)}.apk\\\"" in t for t in written)
        if k < 3:
            bad.append(f"only {k} entries name the input of {path}")
for b in bad[:5]:
    print("while the log was not durable:", b, file=sys.stderr)
print(syncs, output_writes, len(bad))
PY
}

check "sign batch of $n APKs under strace" traced batch.trace sign batch \
    --v1-signing false --v2-signing true --v3-signing true batch.json
read -r syncs writes bad < <(check_trace batch.trace batch)
assert "batch: the trace shows the outputs being written ($writes writes)" test "$writes" -ge "$n"
assert "batch: no signature written, nothing renamed, while the log was not durable ($bad)" \
    test "$bad" = 0
# Durability per group of outputs: one fsync of the log for all $n APKs'
# entries (v2, v3, output), one for the key's unwrap, one before the
# checkpoint (it was one per APK, and 3 per APK before group commit).
assert "batch: $syncs fsyncs of the log for $n APKs (at most 4)" test "$syncs" -le 4
# One fsync per output file, and one of their directory for all of them.
dirsyncs=$(grep -cE 'fsync\([0-9]+</[^>]*/signed>' batch.trace || true)
assert "batch: the outputs' directory fsynced once ($dirsyncs)" test "$dirsyncs" = 1
# app21.apk says minSdk 21, which would need v1: verify for 24 and up.
rejected=0
for i in $(seq 1 $n); do
    apksigner verify --min-sdk-version 24 "signed/a$i.apk" >/dev/null 2>&1 || rejected=$((rejected + 1))
done
assert "apksigner verify accepts all $n outputs ($rejected rejected)" test "$rejected" = 0
check "audit verify after the batch" hs audit verify
check "audit check: every signature in the outputs is logged" hs audit check signed

check "sign apk with v1+v2+v3 under strace" traced v1.trace sign apk --key platform \
    --v1-signing true in/a1.apk v1.apk
read -r syncs writes bad < <(check_trace v1.trace)
assert "v1: nothing written or renamed while the log was not durable ($bad)" test "$bad" = 0
check "apksigner verifies the v1+v2+v3 output" apksigner verify v1.apk

check "sign apk with v4 under strace" traced v4.trace sign apk --key platform \
    --v1-signing false --v4-signing true in/a1.apk v4.apk
read -r syncs writes bad < <(check_trace v4.trace)
assert "v4: nothing written or renamed while the log was not durable ($bad)" test "$bad" = 0
assert "v4: the .idsig is there" test -s v4.apk.idsig
check "apksigner verifies the v4 output" apksigner verify --min-sdk-version 24 v4.apk
# With the signature cache (docs/cache.md): a signature's cache entry is
# a file too, written only once its entry is durable; a reuse's entry is
# made durable before the reused signature is written anywhere.
for run in fill reuse; do
    mkdir -p "cached-$run"
    sed "s#signed/#cached-$run/#" batch.json >"cached-$run.json"
    HSMSIGN_SIGNATURE_CACHE=$WORK/sigcache check "signature cache ($run): sign batch under strace" \
        traced "cache-$run.trace" sign batch --v1-signing false --v2-signing true --v3-signing true \
        "cached-$run.json"
    read -r syncs writes bad < <(check_trace "cache-$run.trace" batch)
    assert "signature cache ($run): nothing written or renamed while the log was not durable ($bad)" \
        test "$bad" = 0
done
assert "the first run wrote cache entries" test -n "$(ls sigcache)"
assert "the second run reused (reuse entries in the log)" grep -q '"op":"reuse"' audit/entries.jsonl
check "audit check after all of it" hs audit check .
# The fixed cost of one command: sign raw appends the unwrap (deferred)
# and the signature entry (fsynced, so both are durable), then the
# checkpoint. Its fsync of the log is skipped: this process's last synced
# append ended the file and nothing was appended since. checkpoint and
# checkpoint.state share one fsync of the audit directory.
printf tiny >tiny
check "sign raw under strace" traced raw.trace sign raw --key platform tiny raw.sig
read -r syncs writes bad < <(check_trace raw.trace)
assert "raw: nothing written or renamed while the log was not durable ($bad)" test "$bad" = 0
assert "raw: one fsync of the log, none again for the checkpoint ($syncs)" test "$syncs" = 1
auditdir=$(grep -cE "fsync\([0-9]+<$HSMSIGN_AUDIT_LOG>\)" raw.trace || true)
assert "raw: the audit directory fsynced once ($auditdir)" test "$auditdir" = 1
assert "raw: a checkpoint was signed for the new entries" \
    test "$(sed -n 2p "$HSMSIGN_AUDIT_LOG/checkpoint")" = "$(wc -l <"$HSMSIGN_AUDIT_LOG/entries.jsonl")"
check "audit verify after sign raw" hs audit verify
finish
