#!/bin/bash
# hsmsign agent (issue 13): one login and one unwrap per key for many
# commands, through a private Unix socket.
#   - through the agent, sign raw / sign apk / avb signing-helper give the
#     same bytes as standalone (RSA PKCS#1 v1.5 is deterministic), accepted
#     by openssl and apksigner; the client needs no PIN and no token;
#   - the shim counts one login and one unwrap per key for all of them, and
#     every signature is in the audit log (audit verify);
#   - no answer leaves the agent while the log holds an entry not yet
#     fsynced (strace of the agent, concurrent clients);
#   - kill -9 mid-stream: every signature a client wrote has its entry, the
#     log verifies, and `agent start` replaces the stale socket;
#   - another user's process is refused (directory 0700; and, with the
#     directory opened on purpose, by SO_PEERCRED, logged);
#   - idle timeout, SIGTERM, SIGINT and `agent stop`: the agent exits by
#     itself, every session is closed (shim counts), the socket is removed.
. "$(dirname "$0")/lib.sh"
: "${P11SHIM:?P11SHIM must name the shim module}"
setup_token
V=$HSMSIGN_VECTORS/apk
check "import the vectors' RSA key" hs key import platform --pk8 "$V/testkey.pk8" --cert "$V/testkey.x509.pem"
check "generate an EC key" hs key generate ec --algorithm ec-p256
PLATFORM_PUB=$(pubkey platform)
EC_PUB=$(pubkey ec)
for i in $(seq 1 12); do echo "input $i" >"in$i.txt"; done

# The PKCS#1 v1.5 block avbtool hands its signing helper for SHA-256(in1.txt).
python3 - <<'PY'
import hashlib
di = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(open("in1.txt", "rb").read()).digest()
open("avb.block", "wb").write(b"\x00\x01" + b"\xff" * (256 - 3 - len(di)) + b"\x00" + di)
PY

# --- standalone references -----------------------------------------------
check "standalone: sign raw" hs sign raw --key platform in1.txt ref.sig
check "standalone: sign apk (v2+v3)" hs sign apk --key platform --v1-signing false \
    --v2-signing true --v3-signing true --v4-signing false "$V/app21.apk" ref.apk
check "standalone: avb signing-helper" sh -c '"$HSMSIGN" avb signing-helper SHA256_RSA2048 "$1" <avb.block >ref.avbsig' _ "$PLATFORM_PUB"

# --- helpers -------------------------------------------------------------
mkdir -m 700 run
SOCK=$WORK/run/agent.sock
counts() { python3 -c "import json,sys; c = json.load(open(sys.argv[1])); print($1)" "$WORK/counts.json"; }

# wait_until WHAT COMMAND...: polls a condition, bounded (60 s).
wait_until() {
    local what=$1 i
    shift
    for i in $(seq 1 600); do
        "$@" 2>/dev/null && return 0
        sleep 0.1
    done
    fail "timed out waiting for: $what"
    return 1
}
agent_ready() { grep -q '^HSMSIGN_AGENT=' "$WORK/agent.out"; }
# An exited child stays a zombie until waited for: kill -0 still finds it.
exited() { local s; s=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null); [ -z "$s" ] || [ "$s" = Z ]; }
ready_or_exited() { agent_ready || exited "$AGENT_PID"; }

# start_agent [WRAPPER...] -- [AGENT OPTIONS...]: a foreground agent behind
# the counting shim, as a child of this shell (AGENT_PID).
start_agent() {
    local wrap=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do wrap+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    rm -f "$WORK/counts.json" "$WORK/agent.out"
    HSMSIGN_MODULE=$P11SHIM HSMSIGN_SHIM_MODULE=$SOFTHSM_MODULE HSMSIGN_SHIM_COUNTS=$WORK/counts.json \
        "${wrap[@]}" "$HSMSIGN" agent start --foreground --socket "$SOCK" "$@" \
        >"$WORK/agent.out" 2>>"$WORK/agent.log" &
    AGENT_PID=$!
    wait_until "the agent to be ready" ready_or_exited
    agent_ready || fail "the agent exited instead of serving: $(tail -1 "$WORK/agent.log")"
}
# wait_agent: the agent's exit status, once it has exited (bounded).
wait_agent() {
    wait_until "the agent to exit" exited "$AGENT_PID"
    wait "$AGENT_PID"
}
# Clients: no PIN, and a module that does not exist, so any attempt to
# open the token fails.
client() { env -u HSMSIGN_PIN HSMSIGN_MODULE=/nonexistent/pkcs11.so HSMSIGN_AGENT="$SOCK" "$HSMSIGN" "$@"; }
sessions_all_closed() {
    [ "$(counts "c['finalized'], c['sessions_open'], c['sessions_closed_by_finalize']")" = "True 0 0" ]
}
sig_logged() { grep -q "\"sig_sha256\":\"$(sha256sum "$1" | cut -c1-64)\"" audit/entries.jsonl; }

# --- through the agent ------------------------------------------------------
start_agent -- --checkpoint-delay 1
assert "the socket is 0600 and its directory 0700" \
    test "$(stat -c %a "$SOCK") $(stat -c %a "$WORK/run")" = "600 700"
check "agent status answers" client agent status --json
assert "status names the token and the key store" \
    python3 -c 'import json,sys; s = json.load(open(sys.argv[1])); assert s["token"] == "test" and s["keystore"] == sys.argv[2]' "$WORK/out" "$HSMSIGN_KEYSTORE"
expect_fail "a second agent on the same socket is refused" 9 "already running" \
    env HSMSIGN_MODULE="$P11SHIM" HSMSIGN_SHIM_MODULE="$SOFTHSM_MODULE" "$HSMSIGN" agent start --foreground --socket "$SOCK"

check "agent: sign raw (no PIN, no token in the client)" client sign raw --key platform in1.txt a1.sig
assert "agent: sign raw is byte-identical to standalone" cmp -s a1.sig ref.sig
for i in $(seq 2 8); do client sign raw --key platform "in$i.txt" "a$i.sig" || fail "sign raw in$i.txt"; done
check "openssl verifies an agent signature" openssl dgst -sha256 -verify "$PLATFORM_PUB" -signature a8.sig in8.txt
check "agent: sign raw with the EC key" client sign raw --key ec in1.txt ec.sig
check "openssl verifies the EC signature" openssl dgst -sha256 -verify "$EC_PUB" -signature ec.sig in1.txt
check "agent: sign apk" client sign apk --key platform --v1-signing false --v2-signing true \
    --v3-signing true --v4-signing false "$V/app21.apk" agent.apk
assert "agent: sign apk is byte-identical to standalone" cmp -s agent.apk ref.apk
assert "... and to apksigner's vector" cmp -s agent.apk "$V/app21.v2v3.apksigner.apk"
check "apksigner verify accepts the agent's APK (v2+v3: minSdk 24)" apksigner verify --min-sdk-version 24 agent.apk
check "agent: sign apk again (key already unwrapped)" client sign apk --key platform --v1-signing true \
    --v2-signing true --v3-signing true "$V/app21.apk" agent2.apk
check "apksigner verify accepts it (v1+v2+v3)" apksigner verify agent2.apk
printf '[{"input":"%s","output":"b1.apk","key":"platform"},{"input":"%s","output":"b2.apk","key":"platform"}]' \
    "$V/app21.apk" "$V/app21.apk" >batch.json
check "agent: sign batch" client sign batch --v1-signing false --v2-signing true --v3-signing true \
    --v4-signing false batch.json
assert "agent: sign batch's outputs are byte-identical to standalone" cmp -s b2.apk ref.apk
check "agent: avb signing-helper" sh -c 'HSMSIGN_AGENT=$2 "$HSMSIGN" avb signing-helper SHA256_RSA2048 "$1" <avb.block >agent.avbsig' _ "$PLATFORM_PUB" "$SOCK"
assert "agent: signing-helper output identical to standalone" cmp -s agent.avbsig ref.avbsig
expect_fail "a key the agent's key store lacks: clear error" 8 "nokey" client sign raw --key nokey in1.txt x.sig
expect_fail "HSMSIGN_AGENT naming no agent: clear error" 8 "no agent at" \
    env -u HSMSIGN_PIN HSMSIGN_AGENT="$WORK/run/none.sock" "$HSMSIGN" sign raw --key platform in1.txt x.sig
assert "no output from the failed commands" test ! -e x.sig

check "agent stop" client agent stop
check "the agent exited 0 after stop" wait_agent
assert "stop: the socket is removed" test ! -e "$SOCK"
assert "one login for the whole session" test "$(counts "c['logins']")" -eq 1
assert "one unwrap per key (platform, ec) for 14 signing commands" test "$(counts "c['calls']['C_UnwrapKey']")" -eq 2
assert "stop: every session closed, C_Finalize called" sessions_all_closed
n_raw=0
for f in a*.sig ec.sig agent.avbsig; do sig_logged "$f" && n_raw=$((n_raw + 1)); done
assert "every raw and helper signature has its audit entry ($n_raw of 10)" test "$n_raw" -eq 10
assert "the four APKs are recorded as outputs" test "$(grep -cE '"op":"output","output_sha256":"[0-9a-f]{64}","purpose":"apk"' audit/entries.jsonl)" -ge 4
check "audit verify passes" hs audit verify
assert "the stop left a checkpoint covering the whole log" grep -q "covers $(wc -l <audit/entries.jsonl)" "$WORK/out"

# --- durability: no answer before the entry is on disk ----------------------
# strace sees every write and fsync of the agent's entries file and every
# send to a client: a send while the entries file holds a write not yet
# fsynced would release a signature whose entry a crash could lose.
if command -v strace >/dev/null; then
    ASAN_OPTIONS=${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0 start_agent strace -f -y -qq -s 0 -o "$WORK/trace" \
        -e trace=write,pwrite64,writev,fsync,fdatasync,sendto,sendmsg -- --checkpoint-delay 1
    for c in 1 2 3 4; do
        (for i in 1 2 3; do client sign raw --key platform "in$i.txt" "d$c-$i.sig" || exit 1; done) &
    done
    ok=0
    for job in $(jobs -p); do [ "$job" = "$AGENT_PID" ] && continue; wait "$job" || ok=1; done
    assert "12 concurrent agent signatures" test "$ok" -eq 0
    check "agent stop (traced)" client agent stop
    wait_agent
    python3 - "$WORK/trace" >"$WORK/trace.check" <<'PY'
import re, sys
dirty = False; sends = 0; bad = 0; fsyncs = 0
for line in open(sys.argv[1]):
    m = re.match(r"\d+\s+(\w+)\((\d+)<([^>]*)>", line)
    if not m:
        continue
    fn, target = m.group(1), m.group(3)
    if target.endswith("/entries.jsonl"):
        if fn in ("write", "pwrite64", "writev"):
            dirty = True
        elif fn in ("fsync", "fdatasync"):
            dirty = False; fsyncs += 1
    elif fn in ("sendto", "sendmsg") and (target.startswith("UNIX") or target.startswith("socket:")):
        sends += 1
        if dirty:
            bad += 1
print(sends, bad, fsyncs)
PY
    read -r sends bad fsyncs <"$WORK/trace.check"
    assert "strace saw the agent's answers ($sends) and fsyncs ($fsyncs)" test "$sends" -ge 12 -a "$fsyncs" -ge 1
    assert "no answer left while an entry was not yet fsynced ($bad)" test "$bad" -eq 0
    n=0
    for f in d*.sig; do sig_logged "$f" && n=$((n + 1)); done
    assert "all 12 concurrent signatures are in the log" test "$n" -eq 12
else
    echo "# strace not installed: durability ordering not traced"
fi

# --- kill -9 mid-stream -------------------------------------------------------
# Each C_Sign takes 30 ms in the shim, so the clients are still signing
# when the agent is killed.
mkdir kill
entries_before=$(grep -c '"purpose":"raw"' audit/entries.jsonl)
raw_entries_grew() { [ "$(grep -c '"purpose":"raw"' audit/entries.jsonl)" -ge $((entries_before + 8)) ]; }
HSMSIGN_SHIM_LATENCY=C_Sign:30 start_agent -- --checkpoint-delay 1
for c in 1 2 3 4; do
    (for i in $(seq 1 15); do client sign raw --key platform "in$((i % 12 + 1)).txt" "kill/k$c-$i.sig" 2>/dev/null; done) &
done
wait_until "signatures to flow through the agent" raw_entries_grew
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
for job in $(jobs -p); do wait "$job"; done
written=$(ls kill | wc -l)
n=0
for f in kill/*.sig; do [ -e "$f" ] && sig_logged "$f" && n=$((n + 1)); done
echo "# $written of 60 signatures were written before and after the kill"
assert "every signature a client wrote ($written) has its audit entry ($n)" test "$n" -eq "$written" -a "$written" -gt 0
assert "the killed agent left its socket behind" test -S "$SOCK"
start_agent -- --checkpoint-delay 1
assert "agent start replaced the stale socket" agent_ready
check "the new agent signs" client sign raw --key platform in1.txt after-kill.sig
assert "... the same bytes" cmp -s after-kill.sig ref.sig
check "agent stop" client agent stop
wait_agent
check "audit verify passes after the kill and restart" hs audit verify

# --- a dropped session: the agent logs in again, unwraps again -------------
# The agent's second C_Sign finds its session gone (a YubiHSM 2's idle
# timeout); no checkpoint is due before the stop, so the counts are exact.
HSMSIGN_SHIM_FAIL_FUNC=C_Sign HSMSIGN_SHIM_FAIL_AT=2 HSMSIGN_SHIM_FAIL_RV=CKR_SESSION_HANDLE_INVALID \
    start_agent -- --checkpoint-delay 600
check "sign before the session drops" client sign raw --key platform in1.txt drop1.sig
check "sign after the session dropped: recovered inside the agent" client sign raw --key platform in2.txt drop2.sig
check "openssl verifies the signature made after recovery" \
    openssl dgst -sha256 -verify "$PLATFORM_PUB" -signature drop2.sig in2.txt
check "status counts the recovery" client agent status --json
assert "... one recovery" python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["recoveries"] == 1' "$WORK/out"
check "agent stop" client agent stop
wait_agent
assert "recovery: a second login and a second unwrap" \
    test "$(counts "c['logins'], c['calls']['C_UnwrapKey']")" = "2 2"
assert "recovery: every session closed" sessions_all_closed

# --- another user -----------------------------------------------------------
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
    # A directory nobody may traverse (not list, not write), for the open case.
    SHARED=$(mktemp -d /tmp/hsmsign-agent-shared.XXXXXX)
    chmod 711 "$SHARED"
    mkdir -m 777 "$SHARED/nobody"
    echo data >"$SHARED/nobody/in.txt"
    chmod 644 "$SHARED/nobody/in.txt"
    as_nobody() {
        setpriv --reuid=nobody --regid=nogroup --clear-groups env -u HSMSIGN_PIN \
            XDG_CONFIG_HOME="$SHARED/nobody" HOME="$SHARED/nobody" HSMSIGN_KEYSTORE="$SHARED/nobody/keys" \
            HSMSIGN_AUDIT_LOG="$SHARED/nobody/audit" HSMSIGN_AGENT="$1" "$HSMSIGN" "${@:2}"
    }
    start_agent -- --checkpoint-delay 1
    expect_fail "nobody cannot reach the socket in its 0700 directory" nonzero "Permission denied" \
        as_nobody "$SOCK" agent status
    # Opened on purpose (a careless chmod): SO_PEERCRED still refuses.
    SOCK_SAVED=$SOCK
    SOCK=$SHARED/agent.sock
    kill -TERM "$AGENT_PID"; wait_agent
    start_agent -- --checkpoint-delay 1
    chmod 666 "$SOCK"
    expect_fail "nobody's agent status on an open socket: refused by the peer check" nonzero "dropped the connection" \
        as_nobody "$SOCK" agent status
    expect_fail "nobody's sign raw: refused" nonzero "dropped the connection" \
        as_nobody "$SOCK" sign raw --key platform "$SHARED/nobody/in.txt" "$SHARED/nobody/x.sig"
    expect_fail "nobody's agent stop: refused" nonzero "dropped the connection" as_nobody "$SOCK" agent stop
    assert "nobody got no signature" test ! -e "$SHARED/nobody/x.sig"
    assert "the refusal is logged with nobody's uid" grep -q "refused a connection from uid $(id -u nobody)" "$WORK/agent.log"
    check "the agent still serves its own user" client agent status
    kill -TERM "$AGENT_PID"; wait_agent
    rm -rf "$SHARED"
    SOCK=$SOCK_SAVED
else
    echo "# not root or no setpriv: the second-user checks are skipped"
fi

# --- idle timeout, signals ------------------------------------------------------
start_agent -- --idle-timeout 2
check "sign once before going idle" client sign raw --key ec in1.txt idle.sig
check "the idle agent exits by itself, status 0" wait_agent
assert "idle: the log says why" grep -q "exiting (idle timeout)" "$WORK/agent.log"
assert "idle: every session closed, C_Finalize called" sessions_all_closed
assert "idle: the socket is removed" test ! -e "$SOCK"
for sig in TERM INT; do
    start_agent --
    check "sign once before SIG$sig" client sign raw --key platform in2.txt "$sig.sig"
    kill "-$sig" "$AGENT_PID"
    check "SIG$sig: the agent exits 0" wait_agent
    assert "SIG$sig: every session closed, C_Finalize called" sessions_all_closed
    assert "SIG$sig: the socket is removed" test ! -e "$SOCK"
done

# --- daemon mode, as users run it -------------------------------------------------
# C_Finalize takes 2 s in the shim: a stop that answered before releasing
# would return before the counts file exists.
rm -f counts.json
HSMSIGN_MODULE=$P11SHIM HSMSIGN_SHIM_MODULE=$SOFTHSM_MODULE HSMSIGN_SHIM_COUNTS=$WORK/counts.json \
    HSMSIGN_SHIM_LATENCY=C_Finalize:2000 "$HSMSIGN" agent start --socket "$SOCK" >env.sh 2>"$WORK/err"
assert "agent start (daemon) prints the HSMSIGN_AGENT line" grep -q "^HSMSIGN_AGENT=$SOCK; export HSMSIGN_AGENT; HSMSIGN_AGENT_PID=" env.sh
(. ./env.sh && env -u HSMSIGN_PIN HSMSIGN_MODULE=/nonexistent/pkcs11.so "$HSMSIGN" sign raw --key platform in3.txt daemon.sig) &&
    pass "sign raw through the daemon" || fail "sign raw through the daemon"
check "openssl verifies it" openssl dgst -sha256 -verify "$PLATFORM_PUB" -signature daemon.sig in3.txt
check "agent stop (daemon)" client agent stop
assert "daemon stop: socket removed" test ! -e "$SOCK"
assert "daemon stop: every session closed before stop returned" sessions_all_closed
check "audit verify passes at the end" hs audit verify
finish
