#include "backup/share.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/shamir.h"
#include "util/encoding.h"
#include "util/secmem.h"

/* Domain separation for the two hashes/MAC inputs built from share fields,
 * so neither byte string can be mistaken for the other. */
static const char AAD_PREFIX[] = "hsmsign-share v1 aad";
static const char CHECKSUM_PREFIX[] = "hsmsign-share v1 checksum";

/* ---------------------------------------------------------------------
 * Field validation shared by split, parse and recover */

static bool secret_len_ok(size_t len)
{
    return len == 16 || len == 24 || len == 32;
}

/* Labels are shown to people and written on one line of the share file:
 * well-formed UTF-8 without control characters. */
bool hs_share_label_ok(const char *label)
{
    size_t len = strlen(label);
    if (len == 0 || len > HS_SHARE_LABEL_MAX)
        return false;
    const unsigned char *s = (const unsigned char *)label;
    for (size_t i = 0; i < len;) {
        unsigned c = s[i];
        size_t extra;
        unsigned min;
        if (c < 0x20 || c == 0x7f)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            extra = 1, min = 0x80;
        else if (c >= 0xe0 && c <= 0xef)
            extra = 2, min = 0x800;
        else if (c >= 0xf0 && c <= 0xf4)
            extra = 3, min = 0x10000;
        else
            return false;
        if (len - i <= extra)
            return false;
        unsigned cp = c & (0x3fu >> extra);
        for (size_t j = 1; j <= extra; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += extra + 1;
    }
    return true;
}

/* ---------------------------------------------------------------------
 * Cryptography: check value, AEAD, checksum */

hs_result hs_share_aes_kcv(const uint8_t *key, size_t key_len, uint8_t out[HS_SHARE_KCV_LEN],
                           hs_error *e)
{
    const EVP_CIPHER *cipher = key_len == 16   ? EVP_aes_128_ecb()
                               : key_len == 24 ? EVP_aes_192_ecb()
                               : key_len == 32 ? EVP_aes_256_ecb()
                                               : NULL;
    if (cipher == NULL)
        return hs_fail(e, HS_E_USAGE, "key check value: a %zu-byte key is not an AES key", key_len);
    static const uint8_t zero[16] = {0};
    uint8_t block[32];
    int outl = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    bool ok = ctx != NULL && EVP_EncryptInit_ex(ctx, cipher, NULL, key, NULL) == 1 &&
              EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 &&
              EVP_EncryptUpdate(ctx, block, &outl, zero, sizeof zero) == 1 && outl == 16;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok)
        return hs_fail(e, HS_E_CRYPTO, "key check value: AES encryption failed");
    memcpy(out, block, HS_SHARE_KCV_LEN);
    hs_wipe(block, sizeof block);
    return HS_OK;
}

/* The associated data binds the ciphertext to its share set: id,
 * threshold, size and check value. */
static size_t build_aad(const hs_share *s, uint8_t *aad)
{
    size_t off = 0;
    memcpy(aad + off, AAD_PREFIX, sizeof AAD_PREFIX - 1);
    off += sizeof AAD_PREFIX - 1;
    memcpy(aad + off, s->set_id, HS_SHARE_SET_ID_LEN);
    off += HS_SHARE_SET_ID_LEN;
    aad[off++] = (uint8_t)s->k;
    aad[off++] = (uint8_t)s->n;
    memcpy(aad + off, s->kcv, HS_SHARE_KCV_LEN);
    off += HS_SHARE_KCV_LEN;
    return off;
}

#define AAD_MAX (sizeof AAD_PREFIX + HS_SHARE_SET_ID_LEN + 2 + HS_SHARE_KCV_LEN)

/* Encrypts secret under key into s->ciphertext and s->tag, using s's
 * nonce and metadata. */
static hs_result seal_secret(hs_share *s, const uint8_t *key, const uint8_t *secret,
                             size_t secret_len, hs_error *e)
{
    uint8_t aad[AAD_MAX];
    size_t aad_len = build_aad(s, aad);
    int outl = 0, finl = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    bool ok = ctx != NULL && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, HS_SHARE_NONCE_LEN, NULL) == 1 &&
              EVP_EncryptInit_ex(ctx, NULL, NULL, key, s->nonce) == 1 &&
              EVP_EncryptUpdate(ctx, NULL, &outl, aad, (int)aad_len) == 1 &&
              EVP_EncryptUpdate(ctx, s->ciphertext, &outl, secret, (int)secret_len) == 1 &&
              EVP_EncryptFinal_ex(ctx, s->ciphertext + outl, &finl) == 1 &&
              (size_t)outl + (size_t)finl == secret_len &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, HS_SHARE_TAG_LEN, s->tag) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok)
        return hs_fail(e, HS_E_CRYPTO, "share split: AES-256-GCM encryption failed");
    s->ciphertext_len = secret_len;
    return HS_OK;
}

/* Decrypts s's ciphertext under key into out. Returns false when the tag
 * does not verify (wrong key, or altered data); out is then wiped. */
static bool open_secret(const hs_share *s, const uint8_t *key, uint8_t *out)
{
    uint8_t aad[AAD_MAX];
    size_t aad_len = build_aad(s, aad);
    uint8_t tag[HS_SHARE_TAG_LEN];
    memcpy(tag, s->tag, sizeof tag);
    int outl = 0, finl = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    bool ok = ctx != NULL && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, HS_SHARE_NONCE_LEN, NULL) == 1 &&
              EVP_DecryptInit_ex(ctx, NULL, NULL, key, s->nonce) == 1 &&
              EVP_DecryptUpdate(ctx, NULL, &outl, aad, (int)aad_len) == 1 &&
              EVP_DecryptUpdate(ctx, out, &outl, s->ciphertext, (int)s->ciphertext_len) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, HS_SHARE_TAG_LEN, tag) == 1 &&
              EVP_DecryptFinal_ex(ctx, out + outl, &finl) == 1 &&
              (size_t)outl + (size_t)finl == s->ciphertext_len;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok)
        hs_wipe(out, s->ciphertext_len);
    return ok;
}

hs_result hs_share_compute_checksum(const hs_share *s, uint8_t out[HS_SHARE_CHECKSUM_LEN],
                                    hs_error *e)
{
    if (s->ciphertext_len > HS_SHARE_SECRET_MAX || s->k > 255 || s->n > 255)
        return hs_fail(e, HS_E_USAGE, "share checksum: the share's fields are out of range");
    size_t label_len = strnlen(s->label, sizeof s->label);
    if (label_len > HS_SHARE_LABEL_MAX)
        return hs_fail(e, HS_E_USAGE, "share checksum: the label is not terminated");
    /* Lengths are fixed or prefixed, so the encoding is unambiguous. */
    uint8_t small[3] = {(uint8_t)s->k, (uint8_t)s->n, s->x};
    uint8_t ct_len = (uint8_t)s->ciphertext_len, lbl_len = (uint8_t)label_len;
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
              EVP_DigestUpdate(ctx, CHECKSUM_PREFIX, sizeof CHECKSUM_PREFIX - 1) == 1 &&
              EVP_DigestUpdate(ctx, s->set_id, sizeof s->set_id) == 1 &&
              EVP_DigestUpdate(ctx, small, sizeof small) == 1 &&
              EVP_DigestUpdate(ctx, s->y, sizeof s->y) == 1 &&
              EVP_DigestUpdate(ctx, s->kcv, sizeof s->kcv) == 1 &&
              EVP_DigestUpdate(ctx, s->nonce, sizeof s->nonce) == 1 &&
              EVP_DigestUpdate(ctx, &ct_len, 1) == 1 &&
              EVP_DigestUpdate(ctx, s->ciphertext, s->ciphertext_len) == 1 &&
              EVP_DigestUpdate(ctx, s->tag, sizeof s->tag) == 1 &&
              EVP_DigestUpdate(ctx, &lbl_len, 1) == 1 &&
              EVP_DigestUpdate(ctx, s->label, label_len) == 1 &&
              EVP_DigestFinal_ex(ctx, out, &md_len) == 1 && md_len == HS_SHARE_CHECKSUM_LEN;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return hs_fail(e, HS_E_CRYPTO, "share checksum: SHA-256 failed");
    return HS_OK;
}

hs_result hs_share_update_checksum(hs_share *s, hs_error *e)
{
    return hs_share_compute_checksum(s, s->checksum, e);
}

hs_result hs_share_verify_checksum(const hs_share *s, hs_error *e)
{
    uint8_t sum[HS_SHARE_CHECKSUM_LEN];
    hs_result rc = hs_share_compute_checksum(s, sum, e);
    if (rc != HS_OK)
        return rc;
    if (!hs_ct_equal(sum, s->checksum, sizeof sum))
        return hs_fail(e, HS_E_VERIFY, "share \"%s\": checksum mismatch, the share is damaged",
                       s->label);
    return HS_OK;
}

void hs_share_wipe(hs_share *share)
{
    hs_wipe(share, sizeof *share);
}

void hs_share_free_array(hs_share *shares, size_t n)
{
    if (shares != NULL)
        hs_secure_free(shares, n * sizeof *shares);
}

/* ---------------------------------------------------------------------
 * Split */

static hs_result check_split_args(size_t secret_len, unsigned k, unsigned n,
                                  const char *const *labels, hs_error *e)
{
    if (!secret_len_ok(secret_len))
        return hs_fail(e, HS_E_USAGE,
                       "share split: the secret must be an AES key of 16, 24 or 32 bytes, "
                       "not %zu bytes",
                       secret_len);
    if (k < 2 || k > n || n > HS_SHARE_MAX_SHARES)
        return hs_fail(e, HS_E_USAGE,
                       "share split: %u-of-%u is not possible (need 2 <= k <= n <= 255)", k, n);
    for (unsigned i = 0; labels != NULL && i < n; i++)
        if (labels[i] == NULL || !hs_share_label_ok(labels[i]))
            return hs_fail(e, HS_E_USAGE,
                           "share split: label %u must be 1 to %u bytes of UTF-8 text without "
                           "control characters",
                           i + 1, HS_SHARE_LABEL_MAX);
    return HS_OK;
}

static hs_result fill_shares(hs_share *shares, const uint8_t *secret, size_t secret_len,
                             unsigned k, unsigned n, const char *const *labels, uint8_t *key,
                             hs_error *e)
{
    hs_share *first = &shares[0];
    /* The private generator for all of it: K is the secret's key, and
     * the set id and nonce sit beside it in every share. */
    if (RAND_priv_bytes(key, HS_SHARE_KEY_LEN) != 1 ||
        RAND_priv_bytes(first->set_id, sizeof first->set_id) != 1 ||
        RAND_priv_bytes(first->nonce, sizeof first->nonce) != 1)
        return hs_fail(e, HS_E_CRYPTO, "share split: the random generator failed");
    first->k = k;
    first->n = n;
    hs_result rc = hs_share_aes_kcv(secret, secret_len, first->kcv, e);
    if (rc == HS_OK)
        rc = seal_secret(first, key, secret, secret_len, e);
    if (rc != HS_OK)
        return rc;

    uint8_t xs[HS_SHARE_MAX_SHARES];
    uint8_t *ys[HS_SHARE_MAX_SHARES];
    for (unsigned i = 0; i < n; i++)
        ys[i] = shares[i].y;
    rc = hs_shamir_split(key, HS_SHARE_KEY_LEN, k, n, xs, ys, e);
    if (rc != HS_OK)
        return rc;
    for (unsigned i = 0; i < n; i++) {
        hs_share *s = &shares[i];
        if (i > 0) {
            memcpy(s->set_id, first->set_id, sizeof s->set_id);
            s->k = k;
            s->n = n;
            memcpy(s->kcv, first->kcv, sizeof s->kcv);
            memcpy(s->nonce, first->nonce, sizeof s->nonce);
            memcpy(s->ciphertext, first->ciphertext, sizeof s->ciphertext);
            s->ciphertext_len = first->ciphertext_len;
            memcpy(s->tag, first->tag, sizeof s->tag);
        }
        s->x = xs[i];
        if (labels != NULL)
            snprintf(s->label, sizeof s->label, "%s", labels[i]);
        else
            snprintf(s->label, sizeof s->label, "share %u", i + 1);
        rc = hs_share_update_checksum(s, e);
        if (rc != HS_OK)
            return rc;
    }
    return HS_OK;
}

/* A backup that does not restore is worse than none (the ceremony wipes
 * the key after splitting), so the new set is recovered, before it is
 * handed out, from k-subsets that together cover every share: the
 * consecutive windows 1..k, k+1..2k, ..., the last one ending at n. A
 * share no subset touched could be wrong unnoticed. */
hs_result hs_share_self_check(const hs_share *shares, unsigned n, const uint8_t *secret,
                              size_t secret_len, bool touched[HS_SHARE_MAX_SHARES], hs_error *e)
{
    unsigned k = n > 0 ? shares[0].k : 0;
    if (k < 2 || k > n || n > HS_SHARE_MAX_SHARES)
        return hs_fail(e, HS_E_USAGE, "share self-check: %u-of-%u is not a share set", k, n);
    uint8_t *back = hs_secure_alloc(secret_len);
    hs_share_report *report = malloc(sizeof *report);
    if (back == NULL || report == NULL) {
        hs_secure_free(back, secret_len);
        free(report);
        return hs_fail(e, HS_E_NOMEM, "share split: out of memory");
    }
    for (unsigned i = 0; touched != NULL && i < HS_SHARE_MAX_SHARES; i++)
        touched[i] = false;
    hs_result rc = HS_OK;
    for (unsigned start = 0; rc == HS_OK && start < n; start += k) {
        unsigned from = start + k <= n ? start : n - k;
        rc = hs_share_recover(shares + from, k, back, secret_len, report, e);
        if (rc == HS_OK && !hs_ct_equal(back, secret, secret_len))
            rc = hs_fail(e, HS_E_INTERNAL, "shares %u to %u do not restore the secret", from + 1,
                         from + k);
        for (unsigned i = from; rc == HS_OK && touched != NULL && i < from + k; i++)
            touched[i] = true;
    }
    hs_secure_free(back, secret_len);
    free(report);
    return rc == HS_OK ? HS_OK : hs_error_prefix(e, "share split self-check: ");
}

void hs_share_commitment(const hs_share *s, const uint8_t salt[HS_SHARE_COMMIT_SALT_LEN],
                         uint8_t out[32])
{
    static const char tag[] = "hsmsign-share-commitment v1";
    uint8_t msg[sizeof tag + HS_SHARE_COMMIT_SALT_LEN + HS_SHARE_SET_ID_LEN + 1 + HS_SHARE_KEY_LEN];
    size_t o = 0;
    memcpy(msg + o, tag, sizeof tag); /* with its NUL */
    o += sizeof tag;
    memcpy(msg + o, salt, HS_SHARE_COMMIT_SALT_LEN);
    o += HS_SHARE_COMMIT_SALT_LEN;
    memcpy(msg + o, s->set_id, HS_SHARE_SET_ID_LEN);
    o += HS_SHARE_SET_ID_LEN;
    msg[o++] = s->x;
    memcpy(msg + o, s->y, HS_SHARE_KEY_LEN);
    SHA256(msg, sizeof msg, out);
    hs_wipe(msg, sizeof msg); /* holds y */
}

hs_result hs_share_split_secret(const uint8_t *secret, size_t secret_len, unsigned k, unsigned n,
                                const char *const *labels, hs_share **out, hs_error *e)
{
    *out = NULL;
    hs_result rc = check_split_args(secret_len, k, n, labels, e);
    if (rc != HS_OK)
        return rc;
    size_t bytes = (size_t)n * sizeof(hs_share);
    hs_share *shares = hs_secure_alloc(bytes);
    uint8_t *key = hs_secure_alloc(HS_SHARE_KEY_LEN);
    if (shares == NULL || key == NULL) {
        hs_secure_free(shares, bytes);
        hs_secure_free(key, HS_SHARE_KEY_LEN);
        return hs_fail(e, HS_E_NOMEM, "share split: cannot allocate secure memory");
    }
    memset(shares, 0, bytes);
    rc = fill_shares(shares, secret, secret_len, k, n, labels, key, e);
    hs_secure_free(key, HS_SHARE_KEY_LEN);
    if (rc == HS_OK)
        rc = hs_share_self_check(shares, n, secret, secret_len, NULL, e);
    if (rc != HS_OK) {
        hs_secure_free(shares, bytes);
        return rc;
    }
    *out = shares;
    return HS_OK;
}

/* ---------------------------------------------------------------------
 * Recover */

typedef struct recovery {
    const hs_share *shares;
    size_t intact[HS_SHARE_MAX_SHARES]; /* shares whose checksum verified */
    size_t intact_count;
    unsigned k;
    hs_share_report *report;
    uint8_t *key;   /* K being tried (secure memory) */
    uint8_t *plain; /* candidate secret (secure memory) */
} recovery;

#define LABEL_FMT "share %zu (\"%.128s\")"
#define LABEL_ARGS(shares, i) (size_t)(i) + 1, (shares)[i].label

static void set_aside(recovery *rv, size_t i, hs_share_fault fault)
{
    hs_share_report *r = rv->report;
    r->bad[r->bad_count] = i;
    r->bad_fault[r->bad_count] = fault;
    r->bad_count++;
    size_t used = strlen(r->warning);
    snprintf(r->warning + used, sizeof r->warning - used, LABEL_FMT ": %s\n",
             LABEL_ARGS(rv->shares, i),
             fault == HS_SHARE_FAULT_CHECKSUM
                 ? "checksum mismatch, the share is damaged; set aside"
                 : "its y value does not fit the other shares (altered or wrong share); set aside");
}

/* The warning without its final newline, for embedding in an error. */
static int warning_len(const hs_share_report *r)
{
    size_t len = strlen(r->warning);
    return (int)(len > 0 ? len - 1 : 0);
}

static void sort_out_damaged(recovery *rv, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (hs_share_verify_checksum(&rv->shares[i], NULL) == HS_OK)
            rv->intact[rv->intact_count++] = i;
        else
            set_aside(rv, i, HS_SHARE_FAULT_CHECKSUM);
    }
}

/* Which set-wide field, if any, differs between two shares. */
static const char *differing_field(const hs_share *a, const hs_share *b)
{
    if (a->k != b->k)
        return "threshold";
    if (a->n != b->n)
        return "number of shares";
    if (memcmp(a->kcv, b->kcv, sizeof a->kcv) != 0)
        return "secret check value";
    if (memcmp(a->nonce, b->nonce, sizeof a->nonce) != 0)
        return "nonce";
    if (a->ciphertext_len != b->ciphertext_len ||
        memcmp(a->ciphertext, b->ciphertext, a->ciphertext_len) != 0)
        return "ciphertext";
    if (memcmp(a->tag, b->tag, sizeof a->tag) != 0)
        return "tag";
    return NULL;
}

static hs_result check_one_set(const recovery *rv, size_t secret_len, hs_error *e)
{
    const hs_share *sh = rv->shares;
    size_t r = rv->intact[0];
    const hs_share *ref = &sh[r];
    if (ref->k < 2 || ref->k > ref->n || ref->n > HS_SHARE_MAX_SHARES ||
        !secret_len_ok(ref->ciphertext_len))
        return hs_fail(e, HS_E_FORMAT, LABEL_FMT ": threshold %u of %u or secret length %zu is "
                                                 "out of range",
                       LABEL_ARGS(sh, r), ref->k, ref->n, ref->ciphertext_len);
    if (secret_len != ref->ciphertext_len)
        return hs_fail(e, HS_E_USAGE, "the shares hold a %zu-byte secret, the caller expects %zu",
                       ref->ciphertext_len, secret_len);
    char ref_id[2 * HS_SHARE_SET_ID_LEN + 1], id[2 * HS_SHARE_SET_ID_LEN + 1];
    hs_hex_encode(ref->set_id, sizeof ref->set_id, ref_id);
    for (size_t j = 1; j < rv->intact_count; j++) {
        size_t i = rv->intact[j];
        if (memcmp(sh[i].set_id, ref->set_id, sizeof ref->set_id) != 0) {
            hs_hex_encode(sh[i].set_id, sizeof sh[i].set_id, id);
            return hs_fail(e, HS_E_VERIFY,
                           LABEL_FMT " belongs to share set %s but " LABEL_FMT
                                     " to share set %s: shares of different sets cannot be "
                                     "combined",
                           LABEL_ARGS(sh, i), id, LABEL_ARGS(sh, r), ref_id);
        }
        const char *what = differing_field(&sh[i], ref);
        if (what != NULL)
            return hs_fail(e, HS_E_VERIFY,
                           LABEL_FMT " and " LABEL_FMT " are both of share set %s but disagree "
                                     "on the %s: one of them was altered",
                           LABEL_ARGS(sh, i), LABEL_ARGS(sh, r), ref_id, what);
    }
    return HS_OK;
}

static hs_result check_distinct_xs(const recovery *rv, hs_error *e)
{
    const hs_share *sh = rv->shares;
    size_t first_with[256];
    bool seen[256] = {false};
    for (size_t j = 0; j < rv->intact_count; j++) {
        size_t i = rv->intact[j];
        if (sh[i].x == 0)
            return hs_fail(e, HS_E_FORMAT, LABEL_FMT " has x = 0, which no share can have",
                           LABEL_ARGS(sh, i));
        if (seen[sh[i].x])
            return hs_fail(e, HS_E_USAGE,
                           LABEL_FMT " and " LABEL_FMT " have the same x = %u: the same share "
                                     "was given twice",
                           LABEL_ARGS(sh, first_with[sh[i].x]), LABEL_ARGS(sh, i), sh[i].x);
        seen[sh[i].x] = true;
        first_with[sh[i].x] = i;
    }
    return HS_OK;
}

/* Interpolates K from the k shares members[0..k-1] (indices into shares)
 * and tries to decrypt the secret into rv->plain. */
static hs_result try_members(recovery *rv, const size_t *members, bool *opened, hs_error *e)
{
    uint8_t xs[HS_SHARE_MAX_SHARES];
    const uint8_t *ys[HS_SHARE_MAX_SHARES];
    for (unsigned j = 0; j < rv->k; j++) {
        xs[j] = rv->shares[members[j]].x;
        ys[j] = rv->shares[members[j]].y;
    }
    hs_result rc = hs_shamir_combine(rv->k, xs, ys, HS_SHARE_KEY_LEN, rv->key, e);
    if (rc != HS_OK)
        return rc;
    *opened = open_secret(&rv->shares[members[0]], rv->key, rv->plain);
    hs_wipe(rv->key, HS_SHARE_KEY_LEN);
    rv->report->subsets_tried++;
    return HS_OK;
}

/* Advances pos[0..k-1] (strictly increasing positions below m) to the next
 * k-subset in lexicographic order; false after the last one. */
static bool next_subset(size_t *pos, unsigned k, size_t m)
{
    for (unsigned i = k; i-- > 0;) {
        if (pos[i] < m - k + i) {
            pos[i]++;
            for (unsigned j = i + 1; j < k; j++)
                pos[j] = pos[j - 1] + 1;
            return true;
        }
    }
    return false;
}

/* Finds k intact shares that decrypt the secret; their indices go to
 * good[0..k-1]. */
static hs_result find_good_subset(recovery *rv, size_t *good, hs_error *e)
{
    size_t pos[HS_SHARE_MAX_SHARES];
    for (unsigned i = 0; i < rv->k; i++)
        pos[i] = i;
    do {
        for (unsigned i = 0; i < rv->k; i++)
            good[i] = rv->intact[pos[i]];
        bool opened = false;
        hs_result rc = try_members(rv, good, &opened, e);
        if (rc != HS_OK || opened)
            return rc;
        if (rv->report->subsets_tried >= HS_SHARE_MAX_SUBSETS)
            return hs_fail(e, HS_E_VERIFY,
                           "the shares do not reconstruct the secret, and no wrong share was "
                           "found in the first %lu combinations of %u of the %zu intact shares; "
                           "give fewer, trusted shares",
                           rv->report->subsets_tried, rv->k, rv->intact_count);
    } while (next_subset(pos, rv->k, rv->intact_count));
    if (rv->intact_count == rv->k)
        return hs_fail(e, HS_E_VERIFY,
                       "the %u intact shares do not reconstruct the secret (decryption failed): at least "
                       "one of them is wrong or altered, and with exactly %u shares it cannot be "
                       "told which; give one more share of the set",
                       rv->k, rv->k);
    return hs_fail(e, HS_E_VERIFY,
                   "no %u of the %zu intact shares reconstruct the secret: more than %zu of them "
                   "are wrong or altered",
                   rv->k, rv->intact_count, rv->intact_count - rv->k);
}

static bool is_member(const size_t *members, unsigned k, size_t i)
{
    for (unsigned j = 0; j < k; j++)
        if (members[j] == i)
            return true;
    return false;
}

/* With a good k-subset known, every other intact share is tested by
 * swapping it in for one member: k-1 good points and a wrong one give a
 * different K (its Lagrange weight at 0 is never zero), and the tag fails. */
static hs_result name_wrong_shares(recovery *rv, const size_t *good, hs_error *e)
{
    size_t trial[HS_SHARE_MAX_SHARES];
    memcpy(trial, good, rv->k * sizeof *good);
    for (size_t j = 0; j < rv->intact_count; j++) {
        size_t i = rv->intact[j];
        if (is_member(good, rv->k, i))
            continue;
        trial[0] = i;
        bool opened = false;
        hs_result rc = try_members(rv, trial, &opened, e);
        if (rc != HS_OK)
            return rc;
        if (!opened)
            set_aside(rv, i, HS_SHARE_FAULT_WRONG_Y);
    }
    return HS_OK;
}

static hs_result recover_checked(recovery *rv, size_t count, uint8_t *secret_out, size_t secret_len,
                                 hs_error *e)
{
    sort_out_damaged(rv, count);
    const hs_share *sh = rv->shares;
    if (rv->intact_count == 0)
        return hs_fail(e, HS_E_VERIFY, "no intact share:\n%.*s", warning_len(rv->report),
                       rv->report->warning);
    hs_result rc = check_one_set(rv, secret_len, e);
    if (rc == HS_OK)
        rc = check_distinct_xs(rv, e);
    if (rc != HS_OK)
        return rc;
    rv->k = sh[rv->intact[0]].k;
    if (rv->intact_count < rv->k) {
        if (rv->report->bad_count > 0)
            return hs_fail(e, HS_E_VERIFY, "%zu intact shares given, this set needs %u:\n%.*s",
                           rv->intact_count, rv->k, warning_len(rv->report),
                           rv->report->warning);
        return hs_fail(e, HS_E_USAGE, "%zu shares given, this set needs %u", rv->intact_count,
                       rv->k);
    }

    size_t good[HS_SHARE_MAX_SHARES];
    rc = find_good_subset(rv, good, e);
    if (rc != HS_OK && rv->report->bad_count > 0 && e != NULL) {
        size_t used = strlen(e->msg);
        snprintf(e->msg + used, sizeof e->msg - used, "; also:\n%.*s", warning_len(rv->report),
                 rv->report->warning);
    }
    if (rc == HS_OK)
        rc = name_wrong_shares(rv, good, e);
    bool opened = false;
    if (rc == HS_OK)
        rc = try_members(rv, good, &opened, e); /* leaves the secret in rv->plain */
    if (rc == HS_OK && !opened)
        rc = hs_fail(e, HS_E_INTERNAL, "a share combination decrypted once but not twice");
    if (rc != HS_OK)
        return rc;

    uint8_t kcv[HS_SHARE_KCV_LEN];
    rc = hs_share_aes_kcv(rv->plain, secret_len, kcv, e);
    if (rc != HS_OK)
        return rc;
    if (!hs_ct_equal(kcv, sh[good[0]].kcv, sizeof kcv))
        return hs_fail(e, HS_E_VERIFY, "the decrypted secret does not match the check value "
                                       "recorded in the shares: the share set was made wrongly");
    memcpy(secret_out, rv->plain, secret_len);
    rv->report->used_count = rv->k;
    memcpy(rv->report->used, good, rv->k * sizeof *good);
    return HS_OK;
}

hs_result hs_share_recover(const hs_share *shares, size_t count, uint8_t *secret_out,
                           size_t secret_len, hs_share_report *report, hs_error *e)
{
    memset(report, 0, sizeof *report);
    if (count == 0)
        return hs_fail(e, HS_E_USAGE, "no shares given");
    if (count > HS_SHARE_MAX_SHARES)
        return hs_fail(e, HS_E_USAGE, "%zu shares given, a share set has at most %u", count,
                       HS_SHARE_MAX_SHARES);
    if (secret_len == 0 || secret_len > HS_SHARE_SECRET_MAX)
        return hs_fail(e, HS_E_USAGE, "a %zu-byte secret cannot come from shares", secret_len);
    recovery *rv = calloc(1, sizeof *rv);
    uint8_t *key = hs_secure_alloc(HS_SHARE_KEY_LEN);
    uint8_t *plain = hs_secure_alloc(HS_SHARE_SECRET_MAX);
    hs_result rc;
    if (rv == NULL || key == NULL || plain == NULL) {
        rc = hs_fail(e, HS_E_NOMEM, "share recovery: out of memory");
    } else {
        rv->shares = shares;
        rv->report = report;
        rv->key = key;
        rv->plain = plain;
        rc = recover_checked(rv, count, secret_out, secret_len, e);
    }
    if (rc != HS_OK)
        hs_wipe(secret_out, secret_len);
    free(rv);
    hs_secure_free(key, HS_SHARE_KEY_LEN);
    hs_secure_free(plain, HS_SHARE_SECRET_MAX);
    return rc;
}
