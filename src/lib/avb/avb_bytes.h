/* Byte helpers shared by the AVB encoders and parsers: big-endian fields
 * (every AVB structure is big-endian), round-up arithmetic with overflow
 * checks, and a growable byte buffer for assembling descriptors. */
#ifndef HSMSIGN_ANDROID_AVB_BYTES_H
#define HSMSIGN_ANDROID_AVB_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/result.h"

static inline void hs_avb_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void hs_avb_put_be64(uint8_t *p, uint64_t v)
{
    hs_avb_put_be32(p, (uint32_t)(v >> 32));
    hs_avb_put_be32(p + 4, (uint32_t)v);
}

static inline uint32_t hs_avb_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t hs_avb_get_be64(const uint8_t *p)
{
    return (uint64_t)hs_avb_get_be32(p) << 32 | hs_avb_get_be32(p + 4);
}

/* Rounds v up to a multiple of m (m > 0); false on overflow. */
static inline bool hs_avb_round_up(uint64_t v, uint64_t m, uint64_t *out)
{
    uint64_t rem = v % m;
    if (rem == 0) {
        *out = v;
        return true;
    }
    if (v > UINT64_MAX - (m - rem))
        return false;
    *out = v + (m - rem);
    return true;
}

/* A growable buffer; zero-initialise, then append. On allocation failure
 * the append functions return HS_E_NOMEM and leave the buffer as it was. */
typedef struct hs_avb_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} hs_avb_buf;

hs_result hs_avb_buf_append(hs_avb_buf *b, const void *data, size_t len, hs_error *e) HS_MUST_CHECK;
hs_result hs_avb_buf_zeros(hs_avb_buf *b, size_t len, hs_error *e) HS_MUST_CHECK;
/* Zero-pads to a multiple of m. */
hs_result hs_avb_buf_pad(hs_avb_buf *b, size_t m, hs_error *e) HS_MUST_CHECK;
void hs_avb_buf_free(hs_avb_buf *b);

/* pread(2) of exactly len bytes at off (EINTR retried, short reads
 * continued); end of file before len bytes is an error naming path. */
hs_result hs_avb_pread_all(int fd, void *buf, size_t len, uint64_t off, const char *path,
                           hs_error *e) HS_MUST_CHECK;
/* pwrite(2) of exactly len bytes at off (EINTR retried, short writes
 * continued); a failure names path. */
hs_result hs_avb_pwrite_all(int fd, const void *buf, size_t len, uint64_t off, const char *path,
                            hs_error *e) HS_MUST_CHECK;

#endif
