#!/usr/bin/env python3
"""Independent reader of the hsmsign-share v1 format (docs/share-format.md),
written from the document, not from the C code, for test_ceremony.sh.

  ceremony_shares.py recover SHARE...      prints the secret (hex) rebuilt
      from the plain share files: Shamir over GF(2^8) (AES polynomial) at 0
      gives K, the AES-256-GCM ciphertext is decrypted under K (tag checked
      with the `cryptography` module when present, else CTR via openssl
      and the check value compared), and the check value is verified.
  ceremony_shares.py tamper-y IN OUT       changes y and recomputes the
      checksum: an intact-looking share that is not on the polynomial.
  ceremony_shares.py commit SHARE SALT     prints the share's commitment
      (section "Commitments") for the salt (hex) the transcript gives.
"""
import hashlib
import subprocess
import sys

FIELDS = ["set-id", "threshold", "shares", "x", "y", "secret-kcv", "nonce",
          "ciphertext", "tag", "label", "checksum"]


def parse(text):
    lines = text.split("\n")
    assert lines[0] == "hsmsign-share v1", "bad header"
    assert lines[-1] == "" and len(lines) == 13, "bad line count"
    f = {}
    for line in lines[1:-1]:
        name, value = line.split(": ", 1)
        assert name in FIELDS and name not in f, name
        f[name] = value
    return f


def checksum(f):
    b = b"hsmsign-share v1 checksum"
    b += bytes.fromhex(f["set-id"]) + bytes([int(f["threshold"]), int(f["shares"]), int(f["x"])])
    b += bytes.fromhex(f["y"]) + bytes.fromhex(f["secret-kcv"]) + bytes.fromhex(f["nonce"])
    ct = bytes.fromhex(f["ciphertext"])
    label = f["label"].encode()
    b += bytes([len(ct)]) + ct + bytes.fromhex(f["tag"]) + bytes([len(label)]) + label
    return hashlib.sha256(b).hexdigest()


def gmul(a, b):
    r = 0
    while b:
        if b & 1:
            r ^= a
        a <<= 1
        if a & 0x100:
            a ^= 0x11B
        b >>= 1
    return r


def ginv(a):
    r = 1
    for _ in range(254):  # a^254 = a^-1 in GF(2^8)
        r = gmul(r, a)
    return r


def interpolate_at_zero(points):
    k = bytearray(32)
    for i, (xi, yi) in enumerate(points):
        num, den = 1, 1
        for j, (xj, _) in enumerate(points):
            if i != j:
                num = gmul(num, xj)          # (0 - xj) = xj in GF(2^8)
                den = gmul(den, xi ^ xj)
        c = gmul(num, ginv(den))
        for b in range(32):
            k[b] ^= gmul(yi[b], c)
    return bytes(k)


def openssl(args, data):
    return subprocess.run(["openssl"] + args, input=data, capture_output=True, check=True).stdout


def kcv(key):
    return openssl(["enc", "-aes-256-ecb", "-nopad", "-K", key.hex()], bytes(16))[:3]


def recover(paths):
    shares = [parse(open(p).read()) for p in paths]
    for p, f in zip(paths, shares):
        assert checksum(f) == f["checksum"], "checksum of " + p
    k = int(shares[0]["threshold"])
    assert len(shares) >= k, "fewer than k shares"
    key_k = interpolate_at_zero([(int(f["x"]), bytes.fromhex(f["y"])) for f in shares[:k]])
    f = shares[0]
    nonce, ct, tag = (bytes.fromhex(f[n]) for n in ("nonce", "ciphertext", "tag"))
    aad = (b"hsmsign-share v1 aad" + bytes.fromhex(f["set-id"]) +
           bytes([k, int(f["shares"])]) + bytes.fromhex(f["secret-kcv"]))
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        secret = AESGCM(key_k).decrypt(nonce, ct + tag, aad)
    except ImportError:
        # GCM's keystream for a 96-bit nonce is AES-CTR from nonce || 2.
        secret = openssl(["enc", "-d", "-aes-256-ctr", "-K", key_k.hex(),
                          "-iv", (nonce + b"\0\0\0\2").hex()], ct)
    assert kcv(secret).hex() == f["secret-kcv"], "check value of the rebuilt secret"
    print(secret.hex())


def tamper_y(src, dst):
    f = parse(open(src).read())
    y = bytearray(bytes.fromhex(f["y"]))
    y[0] ^= 0x01
    f["y"] = y.hex()
    f["checksum"] = checksum(f)
    with open(dst, "w") as out:
        out.write("hsmsign-share v1\n" + "".join("%s: %s\n" % (n, f[n]) for n in FIELDS))


def commit(path, salt):
    f = parse(open(path).read())
    b = b"hsmsign-share-commitment v1\x00" + bytes.fromhex(salt) + bytes.fromhex(f["set-id"])
    b += bytes([int(f["x"])]) + bytes.fromhex(f["y"])
    print(hashlib.sha256(b).hexdigest())


if __name__ == "__main__":
    if sys.argv[1] == "recover":
        recover(sys.argv[2:])
    elif sys.argv[1] == "tamper-y":
        tamper_y(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "commit":
        commit(sys.argv[2], sys.argv[3])
    else:
        sys.exit("unknown command")
