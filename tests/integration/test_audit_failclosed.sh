#!/usr/bin/env bash
# The audit log fails closed (issue 11): before a command appends its first
# entry, so before any signature is released, the latest checkpoint must
# verify with the token's audit key, the entries must hash to its root as a
# prefix with every seq in place, and checkpoints/ must hold it. For each
# kind of damage, `sign raw` exits 7, names the problem, writes no output
# and no entry. Logs are created only explicitly (`audit init`, or a first
# command on a directory that does not exist); `audit restart` starts over
# on a damaged log, keeping the old one and recording the event.
. "$(dirname "$0")/lib.sh"
setup_token

echo "release payload" >data.txt
check "generate a key" hs key generate app --algorithm ec-p256
check "sign once (the log has entries and a checkpoint beyond size 0)" \
    hs sign raw --key app data.txt first.sig
check "the log verifies" hs audit verify --git
cp -a audit good

entries() { if [ -f audit/entries.jsonl ]; then wc -l <audit/entries.jsonl; else echo none; fi; }

# damaged DESCRIPTION PATTERN SHELL-CODE: a fresh copy of the good log,
# damaged by SHELL-CODE, must be refused by sign raw.
damaged() {
    local what=$1 pattern=$2 damage=$3
    rm -rf audit out.sig && cp -a good audit && (eval "$damage") || {
        fail "$what: could not damage the log"; return; }
    local n_before; n_before=$(entries)
    expect_fail "$what: sign raw is refused (exit 7), naming the problem" 7 "$pattern" \
        hs sign raw --key app data.txt out.sig
    assert "$what: no output file" test ! -e out.sig
    assert "$what: no new entry" test "$(entries)" = "$n_before"
}

# Removed entries: the fast gate (checkpoint.state) and the full one.
damaged "entries truncated (last entry removed)" \
    "does not hold.*covers [0-9]+ entries.* only [0-9]+.*entries were removed" \
    'head -n -1 good/entries.jsonl >audit/entries.jsonl'
damaged "entries truncated inside the last entry" \
    "covers [0-9]+ entries.* only [0-9]+" \
    'truncate -s -20 audit/entries.jsonl'
damaged "entries truncated (last entry removed), no state: full check" \
    "does not hold.*covers [0-9]+ entries but the log has only [0-9]+: entries were removed" \
    'head -n -1 good/entries.jsonl >audit/entries.jsonl && rm audit/checkpoint.state'
damaged "last covered entry edited in place (fast gate)" \
    "entry [0-9]+ \(the last one the checkpoint covers\) was changed" \
    'sed -i "\$s/\"v\":1}\$/\"v\":2}/" audit/entries.jsonl && ! cmp -s audit/entries.jsonl good/entries.jsonl'
damaged "a garbage line appended after the checkpoint" \
    "not valid JSON" \
    'echo "garbage" >>audit/entries.jsonl'
# Entries before the last covered one are not read by the fast gate (see
# below): with the state file gone, the full check finds these.
damaged "one entry edited (seq kept), no state: full check" \
    "does not match the first [0-9]+ entries: an entry was changed" \
    'sed -i "2s/\"v\":1}\$/\"v\":2}/" audit/entries.jsonl && ! cmp -s audit/entries.jsonl good/entries.jsonl && rm audit/checkpoint.state'
damaged "two entries swapped, no state: full check" \
    "entry at line 2 has sequence number 2, expected 1" \
    'python3 -c "
l = open(\"audit/entries.jsonl\").readlines(); l[1], l[2] = l[2], l[1]
open(\"audit/entries.jsonl\", \"w\").writelines(l)" && rm audit/checkpoint.state'
damaged "two entries swapped and renumbered, no state: full check" \
    "does not match the first [0-9]+ entries" \
    'python3 -c "
import json
l = [json.loads(x) for x in open(\"audit/entries.jsonl\")]; l[1], l[2] = l[2], l[1]
for i, e in enumerate(l): e[\"seq\"] = i
open(\"audit/entries.jsonl\", \"w\").write(\"\".join(json.dumps(e, sort_keys=True, separators=(\",\", \":\")) + \"\n\" for e in l))" && rm audit/checkpoint.state'
# A forged state: valid JSON for the checkpoint's size whose subtree roots
# are not the signed tree's.
cat >forge_state.py <<'PY'
import json, sys
p = sys.argv[1] + "/checkpoint.state"
s = json.load(open(p))
s["roots"][0] = ("0" if s["roots"][0][0] != "0" else "1") + s["roots"][0][1:]
open(p, "w").write(json.dumps(s, sort_keys=True, separators=(",", ":")))
PY
damaged "checkpoint.state forged (valid JSON, wrong subtree root)" \
    "does not hold.*checkpoint.state does not reproduce the root of the signed checkpoint" \
    'python3 forge_state.py audit'
damaged "checkpoint.state forged (last entry's hash)" \
    "does not hold.*checkpoint.state: the last entry's hash is not in the signed tree" \
    'python3 -c "
import json; p = \"audit/checkpoint.state\"; s = json.load(open(p))
s[\"last_leaf\"] = \"00\" * 32; open(p, \"w\").write(json.dumps(s))"'
damaged "checkpoint deleted while entries exist" \
    "entries.jsonl holds [0-9]+ entries but there is no checkpoint file" \
    'rm audit/checkpoint'
damaged "checkpoints/ deleted" \
    "checkpoints/0+[1-9][0-9]* \(the history copy of the latest checkpoint.*missing" \
    'rm -r audit/checkpoints'
damaged "checkpoint and checkpoints/ both deleted" \
    "holds [0-9]+ entries but there is no checkpoint file" \
    'rm -r audit/checkpoint audit/checkpoints'

# An attacker rewrites an entry and signs a new checkpoint over the
# rewritten log with a key of their own (well-formed C2SP note, right
# origin, right root, history copy in place): only the key is wrong.
cat >forge.py <<'PY'
import base64, hashlib, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization
d = sys.argv[1]
lines = open(d + "/entries.jsonl", "rb").read().split(b"\n")[:-1]
def root(leaves):
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + root(leaves[:k]) + root(leaves[k:])).digest()
r = root([hashlib.sha256(b"\x00" + l).digest() for l in lines])
origin = open(d + "/checkpoint").readline().rstrip("\n")
text = "%s\n%d\n%s\n" % (origin, len(lines), base64.b64encode(r).decode())
key = Ed25519PrivateKey.generate()
pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
kid = hashlib.sha256(origin.encode() + b"\n\x01" + pub).digest()[:4]
sig = key.sign(text.encode())
note = text + "\n\u2014 %s %s\n" % (origin, base64.b64encode(kid + sig).decode())
for p in (d + "/checkpoint", d + "/checkpoints/%020d" % len(lines)):
    open(p, "w").write(note)
PY
damaged "entry rewritten, checkpoint re-signed by another key" \
    "checkpoint.*no signature by 'hsmsign.audit/[^']*' with key ID [0-9a-f]{8}" \
    'sed -i "2s/\"v\":1}\$/\"v\":2}/" audit/entries.jsonl && python3 forge.py audit'
damaged "an existing empty directory that was never initialized" \
    "is not an initialized audit log.*hsmsign audit init" \
    'rm -rf audit && mkdir audit'
damaged "a directory holding only an entries file" \
    "holds [0-9]+ entries but there is no checkpoint file.*audit restart" \
    'rm -rf audit && mkdir audit && cp good/entries.jsonl audit/'

# --- checkpoint.state: upgrade and what the fast gate does not read --------
rm -rf audit && cp -a good audit && rm audit/checkpoint.state
check "a log without checkpoint.state (an older version's) is checked in full and signs" \
    hs sign raw --key app data.txt up.sig
assert "... and gets its state back" test -s audit/checkpoint.state
size=$(sed -n 2p audit/checkpoint)
assert "... for its new checkpoint (size $size)" \
    python3 -c "import json,sys; assert json.load(open('audit/checkpoint.state'))['size'] == $size"
check "... which verifies" hs audit verify --git
echo '{"v":1,"size":1,"roots":[]}' >audit/checkpoint.state
check "a state for another size (a kill between checkpoint and state) means a full check" \
    hs sign raw --key app data.txt up2.sig
# An entry before the last covered one, rewritten in place: the fast gate
# does not read it, so signing goes on; the checkpoint it signs comes from
# the authenticated state, so it commits to the original entry, and
# `audit verify` (and git) show the rewrite.
rm -rf audit && cp -a good audit
sed -i '2s/"v":1}$/"v":2}/' audit/entries.jsonl
check "an old entry rewritten in place is not read by the fast gate: signing goes on" \
    hs sign raw --key app data.txt rw.sig
expect_fail "... audit verify finds it" 1 "does not match the first [0-9]+ entries" hs audit verify
sed -i '2s/"v":2}$/"v":1}/' audit/entries.jsonl
check "... the new checkpoint commits to the original entry: restored, the log verifies" \
    hs audit verify --checkpoint good/checkpoint
expect_fail "... and git keeps the rewrite: audit verify --git finds it" 1 \
    "does not extend the entries of its parent: history was rewritten" hs audit verify --git

# --- what a kill leaves is accepted ----------------------------------------
# Killed between checkpoints/<size> and checkpoint (history written first),
# or before its checkpoint at all: entries after the latest checkpoint.
rm -rf audit && cp -a good audit
prev=$(ls audit/checkpoints | sort | tail -2 | head -1)
cp "audit/checkpoints/$prev" audit/checkpoint
check "a checkpoint one behind its history (a kill between the two writes) is accepted" \
    hs sign raw --key app data.txt k1.sig
check "... and the next checkpoint covers everything" hs audit verify --git
size=$(sed -n 2p audit/checkpoint)
assert "... of size $size = entries $(entries)" test "$size" -eq "$(entries)"

# --- creation is explicit ---------------------------------------------------
check "the first command on a directory that does not exist creates the log" \
    hs --audit-log "$WORK/new/log" sign raw --key app data.txt n.sig
assert "... with a checkpoint of size 0 in its history" \
    test -f new/log/checkpoints/00000000000000000000
assert "... and no leftover build directory" test -z "$(ls -d new/log.init-* 2>/dev/null)"
check "... which verifies, git history included" hs --audit-log "$WORK/new/log" audit verify --git
expect_fail "audit init on an existing log is refused" 9 "already an audit log.*audit restart" \
    hs --audit-log "$WORK/new/log" audit init
mkdir empty
check "audit init on an existing empty directory" hs --audit-log "$WORK/empty" audit init
assert "... writes the size-0 checkpoint" test "$(sed -n 2p empty/checkpoint)" = 0
check "... and a command then uses it" hs --audit-log "$WORK/empty" sign raw --key app data.txt e.sig
check "audit init on a directory that does not exist" hs --audit-log "$WORK/init/log" audit init
check "... verifies with no entries" hs --audit-log "$WORK/init/log" audit verify --git

# --- disaster recovery: audit restart --------------------------------------
rm -rf audit && cp -a good audit
sed -i "2s/\"v\":1}\$/\"v\":2}/" audit/entries.jsonl
cp audit/entries.jsonl damaged-entries.jsonl
old_root=$(sed -n 3p audit/checkpoint | base64 -d | od -An -tx1 | tr -d ' \n')
old_size=$(sed -n 2p audit/checkpoint)
expect_fail "audit restart needs a reason" 2 "--reason" hs audit restart
check "audit restart --reason starts over" hs audit restart --reason "entries.jsonl damaged by a disk fault"
aside=$(ls -d "$WORK"/audit.before-restart-* 2>/dev/null | head -1)
assert "... the old log is kept aside, unchanged" cmp -s "$aside/entries.jsonl" damaged-entries.jsonl
check "... the new log verifies, git history included" hs audit verify --git
python3 - "$aside" "$(sha256sum damaged-entries.jsonl | cut -d' ' -f1)" "$(wc -l <damaged-entries.jsonl)" \
    "$old_size" "$old_root" >restart.check 2>&1 <<'PY'
import json, sys
aside, sha, n, size, root = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
e = json.loads(open("audit/entries.jsonl").readline())
p = e["prior_log"]
assert e["seq"] == 0 and e["op"] == "audit-restart", e
assert e["reason"] == "entries.jsonl damaged by a disk fault", e
assert p["dir"] == aside and p["entries"] == n and p["entries_sha256"] == sha, p
assert p["checkpoint_size"] == size and p["checkpoint_root"] == root, p
assert p["checkpoint_verified"] is False, p  # the edit broke the prefix
PY
assert "... entry 0 records the reason, the old log's count, SHA-256, checkpoint size and root" \
    test ! -s restart.check
cat restart.check
assert "... signed into the new log's first checkpoint (size 1)" \
    test "$(sed -n 2p audit/checkpoint)" -eq 1
check "... and signing works again" hs sign raw --key app data.txt r.sig
expect_fail "audit restart on a directory that does not exist is refused" 8 "audit init" \
    hs --audit-log "$WORK/nothing" audit restart --reason test

# --- audit key needs no login -----------------------------------------------
hs audit key >with-pin.pem
check "audit key prints the public key with no PIN available" \
    env -u HSMSIGN_PIN "$HSMSIGN" --pin-source env:NO_SUCH_PIN audit key
assert "... the same key as with a login" cmp -s "$WORK/out" with-pin.pem
finish
