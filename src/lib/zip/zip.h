/* Strict read-only ZIP reader for APKs and JARs.
 *
 * The file is mapped read-only, never read whole into memory. Opening it
 * checks everything the signers rely on, so that later code can use the
 * offsets without re-checking: one end-of-central-directory record (EOCD)
 * at the very end (comment up to 65535 bytes, no second EOCD inside it),
 * a central directory (CD) inside the file directly before the EOCD, local
 * headers that agree with the CD, entries that overlap neither each other
 * nor the CD, unique names and no zip64. An APK Signing Block between the
 * entries and the CD is located and reported, not interpreted. */
#ifndef HSMSIGN_ANDROID_ZIP_H
#define HSMSIGN_ANDROID_ZIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/result.h"

#define HS_ZIP_EOCD_SIZE 22u
#define HS_ZIP_CD_HEADER_SIZE 46u
#define HS_ZIP_LFH_SIZE 30u
#define HS_ZIP_METHOD_STORED 0u
#define HS_ZIP_FLAG_DATA_DESCRIPTOR 0x0008u

typedef struct hs_zip_entry {
    const char *name;        /* points into the map; NOT NUL-terminated */
    uint16_t name_len;
    uint16_t flags;          /* general purpose bit flags (from the CD) */
    uint16_t method;         /* 0 stored, 8 deflated, ... */
    uint16_t mod_time, mod_date;
    uint32_t crc32;
    uint64_t compressed_size;
    uint64_t uncompressed_size;
    uint64_t cd_offset;      /* this entry's CD record */
    uint32_t cd_record_len;  /* 46 + name + extra + comment */
    uint64_t lfh_offset;     /* local file header */
    uint16_t lfh_extra_len;  /* extra field length in the local header */
    uint64_t data_offset;    /* first byte of the (compressed) data */
    uint64_t record_end;     /* end of data, or of the data descriptor */
} hs_zip_entry;

typedef struct hs_zip {
    char *path;
    int fd;
    const uint8_t *map;
    uint64_t size;
    uint64_t cd_offset, cd_size;
    uint64_t eocd_offset;    /* the EOCD runs from here to the end of the file */
    uint64_t entries_end;    /* end of section 1: signing block start, else cd_offset */
    bool has_signing_block;
    bool resign;             /* opened with hs_zip_open_resign */
    hs_zip_entry *entries;   /* in central directory order */
    size_t entry_count;
    bool allow_nul_names;    /* HS_ZIP_ALLOW_NUL_NAMES was given */
} hs_zip;

/* Opens and validates path. On failure nothing needs freeing. */
hs_result hs_zip_open(hs_zip *z, const char *path, hs_error *e) HS_MUST_CHECK;
/* The same for an input to be re-signed, accepting what apksigner accepts
 * there because the old signature is replaced: bytes between the CD and
 * the EOCD (dropped), and a signing block apksig cannot locate (sizes that
 * disagree, or not followed by CD and EOCD), whose bytes then stay as data
 * after the last entry (has_signing_block false), as apksigner keeps them.
 * Everything that makes the entries ambiguous is still refused. */
hs_result hs_zip_open_resign(hs_zip *z, const char *path, hs_error *e) HS_MUST_CHECK;
void hs_zip_close(hs_zip *z);
/* Names containing NUL are refused by hs_zip_open (they cannot be written
 * back safely); the verifier reads them as apksig does (Java strings keep
 * the NUL), since Android's verdict on such APKs is what it must give. */
#define HS_ZIP_ALLOW_NUL_NAMES 1u
/* What hs_zip_open_resign accepts (the signer's input). */
#define HS_ZIP_RESIGN 2u
hs_result hs_zip_open_flags(hs_zip *z, const char *path, unsigned flags,
                            hs_error *e) HS_MUST_CHECK;

/* Pages of the map a pass has finished with leave the process's resident
 * set (MADV_DONTNEED; the page cache keeps them and a later read maps them
 * again), so that peak RSS does not grow with the APK's size. Only a hint:
 * the map stays valid and failures are ignored. */
#define HS_ZIP_RELEASE_STEP (8u * 1024u * 1024u)
void hs_zip_release(const hs_zip *z, uint64_t offset, uint64_t len);

/* A range of the map read by a pass, released once it reaches
 * HS_ZIP_RELEASE_STEP bytes. Start zeroed; flush at the end of the pass. */
typedef struct hs_zip_span {
    uint64_t lo, hi;
} hs_zip_span;
void hs_zip_span_note(const hs_zip *z, hs_zip_span *s, uint64_t lo, uint64_t hi);
void hs_zip_span_flush(const hs_zip *z, hs_zip_span *s);

/* The entries' indexes in file order (by local header offset), malloc'd
 * (at least one slot, so an empty archive is not NULL); NULL when out of
 * memory. */
size_t *hs_zip_file_order(const hs_zip *z);

/* Index of the entry with this exact name, or -1. */
long hs_zip_find(const hs_zip *z, const char *name);
bool hs_zip_entry_name_is(const hs_zip_entry *ent, const char *name);

/* Little-endian field access used by every ZIP/APK unit. */
static inline uint16_t hs_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t hs_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}
static inline uint64_t hs_le64(const uint8_t *p)
{
    return (uint64_t)hs_le32(p) | ((uint64_t)hs_le32(p + 4) << 32);
}
static inline void hs_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void hs_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void hs_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

#endif
