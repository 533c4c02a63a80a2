#!/bin/bash
# `hsmsign avb ...` through a real SoftHSM token: AOSP's AVB test keys are
# imported, every output of tests/vectors/avb/commands.sh (AOSP avbtool
# 1.3.0) is reproduced byte for byte through the CLI and the HSM, openssl
# checks the vbmeta signatures over header || aux, a script speaking
# avbtool's side of both signing helper protocols gets signatures openssl
# accepts, bad input is refused with the image unchanged, every signature
# is in the audit log, and the PKCS#11 shim counts one C_Sign per vbmeta.
. "$(dirname "$0")/lib.sh"
: "${HSMSIGN_VECTORS:?}" "${P11SHIM:?P11SHIM must name the shim module}"
V=$HSMSIGN_VECTORS/avb
setup_token

cp "$V"/*.in.img "$V"/testkey_rsa*.pem .
chmod u+w ./*

# --- AOSP's test keys into the key store (wrapped by the token) ------------
for bits in 2048 4096 8192; do
    openssl pkcs8 -topk8 -nocrypt -outform DER -in "testkey_rsa$bits.pem" -out "k$bits.pk8"
    openssl req -x509 -new -key "testkey_rsa$bits.pem" -subj "/CN=avb-test-$bits" -days 30 \
        -out "k$bits.crt" 2>/dev/null
    check "import AOSP testkey_rsa$bits" hs -q key import "avb$bits" --pk8 "k$bits.pk8" --cert "k$bits.crt"
    openssl rsa -in "testkey_rsa$bits.pem" -pubout -out "pub$bits.pem" 2>/dev/null
done

# --- every avbtool output of commands.sh, through the HSM --------------------
cp boot.in.img boot.img; cp system.in.img system.img; cp vendor.in.img vendor.img
check "add-hash-footer boot (SHA256_RSA4096, avbtool spelling)" \
    hs avb add-hash-footer --image boot.img --partition_name boot --partition_size 1048576 \
    --key avb4096 --algorithm SHA256_RSA4096 --rollback_index 5 \
    --salt 0011223344556677889900112233445566778899001122334455667788990011
check "add-hashtree-footer system (NONE, hyphen spelling, no token needed)" \
    env HSMSIGN_MODULE=/nonexistent/module.so "$HSMSIGN" avb add-hashtree-footer --image system.img \
    --partition-name system --partition-size 2097152 --hash-algorithm sha256 --do-not-generate-fec \
    --algorithm NONE --salt aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899
check "add-hashtree-footer vendor (SHA256_RSA2048)" \
    hs avb add-hashtree-footer --image vendor.img --partition_name vendor --partition-size 2097152 \
    --hash_algorithm sha256 --do_not_generate_fec --key avb2048 --algorithm SHA256_RSA2048 \
    --salt 0102030405060708090a0b0c0d0e0f100102030405060708090a0b0c0d0e0f10
check "extract-public-key 2048" hs avb extract-public-key --key avb2048 --output testkey_rsa2048.avbpubkey
check "extract-public-key 4096" hs avb extract-public-key --key avb4096 --output testkey_rsa4096.avbpubkey
check "make-vbmeta (includes, chain, prop, cmdline, padding)" \
    hs avb make-vbmeta --output vbmeta.img --key avb4096 --algorithm SHA256_RSA4096 \
    --rollback_index 7 --include_descriptors_from_image boot.img --include-descriptors-from-image system.img \
    --chain_partition vendor:1:testkey_rsa2048.avbpubkey --prop com.example.build:42 \
    --kernel_cmdline 'androidboot.example=1' --padding_size 4096
check "make-vbmeta SHA512_RSA8192" \
    hs avb make-vbmeta --output vbmeta_sha512_rsa8192.img --key avb8192 --algorithm SHA512_RSA8192 \
    --include_descriptors_from_image boot.img
for f in boot.img system.img vendor.img vbmeta.img vbmeta_sha512_rsa8192.img \
         testkey_rsa2048.avbpubkey testkey_rsa4096.avbpubkey; do
    assert "$f is byte-identical to AOSP avbtool's" cmp -s "$f" "$V/$f"
done
hs avb info vbmeta.img >info.txt
assert "avb info prints what avbtool info_image printed" cmp -s info.txt "$V/vbmeta.info.txt"

# --- openssl verifies each vbmeta signature over header || aux ---------------
# Split with Python straight from the AVB layout (not with hsmsign's parser).
split_vbmeta() { # image tbs sig
    python3 - "$@" <<'PY'
import struct, sys
img, tbs_out, sig_out = sys.argv[1:4]
data = open(img, "rb").read()
off = 0
if data[-64:-60] == b"AVBf":
    off = struct.unpack(">Q", data[-64 + 20:-64 + 28])[0]
v = data[off:]
assert v[:4] == b"AVB0"
auth, aux = struct.unpack(">QQ", v[12:28])
sig_off, sig_size = struct.unpack(">QQ", v[48:64])
open(tbs_out, "wb").write(v[:256] + v[256 + auth:256 + auth + aux])
open(sig_out, "wb").write(v[256 + sig_off:256 + sig_off + sig_size])
PY
}
for spec in vbmeta.img:4096:sha256 boot.img:4096:sha256 vendor.img:2048:sha256 \
            vbmeta_sha512_rsa8192.img:8192:sha512; do
    IFS=: read -r img bits md <<<"$spec"
    split_vbmeta "$img" tbs.bin sig.bin
    check "openssl dgst -$md -verify accepts the HSM signature of $img" \
        openssl dgst "-$md" -verify "pub$bits.pem" -signature sig.bin tbs.bin
done
printf '\x01' | dd of=tbs.bin bs=1 seek=300 conv=notrunc status=none
expect_fail "openssl rejects it after one aux byte changed" nonzero "Verification failure|bad signature" \
    openssl dgst -sha512 -verify pub8192.pem -signature sig.bin tbs.bin

# --- avb verify ----------------------------------------------------------------
check "avb verify vbmeta.img --follow-chain-partitions" hs avb verify vbmeta.img --follow-chain-partitions
assert "verify counted the descriptors" grep -q "1 hash, 2 hashtree, 1 chain" "$WORK/out"
check "avb verify pinned to the key store key" \
    hs avb verify vbmeta.img --key avb4096 --expected_chain_partition vendor:1:testkey_rsa2048.avbpubkey
expect_fail "avb verify refuses a chain key other than expected" 1 "different public key than expected" \
    hs avb verify vbmeta.img --expected-chain-partition vendor:1:testkey_rsa4096.avbpubkey
expect_fail "avb verify refuses the wrong pinned key" 1 "does not match the expected key" hs avb verify vbmeta.img --key avb2048 \
    --follow-chain-partitions
expect_fail "avb verify refuses an unsigned image by default" 1 "unsigned" hs avb verify system.img
check "avb verify --allow-unsigned accepts it" hs avb verify system.img --allow-unsigned
mkdir bad && cp boot.img system.img vendor.img vbmeta.img bad/
printf 'X' | dd of=bad/boot.img bs=1 seek=1000 conv=notrunc status=none
expect_fail "avb verify: a changed boot byte is exit 1" 1 "does not match the hash descriptor" \
    hs avb verify bad/vbmeta.img --follow-chain-partitions

# --- bad input: clear error, non-zero exit, image unchanged, nothing written ---
bad() { # description pattern image command...
    local what=$1 pattern=$2 img=$3; shift 3
    cp "$img" before.img
    expect_fail "$what" nonzero "$pattern" "$@"
    assert "$what: $img unchanged" cmp -s before.img "$img"
}
cp boot.in.img b.img
bad "image larger than the partition allows" "exceeds the maximum" b.img \
    hs avb add-hash-footer --image b.img --partition-name boot --partition-size 131072 --salt 00
bad "partition size not a multiple of 4096" "multiple of 4096" b.img \
    hs avb add-hash-footer --image b.img --partition-name boot --partition-size 1048577 --salt 00
bad "hashtree: FEC generation refused clearly" "FEC generation is not supported" b.img \
    hs avb add-hashtree-footer --image b.img --partition-name s --partition-size 2097152
bad "unknown algorithm name" "unknown AVB algorithm 'SHA1_RSA1024'" b.img \
    hs avb add-hash-footer --image b.img --partition-name boot --partition-size 1048576 \
    --key avb2048 --algorithm SHA1_RSA1024
bad "RSA key size does not match the algorithm" "wrong size for SHA256_RSA4096" b.img \
    hs avb add-hash-footer --image b.img --partition-name boot --partition-size 1048576 \
    --key avb2048 --algorithm SHA256_RSA4096
bad "chain partition key file that is not an AVB key" "not an AVB public key" b.img \
    hs avb add-hash-footer --image b.img --partition-name boot --partition-size 1048576 \
    --chain-partition vendor:1:pub2048.pem
bad "unknown key store key" "key1234" b.img \
    hs avb add-hash-footer --image b.img --partition-name boot --partition-size 1048576 \
    --key key1234 --algorithm SHA256_RSA2048
bad "signing algorithm without --key" "needs --key" b.img \
    hs avb add-hash-footer --image b.img --partition-name boot --partition-size 1048576 \
    --algorithm SHA256_RSA2048
head -c $((1048576 - 10)) boot.img >trunc.img
bad "truncated footer" "truncated AVB footer" trunc.img \
    hs avb add-hash-footer --image trunc.img --partition-name boot --partition-size 1048576 --salt 00
bad "avb info on a truncated footer" "truncated AVB footer" trunc.img hs avb info trunc.img
cp vbmeta.img sizes.img
printf '\x10' | dd of=sizes.img bs=1 seek=22 conv=notrunc status=none
bad "vbmeta with inconsistent block sizes" "run past" sizes.img hs avb info sizes.img
bad "make-vbmeta including a vbmeta with inconsistent block sizes" "run past" sizes.img \
    hs avb make-vbmeta --output never.img --key avb4096 --algorithm SHA256_RSA4096 \
    --include-descriptors-from-image sizes.img
assert "no output after the failed make-vbmeta" test ! -e never.img
expect_fail "avb verify on inconsistent sizes is exit 1" 1 "run past" hs avb verify sizes.img
assert "no temporary file left behind" bash -c "! ls ./*.tmp* 2>/dev/null | grep -q ."
expect_fail "unknown flag" 2 "unknown option" hs avb make-vbmeta --output x.img --bogus 1
expect_fail "flag of another subcommand" 2 "does not apply" hs avb make-vbmeta --output x.img --salt 00
expect_fail "bad number" 2 "not a number" hs avb add-hash-footer --image b.img \
    --partition-name boot --partition-size 12abc

# An image that already has a footer: replaced, as avbtool does (same bytes).
cp boot.img again.img
check "add-hash-footer over an existing footer" \
    hs avb add-hash-footer --image again.img --partition-name boot --partition-size 1048576 \
    --key avb4096 --algorithm SHA256_RSA4096 --rollback-index 5 \
    --salt 0011223344556677889900112233445566778899001122334455667788990011
assert "the replaced footer gives avbtool's bytes again" cmp -s again.img "$V/boot.img"

# --json report.
check "make-vbmeta --json" hs --json avb make-vbmeta --output j.img --key avb2048 --algorithm SHA512_RSA2048
assert "JSON report names key, algorithm and digest" python3 -c '
import json, sys; r = json.load(open(sys.argv[1]))
assert r["ok"] and r["key"] == "avb2048" and r["algorithm"] == "SHA512_RSA2048" and len(r["vbmeta_digest"]) == 128
' "$WORK/out"

# --- the signing helper protocols, spoken as avbtool speaks them -------------
# avbtool runs ONE program: a wrapper, as users will write it.
printf '#!/bin/sh\nexec "%s" avb signing-helper "$@"\n' "$HSMSIGN" >helper.sh
printf '#!/bin/sh\nexec "%s" avb signing-helper-with-files "$@"\n' "$HSMSIGN" >helper_files.sh
chmod +x helper.sh helper_files.sh
# avbtool_side MODE ALGORITHM KEY_PATH MSG SIG [BLOCK_TWEAK]: builds avbtool's
# padded block for SHA-x(MSG) and runs the helper exactly as avbtool's
# raw_sign does (Popen argv; stdin/stdout, or a NamedTemporaryFile it keeps
# open and reads back after seek(0)); writes the signature to SIG.
avbtool_side() {
    python3 - "$@" <<'PY'
import hashlib, subprocess, sys, tempfile
mode, alg, key, msg, sig_out = sys.argv[1:6]
tweak = sys.argv[6] if len(sys.argv) > 6 else ""
prefixes = {"sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
            "sha512": bytes.fromhex("3051300d060960864801650304020305000440")}
bits = int(alg.split("_RSA")[1]) if "_RSA" in alg else 2048
h = alg.split("_")[0].lower()
if tweak == "other-hash":
    h = "sha512" if h == "sha256" else "sha256"
if h not in prefixes:
    h = "sha256"
di = prefixes[h] + hashlib.new(h, open(msg, "rb").read()).digest()
block = bytearray(b"\x00\x01" + b"\xff" * (bits // 8 - 3 - len(di)) + b"\x00" + di)
if tweak == "bad-padding":
    block[10] = 0xfe
block = bytes(block)
if mode == "stdin":
    p = subprocess.Popen(["./helper.sh", alg, key], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate(block)
    sys.stderr.write(err.decode())
    if p.wait() != 0:
        sys.exit(1)
    sig = out
else:
    with tempfile.NamedTemporaryFile(dir=".") as f:
        f.write(block)
        f.flush()
        if subprocess.call(["./helper_files.sh", alg, key, f.name]) != 0:
            f.seek(0)
            sys.exit(3 if f.read() != block else 1)  # 3: block touched on failure
        f.seek(0)
        sig = f.read()
if len(sig) != bits // 8:
    sys.stderr.write("signature is %d bytes, want %d\n" % (len(sig), bits // 8))
    sys.exit(2)
open(sig_out, "wb").write(sig)
PY
}
head -c 5000 /dev/urandom >msg.bin
helper_ok() { # mode alg key_path bits md
    local mode=$1 alg=$2 key=$3 bits=$4 md=$5
    rm -f h.sig
    check "signing helper ($mode, $alg, key given as $key)" avbtool_side "$mode" "$alg" "$key" msg.bin h.sig
    check "openssl verifies the helper's $alg signature" \
        openssl dgst "-$md" -verify "pub$bits.pem" -signature h.sig msg.bin
}
helper_ok stdin SHA256_RSA2048 testkey_rsa2048.pem 2048 sha256
helper_ok files SHA256_RSA4096 testkey_rsa4096.pem 4096 sha256
helper_ok stdin SHA512_RSA4096 pub4096.pem 4096 sha512
helper_ok files SHA512_RSA2048 pub2048.pem 2048 sha512
expect_fail "helper: wrong padding refused" nonzero "padding byte 10 is fe" \
    avbtool_side stdin SHA256_RSA2048 pub2048.pem msg.bin h.sig bad-padding
expect_fail "helper: a digest for another algorithm refused" nonzero "carries a SHA-512 digest" \
    avbtool_side stdin SHA256_RSA4096 pub4096.pem msg.bin h.sig other-hash
expect_fail "helper (files): wrong padding refused, file untouched" 1 "padding" \
    avbtool_side files SHA256_RSA2048 pub2048.pem msg.bin h.sig bad-padding
expect_fail "helper: unknown algorithm refused" nonzero 'unknown or unsigned algorithm "SHA1_RSA2048"' \
    avbtool_side stdin SHA1_RSA2048 pub2048.pem msg.bin h.sig
expect_fail "helper: key size not matching the algorithm refused" nonzero \
    "2048-bit RSA key; SHA256_RSA4096 needs a 4096-bit key" \
    avbtool_side stdin SHA256_RSA4096 pub2048.pem msg.bin h.sig
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out stranger.pem 2>/dev/null
expect_fail "helper: a key not in the key store refused" nonzero "no key in the key store" \
    avbtool_side stdin SHA256_RSA2048 stranger.pem msg.bin h.sig
echo "not a key" >junk.pem
expect_fail "helper: a key path that holds no key refused" nonzero "not an RSA key" \
    avbtool_side stdin SHA256_RSA2048 junk.pem msg.bin h.sig
./helper.sh SHA256_RSA2048 pub2048.pem </dev/null >empty.out 2>/dev/null
assert "helper: nothing on stdout when it fails" test ! -s empty.out
expect_fail "helper: wrong argument count" 2 "ALGORITHM PUBKEY_PATH" "$HSMSIGN" avb signing-helper SHA256_RSA2048

# --- the audit log holds every signature ------------------------------------
# vbmeta: boot, vendor, vbmeta, vbmeta 8192, the replaced boot footer, j.img.
assert "one audit entry per signed vbmeta (6)" \
    test "$(grep -c '"purpose":"avb-vbmeta"' audit/entries.jsonl)" -eq 6
assert "one audit entry per helper signature (4)" \
    test "$(grep -c '"purpose":"avb-signing-helper"' audit/entries.jsonl)" -eq 4
assert "audit entries name the key" \
    test "$(grep '"purpose":"avb-vbmeta"' audit/entries.jsonl | grep -c '"key":"avb4096"')" -eq 3

# --- audit check reads AVB signatures ----------------------------------------
# Every image made above through the HSM is in the log; the same vbmeta
# re-signed outside hsmsign with the same key (rollback index changed, hash
# and signature recomputed with openssl and the key file) is found unlogged.
mkdir -p release
cp vbmeta.img boot.img vendor.img system.img release/
python3 - vbmeta.img release/outside_vbmeta.img testkey_rsa4096.pem <<'PY'
import hashlib, struct, subprocess, sys
src, dst, key = sys.argv[1:4]
b = bytearray(open(src, "rb").read())
auth, aux = struct.unpack(">QQ", b[12:28])
hash_off, hash_size, sig_off, sig_size = struct.unpack(">QQQQ", b[32:64])
b[112:120] = struct.pack(">Q", 77)  # rollback index: different signed bytes
signed = bytes(b[:256]) + bytes(b[256 + auth:256 + auth + aux])
b[256 + hash_off:256 + hash_off + hash_size] = hashlib.sha256(signed).digest()
sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signed,
                     capture_output=True, check=True).stdout
assert len(sig) == sig_size
b[256 + sig_off:256 + sig_off + sig_size] = sig
open(dst, "wb").write(b)
PY
check "avb verify accepts the vbmeta signed outside hsmsign" \
    hs avb verify release/outside_vbmeta.img --follow-chain-partitions
hs --json audit check release >"$WORK/out" 2>"$WORK/err"
assert "audit check exits 1: a signature by our key is not in the log" test $? -eq 1
audit_check_field() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($1)" "$WORK/out"; }
assert "audit check: 5 AVB images, 4 signed (system.img: NONE), all by our keys" \
    test "$(audit_check_field 'r["files"], r["signatures"], r["ours"]')" = "5 4 4"
assert "audit check: exactly that vbmeta is unlogged, as an avb signature by avb4096" \
    test "$(audit_check_field '[(u["artifact"].split("/")[-1], u["scheme"], u["key"]) for u in r["unlogged"]]')" \
    = "[('outside_vbmeta.img', 'avb', 'avb4096')]"
rm release/outside_vbmeta.img
check "audit check: every AVB signature made through hsmsign is in the log" hs audit check release

# --- through the PKCS#11 shim: one C_Sign per vbmeta, no session left open ---
counts() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))$1)" counts.json; }
shim() { env HSMSIGN_MODULE="$P11SHIM" HSMSIGN_SHIM_MODULE="$SOFTHSM_MODULE" \
    HSMSIGN_SHIM_COUNTS="$WORK/counts.json" "$HSMSIGN" "$@"; }
# The baseline: C_Sign calls of a command that makes exactly one signature
# (`sign raw`), so bookkeeping signatures of the audit log, if any, are
# counted alike.
rm -f counts.json
echo "one signature" >one.txt
check "sign raw through the counting shim (baseline)" shim sign raw --key avb2048 one.txt one.sig
one_sig=$(counts '["calls"]["C_Sign"]')
assert "the baseline has at least one C_Sign ($one_sig)" test "$one_sig" -ge 1
rm -f counts.json
check "make-vbmeta through the counting shim" \
    shim avb make-vbmeta --output shim.img --key avb4096 --algorithm SHA256_RSA4096 \
    --include-descriptors-from-image boot.img --chain-partition vendor:1:testkey_rsa2048.avbpubkey
assert "one vbmeta costs the C_Sign calls of one signature" test "$(counts '["calls"]["C_Sign"]')" -eq "$one_sig"
assert "no session left open, C_Finalize called" \
    test "$(counts '["sessions_open"]')-$(counts '["sessions_closed_by_finalize"]')-$(counts '["finalized"]')" = "0-0-True"
rm -f counts.json
check "add-hash-footer through the counting shim" \
    shim avb add-hash-footer --image again.img --partition-name boot --partition-size 1048576 \
    --key avb4096 --algorithm SHA256_RSA4096 --rollback-index 5 \
    --salt 0011223344556677889900112233445566778899001122334455667788990011
assert "one signature's C_Sign calls for the footer's vbmeta, sessions closed" \
    test "$(counts '["calls"]["C_Sign"]')-$(counts '["sessions_open"]')" = "$one_sig-0"
rm -f counts.json
expect_fail "key size mismatch through the shim" nonzero "wrong size" \
    shim avb make-vbmeta --output never.img --key avb2048 --algorithm SHA256_RSA8192
assert "a refused vbmeta never reaches C_Sign, sessions closed" \
    test "$(counts '["calls"].get("C_Sign", 0)')-$(counts '["sessions_open"]')" = "0-0"
finish
