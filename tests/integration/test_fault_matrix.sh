#!/bin/bash
# Fault matrix (issue 7): every signing command, run through the forwarding
# PKCS#11 shim, once with no fault to count its PKCS#11 calls, then once per
# call index N with call N failing (HSMSIGN_SHIM_FAIL_AT=N). Every run must:
#   - exit 0 (the fault was retried transparently or hit a clean-up call
#     after the work was done) with a complete output that openssl verifies,
#     or exit non-zero naming the PKCS#11 function C_... and the injected CKR;
#   - leave every input byte-identical, the audit log only appended to, the
#     output complete-and-valid or absent, and no *.tmp.* file behind;
#   - close every session it opened and call C_Finalize (shim counts);
#   - never release a signature without its audit entry: an output that
#     appears comes with a new audit entry whose sig_sha256 is the output's.
#
# C_Initialize and C_Finalize: if the faulted call is C_Initialize, the
# module never became initialized, so the correct behaviour is to call
# nothing else, C_Finalize included (it would only return
# CKR_CRYPTOKI_NOT_INITIALIZED): the shim then reports finalized=false after
# exactly one call, and that is what we require. A faulted C_Finalize is
# forwarded by the shim (it never leaks a module), so finalized=true still
# holds; by then the outputs are complete, and exit 0 is acceptable.
#
# Size: each call index runs with FAULT_CODES_PER_INDEX codes (default 1,
# at most 6) taken in rotation from the six codes below, shifted per
# command, so every code is tried at every kind of call across the matrix
# without running 6x as many processes (about 300 runs, 3 minutes on a
# loaded 2-core machine). FAULT_CODES_PER_INDEX=6 runs the full product.
# FAULT_INDEX_STEP=N (default 1) faults only every N-th call index, with a
# different phase per command; `make check-asan` uses it, as a sanitized
# hsmsign starts several times slower.
. "$(dirname "$0")/lib.sh"
: "${P11SHIM:?P11SHIM must name the shim module}"

CODES=(CKR_DEVICE_REMOVED CKR_DEVICE_ERROR CKR_SESSION_HANDLE_INVALID
       CKR_SESSION_COUNT CKR_TOKEN_NOT_PRESENT CKR_PIN_INCORRECT)
PER_INDEX=${FAULT_CODES_PER_INDEX:-1}
case "$PER_INDEX" in [1-6]) ;; *) echo "Bail out! FAULT_CODES_PER_INDEX must be 1..6"; exit 1 ;; esac
STEP=${FAULT_INDEX_STEP:-1}
case "$STEP" in [1-9]) ;; *) echo "Bail out! FAULT_INDEX_STEP must be 1..9"; exit 1 ;; esac

setup_token
hs -q key generate rsa --algorithm rsa2048 >/dev/null || { echo "Bail out! key generate"; exit 1; }
hs -q key generate ec --algorithm ec-p256 >/dev/null || { echo "Bail out! key generate"; exit 1; }
hs -q key generate rsb --algorithm rsa2048 >/dev/null || { echo "Bail out! key generate"; exit 1; }
hs key show rsa --public-key >rsa.pub.pem && hs key show ec --public-key >ec.pub.pem
head -c 100000 /dev/urandom >in.bin
openssl genrsa -out imp.pem 2048 2>/dev/null
openssl req -new -x509 -key imp.pem -subj /CN=imp -days 10 -out imp.crt
openssl pkey -in imp.pem -pubout -out imp.pub.pem
cp "$HSMSIGN_VECTORS/apk/app21.apk" a.apk && cp a.apk b.apk
cat >batch.json <<'EOF2'
[{"input": "a.apk", "output": "out/a.apk", "key": "rsa"},
 {"input": "b.apk", "output": "out/b.apk", "key": "rsb"}]
EOF2
mkdir -p out
# Inputs that no run may change: the file signed, the key files, the key to
# import and its certificate, the public keys we verify with, the APKs.
sha256sum in.bin keys/rsa.key keys/ec.key keys/rsb.key imp.pem imp.crt ./*.pub.pem a.apk b.apk batch.json >inputs.sha256

FAULTS=0 RUNS=0

# A field of the shim's counts file (compact JSON), held in $COUNTS; read
# with a bash regex because the matrix runs this hundreds of times.
count_field() { [[ $COUNTS =~ \"$1\":([a-z0-9]+) ]] && echo "${BASH_REMATCH[1]}"; }

# A scenario is a name, the command, the output path, and a validator that
# proves the output with openssl (run only when the output exists).
# Validators print why they fail on stderr.
valid_raw() { # KEY OUT
    openssl dgst -sha256 -verify "$1.pub.pem" -signature "$2" in.bin >/dev/null
}
valid_generated() { # NAME: the certificate's self-signature and the key itself
    hs key show "$1" --cert >"out/$1.crt" &&
    openssl verify -check_ss_sig -CAfile "out/$1.crt" "out/$1.crt" >/dev/null &&
    openssl x509 -in "out/$1.crt" -pubkey -noout >"out/$1.pub.pem" &&
    hs -q sign raw --key "$1" in.bin "out/$1.check.sig" &&
    openssl dgst -sha256 -verify "out/$1.pub.pem" -signature "out/$1.check.sig" in.bin >/dev/null
}
valid_imported() { # NAME: signs with the key we imported, checked against the PEM's public key
    hs key show "$1" --cert | cmp -s - imp.crt &&
    hs -q sign raw --key "$1" in.bin "out/$1.check.sig" &&
    openssl dgst -sha256 -verify imp.pub.pem -signature "out/$1.check.sig" in.bin >/dev/null
}

# APK: the baseline output must satisfy apksigner (AOSP's verifier, a JVM
# start of ~1 s); RSA PKCS#1 v1.5 signing is deterministic, so every later
# output must then be byte-identical to it, which is as strong and fast.
valid_apk() { # SCENARIO OUT
    local ref=ref/$1/$(basename "$2")
    if [ -f "$ref" ]; then cmp "$ref" "$2"; return; fi
    apksigner verify "$2" >/dev/null && mkdir -p "ref/$1" && cp "$2" "$ref"
}
valid_vbmeta() { # NAME OUT: openssl checks the signature over header || auxiliary block
    vbmeta_split "$2" out/vb.signed out/vb.sig &&
    openssl dgst -sha256 -verify rsa.pub.pem -signature out/vb.sig out/vb.signed >/dev/null
}
# vbmeta_split IMG SIGNED SIG: the signed bytes and the signature of a
# vbmeta image, from the header's big-endian block sizes and offsets
# (AvbVBMetaImageHeader, 256 bytes), read independently of hsmsign.
vbmeta_split() {
    python3 - "$@" <<'PY'
import struct, sys
img = open(sys.argv[1], 'rb').read()
assert img[:4] == b'AVB0', 'no vbmeta magic'
auth, aux = struct.unpack('>QQ', img[12:28])
sig_off, sig_size = struct.unpack('>QQ', img[48:64])
assert sig_size > 0 and sig_off + sig_size <= auth, 'no signature in the authentication block'
open(sys.argv[2], 'wb').write(img[:256] + img[256 + auth:256 + auth + aux])
open(sys.argv[3], 'wb').write(img[256 + sig_off:256 + sig_off + sig_size])
PY
}

# The new audit lines since the run started must hold what the output
# needs: for a signature, a sign entry with its sha256; for a key, the
# generate/import entry (and, for generate, the certificate's sign entry).
audited() { # KIND OUT NEW_LINES_FILE [ARTIFACT]
    case "$1" in
    raw) local want
         want=$(sha256sum "$2" | cut -d' ' -f1)
         grep '"op":"sign"' "$3" | grep -q "\"sig_sha256\":\"$want\"" ;;
    generate) grep -q '"op":"generate"' "$3" && grep -q '"purpose":"x509-self-signed"' "$3" ;;
    import) grep -q '"op":"import"' "$3" ;;
    apk) local base=${4:-a.apk}
         grep "\"artifact\":\"$base\"" "$3" | grep -q '"purpose":"apk-v2"' &&
         grep "\"artifact\":\"$base\"" "$3" | grep -q '"purpose":"apk-v3"' ;;
    vbmeta) vbmeta_split "$2" out/vb.signed out/vb.sig &&
         grep '"purpose":"avb-vbmeta"' "$3" | grep -q "\"sig_sha256\":\"$(sha256sum out/vb.sig | cut -d' ' -f1)\"" ;;
    esac
}

# run_one SCENARIO KIND OUT VALIDATOR FAIL_AT RV COMMAND...
# RV empty: the baseline run, which must succeed. Records failures with
# their reasons; prints nothing on success.
run_one() {
    local scen=$1 kind=$2 out=$3 validator=$4 at=$5 rv=$6; shift 6
    local tag="$scen @$at ${rv:-no fault}" problems=() audit_size
    rm -f "$out" counts.json
    rm -rf out/*
    audit_size=$(stat -c %s audit/entries.jsonl)
    cp audit/entries.jsonl audit.before
    local -a fault_env=()
    [ -n "$rv" ] && fault_env=(HSMSIGN_SHIM_FAIL_AT="$at" HSMSIGN_SHIM_FAIL_RV="$rv")
    env HSMSIGN_MODULE="$P11SHIM" HSMSIGN_SHIM_MODULE="$SOFTHSM_MODULE" \
        HSMSIGN_SHIM_COUNTS="$WORK/counts.json" "${fault_env[@]}" \
        "$@" >"$WORK/out.txt" 2>"$WORK/err"
    local rc=$?
    RUNS=$((RUNS + 1))

    # Exit status and message.
    if [ $rc -eq 0 ]; then
        [ -e "$out" ] || problems+=("exit 0 without output")
    elif [ -z "$rv" ]; then
        problems+=("baseline failed (exit $rc)")
    elif [ "$rv" = CKR_TOKEN_NOT_PRESENT ] && grep -q "no initialized token found" "$WORK/err"; then
        : # C_GetTokenInfo saying "no token in this slot" is reported as exactly that
    elif ! grep -qE "C_[A-Za-z]+ failed with $rv" "$WORK/err"; then
        problems+=("message does not name the function and $rv")
    fi
    # Output: complete and valid, with its audit entry, or absent.
    tail -c +$((audit_size + 1)) audit/entries.jsonl >audit.new
    local o
    for o in "$out" ${BATCH_MORE:+out/b.apk}; do
        [ -e "$o" ] || continue
        "$validator" "$scen" "$o" 2>"$WORK/verr" || problems+=("$o present but invalid: $(head -c 300 "$WORK/verr")")
        audited "$kind" "$o" audit.new "$(basename "$o")" || problems+=("$o without its audit entry")
    done
    if [ $rc -eq 0 ] && [ -n "${BATCH_MORE:-}" ] && [ ! -e out/b.apk ]; then
        problems+=("exit 0 without every batch output")
    fi
    # Inputs, audit log, temporary files.
    sha256sum --quiet -c inputs.sha256 >/dev/null 2>&1 || problems+=("an input changed")
    head -c "$audit_size" audit/entries.jsonl | cmp -s - audit.before || problems+=("audit log rewritten, not appended")
    [ -z "$(find "$WORK" -name '*.tmp.*' -print -quit)" ] || problems+=("temporary file left: $(find "$WORK" -name '*.tmp.*' | head -3)")
    # Sessions and finalization.
    if [ ! -f counts.json ]; then
        problems+=("the shim wrote no counts")
    else
        local fin open leaked total injected
        COUNTS=$(<counts.json)
        fin=$(count_field finalized); open=$(count_field sessions_open)
        leaked=$(count_field sessions_closed_by_finalize); total=$(count_field calls_total)
        injected=$(count_field faults_injected)
        FAULTS=$((FAULTS + injected))
        [ -n "$rv" ] && [ "$injected" != 1 ] && problems+=("the shim injected $injected faults, expected 1")
        [ "$open" = 0 ] && [ "$leaked" = 0 ] || problems+=("sessions left open: open=$open closed_by_finalize=$leaked")
        if grep -q "C_Initialize failed with" "$WORK/err"; then
            [ "$total" = 1 ] || problems+=("calls after a failed C_Initialize: calls_total=$total")
        elif [ "$fin" != true ]; then
            problems+=("C_Finalize not called")
        fi
        [ -z "$rv" ] && BASE_CALLS=$total
    fi
    if [ ${#problems[@]} -eq 0 ]; then return 0; fi
    local p
    for p in "${problems[@]}"; do fail "$tag: $p"; done
    sed 's/^/    /' "$WORK/err" | head -5
    return 1
}

# matrix SCENARIO KIND OUT VALIDATOR COMMAND...
matrix() {
    local scen=$1 kind=$2 out=$3 validator=$4; shift 4
    local n k rv bad=0 runs_before=$RUNS ok_exit=0 start=$SECONDS
    BASE_CALLS=
    if ! run_one "$scen" "$kind" "$out" "$validator" 0 "" "$@" || [ -z "$BASE_CALLS" ]; then
        fail "$scen: baseline run through the shim"; return
    fi
    pass "$scen: baseline through the shim: $BASE_CALLS PKCS#11 calls, output verified"
    for n in $(seq $((1 + SCEN_OFFSET % STEP)) "$STEP" "$BASE_CALLS"); do
        for k in $(seq 0 $((PER_INDEX - 1))); do
            rv=${CODES[$(( ((n - 1) * PER_INDEX + k + SCEN_OFFSET) % 6 ))]}
            run_one "$scen" "$kind" "$out" "$validator" "$n" "$rv" "$@" || bad=$((bad + 1))
            [ -e "$out" ] && ok_exit=$((ok_exit + 1))
        done
    done
    SCEN_OFFSET=$((SCEN_OFFSET + 1))
    [ "$bad" -eq 0 ] && pass "$scen: $((RUNS - runs_before - 1)) faulted runs over $BASE_CALLS call indices (step $STEP) safe ($ok_exit completed with a verified output, the rest failed cleanly; $((SECONDS - start)) s)"
}
SCEN_OFFSET=0

matrix "rsa" raw out/rsa.sig valid_raw "$HSMSIGN" sign raw --key rsa in.bin out/rsa.sig
matrix "ec" raw out/ec.sig valid_raw "$HSMSIGN" sign raw --key ec in.bin out/ec.sig
# key generate: the output is the key file; a finished key is removed before
# the next run so that every run really generates.
# (EC: an RSA key pair takes SoftHSM up to a second, and the call sequence
# is the same.)
matrix "gen" generate keys/gen.key valid_generated "$HSMSIGN" key generate gen --algorithm ec-p256
matrix "imp" import keys/imp.key valid_imported "$HSMSIGN" key import imp --pk8 imp.pem --cert imp.crt
matrix "apk" apk out/a.apk valid_apk "$HSMSIGN" sign apk --key rsa a.apk out/a.apk
# A batch of two APKs with two RSA keys (two unwraps): each output on its own
# must be complete and valid or absent; exit 0 needs both.
BATCH_MORE=1 matrix "batch" apk out/a.apk valid_apk "$HSMSIGN" sign batch batch.json
matrix "vbmeta" vbmeta out/vb.img valid_vbmeta \
    "$HSMSIGN" avb make-vbmeta --output out/vb.img --key rsa --algorithm SHA256_RSA2048

echo "# $FAULTS faults injected in $RUNS runs through the shim"
assert "faults were injected" test "$FAULTS" -gt 0
finish
