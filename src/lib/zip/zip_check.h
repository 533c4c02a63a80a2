/* Checks every entry's data against what the central directory declares,
 * fed with the file's bytes in file order by a pass that reads them anyway
 * (the signer's input SHA-256, apk_sign.c), so the check costs no second
 * read: a stored entry's CRC-32 and sizes, a deflated entry inflated
 * (zlib, streaming, a 64 KiB window of output) to exactly its declared
 * size and CRC-32, with no bytes left over. Signing copies entries
 * unchanged, and the v2/v3 content digest covers the compressed bytes, so
 * without this check an APK with corrupt data would be signed and pass
 * digest-only verification, to fail later on a device. A failure names the
 * file, the entry and the reason (HS_E_FORMAT). */
#ifndef HSMSIGN_ANDROID_ZIP_CHECK_H
#define HSMSIGN_ANDROID_ZIP_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "zip/zip.h"
#include "util/result.h"

typedef struct hs_zip_check hs_zip_check;

/* z must stay open until hs_zip_check_free. */
hs_result hs_zip_check_new(const hs_zip *z, hs_zip_check **out, hs_error *e) HS_MUST_CHECK;
/* The file's bytes [offset, offset + len), contiguous with the previous
 * call's. False once an entry failed; the reason is kept for
 * hs_zip_check_end. */
bool hs_zip_check_feed(hs_zip_check *c, uint64_t offset, const uint8_t *data, size_t len);
/* After the last byte: HS_OK when every entry's data was checked good,
 * else the first failure, naming the file and the entry. */
hs_result hs_zip_check_end(hs_zip_check *c, hs_error *e) HS_MUST_CHECK;
void hs_zip_check_free(hs_zip_check *c);

/* The whole check in one pass of its own (pread of the entries section),
 * for a reader that does not read the bytes in order anyway: the verifier
 * runs it after the signatures. skip_unknown_methods: an entry whose method
 * is neither stored nor deflated passes unread, as Android's verifier never
 * reads it (the signer refuses such entries). */
hs_result hs_zip_check_file(const hs_zip *z, bool skip_unknown_methods, hs_error *e) HS_MUST_CHECK;

#endif
