#!/bin/bash
# Crash safety of the in-place AVB footers (docs/avb.md, "In-place footers
# and crashes"). hsmsign is killed (SIGKILL) at every step of the in-place
# write: by the test-only HSMSIGN_TEST_AVB_CRASH_STEP knob (steps 1-4) and
# by the PKCS#11 shim hanging in C_Sign (killed there from outside). After
# each kill the image must be old or complete:
#   old:      its original bytes intact, no AVB footer (hsmsign avb info
#             refuses it exactly as it refused the original), same inode;
#   complete: byte-identical to AOSP avbtool 1.3.0's output.
# Then the same command, run again, must give avbtool's bytes exactly (an
# interrupted tail is rolled back, never hashed as image data), in the
# same inode, so a caller holding the image open reads the result. A
# re-sign (the image already has a footer) killed in C_Sign leaves the old
# signed image byte for byte. The audit entry is durable before the footer.
. "$(dirname "$0")/lib.sh"
: "${HSMSIGN_VECTORS:?}" "${P11SHIM:?P11SHIM must name the shim module}"
V=$HSMSIGN_VECTORS/avb
setup_token

cp "$V"/vendor.in.img "$V"/boot.in.img "$V"/testkey_rsa2048.pem "$V"/testkey_rsa4096.pem .
chmod u+w ./*
for bits in 2048 4096; do
    openssl pkcs8 -topk8 -nocrypt -outform DER -in "testkey_rsa$bits.pem" -out "k$bits.pk8"
    openssl req -x509 -new -key "testkey_rsa$bits.pem" -subj "/CN=avb-test-$bits" -days 30 \
        -out "k$bits.crt" 2>/dev/null
    hs -q key import "avb$bits" --pk8 "k$bits.pk8" --cert "k$bits.crt" ||
        { echo "Bail out! cannot import testkey_rsa$bits"; exit 1; }
done

# The two commands of tests/vectors/avb/commands.sh, as test_avb_hsm.sh runs them.
# Run as "$HSMSIGN" "${!cmd}" --image IMG, so a background job's $! is hsmsign itself.
hashtree=(avb add-hashtree-footer --partition_name vendor --partition-size 2097152
    --hash_algorithm sha256 --do_not_generate_fec --key avb2048 --algorithm SHA256_RSA2048
    --salt 0102030405060708090a0b0c0d0e0f100102030405060708090a0b0c0d0e0f10)
hashfooter=(avb add-hash-footer --partition_name boot --partition_size 1048576
    --key avb4096 --algorithm SHA256_RSA4096 --rollback_index 5
    --salt 0011223344556677889900112233445566778899001122334455667788990011)
run() { # command image
    local args="$1[@]"
    "$HSMSIGN" "${!args}" --image "$2"
}
entries() { cat audit/entries.jsonl 2>/dev/null | grep -c '"purpose":"avb-vbmeta"'; }

# old_state ORIGINAL IMAGE INODE WHAT
old_state() {
    local orig=$1 img=$2 ino=$3 what=$4 n
    n=$(stat -c %s "$orig")
    assert "$what: original bytes intact" cmp -s -n "$n" "$orig" "$img"
    assert "$what: no AVB footer (not \"AVBf\" at the end)" \
        test "$(tail -c 64 "$img" | head -c 4 | tr -d '\0')" != AVBf
    hs avb info "$orig" >/dev/null 2>info.orig
    hs avb info "$img" >/dev/null 2>info.now
    assert "$what: avb info refuses it as it refused the original" \
        test "$(sed "s|$img|IMG|" info.now)" = "$(sed "s|$orig|IMG|" info.orig)"
    assert "$what: same inode" test "$(stat -c %i "$img")" = "$ino"
}
# rerun_complete CMD IMAGE VECTOR INODE WHAT
rerun_complete() {
    local cmd=$1 img=$2 vec=$3 ino=$4 what=$5
    exec 3<"$img" # a caller (releasetools) holding the image open
    check "$what: the same command again" run "$cmd" "$img"
    assert "$what: then byte-identical to avbtool's" cmp -s "$img" "$vec"
    assert "$what: in the same inode" test "$(stat -c %i "$img")" = "$ino"
    assert "$what: which the open handle reads" cmp -s - "$vec" <&3
    exec 3<&-
}

# --- killed at each step of the in-place write ----------------------------
for spec in hashtree:vendor:1 hashtree:vendor:2 hashtree:vendor:3 hashtree:vendor:4 \
            hashfooter:boot:1 hashfooter:boot:3 hashfooter:boot:4; do
    IFS=: read -r cmd name step <<<"$spec"
    what="$cmd killed at step $step"
    cp "$name.in.img" "k.img"
    ino=$(stat -c %i k.img)
    before=$(entries)
    local_args="$cmd[@]"
    HSMSIGN_TEST_AVB_CRASH_STEP=$step "$HSMSIGN" "${!local_args}" --image k.img >/dev/null 2>&1
    rc=$?
    assert "$what: died of SIGKILL (exit $rc)" test "$rc" -eq 137
    if [ "$step" -ge 3 ]; then
        assert "$what: its audit entry is already there" test "$(entries)" -eq $((before + 1))
    fi
    if [ "$step" -le 3 ]; then
        old_state "$name.in.img" k.img "$ino" "$what"
        rerun_complete "$cmd" k.img "$V/$name.img" "$ino" "$what"
    else
        assert "$what: complete, byte-identical to avbtool's" cmp -s k.img "$V/$name.img"
        assert "$what: in the same inode" test "$(stat -c %i k.img)" = "$ino"
    fi
done

# --- killed while the HSM signs (the shim hangs in C_Sign) ------------------
sign_hang() { # image command
    local img=$1 cmd=$2 pid args="$2[@]"
    rm -f "$WORK/mark"
    HSMSIGN_MODULE=$P11SHIM HSMSIGN_SHIM_MODULE=$SOFTHSM_MODULE HSMSIGN_SHIM_FAIL_FUNC=C_Sign \
        HSMSIGN_SHIM_FAIL_MODE=hang HSMSIGN_SHIM_HANG_MARK="$WORK/mark" \
        "$HSMSIGN" "${!args}" --image "$img" >/dev/null 2>"$WORK/err" &
    pid=$!
    while [ ! -e "$WORK/mark" ] && kill -0 $pid 2>/dev/null; do sleep 0.05; done
    if [ ! -e "$WORK/mark" ]; then
        wait $pid
        fail "$cmd on $img ended (exit $?) before reaching C_Sign"; sed 's/^/    /' "$WORK/err"
        return 1
    fi
    kill -9 $pid
    wait $pid 2>/dev/null
    return 0
}
cp vendor.in.img h.img
ino=$(stat -c %i h.img)
if sign_hang h.img hashtree; then
    pass "hashtree killed in C_Sign"
    old_state vendor.in.img h.img "$ino" "hashtree killed in C_Sign"
    rerun_complete hashtree h.img "$V/vendor.img" "$ino" "hashtree killed in C_Sign"
fi

# Re-signing an image with a footer: the old signed image survives whole.
mkdir -p rs
cp "$V/vendor.img" rs/vendor.img
chmod u+w rs/vendor.img
if sign_hang rs/vendor.img hashtree; then
    pass "re-sign killed in C_Sign"
    assert "re-sign killed in C_Sign: the old signed image, byte for byte" \
        cmp -s rs/vendor.img "$V/vendor.img"
    check "re-sign killed in C_Sign: avb verify accepts it" hs avb verify rs/vendor.img
fi
finish
