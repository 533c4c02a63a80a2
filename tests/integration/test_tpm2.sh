#!/bin/bash
# tpm2-pkcs11 on a software TPM (issue 14): the resident profile on a token
# with no AES key wrap at all. The test starts, in its temporary directory
# and bound to 127.0.0.1 only: swtpm (TCP, ports chosen free), a private
# D-Bus session daemon, tpm2-abrmd on that bus (the plain swtpm: TCTI runs
# out of object contexts), and a tpm2-pkcs11 store made with tpm2_ptool;
# each is waited for by condition and stopped by PID. Then: the resident
# profile is chosen automatically, RSA-2048/3072 and EC P-256 keys are
# generated in the TPM, signatures verify with openssl, an APK with
# apksigner, AVB with openssl (and avbtool when it is on PATH), the audit
# log with its P-256 audit key; RSA-4096 and importing a .pk8 are refused
# saying why; the attacker with the user PIN gets no key out.
. "$(dirname "$0")/lib.sh"
: "${P11_ATTACK:?P11_ATTACK must name the p11_attack program}"

TPM2_MODULE=${TPM2_MODULE:-/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so}
TABRMD_TCTI=/usr/lib/x86_64-linux-gnu/libtss2-tcti-tabrmd.so.0
FW=/usr/share/android-framework-res/framework-res.apk
missing=""
for c in swtpm tpm2-abrmd tpm2_ptool dbus-daemon dbus-send pkcs11-tool; do
    command -v "$c" >/dev/null || missing="$missing $c"
done
for f in "$TPM2_MODULE" "$TABRMD_TCTI"; do [ -e "$f" ] || missing="$missing $f"; done
if [ -n "$missing" ]; then
    # scripts/install-deps installs them (swtpm swtpm-tools tpm2-abrmd
    # libtss2-tcti-tabrmd0 libtpm2-pkcs11-1 libtpm2-pkcs11-tools dbus).
    echo "SKIP: not installed:$missing (scripts/install-deps installs them)"
    exit 77
fi

# --- the daemons, stopped by PID whatever happens -------------------------------
PIDS=()
stop_all() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[i]}" 2>/dev/null; done
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        for _ in $(seq 100); do kill -0 "${PIDS[i]}" 2>/dev/null || break; sleep 0.05; done
        kill -9 "${PIDS[i]}" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap stop_all EXIT
# wait_for WHAT PID COMMAND...: polls COMMAND until it succeeds (up to
# 30 s), failing at once if the daemon PID has exited.
wait_for() {
    local what=$1 pid=$2; shift 2
    for _ in $(seq 600); do
        "$@" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || { echo "Bail out! $what exited"; sed 's/^/    /' "$WORK"/tpm/*.log; exit 1; }
        sleep 0.05
    done
    echo "Bail out! $what did not come up in 30 s"; exit 1
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Two consecutive free ports (server, control): bound and released here;
# swtpm failing to bind one anyway is retried with others.
free_ports() {
    python3 -c '
import socket
while True:
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1)); print(p); break
    except OSError:
        pass
    finally:
        a.close(); b.close()'
}

start=$(date +%s%N)
mkdir -p "$WORK/tpm/state" "$WORK/tpm/store"
for attempt in 1 2 3; do
    PORT=$(free_ports)
    swtpm socket --tpmstate dir="$WORK/tpm/state" --tpm2 \
        --server type=tcp,port="$PORT",bindaddr=127.0.0.1 \
        --ctrl type=tcp,port=$((PORT + 1)),bindaddr=127.0.0.1 \
        --flags not-need-init,startup-clear --log file="$WORK/tpm/swtpm.log" &
    SWTPM_PID=$!
    PIDS+=("$SWTPM_PID")
    for _ in $(seq 600); do port_open "$PORT" && break; kill -0 "$SWTPM_PID" 2>/dev/null || break; sleep 0.05; done
    port_open "$PORT" && break
    echo "# swtpm could not use ports $PORT/$((PORT + 1)) (attempt $attempt)"
done
port_open "$PORT" || { echo "Bail out! swtpm did not start"; exit 1; }

cat >"$WORK/tpm/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=$WORK/tpm/bus</listen>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
EOF
# --fork returns once the bus listens; --print-pid gives the daemon's PID.
DBUS_PID=$(dbus-daemon --config-file="$WORK/tpm/bus.conf" --fork --print-pid) ||
    { echo "Bail out! dbus-daemon did not start"; exit 1; }
PIDS+=("$DBUS_PID")
export DBUS_SESSION_BUS_ADDRESS=unix:path=$WORK/tpm/bus

tpm2-abrmd --session --tcti=swtpm:host=127.0.0.1,port="$PORT" --allow-root --flush-all \
    >"$WORK/tpm/abrmd.log" 2>&1 &
ABRMD_PID=$!
PIDS+=("$ABRMD_PID")
wait_for tpm2-abrmd "$ABRMD_PID" sh -c 'dbus-send --session --dest=org.freedesktop.DBus --print-reply \
    /org/freedesktop/DBus org.freedesktop.DBus.NameHasOwner string:com.intel.tss2.Tabrmd | grep -q true'
up=$(date +%s%N)

export TPM2_PKCS11_STORE=$WORK/tpm/store TPM2_PKCS11_TCTI=tabrmd:bus_type=session
export TPM2TOOLS_TCTI=tabrmd:bus_type=session
# The PINs go to tpm2_ptool from the test's environment (never to hsmsign's argv).
tpm2_ptool init >"$WORK/tpm/ptool.log" 2>&1 &&
    tpm2_ptool addtoken --pid=1 --label=hsmsign-tpm --sopin="$HSMSIGN_SO_PIN" \
        --userpin="$HSMSIGN_PIN" >>"$WORK/tpm/ptool.log" 2>&1 ||
    { echo "Bail out! tpm2_ptool"; sed 's/^/    /' "$WORK/tpm/ptool.log"; exit 1; }
ready=$(date +%s%N)
echo "# swtpm + dbus + tpm2-abrmd up in $(((up - start) / 1000000)) ms; tpm2_ptool init + addtoken $(((ready - up) / 1000000)) ms"

export HSMSIGN_MODULE=$TPM2_MODULE HSMSIGN_TOKEN=hsmsign-tpm
# tpm2-pkcs11 logs every unsupported mechanism query as an ERROR on stderr.
export TPM2_PKCS11_LOG_LEVEL=0

# --- the profile, chosen from the token --------------------------------------------
check "token info" hs token info
sed 's/^/    /' "$WORK/out"
assert "resident is chosen automatically: no AES key wrap" \
    grep -q "profile: *resident (token 'hsmsign-tpm' .*has no AES key wrap" "$WORK/out"
check "token info --json" hs --json token info
assert "... RSA key pairs up to 3072 bits, EC, no AES key wrap of any kind, no EdDSA" python3 -c "
import json; o = json.load(open('$WORK/out')); m = {x['mechanism']: x for x in o['mechanisms']}
assert o['profile'] == 'resident' and not o['profile_requested'] and not o['wrap_key'], o
assert m['CKM_RSA_PKCS_KEY_PAIR_GEN']['max_key_size'] == 3072, m
assert 'CKM_EC_KEY_PAIR_GEN' in m and 'CKM_ECDSA' in m and 'CKM_RSA_PKCS_PSS' in m, m
assert not any('WRAP' in k or 'EDDSA' in k for k in m), m"
expect_fail "wrapkey create is refused with the reason (before: CKR_MECHANISM_INVALID)" 2 \
    "resident profile \(token 'hsmsign-tpm'.*no AES key wrap.*\): it has no wrap key and no shares" hs wrapkey create
check "audit init: the audit key in the TPM, and the log" hs audit init
check "(list the token's objects)" pkcs11-tool --module "$TPM2_MODULE" --token-label hsmsign-tpm \
    --login --pin env:HSMSIGN_PIN --list-objects
assert "the audit key is ECDSA P-256 (the TPM has no Ed25519)" \
    python3 -c "
import re; t = open('$WORK/out').read()
b = [x for x in t.split('Public Key Object')[1:] if 'hsmsign-audit' in x]
assert b and 'EC_POINT 256 bits' in b[0] and 'EDWARDS' not in b[0], t"

# --- keys in the TPM --------------------------------------------------------------
for spec in r2048:rsa2048 r3072:rsa3072 p256:ec-p256; do
    IFS=: read -r name alg <<<"$spec"
    check "generate $alg in the TPM" hs key generate "$name" --algorithm "$alg"
done
expect_fail "RSA-4096 is refused, naming the token's limit" 4 \
    "token 'hsmsign-tpm' .*makes keys of at most 3072 bits with CKM_RSA_PKCS_KEY_PAIR_GEN; rsa4096 needs 4096" \
    hs key generate r4096 --algorithm rsa4096
assert "... and no key file was written" test ! -e keys/r4096.key
check "(list the token's objects)" pkcs11-tool --module "$TPM2_MODULE" --token-label hsmsign-tpm \
    --login --pin env:HSMSIGN_PIN --list-objects
cp "$WORK/out" objects.txt
sed 's/^/    /' objects.txt
assert "the signing keys are sensitive, never-extractable private objects" python3 -c "
import re; t = open('objects.txt').read()
objs = [o for o in re.split(r'\n(?=\S)', t) if o.startswith('Private Key Object')]
for k in ('r2048', 'r3072', 'p256'):
    b = [o for o in objs if re.search(r'label: *%s\n' % k, o)]
    assert len(b) == 1 and 'sensitive, always sensitive, never extractable' in b[0], (k, t)"

openssl genrsa -out imp.pem 2048 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in imp.pem -outform DER -out imp.pk8
openssl req -new -x509 -sha256 -key imp.pem -subj "/CN=imported" -days 30 -out imp.crt
expect_fail "key import is refused: tpm2-pkcs11 takes no private key objects" 4 \
    "C_CreateObject failed .*this token does not take existing private keys.*generate new keys in it" \
    hs key import imp --pk8 imp.pk8 --cert imp.crt
assert "... and no key file was written" test ! -e keys/imp.key

head -c 300000 /dev/urandom >data.bin
for k in r2048 r3072 p256; do
    check "sign raw with $k" hs sign raw --key "$k" data.bin "$k.sig"
    check "openssl verifies the $k signature" \
        openssl dgst -sha256 -verify "$(pubkey "$k")" -signature "$k.sig" data.bin
done
check "an RSA-PSS signature too (r3072)" hs sign raw --key r3072 --algorithm rsa-pss-sha256 data.bin pss.sig
check "openssl verifies it" openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest \
    -verify "$(pubkey r3072)" -signature pss.sig data.bin

# --- an APK, verified by apksigner ------------------------------------------------------
mkdir -p app
cat >app/AndroidManifest.xml <<XML
<?xml version="1.0" encoding="utf-8"?>
<manifest xmlns:android="http://schemas.android.com/apk/res/android" package="org.hsmsign.tpm">
  <uses-sdk android:minSdkVersion="24" android:targetSdkVersion="33"/>
  <application android:label="tpm"/>
</manifest>
XML
aapt package -M app/AndroidManifest.xml -I "$FW" -F app.apk >/dev/null 2>&1 ||
    { echo "Bail out! aapt"; exit 1; }
for k in r3072 p256; do
    check "sign an APK (v2+v3) with $k in the TPM" hs sign apk --key "$k" --v1-signing false \
        --v2-signing true --v3-signing true app.apk "app-$k.apk"
    check "apksigner verify accepts the $k APK" apksigner verify --print-certs "app-$k.apk"
    assert "... signed by $k's certificate" grep -q "CN=$k" "$WORK/out"
done

# --- AVB: SHA256_RSA2048 (AVB has no RSA-3072; the TPM no RSA-4096) ----------------------
head -c 200000 /dev/urandom >boot.img
check "avb add-hash-footer boot.img with r2048" hs avb add-hash-footer --image boot.img \
    --partition_name boot --partition_size 1048576 --key r2048 --algorithm SHA256_RSA2048
check "avb make-vbmeta with r2048" hs avb make-vbmeta --output vbmeta.img --key r2048 \
    --algorithm SHA256_RSA2048 --include_descriptors_from_image boot.img
check "avb verify vbmeta.img, pinned to r2048" hs avb verify vbmeta.img --key r2048
python3 - vbmeta.img tbs.bin sig.bin <<'PY'
import struct, sys
img, tbs_out, sig_out = sys.argv[1:4]
v = open(img, "rb").read()
assert v[:4] == b"AVB0"
auth, aux = struct.unpack(">QQ", v[12:28])
sig_off, sig_size = struct.unpack(">QQ", v[48:64])
open(tbs_out, "wb").write(v[:256] + v[256 + auth:256 + auth + aux])
open(sig_out, "wb").write(v[256 + sig_off:256 + sig_off + sig_size])
PY
check "openssl verifies the vbmeta signature over header || aux" \
    openssl dgst -sha256 -verify "$(pubkey r2048)" -signature sig.bin tbs.bin
AVBTOOL=${AVBTOOL:-$(command -v avbtool || true)}
if [ -n "$AVBTOOL" ]; then
    check "avbtool verify_image accepts vbmeta.img and boot.img, key pinned" "$AVBTOOL" verify_image \
        --image vbmeta.img --key "$(pubkey r2048)"
else
    echo "# avbtool not on PATH (nor \$AVBTOOL): verified with openssl and hsmsign only"
fi

# --- the attacker with the user PIN --------------------------------------------------
"$P11_ATTACK" "$TPM2_MODULE" hsmsign-tpm attack-resident r3072 rsa "$WORK/loot" >attack.txt 2>&1
rc=$?
sed 's/^/    /' attack.txt
assert "p11_attack gets no key material out of the TPM (exit $rc)" test "$rc" -eq 0 -a ! -e "$WORK/loot"
# tpm2-pkcs11 1.9 lets the PIN holder flip CKA_EXTRACTABLE and CKA_SENSITIVE
# (its database flags; the key itself stays sealed by the TPM). hsmsign
# checks them before every use, so such a key is refused, not signed with.
if grep -q "^WEAK: .*CKA_EXTRACTABLE=true" attack.txt; then
    expect_fail "the signer refuses the key the attacker marked extractable" 1 \
        "key 'r3072' on token 'hsmsign-tpm' has CKA_(EXTRACTABLE true|SENSITIVE false).*refuses" \
        hs sign raw --key r3072 data.bin x.sig
    assert "... and wrote no signature" test ! -e x.sig
fi

check "audit verify (ECDSA P-256 audit key in the TPM)" hs audit verify
hs audit show >log.txt 2>&1
assert "the log holds the key generations" test "$(grep -c generate log.txt)" -ge 3
finish
