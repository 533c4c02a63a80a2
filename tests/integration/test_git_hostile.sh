#!/bin/bash
# The audit log's git repository is data, never code (issue 11). The log's
# .git/config is made hostile: core.fsmonitor, core.sshCommand,
# core.hooksPath with pre-commit/post-commit hooks (and the same hooks in
# .git/hooks), gpg.program with commit.gpgSign, core.pager, diff.external,
# include.path to a file with more of the same, and a .gitattributes filter
# driver with clean/smudge commands. The environment is hostile too: a
# $HOME/.gitconfig, XDG_CONFIG_HOME, GIT_CONFIG_GLOBAL, GIT_CONFIG_SYSTEM,
# GIT_CONFIG_COUNT/KEY/VALUE, and GIT_DIR/GIT_WORK_TREE/GIT_INDEX_FILE
# pointing elsewhere. Every command configured is one script that writes a
# marker file holding its environment (where HSMSIGN_PIN would show).
# With HSMSIGN_PIN set, `sign raw` runs several times under
# `strace -f -e trace=execve`:
#   - no marker file appears: nothing configured ran, no PIN was seen;
#   - hsmsign executes no program at all: the trace has only its own
#     initial execve;
#   - a commit per command, made as hsmsign <hsmsign@localhost> (not the
#     hostile config's user), git fsck --strict and git status (the real
#     git CLI) find a clean repository, `audit verify --git` passes, and
#     the GIT_DIR elsewhere was never created.
# Also: stale git lock files left by a killed commit do not stop the next
# commit, and a log whose history was made by the git CLI (as hsmsign
# before libgit2 made it) keeps being committed to and verifies.
. "$(dirname "$0")/lib.sh"
if ! command -v strace >/dev/null || ! command -v git >/dev/null; then
    echo "skipped: strace and git are needed (scripts/install-deps installs them)"
    exit 77
fi
setup_token
check "generate a key" hs key generate k --algorithm ec-p256
printf 'hello\n' >in.txt
check "a first signature creates the log's git history" hs sign raw --key k in.txt first.sig
assert "the audit log is a git repository" test -d audit/.git
cp audit/.git/config clean.config

MARKS=$WORK/marks
mkdir -p "$MARKS" hooks home/.config/git xdg/git
cat >evil.sh <<EOF
#!/bin/sh
# Anything git would run: leave a marker with the environment it got.
{ echo "argv: \$0 \$*"; env; } >"$MARKS/ran.\$\$"
cat >/dev/null 2>&1 </dev/null
exit 0
EOF
chmod +x evil.sh
EVIL=$WORK/evil.sh
for h in pre-commit post-commit commit-msg prepare-commit-msg post-index-change \
    reference-transaction pre-auto-gc post-checkout; do
    cp evil.sh "hooks/$h"
    cp evil.sh "audit/.git/hooks/$h"
done
# One config body, used for the log's .git/config, the included file, the
# global, XDG and system config.
evil_config() { # FILE
    git config --file "$1" core.fsmonitor "$EVIL"
    git config --file "$1" core.sshCommand "$EVIL"
    git config --file "$1" core.hooksPath "$WORK/hooks"
    git config --file "$1" core.pager "$EVIL"
    git config --file "$1" core.editor "$EVIL"
    git config --file "$1" core.askPass "$EVIL"
    git config --file "$1" diff.external "$EVIL"
    git config --file "$1" gpg.program "$EVIL"
    git config --file "$1" commit.gpgSign true
    git config --file "$1" filter.evil.clean "$EVIL"
    git config --file "$1" filter.evil.smudge "$EVIL"
    git config --file "$1" filter.evil.process "$EVIL"
    git config --file "$1" filter.evil.required true
    git config --file "$1" user.name evil
    git config --file "$1" user.email evil@example.invalid
}
evil_config evil.gitconfig
evil_config audit/.git/config
git config --file audit/.git/config include.path "$WORK/evil.gitconfig"
git config --file audit/.git/config "includeIf.gitdir:/.path" "$WORK/evil.gitconfig"
evil_config home/.gitconfig
evil_config xdg/git/config
printf '* filter=evil diff=evil\n' >audit/.gitattributes
printf '* filter=evil\n' >audit/.git/info/attributes 2>/dev/null || true

# sign raw under strace with the hostile environment; $1: a label.
traced_sign() {
    local n=$1
    # LeakSanitizer cannot run under ptrace: no leak check for this run
    # (test_durability.sh does the same). The binary itself, not a
    # wrapper script, so that its initial execve is the only one expected.
    env HOME="$WORK/home" XDG_CONFIG_HOME="$WORK/xdg" \
        GIT_CONFIG_GLOBAL="$WORK/evil.gitconfig" GIT_CONFIG_SYSTEM="$WORK/evil.gitconfig" \
        GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=core.fsmonitor GIT_CONFIG_VALUE_0="$EVIL" \
        GIT_DIR="$WORK/elsewhere.git" GIT_WORK_TREE="$WORK/elsewhere" \
        GIT_INDEX_FILE="$WORK/elsewhere.index" GIT_SSH_COMMAND="$EVIL" GIT_EDITOR="$EVIL" \
        ASAN_OPTIONS=${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0 \
        strace -f -qq -o "exec.$n.trace" -e trace=execve,execveat \
        "$HSMSIGN_BINARY" sign raw --key k in.txt "out.$n.sig"
}

before=$(git -C audit rev-list --count HEAD)
RUNS=4
for n in $(seq 1 $RUNS); do
    check "sign raw $n with a hostile .git/config and environment, under strace" traced_sign "$n"
done
marks=$(find "$MARKS" -type f | wc -l)
assert "no configured command ran ($marks marker files)" test "$marks" -eq 0
if [ "$marks" -ne 0 ]; then
    for f in "$MARKS"/*; do
        echo "#   $(head -1 "$f"); PIN in its environment: $(grep -c '^HSMSIGN_PIN=' "$f")"
    done | sort | uniq -c | head -10
fi
assert "no marker holds the PIN" test -z "$(grep -rl "$HSMSIGN_PIN" "$MARKS")"
for n in $(seq 1 $RUNS); do
    execs=$(grep -c 'execve' "exec.$n.trace")
    assert "run $n: hsmsign executed nothing ($execs execve, only its own)" test "$execs" -eq 1
    [ "$execs" -ne 1 ] && grep 'execve' "exec.$n.trace" | grep -v "$HSMSIGN_BINARY" |
        sed 's/^/#   /' | head -5
done
assert "the GIT_DIR elsewhere was not created" test ! -e elsewhere.git -a ! -e elsewhere.index

# The hostile settings go before the git CLI itself looks at the repository.
cp clean.config audit/.git/config
rm -f audit/.gitattributes audit/.git/info/attributes audit/.git/hooks/*[a-z]
after=$(git -C audit rev-list --count HEAD)
assert "one commit per command ($before -> $after)" test "$after" -eq $((before + RUNS))
assert "made as hsmsign <hsmsign@localhost>" \
    test "$(git -C audit log -1 --format='%an <%ae> / %cn <%ce>')" = \
    "hsmsign <hsmsign@localhost> / hsmsign <hsmsign@localhost>"
assert "the message is the checkpoint's" \
    test "$(git -C audit log -1 --format=%B)" = "audit: $(wc -l <audit/entries.jsonl) entries"
check "git fsck --strict (git CLI)" git -C audit fsck --strict --no-progress
status=$(git -C audit status --porcelain)
assert "git status: the index matches the files (clean: '$status')" test -z "$status"
check "audit verify --git" hs audit verify --git

# Locks a commit killed halfway leaves behind.
branch=$(git -C audit symbolic-ref HEAD)
touch audit/.git/index.lock "audit/.git/$branch.lock"
check "sign raw with stale git lock files" hs sign raw --key k in.txt stale.sig
assert "it committed" test "$(git -C audit rev-list --count HEAD)" -eq $((after + 1))
assert "the stale locks are gone" test ! -e audit/.git/index.lock -a ! -e "audit/.git/$branch.lock"

# A history made by the git CLI, as hsmsign before libgit2 made it (same
# arguments), is carried on.
rm -rf audit/.git
GIT() { git --git-dir=audit/.git --work-tree=audit -c user.name=hsmsign \
    -c user.email=hsmsign@localhost -c core.hooksPath=/dev/null -c commit.gpgSign=false "$@"; }
printf '.lock\n*.tmp.*\n' >audit/.gitignore # what it wrote, entries.jsonl not ignored
GIT init -q && GIT add -- entries.jsonl checkpoint checkpoints .gitignore &&
    GIT commit -q -m "audit: $(wc -l <audit/entries.jsonl) entries"
check "sign raw on a log whose history the git CLI made" hs sign raw --key k in.txt cli.sig
assert "it committed on top" test "$(git -C audit rev-list --count HEAD)" -eq 2
check "git fsck --strict after it" git -C audit fsck --strict --no-progress
assert "... which moved the entries to log/ segments" \
    test -n "$(git -C audit ls-tree -r --name-only HEAD log)" -a -z "$(git -C audit ls-tree --name-only HEAD entries.jsonl)"
status=$(git -C audit status --porcelain)
assert "... and git status is clean ('$status')" test -z "$status"
check "audit verify --git across both" hs audit verify --git
finish
