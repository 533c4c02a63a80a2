/* hsmsign avb: Android Verified Boot images signed by the HSM. Flags are
 * avbtool's, so release scripts translate one to one; every flag is
 * accepted both as avbtool spells it (--partition_name) and with hyphens
 * (--partition-name). The work is done by src/lib/avb/; every
 * signature goes through the signer chokepoint (HSM + audit entry). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "avb/avb_footer.h"
#include "avb/avb_info.h"
#include "avb/avb_pubkey.h"
#include "avb/avb_vbmeta.h"
#include "avb/avb_verify.h"
#include "cmd_avb.h"
#include "keystore/keystore.h"
#include "util/encoding.h"

/* Which subcommands take an option. */
enum {
    S_EXTRACT = 1u << 0,
    S_VBMETA = 1u << 1,
    S_HASH = 1u << 2,
    S_TREE = 1u << 3,
    S_VERIFY = 1u << 4,
    S_INFO = 1u << 5,
    S_FOOTER = S_HASH | S_TREE,
    S_SIGNS = S_VBMETA | S_FOOTER,
};

enum {
    O_IMAGE = 256, O_OUTPUT, O_KEY, O_ALGORITHM, O_PARTITION_NAME, O_PARTITION_SIZE,
    O_HASH_ALGORITHM, O_SALT, O_ROLLBACK_INDEX, O_ROLLBACK_INDEX_LOCATION, O_FLAGS, O_PROP,
    O_PROP_FROM_FILE, O_KERNEL_CMDLINE, O_INCLUDE, O_CHAIN, O_PADDING_SIZE, O_RELEASE_STRING,
    O_APPEND_RELEASE_STRING, O_PUBLIC_KEY_METADATA, O_NO_FEC, O_FOLLOW_CHAINS,
    O_EXPECTED_CHAIN, O_ALLOW_UNSIGNED, O_HELP,
};

typedef struct avb_flag {
    const char *name; /* hyphenated; the underscore spelling is derived */
    int has_arg;
    int val;
    unsigned subs;
} avb_flag;

static const avb_flag avb_flags[] = {
    {"image", required_argument, O_IMAGE, S_FOOTER | S_VERIFY | S_INFO},
    {"output", required_argument, O_OUTPUT, S_EXTRACT | S_VBMETA},
    {"key", required_argument, O_KEY, S_EXTRACT | S_SIGNS | S_VERIFY},
    {"algorithm", required_argument, O_ALGORITHM, S_SIGNS},
    {"partition-name", required_argument, O_PARTITION_NAME, S_FOOTER},
    {"partition-size", required_argument, O_PARTITION_SIZE, S_FOOTER},
    {"hash-algorithm", required_argument, O_HASH_ALGORITHM, S_FOOTER},
    {"salt", required_argument, O_SALT, S_FOOTER},
    {"rollback-index", required_argument, O_ROLLBACK_INDEX, S_SIGNS},
    {"rollback-index-location", required_argument, O_ROLLBACK_INDEX_LOCATION, S_SIGNS},
    {"flags", required_argument, O_FLAGS, S_SIGNS},
    {"prop", required_argument, O_PROP, S_SIGNS},
    {"prop-from-file", required_argument, O_PROP_FROM_FILE, S_SIGNS},
    {"kernel-cmdline", required_argument, O_KERNEL_CMDLINE, S_SIGNS},
    {"include-descriptors-from-image", required_argument, O_INCLUDE, S_SIGNS},
    {"chain-partition", required_argument, O_CHAIN, S_SIGNS},
    {"padding-size", required_argument, O_PADDING_SIZE, S_VBMETA},
    {"release-string", required_argument, O_RELEASE_STRING, S_SIGNS},
    {"internal-release-string", required_argument, O_RELEASE_STRING, S_SIGNS},
    {"append-to-release-string", required_argument, O_APPEND_RELEASE_STRING, S_SIGNS},
    {"public-key-metadata", required_argument, O_PUBLIC_KEY_METADATA, S_SIGNS},
    {"do-not-generate-fec", no_argument, O_NO_FEC, S_TREE},
    {"follow-chain-partitions", no_argument, O_FOLLOW_CHAINS, S_VERIFY},
    {"expected-chain-partition", required_argument, O_EXPECTED_CHAIN, S_VERIFY},
    {"allow-unsigned", no_argument, O_ALLOW_UNSIGNED, S_VERIFY},
    {"help", no_argument, O_HELP, ~0u},
};
#define N_FLAGS (sizeof avb_flags / sizeof avb_flags[0])
#define MAX_FLAG_NAME 40

/* Both spellings of every flag, built once: getopt_long needs one entry
 * per spelling. */
static const struct option *avb_long_options(void)
{
    static struct option opts[2 * N_FLAGS + 1];
    static char underscored[N_FLAGS][MAX_FLAG_NAME];
    if (opts[0].name != NULL)
        return opts;
    size_t n = 0;
    for (size_t i = 0; i < N_FLAGS; i++) {
        opts[n++] = (struct option){avb_flags[i].name, avb_flags[i].has_arg, NULL, avb_flags[i].val};
        if (strchr(avb_flags[i].name, '-') == NULL)
            continue;
        snprintf(underscored[i], MAX_FLAG_NAME, "%s", avb_flags[i].name);
        for (char *p = underscored[i]; *p; p++)
            if (*p == '-')
                *p = '_';
        opts[n++] = (struct option){underscored[i], avb_flags[i].has_arg, NULL, avb_flags[i].val};
    }
    return opts;
}

static const char *flag_name(int val)
{
    for (size_t i = 0; i < N_FLAGS; i++)
        if (avb_flags[i].val == val)
            return avb_flags[i].name;
    return "?";
}

static unsigned flag_subs(int val)
{
    for (size_t i = 0; i < N_FLAGS; i++)
        if (avb_flags[i].val == val)
            return avb_flags[i].subs;
    return 0;
}

typedef struct str_list {
    const char **v;
    size_t n;
} str_list;

typedef struct avb_args {
    const char *image, *output, *key, *algorithm, *partition_name, *hash_algorithm, *salt;
    const char *release_string, *append_release_string, *public_key_metadata;
    uint64_t partition_size, rollback_index, padding_size, flags, rollback_index_location;
    bool partition_size_set, no_fec, follow_chains, allow_unsigned, help;
    str_list props, props_from_file, cmdlines, includes, chains, expected_chains;
    const char *positional;
} avb_args;

static void args_free(avb_args *a)
{
    free(a->props.v);
    free(a->props_from_file.v);
    free(a->cmdlines.v);
    free(a->includes.v);
    free(a->chains.v);
    free(a->expected_chains.v);
}

/* avbtool parses numbers with Python's int(s, 0): decimal or 0x hex, and
 * a leading zero is an error there, not octal. */
static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (s == NULL || *s == '\0' || *s == '-' || *s == '+' || *s == ' ')
        return false;
    if (s[0] == '0' && s[1] >= '0' && s[1] <= '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno != 0 || *end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

static int number_arg(const char *cmd, int val, uint64_t max, uint64_t *out)
{
    if (parse_u64(optarg, max, out))
        return 0;
    return cli_usage(cmd, "--%s: '%s' is not a number from 0 to %llu", flag_name(val), optarg,
                     (unsigned long long)max);
}

/* Parses argv for subcommand `sub` (one S_* bit); returns 0, or the exit
 * status of a usage error. At most one positional argument (the image). */
static int parse_args(const char *cmd, unsigned sub, int argc, char **argv, avb_args *a)
{
    memset(a, 0, sizeof *a);
    str_list *lists[] = {&a->props, &a->props_from_file, &a->cmdlines, &a->includes, &a->chains,
                         &a->expected_chains};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        lists[i]->v = calloc((size_t)argc + 1, sizeof *lists[i]->v);
        if (lists[i]->v == NULL) {
            fprintf(stderr, "hsmsign: out of memory\n");
            return 10;
        }
    }
    const struct option *opts = avb_long_options();
    int c, rc = 0;
    cli_reset_getopt();
    while (rc == 0 && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h')
            c = O_HELP;
        if (c < 256)
            return cli_usage(cmd, "unknown option");
        if ((flag_subs(c) & sub) == 0)
            return cli_usage(cmd, "--%s does not apply here", flag_name(c));
        switch (c) {
        case O_IMAGE: a->image = optarg; break;
        case O_OUTPUT: a->output = optarg; break;
        case O_KEY: a->key = optarg; break;
        case O_ALGORITHM: a->algorithm = optarg; break;
        case O_PARTITION_NAME: a->partition_name = optarg; break;
        case O_PARTITION_SIZE:
            rc = number_arg(cmd, c, UINT64_MAX, &a->partition_size);
            a->partition_size_set = true;
            break;
        case O_HASH_ALGORITHM: a->hash_algorithm = optarg; break;
        case O_SALT: a->salt = optarg; break;
        case O_ROLLBACK_INDEX: rc = number_arg(cmd, c, UINT64_MAX, &a->rollback_index); break;
        case O_ROLLBACK_INDEX_LOCATION:
            rc = number_arg(cmd, c, UINT32_MAX, &a->rollback_index_location);
            break;
        case O_FLAGS: rc = number_arg(cmd, c, UINT32_MAX, &a->flags); break;
        case O_PADDING_SIZE: rc = number_arg(cmd, c, UINT32_MAX, &a->padding_size); break;
        case O_PROP: a->props.v[a->props.n++] = optarg; break;
        case O_PROP_FROM_FILE: a->props_from_file.v[a->props_from_file.n++] = optarg; break;
        case O_KERNEL_CMDLINE: a->cmdlines.v[a->cmdlines.n++] = optarg; break;
        case O_INCLUDE: a->includes.v[a->includes.n++] = optarg; break;
        case O_CHAIN: a->chains.v[a->chains.n++] = optarg; break;
        case O_EXPECTED_CHAIN: a->expected_chains.v[a->expected_chains.n++] = optarg; break;
        case O_RELEASE_STRING: a->release_string = optarg; break;
        case O_APPEND_RELEASE_STRING: a->append_release_string = optarg; break;
        case O_PUBLIC_KEY_METADATA: a->public_key_metadata = optarg; break;
        case O_NO_FEC: a->no_fec = true; break;
        case O_FOLLOW_CHAINS: a->follow_chains = true; break;
        case O_ALLOW_UNSIGNED: a->allow_unsigned = true; break;
        case O_HELP: a->help = true; break;
        default: return cli_usage(cmd, "unknown option");
        }
    }
    if (rc != 0 || a->help)
        return rc;
    if (optind < argc)
        a->positional = argv[optind++];
    if (optind < argc)
        return cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
    return 0;
}

static const char algorithms_text[] =
    "NONE, SHA256_RSA2048, SHA256_RSA4096, SHA256_RSA8192, SHA512_RSA2048, SHA512_RSA4096 or "
    "SHA512_RSA8192";

/* The key/algorithm pair, checked before the token is touched. */
static int check_key_and_algorithm(const cli_globals *g, const char *cmd, const avb_args *a)
{
    hs_error e;
    hs_error_clear(&e);
    if (a->algorithm != NULL && hs_avb_alg_by_name(a->algorithm) == NULL) {
        hs_fail(&e, HS_E_USAGE, "%s: unknown AVB algorithm '%s' (use %s)", cmd, a->algorithm,
                algorithms_text);
        return cli_fail(g, &e);
    }
    bool unsigned_alg = a->algorithm == NULL || strcmp(a->algorithm, "NONE") == 0;
    if (!unsigned_alg && a->key == NULL)
        return cli_usage(cmd, "--algorithm %s needs --key NAME (a key store name)", a->algorithm);
    if (unsigned_alg && a->key != NULL)
        return cli_usage(cmd, "--key %s needs a signing --algorithm (one of %s)", a->key,
                         algorithms_text + strlen("NONE, "));
    return 0;
}

/* Opens the token and finds the signing key; *pub stays owned by the
 * signer. Unsigned images need no token at all. */
static int open_signing_key(const cli_globals *g, const char *key, cli_ctx *ctx, EVP_PKEY **pub)
{
    *pub = NULL;
    if (key == NULL)
        return 0;
    int rc = cli_open(g, CLI_SIGNER | CLI_AGENT, ctx);
    if (rc != 0)
        return rc;
    hs_error e;
    hs_error_clear(&e);
    const hs_keyfile *kf;
    if (hs_signer_keyfile(ctx->signer, key, &kf, &e) != HS_OK) {
        cli_close(ctx);
        return cli_fail(g, &e);
    }
    if (!hs_keyalg_is_rsa(kf->alg)) {
        hs_fail(&e, HS_E_USAGE, "key '%s' is %s; AVB signs with RSA keys", key,
                hs_keyalg_name(kf->alg));
        cli_close(ctx);
        return cli_fail(g, &e);
    }
    *pub = kf->pub;
    return 0;
}

static void fill_vbmeta_opts(const avb_args *a, EVP_PKEY *pub, hs_avb_vbmeta_opts *o)
{
    memset(o, 0, sizeof *o);
    o->algorithm = a->algorithm;
    o->public_key = pub;
    o->key_name = a->key;
    o->public_key_metadata_path = a->public_key_metadata;
    o->rollback_index = a->rollback_index;
    o->flags = (uint32_t)a->flags;
    o->rollback_index_location = (uint32_t)a->rollback_index_location;
    o->props = a->props.v;
    o->n_props = a->props.n;
    o->props_from_file = a->props_from_file.v;
    o->n_props_from_file = a->props_from_file.n;
    o->kernel_cmdlines = a->cmdlines.v;
    o->n_kernel_cmdlines = a->cmdlines.n;
    o->include_descriptors_from_image = a->includes.v;
    o->n_include_descriptors_from_image = a->includes.n;
    o->chain_partitions = a->chains.v;
    o->n_chain_partitions = a->chains.n;
    o->release_string = a->release_string;
    o->append_to_release_string = a->append_release_string;
}

/* What was made, on stdout as JSON or as a note on stderr. */
static void print_report(const cli_globals *g, const char *what, const char *path,
                         const avb_args *a, const hs_avb_report *r, bool footer)
{
    char digest[129] = "", tbs[65] = "", image_digest[129] = "";
    hs_hex_encode(r->vbmeta_digest, r->vbmeta_digest_len, digest);
    hs_hex_encode(r->tbs_sha256, 32, tbs);
    if (footer)
        hs_hex_encode(r->image_digest, r->image_digest_len, image_digest);
    if (g->json) {
        json_t *o = json_pack("{s:b, s:s, s:s, s:s, s:s?, s:b, s:I, s:s}", "ok", 1, "command",
                              what, "path", path, "algorithm", r->algorithm, "key", a->key,
                              "signed", r->signed_vbmeta, "vbmeta_size",
                              (json_int_t)r->vbmeta_size, "vbmeta_digest", digest);
        if (r->signed_vbmeta)
            json_object_set_new(o, "tbs_sha256", json_string(tbs));
        if (footer) {
            json_object_set_new(o, "partition_size", json_integer((json_int_t)r->partition_size));
            json_object_set_new(o, "original_image_size",
                                json_integer((json_int_t)r->original_image_size));
            json_object_set_new(o, "vbmeta_offset", json_integer((json_int_t)r->vbmeta_offset));
            json_object_set_new(o, "image_digest", json_string(image_digest));
        }
        cli_print_json(o);
        return;
    }
    if (r->signed_vbmeta)
        cli_note(g, "%s: %s signed with key '%s' (%s), vbmeta %llu bytes, digest %s", what, path,
                 a->key, r->algorithm, (unsigned long long)r->vbmeta_size, digest);
    else
        cli_note(g, "%s: %s written unsigned (algorithm NONE), vbmeta %llu bytes", what, path,
                 (unsigned long long)r->vbmeta_size);
}

static const char extract_help[] =
    "usage: hsmsign avb extract-public-key --key NAME --output FILE\n"
    "\n"
    "Writes the AVB public key blob (AvbRSAPublicKeyHeader, avb_pkmd.bin) of\n"
    "key store key NAME, as `avbtool extract_public_key` does: for chain\n"
    "partition descriptors and `fastboot flash avb_custom_key`. No token needed.\n";

static int avb_extract(const cli_globals *g, int argc, char **argv)
{
    avb_args a;
    int rc = parse_args("avb extract-public-key", S_EXTRACT, argc, argv, &a);
    if (rc == 0 && a.help)
        fputs(extract_help, stdout);
    else if (rc == 0 && (a.key == NULL || a.output == NULL || a.positional != NULL))
        rc = cli_usage("avb extract-public-key", "--key NAME and --output FILE are required");
    if (rc == 0 && !a.help)
        rc = cli_check_output(g, a.output, NULL, 0);
    if (rc != 0 || a.help) {
        args_free(&a);
        return rc;
    }
    hs_error e;
    hs_error_clear(&e);
    hs_keyfile kf;
    hs_result r = hs_keystore_load(g->keystore, a.key, &kf, &e);
    if (r == HS_OK) {
        if (!hs_keyalg_is_rsa(kf.alg))
            r = hs_fail(&e, HS_E_USAGE, "key '%s' is %s; AVB keys are RSA", a.key,
                        hs_keyalg_name(kf.alg));
        else
            r = hs_avb_pubkey_write(kf.pub, a.output, &e);
        hs_keyfile_free(&kf);
    }
    if (r != HS_OK)
        rc = cli_fail(g, &e);
    else if (g->json)
        cli_print_json(json_pack("{s:b, s:s, s:s}", "ok", 1, "key", a.key, "output", a.output));
    else
        cli_note(g, "wrote the AVB public key of '%s' to %s", a.key, a.output);
    args_free(&a);
    return rc;
}

static const char vbmeta_help[] =
    "usage: hsmsign avb make-vbmeta --output FILE [--key NAME --algorithm ALG]\n"
    "         [--include-descriptors-from-image IMG]... [--chain-partition NAME:LOCATION:PUBKEY]...\n"
    "         [--prop KEY:VALUE]... [--prop-from-file KEY:PATH]... [--kernel-cmdline CMDLINE]...\n"
    "         [--rollback-index N] [--rollback-index-location N] [--flags N]\n"
    "         [--padding-size N] [--release-string S] [--append-to-release-string S]\n"
    "         [--public-key-metadata FILE]\n"
    "\n"
    "`avbtool make_vbmeta_image`, signed by the HSM: one signature over\n"
    "header || auxiliary block, recorded in the audit log. NAME is a key store\n"
    "key whose size must match ALG: SHA256_RSA2048, SHA256_RSA4096,\n"
    "SHA256_RSA8192, SHA512_RSA2048, SHA512_RSA4096, SHA512_RSA8192 (or NONE:\n"
    "unsigned). PUBKEY is an .avbpubkey file (see extract-public-key). Flags\n"
    "may also be spelled as avbtool does (--include_descriptors_from_image).\n";

/* After the n-th colon of spec (the file of NAME:LOCATION:PUBKEY or
 * KEY:PATH), or NULL. */
static const char *after_colons(const char *spec, int n)
{
    for (; spec != NULL && n > 0; n--)
        if ((spec = strchr(spec, ':')) != NULL)
            spec++;
    return spec;
}

/* make-vbmeta's output: outside the audit log and key store, and none of
 * the files it reads (included images, chain keys, property files, key
 * metadata): an input is never replaced. */
static int check_vbmeta_output(const cli_globals *g, const avb_args *a)
{
    size_t n = a->includes.n + a->chains.n + a->props_from_file.n + 1;
    const char **in = calloc(n, sizeof *in);
    if (in == NULL) {
        hs_error e;
        hs_fail(&e, HS_E_NOMEM, "out of memory");
        return cli_fail(g, &e);
    }
    size_t k = 0;
    for (size_t i = 0; i < a->includes.n; i++)
        in[k++] = a->includes.v[i];
    for (size_t i = 0; i < a->chains.n; i++)
        in[k++] = after_colons(a->chains.v[i], 2);
    for (size_t i = 0; i < a->props_from_file.n; i++)
        in[k++] = after_colons(a->props_from_file.v[i], 1);
    in[k++] = a->public_key_metadata;
    int rc = cli_check_output(g, a->output, in, k);
    free(in);
    return rc;
}

/* What a signing avb command does once its arguments are checked: the
 * vbmeta options filled from the key, the library call with the signer. */
typedef hs_result (*avb_op)(const avb_args *a, const hs_avb_vbmeta_opts *vo, hs_sign_fn *fn,
                            hs_avb_report *rep, hs_error *e);

/* Opens the key (when one is given), runs op, closes, reports; args are
 * freed here. footer: the report is about an image changed in place. */
static int run_signed(const cli_globals *g, avb_args *a, avb_op op, const char *name,
                      const char *path, bool footer)
{
    cli_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    EVP_PKEY *pub;
    int rc = open_signing_key(g, a->key, &ctx, &pub);
    if (rc == 0) {
        hs_avb_vbmeta_opts vo;
        fill_vbmeta_opts(a, pub, &vo);
        hs_sign_fn fn = {NULL, NULL};
        if (ctx.signer != NULL)
            fn = hs_signer_fn(ctx.signer);
        hs_avb_report rep;
        hs_error e;
        hs_error_clear(&e);
        hs_result r = op(a, &vo, &fn, &rep, &e);
        cli_close(&ctx);
        if (r != HS_OK)
            rc = cli_fail(g, &e);
        else
            print_report(g, name, path, a, &rep, footer);
    }
    args_free(a);
    return rc;
}

static hs_result make_vbmeta_op(const avb_args *a, const hs_avb_vbmeta_opts *vo, hs_sign_fn *fn,
                                hs_avb_report *rep, hs_error *e)
{
    return hs_avb_make_vbmeta_image(a->output, vo, a->padding_size, fn, rep, e);
}

static void fill_footer_opts(const avb_args *a, const hs_avb_vbmeta_opts *vo,
                             hs_avb_footer_opts *o)
{
    memset(o, 0, sizeof *o);
    o->vbmeta = *vo;
    o->partition_name = a->partition_name;
    o->partition_size = a->partition_size;
    o->hash_algorithm = a->hash_algorithm;
    o->salt_hex = a->salt;
    o->do_not_generate_fec = a->no_fec;
}

static hs_result hash_footer_op(const avb_args *a, const hs_avb_vbmeta_opts *vo, hs_sign_fn *fn,
                                hs_avb_report *rep, hs_error *e)
{
    hs_avb_footer_opts o;
    fill_footer_opts(a, vo, &o);
    return hs_avb_add_hash_footer(a->image, &o, fn, rep, e);
}

static hs_result hashtree_footer_op(const avb_args *a, const hs_avb_vbmeta_opts *vo,
                                    hs_sign_fn *fn, hs_avb_report *rep, hs_error *e)
{
    hs_avb_footer_opts o;
    fill_footer_opts(a, vo, &o);
    return hs_avb_add_hashtree_footer(a->image, &o, fn, rep, e);
}

static int avb_make_vbmeta(const cli_globals *g, int argc, char **argv)
{
    const char *cmd = "avb make-vbmeta";
    avb_args a;
    int rc = parse_args(cmd, S_VBMETA, argc, argv, &a);
    if (rc == 0 && a.help)
        fputs(vbmeta_help, stdout);
    else if (rc == 0 && (a.output == NULL || a.positional != NULL))
        rc = cli_usage(cmd, "--output FILE is required (and no other arguments)");
    if (rc == 0 && !a.help)
        rc = check_key_and_algorithm(g, cmd, &a);
    if (rc == 0 && !a.help)
        rc = check_vbmeta_output(g, &a);
    if (rc != 0 || a.help) {
        args_free(&a);
        return rc;
    }
    return run_signed(g, &a, make_vbmeta_op, "make-vbmeta", a.output, false);
}

static const char hash_footer_help[] =
    "usage: hsmsign avb add-hash-footer --image IMG --partition-name P --partition-size N\n"
    "         [--key NAME --algorithm ALG] [--hash-algorithm sha256|sha1|sha512] [--salt HEX]\n"
    "         [--rollback-index N] [--prop KEY:VALUE]... and the other make-vbmeta options\n"
    "\n"
    "`avbtool add_hash_footer`: appends a vbmeta struct with a hash descriptor of\n"
    "IMG and the AVB footer, so IMG fills a partition of N bytes (a multiple of\n"
    "4096). An existing footer is replaced. IMG is changed crash-safely: on any\n"
    "error it is left unchanged; a crash leaves it as it was or complete (docs/avb.md).\n"
    "--salt \"\" means no salt; default: random.\n";

static const char hashtree_footer_help[] =
    "usage: hsmsign avb add-hashtree-footer --image IMG --partition-name P --partition-size N\n"
    "         --do-not-generate-fec [--hash-algorithm sha1|sha256|sha512] [--salt HEX]\n"
    "         [--key NAME --algorithm ALG | --algorithm NONE] and the make-vbmeta options\n"
    "\n"
    "`avbtool add_hashtree_footer`: appends the dm-verity hash tree, a vbmeta\n"
    "struct with a hashtree descriptor and the AVB footer. FEC generation is not\n"
    "supported (it needs AOSP's fec tool): --do-not-generate-fec is required.\n"
    "The default hash is sha1, as avbtool's. IMG is changed crash-safely, in place\n"
    "(same inode) unless it already has a footer (docs/avb.md).\n";

static int footer_command(const cli_globals *g, int argc, char **argv, bool hashtree)
{
    const char *cmd = hashtree ? "avb add-hashtree-footer" : "avb add-hash-footer";
    avb_args a;
    int rc = parse_args(cmd, hashtree ? S_TREE : S_HASH, argc, argv, &a);
    if (rc == 0 && a.help)
        fputs(hashtree ? hashtree_footer_help : hash_footer_help, stdout);
    else if (rc == 0 && (a.image == NULL || a.partition_name == NULL || !a.partition_size_set ||
                         a.positional != NULL))
        rc = cli_usage(cmd, "--image, --partition-name and --partition-size are required");
    if (rc == 0 && !a.help)
        rc = check_key_and_algorithm(g, cmd, &a);
    /* The image is changed in place by design (as avbtool does), but never
     * one inside the audit log or key store. */
    if (rc == 0 && !a.help)
        rc = cli_check_output(g, a.image, NULL, 0);
    if (rc != 0 || a.help) {
        args_free(&a);
        return rc;
    }
    return run_signed(g, &a, hashtree ? hashtree_footer_op : hash_footer_op,
                      hashtree ? "add-hashtree-footer" : "add-hash-footer", a.image, true);
}

static int avb_add_hash_footer(const cli_globals *g, int argc, char **argv)
{
    return footer_command(g, argc, argv, false);
}

static int avb_add_hashtree_footer(const cli_globals *g, int argc, char **argv)
{
    return footer_command(g, argc, argv, true);
}

/* The image: positional IMG or avbtool's --image, exactly one. */
static const char *image_arg(const char *cmd, const avb_args *a, int *rc)
{
    if ((a->image == NULL) == (a->positional == NULL)) {
        *rc = cli_usage(cmd, "give the image, as IMG or --image IMG");
        return NULL;
    }
    return a->image != NULL ? a->image : a->positional;
}

static const char info_help[] =
    "usage: hsmsign avb info IMG\n"
    "\n"
    "Prints the AVB metadata of a vbmeta image or an image with an AVB footer,\n"
    "in the format of `avbtool info_image`. No token needed. The image is\n"
    "parsed strictly; inconsistent sizes or a truncated footer are an error.\n";

static int avb_info(const cli_globals *g, int argc, char **argv)
{
    avb_args a;
    int rc = parse_args("avb info", S_INFO, argc, argv, &a);
    const char *path = NULL;
    if (rc == 0 && a.help)
        fputs(info_help, stdout);
    else if (rc == 0)
        path = image_arg("avb info", &a, &rc);
    args_free(&a);
    if (path == NULL)
        return rc;
    hs_error e;
    hs_error_clear(&e);
    hs_avb_image img;
    if (hs_avb_image_load(path, &img, &e) != HS_OK)
        return cli_fail(g, &e);
    char *text = NULL;
    hs_result r = hs_avb_info_format(&img, &text, &e);
    if (r == HS_OK && g->json) {
        const hs_avb_vbmeta *v = &img.vbmeta;
        json_t *o = json_pack("{s:b, s:s, s:b, s:s, s:I, s:i, s:i, s:i, s:s, s:s}", "ok", 1,
                              "path", path, "has_footer", img.has_footer, "algorithm",
                              v->alg != NULL ? v->alg->name : "unknown", "rollback_index",
                              (json_int_t)v->rollback_index, "rollback_index_location",
                              (int)v->rollback_index_location, "flags", (int)v->flags,
                              "descriptors", (int)v->n_descs, "release_string",
                              v->release_string, "text", text);
        cli_print_json(o);
    } else if (r == HS_OK) {
        fputs(text, stdout);
    }
    free(text);
    hs_avb_image_free(&img);
    return r == HS_OK ? 0 : cli_fail(g, &e);
}

static const char verify_help[] =
    "usage: hsmsign avb verify IMG [--follow-chain-partitions]\n"
    "         [--expected-chain-partition NAME:LOCATION:PUBKEY]... [--key NAME]\n"
    "         [--allow-unsigned]\n"
    "\n"
    "`avbtool verify_image`: checks the vbmeta signature with the embedded key,\n"
    "every hash and hashtree descriptor against the partition images found\n"
    "beside IMG (NAME + IMG's extension), and chain partitions (against\n"
    "expected .avbpubkey files, or by verifying the chained image with\n"
    "--follow-chain-partitions). --key NAME pins the top-level key to a key\n"
    "store key. Unsigned (algorithm NONE) vbmeta structs fail unless\n"
    "--allow-unsigned. Exit status 1 when the image does not verify.\n";

/* NAME:LOCATION:PUBKEY_PATH of --expected-chain-partition. */
static hs_result parse_expected_chain(const char *spec, hs_avb_expected_chain *c, char **name,
                                      uint8_t **key, hs_error *e)
{
    const char *c1 = strchr(spec, ':');
    const char *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
    if (c1 == NULL || c2 == NULL || c1 == spec)
        return hs_fail(e, HS_E_USAGE,
                       "--expected-chain-partition '%s': expected NAME:LOCATION:PUBKEY_PATH", spec);
    char loc[24];
    size_t loc_len = (size_t)(c2 - c1 - 1);
    uint64_t location;
    if (loc_len == 0 || loc_len >= sizeof loc)
        return hs_fail(e, HS_E_USAGE, "--expected-chain-partition '%s': bad location", spec);
    memcpy(loc, c1 + 1, loc_len);
    loc[loc_len] = '\0';
    if (!parse_u64(loc, UINT32_MAX, &location))
        return hs_fail(e, HS_E_USAGE, "--expected-chain-partition '%s': bad location", spec);
    *name = strndup(spec, (size_t)(c1 - spec));
    if (*name == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    c->partition_name = *name;
    c->rollback_index_location = (uint32_t)location;
    hs_result r = hs_avb_pubkey_read(c2 + 1, key, &c->public_key_len, e);
    c->public_key = *key;
    return r;
}

static hs_result expected_top_key(const cli_globals *g, const char *name, uint8_t **blob,
                                  size_t *len, hs_error *e)
{
    hs_keyfile kf;
    hs_result r = hs_keystore_load(g->keystore, name, &kf, e);
    if (r != HS_OK)
        return r;
    r = hs_keyalg_is_rsa(kf.alg) ? hs_avb_pubkey_encode(kf.pub, blob, len, e)
                                 : hs_fail(e, HS_E_USAGE, "key '%s' is not an RSA key", name);
    hs_keyfile_free(&kf);
    return r;
}

/* Verification failures (bad signature, digest, malformed metadata) are
 * exit status 1; a missing file or a usage error keeps its own status. */
static int verify_failure(const cli_globals *g, const hs_error *e)
{
    int rc = cli_fail(g, e);
    if (e->code == HS_E_FORMAT || e->code == HS_E_CRYPTO)
        return 1;
    return rc;
}

static int avb_verify(const cli_globals *g, int argc, char **argv)
{
    avb_args a;
    int rc = parse_args("avb verify", S_VERIFY, argc, argv, &a);
    const char *path = NULL;
    if (rc == 0 && a.help)
        fputs(verify_help, stdout);
    else if (rc == 0)
        path = image_arg("avb verify", &a, &rc);
    if (path == NULL) {
        args_free(&a);
        return rc;
    }
    size_t n = a.expected_chains.n;
    hs_avb_expected_chain *chains = calloc(n + 1, sizeof *chains);
    char **names = calloc(n + 1, sizeof *names);
    uint8_t **keys = calloc(n + 1, sizeof *keys);
    uint8_t *top_key = NULL;
    size_t top_key_len = 0;
    hs_error e;
    hs_error_clear(&e);
    hs_result r = chains && names && keys ? HS_OK : hs_fail(&e, HS_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n && r == HS_OK; i++)
        r = parse_expected_chain(a.expected_chains.v[i], &chains[i], &names[i], &keys[i], &e);
    if (r == HS_OK && a.key != NULL)
        r = expected_top_key(g, a.key, &top_key, &top_key_len, &e);
    hs_avb_verify_report rep;
    memset(&rep, 0, sizeof rep);
    if (r == HS_OK) {
        hs_avb_verify_opts o = {top_key, top_key_len, chains, n, a.follow_chains};
        r = hs_avb_verify_image(path, &o, &rep, &e);
        if (r == HS_OK && rep.unsigned_vbmeta > 0 && !a.allow_unsigned)
            r = hs_fail(&e, HS_E_VERIFY,
                        "%s: %u vbmeta struct(s) are unsigned (algorithm NONE); nothing vouches "
                        "for them (pass --allow-unsigned to accept)",
                        path, rep.unsigned_vbmeta);
    }
    for (size_t i = 0; i < n && names != NULL && keys != NULL; i++) {
        free(names[i]);
        free(keys[i]);
    }
    free(chains);
    free(names);
    free(keys);
    free(top_key);
    args_free(&a);
    if (r != HS_OK)
        return verify_failure(g, &e);
    if (g->json)
        cli_print_json(json_pack("{s:b, s:s, s:i, s:i, s:i, s:i, s:i}", "ok", 1, "path", path,
                                 "vbmeta_checked", (int)rep.vbmeta_checked, "unsigned_vbmeta",
                                 (int)rep.unsigned_vbmeta, "hashes_checked",
                                 (int)rep.hashes_checked, "hashtrees_checked",
                                 (int)rep.hashtrees_checked, "chains_checked",
                                 (int)rep.chains_checked));
    else
        printf("%s: verified: %u vbmeta (%u unsigned), %u hash, %u hashtree, %u chain "
               "partition descriptor(s)\n",
               path, rep.vbmeta_checked, rep.unsigned_vbmeta, rep.hashes_checked,
               rep.hashtrees_checked, rep.chains_checked);
    return 0;
}

int cmd_avb(const cli_globals *g, int argc, char **argv)
{
    static const cli_subcommand subs[] = {
        {"extract-public-key", avb_extract, "write a key's AVB public key blob (avb_pkmd.bin)"},
        {"make-vbmeta", avb_make_vbmeta, "make a signed vbmeta image"},
        {"add-hash-footer", avb_add_hash_footer, "append a hash descriptor, vbmeta and footer"},
        {"add-hashtree-footer", avb_add_hashtree_footer,
         "append a dm-verity hash tree, vbmeta and footer"},
        {"info", avb_info, "show an image's AVB metadata (avbtool info_image)"},
        {"verify", avb_verify, "verify signatures, digests and chains (avbtool verify_image)"},
        {"signing-helper", cmd_avb_signing_helper,
         "avbtool --signing_helper: block on stdin, signature on stdout"},
        {"signing-helper-with-files", cmd_avb_signing_helper_with_files,
         "avbtool --signing_helper_with_files: signature written into FILE"},
    };
    return cli_dispatch(g, "avb",
                        "Android Verified Boot images (avbtool-compatible), signed by the HSM.\n"
                        "Every signature is made by the HSM and recorded in the audit log.",
                        subs, sizeof subs / sizeof subs[0], argc, argv);
}
