/* The dm-verity hash tree avbtool builds for add_hashtree_footer: salted
 * block hashes, digest slots padded to a power of two, every level padded
 * to a whole block, levels stored top level first, root = H(salt ‖ top
 * level). The image is read in bounded chunks and level 0 (which is all
 * but 1/128 of the work) is hashed on every core; the tree itself is kept
 * in memory (about 1/128 of the image for SHA-256). */
#ifndef HSMSIGN_ANDROID_AVB_HASHTREE_H
#define HSMSIGN_ANDROID_AVB_HASHTREE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "util/result.h"

typedef struct hs_avb_hashtree {
    uint8_t *tree;       /* tree_size bytes, malloc'd */
    uint64_t tree_size;
    uint8_t root[EVP_MAX_MD_SIZE];
    size_t root_len;
} hs_avb_hashtree;

/* Size of the tree for image_size bytes (avbtool calc_hash_level_offsets). */
hs_result hs_avb_hashtree_size(uint64_t image_size, uint32_t block_size, const EVP_MD *md,
                               uint64_t *tree_size, hs_error *e) HS_MUST_CHECK;

/* Builds the tree over image_size bytes (a non-zero multiple of
 * block_size): the first src_size bytes come from fd (from offset 0), the
 * rest are zeros. When copy_fd >= 0 the same image_size bytes are also
 * written to copy_fd, so a caller can copy and hash in one pass. */
hs_result hs_avb_hashtree_build(int fd, const char *path, uint64_t src_size, uint64_t image_size,
                                uint32_t block_size, const EVP_MD *md, const uint8_t *salt,
                                size_t salt_len, int copy_fd, const char *copy_what,
                                hs_avb_hashtree *out, hs_error *e) HS_MUST_CHECK;
void hs_avb_hashtree_free(hs_avb_hashtree *t);

#endif
