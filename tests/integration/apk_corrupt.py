#!/usr/bin/env python3
"""Damages one entry of a ZIP/APK for the entry data check tests
(test_apk_entry_data.sh): apk_corrupt.py IN OUT ENTRY MODE."""
import struct, sys, zipfile
# MODE deflate: the first byte of a deflated entry's data becomes 0xff (a
# reserved block type: zlib and Java's Inflater say "invalid block type");
# data: one bit of the middle data byte flipped; crc: the CRC-32 field + 1
# in the local header and the central directory, the data untouched.
src, dst, name, mode = sys.argv[1:5]
b = bytearray(open(src, 'rb').read())
z = zipfile.ZipFile(src)
info = z.getinfo(name)
lfh = info.header_offset
n, x = struct.unpack_from('<HH', b, lfh + 26)
data = lfh + 30 + n + x
if mode == 'deflate':
    assert info.compress_type == 8
    b[data] = 0xff
elif mode == 'data':
    b[data + info.compress_size // 2] ^= 0x01
elif mode == 'crc':
    crc = (info.CRC + 1) & 0xffffffff
    struct.pack_into('<I', b, lfh + 14, crc)
    eocd = b.rfind(b'PK\x05\x06')
    cd = struct.unpack_from('<I', b, eocd + 16)[0]
    end = cd + struct.unpack_from('<I', b, eocd + 12)[0]
    p = cd
    while p < end:
        nl, xl, cl = struct.unpack_from('<HHH', b, p + 28)
        if b[p + 46:p + 46 + nl].decode() == name:
            struct.pack_into('<I', b, p + 16, crc)
        p += 46 + nl + xl + cl
open(dst, 'wb').write(b)
