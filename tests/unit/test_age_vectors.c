/* Conformance: every CCTV age vector in tests/vectors/age (see its
 * README.md). A vector passes when decryption succeeds exactly on
 * "expect: success" with SHA-256(payload) equal to "payload:", and fails
 * with the matching error class otherwise. Vectors for features hsmsign
 * does not implement are skipped and counted per feature. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "backup/age.h"
#include "util/encoding.h"
#include "util/file.h"
#include "util/secmem.h"

#define MAX_IDENTITIES 8
#define EXPECTED_VECTORS 143

typedef struct vector {
    char name[256];
    char path[4352];
} vector;

typedef struct parsed {
    char expect[32];
    char payload_hex[65];
    char *identities[MAX_IDENTITIES];
    size_t n_identities;
    char *passphrases[MAX_IDENTITIES];
    size_t n_passphrases;
    int armored;
    int compressed;
    uint8_t *body;
    size_t body_len;
} parsed;

static unsigned passed, failed, skipped_pq;

static void parsed_free(parsed *p)
{
    for (size_t i = 0; i < p->n_identities; i++)
        free(p->identities[i]);
    for (size_t i = 0; i < p->n_passphrases; i++)
        free(p->passphrases[i]);
    free(p->body);
}

/* zlib inflate into a growing buffer. */
static int inflate_all(const uint8_t *in, size_t len, uint8_t **out, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit(&zs) != Z_OK)
        return -1;
    size_t cap = len * 4 + 1024, n = 0;
    uint8_t *buf = malloc(cap);
    int zrc = Z_OK;
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    while (buf != NULL && zrc == Z_OK) {
        if (n == cap) {
            uint8_t *grown = realloc(buf, cap * 2);
            if (grown == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
        zs.next_out = buf + n;
        zs.avail_out = (uInt)(cap - n);
        zrc = inflate(&zs, Z_NO_FLUSH);
        n = cap - zs.avail_out;
    }
    inflateEnd(&zs);
    if (buf == NULL || zrc != Z_STREAM_END) {
        free(buf);
        return -1;
    }
    *out = buf;
    *out_len = n;
    return 0;
}

static char *dup_value(const char *v, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memcpy(s, v, n);
    s[n] = '\0';
    return s;
}

static void parse_vector(const char *path, parsed *p)
{
    uint8_t *data;
    size_t len;
    hs_error e;
    memset(p, 0, sizeof *p);
    assert_int_equal(hs_read_file(path, 64u << 20, &data, &len, &e), HS_OK);
    size_t pos = 0;
    for (;;) {
        const uint8_t *lf = memchr(data + pos, '\n', len - pos);
        assert_non_null(lf);
        size_t n = (size_t)(lf - (data + pos));
        const char *line = (const char *)data + pos;
        pos += n + 1;
        if (n == 0)
            break;
        const char *colon = memchr(line, ':', n);
        assert_non_null(colon);
        size_t klen = (size_t)(colon - line);
        const char *v = colon + 2;
        size_t vlen = n - klen - 2;
        if (klen == 6 && memcmp(line, "expect", 6) == 0) {
            assert_true(vlen < sizeof p->expect);
            memcpy(p->expect, v, vlen);
        } else if (klen == 7 && memcmp(line, "payload", 7) == 0) {
            assert_int_equal(vlen, 64);
            memcpy(p->payload_hex, v, 64);
        } else if (klen == 8 && memcmp(line, "identity", 8) == 0) {
            assert_true(p->n_identities < MAX_IDENTITIES);
            p->identities[p->n_identities++] = dup_value(v, vlen);
        } else if (klen == 10 && memcmp(line, "passphrase", 10) == 0) {
            assert_true(p->n_passphrases < MAX_IDENTITIES);
            p->passphrases[p->n_passphrases++] = dup_value(v, vlen);
        } else if (klen == 7 && memcmp(line, "armored", 7) == 0) {
            p->armored = vlen == 3 && memcmp(v, "yes", 3) == 0;
        } else if (klen == 10 && memcmp(line, "compressed", 10) == 0) {
            assert_true(vlen == 4 && memcmp(v, "zlib", 4) == 0);
            p->compressed = 1;
        }
    }
    assert_true(p->expect[0] != '\0');
    if (p->compressed) {
        assert_int_equal(inflate_all(data + pos, len - pos, &p->body, &p->body_len), 0);
    } else {
        p->body_len = len - pos;
        p->body = malloc(p->body_len + 1);
        assert_non_null(p->body);
        memcpy(p->body, data + pos, p->body_len);
    }
    free(data);
}

static bool needs_post_quantum(const parsed *p)
{
    for (size_t i = 0; i < p->n_identities; i++) {
        if (strncmp(p->identities[i], "AGE-SECRET-KEY-PQ-", 18) == 0)
            return true;
    }
    return false;
}

/* The error class each expectation must produce. */
static bool error_class_ok(const char *expect, hs_result rc)
{
    if (strcmp(expect, "no match") == 0)
        return rc == HS_E_NOTFOUND;
    if (strcmp(expect, "HMAC failure") == 0)
        return rc == HS_E_VERIFY;
    if (strcmp(expect, "header failure") == 0 || strcmp(expect, "armor failure") == 0)
        return rc == HS_E_FORMAT;
    if (strcmp(expect, "payload failure") == 0)
        return rc == HS_E_VERIFY || rc == HS_E_FORMAT;
    return false;
}

/* One decryption attempt; true when it behaves as the vector expects. */
static bool attempt(const vector *v, const parsed *p, const char *passphrase)
{
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    hs_error e;
    hs_error_clear(&e);
    hs_result rc = hs_age_decrypt((const char *const *)p->identities, p->n_identities,
                                  passphrase, p->body, p->body_len, &plain, &plain_len, &e);
    bool ok;
    if (strcmp(p->expect, "success") == 0) {
        ok = rc == HS_OK;
        if (ok) {
            uint8_t digest[32];
            char hex[65];
            unsigned int dlen = 0;
            ok = EVP_Digest(plain, plain_len, digest, &dlen, EVP_sha256(), NULL) == 1;
            hs_hex_encode(digest, sizeof digest, hex);
            ok = ok && strcmp(hex, p->payload_hex) == 0;
            if (!ok)
                print_message("%s: payload hash %s, expected %s\n", v->name, hex,
                              p->payload_hex);
        } else {
            print_message("%s: expected success, got: %s\n", v->name, e.msg);
        }
    } else {
        ok = rc != HS_OK && error_class_ok(p->expect, rc);
        if (rc == HS_OK)
            print_message("%s: expected %s, but decryption succeeded\n", v->name, p->expect);
        else if (!ok)
            print_message("%s: expected %s, got %s: %s\n", v->name, p->expect,
                          hs_result_name(rc), e.msg);
    }
    if (plain != NULL)
        hs_secure_free(plain, plain_len);
    return ok;
}

static void run_vector(void **state)
{
    const vector *v = *state;
    parsed p;
    parse_vector(v->path, &p);
    if (needs_post_quantum(&p)) {
        skipped_pq++;
        parsed_free(&p);
        skip();
    }
    /* A few failure vectors give no secret at all; decrypt them with an
     * unrelated fresh identity so the file itself is what gets judged. */
    if (p.n_identities == 0 && p.n_passphrases == 0) {
        char *fresh = NULL, *fresh_recipient = NULL;
        hs_error e;
        assert_int_equal(hs_age_keygen(&fresh, &fresh_recipient, &e), HS_OK);
        p.identities[p.n_identities++] = strdup(fresh);
        hs_age_secret_free(fresh);
        free(fresh_recipient);
    }
    /* Each passphrase given is one attempt (scrypt_double has two); every
     * attempt must behave as expected. */
    bool ok = true;
    if (p.n_passphrases == 0)
        ok = attempt(v, &p, NULL);
    for (size_t i = 0; i < p.n_passphrases; i++)
        ok = attempt(v, &p, p.passphrases[i]) && ok;
    parsed_free(&p);
    if (ok)
        passed++;
    else
        failed++;
    assert_true(ok);
}

static int print_summary(void **state)
{
    (void)state;
    if (skipped_pq > 0)
        print_message("age vectors skipped for mlkem768x25519 (post-quantum hybrid, not "
                      "implemented): %u\n",
                      skipped_pq);
    print_message("age vectors: %u passed, %u failed, %u skipped\n", passed, failed,
                  skipped_pq);
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const vector *)a)->name, ((const vector *)b)->name);
}

int main(void)
{
    const char *root = getenv("HSMSIGN_VECTORS");
    char dir[4000];
    /* dir is bounded below so name and path always fit. */
    snprintf(dir, sizeof dir, "%s/age", root ? root : "tests/vectors");
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "test_age_vectors: cannot open %s\n", dir);
        return 1;
    }
    vector *vs = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || strcmp(de->d_name, "README.md") == 0)
            continue;
        vector *grown = realloc(vs, (n + 1) * sizeof *vs);
        if (grown == NULL)
            return 1;
        vs = grown;
        snprintf(vs[n].name, sizeof vs[n].name, "%s", de->d_name);
        snprintf(vs[n].path, sizeof vs[n].path, "%s/%s", dir, de->d_name);
        n++;
    }
    closedir(d);
    /* The copy holds 143 vectors (README.md); fewer means a broken copy. */
    if (n < EXPECTED_VECTORS) {
        fprintf(stderr, "test_age_vectors: %zu vectors in %s, expected at least %d\n", n, dir,
                EXPECTED_VECTORS);
        return 1;
    }
    qsort(vs, n, sizeof *vs, by_name);
    struct CMUnitTest *tests = calloc(n, sizeof *tests);
    if (tests == NULL)
        return 1;
    for (size_t i = 0; i < n; i++) {
        tests[i].name = vs[i].name;
        tests[i].test_func = run_vector;
        tests[i].initial_state = &vs[i];
    }
    int rc = _cmocka_run_group_tests("age_vectors", tests, n, NULL, print_summary);
    free(tests);
    free(vs);
    return rc;
}
