/* The signature cache's entry format and directory rules (sigcache.h,
 * docs/cache.md): round trip, every malformed shape refused, an entry
 * under another request's name refused, private directories only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "signer/sigcache.h"

static char dir[] = "/tmp/hsmsign-test-sigcache-XXXXXX";

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void sample(hs_sigcache_entry *en)
{
    memset(en, 0, sizeof *en);
    memset(en->key_sha256, 0xab, 32);
    en->alg = HS_SIG_RSA_PKCS1_SHA256;
    en->digest_len = 32;
    memset(en->digest, 0x11, 32);
    en->sig_len = 256;
    for (size_t i = 0; i < 256; i++)
        en->sig[i] = (uint8_t)i;
    en->seq = 42;
    snprintf(en->batch, sizeof en->batch, "0123456789abcdef0123456789abcdef");
}

static void test_round_trip(void **state)
{
    (void)state;
    hs_sigcache_entry en, back;
    sample(&en);
    char *text;
    size_t len;
    hs_error e = {0};
    assert_int_equal(hs_sigcache_format(&en, &text, &len, &e), HS_OK);
    assert_true(strncmp(text, HS_SIGCACHE_MAGIC "\n", strlen(HS_SIGCACHE_MAGIC) + 1) == 0);
    assert_int_equal(hs_sigcache_parse(text, len, &back, &e), HS_OK);
    assert_memory_equal(back.key_sha256, en.key_sha256, 32);
    assert_int_equal(back.alg, en.alg);
    assert_int_equal(back.digest_len, 32);
    assert_memory_equal(back.digest, en.digest, 32);
    assert_int_equal(back.sig_len, 256);
    assert_memory_equal(back.sig, en.sig, 256);
    assert_int_equal(back.seq, 42);
    assert_string_equal(back.batch, en.batch);
    free(text);
}

/* Replaces the first occurrence of from with to in text, into out. */
static void edited(const char *text, const char *from, const char *to, char *out, size_t cap)
{
    const char *at = strstr(text, from);
    assert_non_null(at);
    snprintf(out, cap, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
}

static void test_malformed(void **state)
{
    (void)state;
    hs_sigcache_entry en, back;
    sample(&en);
    char *text;
    size_t len;
    hs_error e = {0};
    assert_int_equal(hs_sigcache_format(&en, &text, &len, &e), HS_OK);
    static const struct {
        const char *from, *to;
    } cases[] = {
        {"hsmsign signature cache 1", "hsmsign signature cache 2"}, /* unknown version */
        {"alg rsa-pkcs1-sha256", "alg rsa-pkcs1-sha999"},            /* unknown algorithm */
        {"digest 1111", "digest 111"},                               /* odd hex */
        {"digest 1111", "digest zz11"},                              /* not hex */
        {"key_sha256 abab", "key_sha256 ABab"},                      /* uppercase */
        {"digest 11111111", "digest "},                              /* digest shorter than alg's */
        {"key_sha256 abab", "key_sha256 ab"},                        /* short fingerprint */
        {"audit_seq 42", "audit_seq -1"},
        {"audit_seq 42", "audit_seq 4x"},
        {"audit_seq 42", "audit_seq 99999999999999999999999"},
        {"sig 000102", "sig 00010"},                                 /* odd hex */
        {"sig ", "sig \nsig "},                                     /* empty signature */
        {"\naudit_batch", "\nbatch"},                                /* field renamed */
        {"\nalg", "\nextra x\nalg"},                                 /* unknown field */
    };
    char buf[HS_SIGCACHE_FILE_MAX + 64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        edited(text, cases[i].from, cases[i].to, buf, sizeof buf);
        assert_int_equal(hs_sigcache_parse(buf, strlen(buf), &back, &e), HS_E_FORMAT);
    }
    /* Truncated anywhere: refused. */
    for (size_t cut = 0; cut < len; cut += 7)
        assert_int_equal(hs_sigcache_parse(text, cut, &back, &e), HS_E_FORMAT);
    /* Trailing garbage and an embedded NUL. */
    snprintf(buf, sizeof buf, "%sx", text);
    assert_int_equal(hs_sigcache_parse(buf, strlen(buf), &back, &e), HS_E_FORMAT);
    memcpy(buf, text, len);
    buf[len / 2] = '\0';
    assert_int_equal(hs_sigcache_parse(buf, len, &back, &e), HS_E_FORMAT);
    free(text);
}

static void test_store_lookup_drop(void **state)
{
    (void)state;
    char sub[128];
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    hs_sigcache *c;
    hs_error e = {0};
    assert_int_equal(hs_sigcache_open(sub, &c, &e), HS_OK);
    struct stat st;
    assert_int_equal(stat(sub, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    hs_sigcache_entry en, got;
    sample(&en);
    bool found = true;
    assert_int_equal(hs_sigcache_lookup(c, en.key_sha256, en.alg, en.digest, 32, &got, &found, &e),
                     HS_OK);
    assert_false(found);
    assert_int_equal(hs_sigcache_store(c, &en, &e), HS_OK);
    assert_int_equal(hs_sigcache_lookup(c, en.key_sha256, en.alg, en.digest, 32, &got, &found, &e),
                     HS_OK);
    assert_true(found);
    assert_memory_equal(got.sig, en.sig, 256);
    char name[65], path[256];
    hs_sigcache_name(en.key_sha256, en.alg, en.digest, 32, name);
    snprintf(path, sizeof path, "%s/%s", sub, name);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* Other algorithm, other digest: other names, no hit. */
    assert_int_equal(hs_sigcache_lookup(c, en.key_sha256, HS_SIG_RSA_PSS_SHA256, en.digest, 32,
                                        &got, &found, &e), HS_OK);
    assert_false(found);
    /* An entry copied under another request's name is refused. */
    uint8_t other[32];
    memset(other, 0x22, 32);
    char oname[65], opath[256];
    hs_sigcache_name(en.key_sha256, en.alg, other, 32, oname);
    snprintf(opath, sizeof opath, "%s/%s", sub, oname);
    assert_int_equal(link(path, opath), 0);
    assert_int_equal(hs_sigcache_lookup(c, en.key_sha256, en.alg, other, 32, &got, &found, &e),
                     HS_E_FORMAT);
    assert_non_null(strstr(e.msg, oname));
    /* A symbolic link as an entry is refused, not followed. */
    assert_int_equal(unlink(opath), 0);
    assert_int_equal(symlink(path, opath), 0);
    assert_int_equal(hs_sigcache_lookup(c, en.key_sha256, en.alg, other, 32, &got, &found, &e),
                     HS_E_FORMAT);
    assert_int_equal(hs_sigcache_drop(c, en.key_sha256, en.alg, other, 32, &e), HS_OK);
    size_t n;
    uint64_t bytes;
    assert_int_equal(hs_sigcache_count(c, &n, &bytes, &e), HS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(hs_sigcache_drop(c, en.key_sha256, en.alg, en.digest, 32, &e), HS_OK);
    assert_int_equal(hs_sigcache_lookup(c, en.key_sha256, en.alg, en.digest, 32, &got, &found, &e),
                     HS_OK);
    assert_false(found);
    assert_int_equal(hs_sigcache_store(c, &en, &e), HS_OK);
    assert_int_equal(hs_sigcache_clear(c, &n, &e), HS_OK);
    assert_int_equal(n, 1);
    hs_sigcache_free(c);
}

static void test_hostile_dirs(void **state)
{
    (void)state;
    char p[128], target[128];
    hs_sigcache *c = NULL;
    hs_error e = {0};
    snprintf(p, sizeof p, "%s/open", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(chmod(p, 0777), 0);
    assert_int_equal(hs_sigcache_open(p, &c, &e), HS_E_VERIFY);
    assert_non_null(strstr(e.msg, "writable by group or others"));
    assert_int_equal(chmod(p, 0770), 0);
    assert_int_equal(hs_sigcache_open(p, &c, &e), HS_E_VERIFY);
    snprintf(target, sizeof target, "%s/real", dir);
    assert_int_equal(mkdir(target, 0700), 0);
    snprintf(p, sizeof p, "%s/link", dir);
    assert_int_equal(symlink(target, p), 0);
    assert_int_equal(hs_sigcache_open(p, &c, &e), HS_E_VERIFY);
    assert_non_null(strstr(e.msg, "symbolic link"));
    snprintf(p, sizeof p, "%s/file", dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(hs_sigcache_open(p, &c, &e), HS_E_VERIFY);
    assert_null(c);
    /* Readable by others (signatures are public) but writable only by us. */
    snprintf(p, sizeof p, "%s/readable", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    assert_int_equal(hs_sigcache_open(p, &c, &e), HS_OK);
    hs_sigcache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_store_lookup_drop),
        cmocka_unit_test(test_hostile_dirs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
