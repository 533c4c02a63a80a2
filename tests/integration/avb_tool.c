/* TEST DRIVER ONLY - never installed. Runs the AVB library with avbtool's
 * command-line syntax and the soft signer fixture (private key from a PEM
 * file), so tests can compare its output with files made by AOSP avbtool
 * byte for byte. The product's `hsmsign avb` commands sign through the
 * HSM instead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avb/avb_footer.h"
#include "avb/avb_helper.h"
#include "avb/avb_info.h"
#include "avb/avb_pubkey.h"
#include "avb/avb_vbmeta.h"
#include "avb/avb_verify.h"
#include "soft_signer.h"
#include "util/encoding.h"
#include "util/file.h"

#define MAX_LIST 16

typedef struct args {
    const char *image, *output, *key, *algorithm, *partition_name, *salt, *hash_algorithm;
    const char *tbs_out, *sig_out, *signing_key;
    unsigned long long partition_size, rollback_index, padding_size, flags, rollback_index_location;
    bool do_not_generate_fec, follow_chain_partitions, failing_signer;
    const char *props[MAX_LIST], *cmdlines[MAX_LIST], *includes[MAX_LIST], *chains[MAX_LIST],
        *expected_chains[MAX_LIST];
    size_t n_props, n_cmdlines, n_includes, n_chains, n_expected_chains;
} args;

static int usage(void)
{
    fprintf(stderr, "usage: avb_tool extract_public_key|add_hash_footer|add_hashtree_footer|"
                    "make_vbmeta_image|info_image|verify_image|split_vbmeta|helper_block "
                    "[--avbtool-options]\n");
    return 2;
}

static bool push(const char **list, size_t *n, const char *v)
{
    if (*n == MAX_LIST)
        return false;
    list[(*n)++] = v;
    return true;
}

static bool parse_args(int argc, char **argv, args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--do_not_generate_fec") == 0) {
            a->do_not_generate_fec = true;
            continue;
        }
        if (strcmp(o, "--failing_signer") == 0) {
            a->failing_signer = true;
            continue;
        }
        if (strcmp(o, "--follow_chain_partitions") == 0) {
            a->follow_chain_partitions = true;
            continue;
        }
        if (i + 1 >= argc)
            return false;
        const char *v = argv[++i];
        if (strcmp(o, "--image") == 0) a->image = v;
        else if (strcmp(o, "--output") == 0) a->output = v;
        else if (strcmp(o, "--key") == 0) a->key = v;
        else if (strcmp(o, "--algorithm") == 0) a->algorithm = v;
        else if (strcmp(o, "--partition_name") == 0) a->partition_name = v;
        else if (strcmp(o, "--salt") == 0) a->salt = v;
        else if (strcmp(o, "--hash_algorithm") == 0) a->hash_algorithm = v;
        else if (strcmp(o, "--tbs") == 0) a->tbs_out = v;
        else if (strcmp(o, "--sig") == 0) a->sig_out = v;
        else if (strcmp(o, "--signing_key") == 0) a->signing_key = v;
        else if (strcmp(o, "--partition_size") == 0) a->partition_size = strtoull(v, NULL, 0);
        else if (strcmp(o, "--rollback_index") == 0) a->rollback_index = strtoull(v, NULL, 0);
        else if (strcmp(o, "--rollback_index_location") == 0)
            a->rollback_index_location = strtoull(v, NULL, 0);
        else if (strcmp(o, "--padding_size") == 0) a->padding_size = strtoull(v, NULL, 0);
        else if (strcmp(o, "--flags") == 0) a->flags = strtoull(v, NULL, 0);
        else if (strcmp(o, "--prop") == 0) { if (!push(a->props, &a->n_props, v)) return false;
        } else if (strcmp(o, "--kernel_cmdline") == 0) {
            if (!push(a->cmdlines, &a->n_cmdlines, v))
                return false;
        } else if (strcmp(o, "--include_descriptors_from_image") == 0) {
            if (!push(a->includes, &a->n_includes, v))
                return false;
        } else if (strcmp(o, "--chain_partition") == 0) {
            if (!push(a->chains, &a->n_chains, v))
                return false;
        } else if (strcmp(o, "--expected_chain_partition") == 0) {
            if (!push(a->expected_chains, &a->n_expected_chains, v))
                return false;
        } else
            return false;
    }
    return true;
}

static void vbmeta_opts(const args *a, soft_signer *s, hs_avb_vbmeta_opts *o)
{
    memset(o, 0, sizeof *o);
    o->algorithm = a->algorithm;
    o->public_key = a->key ? soft_signer_public(s) : NULL;
    o->key_name = a->key;
    o->rollback_index = a->rollback_index;
    o->flags = (uint32_t)a->flags;
    o->rollback_index_location = (uint32_t)a->rollback_index_location;
    o->props = a->props;
    o->n_props = a->n_props;
    o->kernel_cmdlines = a->cmdlines;
    o->n_kernel_cmdlines = a->n_cmdlines;
    o->include_descriptors_from_image = a->includes;
    o->n_include_descriptors_from_image = a->n_includes;
    o->chain_partitions = a->chains;
    o->n_chain_partitions = a->n_chains;
}

static void print_report(const hs_avb_report *r, const soft_signer *s)
{
    char hex[129];
    hs_hex_encode(r->vbmeta_digest, r->vbmeta_digest_len, hex);
    fprintf(stderr, "algorithm %s, signatures requested: %u, vbmeta %llu bytes, digest %s\n",
            r->algorithm, s->calls, (unsigned long long)r->vbmeta_size, hex);
}

/* A signer that fails like an HSM that went away, after counting the call. */
static hs_result failing_sign(void *ctx, const hs_sign_request *req, uint8_t **sig, size_t *sig_len,
                              hs_error *e)
{
    (void)req;
    (void)sig_len;
    ((soft_signer *)ctx)->calls++;
    *sig = NULL;
    return hs_fail(e, HS_E_P11, "test signer: token removed");
}

static hs_result run_sign_cmd(const char *cmd, const args *a, hs_error *e)
{
    soft_signer s = {0}, other = {0};
    hs_result r = HS_OK;
    if (a->key && (r = soft_signer_load(&s, a->key, e)) != HS_OK)
        return r;
    hs_sign_fn fn = soft_signer_fn(&s);
    /* --signing_key: sign with another key than the public key given. */
    if (a->signing_key) {
        if ((r = soft_signer_load(&other, a->signing_key, e)) != HS_OK) {
            soft_signer_free(&s);
            return r;
        }
        fn = soft_signer_fn(&other);
    }
    if (a->failing_signer)
        fn.sign = failing_sign;
    hs_avb_report rep;
    if (strcmp(cmd, "extract_public_key") == 0) {
        r = a->key && a->output ? hs_avb_pubkey_write(soft_signer_public(&s), a->output, e)
                                : hs_fail(e, HS_E_USAGE, "--key and --output required");
    } else if (strcmp(cmd, "make_vbmeta_image") == 0) {
        hs_avb_vbmeta_opts o;
        vbmeta_opts(a, &s, &o);
        r = hs_avb_make_vbmeta_image(a->output, &o, a->padding_size, &fn, &rep, e);
        if (r == HS_OK)
            print_report(&rep, &s);
    } else {
        hs_avb_footer_opts o;
        memset(&o, 0, sizeof o);
        vbmeta_opts(a, &s, &o.vbmeta);
        o.partition_name = a->partition_name;
        o.partition_size = a->partition_size;
        o.hash_algorithm = a->hash_algorithm;
        o.salt_hex = a->salt;
        o.do_not_generate_fec = a->do_not_generate_fec;
        r = strcmp(cmd, "add_hash_footer") == 0
                ? hs_avb_add_hash_footer(a->image, &o, &fn, &rep, e)
                : hs_avb_add_hashtree_footer(a->image, &o, &fn, &rep, e);
        if (r == HS_OK)
            print_report(&rep, &s);
    }
    soft_signer_free(&s);
    soft_signer_free(&other);
    return r;
}

static hs_result run_info(const args *a, hs_error *e)
{
    hs_avb_image img;
    char *text;
    hs_result r = hs_avb_image_load(a->image, &img, e);
    if (r != HS_OK)
        return r;
    r = hs_avb_info_format(&img, &text, e);
    if (r == HS_OK) {
        fputs(text, stdout);
        free(text);
    }
    hs_avb_image_free(&img);
    return r;
}

/* Writes header ‖ aux and the signature, for `openssl dgst -verify`. */
static hs_result run_split(const args *a, hs_error *e)
{
    hs_avb_image img;
    hs_result r = hs_avb_image_load(a->image, &img, e);
    if (r != HS_OK)
        return r;
    const hs_avb_vbmeta *v = &img.vbmeta;
    size_t n = v->header.len + v->aux.len;
    uint8_t *tbs = malloc(n);
    if (tbs == NULL) {
        hs_avb_image_free(&img);
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    memcpy(tbs, v->header.p, v->header.len);
    memcpy(tbs + v->header.len, v->aux.p, v->aux.len);
    r = hs_write_file_atomic(a->tbs_out, tbs, n, 0644, false, e);
    if (r == HS_OK)
        r = hs_write_file_atomic(a->sig_out, v->signature.p, v->signature.len, 0644, false, e);
    free(tbs);
    hs_avb_image_free(&img);
    return r;
}

static hs_result run_verify(const args *a, hs_error *e)
{
    hs_avb_expected_chain chains[MAX_LIST];
    uint8_t *keys[MAX_LIST] = {0};
    char *names[MAX_LIST] = {0};
    hs_result r = HS_OK;
    size_t n = 0;
    for (; n < a->n_expected_chains && r == HS_OK; n++) {
        const char *spec = a->expected_chains[n], *c1 = strchr(spec, ':');
        const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL)
            return hs_fail(e, HS_E_USAGE, "bad --expected_chain_partition %s", spec);
        names[n] = strndup(spec, (size_t)(c1 - spec));
        chains[n].partition_name = names[n];
        chains[n].rollback_index_location = (uint32_t)strtoul(c1 + 1, NULL, 10);
        r = hs_avb_pubkey_read(c2 + 1, &keys[n], &chains[n].public_key_len, e);
        chains[n].public_key = keys[n];
    }
    hs_avb_verify_opts o = {NULL, 0, chains, n, a->follow_chain_partitions};
    hs_avb_verify_report rep;
    if (r == HS_OK)
        r = hs_avb_verify_image(a->image, &o, &rep, e);
    if (r == HS_OK)
        printf("verified: %u vbmeta (%u unsigned), %u hash, %u hashtree, %u chain\n",
               rep.vbmeta_checked, rep.unsigned_vbmeta, rep.hashes_checked, rep.hashtrees_checked,
               rep.chains_checked);
    for (size_t i = 0; i < n; i++) {
        free(keys[i]);
        free(names[i]);
    }
    return r;
}

/* Reads a signing-helper block from --image, prints the digest in hex. */
static hs_result run_helper_block(const args *a, hs_error *e)
{
    uint8_t *block;
    size_t len;
    hs_result r = hs_read_file(a->image, 4096, &block, &len, e);
    if (r != HS_OK)
        return r;
    hs_avb_helper_block hb;
    r = hs_avb_helper_parse_block(a->algorithm ? a->algorithm : "", block, len, &hb, e);
    if (r == HS_OK) {
        char hex[129];
        hs_hex_encode(hb.digest, hb.digest_len, hex);
        printf("%s %s\n", hs_sig_alg_name(hb.sig_alg), hex);
    }
    free(block);
    return r;
}

int main(int argc, char **argv)
{
    args a;
    hs_error e = {0};
    if (argc < 2 || !parse_args(argc, argv, &a))
        return usage();
    const char *cmd = argv[1];
    hs_result r;
    if (strcmp(cmd, "info_image") == 0)
        r = run_info(&a, &e);
    else if (strcmp(cmd, "verify_image") == 0)
        r = run_verify(&a, &e);
    else if (strcmp(cmd, "split_vbmeta") == 0)
        r = run_split(&a, &e);
    else if (strcmp(cmd, "helper_block") == 0)
        r = run_helper_block(&a, &e);
    else if (strcmp(cmd, "extract_public_key") == 0 || strcmp(cmd, "make_vbmeta_image") == 0 ||
             strcmp(cmd, "add_hash_footer") == 0 || strcmp(cmd, "add_hashtree_footer") == 0)
        r = run_sign_cmd(cmd, &a, &e);
    else
        return usage();
    if (r != HS_OK) {
        fprintf(stderr, "avb_tool: %s (%s)\n", e.msg, hs_result_name(r));
        return hs_result_exit_code(r);
    }
    return 0;
}
