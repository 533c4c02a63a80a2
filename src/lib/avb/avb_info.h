/* Strict parsing of AVB metadata: the vbmeta struct (header, authentication
 * and auxiliary blocks, descriptors) and the footer at the end of a
 * partition image. Every offset and size read from the input is checked
 * against the block it points into with overflow-checked arithmetic, as
 * libavb does, so inconsistent sizes are an error, never an out-of-bounds
 * read. Nothing here prints: hs_avb_info_format renders the parsed data
 * the way `avbtool info_image` does, into a string. */
#ifndef HSMSIGN_ANDROID_AVB_INFO_H
#define HSMSIGN_ANDROID_AVB_INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "avb/avb_alg.h"
#include "util/result.h"

/* A byte range inside the parsed vbmeta blob (not NUL-terminated). */
typedef struct hs_avb_bytes {
    const uint8_t *p;
    size_t len;
} hs_avb_bytes;

typedef struct hs_avb_desc {
    uint64_t tag;           /* HS_AVB_DESC_* or an unknown tag */
    hs_avb_bytes raw;       /* the whole descriptor as stored, header included */
    size_t used_len;        /* bytes of raw before the zero padding */
    /* property */
    hs_avb_bytes key, value;
    /* hash and hashtree */
    uint64_t image_size;
    char hash_algorithm[33];
    hs_avb_bytes partition_name, salt, digest; /* digest: root digest for hashtree */
    uint32_t flags;                            /* also kernel cmdline and chain flags */
    /* hashtree */
    uint32_t dm_verity_version, data_block_size, hash_block_size, fec_num_roots;
    uint64_t tree_offset, tree_size, fec_offset, fec_size;
    /* kernel cmdline */
    hs_avb_bytes cmdline;
    /* chain partition (partition_name above) */
    uint32_t rollback_index_location;
    hs_avb_bytes public_key;
} hs_avb_desc;

typedef struct hs_avb_vbmeta {
    uint8_t *blob;          /* header ‖ auth ‖ aux, owned */
    size_t blob_len;
    uint32_t required_major, required_minor;
    uint64_t auth_size, aux_size;
    uint32_t algorithm_type;
    const hs_avb_alg *alg;
    uint64_t rollback_index;
    uint32_t flags, rollback_index_location;
    char release_string[HS_AVB_RELEASE_STRING_MAX + 1];
    hs_avb_bytes hash, signature, public_key, public_key_metadata, descriptors;
    hs_avb_bytes header, aux; /* the signed parts */
    hs_avb_desc *descs;
    size_t n_descs;
} hs_avb_vbmeta;

typedef struct hs_avb_footer {
    uint32_t version_major, version_minor;
    uint64_t original_image_size, vbmeta_offset, vbmeta_size;
} hs_avb_footer;

typedef struct hs_avb_image {
    char *path;
    uint64_t image_size; /* file size */
    bool has_footer;
    hs_avb_footer footer;
    hs_avb_vbmeta vbmeta;
} hs_avb_image;

/* Parses a vbmeta struct at the start of data (trailing bytes, e.g. the
 * padding of a vbmeta.img, are ignored). out owns a copy. */
hs_result hs_avb_vbmeta_parse(const uint8_t *data, size_t len, const char *what,
                              hs_avb_vbmeta *out, hs_error *e) HS_MUST_CHECK;
void hs_avb_vbmeta_free(hs_avb_vbmeta *v);

/* Decides whether the last 64 bytes of a file of file_size bytes are an
 * AVB footer: *found false (HS_OK) when there is no footer magic; an error
 * when there is one but its version or offsets are inconsistent, or when
 * the tail looks like a footer cut short by truncation. */
hs_result hs_avb_footer_parse(const uint8_t *tail, size_t tail_len, uint64_t file_size,
                              const char *what, bool *found, hs_avb_footer *out,
                              hs_error *e) HS_MUST_CHECK;
void hs_avb_footer_encode(const hs_avb_footer *f, uint8_t out[HS_AVB_FOOTER_SIZE]);

/* Reads a file's footer only (no vbmeta parsing); used before modifying an
 * image. */
hs_result hs_avb_image_read_footer(int fd, const char *path, uint64_t file_size, bool *found,
                                   hs_avb_footer *out, hs_error *e) HS_MUST_CHECK;

/* Loads a vbmeta image or a partition image with a footer. */
hs_result hs_avb_image_load(const char *path, hs_avb_image *out, hs_error *e) HS_MUST_CHECK;
/* Like hs_avb_image_load, but a symlink at path is refused: for chained
 * images, whose name came from a descriptor. */
hs_result hs_avb_partition_image_load(const char *path, hs_avb_image *out,
                                      hs_error *e) HS_MUST_CHECK;
/* Opens path for reading as a regular file only: never blocks on a FIFO
 * or device, and without follow_symlink refuses a symlink. */
hs_result hs_avb_open_regular(const char *path, bool follow_symlink, int *fd,
                              hs_error *e) HS_MUST_CHECK;
void hs_avb_image_free(hs_avb_image *img);

/* `avbtool info_image` output for img, as a malloc'd NUL-terminated string. */
hs_result hs_avb_info_format(const hs_avb_image *img, char **out, hs_error *e) HS_MUST_CHECK;

#endif
