/* sign apk / sign batch through the artifact cache (see cli_artcache.h). */
#include "cli_artcache.h"

#include <openssl/sha.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/encoding.h"

hs_result cli_artcache_open(const cli_ctx *ctx, cli_artcache *ac, hs_error *e)
{
    memset(ac, 0, sizeof *ac);
    hs_result r = cli_open_artcache(ctx->g, &ac->c, e);
    if (r == HS_OK && ac->c != NULL && (ctx->p11 == NULL || !hs_signer_has_cache(ctx->signer))) {
        fprintf(stderr, "hsmsign: warning: artifact cache %s not used: it needs the signature "
                        "cache of the process that holds the token (%s)\n",
                hs_artcache_dir(ac->c), ctx->p11 == NULL ? "signing through an agent"
                                                         : "--signature-cache is off");
        hs_artcache_free(ac->c);
        ac->c = NULL;
    }
    return r;
}

void cli_artcache_close(cli_artcache *ac)
{
    hs_artcache_free(ac->c);
    ac->c = NULL;
}

/* --- a miss: sign, recording every request ---------------------------- */

typedef struct recorder {
    hs_sign_fn inner;
    pthread_mutex_t lock;
    hs_artcache_meta m;
    bool overflow;
} recorder;

static hs_result record_sign(void *ctx, const hs_sign_request *req, uint8_t **sig,
                             size_t *sig_len, hs_error *e)
{
    recorder *rec = ctx;
    hs_result r = rec->inner.sign(rec->inner.ctx, req, sig, sig_len, e);
    if (r != HS_OK)
        return r;
    pthread_mutex_lock(&rec->lock);
    if (rec->m.n >= HS_ARTCACHE_SIGS_MAX || req->digest_len > HS_MAX_DIGEST_LEN ||
        strlen(req->operation) >= HS_ARTCACHE_OP_MAX) {
        rec->overflow = true;
    } else {
        hs_artcache_sig *s = &rec->m.sigs[rec->m.n++];
        s->alg = req->alg;
        memcpy(s->operation, req->operation, strlen(req->operation) + 1);
        memcpy(s->digest, req->digest, req->digest_len);
        s->digest_len = req->digest_len;
        memcpy(s->tbs_sha256, req->tbs_sha256, 32);
        SHA256(*sig, *sig_len, s->sig_sha256);
    }
    pthread_mutex_unlock(&rec->lock);
    return HS_OK;
}

static hs_result record_sync(void *ctx, hs_error *e)
{
    recorder *rec = ctx;
    return rec->inner.sync != NULL ? rec->inner.sync(rec->inner.ctx, e) : HS_OK;
}

static hs_result sign_and_store(cli_artcache *ac, hs_signer *s, const hs_apk_key *key,
                                const char *in, const char *out, const hs_apk_options *opt,
                                const char *name, hs_apk_report *rep, hs_error *e)
{
    recorder rec = {.inner = hs_signer_fn(s)};
    pthread_mutex_init(&rec.lock, NULL);
    hs_sign_fn fn = {.sign = record_sign, .ctx = &rec,
                     .sync = rec.inner.sync != NULL ? record_sync : NULL};
    hs_result r = hs_apk_sign_file(in, out, key, opt, fn, rep, e);
    pthread_mutex_destroy(&rec.lock);
    hs_error se;
    hs_error_clear(&se);
    /* A failed store costs the next run a rebuild, not this output. */
    if (r == HS_OK && !rec.overflow && hs_artcache_store(ac->c, name, out, &rec.m, &se) != HS_OK)
        fprintf(stderr, "hsmsign: warning: artifact cache %s: entry for %s not stored: %s\n",
                hs_artcache_dir(ac->c), in, se.msg);
    return r;
}

/* --- a hit: copy, verify, replay ------------------------------------------ */

/* The schemes the verifier checked for the APK's platform range (v1 is
 * not read from Android 7.0 on when v2+ is there, v2 not from 9 when v3
 * is) and the SHA-256 of their signatures. */
static hs_result verify_copy(const char *path, const hs_apk_key *key, int min_sdk, bool ok[3],
                             uint8_t sigs[3][32], hs_error *e)
{
    const hs_apk_verify_options range = {min_sdk, -1};
    hs_apk_verify_report vr;
    hs_result r = hs_apk_verify_file_range(path, &range, &vr, e);
    if (r == HS_OK && (vr.cert_der_len != key->cert_der_len ||
                       memcmp(vr.cert_der, key->cert_der, key->cert_der_len) != 0))
        r = hs_fail(e, HS_E_VERIFY, "signed by another certificate than key '%s''s",
                    key->key_name);
    ok[0] = vr.v1, ok[1] = vr.v2, ok[2] = vr.v3;
    memcpy(sigs[0], vr.v1_sig_sha256, 32);
    memcpy(sigs[1], vr.v2_sig_sha256, 32);
    memcpy(sigs[2], vr.v3_sig_sha256, 32);
    hs_apk_verify_report_free(&vr);
    return r == HS_OK ? r : hs_error_prefix(e, "cached output: ");
}

/* The meta records one signature per scheme; a scheme the verifier checked
 * must have exactly the file's signature. A scheme the range skips is not
 * checked in the file (docs/cache.md): its signature is only verified
 * with the key's public key over the recorded digest, by the replay. */
static bool same_sigs(const bool ok[3], const uint8_t sigs[3][32], const hs_artcache_meta *m)
{
    static const char *const ops[3] = {"jar-sf", "apk-v2", "apk-v3"};
    bool seen[3] = {false, false, false};
    for (size_t i = 0; i < m->n; i++) {
        size_t k = 0;
        while (k < 3 && strcmp(m->sigs[i].operation, ops[k]) != 0)
            k++;
        if (k == 3 || seen[k] || (ok[k] && memcmp(sigs[k], m->sigs[i].sig_sha256, 32) != 0))
            return false;
        seen[k] = true;
    }
    return (!ok[0] || seen[0]) && (!ok[1] || seen[1]) && (!ok[2] || seen[2]);
}

/* Each request again, through the signer with reuse_only: the signature
 * cache's verified, logged reuse, never the HSM. */
static hs_result replay(hs_signer *s, const char *key_name, const char *in,
                        const uint8_t input_sha256[32], const hs_artcache_meta *m, hs_error *e)
{
    hs_result r = HS_OK;
    for (size_t i = 0; r == HS_OK && i < m->n; i++) {
        const hs_artcache_sig *c = &m->sigs[i];
        hs_sign_request req = {.key_name = key_name, .alg = c->alg, .digest = c->digest,
                               .digest_len = c->digest_len, .operation = c->operation,
                               .artifact = in, .artifact_sha256 = input_sha256,
                               .reuse_only = true};
        memcpy(req.tbs_sha256, c->tbs_sha256, 32);
        uint8_t *sig = NULL, sha[32];
        size_t len = 0;
        r = hs_signer_sign(s, &req, &sig, &len, e);
        if (r == HS_OK) {
            SHA256(sig, len, sha);
            if (memcmp(sha, c->sig_sha256, 32) != 0)
                r = hs_fail(e, HS_E_VERIFY, "the signature cache holds another signature of "
                                            "%s's %s", in, c->operation);
        }
        free(sig);
    }
    return r;
}

/* *hit false (and nothing written or logged) when there is no usable
 * entry; why says what was wrong with a bad one. */
static hs_result try_hit(cli_artcache *ac, hs_signer *s, const hs_apk_key *key, const char *in,
                         const char *out, const hs_apk_options *opt, const char *name,
                         const uint8_t input_sha256[32], hs_apk_report *rep, bool *hit,
                         hs_error *why, hs_error *e)
{
    *hit = false;
    hs_atomic_file af = {.fd = -1};
    hs_artcache_meta m;
    uint8_t out_sha[32], sigs[3][32];
    bool ok[3];
    bool found = false;
    hs_result r = hs_atomic_open(&af, out, 0644, e);
    if (r != HS_OK)
        return r;
    /* Problems of the entry go to why: the caller drops it and signs. */
    hs_result bad = hs_artcache_fetch(ac->c, name, &af, &m, out_sha, &found, why);
    if (bad == HS_OK && found)
        bad = verify_copy(af.tmp_path, key, opt->min_sdk, ok, sigs, why);
    if (bad == HS_OK && found && !same_sigs(ok, sigs, &m))
        bad = hs_fail(why, HS_E_VERIFY, "its signatures are not those its meta records");
    if (bad == HS_OK && found)
        bad = replay(s, key->key_name, in, input_sha256, &m, why);
    if (bad != HS_OK || !found) {
        hs_atomic_abort(&af);
        return bad == HS_E_NOMEM ? hs_fail(e, bad, "%s", why->msg) : HS_OK;
    }
    memset(rep, 0, sizeof *rep);
    rep->min_sdk = opt->min_sdk;
    rep->signatures = (unsigned)m.n;
    for (size_t i = 0; i < m.n; i++) {
        rep->v1 |= strcmp(m.sigs[i].operation, "jar-sf") == 0;
        rep->v2 |= strcmp(m.sigs[i].operation, "apk-v2") == 0;
        rep->v3 |= strcmp(m.sigs[i].operation, "apk-v3") == 0;
    }
    memcpy(rep->input_sha256, input_sha256, 32);
    memcpy(rep->output_sha256, out_sha, 32);
    if (opt->before_commit != NULL)
        r = opt->before_commit(opt->before_commit_ctx, out, rep, e);
    if (r == HS_OK)
        r = hs_atomic_commit(&af, false, e);
    hs_atomic_abort(&af);
    *hit = r == HS_OK;
    return r;
}

/* Every option that changes the output, in one canonical line. */
static void options_text(const hs_apk_options *opt, char *buf, size_t cap)
{
    snprintf(buf, cap, "apk min_sdk=%d v1=%d v2=%d v3=%d alignment_preserved=%d", opt->min_sdk,
             opt->v1, opt->v2, opt->v3, opt->alignment_preserved);
}

hs_result cli_artcache_sign_apk(cli_artcache *ac, hs_signer *s, const hs_apk_key *key,
                                const char *in, const char *out, const hs_apk_options *opt,
                                hs_apk_report *rep, hs_error *e)
{
    if (ac == NULL || ac->c == NULL || opt->lineage != NULL || opt->v4)
        return hs_apk_sign_file(in, out, key, opt, hs_signer_fn(s), rep, e);
    const hs_keyfile *kf;
    uint8_t input_sha[32];
    char options[160], name[65];
    options_text(opt, options, sizeof options);
    hs_result r = hs_signer_keyfile(s, key->key_name, &kf, e);
    if (r == HS_OK)
        r = hs_artcache_file_sha256(in, input_sha, e);
    if (r == HS_OK)
        r = hs_artcache_name(input_sha, kf->fingerprint, key->key_name, options, name, e);
    bool hit = false;
    hs_error why;
    hs_error_clear(&why);
    if (r == HS_OK)
        r = try_hit(ac, s, key, in, out, opt, name, input_sha, rep, &hit, &why, e);
    if (r != HS_OK || hit) {
        ac->hits += hit;
        return r;
    }
    if (why.msg[0] != '\0') {
        hs_error ignored;
        fprintf(stderr, "hsmsign: warning: artifact cache %s: dropped entry %s for %s, signing "
                        "instead: %s\n", hs_artcache_dir(ac->c), name, in, why.msg);
        if (hs_artcache_drop(ac->c, name, &ignored) != HS_OK)
            fprintf(stderr, "hsmsign: warning: %s\n", ignored.msg);
    }
    return sign_and_store(ac, s, key, in, out, opt, name, rep, e);
}
