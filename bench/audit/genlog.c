/* bench/audit helper: grows an audit log through the library, in one
 * process, and times what one signing command costs the log at its size.
 *
 *   genlog grow DIR N     append `sign` entries (deferred, as an APK's
 *                         are) until DIR holds N, then sign one checkpoint
 *                         (and make one git commit) for them all
 *   genlog step DIR       what a signing command does to the log: gate,
 *                         append one entry (fsynced), checkpoint; then one
 *                         more entry and a git commit of it alone; prints
 *                         "gate_ms append_ms checkpoint_ms git_ms" (the
 *                         checkpoint includes its own gate, the signature
 *                         and its git commit; git_ms is hs_auditgit_commit
 *                         alone, under the log's lock)
 *
 * The token is SOFTHSM2_CONF's only token, PIN in HSMSIGN_PIN; DIR must be
 * a log made for its audit key (`hsmsign audit init`). Prints nothing
 * else; asserts nothing about the times. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/git.h"
#include "audit/lock.h"
#include "audit/log.h"
#include "audit/record.h"
#include "keystore/auditkey.h"
#include "p11/p11.h"
#include "p11/pin.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int die(const char *what, const hs_error *e)
{
    fprintf(stderr, "genlog: %s: %s\n", what, e->msg);
    return 1;
}

/* A `sign` entry of the size real ones have (about 700 bytes). */
static hs_audit_entry sample(uint8_t digests[4][32], size_t i)
{
    for (size_t d = 0; d < 4; d++)
        for (size_t b = 0; b < 32; b++)
            digests[d][b] = (uint8_t)(i * 31 + d * 7 + b);
    hs_audit_entry en = {.operation = "sign", .purpose = "apk-v2", .key_name = "platform",
                         .key_fingerprint = digests[0], .algorithm = "rsa-pkcs1-sha256",
                         .tbs_sha256 = digests[1], .sig_sha256 = digests[2],
                         .artifact = "out/target/product/generic/system/app/Bench/Bench.apk",
                         .input_sha256 = digests[3]};
    return en;
}

static int grow(hs_audit *a, const char *dir, hs_p11 *p, const hs_auditkey *k, uint64_t n)
{
    hs_error e;
    hs_error_clear(&e);
    uint8_t digests[4][32];
    uint64_t seq = 0;
    hs_audit_entry en = sample(digests, 0);
    if (hs_audit_append_deferred(a, &en, &seq, &e) != HS_OK)
        return die("append", &e);
    for (uint64_t i = seq + 1; i < n; i++) {
        en = sample(digests, (size_t)i);
        if (hs_audit_append_deferred(a, &en, NULL, &e) != HS_OK)
            return die("append", &e);
    }
    hs_checkpoint_result res;
    if (hs_audit_sync(a, &e) != HS_OK || hs_auditlog_checkpoint(dir, p, k, &res, &e) != HS_OK)
        return die("checkpoint", &e);
    return 0;
}

static int step(hs_audit *a, const char *dir, hs_p11 *p, const hs_auditkey *k)
{
    hs_error e;
    hs_error_clear(&e);
    uint8_t digests[4][32];
    hs_audit_entry en = sample(digests, 7);
    double t0 = now_ms();
    if (hs_audit_check(a, &e) != HS_OK)
        return die("gate", &e);
    double t1 = now_ms();
    if (hs_audit_append(a, &en, NULL, &e) != HS_OK)
        return die("append", &e);
    double t2 = now_ms();
    hs_checkpoint_result res;
    if (hs_auditlog_checkpoint(dir, p, k, &res, &e) != HS_OK)
        return die("checkpoint", &e);
    double t3 = now_ms();
    en = sample(digests, 8);
    int lock = -1;
    bool committed = false;
    if (hs_audit_append_deferred(a, &en, NULL, &e) != HS_OK || hs_audit_sync(a, &e) != HS_OK ||
        hs_audit_lock(dir, &lock, &e) != HS_OK)
        return die("append", &e);
    double t4 = now_ms();
    hs_result r = hs_auditgit_commit(dir, "bench: git commit alone", true, &committed, &e);
    double t5 = now_ms();
    hs_audit_unlock(lock);
    if (r != HS_OK)
        return die("git commit", &e);
    printf("%.3f %.3f %.3f %.3f\n", t1 - t0, t2 - t1, t3 - t2, t5 - t4);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[1], "grow") == 0 && argc != 4)) {
        fprintf(stderr, "usage: genlog grow DIR N | genlog step DIR\n");
        return 2;
    }
    const char *dir = argv[2];
    hs_error e;
    hs_error_clear(&e);
    hs_p11 *p = NULL;
    hs_pin_source pin;
    hs_auditkey key;
    memset(&key, 0, sizeof key);
    hs_audit *a = NULL;
    int rc = 1;
    if (hs_pin_source_parse("env:HSMSIGN_PIN", &pin, &e) != HS_OK ||
        hs_p11_open(NULL, &p, &e) != HS_OK || hs_p11_select_token(p, NULL, &e) != HS_OK ||
        hs_p11_login(p, &pin, &e) != HS_OK || hs_auditkey_find(p, &key, &e) != HS_OK) {
        rc = die("token", &e);
        goto out;
    }
    hs_audit_context ctx = {.token_label = "bench", .token_serial = "bench",
                            .batch_id = "bench", .audit_key = &key, .p11 = p};
    if (hs_audit_open(dir, &ctx, &a, &e) != HS_OK) {
        rc = die("open", &e);
        goto out;
    }
    rc = strcmp(argv[1], "grow") == 0 ? grow(a, dir, p, &key, strtoull(argv[3], NULL, 10))
                                       : step(a, dir, p, &key);
out:
    hs_audit_close(a);
    hs_auditkey_clear(&key);
    hs_p11_close(p);
    return rc;
}
