/* APK signing end to end with the soft signer fixture: byte equality with
 * apksigner 31's output (tests/vectors/apk), one signing call per scheme,
 * our verifier on our and apksigner's outputs, tampering detected, and
 * failures that leave neither output nor temporary file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <sys/stat.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include "apk/apk.h"
#include "soft_signer.h"
#include "util/file.h"

static char dir[64];
static soft_signer signer;
static uint8_t *cert_der;
static size_t cert_der_len;
static X509 *cert;

static const char *vector(const char *name)
{
    static char path[4][512];
    static int next;
    char *p = path[next++ % 4];
    const char *d = getenv("HSMSIGN_VECTORS");
    snprintf(p, 512, "%s/apk/%s", d ? d : "tests/vectors", name);
    return p;
}

static const char *tmp(const char *name)
{
    static char path[4][512];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

static hs_apk_key test_key(void)
{
    hs_apk_key k = {.key_name = "testkey", .cert_der = cert_der, .cert_der_len = cert_der_len,
                    .public_key = X509_get0_pubkey(cert), .v1_name = "testkey"};
    return k;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    uint8_t *data = NULL;
    hs_error e = {0};
    if (hs_read_file(path, 1 << 26, &data, len, &e) != HS_OK)
        fail_msg("%s", e.msg);
    return data;
}

/* Nothing but the files the test put there: no leftover temporaries. */
static void assert_dir_holds(unsigned expected)
{
    DIR *d = opendir(dir);
    unsigned n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (strstr(de->d_name, ".tmp.") != NULL)
            fail_msg("temporary file left behind: %s", de->d_name);
        n++;
    }
    closedir(d);
    assert_int_equal(n, expected);
}

static void test_v2v3_identical_to_apksigner(void **state)
{
    (void)state;
    hs_apk_key key = test_key();
    hs_apk_options opt;
    hs_apk_options_init(&opt);
    opt.v1 = 0;
    hs_apk_report rep;
    hs_error e = {0};
    unsigned calls = signer.calls;
    if (hs_apk_sign_file(vector("app21.apk"), tmp("out.apk"), &key, &opt, soft_signer_fn(&signer),
                         &rep, &e) != HS_OK)
        fail_msg("%s", e.msg);
    assert_int_equal(signer.calls - calls, 2); /* one per scheme */
    assert_int_equal(rep.signatures, 2);
    assert_int_equal(rep.min_sdk, 21);
    assert_false(rep.v1);
    assert_true(rep.v2 && rep.v3);
    assert_int_equal(rep.algorithm_id, 0x0103);
    size_t got_len, want_len;
    uint8_t *got = slurp(tmp("out.apk"), &got_len);
    uint8_t *want = slurp(vector("app21.v2v3.apksigner.apk"), &want_len);
    assert_int_equal(got_len, want_len);
    assert_memory_equal(got, want, want_len);
    uint8_t sha[32];
    EVP_Digest(got, got_len, sha, NULL, EVP_sha256(), NULL);
    assert_memory_equal(sha, rep.output_sha256, 32);
    free(got);
    free(want);
    unlink(tmp("out.apk"));
}

static void expect_verifies_until(const char *path, int max_sdk, bool v1, bool v2, bool v3)
{
    hs_apk_verify_report rep;
    hs_error e = {0};
    /* From the manifest's minSdk (21) Android checks every scheme; a
     * v2+-only APK is checked for 24+ (below, Android needs v1). */
    const hs_apk_verify_options range = {.min_sdk = v1 ? -1 : 24, .max_sdk = max_sdk};
    if (hs_apk_verify_file_range(path, &range, &rep, &e) != HS_OK)
        fail_msg("%s: %s", path, e.msg);
    assert_int_equal(rep.v1, v1);
    assert_int_equal(rep.v2, v2);
    assert_int_equal(rep.v3, v3);
    assert_int_equal(rep.cert_der_len, cert_der_len);
    assert_memory_equal(rep.cert_der, cert_der, cert_der_len);
    uint8_t sha[32];
    EVP_Digest(cert_der, cert_der_len, sha, NULL, EVP_sha256(), NULL);
    assert_memory_equal(sha, rep.cert_sha256, 32);
    hs_apk_verify_report_free(&rep);
}

static void expect_verifies(const char *path, bool v1, bool v2, bool v3)
{
    expect_verifies_until(path, -1, v1, v2, v3);
}

/* v1 too: the JAR files deflated with zlib as apksig's Deflater(9, true)
 * does, so the whole archive equals apksigner's. */
static void test_v1v2v3_identical_to_apksigner(void **state)
{
    (void)state;
    hs_apk_key key = test_key();
    hs_apk_options opt;
    hs_apk_options_init(&opt);
    opt.v1 = opt.v2 = opt.v3 = 1;
    hs_apk_report rep;
    hs_error e = {0};
    unsigned calls = signer.calls;
    if (hs_apk_sign_file(vector("app21.apk"), tmp("out1.apk"), &key, &opt,
                         soft_signer_fn(&signer), &rep, &e) != HS_OK)
        fail_msg("%s", e.msg);
    assert_int_equal(signer.calls - calls, 3); /* .SF, v2, v3 */
    assert_true(rep.v1 && rep.v2 && rep.v3);
    size_t got_len, want_len;
    uint8_t *got = slurp(tmp("out1.apk"), &got_len);
    uint8_t *want = slurp(vector("app21.v1v2v3.apksigner.apk"), &want_len);
    assert_int_equal(got_len, want_len);
    assert_memory_equal(got, want, want_len);
    free(got);
    free(want);
    unlink(tmp("out1.apk"));
}

static void sha256_of(const char *path, uint8_t sha[32])
{
    size_t len;
    uint8_t *data = slurp(path, &len);
    EVP_Digest(data, len, sha, NULL, EVP_sha256(), NULL);
    free(data);
}

/* Signs in with the given schemes; the report's input and output hashes
 * must be those of the files (the signer derives the output's from the
 * prefix it shares with the input, apk_out.c); the output must equal
 * `want` when given. */
static void sign_and_check_hashes(const char *in, const char *out, int v1, const char *want)
{
    hs_apk_key key = test_key();
    hs_apk_options opt;
    hs_apk_options_init(&opt);
    opt.v1 = v1;
    opt.v2 = opt.v3 = 1;
    hs_apk_report rep;
    hs_error e = {0};
    if (hs_apk_sign_file(in, out, &key, &opt, soft_signer_fn(&signer), &rep, &e) != HS_OK)
        fail_msg("%s: %s", in, e.msg);
    uint8_t sha[32];
    sha256_of(in, sha);
    assert_memory_equal(sha, rep.input_sha256, 32);
    sha256_of(out, sha);
    assert_memory_equal(sha, rep.output_sha256, 32);
    expect_verifies(out, v1 != 0, true, true);
    if (want != NULL) {
        size_t got_len, want_len;
        uint8_t *got = slurp(out, &got_len);
        uint8_t *exp = slurp(want, &want_len);
        assert_int_equal(got_len, want_len);
        assert_memory_equal(got, exp, want_len);
        free(got);
        free(exp);
    }
    unlink(out);
}

/* Every way the output is assembled: a fresh APK (all of it shared with the
 * input), re-signing an APK whose v1 files are dropped (the shared prefix
 * ends before them) or replaced, and an input on another file system, where
 * copy_file_range refuses (EXDEV) and plain writes take over. */
static void test_hashes_on_every_copy_path(void **state)
{
    (void)state;
    sign_and_check_hashes(vector("app21.apk"), tmp("h1.apk"), 0,
                          vector("app21.v2v3.apksigner.apk"));
    sign_and_check_hashes(vector("app21.v1v2v3.apksigner.apk"), tmp("h2.apk"), 0, NULL);
    sign_and_check_hashes(vector("app21.v1v2v3.apksigner.apk"), tmp("h3.apk"), 1, NULL);
    struct stat shm, here;
    if (stat("/dev/shm", &shm) != 0 || stat(dir, &here) != 0 || shm.st_dev == here.st_dev) {
        print_message("skipped: the write() fallback needs /dev/shm on another file system\n");
        return;
    }
    char in[64];
    snprintf(in, sizeof in, "/dev/shm/hsmsign-apk-%d.apk", (int)getpid());
    size_t len;
    uint8_t *data = slurp(vector("app21.apk"), &len);
    hs_error e = {0};
    if (hs_write_file_atomic(in, data, len, 0644, false, &e) != HS_OK)
        fail_msg("%s", e.msg);
    free(data);
    sign_and_check_hashes(in, tmp("h4.apk"), 0, vector("app21.v2v3.apksigner.apk"));
    unlink(in);
}

static void test_verify_apksigner_outputs(void **state)
{
    (void)state;
    expect_verifies(vector("app21.v2v3.apksigner.apk"), false, true, true);
    expect_verifies(vector("app21.v1v2v3.apksigner.apk"), true, true, true);
    hs_apk_verify_report rep;
    hs_error e = {0};
    assert_int_equal(hs_apk_verify_file(vector("app21.apk"), &rep, &e), HS_E_VERIFY);
    assert_non_null(strstr(e.msg, "no JAR signature"));
    hs_apk_verify_report_free(&rep);
}

static void test_default_schemes_by_min_sdk(void **state)
{
    (void)state;
    hs_apk_key key = test_key();
    hs_apk_options opt;
    hs_apk_options_init(&opt);
    hs_apk_report rep;
    hs_error e = {0};
    unsigned calls = signer.calls;
    if (hs_apk_sign_file(vector("app21.apk"), tmp("all.apk"), &key, &opt, soft_signer_fn(&signer),
                         &rep, &e) != HS_OK)
        fail_msg("%s", e.msg);
    assert_true(rep.v1 && rep.v2 && rep.v3); /* minSdk 21 < 24: v1 too */
    assert_int_equal(signer.calls - calls, 3);
    expect_verifies(tmp("all.apk"), true, true, true);
    opt.min_sdk = 24;
    assert_int_equal(hs_apk_sign_file(vector("app21.apk"), tmp("n.apk"), &key, &opt,
                                      soft_signer_fn(&signer), &rep, &e),
                     HS_OK);
    assert_false(rep.v1);
    expect_verifies(tmp("n.apk"), false, true, true);
    unlink(tmp("all.apk"));
    unlink(tmp("n.apk"));
}

static void flip_byte_at(const char *path, const char *marker)
{
    size_t len;
    uint8_t *data = slurp(path, &len);
    uint8_t *hit = memmem(data, len, marker, strlen(marker));
    assert_non_null(hit);
    *hit ^= 1;
    hs_error e = {0};
    assert_int_equal(hs_write_file_atomic(path, data, len, 0644, false, &e), HS_OK);
    free(data);
}

static void expect_verify_fails(const char *path, const char *reason)
{
    hs_apk_verify_report rep;
    hs_error e = {0};
    hs_result r = hs_apk_verify_file(path, &rep, &e);
    hs_apk_verify_report_free(&rep);
    if (r != HS_E_VERIFY || strstr(e.msg, reason) == NULL)
        fail_msg("expected a verification failure \"%s\", got %d: %s", reason, r, e.msg);
}

static void test_tampering_detected(void **state)
{
    (void)state;
    hs_apk_key key = test_key();
    hs_apk_options opt;
    hs_apk_options_init(&opt);
    hs_apk_report rep;
    hs_error e = {0};
    /* v2/v3: a changed entry byte breaks the content digest. */
    opt.v1 = 0;
    assert_int_equal(hs_apk_sign_file(vector("app21.apk"), tmp("t.apk"), &key, &opt,
                                      soft_signer_fn(&signer), &rep, &e),
                     HS_OK);
    flip_byte_at(tmp("t.apk"), "hello");
    expect_verify_fails(tmp("t.apk"), "content digest");
    /* v3 block renamed away: v2's stripping protection must notice. */
    assert_int_equal(hs_apk_sign_file(vector("app21.apk"), tmp("t.apk"), &key, &opt,
                                      soft_signer_fn(&signer), &rep, &e),
                     HS_OK);
    flip_byte_at(tmp("t.apk"), "\xc0\x68\x53\xf0");
    expect_verify_fails(tmp("t.apk"), "no v3 signature");
    /* v1 only: a changed entry no longer matches MANIFEST.MF. */
    opt.v1 = 1;
    opt.v2 = opt.v3 = 0;
    assert_int_equal(hs_apk_sign_file(vector("app21.apk"), tmp("t.apk"), &key, &opt,
                                      soft_signer_fn(&signer), &rep, &e),
                     HS_OK);
    /* targetSdk 33 needs v2+ on Android 11+ (30): v1 alone is for 29 and older */
    expect_verifies_until(tmp("t.apk"), 29, true, false, false);
    expect_verify_fails(tmp("t.apk"), "targetSdkVersion 33 requires");
    flip_byte_at(tmp("t.apk"), "hello");
    expect_verify_fails(tmp("t.apk"), "assets/a.txt");
    unlink(tmp("t.apk"));
}

static void test_v4_identical_to_apksigner(void **state)
{
    (void)state;
    hs_apk_key key = test_key();
    hs_apk_options opt;
    hs_apk_options_init(&opt);
    opt.v1 = 0;
    opt.v4 = true;
    hs_apk_report rep;
    hs_error e = {0};
    unsigned calls = signer.calls;
    if (hs_apk_sign_file(vector("app21.apk"), tmp("v4.apk"), &key, &opt, soft_signer_fn(&signer),
                         &rep, &e) != HS_OK)
        fail_msg("%s", e.msg);
    assert_true(rep.v4);
    assert_int_equal(signer.calls - calls, 3); /* v2, v3, v4 */
    size_t got_len, want_len;
    uint8_t *got = slurp(tmp("v4.apk.idsig"), &got_len);
    uint8_t *want = slurp(vector("app21.v2v3.apksigner.apk.idsig"), &want_len);
    assert_int_equal(got_len, want_len);
    assert_memory_equal(got, want, want_len);
    free(got);
    free(want);
    got = slurp(tmp("v4.apk"), &got_len);
    want = slurp(vector("app21.v2v3.apksigner.apk"), &want_len);
    assert_int_equal(got_len, want_len);
    assert_memory_equal(got, want, want_len);
    free(got);
    free(want);
    unlink(tmp("v4.apk"));
    unlink(tmp("v4.apk.idsig"));
    /* v4 alone cannot be made: it signs the v2/v3 content digest */
    opt.v2 = opt.v3 = 0;
    opt.v1 = 1;
    assert_int_equal(hs_apk_sign_file(vector("app21.apk"), tmp("v4.apk"), &key, &opt,
                                      soft_signer_fn(&signer), &rep, &e),
                     HS_E_USAGE);
    assert_dir_holds(0);
}

static hs_result failing_sign(void *ctx, const hs_sign_request *req, uint8_t **sig,
                              size_t *sig_len, hs_error *e)
{
    (void)ctx;
    (void)sig;
    (void)sig_len;
    return hs_fail(e, HS_E_P11, "token removed while signing %s", req->operation);
}

static unsigned fail_on_call, call_count;

/* Signs with the soft signer, but fails the fail_on_call-th request. */
static hs_result failing_nth_sign(void *ctx, const hs_sign_request *req, uint8_t **sig,
                                  size_t *sig_len, hs_error *e)
{
    (void)ctx;
    if (++call_count == fail_on_call)
        return hs_fail(e, HS_E_P11, "token removed while signing %s", req->operation);
    hs_sign_fn real = soft_signer_fn(&signer);
    return real.sign(real.ctx, req, sig, sig_len, e);
}

static void test_failures_leave_nothing(void **state)
{
    (void)state;
    hs_apk_key key = test_key();
    hs_apk_options opt;
    hs_apk_options_init(&opt);
    hs_error e = {0};
    assert_dir_holds(0);
    /* input is not a zip */
    assert_int_equal(hs_write_file_atomic(tmp("junk.apk"), "junk", 4, 0644, false, &e), HS_OK);
    assert_int_equal(hs_apk_sign_file(tmp("junk.apk"), tmp("o.apk"), &key, &opt,
                                      soft_signer_fn(&signer), NULL, &e),
                     HS_E_FORMAT);
    assert_non_null(strstr(e.msg, "not a ZIP archive"));
    assert_dir_holds(1);
    /* the signer fails mid-way: the partial output is removed */
    hs_sign_fn bad = {failing_sign, NULL};
    assert_int_equal(hs_apk_sign_file(vector("app21.apk"), tmp("o.apk"), &key, &opt, bad, NULL,
                                      &e),
                     HS_E_P11);
    assert_non_null(strstr(e.msg, "token removed"));
    assert_dir_holds(1);
    opt.v4 = true; /* the v4 call is the last one: the APK is complete by then */
    fail_on_call = 3;
    bad.sign = failing_nth_sign;
    assert_int_equal(hs_apk_sign_file(vector("app21.apk"), tmp("o.apk"), &key, &opt, bad, NULL,
                                      &e),
                     HS_E_P11);
    assert_dir_holds(1);
    opt.v4 = false;
    /* output == input, also through another name */
    assert_int_equal(hs_apk_sign_file(tmp("junk.apk"), tmp("junk.apk"), &key, &opt,
                                      soft_signer_fn(&signer), NULL, &e),
                     HS_E_USAGE);
    assert_int_equal(symlink(tmp("junk.apk"), tmp("link.apk")), 0);
    assert_int_equal(hs_apk_sign_file(tmp("junk.apk"), tmp("link.apk"), &key, &opt,
                                      soft_signer_fn(&signer), NULL, &e),
                     HS_E_USAGE);
    assert_non_null(strstr(e.msg, "different file"));
    unlink(tmp("link.apk"));
    /* a key that does not match the certificate */
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    key.public_key = other;
    assert_int_equal(hs_apk_sign_file(vector("app21.apk"), tmp("o.apk"), &key, &opt,
                                      soft_signer_fn(&signer), NULL, &e),
                     HS_E_USAGE);
    assert_non_null(strstr(e.msg, "does not match"));
    EVP_PKEY_free(other);
    assert_dir_holds(1);
    unlink(tmp("junk.apk"));
}

static int setup(void **state)
{
    (void)state;
    hs_error e = {0};
    snprintf(dir, sizeof dir, "/tmp/hsmsign-test-apk-XXXXXX");
    if (mkdtemp(dir) == NULL || soft_signer_load(&signer, vector("testkey.pk8"), &e) != HS_OK)
        return -1;
    FILE *f = fopen(vector("testkey.x509.pem"), "r");
    if (f == NULL)
        return -1;
    cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    uint8_t *der = NULL;
    int len = cert ? i2d_X509(cert, &der) : -1;
    if (len <= 0)
        return -1;
    cert_der = der;
    cert_der_len = (size_t)len;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    soft_signer_free(&signer);
    OPENSSL_free(cert_der);
    X509_free(cert);
    rmdir(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v2v3_identical_to_apksigner),
        cmocka_unit_test(test_v1v2v3_identical_to_apksigner),
        cmocka_unit_test(test_verify_apksigner_outputs),
        cmocka_unit_test(test_hashes_on_every_copy_path),
        cmocka_unit_test(test_v4_identical_to_apksigner),
        cmocka_unit_test(test_default_schemes_by_min_sdk),
        cmocka_unit_test(test_tampering_detected),
        cmocka_unit_test(test_failures_leave_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
