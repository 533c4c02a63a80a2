#!/bin/bash
# Configuration and secrets (issue 11): no config file is taken from the
# working directory, config files others can write are refused, config keys
# take '_' for '-', and an env: PIN leaves the environment (and the bytes
# /proc/PID/environ shows) once read.
. "$(dirname "$0")/lib.sh"
setup_token
check "generate a key" hs key generate k --algorithm ec-p256
echo "data" >data.txt
pub=$(pubkey k)
entries() { grep -c . "$WORK/audit/entries.jsonl"; }

# not_in FILE PATTERN: FILE (if it exists) does not hold PATTERN.
not_in() { ! grep -qa -- "$2" "$1" 2>/dev/null; }

# (a) A config file planted in the working directory (a build tree anyone
# may have written) is ignored: its module would be loaded with the PIN at
# hand, its audit log would take the records.
mkdir build && cd build || exit 1
printf 'module = %s/evil.so\n' "$WORK" >hsmsign.conf
check "a planted ./hsmsign.conf naming a module is ignored" hs sign raw --key k ../data.txt a.sig
assert "  ... and the module it names was not tried" not_in "$WORK/err" evil.so
cd "$WORK" && rm -rf build
# Here ./audit is the test's log: the default when nothing else names one.
printf 'audit-log = %s/elsewhere\n' "$WORK" >hsmsign.conf
before=$(entries)
check "a planted ./hsmsign.conf redirecting the audit log is ignored" \
    env -u HSMSIGN_AUDIT_LOG "$HSMSIGN" sign raw --key k data.txt b.sig
assert "  ... the entry went to ./audit" test "$(entries)" -gt "$before"
assert "  ... and nothing to where it pointed" test ! -e elsewhere
rm hsmsign.conf

# (b) Config files others could have written are refused, naming the file
# and the reason; whichever way the file is named.
good() { printf 'wrap-key-label = nosuch-label\n' >"$1"; chmod 600 "$1"; }
# A file that is read makes the command look for the wrap key 'nosuch-label'.
read_it() { expect_fail "$1" 8 "nosuch-label" "${@:2}"; }
mkdir conf && chmod 700 conf
good conf/ok.conf
read_it "HSMSIGN_CONFIG naming a private file is read" env HSMSIGN_CONFIG="$WORK/conf/ok.conf" "$HSMSIGN" sign raw --key k data.txt x.sig
good conf/group.conf && chmod 620 conf/group.conf
expect_fail "a group-writable config file is refused" 2 "conf/group.conf: refused: it is writable by group or others \(mode 0620\)" \
    env HSMSIGN_CONFIG="$WORK/conf/group.conf" "$HSMSIGN" key list
expect_fail "  ... with --config too" 2 "conf/group.conf: refused: it is writable by group" \
    hs --config conf/group.conf key list
good conf/world.conf && chmod 602 conf/world.conf
expect_fail "a world-writable config file is refused" 2 "conf/world.conf: refused: it is writable by group or others" \
    hs --config conf/world.conf key list
if [ "$(id -u)" -eq 0 ]; then
    good conf/other.conf && chown nobody conf/other.conf
    expect_fail "a config file owned by another user is refused" 2 \
        "conf/other.conf: refused: it is owned by another user \(uid $(id -u nobody)\)" \
        env HSMSIGN_CONFIG="$WORK/conf/other.conf" "$HSMSIGN" key list
else
    echo "ok - # SKIP a file owned by another user: chown needs root"
fi
mkfifo conf/fifo.conf
# timeout: the old code blocked in open() waiting for a writer.
expect_fail "a FIFO is refused, without waiting for a writer" 2 "conf/fifo.conf: refused: not a regular file" \
    timeout 60 env HSMSIGN_CONFIG="$WORK/conf/fifo.conf" "$HSMSIGN" key list
mkdir open && chmod 777 open && good open/c.conf
expect_fail "a config file in a directory others can write is refused" 2 \
    "open/c.conf: refused: its directory .*/open is writable by group or others \(mode 0777\)" \
    env HSMSIGN_CONFIG="$WORK/open/c.conf" "$HSMSIGN" key list
ln -s "$WORK/conf/ok.conf" conf/link.conf
read_it "a symbolic link to a private file is followed (as in /etc)" \
    env HSMSIGN_CONFIG="$WORK/conf/link.conf" "$HSMSIGN" sign raw --key k data.txt x.sig
ln -s "$WORK/open/c.conf" conf/link-open.conf
expect_fail "  ... but the directory of its target is checked" 2 "link-open.conf: refused: its directory .*/open is writable" \
    env HSMSIGN_CONFIG="$WORK/conf/link-open.conf" "$HSMSIGN" key list
expect_fail "a missing --config is named" 8 "nope.conf" hs --config nope.conf key list

# The per-user file ($XDG_CONFIG_HOME/hsmsign/config) is read, and checked.
mkdir -p xdg/hsmsign && good xdg/hsmsign/config
read_it "the per-user config file is read" env XDG_CONFIG_HOME="$WORK/xdg" "$HSMSIGN" sign raw --key k data.txt x.sig
chmod 664 xdg/hsmsign/config
expect_fail "  ... and refused when group-writable" 2 "xdg/hsmsign/config: refused: it is writable by group" \
    env XDG_CONFIG_HOME="$WORK/xdg" "$HSMSIGN" key list
rm -rf xdg

# (c) Keys are the long option names; '_' may stand for '-'.
printf 'audit_log = %s/audit\nwrap_key_label = hsmsign-wrap\n' "$WORK" >conf/alias.conf
mkdir sub
before=$(entries)
cd sub || exit 1
check "audit_log and wrap_key_label are accepted" \
    env -u HSMSIGN_AUDIT_LOG "$HSMSIGN" --config "$WORK/conf/alias.conf" sign raw --key k ../data.txt ../c.sig
cd "$WORK" || exit 1
assert "  ... and audit_log is where the entry went" test "$(entries)" -gt "$before"
printf 'auditlog = %s/audit\n' "$WORK" >conf/nodash.conf
expect_fail "auditlog (no separator) is an unknown key, the known ones listed" 2 \
    "unknown key 'auditlog' \(known: module, module-init-args, token, pin-source, keystore, audit-log, wrap-key-label, profile, signature-cache" \
    hs --config conf/nodash.conf key list

# (d) The PIN leaves the environment once read. sign raw logs in, then
# takes the audit log's lock before its first entry: with the lock held
# here, hsmsign waits there, past the login, until we let it go. Its
# environment is read once it has the lock file open (a condition, not a
# time). A fake git on PATH records the environment of any child hsmsign
# starts (it starts none: git is libgit2 in process).
mkdir bin
printf '#!/bin/sh\nenv >>"%s/child.env"\nexec %s "$@"\n' "$WORK" "$(command -v git)" >bin/git
chmod +x bin/git
(exec 9>>audit/.lock && flock 9 && exec sleep 300) &
holder=$!
until ! flock -n audit/.lock true; do kill -0 "$holder" 2>/dev/null || break; sleep 0.05; done
env -u HSMSIGN_SO_PIN PATH="$WORK/bin:$PATH" HSMSIGN_PIN=4711-user \
    "$HSMSIGN" sign raw --key k data.txt d.sig 2>d.err &
pid=$!
until ls -l "/proc/$pid/fd" 2>/dev/null | grep -q 'audit/\.lock'; do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
done
cp "/proc/$pid/environ" running.environ 2>/dev/null || : >running.environ
kill "$holder"
wait "$pid"
rc=$?
assert "hsmsign signed once the lock was free (exit $rc)" test "$rc" -eq 0
assert "  ... the signature verifies" openssl dgst -sha256 -verify "$pub" -signature d.sig data.txt
assert "/proc/PID/environ was read while hsmsign ran" test -s running.environ
# Control: the same search finds a PIN that is there.
env HSMSIGN_PIN=4711-user cat /proc/self/environ >control.environ
assert "  (control: the search finds a PIN in /proc/PID/environ)" \
    grep -qa -e 4711-user -e HSMSIGN_PIN= control.environ
assert "the PIN's bytes are not in /proc/PID/environ after login" not_in running.environ 4711-user
assert "HSMSIGN_PIN is not in /proc/PID/environ after login" not_in running.environ HSMSIGN_PIN
assert "no child started by hsmsign had the PIN" not_in child.env 4711-user
[ -e child.env ] && echo "# children started: $(grep -c "^PATH=" child.env)"
finish
