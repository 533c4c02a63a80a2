#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "backup/shamir.h"
#include "backup/share.h"
#include "util/encoding.h"

static const char *const LABELS[5] = {"alice", "bob", "carol", "dave", "Émilie"};

typedef struct fixture {
    uint8_t secret[32];
    hs_share *shares; /* 3-of-5 */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    hs_error e = {0};
    if (f == NULL || RAND_bytes(f->secret, sizeof f->secret) != 1 ||
        hs_share_split_secret(f->secret, 32, 3, 5, LABELS, &f->shares, &e) != HS_OK) {
        print_error("setup: %s\n", e.msg);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    hs_share_free_array(f->shares, 5);
    free(f);
    return 0;
}

/* Recovers from the shares at `positions` (copied, so tests may alter
 * them); returns the result and leaves the message in *e. */
static hs_result recover_some(const fixture *f, const hs_share *alt, const int *positions,
                              size_t count, uint8_t *out, hs_share_report *report, hs_error *e)
{
    hs_share picked[8];
    for (size_t i = 0; i < count; i++)
        picked[i] = alt != NULL && positions[i] < 0 ? *alt : f->shares[positions[i]];
    return hs_share_recover(picked, count, out, 32, report, e);
}

static char *to_text(const hs_share *s)
{
    static char buf[HS_SHARE_TEXT_MAX];
    size_t len = 0;
    hs_error e = {0};
    assert_int_equal(hs_share_serialize(s, buf, sizeof buf, &len, &e), HS_OK);
    assert_int_equal(len, strlen(buf));
    return buf;
}

static void round_trip_3_of_5(void **state)
{
    fixture *f = *state;
    hs_error e = {0};
    hs_share parsed[5];
    for (int i = 0; i < 5; i++) {
        const char *text = to_text(&f->shares[i]);
        assert_int_equal(strncmp(text, "hsmsign-share v1\n", 17), 0);
        assert_int_equal(hs_share_parse(text, strlen(text), "test", &parsed[i], &e), HS_OK);
        assert_memory_equal(&parsed[i], &f->shares[i], sizeof parsed[i]);
        assert_int_equal(hs_share_verify_checksum(&parsed[i], &e), HS_OK);
        assert_string_equal(parsed[i].label, LABELS[i]);
        assert_int_equal(parsed[i].k, 3);
        assert_int_equal(parsed[i].n, 5);
    }
    /* every 3-subset restores the secret, in any order */
    static const int subsets[][3] = {{0, 1, 2}, {4, 2, 0}, {1, 3, 4}, {3, 0, 1}, {2, 4, 3}};
    for (size_t t = 0; t < 5; t++) {
        hs_share picked[3] = {parsed[subsets[t][0]], parsed[subsets[t][1]], parsed[subsets[t][2]]};
        uint8_t out[32] = {0};
        hs_share_report report;
        assert_int_equal(hs_share_recover(picked, 3, out, 32, &report, &e), HS_OK);
        assert_memory_equal(out, f->secret, 32);
        assert_int_equal(report.bad_count, 0);
        assert_int_equal(report.used_count, 3);
        assert_string_equal(report.warning, "");
    }
    uint8_t out[32];
    hs_share_report report;
    assert_int_equal(hs_share_recover(parsed, 5, out, 32, &report, &e), HS_OK);
    assert_memory_equal(out, f->secret, 32);
}

/* The check value in the shares is what `openssl enc -aes-256-ecb` makes
 * of a zero block under the secret: an independent AES implementation. */
static void kcv_matches_openssl_cli(void **state)
{
    fixture *f = *state;
    char hex[65], cmd[256];
    hs_hex_encode(f->secret, 32, hex);
    snprintf(cmd, sizeof cmd,
             "head -c 16 /dev/zero | openssl enc -aes-256-ecb -nopad -K %s", hex);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    uint8_t block[16];
    assert_int_equal(fread(block, 1, sizeof block, p), 16);
    assert_int_equal(pclose(p), 0);
    for (int i = 0; i < 5; i++)
        assert_memory_equal(f->shares[i].kcv, block, 3);
    /* and the known answer AES-128(0^16, 0^16) = 66e94bd4... */
    uint8_t zero[16] = {0}, kcv[3];
    hs_error e = {0};
    assert_int_equal(hs_share_aes_kcv(zero, 16, kcv, &e), HS_OK);
    assert_memory_equal(kcv, "\x66\xe9\x4b", 3);
}

static void two_shares_refused(void **state)
{
    fixture *f = *state;
    hs_error e = {0};
    hs_share_report report;
    uint8_t out[32];
    static const int two[] = {0, 3};
    assert_int_equal(recover_some(f, NULL, two, 2, out, &report, &e), HS_E_USAGE);
    assert_string_equal(e.msg, "2 shares given, this set needs 3");
}

static void flipped_byte_named_by_checksum(void **state)
{
    fixture *f = *state;
    hs_error e = {0};
    hs_share_report report;
    uint8_t out[32];
    hs_share bad = f->shares[1]; /* bob */
    bad.y[7] ^= 0x10;
    assert_int_equal(hs_share_verify_checksum(&bad, &e), HS_E_VERIFY);
    /* with exactly k shares: refused, naming share 2 and bob */
    static const int three[] = {0, -1, 2};
    assert_int_equal(recover_some(f, &bad, three, 3, out, &report, &e), HS_E_VERIFY);
    assert_non_null(strstr(e.msg, "share 2 (\"bob\")"));
    assert_non_null(strstr(e.msg, "checksum"));
    /* with k+1: recovered from the others, bob named in the report */
    static const int four[] = {0, 2, -1, 4};
    assert_int_equal(recover_some(f, &bad, four, 4, out, &report, &e), HS_OK);
    assert_memory_equal(out, f->secret, 32);
    assert_int_equal(report.bad_count, 1);
    assert_int_equal(report.bad[0], 2);
    assert_int_equal(report.bad_fault[0], HS_SHARE_FAULT_CHECKSUM);
    assert_non_null(strstr(report.warning, "share 3 (\"bob\")"));

    /* a flipped byte in the file (one hex digit of y changed to another)
     * still parses but fails its checksum */
    char *text = to_text(&f->shares[1]);
    char *y = strstr(text, "\ny: ");
    assert_non_null(y);
    y[4 + 10] = y[4 + 10] == '0' ? '1' : '0';
    hs_share parsed;
    assert_int_equal(hs_share_parse(text, strlen(text), "bob.share", &parsed, &e), HS_OK);
    assert_int_equal(hs_share_verify_checksum(&parsed, &e), HS_E_VERIFY);
    assert_non_null(strstr(e.msg, "bob"));
    /* and so does a changed label */
    text = to_text(&f->shares[1]);
    char *label = strstr(text, "\nlabel: bob");
    label[8] = 'B';
    assert_int_equal(hs_share_parse(text, strlen(text), "bob.share", &parsed, &e), HS_OK);
    assert_int_equal(hs_share_verify_checksum(&parsed, &e), HS_E_VERIFY);
}

static void share_from_another_set_refused(void **state)
{
    fixture *f = *state;
    hs_share *other = NULL;
    hs_error e = {0};
    assert_int_equal(hs_share_split_secret(f->secret, 32, 3, 5, NULL, &other, &e), HS_OK);
    assert_string_equal(other[0].label, "share 1");
    hs_share mixed[3] = {f->shares[0], f->shares[1], other[2]};
    hs_share_report report;
    uint8_t out[32];
    assert_int_equal(hs_share_recover(mixed, 3, out, 32, &report, &e), HS_E_VERIFY);
    assert_non_null(strstr(e.msg, "share 3 (\"share 3\") belongs to share set"));
    assert_non_null(strstr(e.msg, "different sets"));
    hs_share_free_array(other, 5);
}

/* A y altered on purpose, with its checksum recomputed: only the AEAD
 * notices, and with k+1 shares the subset search names the share
 * wherever it sits in the list. */
static void altered_y_named_with_four_shares(void **state)
{
    fixture *f = *state;
    hs_error e = {0};
    for (int victim = 0; victim < 4; victim++) {
        hs_share picked[4] = {f->shares[0], f->shares[1], f->shares[2], f->shares[3]};
        picked[victim].y[0] ^= 0x01;
        assert_int_equal(hs_share_update_checksum(&picked[victim], &e), HS_OK);
        hs_share_report report;
        uint8_t out[32] = {0};
        assert_int_equal(hs_share_recover(picked, 4, out, 32, &report, &e), HS_OK);
        assert_memory_equal(out, f->secret, 32);
        assert_int_equal(report.bad_count, 1);
        assert_int_equal(report.bad[0], (size_t)victim);
        assert_int_equal(report.bad_fault[0], HS_SHARE_FAULT_WRONG_Y);
        char expect[64];
        snprintf(expect, sizeof expect, "share %d (\"%s\")", victim + 1, LABELS[victim]);
        assert_non_null(strstr(report.warning, expect));
        for (size_t i = 0; i < report.used_count; i++)
            assert_int_not_equal(report.used[i], (size_t)victim);
        /* exactly k shares including the altered one: refused, no guess */
        assert_int_equal(hs_share_recover(picked + (victim == 3 ? 1 : 0), 3, out, 32, &report, &e),
                         HS_E_VERIFY);
        assert_non_null(strstr(e.msg, "cannot be told which"));
    }
}

static void two_altered_of_five_both_named(void **state)
{
    fixture *f = *state;
    hs_error e = {0};
    hs_share picked[5];
    memcpy(picked, f->shares, sizeof picked);
    picked[1].y[31] ^= 0x80;
    picked[4].y[3] ^= 0x02;
    assert_int_equal(hs_share_update_checksum(&picked[1], &e), HS_OK);
    assert_int_equal(hs_share_update_checksum(&picked[4], &e), HS_OK);
    hs_share_report report;
    uint8_t out[32];
    assert_int_equal(hs_share_recover(picked, 5, out, 32, &report, &e), HS_OK);
    assert_memory_equal(out, f->secret, 32);
    assert_int_equal(report.bad_count, 2);
    assert_int_equal(report.bad[0], 1);
    assert_int_equal(report.bad[1], 4);
    /* three of five altered: nothing decrypts, recovery fails */
    picked[0].y[5] ^= 0x04;
    assert_int_equal(hs_share_update_checksum(&picked[0], &e), HS_OK);
    assert_int_equal(hs_share_recover(picked, 5, out, 32, &report, &e), HS_E_VERIFY);
    assert_int_equal(report.subsets_tried, 10);
}

static void inconsistent_or_duplicate_shares_refused(void **state)
{
    fixture *f = *state;
    hs_error e = {0};
    hs_share_report report;
    uint8_t out[32];
    hs_share picked[3] = {f->shares[0], f->shares[1], f->shares[0]};
    assert_int_equal(hs_share_recover(picked, 3, out, 32, &report, &e), HS_E_USAGE);
    assert_non_null(strstr(e.msg, "given twice"));

    picked[2] = f->shares[2];
    picked[2].k = 2;
    assert_int_equal(hs_share_update_checksum(&picked[2], &e), HS_OK);
    assert_int_equal(hs_share_recover(picked, 3, out, 32, &report, &e), HS_E_VERIFY);
    assert_non_null(strstr(e.msg, "disagree on the threshold"));

    picked[2] = f->shares[2];
    picked[2].ciphertext[0] ^= 1;
    assert_int_equal(hs_share_update_checksum(&picked[2], &e), HS_OK);
    assert_int_equal(hs_share_recover(picked, 3, out, 32, &report, &e), HS_E_VERIFY);
    assert_non_null(strstr(e.msg, "disagree on the ciphertext"));

    picked[2] = f->shares[2];
    assert_int_equal(hs_share_recover(picked, 3, out, 16, &report, &e), HS_E_USAGE);
    assert_int_equal(hs_share_recover(picked, 0, out, 32, &report, &e), HS_E_USAGE);
}

/* All shares altered the same way in a shared field (so they agree) with
 * checksums recomputed: the AEAD still refuses. */
static void consistently_altered_metadata_refused(void **state)
{
    fixture *f = *state;
    hs_error e = {0};
    hs_share picked[4];
    memcpy(picked, f->shares, sizeof picked);
    for (int i = 0; i < 4; i++) {
        picked[i].kcv[0] ^= 1; /* part of the associated data */
        assert_int_equal(hs_share_update_checksum(&picked[i], &e), HS_OK);
    }
    hs_share_report report;
    uint8_t out[32];
    assert_int_equal(hs_share_recover(picked, 4, out, 32, &report, &e), HS_E_VERIFY);
}

static void unknown_version_refused(void **state)
{
    fixture *f = *state;
    char *text = to_text(&f->shares[0]);
    text[15] = '2'; /* "hsmsign-share v2" */
    hs_share parsed;
    hs_error e = {0};
    assert_int_equal(hs_share_parse(text, strlen(text), "a.share", &parsed, &e), HS_E_FORMAT);
    assert_string_equal(e.msg,
                        "a.share: share format version 'v2' is not supported (this hsmsign reads v1)");
    const char *other = "age-encryption.org/v1\n";
    assert_int_equal(hs_share_parse(other, strlen(other), "b", &parsed, &e), HS_E_FORMAT);
    assert_non_null(strstr(e.msg, "not an hsmsign share"));
}

static void truncated_file_refused(void **state)
{
    fixture *f = *state;
    char *text = to_text(&f->shares[0]);
    size_t len = strlen(text);
    hs_share parsed;
    hs_error e = {0};
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(hs_share_parse(text, cut, "a.share", &parsed, &e), HS_E_FORMAT);
    /* cut at a line end: the message names the missing field */
    char *last = strstr(text, "\nchecksum: ");
    assert_int_equal(hs_share_parse(text, (size_t)(last - text) + 1, "a.share", &parsed, &e),
                     HS_E_FORMAT);
    assert_string_equal(e.msg, "a.share: field 'checksum' is missing (truncated share?)");
    assert_int_equal(hs_share_parse(text, len, "a.share", &parsed, &e), HS_OK);
}

static void parse_fails(const char *text, const char *expect)
{
    hs_share parsed;
    hs_error e = {0};
    assert_int_equal(hs_share_parse(text, strlen(text), "s", &parsed, &e), HS_E_FORMAT);
    if (strstr(e.msg, expect) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", e.msg, expect);
}

static void strict_fields(void **state)
{
    fixture *f = *state;
    static char text[HS_SHARE_TEXT_MAX], edited[2 * HS_SHARE_TEXT_MAX];
    snprintf(text, sizeof text, "%s", to_text(&f->shares[0]));

    snprintf(edited, sizeof edited, "%scomment: hello\n", text);
    parse_fails(edited, "line 13: unknown field 'comment'");

    char *x = strstr(text, "\nx: ");
    size_t head = (size_t)(x - text) + 1;
    snprintf(edited, sizeof edited, "%.*sx: 9\n%s", (int)head, text, text + head);
    parse_fails(edited, "field 'x' appears twice");

    char *x_end = strchr(x + 1, '\n');
    snprintf(edited, sizeof edited, "%.*s%s", (int)head, text, x_end + 1);
    parse_fails(edited, "field 'x' is missing");

    snprintf(edited, sizeof edited, "%.*sx: 0%s", (int)head, text, x_end);
    parse_fails(edited, "field 'x' has a malformed value");
    snprintf(edited, sizeof edited, "%.*sx: 007%s", (int)head, text, x_end);
    parse_fails(edited, "field 'x' has a malformed value");
    snprintf(edited, sizeof edited, "%.*sx:7%s", (int)head, text, x_end);
    parse_fails(edited, "expected 'name: value'");

    char *k = strstr(text, "threshold: 3");
    snprintf(edited, sizeof edited, "%.*sthreshold: 9%s", (int)(k - text), text, k + 12);
    parse_fails(edited, "threshold 9 is larger than the 5 shares");

    char *nl = strchr(text, '\n');
    snprintf(edited, sizeof edited, "%.*s\r%s", (int)(nl - text), text, nl);
    parse_fails(edited, "carriage return");

    char *lbl = strstr(text, "\nlabel: ");
    char *lbl_end = strchr(lbl + 1, '\n');
    snprintf(edited, sizeof edited, "%.*s\nlabel: a\tb%s", (int)(lbl - text), text, lbl_end);
    parse_fails(edited, "field 'label' has a malformed value");
    snprintf(edited, sizeof edited, "%.*s\nlabel: \xc3\x28%s", (int)(lbl - text), text, lbl_end);
    parse_fails(edited, "field 'label' has a malformed value");

    snprintf(edited, sizeof edited, "%s\n", text);
    parse_fails(edited, "line 13: expected 'name: value'");
}

static void bad_split_arguments_refused(void **state)
{
    fixture *f = *state;
    hs_share *out = NULL;
    hs_error e = {0};
    assert_int_equal(hs_share_split_secret(f->secret, 20, 3, 5, NULL, &out, &e), HS_E_USAGE);
    assert_int_equal(hs_share_split_secret(f->secret, 32, 1, 5, NULL, &out, &e), HS_E_USAGE);
    assert_int_equal(hs_share_split_secret(f->secret, 32, 6, 5, NULL, &out, &e), HS_E_USAGE);
    const char *bad_labels[3] = {"ok", "new\nline", "ok"};
    assert_int_equal(hs_share_split_secret(f->secret, 32, 2, 3, bad_labels, &out, &e), HS_E_USAGE);
    assert_non_null(strstr(e.msg, "label 2"));
    assert_null(out);
}

static void other_key_sizes_and_largest_set(void **state)
{
    (void)state;
    hs_error e = {0};
    uint8_t key[24], out[24];
    assert_int_equal(RAND_bytes(key, sizeof key), 1);
    hs_share *shares = NULL;
    assert_int_equal(hs_share_split_secret(key, 24, 2, 255, NULL, &shares, &e), HS_OK);
    hs_share_report report;
    hs_share pair[2] = {shares[254], shares[100]};
    assert_int_equal(hs_share_recover(pair, 2, out, 24, &report, &e), HS_OK);
    assert_memory_equal(out, key, 24);
    char *text = to_text(&shares[254]);
    assert_non_null(strstr(text, "\nlabel: share 255\n"));
    hs_share_free_array(shares, 255);
}

/* ---- The layouts docs/share-format.md specifies, rebuilt here directly
 * with OpenSSL rather than through the library. */

static size_t doc_aad(const hs_share *s, uint8_t *aad)
{
    size_t off = 0;
    memcpy(aad, "hsmsign-share v1 aad", 20);
    off += 20;
    memcpy(aad + off, s->set_id, 16);
    off += 16;
    aad[off++] = (uint8_t)s->k;
    aad[off++] = (uint8_t)s->n;
    memcpy(aad + off, s->kcv, 3);
    return off + 3;
}

static void doc_checksum(const hs_share *s, uint8_t out[32])
{
    uint8_t buf[512];
    size_t off = 0;
    memcpy(buf, "hsmsign-share v1 checksum", 25);
    off += 25;
    memcpy(buf + off, s->set_id, 16);
    off += 16;
    buf[off++] = (uint8_t)s->k;
    buf[off++] = (uint8_t)s->n;
    buf[off++] = s->x;
    memcpy(buf + off, s->y, 32);
    off += 32;
    memcpy(buf + off, s->kcv, 3);
    off += 3;
    memcpy(buf + off, s->nonce, 12);
    off += 12;
    buf[off++] = (uint8_t)s->ciphertext_len;
    memcpy(buf + off, s->ciphertext, s->ciphertext_len);
    off += s->ciphertext_len;
    memcpy(buf + off, s->tag, 16);
    off += 16;
    size_t label_len = strlen(s->label);
    buf[off++] = (uint8_t)label_len;
    memcpy(buf + off, s->label, label_len);
    off += label_len;
    assert_int_equal(EVP_Digest(buf, off, out, NULL, EVP_sha256(), NULL), 1);
}

static void key_from_shares(const hs_share *shares, uint8_t key[32])
{
    uint8_t xs[3] = {shares[0].x, shares[2].x, shares[4].x};
    const uint8_t *ys[3] = {shares[0].y, shares[2].y, shares[4].y};
    hs_error e = {0};
    assert_int_equal(hs_shamir_combine(3, xs, ys, 32, key, &e), HS_OK);
}

/* AES-256-GCM with the documented associated data; encrypt (tag out) or
 * decrypt (tag in). Returns whether the operation (and tag) succeeded. */
static bool doc_gcm(bool encrypt, const hs_share *s, const uint8_t key[32], const uint8_t *in,
                    uint8_t *out, uint8_t tag[16])
{
    uint8_t aad[64];
    size_t aad_len = doc_aad(s, aad);
    int outl = 0, finl = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    bool ok = EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, s->nonce, encrypt) == 1 &&
              EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aad_len) == 1 &&
              EVP_CipherUpdate(ctx, out, &outl, in, (int)s->ciphertext_len) == 1 &&
              (encrypt || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1) &&
              EVP_CipherFinal_ex(ctx, out + outl, &finl) == 1 &&
              (!encrypt || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1);
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

static void documented_layout_rebuilt_independently(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 5; i++) {
        uint8_t sum[32];
        doc_checksum(&f->shares[i], sum);
        assert_memory_equal(sum, f->shares[i].checksum, 32);
    }
    uint8_t key[32], plain[32], tag[16];
    key_from_shares(f->shares, key);
    memcpy(tag, f->shares[0].tag, 16);
    assert_true(doc_gcm(false, &f->shares[0], key, f->shares[0].ciphertext, plain, tag));
    assert_memory_equal(plain, f->secret, 32);
}

/* A set made wrongly (the recorded check value is not the secret's, yet
 * everything is authenticated): recovery refuses it. */
static void wrong_check_value_refused(void **state)
{
    fixture *f = *state;
    hs_share picked[5];
    memcpy(picked, f->shares, sizeof picked);
    uint8_t key[32], tag[16], ct[32];
    key_from_shares(picked, key);
    hs_error e = {0};
    for (int i = 0; i < 5; i++) {
        picked[i].kcv[2] ^= 0x01;
        assert_true(doc_gcm(true, &picked[i], key, f->secret, ct, tag));
        memcpy(picked[i].ciphertext, ct, 32);
        memcpy(picked[i].tag, tag, 16);
        assert_int_equal(hs_share_update_checksum(&picked[i], &e), HS_OK);
    }
    hs_share_report report;
    uint8_t out[32];
    assert_int_equal(hs_share_recover(picked, 3, out, 32, &report, &e), HS_E_VERIFY);
    assert_non_null(strstr(e.msg, "check value"));
    uint8_t zero[32] = {0};
    assert_memory_equal(out, zero, 32); /* nothing left in the output */
}

/* n = 7, k = 3: the self-check's subsets touch every share, and a middle
 * share (4, outside the first and the last three) made wrong after the
 * split, checksum recomputed, is caught. */
static void self_check_covers_every_share(void **state)
{
    (void)state;
    uint8_t secret[32];
    hs_share *sh = NULL;
    hs_error e = {0};
    assert_int_equal(RAND_bytes(secret, sizeof secret), 1);
    assert_int_equal(hs_share_split_secret(secret, 32, 3, 7, NULL, &sh, &e), HS_OK);
    bool touched[HS_SHARE_MAX_SHARES];
    assert_int_equal(hs_share_self_check(sh, 7, secret, 32, touched, &e), HS_OK);
    for (int i = 0; i < 7; i++)
        assert_true(touched[i]);
    sh[3].y[0] ^= 1;
    assert_int_equal(hs_share_update_checksum(&sh[3], &e), HS_OK);
    assert_int_not_equal(hs_share_self_check(sh, 7, secret, 32, touched, &e), HS_OK);
    hs_share_free_array(sh, 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_3_of_5),
        cmocka_unit_test(kcv_matches_openssl_cli),
        cmocka_unit_test(two_shares_refused),
        cmocka_unit_test(flipped_byte_named_by_checksum),
        cmocka_unit_test(share_from_another_set_refused),
        cmocka_unit_test(altered_y_named_with_four_shares),
        cmocka_unit_test(two_altered_of_five_both_named),
        cmocka_unit_test(inconsistent_or_duplicate_shares_refused),
        cmocka_unit_test(consistently_altered_metadata_refused),
        cmocka_unit_test(unknown_version_refused),
        cmocka_unit_test(truncated_file_refused),
        cmocka_unit_test(strict_fields),
        cmocka_unit_test(bad_split_arguments_refused),
        cmocka_unit_test(other_key_sizes_and_largest_set),
        cmocka_unit_test(documented_layout_rebuilt_independently),
        cmocka_unit_test(wrong_check_value_refused),
        cmocka_unit_test(self_check_covers_every_share),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
