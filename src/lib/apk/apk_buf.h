/* A growable byte buffer for assembling the length-prefixed structures of
 * APK signatures (every length and integer there is little-endian). Errors
 * are sticky: after a failed allocation every append is a no-op and
 * hs_apk_buf_check reports it once, so builders stay linear. */
#ifndef HSMSIGN_ANDROID_APK_BUF_H
#define HSMSIGN_ANDROID_APK_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/result.h"

typedef struct hs_apk_buf {
    uint8_t *data;
    size_t len, cap;
    bool failed;
} hs_apk_buf;

void hs_apk_buf_free(hs_apk_buf *b);
void hs_apk_buf_append(hs_apk_buf *b, const void *data, size_t len);
void hs_apk_buf_u32(hs_apk_buf *b, uint32_t v);
void hs_apk_buf_u64(hs_apk_buf *b, uint64_t v);
void hs_apk_buf_zeros(hs_apk_buf *b, size_t len);
/* u32 length, then the bytes. */
void hs_apk_buf_lp(hs_apk_buf *b, const void *data, size_t len);
/* Reserves a u32 length slot; hs_apk_buf_lp_end fills it with the number of
 * bytes appended since. Lets nested lp() structures be written in order. */
size_t hs_apk_buf_lp_begin(hs_apk_buf *b);
void hs_apk_buf_lp_end(hs_apk_buf *b, size_t slot);
hs_result hs_apk_buf_check(const hs_apk_buf *b, const char *what, hs_error *e) HS_MUST_CHECK;

#endif
