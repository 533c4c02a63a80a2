#!/bin/bash
# AVB library against AOSP avbtool 1.3.0 outputs (tests/vectors/avb), the
# openssl command line, and bad inputs. Runs the test driver avb_tool (soft
# signer with the AOSP test keys) with the exact options of commands.sh.
set -u
TOOL=${AVB_TOOL:?AVB_TOOL must point at the avb_tool test driver}
V=${HSMSIGN_VECTORS:?}/avb
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cd "$W" || exit 1
fails=0
pass() { echo "ok   - $*"; }
fail() { echo "FAIL - $*"; fails=$((fails + 1)); }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }

cp "$V"/*.in.img "$V"/*.pem "$V"/*.avbpubkey .
chmod u+w ./*

# --- 1. every avbtool output, byte for byte --------------------------------
cp boot.in.img boot.img; cp system.in.img system.img; cp vendor.in.img vendor.img
"$TOOL" add_hash_footer --image boot.img --partition_name boot --partition_size 1048576 \
  --key testkey_rsa4096.pem --algorithm SHA256_RSA4096 --rollback_index 5 \
  --salt 0011223344556677889900112233445566778899001122334455667788990011 2>boot.log
"$TOOL" add_hashtree_footer --image system.img --partition_name system --partition_size 2097152 \
  --hash_algorithm sha256 --do_not_generate_fec --algorithm NONE \
  --salt aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899 2>system.log
"$TOOL" add_hashtree_footer --image vendor.img --partition_name vendor --partition_size 2097152 \
  --hash_algorithm sha256 --do_not_generate_fec --key testkey_rsa2048.pem --algorithm SHA256_RSA2048 \
  --salt 0102030405060708090a0b0c0d0e0f100102030405060708090a0b0c0d0e0f10 2>vendor.log
"$TOOL" extract_public_key --key testkey_rsa2048.pem --output out2048.avbpubkey
"$TOOL" extract_public_key --key testkey_rsa4096.pem --output out4096.avbpubkey
"$TOOL" make_vbmeta_image --output vbmeta.img --key testkey_rsa4096.pem --algorithm SHA256_RSA4096 \
  --rollback_index 7 --include_descriptors_from_image boot.img --include_descriptors_from_image system.img \
  --chain_partition vendor:1:testkey_rsa2048.avbpubkey --prop com.example.build:42 \
  --kernel_cmdline 'androidboot.example=1' --padding_size 4096 2>vbmeta.log
"$TOOL" make_vbmeta_image --output vbmeta_sha512_rsa8192.img --key testkey_rsa8192.pem \
  --algorithm SHA512_RSA8192 --include_descriptors_from_image boot.img 2>vbmeta8192.log
for f in boot.img system.img vendor.img vbmeta.img vbmeta_sha512_rsa8192.img; do
  check "$f equals avbtool's" cmp -s "$f" "$V/$f"
done
check "testkey_rsa2048.avbpubkey equals avbtool's" cmp -s out2048.avbpubkey "$V/testkey_rsa2048.avbpubkey"
check "testkey_rsa4096.avbpubkey equals avbtool's" cmp -s out4096.avbpubkey "$V/testkey_rsa4096.avbpubkey"
"$TOOL" info_image --image vbmeta.img >info.txt
check "info_image output equals avbtool info_image" cmp -s info.txt "$V/vbmeta.info.txt"
for l in boot vendor vbmeta vbmeta8192; do
  check "$l: exactly one signature requested" grep -q 'signatures requested: 1,' $l.log
done
check "system (NONE): no signature requested" grep -q 'signatures requested: 0,' system.log

# --- 2. openssl verifies the signature over header ‖ aux --------------------
for spec in vbmeta.img:testkey_rsa4096.pem:sha256 boot.img:testkey_rsa4096.pem:sha256 \
            vendor.img:testkey_rsa2048.pem:sha256 vbmeta_sha512_rsa8192.img:testkey_rsa8192.pem:sha512; do
  IFS=: read -r img key md <<<"$spec"
  openssl rsa -in "$key" -pubout -out pub.pem 2>/dev/null
  "$TOOL" split_vbmeta --image "$img" --tbs tbs.bin --sig sig.bin
  check "openssl dgst -$md -verify accepts $img" \
    openssl dgst "-$md" -verify pub.pem -signature sig.bin tbs.bin
  printf '\x01' | dd of=tbs.bin bs=1 seek=300 conv=notrunc status=none
  check "openssl rejects $img with a changed aux byte" \
    bash -c "! openssl dgst -$md -verify pub.pem -signature sig.bin tbs.bin >/dev/null 2>&1"
done

# --- 3. verify_image -----------------------------------------------------------
check "verify_image vbmeta.img following chains" \
  "$TOOL" verify_image --image vbmeta.img --follow_chain_partitions
check "verify_image with the expected chain key" \
  "$TOOL" verify_image --image vbmeta.img --expected_chain_partition vendor:1:out2048.avbpubkey
check "verify_image refuses an unexpected chain without follow" \
  bash -c "! '$TOOL' verify_image --image vbmeta.img 2>/dev/null"
check "verify_image refuses a wrong chain key" \
  bash -c "! '$TOOL' verify_image --image vbmeta.img --expected_chain_partition vendor:1:out4096.avbpubkey 2>/dev/null"
mkdir bad && cp boot.img system.img vendor.img vbmeta.img bad/
printf 'X' | dd of=bad/boot.img bs=1 seek=1000 conv=notrunc status=none
check "verify_image detects a changed boot byte" \
  bash -c "'$TOOL' verify_image --image bad/vbmeta.img --follow_chain_partitions 2>&1 | grep -q 'does not match the hash descriptor'"
cp boot.img bad/boot.img
printf 'X' | dd of=bad/system.img bs=1 seek=500000 conv=notrunc status=none
check "verify_image detects a changed system byte (hash tree root)" \
  bash -c "'$TOOL' verify_image --image bad/vbmeta.img --follow_chain_partitions 2>&1 | grep -q 'hash tree root does not match'"
cp system.img bad/system.img
printf 'X' | dd of=bad/system.img bs=1 seek=$((1048576 + 5000)) conv=notrunc status=none
check "verify_image detects a changed stored hash tree" \
  bash -c "'$TOOL' verify_image --image bad/vbmeta.img --follow_chain_partitions 2>&1 | grep -q 'stored hash tree'"
cp system.img bad/system.img
printf 'X' | dd of=bad/vendor.img bs=1 seek=$((0x84000 + 700)) conv=notrunc status=none
check "verify_image detects a changed chained vbmeta" \
  bash -c "'$TOOL' verify_image --image bad/vbmeta.img --follow_chain_partitions 2>&1 | grep -q 'vbmeta hash does not match'"

# --- 4. footers replace an existing footer, as avbtool does ---------------------
cp boot.img again.img
"$TOOL" add_hash_footer --image again.img --partition_name boot --partition_size 1048576 \
  --key testkey_rsa4096.pem --algorithm SHA256_RSA4096 --rollback_index 5 \
  --salt 0011223344556677889900112233445566778899001122334455667788990011 2>/dev/null
check "add_hash_footer on a footered image replaces the footer (same bytes)" cmp -s again.img "$V/boot.img"
cp vendor.img again.img
"$TOOL" add_hashtree_footer --image again.img --partition_name vendor --partition_size 2097152 \
  --hash_algorithm sha256 --do_not_generate_fec --key testkey_rsa2048.pem --algorithm SHA256_RSA2048 \
  --salt 0102030405060708090a0b0c0d0e0f100102030405060708090a0b0c0d0e0f10 2>/dev/null
check "add_hashtree_footer on a footered image replaces the footer (same bytes)" cmp -s again.img "$V/vendor.img"
check "image permissions are kept" test "$(stat -c %a again.img)" = "$(stat -c %a vendor.img)"
cp boot.in.img target.img && ln -s target.img link.img
"$TOOL" add_hash_footer --image link.img --partition_name boot --partition_size 1048576 \
  --key testkey_rsa4096.pem --algorithm SHA256_RSA4096 --rollback_index 5 \
  --salt 0011223344556677889900112233445566778899001122334455667788990011 2>/dev/null
check "a symlinked image is footered at its target, the link kept" \
  bash -c "test -L link.img && cmp -s target.img '$V/boot.img'"

# --- 4b. salts: none, random ---------------------------------------------------
cp boot.in.img nosalt.img
"$TOOL" add_hash_footer --image nosalt.img --partition_name nosalt --partition_size 1048576 --salt "" 2>/dev/null
check "empty salt: footer made, verifies, no salt shown" \
  bash -c "'$TOOL' verify_image --image nosalt.img >/dev/null && '$TOOL' info_image --image nosalt.img | grep -q 'Salt:                  \$'"
cp boot.in.img rand1.img; cp boot.in.img rand2.img
"$TOOL" add_hash_footer --image rand1.img --partition_name rand1 --partition_size 1048576 2>/dev/null
"$TOOL" add_hash_footer --image rand2.img --partition_name rand2 --partition_size 1048576 2>/dev/null
check "random salts differ and both verify" \
  bash -c "! cmp -s <('$TOOL' info_image --image rand1.img | grep Salt) <('$TOOL' info_image --image rand2.img | grep Salt) && '$TOOL' verify_image --image rand1.img >/dev/null && '$TOOL' verify_image --image rand2.img >/dev/null"

# --- 5. bad input: clear error, image unchanged, no temporary file left -------
bad_case() { # name, expected message part, image, command...
  local name=$1 msg=$2 img=$3; shift 3
  cp "$img" before.img
  if "$@" 2>err.txt; then fail "$name: accepted"; return; fi
  if ! grep -qi -- "$msg" err.txt; then fail "$name: message '$(cat err.txt)' lacks '$msg'"; return; fi
  if ! cmp -s before.img "$img"; then fail "$name: image changed"; return; fi
  if ls ./*.tmp.* >/dev/null 2>&1; then fail "$name: temporary file left"; return; fi
  pass "$name ($(cat err.txt))"
}
cp boot.in.img b.img
bad_case "image larger than the partition allows" "exceeds the maximum" b.img \
  "$TOOL" add_hash_footer --image b.img --partition_name boot --partition_size 131072 --salt 00
bad_case "partition size not a multiple of 4096" "not a non-zero multiple of 4096" b.img \
  "$TOOL" add_hash_footer --image b.img --partition_name boot --partition_size 1048577 --salt 00
bad_case "hashtree image larger than the partition allows" "exceeds the maximum" b.img \
  "$TOOL" add_hashtree_footer --image b.img --partition_name s --partition_size 360448 --do_not_generate_fec
bad_case "hashtree partition size not a multiple of 4096" "not a non-zero multiple of 4096" b.img \
  "$TOOL" add_hashtree_footer --image b.img --partition_name s --partition_size 2097000 --do_not_generate_fec
bad_case "FEC generation refused" "FEC generation is not supported" b.img \
  "$TOOL" add_hashtree_footer --image b.img --partition_name s --partition_size 2097152
bad_case "key too small for the algorithm" "wrong size for SHA256_RSA4096" b.img \
  "$TOOL" add_hash_footer --image b.img --partition_name boot --partition_size 1048576 \
  --key testkey_rsa2048.pem --algorithm SHA256_RSA4096
bad_case "unknown algorithm" "unknown AVB algorithm" b.img \
  "$TOOL" add_hash_footer --image b.img --partition_name boot --partition_size 1048576 --algorithm SHA1_RSA1024
bad_case "bad salt" "hex digits" b.img \
  "$TOOL" add_hash_footer --image b.img --partition_name boot --partition_size 1048576 --salt xyz
bad_case "chain partition key that is not an AVB key" "not an AVB public key" b.img \
  "$TOOL" add_hash_footer --image b.img --partition_name boot --partition_size 1048576 \
  --chain_partition vendor:1:testkey_rsa2048.pem
bad_case "chain partition rollback location 0" "must be 1 or larger" b.img \
  "$TOOL" add_hash_footer --image b.img --partition_name boot --partition_size 1048576 \
  --rollback_index_location 3 --chain_partition vendor:0:testkey_rsa2048.avbpubkey
cp boot.img refooter.img
bad_case "signer failure while replacing a footer" "token removed" refooter.img \
  "$TOOL" add_hash_footer --image refooter.img --partition_name boot --partition_size 1048576 \
  --key testkey_rsa4096.pem --algorithm SHA256_RSA4096 --failing_signer
cp system.img refooter.img
bad_case "hashtree signer failure" "token removed" refooter.img \
  "$TOOL" add_hashtree_footer --image refooter.img --partition_name system --partition_size 2097152 \
  --do_not_generate_fec --key testkey_rsa2048.pem --algorithm SHA256_RSA2048 --failing_signer
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out other2048.pem 2>/dev/null
bad_case "signature from another key than the public key" "does not verify with the public key" refooter.img \
  "$TOOL" add_hashtree_footer --image refooter.img --partition_name system --partition_size 2097152 \
  --do_not_generate_fec --key testkey_rsa2048.pem --algorithm SHA256_RSA2048 --signing_key other2048.pem
bad_case "make_vbmeta_image with a failing signer" "token removed" vbmeta.img \
  "$TOOL" make_vbmeta_image --output vbmeta.img --key testkey_rsa4096.pem --algorithm SHA256_RSA4096 \
  --failing_signer
head -c $((1048576 - 10)) boot.img >trunc.img
bad_case "truncated footer" "truncated AVB footer" trunc.img \
  "$TOOL" add_hash_footer --image trunc.img --partition_name boot --partition_size 1048576 --salt 00
bad_case "info on a truncated footer" "truncated AVB footer" trunc.img \
  "$TOOL" info_image --image trunc.img
cp boot.img incons.img
printf '\x7f' | dd of=incons.img bs=1 seek=$((1048576 - 64 + 20)) conv=notrunc status=none
bad_case "footer pointing past the image" "inconsistent" incons.img \
  "$TOOL" add_hash_footer --image incons.img --partition_name boot --partition_size 1048576 --salt 00
cp vbmeta.img sizes.img
printf '\x10' | dd of=sizes.img bs=1 seek=22 conv=notrunc status=none
bad_case "vbmeta with an auxiliary block larger than the image" "run past" sizes.img \
  "$TOOL" info_image --image sizes.img
cp vbmeta.img sizes.img
printf '\x10' | dd of=sizes.img bs=1 seek=$((104 + 6)) conv=notrunc status=none
bad_case "vbmeta with descriptors outside the auxiliary block" "outside its block" sizes.img \
  "$TOOL" info_image --image sizes.img
bad_case "include descriptors from a file without AVB metadata" "no vbmeta struct (AVB0 magic) at offset 0 and no AVB footer" b.img \
  "$TOOL" make_vbmeta_image --output never.img --include_descriptors_from_image b.img
check "no output written after a failed make_vbmeta_image" test ! -e never.img

# --- 6. a multi-chunk image hashed on every core, against an independent tree --
if command -v python3 >/dev/null; then
  python3 - <<'PY'
import hashlib
n = 37 * 1024 * 1024 + 1234   # several 16 MiB read chunks, not block aligned
with open("big.img", "wb") as f:
    block = bytes(range(256)) * 16
    for i in range(n // 4096):
        f.write(hashlib.sha256(i.to_bytes(8, "big")).digest() * 128 if i % 7 else block)
    f.write(b"\x5a" * (n % 4096))
PY
  for alg in sha1 sha256; do
    cp big.img big-$alg.img
    "$TOOL" add_hashtree_footer --image big-$alg.img --partition_name big-$alg --partition_size $((48 * 1024 * 1024)) \
      --hash_algorithm $alg --do_not_generate_fec --salt 5a5a 2>/dev/null
    "$TOOL" info_image --image big-$alg.img >big-$alg.info
    check "$alg hash tree of a 37 MiB image matches an independent implementation" python3 - "$alg" <<'PY'
import hashlib, re, sys
alg = sys.argv[1]
salt, bs = bytes.fromhex("5a5a"), 4096
data = open("big.img", "rb").read()
data += b"\0" * (-len(data) % bs)
dlen = hashlib.new(alg).digest_size
slot = 1 << (dlen - 1).bit_length()
levels, cur = [], data
while len(cur) > bs:
    out = b"".join(hashlib.new(alg, salt + cur[i:i + bs]).digest().ljust(slot, b"\0")
                   for i in range(0, len(cur), bs))
    out += b"\0" * (-len(out) % bs)
    levels.append(out)
    cur = out
root = hashlib.new(alg, salt + cur).digest()
tree = b"".join(reversed(levels))
info = open("big-%s.info" % alg).read()
img = open("big-%s.img" % alg, "rb").read()
ok = re.search(r"Root Digest:\s+([0-9a-f]+)", info).group(1) == root.hex()
ok = ok and img[len(data):len(data) + len(tree)] == tree
ok = ok and ("Tree Size:             %d bytes" % len(tree)) in info
sys.exit(0 if ok else 1)
PY
    check "$alg big image verifies" "$TOOL" verify_image --image big-$alg.img
  done
else
  echo "skip - python3 not found: big image check not run"
fi

echo "$fails failure(s)"
[ "$fails" -eq 0 ]
