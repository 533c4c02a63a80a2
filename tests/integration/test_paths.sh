#!/bin/bash
# Output paths, batch manifests and AVB partition names (issue 11): no
# command writes into the audit log or the key store however the path is
# spelled, no key-store write replaces a key file, batch outputs are
# resolved before they are compared, and AVB partition names are plain
# names that verification opens only as regular files.
. "$(dirname "$0")/lib.sh"
: "${HSMSIGN_VECTORS:?}"
setup_token
check "generate k1" hs key generate k1 --algorithm rsa2048
echo "data" >in.txt
check "a first signature: the log has entries and a checkpoint" hs sign raw --key k1 in.txt first.sig
assert "audit/entries.jsonl and audit/checkpoint exist" test -s audit/entries.jsonl -a -s audit/checkpoint
cp "$HSMSIGN_VECTORS/apk/app21.apk" app.apk
check "extract k1's AVB public key" hs avb extract-public-key --key k1 --output k1.avbpubkey
cp k1.avbpubkey chainkey.avbpubkey

# Every file under audit/ and keys/ (names and bytes, .git included): a
# refused command changes none of them.
state() { (cd "$WORK" && find audit keys -print0 | sort -z | xargs -0 sha256sum 2>&1); }

# refused DESCRIPTION PATTERN COMMAND...: fails, says PATTERN (the path and
# the reason), leaves the log and key store byte-identical, no temp file.
# A case that damages them is reported and then undone from a copy, so
# each case is judged on its own (against the old code, the first
# destroyed log would otherwise fail every later case for that reason).
refused() {
    local what=$1 pattern=$2 before; shift 2
    before=$(state)
    rm -rf "$WORK/.snap" && mkdir "$WORK/.snap" && cp -a audit keys "$WORK/.snap/"
    expect_fail "$what" nonzero "$pattern" "$@"
    if [ "$before" = "$(state)" ]; then pass "$what: audit log and key store unchanged"
    else fail "$what: audit log or key store changed"; rm -rf audit keys; cp -a "$WORK/.snap/audit" "$WORK/.snap/keys" .; fi
    assert "$what: no temporary file left" test -z "$(find "$WORK" -name '*.tmp.*' -print -quit)"
}

# --- outputs onto the log or the key store, however spelled ------------------
ln -s audit logdir        # a symlinked directory
ln -s audit/entries.jsonl entries-link.sig   # a symlink file
ln -s keys/k1.key key-link.sig
ln -s audit/not-yet dangling.sig             # a dangling symlink into the log
mkdir -p sub
targets=(audit/entries.jsonl audit/checkpoint audit/new.out keys/k1.key keys/new.out
         sub/../audit/entries.jsonl "$WORK/keys/./k1.key" keys/../audit/checkpoint
         logdir/entries.jsonl logdir/new.out entries-link.sig key-link.sig dangling.sig
         audit keys/)
why="(is inside the (audit log|key store)|is a hard link to)"
for t in "${targets[@]}"; do
    refused "sign raw -> $t" "output $t.*$why" hs sign raw --key k1 in.txt "$t"
    refused "sign apk -> $t" "output $t.*$why" hs sign apk --key k1 app.apk "$t"
    refused "avb make-vbmeta -> $t" "output $t.*$why" \
        hs avb make-vbmeta --output "$t" --key k1 --algorithm SHA256_RSA2048
    refused "avb extract-public-key -> $t" "output $t.*$why" \
        hs avb extract-public-key --key k1 --output "$t"
    refused "key show --output $t" "output $t.*$why" hs key show k1 --public-key --output "$t"
done
refused "sign apk --out-dir audit" "output audit/app.apk.*is inside the audit log" \
    hs sign apk --key k1 --out-dir audit app.apk
refused "sign apk --out-dir through a symlinked dir" "output logdir/app.apk.*is inside the audit log" \
    hs sign apk --key k1 --out-dir logdir app.apk
ln keys/k1.key hardlink.sig
refused "sign raw onto a hard link of a key file" \
    "output hardlink.sig is a hard link to .*keys/k1.key in the key store" \
    hs sign raw --key k1 in.txt hardlink.sig
rm -f hardlink.sig
# AVB footers change their image by design, but never the log or a key.
for t in audit/entries.jsonl entries-link.sig keys/k1.key; do
    refused "avb add-hash-footer --image $t" "output $t.*$why" \
        hs avb add-hash-footer --image "$t" --partition-name boot --partition-size 1048576 --salt 00
done
refused "avb signing-helper-with-files onto the log" "output audit/entries.jsonl.*$why" \
    hs avb signing-helper-with-files SHA256_RSA2048 k1.avbpubkey audit/entries.jsonl
for t in audit/entries.jsonl audit/new.proof logdir/checkpoint; do
    refused "audit prove --output $t" "output $t.*$why" hs audit prove --index 0 --output "$t"
done
check "an ordinary output still works" hs sign raw --key k1 in.txt sub/../ok.sig
assert "ok.sig written" test -s ok.sig

# --- an input is never an output ----------------------------------------------
cp in.txt in.orig
refused "sign raw IN ./IN" "output ./in.txt is the input file in.txt" \
    hs sign raw --key k1 in.txt ./in.txt
cp app.apk app.orig
refused "sign apk IN sub/../IN" "sub/../app.apk is the input file" \
    hs sign apk --key k1 app.apk sub/../app.apk
cp k1.avbpubkey chainkey.orig
refused "make-vbmeta over its own chain key" "output ./chainkey.avbpubkey is the input file" \
    hs avb make-vbmeta --output ./chainkey.avbpubkey --chain-partition boot:1:chainkey.avbpubkey
assert "inputs unchanged" cmp -s in.txt in.orig
assert "APK input unchanged" cmp -s app.apk app.orig
assert "AVB key input unchanged" cmp -s chainkey.avbpubkey chainkey.orig

# --- the key store: never replace a key file ------------------------------------
refused "key generate over an existing key" "key 'k1' already exists" \
    hs key generate k1 --algorithm rsa2048
echo "planted" >keys/k2.key
refused "key generate over a planted file" "key 'k2' already exists" \
    hs key generate k2 --algorithm rsa2048
assert "planted file unchanged" test "$(cat keys/k2.key)" = planted
openssl genrsa -out rsa.pem 2048 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in rsa.pem -outform DER -out rsa.pk8
openssl req -new -x509 -sha256 -key rsa.pem -subj "/CN=paths" -days 30 -out rsa.crt
refused "key import over an existing key" "key 'k1' already exists" \
    hs key import k1 --pk8 rsa.pk8 --cert rsa.crt
refused "key import over a planted file" "key 'k2' already exists" \
    hs key import k2 --pk8 rsa.pk8 --cert rsa.crt
rm -f keys/k2.key

# --- batch manifests -------------------------------------------------------------
mkdir -p mf/in elsewhere
cp app.apk mf/in/a.apk
cp app.apk mf/in/b.apk
cat >mf/rel.json <<'EOF'
[{"input": "in/a.apk", "output": "signed-a.apk", "key": "k1"}]
EOF
check "batch from another directory" bash -c "cd elsewhere && \"$HSMSIGN\" sign batch ../mf/rel.json"
assert "relative output resolved against the manifest's directory" test -s mf/signed-a.apk
assert "nothing written relative to the working directory" test ! -e elsewhere/signed-a.apk
check "the batch output verifies" hs verify apk mf/signed-a.apk
cat >mf/dup.json <<'EOF'
[{"input": "in/a.apk", "output": "out/a.apk", "key": "k1"},
 {"input": "in/b.apk", "output": "./out/a.apk", "key": "k1"}]
EOF
mkdir -p mf/out
refused "batch: a and ./a are one output" "manifest .*dup.json: entries 1 and 2 write the same output" \
    bash -c "cd elsewhere && \"$HSMSIGN\" sign batch ../mf/dup.json"
assert "batch duplicates: nothing signed" test ! -e mf/out/a.apk
cat >mf/log.json <<'EOF'
[{"input": "in/a.apk", "output": "ok-a.apk", "key": "k1"},
 {"input": "in/b.apk", "output": "../audit/b.apk", "key": "k1"}]
EOF
refused "batch: an output in the log" "manifest .*log.json: entry 2 .*output mf/../audit/b.apk.*inside the audit log" \
    hs sign batch mf/log.json
assert "batch with an output in the log: nothing signed" test ! -e mf/ok-a.apk
cat >mf/keys.json <<'EOF'
[{"input": "in/a.apk", "output": "../keys/k1.key", "key": "k1"}]
EOF
refused "batch: an output over a key file" "entry 1 .*inside the key store" hs sign batch mf/keys.json
cat >mf/chain.json <<'EOF'
[{"input": "in/a.apk", "output": "in/b.apk", "key": "k1"},
 {"input": "in/b.apk", "output": "b-signed.apk", "key": "k1"}]
EOF
refused "batch: an output that is another entry's input" \
    "output mf/in/b.apk of entry 1 is the input mf/in/b.apk of entry 2" hs sign batch mf/chain.json
assert "batch: the other entry's input unchanged" cmp -s mf/in/b.apk app.apk

# --- AVB partition names ------------------------------------------------------------
for spec in "../x:1:k1.avbpubkey" "a/b:1:k1.avbpubkey" "..:1:k1.avbpubkey" \
            "$(printf 'bo\001ot'):1:k1.avbpubkey" "$(printf 'bo\tot'):1:k1.avbpubkey"; do
    refused "make-vbmeta --chain-partition '$spec'" "partition name \".*\" is not a plain name" \
        hs avb make-vbmeta --output bad-name.img --chain-partition "$spec"
    assert "make-vbmeta '$spec': no output" test ! -e bad-name.img
done
head -c 8192 /dev/urandom >named.img
cp named.img named.orig
refused "add-hash-footer --partition-name ../boot" "partition name \"../boot\" is not a plain name" \
    hs avb add-hash-footer --image named.img --partition-name ../boot --partition-size 131072 --salt 00
assert "add-hash-footer with a bad name: image unchanged" cmp -s named.img named.orig

# A chained image outside the directory, reached by a descriptor named
# "../evil/chain" (the old code verified it and exited 0).
mkdir -p v evil
check "a chained image signed by k1" hs avb make-vbmeta --output evil/chain.img --key k1 --algorithm SHA256_RSA2048
check "an unsigned vbmeta chaining AAAAAAAAAAAAA" \
    hs avb make-vbmeta --output v/vbmeta.img --chain-partition AAAAAAAAAAAAA:1:k1.avbpubkey
python3 - v/vbmeta.img <<'EOF'
import sys
p = sys.argv[1]
b = open(p, 'rb').read()
assert b.count(b'AAAAAAAAAAAAA') == 1
open(p, 'wb').write(b.replace(b'AAAAAAAAAAAAA', b'../evil/chain'))
EOF
refused "verify: a chain descriptor named ../evil/chain" \
    "v/vbmeta.img: partition name \"../evil/chain\" is not a plain name" \
    hs avb verify v/vbmeta.img --follow-chain-partitions --allow-unsigned

# A chained image that is a symlink: not followed.
mkdir -p s
check "vbmeta chaining 'link'" hs avb make-vbmeta --output s/vbmeta.img --chain-partition link:1:k1.avbpubkey
ln -s ../evil/chain.img s/link.img
refused "verify: a chained image that is a symlink" "s/link.img: is a symbolic link" \
    hs avb verify s/vbmeta.img --follow-chain-partitions --allow-unsigned

# A FIFO named like a partition: a prompt error, not a hang. `timeout` is a
# bug detector here (exit 124), not a timing assertion.
no_hang() { # DESCRIPTION PATTERN COMMAND...
    local what=$1 pattern=$2; shift 2
    timeout 20 "$@" >"$WORK/out" 2>"$WORK/err"
    local rc=$?
    if [ "$rc" -eq 124 ]; then fail "$what: hangs (killed by timeout)"
    elif [ "$rc" -eq 0 ]; then fail "$what: succeeded, expected failure"
    elif ! grep -qE -- "$pattern" "$WORK/err"; then
        fail "$what: message does not match /$pattern/:"; sed 's/^/    /' "$WORK/err"
    else pass "$what"; fi
}
mkdir -p f h
check "vbmeta chaining 'fifo'" hs avb make-vbmeta --output f/vbmeta.img --chain-partition fifo:1:k1.avbpubkey
mkfifo f/fifo.img
no_hang "verify: a FIFO as the chained image" "f/fifo.img: not a readable regular file" \
    "$HSMSIGN" avb verify f/vbmeta.img --follow-chain-partitions --allow-unsigned
head -c 4096 /dev/urandom >h/sys.img
check "a hash footer for partition sys" \
    hs avb add-hash-footer --image h/sys.img --partition-name sys --partition-size 131072 --salt 00
check "a vbmeta including sys's descriptor" \
    hs avb make-vbmeta --output h/vbmeta.img --include-descriptors-from-image h/sys.img
mv h/sys.img h/sys.real
mkfifo h/sys.img
no_hang "verify: a FIFO as a hash partition image" "h/sys.img: not a readable regular file" \
    "$HSMSIGN" avb verify h/vbmeta.img --allow-unsigned
no_hang "avb info on a FIFO" "h/sys.img: not a readable regular file" "$HSMSIGN" avb info h/sys.img
no_hang "sign raw of a FIFO" "h/sys.img: not a regular file" \
    "$HSMSIGN" sign raw --key k1 h/sys.img fifo.sig
rm h/sys.img
mv h/sys.real h/sys.img
check "the same vbmeta verifies with the real image" hs avb verify h/vbmeta.img --allow-unsigned

finish
