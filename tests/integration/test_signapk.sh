#!/bin/bash
# hsmsign signapk / sign ota / hsmsign-java against signapk.jar with the
# same key as a .pk8 file: byte-identical APKs (aapt-built at several
# minSdk, framework-res.apk, -a 4096, --min-sdk-version, --disable-v2),
# -w OTA packages (SHA-256 and SHA-1 certificates), --align-file-size and
# .so alignment against the AOSP-main jar (../shared/releasetools, skipped
# when absent); OUT rewritten in place (same inode, read through a handle
# held open); hsmsign-java's dispatch; bad inputs leave OUT untouched.
set -u
WORK=$(mktemp -d /tmp/hsmsign-signapk.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 1
. "$(dirname "$0")/lib.sh"

SIGNAPK_JAR=/usr/share/signapk/signapk.jar
FWRES=/usr/share/android-framework-res/framework-res.apk
FIXTURE=${HSMSIGN_RELEASETOOLS:-$(dirname "$0")/../../../shared/releasetools}
AOSP_JAR=$FIXTURE/signapk-aosp/signapk-aosp-main.jar
JAVA_WRAPPER=${HSMSIGN_JAVA:-$(dirname "$HSMSIGN_BINARY")/hsmsign-java}
for tool in java aapt zipalign apksigner zip; do
    command -v $tool >/dev/null || { echo "1..0 # SKIP $tool not installed (scripts/install-deps)"; exit 77; }
done
[ -f "$SIGNAPK_JAR" ] || { echo "1..0 # SKIP $SIGNAPK_JAR missing (Debian package signapk)"; exit 77; }

setup_token
K=$WORK/k
mkdir -p "$K"
# AOSP-style keys (as development/tools/make_key): PEM certificate, PKCS#8 DER key.
make_key() { # NAME DIGEST
    openssl genrsa -out "$K/$1.key.pem" 2048 2>/dev/null &&
    openssl req -new -x509 "-$2" -key "$K/$1.key.pem" -out "$K/$1.x509.pem" -days 3000 \
        -subj "/C=US/O=Android/CN=$1" 2>/dev/null &&
    openssl pkcs8 -in "$K/$1.key.pem" -topk8 -outform DER -out "$K/$1.pk8" -nocrypt &&
    hs -q key import "$1" --pk8 "$K/$1.pk8" --cert "$K/$1.x509.pem" >/dev/null
}
make_key releasekey sha256 || { echo "Bail out! cannot make keys"; exit 1; }
make_key oldkey sha1 || { echo "Bail out! cannot make keys"; exit 1; }
CERT=$K/releasekey.x509.pem PK8=$K/releasekey.pk8

# A small APK as releasetools' fixture builds them: aapt, zipalign 4; the
# assets mix stored and deflated entries. $3: a stored .so as well.
make_apk() { # NAME MINSDK [so]
    local d=$WORK/src-$1
    mkdir -p "$d/res/values" "$d/assets"
    cat >"$d/AndroidManifest.xml" <<EOF
<?xml version="1.0" encoding="utf-8"?>
<manifest xmlns:android="http://schemas.android.com/apk/res/android" package="org.hsmsign.$1"
    android:versionCode="1" android:versionName="1.0">
  <uses-sdk android:minSdkVersion="$2" android:targetSdkVersion="29"/>
  <application android:label="@string/app_name" android:hasCode="false"/>
</manifest>
EOF
    echo "<resources><string name=\"app_name\">$1</string></resources>" >"$d/res/values/strings.xml"
    seq 1 300 | sed "s/^/$1 asset line /" >"$d/assets/data.txt"
    head -c 5000 /dev/urandom >"$d/assets/blob.bin"
    aapt package -f -M "$d/AndroidManifest.xml" -S "$d/res" -A "$d/assets" -0 bin \
        -I "$FWRES" -F "$WORK/$1.unaligned.apk" >/dev/null || return 1
    if [ "${3:-}" = so ]; then
        mkdir -p "$d/z/lib/arm64-v8a" && head -c 7000 /dev/urandom >"$d/z/lib/arm64-v8a/libx.so"
        (cd "$d/z" && zip -q -0 "$WORK/$1.unaligned.apk" lib/arm64-v8a/libx.so) || return 1
    fi
    zipalign -f 4 "$WORK/$1.unaligned.apk" "$WORK/$1.apk"
}

ref() { java -jar "$SIGNAPK_JAR" "$@" 2>"$WORK/java.err"; }

# same_as_jar DESC JAR ARGS... (ARGS end with CERT KEY IN OUT-BASENAME)
same_as_jar() {
    local what=$1 jar=$2; shift 2
    local n=$# out=${!#}
    local args=("${@:1:$((n - 1))}")
    rm -f "$WORK/$out.ref" "$WORK/$out.hs"
    java -jar "$jar" "${args[@]}" "$WORK/$out.ref" 2>"$WORK/java.err" ||
        { fail "$what: signapk.jar failed"; sed 's/^/    /' "$WORK/java.err"; return; }
    if ! hs signapk "${args[@]}" "$WORK/$out.hs" 2>"$WORK/err"; then
        fail "$what: hsmsign signapk failed"; sed 's/^/    /' "$WORK/err"; return; fi
    if cmp -s "$WORK/$out.ref" "$WORK/$out.hs"; then pass "$what: byte-identical to $(basename "$jar")"
    else fail "$what: differs from $(basename "$jar") ($(cmp "$WORK/$out.ref" "$WORK/$out.hs" | head -1))"; fi
}

apk_verifies() {
    if apksigner verify "$1" >/dev/null 2>"$WORK/err"; then pass "apksigner verify $(basename "$1")"
    else fail "apksigner verify $(basename "$1")"; sed 's/^/    /' "$WORK/err" | head -5; fi
}

# --- APKs -------------------------------------------------------------------
for sdk in 14 18 24 28 30; do
    make_apk "app$sdk" "$sdk" || { echo "Bail out! aapt failed"; exit 1; }
    same_as_jar "APK minSdk $sdk" "$SIGNAPK_JAR" "$CERT" "$PK8" "$WORK/app$sdk.apk" "app$sdk"
    apk_verifies "$WORK/app$sdk.hs"
done
same_as_jar "-a 4096" "$SIGNAPK_JAR" -a 4096 "$CERT" "$PK8" "$WORK/app24.apk" a4096
same_as_jar "--min-sdk-version 21" "$SIGNAPK_JAR" --min-sdk-version 21 "$CERT" "$PK8" "$WORK/app14.apk" ms21
same_as_jar "--disable-v2" "$SIGNAPK_JAR" --disable-v2 "$CERT" "$PK8" "$WORK/app18.apk" nov2
apk_verifies "$WORK/nov2.hs"
same_as_jar "SHA-1 certificate, minSdk 14" "$SIGNAPK_JAR" "$K/oldkey.x509.pem" "$K/oldkey.pk8" "$WORK/app14.apk" sha1apk
same_as_jar "re-signing a signed APK" "$SIGNAPK_JAR" "$CERT" "$PK8" "$WORK/sha1apk.hs" resign
make_apk withso 24 so || { echo "Bail out! aapt failed"; exit 1; }
ref "$CERT" "$PK8" "$WORK/withso.apk" "$WORK/so4k.ref"
hs signapk --so-alignment 4096 "$CERT" "$PK8" "$WORK/withso.apk" "$WORK/so4k.hs"
assert "stored .so, --so-alignment 4096: byte-identical to Debian's signapk.jar" cmp -s "$WORK/so4k.ref" "$WORK/so4k.hs"
"$JAVA_WRAPPER" -jar "$SIGNAPK_JAR" "$CERT" "$PK8" "$WORK/withso.apk" "$WORK/so4k.java" </dev/null
assert "hsmsign-java -jar Debian's jar: its .so alignment" cmp -s "$WORK/so4k.ref" "$WORK/so4k.java"
if [ -f "$FWRES" ]; then
    same_as_jar "framework-res.apk" "$SIGNAPK_JAR" "$CERT" "$PK8" "$FWRES" fwres
    apk_verifies "$WORK/fwres.hs"
else
    echo "# skip framework-res.apk: $FWRES missing (Debian android-framework-res)"
fi

# --- OTA packages (-w) ------------------------------------------------------
mkdir -p "$WORK/ota/META-INF/com/google/android"
echo 'ui_print("hsmsign");' >"$WORK/ota/META-INF/com/google/android/updater-script"
head -c 20000 /dev/urandom >"$WORK/ota/boot.img"
seq 1 2000 >"$WORK/ota/system.txt"
(cd "$WORK/ota" && zip -q -r "$WORK/ota.zip" . && zip -q -0 "$WORK/ota.zip" boot.img)
same_as_jar "-w OTA package" "$SIGNAPK_JAR" -w "$CERT" "$PK8" "$WORK/ota.zip" ota
same_as_jar "-w with a SHA-1 certificate" "$SIGNAPK_JAR" -w "$K/oldkey.x509.pem" "$K/oldkey.pk8" "$WORK/ota.zip" ota1
same_as_jar "-w re-signing a signed OTA" "$SIGNAPK_JAR" -w "$CERT" "$PK8" "$WORK/ota.hs" ota2
# sign ota: the key store's certificate as CERT (the same PEM as openssl writes).
openssl x509 -in "$CERT" -out "$WORK/cert-canonical.pem"
ref -w "$WORK/cert-canonical.pem" "$PK8" "$WORK/ota.zip" "$WORK/ota-native.ref"
check "sign ota --key releasekey" hs sign ota --key releasekey "$WORK/ota.zip" "$WORK/ota-native.hs"
assert "sign ota: byte-identical to signapk -w" cmp -s "$WORK/ota-native.ref" "$WORK/ota-native.hs"
if [ -d "$FIXTURE/tools/releasetools" ]; then
    PYTHONPATH=$FIXTURE/tools/releasetools /usr/bin/python3 \
        "$FIXTURE/tools/releasetools/check_ota_package_signature.py" "$CERT" "$WORK/ota.hs" \
        >"$WORK/check.out" 2>&1
    assert "check_ota_package_signature.py: VERIFIED" grep -q VERIFIED "$WORK/check.out"
else
    echo "# skip check_ota_package_signature.py: $FIXTURE absent"
fi

# --- AOSP-main jar: --align-file-size, .so alignment --------------------------
if [ -f "$AOSP_JAR" ]; then
    same_as_jar "AOSP-main: plain" "$AOSP_JAR" "$CERT" "$PK8" "$WORK/app28.apk" aosp
    same_as_jar "AOSP-main: -a 4096 --align-file-size --min-sdk-version 29 (APEX container)" \
        "$AOSP_JAR" -a 4096 --align-file-size --min-sdk-version 29 "$CERT" "$PK8" "$WORK/app28.apk" afs
    assert "--align-file-size: size is a multiple of 4096" [ $(( $(stat -c %s "$WORK/afs.hs") % 4096 )) -eq 0 ]
    apk_verifies "$WORK/afs.hs"
    same_as_jar "AOSP-main: stored .so aligned to 16 KiB" "$AOSP_JAR" "$CERT" "$PK8" "$WORK/withso.apk" so
    same_as_jar "AOSP-main: -w" "$AOSP_JAR" -w "$CERT" "$PK8" "$WORK/ota.zip" aospota
else
    echo "# skip --align-file-size and .so alignment: $AOSP_JAR absent"
fi

# --- OUT in place -------------------------------------------------------------
# releasetools creates OUT, passes its name, then reads the handle it holds.
: >"$WORK/held.apk"
/usr/bin/python3 - "$HSMSIGN" "$CERT" "$PK8" "$WORK/app24.apk" "$WORK/held.apk" "$WORK/app24.ref" \
    >"$WORK/held.out" 2>&1 <<'EOF'
import os, subprocess, sys
hs, cert, key, inp, out, ref = sys.argv[1:]
f = open(out, "rb")
ino = os.fstat(f.fileno()).st_ino
subprocess.run([hs, "signapk", cert, key, inp, out], check=True)
data = f.read()
print("same-inode" if os.stat(out).st_ino == ino else "new-inode")
print("bytes-ok" if data == open(ref, "rb").read() else "bytes-differ %d" % len(data))
EOF
assert "in place: OUT keeps its inode" grep -q same-inode "$WORK/held.out"
assert "in place: the held handle reads the signed APK" grep -q bytes-ok "$WORK/held.out"

# --- hsmsign-java ----------------------------------------------------------------
if "$JAVA_WRAPPER" -Xmx4096m -Djava.library.path=/nonexistent/lib64 -jar /any/where/signapk.jar \
    --min-sdk-version 24 "$CERT" "$PK8" "$WORK/app24.apk" "$WORK/j.apk" 2>"$WORK/err" </dev/null; then
    java -jar "$SIGNAPK_JAR" --min-sdk-version 24 "$CERT" "$PK8" "$WORK/app24.apk" "$WORK/j.ref" 2>/dev/null
    assert "hsmsign-java -Xmx -D -jar .../signapk.jar: same bytes as signapk.jar" cmp -s "$WORK/j.ref" "$WORK/j.apk"
else
    fail "hsmsign-java -jar signapk.jar"; sed 's/^/    /' "$WORK/err"
fi
printf 'password\n' | "$JAVA_WRAPPER" -jar "$AOSP_JAR" -w "$CERT" "$PK8" "$WORK/ota.zip" "$WORK/j.zip" 2>"$WORK/err"
assert "hsmsign-java -w with a password on stdin: same bytes" cmp -s "$WORK/ota.ref" "$WORK/j.zip"
"$JAVA_WRAPPER" -version >"$WORK/out" 2>&1
assert "hsmsign-java -version runs the real java" grep -qi 'openjdk\|java version' "$WORK/out"
"$JAVA_WRAPPER" -Xmx64m -jar "$WORK/other.jar" >"$WORK/out" 2>&1
assert "hsmsign-java -jar other.jar goes to the real java" grep -q 'Unable to access jarfile' "$WORK/out"
HSMSIGN_REAL_JAVA=/bin/echo "$JAVA_WRAPPER" -cp x Main arg >"$WORK/out" 2>&1
assert "hsmsign-java: HSMSIGN_REAL_JAVA names the real java, argv unchanged" \
    grep -qx -- '-cp x Main arg' "$WORK/out"

# --- key map ---------------------------------------------------------------------
cp "$PK8" "$WORK/platform.pk8"
printf '# releasetools key path -> hsmsign key\n%s = releasekey\n' "$WORK/platform.pk8" >"$WORK/keymap"
check "--key-map maps a .pk8 path to a key name" \
    hs signapk --key-map "$WORK/keymap" "$CERT" "$WORK/platform.pk8" "$WORK/app24.apk" "$WORK/km.apk"
assert "--key-map: same bytes" cmp -s "$WORK/app24.ref" "$WORK/km.apk"
HSMSIGN_KEY_MAP=$WORK/keymap check "HSMSIGN_KEY_MAP" \
    hs signapk "$CERT" "$WORK/platform.pk8" "$WORK/app24.apk" "$WORK/km2.apk"

# --- bad input: clear message, non-zero exit, OUT untouched ---------------------------
cp "$WORK/app24.ref" "$WORK/keep.apk"
sum() { sha256sum "$WORK/keep.apk" | cut -c1-64; }
before=$(sum)
expect_fail "unknown key" 8 "nosuch.pk8.*unknown key 'nosuch'" \
    hs signapk "$CERT" "$K/nosuch.pk8" "$WORK/app24.apk" "$WORK/keep.apk"
expect_fail "missing certificate" 8 "missing.x509.pem" \
    hs signapk "$K/missing.x509.pem" "$PK8" "$WORK/app24.apk" "$WORK/keep.apk"
expect_fail "certificate of another key" 1 "oldkey.x509.pem: certificate does not match hsmsign key 'releasekey'" \
    hs signapk "$K/oldkey.x509.pem" "$PK8" "$WORK/app24.apk" "$WORK/keep.apk"
head -c 3000 "$WORK/app24.apk" >"$WORK/trunc.apk"
expect_fail "truncated input zip" 5 "trunc.apk" \
    hs signapk "$CERT" "$PK8" "$WORK/trunc.apk" "$WORK/keep.apk"
cp "$WORK/app24.apk" "$WORK/crc.apk"
off=$(/usr/bin/python3 -c "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); i=z.getinfo('assets/blob.bin'); print(i.header_offset+30+len(i.filename)+len(i.extra)+100)" "$WORK/crc.apk")
printf 'XXXX' | dd of="$WORK/crc.apk" bs=1 seek="$off" conv=notrunc 2>/dev/null
expect_fail "corrupt entry data" 5 "crc.apk: entry assets/blob.bin: CRC mismatch" \
    hs signapk "$CERT" "$PK8" "$WORK/crc.apk" "$WORK/keep.apk"
expect_fail "several CERT KEY pairs" 2 "several CERT KEY pairs" \
    hs signapk "$CERT" "$PK8" "$CERT" "$PK8" "$WORK/app24.apk" "$WORK/keep.apk"
expect_fail "unsupported option" 2 "--enable-v4 is not supported" \
    hs signapk --enable-v4 "$CERT" "$PK8" "$WORK/app24.apk" "$WORK/keep.apk" "$WORK/v4"
assert "bad inputs left OUT untouched" [ "$(sum)" = "$before" ]
mkdir -p "$WORK/adir"
expect_fail "OUT is a directory" 3 "adir: cannot open for writing" \
    hs signapk "$CERT" "$PK8" "$WORK/app24.apk" "$WORK/adir"
expect_fail "OUT in a missing directory" 3 "nodir/out.apk" \
    hs signapk "$CERT" "$PK8" "$WORK/app24.apk" "$WORK/nodir/out.apk"

# --- audit ---------------------------------------------------------------------
hs audit show >"$WORK/audit.txt" 2>&1
assert "audit: OTA whole-file signatures logged" grep -q 'sign/ota-wholefile' "$WORK/audit.txt"
assert "audit: signapk outputs recorded" grep -q 'output/ota' "$WORK/audit.txt"
check "audit verify" hs audit verify
finish
