# Shared helpers for the integration tests: each test gets its own SoftHSM
# token in a temporary directory, its own key store and audit log, and
# counts its checks. Source it, call `setup_token`, run checks, end with
# `finish`.
set -u

: "${HSMSIGN:?HSMSIGN must name the hsmsign binary}"
SOFTHSM_MODULE=${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
PASSED=0
FAILED=0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hsmsign-it.XXXXXX")
trap "rm -rf \"$WORK\"" EXIT
cd "$WORK" || exit 1

# HSMSIGN_WRAPPER (make check-valgrind: tests/sanitizers/valgrind-hsmsign):
# every hsmsign process of the test runs under it. $HSMSIGN becomes a script
# that execs the wrapper, so `$!` and kill -9 still reach the process itself.
# The wrapper leaves one log per process in $HSMSIGN_WRAPPER_LOGS; finish()
# fails the test if one reports an error (`$HSMSIGN_WRAPPER --check`).
# HSMSIGN_BINARY is always the binary itself (e.g. for its checksum).
export HSMSIGN_BINARY=$HSMSIGN
if [ -n "${HSMSIGN_WRAPPER:-}" ]; then
    export HSMSIGN_WRAPPER_LOGS=$WORK/.wrapper-logs
    mkdir -p "$HSMSIGN_WRAPPER_LOGS"
    printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$HSMSIGN_WRAPPER" "$HSMSIGN" >"$WORK/.hsmsign-wrapped"
    chmod +x "$WORK/.hsmsign-wrapped"
    export HSMSIGN=$WORK/.hsmsign-wrapped
fi

# Test PINs travel only through the environment, never argv.
export HSMSIGN_PIN=4711-user HSMSIGN_SO_PIN=4711-security-officer
export HSMSIGN_KEYSTORE=$WORK/keys HSMSIGN_AUDIT_LOG=$WORK/audit
unset HSMSIGN_MODULE HSMSIGN_TOKEN HSMSIGN_PIN_SOURCE HSMSIGN_CONFIG HSMSIGN_PROFILE
# The tester's own ~/.config/hsmsign/config must not reach the tests.
export XDG_CONFIG_HOME=$WORK/.config
# The signature cache (on by default, docs/cache.md) would turn a test's
# second signature of the same bytes into a reuse without C_Sign, and
# tests count HSM operations: off unless a test turns it on
# (test_signature_cache.sh). Its default place is kept in $WORK anyway.
export HSMSIGN_SIGNATURE_CACHE=off XDG_CACHE_HOME=$WORK/.cache

pass() { PASSED=$((PASSED + 1)); echo "ok - $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $*"; }

# check DESCRIPTION COMMAND...: the command must succeed.
check() {
    local what=$1; shift
    if "$@" >"$WORK/out" 2>"$WORK/err"; then pass "$what"; else
        fail "$what (exit $?)"; sed 's/^/    /' "$WORK/err" | head -20; fi
}

# expect_fail DESCRIPTION EXIT_CODE PATTERN COMMAND...: the command must
# exit with EXIT_CODE ("nonzero" for any) and say PATTERN (grep -E) on stderr.
expect_fail() {
    local what=$1 want=$2 pattern=$3; shift 3
    "$@" >"$WORK/out" 2>"$WORK/err"
    local rc=$?
    if [ "$rc" -eq 0 ]; then fail "$what: succeeded, expected failure"; return; fi
    if [ "$want" != nonzero ] && [ "$rc" -ne "$want" ]; then
        fail "$what: exit $rc, expected $want"; sed 's/^/    /' "$WORK/err"; return; fi
    if ! grep -qE -- "$pattern" "$WORK/err"; then
        fail "$what: message does not match /$pattern/:"; sed 's/^/    /' "$WORK/err"; return; fi
    pass "$what"
}

# assert DESCRIPTION TEST-EXPRESSION...
assert() {
    local what=$1; shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

hs() { "$HSMSIGN" "$@"; }

# A fresh token with a wrap key. $1: directory name (default tok), $2 label.
setup_token() {
    local dir=${1:-tok} label=${2:-test}
    "$HSMSIGN" -q token init --dir "$WORK/$dir" --label "$label" >/dev/null || {
        echo "Bail out! cannot create a SoftHSM token"; exit 1; }
    export SOFTHSM2_CONF=$WORK/$dir/softhsm2.conf
    "$HSMSIGN" -q wrapkey create >/dev/null || { echo "Bail out! cannot create the wrap key"; exit 1; }
}

# The public key of a key, as PEM, for openssl.
pubkey() { "$HSMSIGN" key show "$1" --public-key >"$WORK/$1.pub.pem" && echo "$WORK/$1.pub.pem"; }

# Objects on the token, as pkcs11-tool (OpenSC) lists them after logging in.
token_objects() {
    pkcs11-tool --module "$SOFTHSM_MODULE" --login --pin env:HSMSIGN_PIN --list-objects 2>/dev/null
}

finish() {
    if [ -n "${HSMSIGN_WRAPPER:-}" ]; then
        if "$HSMSIGN_WRAPPER" --check "$HSMSIGN_WRAPPER_LOGS"; then
            pass "no errors reported by $(basename "$HSMSIGN_WRAPPER")"
        else fail "errors reported by $(basename "$HSMSIGN_WRAPPER") (above)"; fi
    fi
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}

# Labels of the token's objects other than the two long-lived ones the
# design allows (the wrap key and the audit key pair), one per line.
token_other_objects() {
    token_objects | awk '/Object;/ { obj = $0 } /label:/ { sub(/^ *label: */, ""); if ($0 != "hsmsign-wrap" && $0 != "hsmsign-audit") print obj " " $0 }'
}

# One SoftHSM token directory, with its config exported, for every token a
# test initializes itself (ceremonies: several tokens in one module).
shared_softhsm() {
    mkdir -p "$WORK/hsm/tokens"
    printf 'directories.tokendir = %s/hsm/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
        "$WORK" >"$WORK/hsm/softhsm2.conf"
    export SOFTHSM2_CONF=$WORK/hsm/softhsm2.conf
}

# ceremony_through_shim: the setting of the ceremony fault tests
# (test_ceremony_abort.sh, test_ceremony_kill.sh): no PINs in the
# environment, the shim built, a SoftHSM token directory of the test's own,
# $CUR the SO PIN of tokens made by `fresh LABEL` (user PIN 87654321).
ceremony_through_shim() {
    unset HSMSIGN_PIN HSMSIGN_SO_PIN
    [ -n "${P11SHIM:-}" ] || { echo "SKIP: P11SHIM (tests/p11shim) not built"; exit 77; }
    shared_softhsm
    run=0
    export CUR=12345678
}
fresh() { softhsm2-util --init-token --free --label "$1" --so-pin "$CUR" --pin 87654321 >/dev/null; }

# ceremony_config FILE NAME PRIMARY BACKUP THRESHOLD HOLDER...: a
# provisioning config (docs/ceremony.md) whose holders and roles (admin,
# operator, auditor) have age identities in ids/NAME.txt, made here when
# missing. CEREMONY_EXTRA, if set, is more JSON members, e.g.
# '"audit-key-algorithm": "ecdsa-p256"'.
ceremony_config() {
    local file=$1 name=$2 primary=$3 backup=$4 k=$5 h
    shift 5
    mkdir -p ids
    for h in "$@" admin operator auditor; do
        [ -f "ids/$h.txt" ] || age-keygen -o "ids/$h.txt" 2>/dev/null
    done
    python3 - "$file" "$name" "$primary" "$backup" "$k" "${CEREMONY_EXTRA:-}" "$@" <<'PY'
import json, subprocess, sys
file, name, primary, backup, k, extra = sys.argv[1:7]
rcpt = lambda h: subprocess.run(["age-keygen", "-y", f"ids/{h}.txt"], check=True,
                                capture_output=True, text=True).stdout.strip()
cfg = {"version": 1, "name": name, "tokens": {"primary": primary, "backup": backup},
       "threshold": int(k),
       "holders": [{"name": h, "recipient": rcpt(h)} for h in sys.argv[7:]],
       "roles": {r: [rcpt(r)] for r in ("admin", "operator", "auditor")}}
if extra:
    cfg.update(json.loads("{" + extra + "}"))
json.dump(cfg, open(file, "w"), indent=2)
PY
}

# apk_key NAME rsa|ec CN: a key pair made by openssl (NAME.pem, the
# PKCS#8 NAME.pk8 apksig/apksigner read, a self-signed NAME.crt with
# subject CN) and imported into the token as NAME.
apk_key() {
    if [ "$2" = ec ]; then openssl ecparam -name prime256v1 -genkey -noout -out "$1.pem"
    else openssl genrsa -out "$1.pem" 2048 2>/dev/null; fi
    openssl pkcs8 -topk8 -nocrypt -in "$1.pem" -outform DER -out "$1.pk8"
    openssl req -new -x509 -sha256 -key "$1.pem" -subj "/CN=$3" -days 3650 -out "$1.crt"
    "$HSMSIGN" -q key import "$1" --pk8 "$1.pk8" --cert "$1.crt" >/dev/null 2>&1
}

# aapt_apk OUT MIN_SDK [PACKAGE]: a minimal APK made by aapt (manifest in
# mMIN_SDK/), targetSdk 33.
aapt_apk() {
    mkdir -p "m$2"
    cat >"m$2/AndroidManifest.xml" <<XML
<?xml version="1.0" encoding="utf-8"?>
<manifest xmlns:android="http://schemas.android.com/apk/res/android" package="${3:-org.hsmsign.t$2}">
  <uses-sdk android:minSdkVersion="$2" android:targetSdkVersion="33"/>
  <application android:label="t"/>
</manifest>
XML
    aapt package -M "m$2/AndroidManifest.xml" -I /usr/share/android-framework-res/framework-res.apk \
        -F "$1"
}
