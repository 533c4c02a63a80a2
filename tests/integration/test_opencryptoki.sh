#!/bin/bash
# opencryptoki's soft token (Debian opencryptoki 3.8.1) through its real
# daemon (issue 14), and hsmsign's clean refusal of it.
#
# opencryptoki's paths are compiled in, none is taken from the environment:
# pkcsslotd reads /etc/opencryptoki/opencryptoki.conf and listens on
# /var/run/pkcsslotd.socket (where libopencryptoki connects), the soft
# token keeps its objects in /var/lib/opencryptoki/swtok and its locks in
# /var/lock/opencryptoki, and they share memory through /dev/shm and SysV
# IPC. So the test re-runs itself in a private mount and IPC namespace
# (`unshare --mount --ipc`, root only) where its own temporary directories
# are bind-mounted over those paths: the machine's /etc, /var, /run and
# shared memory are never written, and the daemon is stopped by PID.
# Without root (or unshare) it is skipped, saying why (docs/tokens.md).
#
# What it shows: hsmsign picks the resident profile (no AES key wrap with
# padding), and refuses everything that signs, naming the mechanisms the
# token lacks: the soft token has no EC at all, so it can hold no audit key
# (Ed25519 or P-256), and hsmsign signs nothing without an audit log signed
# by a key in the token. The token itself signs RSA-2048 (pkcs11-tool,
# verified by openssl): RSA is not the problem.
OCK_LIB=/usr/lib/x86_64-linux-gnu/opencryptoki/libopencryptoki.so.0
if [ -z "${HSMSIGN_OCK_NS:-}" ]; then
    missing=""
    for f in /usr/sbin/pkcsslotd "$OCK_LIB" /etc/opencryptoki /var/lib/opencryptoki; do
        [ -e "$f" ] || missing="$missing $f"
    done
    command -v pkcs11-tool >/dev/null || missing="$missing pkcs11-tool"
    if [ -n "$missing" ]; then
        echo "SKIP: not installed:$missing (scripts/install-deps installs opencryptoki)"
        exit 77
    fi
    if ! unshare --mount --ipc --propagation private true 2>/dev/null; then
        echo "SKIP: cannot make a private mount namespace (needs root): opencryptoki's daemon" \
            "would have to use the machine's /etc/opencryptoki, /var/run and /var/lib"
        exit 77
    fi
    HSMSIGN_OCK_NS=1 exec unshare --mount --ipc --propagation private bash "$0" "$@"
fi

. "$(dirname "$0")/lib.sh"
# opencryptoki's soft token takes PINs of 4 to 8 characters.
export HSMSIGN_PIN=47114711 HSMSIGN_SO_PIN=87654321

# --- the daemon, in this namespace only, stopped by PID ---------------------
O=$WORK/ock
mkdir -p "$O/etc" "$O/lib/swtok/TOK_OBJ" "$O/run/lock/opencryptoki/swtok"
cat >"$O/etc/opencryptoki.conf" <<'CONF'
version opencryptoki-3.1
slot 3
{
stdll = libpkcs11_sw.so
}
CONF
# /var/run and /var/lock are links into /run: one bind covers socket,
# pid file and locks.
mount --bind "$O/run" /run && mount --bind "$O/etc" /etc/opencryptoki &&
    mount --bind "$O/lib" /var/lib/opencryptoki && mount -t tmpfs tmpfs /dev/shm ||
    { echo "Bail out! cannot bind the opencryptoki paths in the namespace"; exit 1; }
DAEMON=""
stop_daemon() {
    if [ -n "$DAEMON" ]; then
        kill "$DAEMON" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$DAEMON" 2>/dev/null || break; sleep 0.05; done
        kill -9 "$DAEMON" 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap stop_daemon EXIT
/usr/sbin/pkcsslotd || { echo "Bail out! pkcsslotd did not start"; exit 1; }
# It forks into the background and writes its PID; wait on the socket.
for _ in $(seq 600); do
    [ -s /run/pkcsslotd.pid ] && [ -S /run/pkcsslotd.socket ] && break
    sleep 0.05
done
DAEMON=$(cat /run/pkcsslotd.pid 2>/dev/null)
[ -S /run/pkcsslotd.socket ] && kill -0 "$DAEMON" 2>/dev/null ||
    { echo "Bail out! pkcsslotd did not come up"; exit 1; }
pass "pkcsslotd runs in a private namespace (PID $DAEMON)"

p11() { pkcs11-tool --module "$OCK_LIB" --slot 3 "$@"; }
# The default SO PIN of a new soft token is 87654321 (opencryptoki's docs);
# PINs come from this test's environment.
p11 --init-token --so-pin env:HSMSIGN_SO_PIN --label hsmsign-ock >/dev/null &&
    p11 --login --login-type so --so-pin env:HSMSIGN_SO_PIN --init-pin --pin env:HSMSIGN_PIN \
        >/dev/null || { echo "Bail out! cannot initialize the soft token"; exit 1; }

export HSMSIGN_MODULE=$OCK_LIB HSMSIGN_TOKEN=hsmsign-ock

# --- what hsmsign makes of it --------------------------------------------------
check "token info" hs token info
sed 's/^/    /' "$WORK/out"
assert "resident is chosen automatically: no AES key wrap with padding" \
    grep -q "profile: *resident (token 'hsmsign-ock' (IBM Corp. IBM SoftTok) has no AES key wrap" \
    "$WORK/out"
assert "token info says no audit key is possible, naming the four missing mechanisms" \
    grep -q "audit key:  impossible: token 'hsmsign-ock' can make no audit key: it lacks CKM_EC_EDWARDS_KEY_PAIR_GEN, CKM_EDDSA, CKM_EC_KEY_PAIR_GEN, CKM_ECDSA" \
    "$WORK/out"
check "token info --json" hs --json token info
assert "... RSA up to 4096 bits, no EC, no AES key wrap, audit key impossible" python3 -c "
import json; o = json.load(open('$WORK/out')); m = {x['mechanism']: x for x in o['mechanisms']}
assert o['profile'] == 'resident' and not o['wrap_key'], o
assert m['CKM_RSA_PKCS_KEY_PAIR_GEN']['max_key_size'] == 4096 and 'CKM_RSA_PKCS' in m, m
assert not any('EC' in k or 'EDDSA' in k or 'WRAP' in k for k in m), m
assert 'CKM_ECDSA' in o['audit_key_impossible'], o"
expect_fail "wrapkey create is refused: the resident profile has no wrap key" 2 \
    "resident profile .*: it has no wrap key and no shares" hs wrapkey create
expect_fail "audit init is refused, naming the missing mechanisms" 4 \
    "can make no audit key: it lacks CKM_EC_EDWARDS_KEY_PAIR_GEN, CKM_EDDSA, CKM_EC_KEY_PAIR_GEN, CKM_ECDSA" \
    hs audit init
expect_fail "key generate rsa2048 is refused the same way (no signature without an audit log)" 7 \
    "audit log .*can make no audit key: it lacks .*CKM_ECDSA.*hsmsign cannot sign with this token" \
    hs key generate r2048 --algorithm rsa2048
assert "... and no key file was written" test ! -e keys/r2048.key
p11 --login --pin env:HSMSIGN_PIN --list-objects >objects.txt 2>&1
assert "... and nothing was left on the token" test "$(grep -c 'Object;' objects.txt)" -eq 0
echo data >data.bin
expect_fail "sign raw is refused too" 7 "can make no audit key" hs sign raw --key r2048 data.bin data.sig

# --- the token itself signs RSA-2048: RSA is not what is missing -------------------
check "pkcs11-tool generates RSA-2048 in the soft token" \
    p11 --login --pin env:HSMSIGN_PIN --keypairgen --key-type rsa:2048 --label ock-rsa --id 01
# 3.8.1's soft token has no CKM_SHA256_RSA_PKCS: CKM_RSA_PKCS over the
# SHA-256 DigestInfo, which is the same PKCS#1 v1.5 signature.
{ printf '\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20'
  openssl dgst -sha256 -binary data.bin; } >digestinfo.bin
check "... and signs the SHA-256 DigestInfo with CKM_RSA_PKCS" \
    p11 --login --pin env:HSMSIGN_PIN --sign --mechanism RSA-PKCS --id 01 \
        --input-file digestinfo.bin --output-file tok.sig
check "... its public key" p11 --read-object --type pubkey --id 01 --output-file pub.der
check "openssl verifies the token's signature" \
    openssl dgst -sha256 -verify pub.der -keyform DER -signature tok.sig data.bin

stop_daemon_now() { kill "$DAEMON" && for _ in $(seq 200); do kill -0 "$DAEMON" 2>/dev/null || return 0; sleep 0.05; done; return 1; }
check "pkcsslotd stops on SIGTERM (by PID)" stop_daemon_now
DAEMON=""
finish
