#!/bin/bash
# Many processes, one token (issue 11): release engineers sign in parallel.
# SoftHSM rewrites a token's token.object on every C_Login and its stdio
# buffer reaches the file after its own fcntl unlock, so another process's
# C_Initialize / C_GetTokenInfo / C_Login could read a half-written file
# ("no initialized token found", CKR_GENERAL_ERROR). hsmsign serializes
# those calls with a per-token-directory flock and retries what is still
# transient (src/lib/p11/token_lock.h).
#
# The main check: 4 parallel loops x 250 `sign raw` on one token and one
# audit log: no failure, 1000 distinct signatures that openssl verifies,
# each with its sign entry in the log, and `audit verify` passes. Then the
# lock and the retries alone, deterministically: a held lock is waited for
# (and the wait is bounded), transient faults are retried, a wrong PIN never
# is, and a missing SOFTHSM2_CONF is hinted at.
. "$(dirname "$0")/lib.sh"
: "${P11SHIM:?P11SHIM must name the shim module}"
LOOPS=${PARALLEL_LOOPS:-4}
# Under `make check-asan` (HSMSIGN_SANITIZED) each process starts several
# times slower: 4 x 10 there (every code path of the loops, the lock and
# the retries still runs sanitized); the full 1000 run in `make check`.
if [ -n "${HSMSIGN_SANITIZED:-}" ]; then PER_LOOP=${PARALLEL_SIGNS:-10}; else
    PER_LOOP=${PARALLEL_SIGNS:-250}; fi
TOTAL=$((LOOPS * PER_LOOP))

# The first command (wrapkey create, in setup_token) creates the audit log.
setup_token
openssl genrsa -out rsa.pem 2048 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in rsa.pem -outform DER -out rsa.pk8
openssl req -new -x509 -sha256 -key rsa.pem -days 365 -subj "/CN=parallel" -out rsa.crt
openssl pkey -in rsa.pem -pubout -out rsa.pub.pem
check "import the signing key" hs key import rel --pk8 rsa.pk8 --cert rsa.crt
TOKENDIR=$WORK/tok/tokens

# --- 4 loops x 250 signatures at once ------------------------------------
# RSA PKCS#1 v1.5 is deterministic: each signature covers its own file, so
# 1000 distinct signatures prove 1000 distinct signings.
mkdir in sig
for l in $(seq 1 "$LOOPS"); do
    for i in $(seq 1 "$PER_LOOP"); do echo "loop $l file $i" >"in/$l.$i"; done
done
before=$(wc -l <audit/entries.jsonl)
# Each failure leaves its command's words in fail.L (exit status and stderr).
loop() {
    local l=$1 i rc
    for i in $(seq 1 "$PER_LOOP"); do
        "$HSMSIGN" -q sign raw --key rel "in/$l.$i" "sig/$l.$i" 2>"err.$l"
        rc=$?
        [ $rc -eq 0 ] || { echo "exit $rc: $(head -c 400 "err.$l")" >>"fail.$l"; }
    done
}
start=$SECONDS
for l in $(seq 1 "$LOOPS"); do loop "$l" & done
wait
echo "# $LOOPS loops x $PER_LOOP signatures in $((SECONDS - start)) s"
cat fail.* >failures 2>/dev/null
nfail=$(wc -l <failures)
assert "$TOTAL parallel signings: no failure (got $nfail)" test "$nfail" -eq 0
[ "$nfail" -eq 0 ] || sed 's/^[^:]*: //' failures | sort | uniq -c | sort -rn | head -5 | sed 's/^/    /'
nsig=$(find sig -type f | wc -l)
assert "$TOTAL signature files ($nsig)" test "$nsig" -eq "$TOTAL"
ndistinct=$(for f in sig/*; do sha256sum <"$f"; done | sort -u | wc -l)
assert "$TOTAL distinct signatures ($ndistinct)" test "$ndistinct" -eq "$TOTAL"
bad=0
for f in sig/*; do
    openssl dgst -sha256 -verify rsa.pub.pem -signature "$f" "in/${f#sig/}" >/dev/null 2>&1 || bad=$((bad + 1))
done
assert "openssl verifies every signature ($bad bad)" test "$bad" -eq 0
tail -n +$((before + 1)) audit/entries.jsonl >new.jsonl
nsign=$(grep -c '"op":"sign"' new.jsonl)
assert "$TOTAL sign entries in the audit log ($nsign)" test "$nsign" -eq "$TOTAL"
missing=$(python3 - new.jsonl sig <<'PY'
import hashlib, json, os, sys
logged = {json.loads(l).get("sig_sha256") for l in open(sys.argv[1])}
print(sum(hashlib.sha256(open(os.path.join(sys.argv[2], f), "rb").read()).hexdigest() not in logged
          for f in os.listdir(sys.argv[2])))
PY
)
assert "every signature has its sign entry ($missing without)" test "$missing" -eq 0
check "audit verify passes" hs audit verify

# --- the lock alone --------------------------------------------------------
assert "the lock file is in SoftHSM's token directory" test -f "$TOKENDIR/.hsmsign.lock"
# Another holder (flock(1), then sleep, so killing it frees the lock): a
# signing command waits for it and gives up after HSMSIGN_TOKEN_LOCK_TIMEOUT.
(exec 9<"$TOKENDIR/.hsmsign.lock" && flock 9 && exec sleep 300) &
holder=$!
while flock -n "$TOKENDIR/.hsmsign.lock" true; do  # until the holder has it
    kill -0 "$holder" 2>/dev/null || break
    sleep 0.05
done
HSMSIGN_TOKEN_LOCK_TIMEOUT=1 expect_fail "a held token lock is waited for, then a clear failure" 4 \
    "token lock .*\.hsmsign\.lock was held by another process for more than 1 s" \
    hs -q sign raw --key rel in/1.1 held.sig
assert "no signature while the lock was held" test ! -e held.sig
# Released (the holder killed by its pid): the next command goes through.
kill "$holder"; wait "$holder" 2>/dev/null
check "the lock released, signing works again" hs -q sign raw --key rel in/1.1 released.sig

# --- retries of transient errors, through the forwarding shim --------------
shim() {
    HSMSIGN_MODULE=$P11SHIM HSMSIGN_SHIM_MODULE=$SOFTHSM_MODULE HSMSIGN_SHIM_COUNTS=$WORK/counts.json "$@"
}
calls() { python3 -c "import json,sys; print(json.load(open('counts.json'))['calls'].get(sys.argv[1], 0))" "$1"; }
for f in C_Initialize C_GetTokenInfo C_OpenSession C_Login; do
    for rv in CKR_GENERAL_ERROR CKR_DEVICE_ERROR; do
        HSMSIGN_SHIM_FAIL_FUNC=$f HSMSIGN_SHIM_FAIL_RV=$rv \
            check "$f answers $rv once: retried, signed" shim hs -q sign raw --key rel in/1.2 "retry-$f-$rv.sig"
    done
done
check "openssl verifies a signature made after a retry" \
    openssl dgst -sha256 -verify rsa.pub.pem -signature retry-C_Login-CKR_GENERAL_ERROR.sig in/1.2
HSMSIGN_P11_RETRY_TIMEOUT=1 HSMSIGN_SHIM_FAIL_FUNC=C_GetTokenInfo HSMSIGN_SHIM_FAIL_RV=CKR_GENERAL_ERROR \
    HSMSIGN_SHIM_FAIL_MODE=always expect_fail "a C_GetTokenInfo that keeps failing: bounded, then a clear failure" 4 \
    "C_GetTokenInfo failed with CKR_GENERAL_ERROR .*gave up after [0-9]+ attempts over 1\.0 s" \
    shim hs -q sign raw --key rel in/1.2 x.sig
HSMSIGN_P11_RETRY_TIMEOUT=1 HSMSIGN_SHIM_FAIL_FUNC=C_Login HSMSIGN_SHIM_FAIL_RV=CKR_DEVICE_ERROR \
    HSMSIGN_SHIM_FAIL_MODE=always expect_fail "a C_Login that keeps failing: the message names the token" 4 \
    "token 'test': C_Login failed with CKR_DEVICE_ERROR .*gave up after [0-9]+ attempts" \
    shim hs -q sign raw --key rel in/1.2 x.sig
HSMSIGN_SHIM_FAIL_FUNC=C_Login HSMSIGN_SHIM_FAIL_RV=CKR_PIN_INCORRECT \
    expect_fail "a wrong PIN is not retried" 4 "C_Login failed with CKR_PIN_INCORRECT" \
    shim hs -q sign raw --key rel in/1.2 x.sig
assert "C_Login was called once (a retry would burn a PIN try)" test "$(calls C_Login)" -eq 1
assert "... and the message does not speak of attempts" eval '! grep -q attempts "$WORK/err"'

# --- SoftHSM read a token directory it could not load ----------------------
# A token directory whose token.object is empty, as a reader sees it
# mid-rewrite: the module loads one token of two, a token not found is
# retried (it may be that one), and the message says why.
mkdir "$TOKENDIR/half-written" && : >"$TOKENDIR/half-written/token.object"
HSMSIGN_P11_RETRY_TIMEOUT=1 expect_fail "a token directory SoftHSM cannot read: retried, then explained" 8 \
    "holds 2 token\(s\) but the module read only 1.*gave up after [0-9]+ attempts" \
    hs -q --token other sign raw --key rel in/1.2 x.sig
rm -r "$TOKENDIR/half-written"

# --- SOFTHSM2_CONF not exported ------------------------------------------
expect_fail "no SOFTHSM2_CONF: the message says which configuration SoftHSM read" 8 \
    "tokens present: .*SOFTHSM2_CONF is not set, so SoftHSM read .*softhsm2\.conf" \
    env -u SOFTHSM2_CONF HOME="$WORK" "$HSMSIGN" -q --token no-such-token-here sign raw --key rel in/1.2 x.sig
finish
