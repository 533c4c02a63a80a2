#!/bin/bash
# Interoperability of hsmsign's age implementation with the real age CLI
# (Debian package "age"): files we encrypt must decrypt with `age -d`,
# files `age` encrypts must decrypt with ours, and keys must agree.
# $AGE_TOOL is the test driver built from tests/integration/age_tool.c.
set -euo pipefail

: "${AGE_TOOL:?AGE_TOOL must point at the age_tool test driver}"
for tool in age age-keygen cmp; do
    if ! command -v "$tool" >/dev/null; then
        echo "SKIP: $tool not installed (Debian package age)"
        exit 77
    fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

passed=0
failed=0
skipped=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
skip() { echo "SKIP: $*"; skipped=$((skipped + 1)); }

# age reads passphrases only from the terminal; util-linux `script` gives
# it one, fed from our standard input.
have_pty=false
if command -v script >/dev/null && script -qec true /dev/null </dev/null >/dev/null 2>&1; then
    have_pty=true
fi
age_on_tty() { # input-lines command...
    local lines=$1
    shift
    printf '%b' "$lines" | timeout 120 script -qec "$*" /dev/null >/dev/null
}

# ---- keys -------------------------------------------------------------
age-keygen -o age_key.txt 2>/dev/null
age_rcpt=$(age-keygen -y age_key.txt)
age-keygen -o age_key2.txt 2>/dev/null
age_rcpt2=$(age-keygen -y age_key2.txt)
"$AGE_TOOL" keygen > our_key.txt
our_rcpt=$(grep '^# public key: ' our_key.txt | cut -d' ' -f4)

if [ "$("$AGE_TOOL" recipient -i age_key.txt)" = "$age_rcpt" ]; then
    pass "our recipient of an age-keygen identity equals age-keygen -y"
else
    fail "our recipient of an age-keygen identity differs from age-keygen -y"
fi
if [ "$(age-keygen -y our_key.txt)" = "$our_rcpt" ]; then
    pass "age-keygen -y accepts our identity and derives our recipient"
else
    fail "age-keygen -y disagrees with our keygen"
fi

# ---- payloads: empty, tiny, one chunk exactly, one chunk + 1, several --
sizes="0 1 65536 65537 200000"
for n in $sizes; do
    head -c "$n" /dev/urandom > "plain_$n"
done

# ---- us -> age (X25519) ------------------------------------------------
for n in $sizes; do
    for armor in "" "-a"; do
        label="us->age X25519 ${armor:+armored }$n bytes"
        if "$AGE_TOOL" encrypt $armor -r "$age_rcpt" < "plain_$n" > ours.age &&
            age -d -i age_key.txt ours.age > out.bin && cmp -s out.bin "plain_$n"; then
            pass "$label"
        else
            fail "$label"
        fi
    done
done

# Multiple recipients: each age key alone, and our own key, decrypt.
"$AGE_TOOL" encrypt -r "$age_rcpt" -r "$age_rcpt2" -r "$our_rcpt" < plain_65537 > multi.age
for key in age_key.txt age_key2.txt; do
    if age -d -i "$key" multi.age > out.bin && cmp -s out.bin plain_65537; then
        pass "us->age three recipients, age decrypts with $key"
    else
        fail "us->age three recipients, age with $key"
    fi
done
if "$AGE_TOOL" decrypt -i our_key.txt < multi.age > out.bin && cmp -s out.bin plain_65537; then
    pass "three recipients, we decrypt with our own key"
else
    fail "three recipients, our own key"
fi
# Our identity file works in age too.
"$AGE_TOOL" encrypt -r "$our_rcpt" < plain_1 > to_ours.age
if age -d -i our_key.txt to_ours.age > out.bin && cmp -s out.bin plain_1; then
    pass "age decrypts with an identity file written by our keygen"
else
    fail "age with our identity file"
fi

# ---- us -> age (passphrase / scrypt) -----------------------------------
if $have_pty; then
    for armor in "" "-a"; do
        label="us->age scrypt ${armor:+armored }passphrase"
        rm -f out.bin
        if AGE_TOOL_PASSPHRASE='correct horse battery' "$AGE_TOOL" encrypt-passphrase $armor \
                -w 12 < plain_65537 > pass.age &&
            age_on_tty 'correct horse battery\n' age -d -o "$work/out.bin" "$work/pass.age" &&
            cmp -s out.bin plain_65537; then
            pass "$label"
        else
            fail "$label"
        fi
    done
    rm -f out.bin
    if age_on_tty 'wrong horse\n' age -d -o "$work/out.bin" "$work/pass.age" ||
        [ -s out.bin ]; then
        fail "age accepted our scrypt file with a wrong passphrase"
    else
        pass "age rejects our scrypt file with a wrong passphrase"
    fi
else
    skip "us->age scrypt: no working script(1)/pty to give age a terminal for the passphrase"
fi

# ---- age -> us (X25519) ------------------------------------------------
for n in $sizes; do
    for armor in "" "-a"; do
        label="age->us X25519 ${armor:+armored }$n bytes"
        if age $armor -r "$our_rcpt" -o theirs.age "plain_$n" &&
            "$AGE_TOOL" decrypt -i our_key.txt < theirs.age > out.bin &&
            cmp -s out.bin "plain_$n"; then
            pass "$label"
        else
            fail "$label"
        fi
    done
done
age -r "$age_rcpt" -r "$our_rcpt" -r "$age_rcpt2" -o theirs_multi.age plain_200000
if "$AGE_TOOL" decrypt -i our_key.txt < theirs_multi.age > out.bin && cmp -s out.bin plain_200000
then
    pass "age->us three recipients, ours in the middle"
else
    fail "age->us three recipients"
fi
if "$AGE_TOOL" decrypt -i age_key2.txt < theirs_multi.age > out.bin &&
    cmp -s out.bin plain_200000; then
    pass "age->us with an age-keygen identity file"
else
    fail "age->us with an age-keygen identity file"
fi

# ---- age -> us (passphrase / scrypt, work factor 2^18) -----------------
if $have_pty; then
    for armor in "" "-a"; do
        label="age->us scrypt ${armor:+armored }passphrase"
        rm -f theirs_pass.age
        if age_on_tty 'hunter2 hunter2\nhunter2 hunter2\n' \
                age -p $armor -o "$work/theirs_pass.age" "$work/plain_65536" &&
            AGE_TOOL_PASSPHRASE='hunter2 hunter2' "$AGE_TOOL" decrypt -p \
                < theirs_pass.age > out.bin && cmp -s out.bin plain_65536; then
            pass "$label"
        else
            fail "$label"
        fi
    done
else
    skip "age->us scrypt: no working script(1)/pty to give age a terminal for the passphrase"
fi

# ---- failures we must report ------------------------------------------
age -r "$age_rcpt" -o other.age plain_1
if "$AGE_TOOL" decrypt -i our_key.txt < other.age > out.bin 2> err.txt; then
    fail "decrypting with a non-recipient identity succeeded"
elif grep -q "no identity matched any recipient stanza" err.txt; then
    pass "non-recipient identity: no identity matched"
else
    fail "non-recipient identity: unexpected message: $(cat err.txt)"
fi
# Flip one payload byte of an age-made file.
cp theirs_multi.age tampered.age
size=$(stat -c %s tampered.age)
printf '\x00' | dd of=tampered.age bs=1 seek=$((size - 500)) conv=notrunc status=none
if cmp -s tampered.age theirs_multi.age; then
    printf '\x01' | dd of=tampered.age bs=1 seek=$((size - 500)) conv=notrunc status=none
fi
if "$AGE_TOOL" decrypt -i our_key.txt < tampered.age > out.bin 2> err.txt; then
    fail "a tampered payload decrypted"
elif grep -q "failed authentication" err.txt; then
    pass "tampered payload: authentication failure"
else
    fail "tampered payload: unexpected message: $(cat err.txt)"
fi
# And age agrees that our own tampered files are bad (guards the test).
if age -d -i our_key.txt tampered.age > out.bin 2>/dev/null; then
    fail "age accepted the tampered file"
else
    pass "age rejects the tampered file too"
fi

echo "age interop: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
