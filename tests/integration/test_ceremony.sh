#!/bin/bash
# Wrap-key ceremonies against real SoftHSM tokens and the real age CLI:
# 3-of-5 provisioning onto two tokens, PINs readable only by their roles,
# keys that sign on both tokens, the primary destroyed and restored from
# shares (piped from `age -d` and decrypted by hsmsign), refusals, and no
# secret in any file the ceremony wrote. Checked by age, openssl,
# pkcs11-tool and an independent Python reader of the share format.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
SHARES_PY=$HERE/ceremony_shares.py
unset HSMSIGN_PIN HSMSIGN_SO_PIN

shared_softhsm
write_config() { # FILE NAME PRIMARY BACKUP
    ceremony_config "$1" "$2" "pkcs11:token=$3" "$4" 3 alice bob carol dave erin
}
mkdir -p ids && age-keygen -o ids/mallory.txt 2>/dev/null   # holds no share
write_config ceremony.json "Example OS 2026" primary backup

# --- provisioning -----------------------------------------------------------
check "provision 3-of-5 onto two blank tokens" hs ceremony provision ceremony.json --out-dir cer
C=$WORK/cer
for f in transcript.json transcript.json.sig transcript.txt transcript.txt.sig audit-key.pem \
         credentials/primary-so-pin.age credentials/primary-user-pin.age \
         credentials/backup-so-pin.age credentials/backup-user-pin.age; do
    assert "ceremony wrote $f" test -s "cer/$f"
done
assert "five share files" test "$(ls cer/shares | wc -l)" -eq 5
tj() { python3 -c "import json,sys; t=json.load(open('$C/transcript.json')); print($1)"; }
assert "transcript: 3 of 5" test "$(tj 't["shares"]["threshold"], t["shares"]["count"]')" = "3 5"
assert "transcript names both tokens" test "$(tj '" ".join(x["label"] for x in t["tokens"])')" = "primary backup"
assert "transcript: the tool's own SHA-256" \
    test "$(tj 't["tool"]["sha256"]')" = "$(sha256sum "$HSMSIGN_BINARY" | cut -d' ' -f1)"
for i in 0 1 2 3 4; do
    f=$(tj "t['shares']['holders'][$i]['file']")
    assert "transcript: SHA-256 of $f" test "$(tj "t['shares']['holders'][$i]['sha256']")" = "$(sha256sum "cer/$f" | cut -d' ' -f1)"
done
assert "transcript.txt names the check value" grep -q "check value (KCV) $(tj 't["wrap_key"]["check_value"]')" cer/transcript.txt
assert "the transcript records the token profile (wrapped)" test "$(tj 't["wrap_key"]["profile"]')" = wrapped

# The transcript signature, checked by openssl with the exported audit key.
alg=$(tj 't["audit_key"]["algorithm"]')
osslverify() { # FILE SIG
    if [ "$alg" = ed25519 ]; then
        openssl pkeyutl -verify -pubin -inkey cer/audit-key.pem -rawin -in "$1" -sigfile "$2" 1>&2
    else
        openssl dgst -sha256 -verify cer/audit-key.pem -signature "$2" "$1" 1>&2
    fi
}
assert "audit key is Ed25519 (SoftHSM 2.6 has CKM_EDDSA)" test "$alg" = ed25519
check "openssl verifies transcript.json's signature" osslverify cer/transcript.json cer/transcript.json.sig
check "openssl verifies transcript.txt's signature" osslverify cer/transcript.txt cer/transcript.txt.sig
sed 's/Example OS 2026/Example OS 2027/' cer/transcript.json >forged.json
expect_fail "openssl rejects an altered transcript" nonzero "[Ff]ail" osslverify forged.json cer/transcript.json.sig

# PINs: each decrypts for its role only, and logs in (pkcs11-tool).
declare -A PIN
for t in primary backup; do
    PIN[$t-so]=$(age -d -i ids/admin.txt "cer/credentials/$t-so-pin.age")
    PIN[$t-user]=$(age -d -i ids/operator.txt "cer/credentials/$t-user-pin.age")
    assert "$t SO PIN decrypts for the admin" test "${#PIN[$t-so]}" -ge 16
    assert "$t user PIN decrypts for the operator" test "${#PIN[$t-user]}" -ge 16
    expect_fail "the operator cannot read the $t SO PIN" nonzero "no identity matched" \
        age -d -i ids/operator.txt "cer/credentials/$t-so-pin.age"
    check "$t user PIN logs in (pkcs11-tool)" pkcs11-tool --module "$SOFTHSM_MODULE" \
        --token-label "$t" --login --pin "${PIN[$t-user]}" --list-objects
    cp "$WORK/out" "objects-$t.txt"
    check "$t SO PIN logs in as SO (pkcs11-tool)" pkcs11-tool --module "$SOFTHSM_MODULE" \
        --token-label "$t" --session-rw --login --login-type so --so-pin "${PIN[$t-so]}" --list-objects
    expect_fail "a wrong PIN does not log in to $t" nonzero "CKR_PIN_INCORRECT" \
        pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$t" --login --pin 000000 --list-objects
    assert "$t holds the AES-256 wrap key" grep -q "Secret Key Object; AES length 32" "objects-$t.txt"
done
assert "the primary holds the audit key pair" \
    test "$(grep -c 'label: *hsmsign-audit' objects-primary.txt)" -eq 2
assert "the backup holds no audit key" bash -c "! grep -q hsmsign-audit objects-backup.txt"
assert "wrap key is sensitive and not extractable" \
    bash -c "grep -A4 'Secret Key Object' objects-primary.txt | grep 'Access:' | grep -q 'sensitive' && ! grep -A4 'Secret Key Object' objects-primary.txt | grep 'Access:' | grep -qw extractable"

# --- keys made after provisioning sign on both tokens ------------------------
echo "release payload" >data.txt
export HSMSIGN_PIN=${PIN[primary-user]}
check "generate ec-p256 key on the primary" hs --token primary key generate app --algorithm ec-p256
check "generate rsa2048 key on the primary" hs --token primary key generate plat --algorithm rsa2048
hs key show app --public-key >app.pem
hs key show plat --public-key >plat.pem
check "sign on the primary" hs --token pkcs11:token=primary sign raw --key app data.txt p.sig
check "openssl verifies the primary's signature" openssl dgst -sha256 -verify app.pem -signature p.sig data.txt
export HSMSIGN_PIN=${PIN[backup-user]}
# The backup holds no audit key: it cannot vouch for the primary's log, so
# it signs nothing until it has an audit key and a log of its own.
n_log=$(wc -l <audit/entries.jsonl)
expect_fail "the backup, without an audit key, is refused (exit 7) and told how to get one" 7 \
    "token 'backup' has no audit key.*audit init" hs --token backup sign raw --key app data.txt b.sig
assert "... it wrote no signature and no entry" \
    test ! -e b.sig -a "$(wc -l <audit/entries.jsonl)" -eq "$n_log"
check "audit init gives the backup its own audit key and log" \
    hs --token backup --audit-log audit-backup audit init
export HSMSIGN_AUDIT_LOG=$WORK/audit-backup
check "the same key file signs on the backup" hs --token backup sign raw --key app data.txt b.sig
check "openssl verifies the backup's signature" openssl dgst -sha256 -verify app.pem -signature b.sig data.txt
check "rsa2048 signs on the backup" hs --token backup sign raw --key plat data.txt b2.sig
export HSMSIGN_AUDIT_LOG=$WORK/audit
check "openssl verifies the backup's RSA signature" openssl dgst -sha256 -verify plat.pem -signature b2.sig data.txt

# --- no secret in any file the ceremony or the tokens wrote -----------------
mkdir plain
for h in alice bob carol dave erin; do
    age -d -i "ids/$h.txt" -o "plain/$h.share" cer/shares/*-"$h".share.age
done
WRAPKEY=$(python3 "$SHARES_PY" recover plain/alice.share plain/carol.share plain/erin.share)
assert "the Python reader rebuilds a 32-byte key matching the transcript's check value" \
    test "${#WRAPKEY}" -eq 64
assert "another 3 shares give the same key" \
    test "$(python3 "$SHARES_PY" recover plain/bob.share plain/dave.share plain/alice.share)" = "$WRAPKEY"
expect_fail "the Python reader cannot rebuild from 2 shares" nonzero "fewer than k" \
    python3 "$SHARES_PY" recover plain/bob.share plain/dave.share
for i in 0 1 2 3 4; do
    h=$(tj "t['shares']['holders'][$i]['name']")
    assert "the Python reader's commitment to $h's share (docs/share-format.md) is the transcript's" \
        test "$(python3 "$SHARES_PY" commit "plain/$h.share" "$(tj "t['shares']['holders'][$i]['commitment_salt']")")" = "$(tj "t['shares']['holders'][$i]['commitment']")"
done
cat >scan.py <<'PY'
import base64, os, sys
key = bytes.fromhex(sys.argv[1])
needles = [key, key.hex().encode(), key.hex().upper().encode(), base64.b64encode(key),
           base64.b64encode(key).rstrip(b"=")] + [p.encode() for p in sys.argv[2].split()]
found, files = [], 0
for root in sys.argv[3:]:
    for d, _, names in os.walk(root):
        for n in names:
            data = open(os.path.join(d, n), "rb").read()
            files += 1
            for x in needles:
                if x in data:
                    found.append(os.path.join(d, n))
                    print("secret found in", os.path.join(d, n), file=sys.stderr)
print(files, "files scanned")
sys.exit(1 if found or files < 20 else 0)
PY
check "neither the wrap key nor a PIN is in any file written (ceremony, tokens, keys, audit)" \
    python3 scan.py "$WRAPKEY" "${PIN[*]}" cer hsm/tokens keys audit
cp plain/alice.share cer/leak.txt
expect_fail "the scan finds a plaintext share's key material when present" nonzero "secret found in cer/leak.txt" \
    python3 scan.py "$(python3 -c "print(open('plain/alice.share').read().split('y: ')[1][:64])")" "" cer
rm cer/leak.txt

# --- shares verify and refusals ---------------------------------------------
S=cer/shares
share() { ls $S/*-"$1".share.age; }
ids3="--identity ids/alice.txt --identity ids/bob.txt --identity ids/carol.txt"
check "shares verify: 3 encrypted shares" hs shares verify --transcript cer/transcript.json --audit-key cer/audit-key.pem \
    --share "$(share alice)" --share "$(share bob)" --share "$(share carol)" $ids3
assert "shares verify reports the check value" grep -q "$(tj 't["wrap_key"]["check_value"]')" "$WORK/out"
check "2 shares: each checked against its commitment, the key not rebuilt" \
    hs shares verify --transcript cer/transcript.json --audit-key cer/audit-key.pem --share "$(share alice)" --share "$(share bob)" $ids3
assert "... it says so" grep -q "2 shares of ceremony 'Example OS 2026' match the commitment.*needs 3 together; not reconstructed" "$WORK/out"
check "a holder checks their own share alone" \
    hs shares verify --transcript cer/transcript.json --audit-key cer/audit-key.pem --share "$(share dave)" --identity ids/dave.txt
expect_fail "2 shares cannot restore" 1 "2 usable shares, ceremony 'Example OS 2026' needs 3" \
    hs ceremony restore --token nothing-here --transcript cer/transcript.json --audit-key cer/audit-key.pem --share "$(share alice)" --share "$(share bob)" $ids3

cp "$(share carol)" flipped.age
python3 -c "import sys; b=bytearray(open(sys.argv[1],'rb').read()); b[-20]^=0x10; open(sys.argv[1],'wb').write(b)" flipped.age
expect_fail "a share with one flipped byte is detected" 1 "flipped.age: set aside: cannot decrypt" \
    hs shares verify --transcript cer/transcript.json --audit-key cer/audit-key.pem --share "$(share alice)" --share "$(share bob)" \
    --share flipped.age $ids3
expect_fail "with 4 shares the flipped one is named and the rest suffice" 1 "flipped.age: set aside.*|restore.*3 shares" \
    hs shares verify --transcript cer/transcript.json --audit-key cer/audit-key.pem --share "$(share alice)" --share "$(share bob)" \
    --share flipped.age --share "$(share dave)" $ids3 --identity ids/dave.txt
assert "... and it says the key can be restored from the other 3" grep -q "can be restored from 3 shares" "$WORK/err"

# A flipped byte inside a plain share (piped): its checksum names it.
sed 's/^label: carol$/label: carol/; s/^y: \(.\)/y: X\1/' plain/carol.share | sed 's/^y: X0/y: 1/; s/^y: X[^0]/y: 0/' >carol.bad
assert "the damaged plain share differs in one byte" test "$(cmp -l plain/carol.share carol.bad | wc -l)" -eq 1
expect_fail "a piped share with a flipped byte is named among 4" 1 "carol.*checksum" \
    bash -c "cat plain/alice.share plain/bob.share carol.bad plain/dave.share | \"$HSMSIGN\" shares verify --transcript cer/transcript.json --audit-key cer/audit-key.pem --share-stdin"

# An intact-looking share not on the polynomial (checksum recomputed).
python3 "$SHARES_PY" tamper-y plain/carol.share carol.tampered
expect_fail "a forged share (checksum recomputed) is named with exactly 3: its commitment" 1 \
    "standard input share #3 .carol.: set aside: it does not match the commitment to carol.s share" \
    bash -c "cat plain/alice.share plain/bob.share carol.tampered | \"$HSMSIGN\" shares verify --transcript cer/transcript.json --audit-key cer/audit-key.pem --share-stdin"
expect_fail "a tampered share among 4 is named" 1 "carol.*does not match the commitment" \
    bash -c "cat plain/alice.share plain/bob.share carol.tampered plain/dave.share | \"$HSMSIGN\" shares verify --transcript cer/transcript.json --audit-key cer/audit-key.pem --share-stdin"

expect_fail "a wrong age identity is a clear error" 1 "none of the given age identities can decrypt it" \
    hs shares verify --transcript cer/transcript.json --audit-key cer/audit-key.pem --share "$(share alice)" --share "$(share bob)" \
    --share "$(share carol)" --identity ids/alice.txt --identity ids/bob.txt --identity ids/mallory.txt

# A second ceremony on two more tokens: its shares are foreign to the first.
write_config other.json "Other ceremony" primary2 backup2
check "a second ceremony on two more tokens" hs --audit-log audit2 ceremony provision other.json --out-dir cer2
expect_fail "a share from another ceremony is refused" 1 "another ceremony" \
    hs shares verify --transcript cer/transcript.json --audit-key cer/audit-key.pem --share "$(share alice)" --share "$(share bob)" \
    --share "$(ls cer2/shares/*-carol.share.age)" $ids3

# The transcript is trusted through the auditor's own copy of the audit key
# (--audit-key), never through the key written inside it.
good3="--share $(share alice) --share $(share bob) --share $(share carol) $ids3"
mkdir -p unsigned && cp cer/transcript.json unsigned/
expect_fail "an unsigned transcript is refused (exit 1)" 1 "no signature.*--unsigned-transcript" \
    hs shares verify --transcript unsigned/transcript.json --audit-key cer/audit-key.pem $good3
check "... --unsigned-transcript goes on, and says so" \
    hs shares verify --transcript unsigned/transcript.json --unsigned-transcript $good3
assert "... with a warning that the signature was not checked" grep -q "signature NOT checked" "$WORK/err"
expect_fail "without --audit-key the transcript is not trusted (usage)" 2 "--audit-key PEM is required" \
    hs shares verify --transcript cer/transcript.json $good3
# Mallory rewrites the transcript with her own audit key and signs it.
mkdir -p forged && openssl genpkey -algorithm ed25519 -out forged/mallory.key 2>/dev/null
openssl pkey -in forged/mallory.key -pubout -out forged/mallory.pem
python3 - cer/transcript.json forged/mallory.pem forged/transcript.json <<'PY'
import base64, hashlib, json, sys
t = json.load(open(sys.argv[1])); pem = open(sys.argv[2]).read()
der = base64.b64decode("".join(l for l in pem.splitlines() if "-----" not in l))
t["audit_key"]["public_key_pem"] = pem
t["audit_key"]["spki_sha256"] = hashlib.sha256(der).hexdigest()
t["shares"]["threshold"] = 2
open(sys.argv[3], "w").write(json.dumps(t, indent=2) + "\n")
PY
openssl pkeyutl -sign -inkey forged/mallory.key -rawin -in forged/transcript.json -out forged/transcript.json.sig
check "the forged transcript verifies with the key written inside it (openssl)" \
    openssl pkeyutl -verify -pubin -inkey forged/mallory.pem -rawin -in forged/transcript.json -sigfile forged/transcript.json.sig
expect_fail "a transcript re-signed with another key is refused with the pinned key" 1 \
    "signature forged/transcript.json.sig with the pinned key cer/audit-key.pem" \
    hs shares verify --transcript forged/transcript.json --audit-key cer/audit-key.pem $good3
expect_fail "... also by ceremony restore, before any token is touched" 1 "pinned key" \
    hs ceremony restore --token nothing-here --transcript forged/transcript.json --audit-key cer/audit-key.pem $good3

# --- reset, then prove blank; nothing changes before every credential works --
PLANT=$HERE/softhsm_plant.py
p11() { pkcs11-tool --module "$SOFTHSM_MODULE" "$@"; }
fresh_token() { # LABEL SO-PIN [HIDDEN-OBJECT-LABEL]: a "fresh" token (no user PIN)
    softhsm2-util --init-token --free --label "$1" --so-pin "$2" --pin 99999999 >/dev/null
    if [ -n "${3:-}" ]; then
        echo "previous holder's credential" >hidden.dat
        p11 --token-label "$1" --login --pin 99999999 --write-object hidden.dat --type data \
            --label "$3" --private >/dev/null 2>&1
    fi
    python3 "$PLANT" "$WORK/hsm/tokens" "$1"
}
fresh_token planted-p 11111111 hidden-p
fresh_token planted-b 22222222 hidden-b
assert "a planted token looks fresh: no user PIN" \
    bash -c "softhsm2-util --show-slots | grep -B1 'Label: *planted-p ' | grep -q 'User PIN init.: *no'"
check "... and its SO sees no object (the private one is hidden from the SO)" \
    p11 --token-label planted-p --session-rw --login --login-type so --so-pin 11111111 --list-objects
assert "... (none listed)" bash -c "! grep -q 'Object' \"$WORK/out\""
write_config planted.json "Planted" planted-p planted-b
export CUR_P=11111111 CUR_B=22222222
check "provision two fresh tokens, one hiding a private object each" \
    hs --audit-log audit-planted ceremony provision planted.json --out-dir cer-planted \
    --current-so-pin-source env:CUR_P --backup-current-so-pin-source env:CUR_B
for t in p b; do
    upin=$(age -d -i ids/operator.txt "cer-planted/credentials/$([ $t = p ] && echo primary || echo backup)-user-pin.age")
    check "planted-$t: the new user lists the token's objects" \
        p11 --token-label planted-$t --login --pin "$upin" --list-objects
    assert "planted-$t: the planted private object is gone (the token was reset)" \
        bash -c "! grep -q hidden-$t \"$WORK/out\""
done
assert "the transcript records each token's firmware version" \
    python3 -c "import json; t=json.load(open('cer-planted/transcript.json')); assert all(x['firmware'] == '2.6' for x in t['tokens']), t['tokens']"
assert "PINs carry at least 128 bits (26 symbols of 5 bits)" \
    test "$(age -d -i ids/admin.txt cer-planted/credentials/primary-so-pin.age | tr -d '\n' | wc -c)" -ge 26

# A wrong backup SO PIN is found before anything changes.
fresh_token wrongso-p 33333333
fresh_token wrongso-b 44444444
write_config wrongso.json "Wrong SO PIN" wrongso-p wrongso-b
export CUR_P=33333333 CUR_B=55555555
expect_fail "a wrong backup SO PIN is refused" 4 "backup token, before anything changed.*CKR_PIN_INCORRECT" \
    hs --audit-log audit-wrongso ceremony provision wrongso.json --out-dir cer-wrongso \
    --current-so-pin-source env:CUR_P --backup-current-so-pin-source env:CUR_B
assert "... nothing written: no ceremony directory, no audit log" test ! -e cer-wrongso -a ! -e audit-wrongso
check "... the primary's SO PIN is still the old one" \
    p11 --token-label wrongso-p --session-rw --login --login-type so --so-pin 33333333 --list-objects
assert "... and the primary still has no user PIN" \
    bash -c "softhsm2-util --show-slots | grep -B1 'Label: *wrongso-p ' | grep -q 'User PIN init.: *no'"
export CUR_B=44444444
check "... with the right PIN the same tokens provision" \
    hs --audit-log audit-wrongso ceremony provision wrongso.json --out-dir cer-wrongso \
    --current-so-pin-source env:CUR_P --backup-current-so-pin-source env:CUR_B

# Roles as docs/ceremony.md promises them.
write_config roles.json "Roles" roles-p roles-b
python3 -c "
import json; c = json.load(open('roles.json')); c['roles']['operator'] = c['roles']['admin']
json.dump(c, open('sameroles.json', 'w'))
c = json.load(open('roles.json')); c['roles']['admin'] = [c['holders'][0]['recipient']]
json.dump(c, open('holderadmin.json', 'w'))"
expect_fail "admin = operator is refused: one person would hold both PINs" 5 "both admin and operator" \
    hs --audit-log audit-roles ceremony provision sameroles.json --out-dir cer-roles
expect_fail "a share holder who is also admin is refused unless the config says so" 5 \
    "share holder 'alice' is also admin.*holders-may-hold-roles" \
    hs --audit-log audit-roles ceremony provision holderadmin.json --out-dir cer-roles
assert "... nothing written, the tokens untouched" \
    bash -c "test ! -e cer-roles -a ! -e audit-roles && ! softhsm2-util --show-slots | grep -q 'roles-p'"

# Memory that cannot be locked: refused, unless said (and recorded).
if command -v setpriv >/dev/null && setpriv --bounding-set=-ipc_lock true 2>/dev/null; then
    nolock() { setpriv --bounding-set=-ipc_lock --inh-caps=-ipc_lock bash -c 'ulimit -l 0; exec "$@"' nolock "$@"; }
    write_config nolock.json "No mlock" nolock-p nolock-b
    expect_fail "the ceremony refuses to run when memory cannot be locked" 10 "cannot be locked.*--allow-unlocked-memory" \
        nolock "$HSMSIGN" --audit-log audit-nolock ceremony provision nolock.json --out-dir cer-nolock
    assert "... nothing written" test ! -e cer-nolock -a ! -e audit-nolock
    check "... --allow-unlocked-memory goes on" nolock "$HSMSIGN" --audit-log audit-nolock ceremony provision \
        nolock.json --out-dir cer-nolock --allow-unlocked-memory
    assert "... and the transcript records it" \
        python3 -c "import json; assert json.load(open('cer-nolock/transcript.json'))['memory_locked'] is False"
    assert "a normal ceremony records locked memory" \
        python3 -c "import json; assert json.load(open('cer/transcript.json'))['memory_locked'] is True"
else
    echo "# SKIP: setpriv cannot drop CAP_IPC_LOCK here: the unlocked-memory refusal is not tested"
fi
assert "the transcript records the PKCS#11 module and the libraries loaded, with their SHA-256" python3 -c "
import hashlib, json; t = json.load(open('cer/transcript.json'))['tool']
m = t['pkcs11_module']; assert hashlib.sha256(open(m['file'], 'rb').read()).hexdigest() == m['sha256'], m
libs = {l['file']: l['sha256'] for l in t['libraries']}
assert any('libcrypto' in f for f in libs) and any('softhsm' in f for f in libs), libs
for f, h in libs.items(): assert hashlib.sha256(open(f, 'rb').read()).hexdigest() == h, f"
# Tokens that are not blank.
expect_fail "provisioning a token in use is refused" 9 "primary token 'primary'.*not empty" \
    hs ceremony provision ceremony.json --out-dir cer3
assert "the refused ceremony wrote nothing" test ! -e cer3/transcript.json
expect_fail "the ceremony directory must be empty" 9 "not empty" \
    hs ceremony provision ceremony.json --out-dir cer --force-reset
expect_fail "--force-reset needs the current SO PIN" 2 "current SO PIN" \
    hs ceremony provision other.json --out-dir cer4 --force-reset
SO2=$(age -d -i ids/admin.txt cer2/credentials/primary-so-pin.age)
SO2B=$(age -d -i ids/admin.txt cer2/credentials/backup-so-pin.age)
export CUR_SO=$SO2 CUR_SO_B=$SO2B
expect_fail "a ceremony onto an existing audit log is refused before touching the tokens" 9 \
    "audit log audit2 already exists.*new audit key" hs --audit-log audit2 ceremony provision \
    other.json --out-dir cer6 --force-reset --current-so-pin-source env:CUR_SO \
    --backup-current-so-pin-source env:CUR_SO_B
assert "... it wrote no ceremony directory" test ! -e cer6
check "--force-reset erases SoftHSM tokens and provisions again" hs --audit-log audit4 ceremony provision \
    other.json --out-dir cer4 --force-reset --current-so-pin-source env:CUR_SO \
    --backup-current-so-pin-source env:CUR_SO_B
assert "the re-provisioned token has a new wrap key" \
    test "$(python3 -c "import json; print(json.load(open('cer2/transcript.json'))['wrap_key']['check_value'])")" != \
         "$(python3 -c "import json; print(json.load(open('cer4/transcript.json'))['wrap_key']['check_value'])")"

# Tokens initialized by someone else without a user PIN (pkcs11-tool) are
# "fresh": taken over with their current SO PIN, which is then replaced.
free_slot() { pkcs11-tool --module "$SOFTHSM_MODULE" -L 2>/dev/null |
    awk '/^Slot/{s=$3} /uninitialized/{print s; exit}' | tr -d '():'; }
for t in fresh-a fresh-b; do
    check "pkcs11-tool initializes $t without a user PIN" pkcs11-tool --module "$SOFTHSM_MODULE" \
        --slot "$(free_slot)" --init-token --label "$t" --so-pin "initial-so-$t"
done
write_config fresh.json "Fresh tokens" fresh-a fresh-b
expect_fail "a fresh token needs its current SO PIN" 2 "fresh-a.*current SO PIN" \
    hs --audit-log audit3 ceremony provision fresh.json --out-dir cer5
export CUR_A=initial-so-fresh-a CUR_B=initial-so-fresh-b
check "fresh tokens are taken over with their current SO PINs" hs --audit-log audit3 ceremony \
    provision fresh.json --out-dir cer5 --current-so-pin-source env:CUR_A \
    --backup-current-so-pin-source env:CUR_B
expect_fail "the initial SO PIN no longer works" nonzero "CKR_PIN_INCORRECT" \
    pkcs11-tool --module "$SOFTHSM_MODULE" --token-label fresh-a --session-rw --login \
    --login-type so --so-pin initial-so-fresh-a --list-objects
check "the ceremony's SO PIN works on fresh-a" pkcs11-tool --module "$SOFTHSM_MODULE" \
    --token-label fresh-a --session-rw --login --login-type so \
    --so-pin "$(age -d -i ids/admin.txt cer5/credentials/primary-so-pin.age)" --list-objects

# --- destroy the primary, restore a new token --------------------------------
primary_dir=$(dirname "$(grep -l 'primary ' hsm/tokens/*/token.object | head -1)")
assert "found the primary's token directory" test -d "$primary_dir"
rm -rf "$primary_dir"
check "token list" hs token list
assert "the primary is gone" bash -c "! grep -qw primary \"$WORK/out\""

export HSMSIGN_PIN=restore-user-4711 HSMSIGN_SO_PIN=restore-so-4711
check "initialize a new token" hs token init --label restored
expect_fail "restore refuses 2 shares before touching the token" 1 "2 usable shares" \
    bash -c "cat plain/alice.share plain/bob.share | \"$HSMSIGN\" ceremony restore --token pkcs11:token=restored --transcript cer/transcript.json --audit-key cer/audit-key.pem --share-stdin"
cp cer/transcript.json bad-transcript.json && cp cer/transcript.json.sig bad-transcript.json.sig
sed -i 's/"threshold": 3/"threshold": 2/' bad-transcript.json
expect_fail "restore refuses a transcript whose signature does not verify" 1 "signature" \
    hs ceremony restore --token restored --transcript bad-transcript.json --audit-key cer/audit-key.pem --share "$(share alice)" $ids3
# The audit key was lost with the primary: its log cannot be continued.
expect_fail "restore into a token without an audit key is refused before touching it" 7 \
    "token 'restored' has no audit key.*nothing was restored.*audit restart" \
    hs ceremony restore --token restored --transcript cer/transcript.json --audit-key cer/audit-key.pem --share "$(share alice)" \
    --share "$(share bob)" --share "$(share carol)" $ids3
n_old=$(wc -l <audit/entries.jsonl)
check "audit restart starts a new log with a new audit key on the new token" \
    hs --token restored audit restart --reason "primary token destroyed"
old_log=$(ls -d "$WORK"/audit.before-restart-* | head -1)
assert "... the old log is kept aside, whole" test "$(wc -l <"$old_log/entries.jsonl")" -eq "$n_old"
assert "... the new log's entry 0 records the restart, the reason and the old log" python3 -c "
import json; e = json.loads(open('audit/entries.jsonl').readline()); p = e['prior_log']
assert e['op'] == 'audit-restart' and e['reason'] == 'primary token destroyed', e
assert p['entries'] == $n_old and p['dir'] == '$old_log' and len(p['entries_sha256']) == 64, p
assert p['checkpoint_verified'] is False and p['checkpoint_size'] > 0, p  # the old key is gone"
check "restore from 3 shares decrypted by the age CLI, piped in" bash -c \
    "{ age -d -i ids/carol.txt $(share carol); age -d -i ids/erin.txt $(share erin); age -d -i ids/bob.txt $(share bob); } | \"$HSMSIGN\" ceremony restore --token pkcs11:token=restored --transcript cer/transcript.json --audit-key cer/audit-key.pem --share-stdin"
assert "restore says the check value matches" grep -q "matches the transcript" "$WORK/out"
check "the restored token signs with the old key file" hs --token restored sign raw --key app data.txt r.sig
check "openssl verifies it with the same public key" openssl dgst -sha256 -verify app.pem -signature r.sig data.txt
hs key show app --public-key >app-after.pem
assert "same public key" cmp -s app.pem app-after.pem
check "rsa2048 signs on the restored token" hs --token restored sign raw --key plat data.txt r2.sig
check "openssl verifies the RSA signature" openssl dgst -sha256 -verify plat.pem -signature r2.sig data.txt
expect_fail "restoring twice into one token is refused" 9 "already has a wrap key" \
    hs ceremony restore --token restored --transcript cer/transcript.json --audit-key cer/audit-key.pem --share "$(share alice)" \
    --share "$(share bob)" --share "$(share carol)" $ids3

check "initialize a second new token" hs token init --label restored2
export HSMSIGN_AUDIT_LOG=$WORK/audit-r2
check "restored2 gets its own log and audit key" hs --token restored2 audit init
check "restore with --identity (4 shares, one flipped: named, the rest restore)" hs ceremony restore \
    --token restored2 --transcript cer/transcript.json --audit-key cer/audit-key.pem --share "$(share alice)" --share flipped.age \
    --share "$(share bob)" --share "$(share dave)" $ids3 --identity ids/dave.txt
assert "the flipped share is named" grep -q "flipped.age: set aside" "$WORK/err"
check "restored2 signs" hs --token restored2 sign raw --key app data.txt r3.sig
check "openssl verifies restored2's signature" openssl dgst -sha256 -verify app.pem -signature r3.sig data.txt
export HSMSIGN_AUDIT_LOG=$WORK/audit
assert "the audit logs record the restores" \
    test "$(cat audit/entries.jsonl audit-r2/entries.jsonl | grep -c '"purpose":"ceremony-restore"')" -eq 2
assert "the old audit log records the transcript signatures" \
    test "$(grep -c '"purpose":"ceremony-transcript"' "$old_log/entries.jsonl")" -eq 2
check "the old log still verifies with the ceremony's audit public key" \
    hs --audit-log "$old_log" audit verify --public-key cer/audit-key.pem --git
check "the restarted log verifies" hs --token restored audit verify --git
check "restored2's log verifies" hs --token restored2 --audit-log audit-r2 audit verify --git

# Sessions are closed on every path (counted by the shim), success and failure.
if [ -n "${P11SHIM:-}" ]; then
    for label in restored3 restored4; do hs token init --label $label >/dev/null; done
    counted() { # EXPECT(0|nonzero) DESCRIPTION COMMAND...
        local want=$1 what=$2; shift 2; rm -f counts.json
        HSMSIGN_MODULE=$P11SHIM HSMSIGN_SHIM_MODULE=$SOFTHSM_MODULE HSMSIGN_SHIM_COUNTS=$WORK/counts.json \
            "$@" >"$WORK/out" 2>"$WORK/err"; local rc=$?
        if [ "$want" = 0 ] && [ $rc -ne 0 ]; then fail "$what: exit $rc"; sed 's/^/    /' "$WORK/err"; return; fi
        if [ "$want" != 0 ] && [ $rc -eq 0 ]; then fail "$what: succeeded"; return; fi
        assert "$what: every session closed" python3 -c \
            "import json; c=json.load(open('counts.json')); exit(0 if c['finalized'] and c['sessions_open']==0 and c['sessions_closed_by_finalize']==0 else 1)"
    }
    hs --token restored3 --audit-log audit-r3 audit init >/dev/null 2>&1
    export HSMSIGN_AUDIT_LOG=$WORK/audit-r3
    counted 0 "restore through the shim" hs ceremony restore --token restored3 \
        --transcript cer/transcript.json --audit-key cer/audit-key.pem --share "$(share alice)" --share "$(share bob)" --share "$(share carol)" $ids3
    HSMSIGN_PIN=0000 counted 1 "restore with a wrong PIN through the shim" hs ceremony restore --token restored4 \
        --transcript cer/transcript.json --audit-key cer/audit-key.pem --share "$(share alice)" --share "$(share bob)" --share "$(share carol)" $ids3
    counted 1 "restore into a token with a wrap key through the shim" hs ceremony restore --token restored3 \
        --transcript cer/transcript.json --audit-key cer/audit-key.pem --share "$(share alice)" --share "$(share bob)" --share "$(share carol)" $ids3
fi

# Help on every level.
check "ceremony --help" hs ceremony --help
check "ceremony provision --help" hs ceremony provision --help
check "ceremony restore --help" hs ceremony restore --help
check "shares verify --help" hs shares verify --help
finish
