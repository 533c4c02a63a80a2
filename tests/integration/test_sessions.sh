#!/bin/bash
# Sessions: every command, succeeding or failing, closes every session it
# opened and calls C_Finalize. Counted by the forwarding shim in front of
# the real SoftHSM module. Also: transparent recovery when the token drops
# sessions, and back-off on CKR_SESSION_COUNT.
. "$(dirname "$0")/lib.sh"
: "${P11SHIM:?P11SHIM must name the shim module}"
setup_token
check "generate a key" hs key generate app --algorithm rsa2048
echo "data" >in.txt
hs key show app --public-key >app.pub.pem

counts_field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))$1)" counts.json; }

# run_counted DESCRIPTION EXPECT(ok|fail) COMMAND...: runs through the shim
# and checks the session counts it wrote.
run_counted() {
    local what=$1 expect=$2; shift 2
    rm -f counts.json
    HSMSIGN_MODULE=$P11SHIM HSMSIGN_SHIM_MODULE=$SOFTHSM_MODULE HSMSIGN_SHIM_COUNTS=$WORK/counts.json \
        "$@" >"$WORK/out" 2>"$WORK/err"
    local rc=$?
    if [ "$expect" = ok ] && [ $rc -ne 0 ]; then fail "$what: exit $rc"; sed 's/^/    /' "$WORK/err"; return; fi
    if [ "$expect" = fail ] && [ $rc -eq 0 ]; then fail "$what: succeeded, expected failure"; return; fi
    if [ ! -f counts.json ]; then fail "$what: the shim wrote no counts (module never loaded?)"; return; fi
    local fin open leaked opened
    # One python start for the four fields, not four (a pyenv shim costs
    # about 0.3 s per start).
    read -r fin open leaked opened < <(python3 -c "import json,sys; c = json.load(open(sys.argv[1]));
print(c['finalized'], c['sessions_open'], c['sessions_closed_by_finalize'], c['sessions_opened'])" counts.json)
    if [ "$fin" = True ] && [ "$open" = 0 ] && [ "$leaked" = 0 ]; then
        pass "$what: $opened session(s) opened, all closed, C_Finalize called"
    else
        fail "$what: finalized=$fin open=$open closed_by_finalize=$leaked"
    fi
}

run_counted "token list" ok hs token list
run_counted "wrapkey show" ok hs wrapkey show
run_counted "key generate" ok hs key generate k2 --algorithm ec-p256
run_counted "key generate (RSA)" ok hs key generate k3 --algorithm rsa2048
run_counted "sign raw" ok hs sign raw --key app in.txt s1.sig
assert "one unwrap for one signature" test "$(counts_field '["calls"]["C_UnwrapKey"]')" -eq 1
assert "two C_Sign: the signature and the audit checkpoint" test "$(counts_field '["calls"]["C_Sign"]')" -eq 2
openssl genrsa -out imp.pem 2048 2>/dev/null
openssl req -new -x509 -key imp.pem -subj /CN=imp -days 10 -out imp.crt
run_counted "key import" ok hs key import imp --pk8 imp.pem --cert imp.crt

# Failing commands close their sessions too.
HSMSIGN_PIN=0000 run_counted "wrong PIN" fail hs sign raw --key app in.txt x.sig
run_counted "unknown key" fail hs sign raw --key nokey in.txt x.sig
run_counted "unknown token" fail hs --token nosuch sign raw --key app in.txt x.sig
cp keys/app.key app.good && sed -i 's/"origin": "generated"/"origin": "imported"/' keys/app.key
run_counted "corrupted key file" fail hs sign raw --key app in.txt x.sig
cp app.good keys/app.key
mv audit audit.real && mkdir audit && ln -s /dev/full audit/entries.jsonl
run_counted "audit log full" fail hs sign raw --key app in.txt x.sig
rm -rf audit && mv audit.real audit
assert "no output from the failed commands" test ! -e x.sig

# Faults injected into the real module's calls.
HSMSIGN_SHIM_FAIL_FUNC=C_Sign HSMSIGN_SHIM_FAIL_RV=CKR_DEVICE_REMOVED \
    run_counted "C_Sign fails with CKR_DEVICE_REMOVED" fail hs sign raw --key app in.txt x.sig
assert "the error names C_Sign and CKR_DEVICE_REMOVED" grep -q "C_Sign failed with CKR_DEVICE_REMOVED" err
assert "no signature written after the device failed" test ! -e x.sig
HSMSIGN_SHIM_FAIL_FUNC=C_UnwrapKey HSMSIGN_SHIM_FAIL_RV=CKR_DEVICE_ERROR \
    run_counted "C_UnwrapKey fails" fail hs sign raw --key app in.txt x.sig
assert "the error names C_UnwrapKey" grep -q "C_UnwrapKey failed with CKR_DEVICE_ERROR" err

# A dropped session (YubiHSM 2 idle timeout, re-plug) is recovered once:
# reopen, log in again, unwrap again, sign.
for rv in CKR_SESSION_HANDLE_INVALID CKR_USER_NOT_LOGGED_IN; do
    HSMSIGN_SHIM_FAIL_FUNC=C_Sign HSMSIGN_SHIM_FAIL_RV=$rv \
        run_counted "C_Sign answers $rv once: recovered" ok hs sign raw --key app in.txt "rec-$rv.sig"
    check "openssl verifies the signature made after recovery ($rv)" \
        openssl dgst -sha256 -verify app.pub.pem -signature "rec-$rv.sig" in.txt
    assert "recovery logged in again ($rv)" test "$(counts_field '["logins"]')" -eq 2
    assert "recovery unwrapped again ($rv)" test "$(counts_field '["calls"]["C_UnwrapKey"]')" -eq 2
done
HSMSIGN_SHIM_FAIL_FUNC=C_Sign HSMSIGN_SHIM_FAIL_RV=CKR_SESSION_HANDLE_INVALID HSMSIGN_SHIM_FAIL_MODE=always \
    run_counted "a session that keeps dropping: one retry, then a clear failure" fail hs sign raw --key app in.txt x.sig
assert "the error names CKR_SESSION_HANDLE_INVALID" grep -q "CKR_SESSION_HANDLE_INVALID" err

# CKR_SESSION_COUNT: back off and retry.
HSMSIGN_SHIM_FAIL_FUNC=C_OpenSession HSMSIGN_SHIM_FAIL_AT=2 HSMSIGN_SHIM_FAIL_RV=CKR_SESSION_COUNT \
    run_counted "C_OpenSession answers CKR_SESSION_COUNT once: retried" ok hs sign raw --key app in.txt count.sig
check "openssl verifies the signature made after the retry" \
    openssl dgst -sha256 -verify app.pub.pem -signature count.sig in.txt
HSMSIGN_SHIM_MAX_SESSIONS=2 run_counted "a token allowing two sessions is enough" ok \
    hs sign raw --key app in.txt two.sig
HSMSIGN_SHIM_MAX_SESSIONS=1 run_counted "a token allowing one session: clear failure" fail \
    hs sign raw --key app in.txt x.sig
assert "the error names CKR_SESSION_COUNT" grep -q "C_OpenSession failed with CKR_SESSION_COUNT" err
finish
