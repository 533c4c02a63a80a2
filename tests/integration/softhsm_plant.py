#!/usr/bin/env python3
"""Makes a SoftHSM token look "fresh" (initialized, no user PIN) while it
keeps every object on it, the private ones included: the state a previous
holder leaves to keep a hidden credential on a token the ceremony takes
over (docs/ceremony.md, "reset, then prove blank").

usage: softhsm_plant.py TOKENDIR LABEL

Edits LABEL's token.object (SoftHSM file backend: an 8-byte generation,
then attributes of an 8-byte type, an 8-byte kind and a value: kind 1 a
bool byte, 2 an 8-byte ulong, 3 an 8-byte length and bytes): drops
CKA_OS_USERPIN and clears CKF_USER_PIN_INITIALIZED in CKA_OS_TOKENFLAGS.
"""
import glob, os, struct, sys

OS_TOKENLABEL, OS_TOKENFLAGS, OS_USERPIN = 0x80005349, 0x8000534B, 0x8000534D
CKF_USER_PIN_INITIALIZED = 0x8


def attributes(b):
    i = 8
    while i < len(b):
        t, kind = struct.unpack(">QQ", b[i:i + 16])
        if kind in (1, 2):
            j = i + 16 + (1 if kind == 1 else 8)
            yield t, kind, b[i:i + 16], b[i + 16:j]
        elif kind == 3:
            n, = struct.unpack(">Q", b[i + 16:i + 24])
            j = i + 24 + n
            yield t, kind, b[i:i + 24], b[i + 24:j]
        else:
            sys.exit("%s: unknown attribute kind %d" % (path, kind))
        i = j


tokendir, label = sys.argv[1], sys.argv[2]
for path in glob.glob(os.path.join(tokendir, "*", "token.object")):
    b = open(path, "rb").read()
    attrs = list(attributes(b))
    if not any(t == OS_TOKENLABEL and v.rstrip(b" ") == label.encode() for t, _, _, v in attrs):
        continue
    out = bytearray(b[:8])
    for t, kind, head, v in attrs:
        if t == OS_USERPIN:
            continue
        if t == OS_TOKENFLAGS:
            v = struct.pack(">Q", struct.unpack(">Q", v)[0] & ~CKF_USER_PIN_INITIALIZED)
        out += head + v
    open(path, "wb").write(bytes(out))
    sys.exit(0)
sys.exit("no token labelled %r under %s" % (label, tokendir))
