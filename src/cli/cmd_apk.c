/* hsmsign sign apk, sign batch, verify apk: APK Signature Scheme v2/v3
 * (and v1 JAR, v4) through the signer chokepoint. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "apk/apk.h"
#include "apk/apk_lineage_write.h"
#include "cli.h"
#include "cli_artcache.h"
#include "cmd_apk.h"
#include "keystore/cert.h"
#include "util/encoding.h"
#include "signer/manifest.h"
#include "util/file.h"

static bool parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return true;
        }
    }
    return false;
}

hs_result cli_apk_key(hs_signer *s, const char *name, hs_apk_key *key, uint8_t **der,
                      hs_error *e)
{
    const hs_keyfile *kf;
    size_t len;
    hs_result r = hs_signer_keyfile(s, name, &kf, e);
    if (r == HS_OK)
        r = hs_cert_der(kf->cert, der, &len, e);
    if (r != HS_OK)
        return r;
    memset(key, 0, sizeof *key);
    key->key_name = name;
    key->cert_der = *der;
    key->cert_der_len = len;
    key->public_key = kf->pub;
    return HS_OK;
}

json_t *cmd_apk_report_json(const char *in, const char *out, const char *key,
                            const hs_apk_report *rep)
{
    char sha[65];
    hs_hex_encode(rep->output_sha256, 32, sha);
    return json_pack("{s:s, s:s, s:s, s:b, s:i, s:b, s:b, s:b, s:b, s:b, s:i, s:s}", "input", in,
                     "output", out, "key", key, "ok", 1, "min_sdk", rep->min_sdk, "v1", rep->v1,
                     "v2", rep->v2, "v3", rep->v3, "v31", rep->v31, "v4", rep->v4, "signatures",
                     rep->signatures, "output_sha256", sha);
}

typedef struct output_record {
    const apk_via *via;
    const char *key, *in;
} output_record;

/* The audit entry for the finished APK, made before it is renamed into
 * place (hs_apk_options.before_commit); deferred when the output is. */
static hs_result record_output(void *ctx, const char *out, const hs_apk_report *rep, hs_error *e)
{
    (void)out;
    const output_record *o = ctx;
    const apk_via *v = o->via;
    if (v->lock == NULL)
        return hs_signer_record_output(v->signer, "apk", o->key, o->in, rep->input_sha256,
                                       rep->output_sha256, e);
    pthread_mutex_lock(v->lock);
    hs_result r = v->defer != NULL
                      ? hs_signer_record_output_deferred(v->signer, "apk", o->key, o->in,
                                                         rep->input_sha256, rep->output_sha256, e)
                      : hs_signer_record_output(v->signer, "apk", o->key, o->in,
                                                rep->input_sha256, rep->output_sha256, e);
    pthread_mutex_unlock(v->lock);
    return r;
}

static hs_result locked_sign(void *ctx, const hs_sign_request *req, uint8_t **sig,
                             size_t *sig_len, hs_error *e)
{
    const apk_via *v = ctx;
    pthread_mutex_lock(v->lock);
    hs_result r = hs_signer_sign(v->signer, req, sig, sig_len, e);
    pthread_mutex_unlock(v->lock);
    return r;
}

static hs_result locked_sync(void *ctx, hs_error *e)
{
    const apk_via *v = ctx;
    pthread_mutex_lock(v->lock);
    hs_result r = hs_signer_sync(v->signer, e);
    pthread_mutex_unlock(v->lock);
    return r;
}

/* The lineage up to `key`'s certificate (apksig's getSubLineage), encoded
 * for v3's proof-of-rotation attribute; `old` (when given) must be an
 * older certificate of it. Every link was checked when the file was read. */
static hs_result rotation_lineage(const apk_rotation *rot, const hs_apk_key *key,
                                  const hs_apk_key *old, hs_apk_buf *out, hs_error *e)
{
    hs_lineage l;
    hs_result r = hs_lineage_read_file(rot->lineage, &l, e);
    if (r != HS_OK)
        return r;
    long at = hs_lineage_find(&l, key->cert_der, key->cert_der_len);
    long old_at = old ? hs_lineage_find(&l, old->cert_der, old->cert_der_len) : -1;
    if (at < 0)
        r = hs_fail(e, HS_E_USAGE, "%s: key %s's certificate is not in this lineage",
                    rot->lineage, key->key_name);
    else if (old != NULL && (old_at < 0 || old_at >= at))
        r = hs_fail(e, HS_E_USAGE, "%s: key %s's certificate is not older than key %s's in "
                    "this lineage", rot->lineage, old->key_name, key->key_name);
    if (r == HS_OK) {
        size_t all = l.count;
        l.count = (size_t)at + 1;
        r = hs_lineage_encode_nodes(&l, out, e);
        l.count = all;
    }
    hs_lineage_free(&l);
    return r;
}

/* Signs one APK; on failure the message is prefixed with the input. */
hs_result cmd_apk_sign_one(const apk_via *via, cli_artcache *ac, const char *key_name,
                           const apk_rotation *rot, const char *in, const char *out,
                           const hs_apk_options *base, int min_sdk, hs_apk_report *rep,
                           hs_error *e)
{
    hs_signer *s = via->signer;
    hs_apk_key key, old;
    uint8_t *der = NULL, *old_der = NULL;
    hs_apk_buf lineage = {0};
    hs_result r = cli_apk_key(s, key_name, &key, &der, e);
    if (r == HS_OK && rot->old_key != NULL)
        r = cli_apk_key(s, rot->old_key, &old, &old_der, e);
    if (r == HS_OK && rot->lineage != NULL)
        r = rotation_lineage(rot, &key, rot->old_key ? &old : NULL, &lineage, e);
    if (r == HS_OK) {
        hs_apk_options opt = *base;
        if (min_sdk >= 0)
            opt.min_sdk = min_sdk;
        opt.artifact = in;
        output_record rec = {via, key_name, in};
        opt.before_commit = record_output;
        opt.defer = via->defer;
        opt.before_commit_ctx = &rec;
        if (rot->lineage != NULL) {
            opt.lineage = lineage.data;
            opt.lineage_len = lineage.len;
        }
        if (rot->old_key != NULL)
            opt.v3_key = &key;
        if (rot->rotation_min_sdk >= 0)
            opt.rotation_min_sdk = rot->rotation_min_sdk;
        hs_sign_fn fn = hs_signer_fn(s);
        if (via->lock != NULL)
            fn = (hs_sign_fn){locked_sign, (void *)via, locked_sync};
        /* The artifact cache signs and publishes on its own: a batch with it
         * runs on one thread without deferred outputs (cmd_batch.c). */
        r = rot->old_key != NULL || ac == NULL || ac->c == NULL
                ? hs_apk_sign_file(in, out, rot->old_key ? &old : &key, &opt, fn, rep, e)
                : cli_artcache_sign_apk(ac, s, &key, in, out, &opt, rep, e);
    }
    free(der);
    free(old_der);
    hs_apk_buf_free(&lineage);
    if (r != HS_OK && strstr(e->msg, in) == NULL)
        hs_error_prefix(e, "%s: ", in);
    return r;
}

static const char apk_help[] =
    "usage: hsmsign sign apk --key NAME [options] IN OUT\n"
    "       hsmsign sign apk --key NAME --out-dir DIR [options] IN...\n"
    "\n"
    "Signs APKs with APK Signature Scheme v2 and v3 (and v1 JAR signing when\n"
    "minSdk < 24 or when asked), byte-identical to apksigner with the same key\n"
    "and schemes. Each APK costs one pass over its bytes and one HSM operation\n"
    "per scheme; one login and one unwrap per key per run.\n"
    "\n"
    "Options:\n"
    "  --min-sdk N               instead of minSdkVersion from AndroidManifest.xml\n"
    "  --v1-signing BOOL         JAR signing (default: only when minSdk < 24)\n"
    "  --v2-signing BOOL         APK Signature Scheme v2 (default true)\n"
    "  --v3-signing BOOL         APK Signature Scheme v3 (default true)\n"
    "  --v4-signing BOOL         also write OUT.idsig (default false)\n"
    "  --alignment-preserved BOOL  keep entries' alignment as apksigner 31 does\n"
    "                            (default true); false aligns every stored entry\n"
    "  --out-dir DIR             sign many inputs; each output is DIR/<input name>\n"
    "  --lineage FILE            key rotation: v3 carries this signing certificate\n"
    "                            lineage (`hsmsign key rotate`, or apksigner rotate's\n"
    "                            file) up to the --key's certificate\n"
    "  --old-key NAME            with --lineage: this older signer of the lineage\n"
    "                            signs v1 and v2, --key signs v3 (apksigner sign\n"
    "                            --ks OLD --next-signer --ks NEW --lineage FILE)\n"
    "  --rotation-min-sdk-version N|apksigner31\n"
    "                            with --lineage: --key signs for SDK N and later\n"
    "                            (default 33, as apksig 33+): N >= 33 writes a v3.1\n"
    "                            block signed by --key and a v3.0 block signed by\n"
    "                            --old-key below N; N < 33: --key signs v3.0 from\n"
    "                            SDK 28; apksigner31: apksigner 31's layout (no v3.1)\n"
    "  --rotation-targets-dev-release BOOL\n"
    "                            the v3.1 signer is for the development release\n"
    "                            after N (N >= 33; implied for 34), default false\n"
    "Note: apksigner's CLI enables v1..v4 whatever the minSdk; to compare, pass\n"
    "the same explicit flags to both.\n";

/* --rotation-min-sdk-version: an API level, or apksigner31 for apksigner
 * 31's layout (HS_APK_ROTATION_APKSIGNER31). */
static bool parse_rotation_min_sdk(const char *s, int *out)
{
    unsigned long n;
    if (s != NULL && strcmp(s, "apksigner31") == 0) {
        *out = HS_APK_ROTATION_APKSIGNER31;
        return true;
    }
    if (s == NULL || !cli_parse_uint(s, 10000, &n) || n == 0)
        return false;
    *out = (int)n;
    return true;
}

enum { OPT_V1 = 300, OPT_V2, OPT_V3, OPT_V4, OPT_MIN_SDK, OPT_ALIGN, OPT_OUT_DIR, OPT_KEY,
       OPT_LINEAGE, OPT_OLD_KEY, OPT_ROTATION_MIN_SDK, OPT_ROTATION_DEV };

int cmd_apk_parse_options(int argc, char **argv, const char *cmd, const char **key,
                          const char **out_dir, apk_rotation *rot, hs_apk_options *opt)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, OPT_KEY},
        {"min-sdk", required_argument, NULL, OPT_MIN_SDK},
        {"v1-signing", required_argument, NULL, OPT_V1},
        {"v2-signing", required_argument, NULL, OPT_V2},
        {"v3-signing", required_argument, NULL, OPT_V3},
        {"v4-signing", required_argument, NULL, OPT_V4},
        {"alignment-preserved", optional_argument, NULL, OPT_ALIGN},
        {"out-dir", required_argument, NULL, OPT_OUT_DIR},
        {"lineage", required_argument, NULL, OPT_LINEAGE},
        {"old-key", required_argument, NULL, OPT_OLD_KEY},
        {"rotation-min-sdk-version", required_argument, NULL, OPT_ROTATION_MIN_SDK},
        {"rotation-targets-dev-release", required_argument, NULL, OPT_ROTATION_DEV},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    hs_apk_options_init(opt);
    memset(rot, 0, sizeof *rot);
    rot->rotation_min_sdk = -1;
    int c, b;
    unsigned long n;
    cli_reset_getopt();
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_KEY: *key = optarg; break;
        case OPT_OUT_DIR: *out_dir = optarg; break;
        case OPT_LINEAGE: rot->lineage = optarg; break;
        case OPT_OLD_KEY: rot->old_key = optarg; break;
        case OPT_MIN_SDK:
            if (!cli_parse_uint(optarg, 10000, &n))
                return cli_usage(cmd, "--min-sdk must be an API level");
            opt->min_sdk = (int)n;
            break;
        case OPT_ROTATION_MIN_SDK:
            if (!parse_rotation_min_sdk(optarg, &opt->rotation_min_sdk))
                return cli_usage(cmd, "--rotation-min-sdk-version must be an API level or "
                                      "apksigner31");
            rot->rotation_min_sdk_given = true;
            break;
        case OPT_V1: case OPT_V2: case OPT_V3: case OPT_V4: case OPT_ALIGN: case OPT_ROTATION_DEV:
            if (optarg == NULL && c == OPT_ALIGN)
                b = 1;
            else if (optarg == NULL || !parse_bool(optarg, &b))
                return cli_usage(cmd, "'%s' is not true or false", optarg ? optarg : "");
            if (c == OPT_V1) opt->v1 = b;
            if (c == OPT_V2) opt->v2 = b;
            if (c == OPT_V3) opt->v3 = b;
            if (c == OPT_V4) opt->v4 = b;
            if (c == OPT_ALIGN) opt->alignment_preserved = b;
            if (c == OPT_ROTATION_DEV) opt->rotation_targets_dev_release = b;
            break;
        case 'h': fputs(apk_help, stdout); return 0;
        default: return cli_usage(cmd, "unknown option");
        }
    }
    return -1;
}

static hs_result output_in_dir(const char *dir, const char *in, char *out, size_t cap, hs_error *e)
{
    char *copy = strdup(in);
    if (copy == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    int n = snprintf(out, cap, "%s/%s", dir, basename(copy));
    free(copy);
    return n > 0 && (size_t)n < cap ? HS_OK : hs_fail(e, HS_E_USAGE, "%s: path too long", in);
}

/* OUT of `sign apk IN OUT`, or DIR/<input name> with --out-dir. */
static hs_result out_path(const char *out_dir, const char *in, const char *out_arg, char *out,
                          size_t cap, hs_error *e)
{
    if (out_dir != NULL)
        return output_in_dir(out_dir, in, out, cap, e);
    if (strlen(out_arg) >= cap) /* never a shortened path */
        return hs_fail(e, HS_E_USAGE, "%s: path too long", out_arg);
    snprintf(out, cap, "%s", out_arg);
    return HS_OK;
}

/* Output i, checked: not in the audit log or key store, not one of the
 * inputs. Returns 0 or the exit status after printing why. */
static int apk_output(const cli_globals *g, const char *out_dir, char **argv, int first, size_t i,
                      int nargs, char *out, size_t cap)
{
    hs_error e;
    hs_error_clear(&e);
    if (out_path(out_dir, argv[first + (int)i], argv[first + 1], out, cap, &e) != HS_OK)
        return cli_fail(g, &e);
    /* With --out-dir every argument is an input; without, only the first. */
    size_t n_inputs = out_dir != NULL ? (size_t)nargs : 1;
    return cli_check_output(g, out, (const char *const *)&argv[first], n_inputs);
}

int cli_sign_apk(const cli_globals *g, int argc, char **argv)
{
    const char *key = NULL, *out_dir = NULL;
    hs_apk_options opt;
    apk_rotation rot;
    int rc = cmd_apk_parse_options(argc, argv, "sign apk", &key, &out_dir, &rot, &opt);
    if (rc >= 0)
        return rc;
    int nargs = argc - optind;
    if (key == NULL)
        return cli_usage("sign apk", "--key NAME is required");
    if (rot.old_key != NULL && rot.lineage == NULL)
        return cli_usage("sign apk", "--old-key needs --lineage");
    if ((rot.rotation_min_sdk_given || opt.rotation_targets_dev_release) && rot.lineage == NULL)
        return cli_usage("sign apk", "--rotation-min-sdk-version and "
                                     "--rotation-targets-dev-release need --lineage");
    if (out_dir == NULL && nargs != 2)
        return cli_usage("sign apk", "give IN OUT, or --out-dir DIR with one or more inputs");
    if (out_dir != NULL && nargs < 1)
        return cli_usage("sign apk", "--out-dir needs at least one input");
    size_t total = out_dir != NULL ? (size_t)nargs : 1;
    /* Every output is checked before anything is signed. */
    for (size_t i = 0; i < total; i++) {
        char out[PATH_MAX];
        rc = apk_output(g, out_dir, argv, optind, i, nargs, out, sizeof out);
        if (rc != 0)
            return rc;
    }
    cli_ctx ctx;
    rc = cli_open(g, CLI_SIGNER | CLI_AGENT, &ctx);
    if (rc != 0)
        return rc;
    hs_error e;
    hs_error_clear(&e);
    cli_artcache ac;
    if (cli_artcache_open(&ctx, &ac, &e) != HS_OK) {
        cli_close(&ctx);
        return cli_fail(g, &e);
    }
    json_t *results = json_array();
    int worst = 0;
    for (size_t i = 0; i < total; i++) {
        const char *in = argv[optind + (int)i];
        char out[PATH_MAX];
        hs_result r = out_path(out_dir, in, argv[optind + 1], out, sizeof out, &e);
        cli_progress(g, i + 1, total, in);
        hs_apk_report rep;
        size_t hits = ac.hits;
        if (r == HS_OK)
            r = cmd_apk_sign_one(&(apk_via){.signer = ctx.signer}, &ac, key, &rot, in, out, &opt, -1,
                         &rep, &e);
        if (r == HS_OK) {
            json_t *o = cmd_apk_report_json(in, out, key, &rep);
            json_object_set_new(o, "artifact_cache", json_boolean(ac.hits > hits));
            json_array_append_new(results, o);
            if (!g->json)
                cli_note(g, "signed %s -> %s (key '%s', v1 %s, v2 %s, v3 %s%s%s%s)", in, out, key,
                         rep.v1 ? "yes" : "no", rep.v2 ? "yes" : "no", rep.v3 ? "yes" : "no",
                         rep.v31 ? ", v3.1" : "", rep.v4 ? ", v4 .idsig" : "",
                         ac.hits > hits ? "; from the artifact cache, verified" : "");
        } else {
            cli_progress_end(g);
            fprintf(stderr, "hsmsign: %s\n", e.msg);
            json_array_append_new(results, json_pack("{s:s, s:b, s:s}", "input", in, "ok", 0,
                                                     "error", e.msg));
            if (worst == 0)
                worst = hs_result_exit_code(r);
        }
    }
    cli_progress_end(g);
    cli_artcache_close(&ac);
    cli_close(&ctx);
    if (g->json)
        cli_print_json(json_pack("{s:b, s:o}", "ok", worst == 0, "apks", results));
    else
        json_decref(results);
    return worst;
}

static const char verify_help[] =
    "usage: hsmsign verify apk [--min-sdk N] [--max-sdk N] [--print-certs] FILE\n"
    "\n"
    "The verdict Android gives the APK on API levels N (default: the manifest's\n"
    "minSdkVersion) to --max-sdk (default: all), following apksigner's rules:\n"
    "v3.1, v3, v2 and JAR (v1) signatures where those platforms check them,\n"
    "every signer, key rotation (v3 lineage), target SDK and sandbox rules.\n"
    "--print-certs lists the signer certificates (as stored) and the lineage.\n"
    "Exit 1 when the APK does not verify.\n";

static const char *scheme_state(bool verified, bool present)
{
    return verified ? "verified" : present ? "not verified" : "absent";
}

/* One certificate: SHA-256 of the stored bytes and the subject. */
static void print_cert(const char *label, size_t index, const hs_apk_cert *c)
{
    uint8_t digest[32];
    char sha[65];
    EVP_Digest(c->der, c->len, digest, NULL, EVP_sha256(), NULL);
    hs_hex_encode(digest, 32, sha);
    const unsigned char *q = c->der;
    X509 *x = d2i_X509(NULL, &q, (long)c->len);
    char *subject = x != NULL ? X509_NAME_oneline(X509_get_subject_name(x), NULL, 0) : NULL;
    printf("  %s #%zu certificate SHA-256 digest: %s\n  %s #%zu certificate DN: %s\n", label,
           index, sha, label, index, subject ? subject : "?");
    OPENSSL_free(subject);
    X509_free(x);
}

static json_t *certs_json(const hs_apk_cert *c, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        uint8_t digest[32];
        char sha[65];
        EVP_Digest(c[i].der, c[i].len, digest, NULL, EVP_sha256(), NULL);
        hs_hex_encode(digest, 32, sha);
        json_array_append_new(a, json_string(sha));
    }
    return a;
}

int cli_verify_apk(const cli_globals *g, int argc, char **argv)
{
    enum { OPT_PRINT = 'p', OPT_MIN = 0x100, OPT_MAX };
    static const struct option opts[] = {
        {"print-certs", no_argument, NULL, OPT_PRINT},
        {"min-sdk", required_argument, NULL, OPT_MIN},
        {"max-sdk", required_argument, NULL, OPT_MAX},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool print_certs = false;
    hs_apk_verify_options vo = {.min_sdk = -1, .max_sdk = -1};
    unsigned long n;
    int c;
    cli_reset_getopt();
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_PRINT: print_certs = true; break;
        case OPT_MIN:
        case OPT_MAX:
            if (!cli_parse_uint(optarg, HS_APK_SDK_LATEST, &n))
                return cli_usage("verify apk", "%s must be an API level",
                                 c == OPT_MIN ? "--min-sdk" : "--max-sdk");
            *(c == OPT_MIN ? &vo.min_sdk : &vo.max_sdk) = (int)n;
            break;
        case 'h': fputs(verify_help, stdout); return 0;
        default: return cli_usage("verify apk", "unknown option");
        }
    }
    if (optind + 1 != argc)
        return cli_usage("verify apk", "exactly one FILE is needed");
    if (vo.min_sdk >= 0 && vo.max_sdk >= 0 && vo.min_sdk > vo.max_sdk)
        return cli_usage("verify apk", "--min-sdk is above --max-sdk");
    const char *path = argv[optind];
    hs_apk_verify_report rep;
    hs_error e;
    hs_error_clear(&e);
    hs_result r = hs_apk_verify_file_range(path, &vo, &rep, &e);
    if (g->json) {
        json_t *o = json_pack("{s:s, s:b, s:b, s:b, s:b, s:b, s:i, s:i, s:i}", "file", path,
                              "verified", r == HS_OK, "v1", rep.v1, "v2", rep.v2, "v3", rep.v3,
                              "v31", rep.v31, "min_sdk", rep.min_sdk, "range_min", rep.range_min,
                              "range_max", rep.range_max);
        if (rep.cert_der != NULL) {
            char sha[65];
            hs_hex_encode(rep.cert_sha256, 32, sha);
            json_object_set_new(o, "signer_cert_sha256", json_string(sha));
        }
        json_object_set_new(o, "signer_certs_sha256", certs_json(rep.signers, rep.signer_count));
        json_object_set_new(o, "lineage_sha256", certs_json(rep.lineage, rep.lineage_count));
        if (r != HS_OK)
            json_object_set_new(o, "error", json_string(e.msg));
        cli_print_json(o);
    } else {
        printf("%s: %s\n", path, r == HS_OK ? "verified" : "DOES NOT VERIFY");
        if (rep.range_max > 0 && rep.range_max == HS_APK_SDK_LATEST)
            printf("  API levels: %d and later\n", rep.range_min);
        else if (rep.range_max > 0)
            printf("  API levels: %d to %d\n", rep.range_min, rep.range_max);
        printf("  v1 (JAR): %s\n  v2: %s\n  v3: %s\n  v3.1: %s\n",
               scheme_state(rep.v1, rep.v1_present), scheme_state(rep.v2, rep.v2_present),
               scheme_state(rep.v3, rep.v3_present), scheme_state(rep.v31, rep.v31_present));
        for (size_t i = 0; print_certs && i < rep.signer_count; i++)
            print_cert("Signer", i + 1, &rep.signers[i]);
        for (size_t i = 0; print_certs && i < rep.lineage_count; i++)
            print_cert("Lineage", i + 1, &rep.lineage[i]);
    }
    hs_apk_verify_report_free(&rep);
    if (r != HS_OK)
        return cli_fail(g->json ? NULL : g, &e);
    return 0;
}
