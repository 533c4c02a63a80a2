#include "apk/apk_v4.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "apk/apk_signing_block.h"
#include "zip/zip.h"

#define BLOCK 4096u
#define DIGEST 32u
#define READ_SIZE (1024u * 1024u)
#define HASH_SHA256 1u
#define LOG2_BLOCK 12u

static uint64_t div_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

/* Hashes len bytes at data as 4 KiB blocks (the last zero-padded) into out. */
static bool hash_blocks(const uint8_t *data, size_t len, uint8_t *out)
{
    static const uint8_t zeros[BLOCK];
    for (size_t off = 0; off < len; off += BLOCK, out += DIGEST) {
        size_t n = len - off < BLOCK ? len - off : BLOCK;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        bool ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
                  EVP_DigestUpdate(ctx, data + off, n) &&
                  EVP_DigestUpdate(ctx, zeros, BLOCK - n) && EVP_DigestFinal_ex(ctx, out, NULL);
        EVP_MD_CTX_free(ctx);
        if (!ok)
            return false;
    }
    return true;
}

static hs_result hash_file_level(int fd, uint64_t size, uint8_t *out, const char *what,
                                 hs_error *e)
{
    uint8_t *buf = malloc(READ_SIZE);
    if (buf == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", what);
    hs_result r = HS_OK;
    for (uint64_t off = 0; off < size && r == HS_OK;) {
        size_t want = size - off < READ_SIZE ? (size_t)(size - off) : READ_SIZE, got = 0;
        while (got < want) {
            ssize_t n = pread(fd, buf + got, want - got, (off_t)(off + got));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                r = hs_fail(e, HS_E_IO, "%s: reading for the v4 hash tree failed: %s", what,
                            n < 0 ? strerror(errno) : "short file");
                break;
            }
            got += (size_t)n;
        }
        if (r == HS_OK && !hash_blocks(buf, want, out + (off / BLOCK) * DIGEST))
            r = hs_fail(e, HS_E_CRYPTO, "%s: hashing for the v4 tree failed", what);
        off += want;
    }
    free(buf);
    return r;
}

hs_result hs_apk_v4_tree(hs_apk_v4 *v4, int fd, uint64_t file_size, const char *what,
                         hs_error *e)
{
    /* Level sizes from the leaves up; each level is padded to whole pages. */
    uint64_t sizes[16], data = file_size;
    size_t levels = 0;
    for (;;) {
        uint64_t blocks = div_up(data, BLOCK);
        sizes[levels++] = BLOCK * div_up(blocks * DIGEST, BLOCK);
        if (blocks * DIGEST <= BLOCK || levels == 16)
            break;
        data = blocks * DIGEST;
    }
    uint64_t total = 0;
    for (size_t i = 0; i < levels; i++)
        total += sizes[i];
    v4->file_size = file_size;
    if (total == 0)
        return hs_fail(e, HS_E_FORMAT, "%s: empty file, no v4 hash tree", what);
    hs_apk_buf_zeros(&v4->tree, (size_t)total);
    hs_result r = hs_apk_buf_check(&v4->tree, what, e);
    if (r != HS_OK)
        return r;
    /* Stored root level first: the leaves are at the end. */
    uint64_t at = total - sizes[0];
    r = hash_file_level(fd, file_size, v4->tree.data + at, what, e);
    uint64_t below = at, below_len = div_up(file_size, BLOCK) * DIGEST;
    for (size_t i = 1; r == HS_OK && i < levels; i++) {
        at -= sizes[i];
        if (!hash_blocks(v4->tree.data + below, (size_t)below_len, v4->tree.data + at))
            r = hs_fail(e, HS_E_CRYPTO, "%s: hashing for the v4 tree failed", what);
        below_len = div_up(below_len, BLOCK) * DIGEST;
        below = at;
    }
    if (r == HS_OK && !hash_blocks(v4->tree.data, BLOCK, v4->root))
        r = hs_fail(e, HS_E_CRYPTO, "%s: hashing for the v4 tree failed", what);
    return r;
}

static void hashing_info(const hs_apk_v4 *v4, hs_apk_buf *b)
{
    uint8_t log2 = LOG2_BLOCK;
    hs_apk_buf_u32(b, HASH_SHA256);
    hs_apk_buf_append(b, &log2, 1);
    hs_apk_buf_u32(b, 0); /* salt: none, as fs-verity expects */
    hs_apk_buf_lp(b, v4->root, sizeof v4->root);
}

hs_result hs_apk_v4_signed_data(const hs_apk_v4 *v4, hs_apk_buf *out, hs_error *e)
{
    size_t slot = out->len;
    hs_apk_buf_u32(out, 0); /* total size, filled below */
    hs_apk_buf_u64(out, v4->file_size);
    hashing_info(v4, out);
    hs_apk_buf_lp(out, v4->apk_digest, v4->apk_digest_len);
    hs_apk_buf_lp(out, v4->cert_der, v4->cert_der_len);
    hs_apk_buf_u32(out, 0); /* additional data: none */
    hs_result r = hs_apk_buf_check(out, "v4 signed data", e);
    if (r == HS_OK)
        hs_put_le32(out->data + slot, (uint32_t)(out->len - slot));
    return r;
}

static void put_signing_info(const hs_apk_v4 *v4, uint32_t alg_id, const uint8_t *sig,
                             size_t sig_len, hs_apk_buf *out)
{
    hs_apk_buf_lp(out, v4->apk_digest, v4->apk_digest_len);
    hs_apk_buf_lp(out, v4->cert_der, v4->cert_der_len);
    hs_apk_buf_u32(out, 0);
    hs_apk_buf_lp(out, v4->spki_der, v4->spki_der_len);
    hs_apk_buf_u32(out, alg_id);
    hs_apk_buf_lp(out, sig, sig_len);
}

hs_result hs_apk_v4_signing_info(const hs_apk_v4 *v4, uint32_t alg_id, const uint8_t *sig,
                                 size_t sig_len, hs_apk_buf *out, hs_error *e)
{
    put_signing_info(v4, alg_id, sig, sig_len, out);
    return hs_apk_buf_check(out, "v4 signing info", e);
}

hs_result hs_apk_v4_file(const hs_apk_v4 *v4, uint32_t alg_id, const uint8_t *sig, size_t sig_len,
                         const hs_apk_buf *v31_info, hs_apk_buf *out, hs_error *e)
{
    hs_apk_buf_u32(out, 2);
    size_t h = hs_apk_buf_lp_begin(out);
    hashing_info(v4, out);
    hs_apk_buf_lp_end(out, h);
    size_t s = hs_apk_buf_lp_begin(out);
    put_signing_info(v4, alg_id, sig, sig_len, out);
    if (v31_info != NULL) {
        hs_apk_buf_u32(out, HS_APK_BLOCK_ID_V31);
        hs_apk_buf_lp(out, v31_info->data, v31_info->len);
    }
    hs_apk_buf_lp_end(out, s);
    hs_apk_buf_lp(out, v4->tree.data, v4->tree.len);
    return hs_apk_buf_check(out, "v4 signature file", e);
}

void hs_apk_v4_free(hs_apk_v4 *v4)
{
    hs_apk_buf_free(&v4->tree);
}
