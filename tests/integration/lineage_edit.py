#!/usr/bin/env python3
"""Edits an apksig SigningCertificateLineage file for test_apk_rotation.sh.
  lineage_edit.py forge IN OUT      flip one bit in the newest link's signature
  lineage_edit.py reorder IN OUT    swap the last two certificates' nodes
  lineage_edit.py sig-sha256 IN N   SHA-256 (hex) of node N's signature (0-based)
  lineage_edit.py count IN          number of certificates
Layout: u32 magic, u32 version, lp(u32 version, lp(node)...); node =
lp(lp(cert) u32 alg) u32 flags u32 alg lp(signature); little-endian."""
import hashlib
import struct
import sys


def u32(b, o):
    return struct.unpack_from("<I", b, o)[0]


def parse(data):
    magic, version, body_len = struct.unpack_from("<III", data, 0)
    assert magic == 0x3EFF39D1 and version == 1 and 12 + body_len == len(data)
    body = data[12:]
    nodes, o = [], 4
    while o < len(body):
        n = u32(body, o)
        nodes.append(bytearray(body[o + 4:o + 4 + n]))
        o += 4 + n
    return body[:4], nodes


def build(head, nodes):
    body = head + b"".join(struct.pack("<I", len(n)) + bytes(n) for n in nodes)
    return struct.pack("<III", 0x3EFF39D1, 1, len(body)) + body


def sig_span(node):
    sd = u32(node, 0)
    o = 4 + sd + 8
    return o + 4, u32(node, o)


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    head, nodes = parse(open(path, "rb").read())
    if cmd == "count":
        print(len(nodes))
    elif cmd == "sig-sha256":
        n = nodes[int(sys.argv[3])]
        at, ln = sig_span(n)
        print(hashlib.sha256(bytes(n[at:at + ln])).hexdigest())
    elif cmd == "forge":
        at, ln = sig_span(nodes[-1])
        nodes[-1][at + ln // 2] ^= 1
        open(sys.argv[3], "wb").write(build(head, nodes))
    elif cmd == "reorder":
        nodes[-1], nodes[-2] = nodes[-2], nodes[-1]
        open(sys.argv[3], "wb").write(build(head, nodes))
    else:
        sys.exit("unknown command " + cmd)


main()
