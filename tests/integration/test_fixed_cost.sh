#!/bin/bash
# The fixed cost of a signing command (issue 16), by what it does rather
# than by time:
#   - libgit2's initialisation no longer reads the CA bundle (git.c
#     interposes mbedTLS's CA loaders during git_libgit2_init); the audit
#     log is still committed, and no network connection is made;
#   - the PKCS#11 calls a `sign raw` makes, counted by the shim: the wrap
#     key's attributes in batches, no repeated C_GetTokenInfo or
#     C_GetMechanismInfo;
#   - a token that refuses the batched C_GetAttributeValue (injected by the
#     shim) is read one attribute at a time, and the command still signs.
. "$(dirname "$0")/lib.sh"
: "${P11SHIM:?P11SHIM must name the shim module}"
setup_token
check "generate a key" hs key generate app --algorithm ec-p256
echo "data" >in.txt
hs key show app --public-key >app.pub.pem

commits() { git -C "$HSMSIGN_AUDIT_LOG" rev-list --count HEAD 2>/dev/null || echo 0; }

# --- the CA bundle and the network --------------------------------------------
if command -v strace >/dev/null; then
    before=$(commits)
    # LeakSanitizer cannot run under ptrace (see test_durability.sh).
    ASAN_OPTIONS=${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0 strace -f -qq -o trace.txt \
        -e trace=open,openat,openat2,connect "$HSMSIGN" sign raw --key app in.txt a.sig \
        >/dev/null 2>err.txt
    rc=$?
    assert "sign raw under strace succeeds" test $rc -eq 0
    check "... openssl verifies the signature" \
        openssl dgst -sha256 -verify app.pub.pem -signature a.sig in.txt
    assert "... and the audit log is committed (one commit more)" test "$(commits)" -eq $((before + 1))
    if grep -E '"(/etc/ssl/certs|/usr/lib/ssl/certs|[^"]*ca-certificates\.crt)' trace.txt >ca.txt; then
        fail "libgit2's initialisation read the CA bundle:"
        sed 's/^/    /' ca.txt | head -5
    else
        pass "no CA bundle or certificate directory is opened"
    fi
    if grep -E 'connect\(.*AF_INET' trace.txt >net.txt; then
        fail "a network connection was attempted:"
        sed 's/^/    /' net.txt | head -5
    else
        pass "no network connection is attempted"
    fi
else
    echo "# strace is not installed: CA bundle checks skipped (scripts/install-deps installs it)"
fi

# --- PKCS#11 calls of one sign raw ----------------------------------------------
# counted NAME FIELD...: runs sign raw through the shim (extra environment
# before the command), prints the fields of its counts file.
counted() {
    rm -f counts.json b.sig
    env HSMSIGN_MODULE="$P11SHIM" HSMSIGN_SHIM_MODULE="$SOFTHSM_MODULE" \
        HSMSIGN_SHIM_COUNTS="$WORK/counts.json" "$@" \
        "$HSMSIGN" sign raw --key app in.txt b.sig >/dev/null 2>err.txt
}
field() { python3 -c "import json,sys; c = json.load(open('counts.json')); print(' '.join(str(eval(a, {}, c)) for a in sys.argv[1:]))" "$@"; }

counted
assert "sign raw through the shim succeeds" test $? -eq 0
read -r attrs tinfo minfo slots total < <(field "calls['C_GetAttributeValue']" \
    "calls['C_GetTokenInfo']" "calls['C_GetMechanismInfo']" "calls['C_GetSlotList']" calls_total)
echo "# sign raw: $total PKCS#11 calls, $attrs C_GetAttributeValue, $tinfo C_GetTokenInfo, $minfo C_GetMechanismInfo"
# Before the batching: 27 C_GetAttributeValue (the wrap key's nine flags one
# call each, its templates and mechanisms read twice), 3 C_GetTokenInfo for
# a module with two slots, 3 C_GetMechanismInfo for two mechanisms.
assert "C_GetAttributeValue: at most 13 (was 27)" test "$attrs" -le 13
assert "C_GetTokenInfo: once per slot listed, no re-read (was 3)" test "$tinfo" -le 2
assert "C_GetMechanismInfo: once per mechanism (was 3 for 2)" test "$minfo" -le 2

# --- a token that refuses the batch ------------------------------------------------
# The fifth C_GetAttributeValue is the custody batch (after the wrap key's
# CKA_ALLOWED_MECHANISMS size and value, its CKA_TRUSTED + CKA_CHECK_VALUE
# batch and the check value). CKR_FUNCTION_FAILED for it: the 12 attributes
# are read one per call, the same verdict, a signature. (Before the
# batching the fifth call was the check value's, and the command failed.)
counted HSMSIGN_SHIM_FAIL_FUNC=C_GetAttributeValue HSMSIGN_SHIM_FAIL_AT=5 \
    HSMSIGN_SHIM_FAIL_RV=CKR_FUNCTION_FAILED
rc=$?
if [ $rc -eq 0 ]; then pass "sign raw signs when the custody batch fails"
else fail "sign raw fails when the custody batch fails: exit $rc"; sed 's/^/    /' err.txt; fi
check "... openssl verifies the signature" \
    openssl dgst -sha256 -verify app.pub.pem -signature b.sig in.txt
read -r fattrs faults < <(field "calls['C_GetAttributeValue']" faults_injected)
assert "... one fault injected, then the 12 attributes one at a time ($fattrs calls, was $attrs)" \
    test "$faults" -eq 1 -a "$fattrs" -eq $((attrs + 12))

finish
