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
    ASAN_OPTIONS=${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0 strace -f -y -qq -s 0 -o "$t" \
        -e trace=write,pwrite64,writev,copy_file_range,fsync,fdatasync,rename,renameat,renameat2 \
        "$HSMSIGN" "$@"
}

# The checker: replays the trace in order. The log is dirty from a write to
# entries.jsonl until an fsync/fdatasync of it has returned (strace -f
# splits a call that another thread interrupts into "<unfinished ...>" and
# "<... fsync resumed>"); while dirty, no write to an output's temporary
# file ("<out>.tmp.XXXXXX" outside the audit directory) and no rename may
# happen. Mode "tail" (sign batch, whose threads copy one APK's entries
# while another's signatures are being recorded): only the last 3 writes to
# each output's temporary file (signing block, central directory, EOCD:
# the bytes holding signatures) and the renames are held to it. Prints the
# number of fsyncs of entries.jsonl, of writes to outputs, and violations.
check_trace() { # trace-file [strict|tail]
    python3 - "$1" "$HSMSIGN_AUDIT_LOG" "${2:-strict}" <<'PY'
import re, sys
trace, audit, mode = sys.argv[1], sys.argv[2], sys.argv[3]
dirty, syncs, bad, output_writes = False, 0, [], 0
pending_sync = set()  # pids inside an fsync of entries.jsonl
writes = {}           # output temporary file -> [(dirty at the write, line)]
for line in open(trace):
    m = re.match(r"(\d+)\s+(?:<\.\.\. )?(\w+)(?:\(| resumed>)(.*)", line)
    if not m:
        continue
    pid, call, args = m.groups()
    resumed = "resumed>" in line.split("(", 1)[0] or line.split()[1] == "<..."
    unfinished = "<unfinished" in line
    paths = re.findall(r"<([^>]*)>", args)
    entries = any(p.endswith("/entries.jsonl") for p in paths)
    outputs = [p for p in paths if ".tmp." in p and not p.startswith(audit)]
    if call in ("fsync", "fdatasync"):
        if resumed and pid in pending_sync:
            pending_sync.discard(pid)
            dirty = False
            syncs += 1
        elif entries and unfinished:
            pending_sync.add(pid)
        elif entries:
            dirty = False
            syncs += 1
    elif call in ("write", "pwrite64", "writev") and entries:
        dirty = True
    elif call in ("write", "pwrite64", "writev", "copy_file_range") and outputs:
        output_writes += 1
        writes.setdefault(outputs[0], []).append((dirty, line.strip()))
    elif call.startswith("rename") and dirty:
        bad.append(line.strip())
for ws in writes.values():
    checked = ws if mode == "strict" else ws[-3:]
    bad += [l for d, l in checked if d]
for b in bad[:5]:
    print("while the log was not durable:", b, file=sys.stderr)
print(syncs, output_writes, len(bad))
PY
}

check "sign batch of $n APKs under strace" traced batch.trace sign batch \
    --v1-signing false --v2-signing true --v3-signing true batch.json
read -r syncs writes bad < <(check_trace batch.trace tail)
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
    read -r syncs writes bad < <(check_trace "cache-$run.trace" tail)
    assert "signature cache ($run): nothing written or renamed while the log was not durable ($bad)" \
        test "$bad" = 0
done
assert "the first run wrote cache entries" test -n "$(ls sigcache)"
assert "the second run reused (reuse entries in the log)" grep -q '"op":"reuse"' audit/entries.jsonl
check "audit check after all of it" hs audit check .
finish
