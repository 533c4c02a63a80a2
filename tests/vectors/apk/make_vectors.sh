#!/bin/bash
# Regenerates the APK vectors (run in this directory). Tools: Debian aapt
# (1:10.0.0+r36), apksigner 31.0.2, OpenSSL 3.0, android-framework-res.
set -euo pipefail
FW=/usr/share/android-framework-res/framework-res.apk
openssl genrsa -out testkey.pem 2048
openssl pkcs8 -topk8 -nocrypt -in testkey.pem -outform DER -out testkey.pk8
openssl req -new -x509 -key testkey.pem -subj /CN=hsmsign-test -days 36500 -out testkey.x509.pem
chmod 644 testkey.pem testkey.pk8
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/assets" "$work/lib/x86"
echo hello > "$work/assets/a.txt"
head -c 10000 /dev/zero | tr '\0' 'x' > "$work/lib/x86/libfoo.so"
for sdk in 21 33 Tiramisu; do
  mkdir -p "$work/m$sdk"
  cat > "$work/m$sdk/AndroidManifest.xml" <<XML
<?xml version="1.0" encoding="utf-8"?>
<manifest xmlns:android="http://schemas.android.com/apk/res/android" package="org.hsmsign.t">
  <uses-sdk android:minSdkVersion="$sdk" android:targetSdkVersion="33"/>
  <application android:label="t"/>
</manifest>
XML
  rm -f "$work/m$sdk.apk"
  aapt package -M "$work/m$sdk/AndroidManifest.xml" -I "$FW" -F "$work/m$sdk.apk"
  unzip -p "$work/m$sdk.apk" AndroidManifest.xml > "manifest-$sdk.axml"
done
cp "$work/m21.apk" app21.apk
(cd "$work" && aapt add "$OLDPWD/app21.apk" assets/a.txt >/dev/null && zip -q -0 "$OLDPWD/app21.apk" lib/x86/libfoo.so)
apksigner sign --key testkey.pk8 --cert testkey.x509.pem --v1-signing-enabled false \
  --v2-signing-enabled true --v3-signing-enabled true --v4-signing-enabled false \
  --out app21.v2v3.apksigner.apk app21.apk
apksigner sign --key testkey.pk8 --cert testkey.x509.pem --v1-signing-enabled true \
  --v2-signing-enabled true --v3-signing-enabled true --v4-signing-enabled false \
  --out app21.v1v2v3.apksigner.apk app21.apk
apksigner sign --key testkey.pk8 --cert testkey.x509.pem --v1-signing-enabled false \
  --v2-signing-enabled true --v3-signing-enabled true --v4-signing-enabled true \
  --out "$work/v4.apk" app21.apk
cmp "$work/v4.apk" app21.v2v3.apksigner.apk
cp "$work/v4.apk.idsig" app21.v2v3.apksigner.apk.idsig
