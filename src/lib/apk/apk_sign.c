/* hs_apk_sign_file: the order of work follows apksig's ApkSigner so the
 * output is byte-identical to apksigner's:
 *   1. copy the kept entries (re-aligned), 2. add the v1 signature files,
 *   3. build the central directory and EOCD, 4. pad section 1 to 4096,
 *   5. one chunked content digest, 6. sign v2, v3.1 and v3 signed data
 *   (one hs_sign_fn call each), 7. write the signing block, CD and EOCD. */
#include "apk/apk.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "apk/apk_digest.h"
#include "apk/apk_lineage_write.h"
#include "apk/apk_sign_internal.h"
#include "apk/apk_signing_block.h"
#include "apk/apk_v4.h"
#include "apk/axml.h"
#include "jar/jar_sign.h"
#include "zip/zip_check.h"

#define SDK_N 24
#define SDK_P 28
#define SDK_T 33 /* the first with v3.1 */
/* apksig's V3SchemeConstants: rotation aimed at the development release
 * (U, 34) is written as the production release's SDK (T) plus the
 * dev-release attribute, since U reported 33 while in development. */
#define SDK_DEV_RELEASE 34
#define SDK_PROD_RELEASE 33
#define HASH_STEP (1024u * 1024u)

/* A key with what signing with it needs: v1 and v2 are signed by `v12`,
 * v3 (v3.1 when there is one; v3.0 then by `v12`) and v4 by `v34`; the
 * same key unless the APK is signed with a lineage and its older signer
 * (hs_apk_options.v3_key). */
typedef struct job_signer {
    const hs_apk_key *key;
    hs_apk_sig_algorithm algorithm;
    uint8_t *spki;
    int spki_len;
} job_signer;

/* One signer of a v3 block, as apksig's DefaultApkSignerEngine lays it
 * out (processV3Configs, processV31SignerConfigs). */
typedef struct v3_signer {
    const job_signer *js;
    uint32_t min_sdk, max_sdk;
    bool lineage;                   /* carries the proof-of-rotation attribute */
    uint32_t rotation_min_sdk_attr; /* v3.0 beside a v3.1 block; 0: none */
    bool dev_release;               /* v3.1: rotation targets the dev release */
} v3_signer;

typedef struct sign_job {
    const char *in, *out;
    const hs_apk_key *key;
    job_signer v12, v34;
    v3_signer v30, v31;        /* v31 used when rep.v31 */
    const hs_apk_options *opt;
    hs_sign_fn sign;
    hs_apk_report rep;
    hs_zip zip;
    hs_apk_out out_file;
    hs_atomic_file idsig;      /* v4 file, committed right after the APK */
    bool idsig_open;
    hs_apk_copy_result copied;
    hs_jar_entries added;      /* v1 files, appended after the copied entries */
    hs_apk_buf cd, eocd;
    hs_apk_buf block;          /* the signing block, built before it is written */
    bool tail_written;         /* block, CD and EOCD are in the output file */
    EVP_MD_CTX *shared_prefix; /* SHA-256 state after the prefix output and input share */
    bool input_hashed;
    bool hash_tried;           /* hash_input ran (input_hashed: it succeeded) */
    pthread_t hasher;          /* hash_input, started once the copy is planned */
    bool hasher_running;
    atomic_bool stop_hashing;  /* the job failed: the hasher need not finish */
    /* The content digest in progress, for the hasher to help with once it
     * is done; freed only after the hasher is joined. */
    pthread_mutex_t digest_lock;
    hs_apk_digest_job *digest;
    hs_zip_check *check;       /* every entry's data, checked in the input hash's pass */
    hs_error check_err;        /* why the input was refused, when check failed */
} sign_job;

void hs_apk_options_init(hs_apk_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->min_sdk = -1;
    opt->v1 = opt->v2 = opt->v3 = -1;
    opt->alignment_preserved = true;
    opt->rotation_min_sdk = HS_APK_ROTATION_DEFAULT;
}

static hs_result check_key(sign_job *j, job_signer *js, const hs_apk_key *k, hs_error *e)
{
    js->key = k;
    if (k == NULL || k->cert_der == NULL || k->public_key == NULL)
        return hs_fail(e, HS_E_USAGE, "%s: a certificate and public key are required", j->in);
    const uint8_t *p = k->cert_der;
    X509 *cert = d2i_X509(NULL, &p, (long)k->cert_der_len);
    if (cert == NULL || p != k->cert_der + k->cert_der_len) {
        X509_free(cert);
        return hs_fail(e, HS_E_FORMAT, "key %s: the certificate is not one DER X.509 certificate",
                       k->key_name ? k->key_name : "(unnamed)");
    }
    EVP_PKEY *cert_key = X509_get0_pubkey(cert);
    bool same = cert_key != NULL && EVP_PKEY_eq(cert_key, k->public_key) == 1;
    X509_free(cert);
    if (!same)
        return hs_fail(e, HS_E_USAGE, "key %s: the certificate does not match the public key",
                       k->key_name ? k->key_name : "(unnamed)");
    hs_result r = hs_apk_choose_algorithm(k->public_key, j->in, &js->algorithm, e);
    if (r != HS_OK)
        return r;
    js->spki_len = i2d_PUBKEY(k->public_key, &js->spki);
    if (js->spki_len <= 0)
        return hs_fail(e, HS_E_CRYPTO, "key %s: cannot encode the public key", k->key_name);
    return HS_OK;
}

/* One content digest serves every scheme: with two signers their
 * algorithms must digest alike (apksig would compute two; not needed for
 * keys of one family and size class). */
static hs_result check_keys(sign_job *j, hs_error *e)
{
    hs_result r = check_key(j, &j->v12, j->key, e);
    if (r != HS_OK || j->opt->v3_key == NULL) {
        j->v34 = j->v12; /* shares v12's spki */
        return r;
    }
    if (j->opt->lineage == NULL)
        return hs_fail(e, HS_E_USAGE, "%s: a second signer needs a lineage", j->in);
    r = check_key(j, &j->v34, j->opt->v3_key, e);
    if (r == HS_OK && j->v12.algorithm.content_md != j->v34.algorithm.content_md)
        r = hs_fail(e, HS_E_USAGE,
                    "keys %s and %s: their APK signature algorithms use different content "
                    "digests (SHA-256 and SHA-512); rotate between keys of one size class",
                    j->key->key_name, j->opt->v3_key->key_name);
    return r;
}

static hs_result choose_schemes(sign_job *j, hs_error *e)
{
    const hs_apk_options *opt = j->opt;
    if (opt->min_sdk >= 0) {
        j->rep.min_sdk = opt->min_sdk;
    } else {
        hs_result r = hs_axml_apk_min_sdk(&j->zip, &j->rep.min_sdk, e);
        if (r != HS_OK)
            return hs_error_prefix(e, "give min_sdk explicitly or fix the APK: ");
    }
    j->rep.v1 = opt->v1 < 0 ? j->rep.min_sdk < SDK_N : opt->v1 != 0;
    j->rep.v2 = opt->v2 < 0 ? true : opt->v2 != 0;
    j->rep.v3 = opt->v3 < 0 ? true : opt->v3 != 0;
    j->rep.v4 = opt->v4;
    if (!j->rep.v1 && !j->rep.v2 && !j->rep.v3)
        return hs_fail(e, HS_E_USAGE, "%s: every signature scheme is disabled", j->in);
    if (j->rep.v4 && !j->rep.v2 && !j->rep.v3)
        return hs_fail(e, HS_E_USAGE, "%s: v4 signing needs v2 or v3", j->in);
    if (opt->lineage != NULL && !j->rep.v3)
        return hs_fail(e, HS_E_USAGE, "%s: a signing certificate lineage needs v3 signing",
                       j->in);
    /* apksig: v1 and v2 are signed by the lineage's first signer only. */
    if ((j->rep.v1 || j->rep.v2) && opt->lineage != NULL &&
        !hs_lineage_nodes_start_with(opt->lineage, opt->lineage_len, j->key->cert_der,
                                     j->key->cert_der_len))
        return hs_fail(e, HS_E_USAGE,
                       "%s: v1 and v2 signing need the lineage's first (oldest) signer: give its "
                       "key (sign apk --old-key), or disable v1 and v2", j->in);
    return HS_OK;
}

/* Who signs v3.0 and v3.1 for which platforms. apksig 33+ turns the
 * newest signer into a config targeted at the rotation min SDK (28 below
 * 33), covers the platforms below it with the older signer in v3.0 unless
 * the newest alone covers every platform from max(28, minSdk), and moves a
 * newest signer targeting 33+ into the v3.1 block. */
static hs_result plan_v3(sign_job *j, hs_error *e)
{
    const hs_apk_options *opt = j->opt;
    j->v30 = (v3_signer){.js = &j->v34, .min_sdk = j->v34.algorithm.min_sdk,
                         .max_sdk = HS_APK_V3_MAX_SDK, .lineage = opt->lineage != NULL};
    if (!j->rep.v3 || opt->lineage == NULL || opt->rotation_min_sdk == HS_APK_ROTATION_APKSIGNER31)
        return HS_OK;
    if (opt->rotation_min_sdk < 0)
        return hs_fail(e, HS_E_USAGE, "%s: the rotation min SDK must be an API level", j->in);
    int target = opt->rotation_min_sdk < SDK_T ? SDK_P : opt->rotation_min_sdk;
    bool dev = opt->rotation_targets_dev_release;
    if (dev && target < SDK_T)
        return hs_fail(e, HS_E_USAGE, "%s: rotation can target a development release only from "
                       "SDK %d (rotation min SDK %d)", j->in, SDK_T, opt->rotation_min_sdk);
    int needed = j->rep.min_sdk > SDK_P ? j->rep.min_sdk : SDK_P;
    bool older = opt->v3_key != NULL;
    if (!older && target > needed)
        return hs_fail(e, HS_E_USAGE,
                       "%s: rotating from SDK %d leaves SDK %d to %d without a v3 signer: give "
                       "the older signer (sign apk --old-key), or a rotation min SDK below %d",
                       j->in, target, needed, target - 1, SDK_T);
    if (target == SDK_DEV_RELEASE) {
        target = SDK_PROD_RELEASE;
        dev = true;
    }
    j->v30.min_sdk = (uint32_t)target;
    if (!older || (dev ? target < needed : target <= needed))
        return HS_OK; /* the newest signer covers every platform with v3 */
    j->v31 = j->v30;
    j->v31.dev_release = dev;
    /* A dev-release v3.1 signer leaves its SDK (the production release)
     * to v3.0 too. */
    j->v30 = (v3_signer){.js = &j->v12, .min_sdk = j->v12.algorithm.min_sdk,
                         .max_sdk = (uint32_t)(dev ? target : target - 1),
                         .rotation_min_sdk_attr = (uint32_t)target};
    j->rep.v31 = true;
    return HS_OK;
}

/* The CD in the input's order without the dropped entries, each record
 * pointing at its new local header, then the v1 files' records. */
static hs_result build_cd_and_eocd(sign_job *j, hs_error *e)
{
    const hs_zip *z = &j->zip;
    uint64_t count = 0;
    for (size_t i = 0; i < z->entry_count; i++) {
        uint64_t off = j->copied.new_lfh_offset[i];
        if (off == HS_APK_DROPPED)
            continue;
        if (off > UINT32_MAX)
            return hs_fail(e, HS_E_FORMAT, "%s: output would need zip64", j->out);
        const hs_zip_entry *ent = &z->entries[i];
        size_t at = j->cd.len;
        hs_apk_buf_append(&j->cd, z->map + ent->cd_offset, ent->cd_record_len);
        if (!j->cd.failed)
            hs_put_le32(j->cd.data + at + 42, (uint32_t)off);
        count++;
    }
    hs_apk_buf_append(&j->cd, j->added.cd.data, j->added.cd.len);
    count += j->added.count;
    uint64_t cd_offset = j->out_file.pos;
    if (count > 0xfffe || j->cd.len > UINT32_MAX - 1 || cd_offset > UINT32_MAX)
        return hs_fail(e, HS_E_FORMAT, "%s: output would need zip64", j->out);
    hs_apk_buf_append(&j->eocd, z->map + z->eocd_offset, z->size - z->eocd_offset);
    hs_result r = hs_apk_buf_check(&j->cd, j->out, e);
    if (r == HS_OK)
        r = hs_apk_buf_check(&j->eocd, j->out, e);
    if (r != HS_OK)
        return r;
    hs_put_le16(j->eocd.data + 8, (uint16_t)count);
    hs_put_le16(j->eocd.data + 10, (uint16_t)count);
    hs_put_le32(j->eocd.data + 12, (uint32_t)j->cd.len);
    hs_put_le32(j->eocd.data + 16, (uint32_t)cd_offset);
    return HS_OK;
}

static hs_result sign_signed_data(sign_job *j, const job_signer *js, const char *operation,
                                  const hs_apk_buf *tbs, uint8_t **sig, size_t *sig_len,
                                  hs_error *e)
{
    uint8_t digest[HS_MAX_DIGEST_LEN];
    hs_sign_request req = {.key_name = js->key->key_name, .alg = js->algorithm.alg,
                           .operation = operation,
                           .artifact = j->opt->artifact ? j->opt->artifact : j->in,
                           .artifact_sha256 = j->rep.input_sha256,
                           .defer_durability = j->sign.sync != NULL};
    hs_result r = hs_sign_request_hash(&req, digest, tbs->data, tbs->len, e);
    if (r != HS_OK)
        return r;
    r = j->sign.sign(j->sign.ctx, &req, sig, sig_len, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "%s: %s signature: ", j->in, operation);
    j->rep.signatures++;
    return HS_OK;
}

/* v2 (v3s NULL: the v1/v2 signer) or one v3 block's signer. */
static hs_result build_scheme(sign_job *j, const v3_signer *v3s, const char *operation,
                              hs_apk_buf *value, hs_error *e)
{
    hs_apk_scheme scheme = v3s != NULL ? HS_APK_SCHEME_V3 : HS_APK_SCHEME_V2;
    const job_signer *js = v3s != NULL ? v3s->js : &j->v12;
    hs_apk_signer_input in = {.algorithm = &js->algorithm,
                              .content_digest = j->rep.content_digest,
                              .content_digest_len = j->rep.content_digest_len,
                              .cert_der = js->key->cert_der, .cert_der_len = js->key->cert_der_len,
                              .spki_der = js->spki, .spki_der_len = (size_t)js->spki_len,
                              .v3_also = j->rep.v3};
    if (v3s != NULL) {
        in.min_sdk = v3s->min_sdk;
        in.max_sdk = v3s->max_sdk;
        in.lineage = v3s->lineage ? j->opt->lineage : NULL;
        in.lineage_len = v3s->lineage ? j->opt->lineage_len : 0;
        in.rotation_min_sdk_attr = v3s->rotation_min_sdk_attr;
        in.dev_release_attr = v3s->dev_release;
    }
    hs_apk_buf signed_data = {0};
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    hs_result r = hs_apk_build_signed_data(scheme, &in, &signed_data, e);
    if (r == HS_OK)
        r = sign_signed_data(j, js, operation, &signed_data, &sig, &sig_len, e);
    if (r == HS_OK)
        r = hs_apk_build_scheme_value(scheme, &in, &signed_data, sig, sig_len, value, e);
    free(sig);
    hs_apk_buf_free(&signed_data);
    return r;
}

/* Read with pread rather than through the map: in a VM a page fault
 * costs more than copying the page from the page cache, and nothing stays
 * resident. Each piece read also goes to the entry data check (zip_check.h)
 * while it is in the cache. */
static bool hash_file_range(EVP_MD_CTX *ctx, sign_job *j, uint8_t *buf, uint64_t from,
                            uint64_t to)
{
    for (uint64_t off = from; off < to;) {
        if (atomic_load_explicit(&j->stop_hashing, memory_order_relaxed))
            return false;
        size_t want = to - off < HASH_STEP ? (size_t)(to - off) : HASH_STEP;
        ssize_t n = pread(j->zip.fd, buf, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || !EVP_DigestUpdate(ctx, buf, (size_t)n) ||
            !hs_zip_check_feed(j->check, off, buf, (size_t)n))
            return false;
        off += (uint64_t)n;
    }
    return true;
}

/* The input's SHA-256 (the audit log names the artifact by it), keeping
 * the state at the end of the prefix the output shares with the input:
 * the output's SHA-256 continues from there (apk_out.c). One pass, which
 * also checks every entry's data: nothing is signed over corrupt data. */
static bool hash_input(void *arg)
{
    sign_job *j = arg;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t *buf = malloc(HASH_STEP);
    j->shared_prefix = EVP_MD_CTX_new();
    uint64_t shared = j->out_file.shared_end;
    bool ok = ctx != NULL && buf != NULL && j->shared_prefix != NULL &&
              hs_zip_check_new(&j->zip, &j->check, &j->check_err) == HS_OK &&
              EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
              hash_file_range(ctx, j, buf, 0, shared) &&
              EVP_MD_CTX_copy_ex(j->shared_prefix, ctx) &&
              hash_file_range(ctx, j, buf, shared, j->zip.size) &&
              EVP_DigestFinal_ex(ctx, j->rep.input_sha256, NULL);
    if (j->check != NULL && hs_zip_check_end(j->check, &j->check_err) != HS_OK)
        ok = false;
    EVP_MD_CTX_free(ctx);
    free(buf);
    j->input_hashed = ok;
    j->hash_tried = true;
    return ok;
}

/* Once the input is hashed, this thread hashes content digest chunks
 * beside the main thread, if the digest has started by then: on two CPUs
 * the two threads share all the work, with no third one to take turns
 * with (hs_apk_digest_workers). */
static void *hash_thread(void *arg)
{
    sign_job *j = arg;
    if (!hash_input(j))
        return NULL;
    pthread_mutex_lock(&j->digest_lock);
    hs_apk_digest_job *digest = j->digest;
    pthread_mutex_unlock(&j->digest_lock);
    if (digest != NULL)
        hs_apk_digest_work(digest);
    return NULL;
}

/* The input's hash is one sequential pass over the whole file, the
 * longest single piece of work: it starts as soon as the shared prefix is
 * known (the entries' copy is planned, not yet done) and runs beside the
 * kernel's copy and the content digest. Without a thread it runs later,
 * beside the content digest or on its own (hash_input_now). */
static void start_hashing(sign_job *j)
{
    j->hasher_running = pthread_create(&j->hasher, NULL, hash_thread, j) == 0;
}

static void join_hashing(sign_job *j)
{
    if (j->hasher_running)
        pthread_join(j->hasher, NULL);
    j->hasher_running = false;
}

static hs_result hash_input_failed(void *arg, hs_error *e)
{
    const sign_job *j = arg;
    if (j->check_err.code != HS_OK)
        return hs_fail(e, j->check_err.code, "%s; nothing was signed", j->check_err.msg);
    return hs_fail(e, HS_E_CRYPTO, "%s: hashing the input failed", j->in);
}

static hs_result hash_input_now(sign_job *j, hs_error *e)
{
    join_hashing(j);
    if (j->hash_tried)
        return j->input_hashed ? HS_OK : hash_input_failed(j, e);
    return hash_input(j) ? HS_OK : hash_input_failed(j, e);
}

static void publish_digest(sign_job *j, hs_apk_digest_job *digest)
{
    pthread_mutex_lock(&j->digest_lock);
    j->digest = digest;
    pthread_mutex_unlock(&j->digest_lock);
}

/* Step 5 while section 1 is still being written: the chunks of the prefix
 * the output shares with the input are read from the input, so they are
 * hashed while the kernel copies them; the rest of section 1 waits until
 * it is in the file. Meanwhile the hasher thread hashes the input and then
 * joins in; its thread is joined before the job is freed. */
static hs_result content_digest(sign_job *j, uint64_t pad, const hs_apk_section *sections,
                                hs_error *e)
{
    hs_apk_digest_job *digest = NULL;
    hs_result r = hs_apk_digest_start(j->v12.algorithm.content_md, sections, 3,
                                      hs_apk_digest_workers(j->hasher_running ? 1 : 0), j->out,
                                      &digest, e);
    if (r != HS_OK)
        return r;
    publish_digest(j, digest);
    r = hs_apk_out_zeros(&j->out_file, (size_t)pad, e);
    if (r == HS_OK)
        r = hs_apk_out_flush(&j->out_file, e);
    if (r == HS_OK) {
        hs_apk_out_start_sync(&j->out_file);
        hs_apk_digest_open(digest);
        /* Without a hasher thread this one hashes the input while the
         * workers hash chunks (on one CPU, before it hashes them all). */
        if (!j->hasher_running && !j->hash_tried)
            (void)hash_input(j);
        hs_apk_digest_work(digest);
    } else {
        /* The hasher may wait for the rest of section 1 in the digest: it
         * never comes. Nor is the input's hash needed any more. */
        atomic_store(&j->stop_hashing, true);
        hs_apk_digest_cancel(digest);
    }
    join_hashing(j);
    publish_digest(j, NULL);
    hs_error cancelled;
    hs_result dr = hs_apk_digest_finish(digest, j->rep.content_digest,
                                        &j->rep.content_digest_len, r == HS_OK ? e : &cancelled);
    return r != HS_OK ? r : dr;
}

/* Steps 4 to 6. The block stays in memory until the signatures in it are
 * on record (commit_outputs). */
static hs_result build_signing_block(sign_job *j, hs_error *e)
{
    uint64_t pad = (HS_APK_BLOCK_ALIGNMENT - j->out_file.pos % HS_APK_BLOCK_ALIGNMENT) %
                   HS_APK_BLOCK_ALIGNMENT;
    uint64_t block_start = j->out_file.pos + pad;
    if (block_start > UINT32_MAX)
        return hs_fail(e, HS_E_FORMAT, "%s: output would need zip64", j->out);
    /* Section 4 is hashed with its CD offset pointing at the block start. */
    uint8_t *eocd_for_digest = malloc(j->eocd.len);
    if (eocd_for_digest == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", j->out);
    memcpy(eocd_for_digest, j->eocd.data, j->eocd.len);
    hs_put_le32(eocd_for_digest + 16, (uint32_t)block_start);
    hs_apk_section sections[3] = {
        {.fd = j->out_file.af.fd, .offset = 0, .len = block_start, .prefix_fd = j->zip.fd,
         .prefix_len = j->out_file.shared_end},
        {.len = j->cd.len, .mem = j->cd.data},
        {.len = j->eocd.len, .mem = eocd_for_digest},
    };
    hs_result r = content_digest(j, pad, sections, e);
    free(eocd_for_digest);
    /* Every signature's request names the input's hash. */
    if (r == HS_OK)
        r = hash_input_now(j, e);
    /* apksig's order: v2, v3.1, v3.0. */
    hs_apk_buf v2 = {0}, v31 = {0}, v3 = {0};
    hs_apk_block_pair pairs[3];
    size_t n = 0;
    if (r == HS_OK && j->rep.v2 && (r = build_scheme(j, NULL, "apk-v2", &v2, e)) == HS_OK)
        pairs[n++] = (hs_apk_block_pair){HS_APK_BLOCK_ID_V2, v2.data, v2.len};
    if (r == HS_OK && j->rep.v31 && (r = build_scheme(j, &j->v31, "apk-v31", &v31, e)) == HS_OK)
        pairs[n++] = (hs_apk_block_pair){HS_APK_BLOCK_ID_V31, v31.data, v31.len};
    if (r == HS_OK && j->rep.v3 && (r = build_scheme(j, &j->v30, "apk-v3", &v3, e)) == HS_OK)
        pairs[n++] = (hs_apk_block_pair){HS_APK_BLOCK_ID_V3, v3.data, v3.len};
    if (r == HS_OK)
        r = hs_apk_build_signing_block(pairs, n, &j->block, e);
    if (r == HS_OK && block_start + j->block.len > UINT32_MAX)
        r = hs_fail(e, HS_E_FORMAT, "%s: output would need zip64", j->out);
    if (r == HS_OK)
        hs_put_le32(j->eocd.data + 16, (uint32_t)(block_start + j->block.len));
    hs_apk_buf_free(&v2);
    hs_apk_buf_free(&v31);
    hs_apk_buf_free(&v3);
    return r;
}

/* The signer may return signatures whose audit entries are not yet
 * fsynced (group commit: one fsync for v2, v3 and the output's entry);
 * they are made durable before any of their bytes is written to a file. */
static hs_result make_durable(sign_job *j, hs_error *e)
{
    return j->sign.sync != NULL ? j->sign.sync(j->sign.ctx, e) : HS_OK;
}

/* Step 7: signing block, CD and EOCD after section 1. */
static hs_result write_tail(sign_job *j, hs_error *e)
{
    hs_result r = make_durable(j, e);
    if (r == HS_OK)
        r = hs_apk_out_write(&j->out_file, j->block.data, j->block.len, e);
    if (r == HS_OK)
        r = hs_apk_out_write(&j->out_file, j->cd.data, j->cd.len, e);
    if (r == HS_OK)
        r = hs_apk_out_write(&j->out_file, j->eocd.data, j->eocd.len, e);
    j->tail_written = r == HS_OK;
    return r;
}

/* The v4 signature of v4's content by js: its signing_info into info, or
 * (file != NULL) the whole .idsig with v31_info appended. */
static hs_result sign_v4(sign_job *j, hs_apk_v4 *v4, const job_signer *js, const char *operation,
                         const hs_apk_buf *v31_info, hs_apk_buf *info, hs_apk_buf *file,
                         hs_error *e)
{
    v4->cert_der = js->key->cert_der;
    v4->cert_der_len = js->key->cert_der_len;
    v4->spki_der = js->spki;
    v4->spki_der_len = (size_t)js->spki_len;
    hs_apk_buf tbs = {0};
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    hs_result r = hs_apk_v4_signed_data(v4, &tbs, e);
    if (r == HS_OK)
        r = sign_signed_data(j, js, operation, &tbs, &sig, &sig_len, e);
    if (r == HS_OK && file == NULL)
        r = hs_apk_v4_signing_info(v4, js->algorithm.id, sig, sig_len, info, e);
    if (r == HS_OK && file != NULL)
        r = hs_apk_v4_file(v4, js->algorithm.id, sig, sig_len, v31_info, file, e);
    free(sig);
    hs_apk_buf_free(&tbs);
    return r;
}

/* v4: hash tree over the finished APK (still the temporary file), one
 * signature by the v3.0 signer (and, beside a v3.1 block, one by the
 * v3.1 signer, as apksig's V4SchemeSigner adds), the .idsig written
 * beside the output's temporary file. */
static hs_result write_v4(sign_job *j, hs_error *e)
{
    hs_apk_v4 v4 = {.apk_digest = j->rep.content_digest,
                    .apk_digest_len = j->rep.content_digest_len};
    hs_apk_buf v31_info = {0}, file = {0};
    size_t path_len = strlen(j->out) + sizeof ".idsig";
    char *path = malloc(path_len);
    hs_result r = path ? hs_apk_out_flush(&j->out_file, e)
                       : hs_fail(e, HS_E_NOMEM, "%s: out of memory", j->out);
    if (r == HS_OK) {
        snprintf(path, path_len, "%s.idsig", j->out);
        r = hs_apk_v4_tree(&v4, j->out_file.af.fd, j->out_file.pos, j->out, e);
    }
    if (r == HS_OK && j->rep.v31)
        r = sign_v4(j, &v4, j->v31.js, "apk-v4-v31", NULL, &v31_info, NULL, e);
    if (r == HS_OK)
        r = sign_v4(j, &v4, j->v30.js, "apk-v4", j->rep.v31 ? &v31_info : NULL, NULL, &file, e);
    if (r == HS_OK)
        r = make_durable(j, e);
    if (r == HS_OK && (r = hs_atomic_open(&j->idsig, path, 0644, e)) == HS_OK) {
        j->idsig_open = true;
        r = hs_atomic_write_all(&j->idsig, file.data, file.len, e);
    }
    free(path);
    hs_apk_buf_free(&v31_info);
    hs_apk_buf_free(&file);
    hs_apk_v4_free(&v4);
    return r;
}

struct hs_apk_pending {
    hs_apk_out out_file;
    hs_apk_buf block, cd, eocd;
    bool written;
};

/* Hands the unpublished output and its tail to the caller (opt->defer):
 * the job's cleanup then finds nothing of them to remove or free. */
static hs_result defer_outputs(sign_job *j, hs_error *e)
{
    hs_apk_pending *p = calloc(1, sizeof *p);
    if (p == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", j->out);
    p->out_file = j->out_file;
    p->block = j->block;
    p->cd = j->cd;
    p->eocd = j->eocd;
    /* The write buffer is empty after hs_apk_out_finish: give it back now,
     * a group holds many pending outputs. */
    free(p->out_file.buf);
    p->out_file.buf = NULL;
    memset(&j->out_file, 0, sizeof j->out_file);
    memset(&j->block, 0, sizeof j->block);
    memset(&j->cd, 0, sizeof j->cd);
    memset(&j->eocd, 0, sizeof j->eocd);
    *j->opt->defer = p;
    return HS_OK;
}

hs_result hs_apk_pending_write(hs_apk_pending *p, hs_error *e)
{
    const hs_apk_buf *tail[3] = {&p->block, &p->cd, &p->eocd};
    for (size_t i = 0; i < 3; i++) {
        hs_result r = hs_atomic_write_all(&p->out_file.af, tail[i]->data, tail[i]->len, e);
        if (r != HS_OK)
            return r;
    }
    p->written = true;
    hs_apk_out_start_writeback(&p->out_file);
    return HS_OK;
}

hs_result hs_apk_pending_publish(hs_apk_pending *p, hs_error *e)
{
    if (!p->written)
        return hs_fail(e, HS_E_INTERNAL, "%s: published before its tail was written",
                       p->out_file.af.path);
    /* out_file stays open: hs_atomic_abort after a commit only frees the
     * path, which the caller reads for the directory to fsync. */
    return hs_atomic_commit_no_dir_sync(&p->out_file.af, e);
}

const char *hs_apk_pending_path(const hs_apk_pending *p)
{
    return p->out_file.af.path;
}

size_t hs_apk_pending_size(const hs_apk_pending *p)
{
    return sizeof *p + p->block.cap + p->cd.cap + p->eocd.cap;
}

void hs_apk_pending_free(hs_apk_pending *p)
{
    if (p == NULL)
        return;
    hs_apk_out_abort(&p->out_file);
    hs_apk_buf_free(&p->block);
    hs_apk_buf_free(&p->cd);
    hs_apk_buf_free(&p->eocd);
    free(p);
}

/* The output's SHA-256 is taken before the tail is written (it is in
 * memory), so that before_commit's audit entry for the output, fsynced,
 * also makes the v2/v3 entries durable: one fsync per APK. Then the tail,
 * then the APK, then its .idsig; if the second rename fails the APK is
 * removed again so the pair is all-or-nothing. */
static hs_result commit_outputs(sign_job *j, hs_error *e)
{
    hs_apk_buf none = {0};
    const hs_apk_buf *tail[3] = {&j->block, &j->cd, &j->eocd};
    if (j->tail_written)
        tail[0] = tail[1] = tail[2] = &none;
    /* Section 1 durable before the output's audit entry: its fsync then
     * waits for no output data, and a deferred output moves (o is copied). */
    hs_result r = hs_apk_out_end_sync(&j->out_file, e);
    if (r == HS_OK)
        r = hs_apk_out_finish(&j->out_file, j->shared_prefix, tail, 3,
                                    j->rep.output_sha256, e);
    if (r == HS_OK && j->opt->before_commit != NULL)
        r = j->opt->before_commit(j->opt->before_commit_ctx, j->out, &j->rep, e);
    if (r == HS_OK && j->opt->defer != NULL && !j->tail_written && !j->idsig_open)
        return defer_outputs(j, e);
    if (r == HS_OK && !j->tail_written)
        r = write_tail(j, e);
    if (r == HS_OK)
        r = hs_apk_out_commit(&j->out_file, e);
    if (r != HS_OK || !j->idsig_open)
        return r;
    r = hs_atomic_commit(&j->idsig, false, e);
    if (r != HS_OK)
        unlink(j->out);
    return r;
}

/* With pin hints, apksigner 31 adds pinlist.meta after the v1 files (not
 * listed in MANIFEST.MF; newer apksig adds it before them and lists it);
 * its last range runs from its own header to the end of the file. */
static hs_result add_pin_list(sign_job *j, hs_error *e)
{
    hs_apk_pin_range(&j->copied.pin_ranges, j->out_file.pos, UINT64_MAX);
    hs_result r = hs_apk_buf_check(&j->copied.pin_ranges, j->in, e);
    if (r == HS_OK)
        r = hs_jar_write_new_entry(j->in, HS_APK_PIN_LIST_ENTRY, &j->copied.pin_ranges,
                                   j->copied.newest_time, j->copied.newest_date, &j->out_file,
                                   &j->added, e);
    return r;
}

static hs_result run(sign_job *j, hs_error *e)
{
    hs_result r = hs_zip_open_resign(&j->zip, j->in, e);
    /* The input's hash is the longest sequential piece of work: it starts
     * as soon as the copy is planned (it needs the shared prefix), and the
     * keys and schemes are checked while it runs. */
    if (r == HS_OK)
        r = hs_apk_out_open(&j->out_file, j->out, e);
    if (r == HS_OK)
        r = hs_apk_copy_entries(&j->zip, j->opt->alignment_preserved, &j->out_file, &j->copied, e);
    if (r == HS_OK)
        start_hashing(j);
    if (r == HS_OK)
        r = check_keys(j, e);
    if (r == HS_OK)
        r = choose_schemes(j, e);
    if (r == HS_OK)
        r = plan_v3(j, e);
    /* v1 signs before the content digest, and every signature names the
     * input's hash: wait for it now. Otherwise it is hashed alongside the
     * content digest (build_signing_block). */
    if (r == HS_OK && j->rep.v1)
        r = hash_input_now(j, e);
    if (r == HS_OK && j->rep.v1) {
        hs_jar_sign_params p = {.zip = &j->zip, .kept_lfh_offset = j->copied.new_lfh_offset,
                                .min_sdk = j->rep.min_sdk, .v2 = j->rep.v2, .v3 = j->rep.v3,
                                .key = j->key, .sign = j->sign,
                                .artifact = j->opt->artifact ? j->opt->artifact : j->in,
                                .artifact_sha256 = j->rep.input_sha256,
                                .mod_time = j->copied.newest_time,
                                .mod_date = j->copied.newest_date};
        r = hs_jar_sign_append(&p, &j->out_file, &j->added, e);
        if (r == HS_OK)
            j->rep.signatures++;
    }
    if (r == HS_OK && j->copied.pins)
        r = add_pin_list(j, e);
    if (r == HS_OK)
        r = build_cd_and_eocd(j, e);
    if (r == HS_OK && (j->rep.v2 || j->rep.v3))
        r = build_signing_block(j, e);
    if (r == HS_OK)
        r = hash_input_now(j, e);
    /* v4's hash tree covers the finished APK: the tail goes first. */
    if (r == HS_OK && j->rep.v4)
        r = write_tail(j, e);
    if (r == HS_OK && j->rep.v4)
        r = write_v4(j, e);
    if (r == HS_OK)
        r = commit_outputs(j, e);
    j->rep.algorithm_id = j->v34.algorithm.id;
    return r;
}

hs_result hs_apk_sign_file(const char *in, const char *out, const hs_apk_key *key,
                           const hs_apk_options *opt, hs_sign_fn sign, hs_apk_report *rep,
                           hs_error *e)
{
    if (in == NULL || out == NULL || opt == NULL || sign.sign == NULL)
        return hs_fail(e, HS_E_USAGE, "APK signing: input, output, options and signer are required");
    if (strcmp(in, out) == 0 || hs_same_file(in, out))
        return hs_fail(e, HS_E_USAGE, "%s: the output must be a different file than the input", out);
    sign_job j = {.in = in, .out = out, .key = key, .opt = opt, .sign = sign,
                  .digest_lock = PTHREAD_MUTEX_INITIALIZER};
    hs_result r = run(&j, e);
    if (r != HS_OK) /* an early failure may leave it running */
        atomic_store(&j.stop_hashing, true);
    join_hashing(&j);
    hs_apk_out_abort(&j.out_file);
    if (j.idsig_open)
        hs_atomic_abort(&j.idsig);
    hs_zip_close(&j.zip);
    hs_jar_entries_free(&j.added);
    hs_apk_buf_free(&j.cd);
    hs_apk_buf_free(&j.eocd);
    hs_apk_buf_free(&j.block);
    free(j.copied.new_lfh_offset);
    hs_apk_buf_free(&j.copied.pin_ranges);
    OPENSSL_free(j.v12.spki);
    if (j.v34.spki != j.v12.spki)
        OPENSSL_free(j.v34.spki);
    EVP_MD_CTX_free(j.shared_prefix);
    hs_zip_check_free(j.check);
    if (rep != NULL)
        *rep = j.rep;
    return r;
}
