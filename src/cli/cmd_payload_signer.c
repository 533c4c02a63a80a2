/* hsmsign payload-signer: releasetools' --payload_signer protocol.
 *
 * ota_from_target_files.py signs an A/B payload's two SHA-256 hashes by
 * running SIGNER [--payload_signer_args ...] -in HASH_FILE -out SIG_FILE
 * (payload_signer.py); its default signer is `openssl pkeyutl -sign -inkey
 * KEY -pkeyopt digest:sha256`, and the output here is the same bytes for
 * the same key. Only the 32-byte digest goes to the signer chokepoint (HSM,
 * verification, audit entry "payload-digest" recording the digest).
 * SIG_FILE exists already (releasetools' MakeTempFile), so it is written in
 * place; nothing is written to it unless the whole signature is ready. */
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util/file.h"

static const char payload_help[] =
    "usage: hsmsign payload-signer --key NAME -in HASH_FILE -out SIG_FILE\n"
    "\n"
    "AOSP releasetools' --payload_signer protocol, for A/B OTA payloads:\n"
    "    ota_from_target_files.py ... --payload_signer hsmsign \\\n"
    "        --payload_signer_args \"payload-signer --key releasekey\" \\\n"
    "        --payload_signer_maximum_signature_size 256\n"
    "(releasetools runs SIGNER ARGS... -in HASH_FILE -out SIG_FILE). HASH_FILE\n"
    "holds a 32-byte SHA-256 digest; SIG_FILE receives the same bytes as\n"
    "`openssl pkeyutl -sign -inkey KEY -pkeyopt digest:sha256` with the key:\n"
    "RSA PKCS#1 v1.5 (the modulus length, e.g. 256 bytes for RSA-2048: give that\n"
    "as --payload_signer_maximum_signature_size) or DER ECDSA (at most 72 bytes\n"
    "for P-256). The HSM signs only the digest; the audit entry (\"payload-digest\")\n"
    "records it as tbs_sha256. An existing SIG_FILE is rewritten in place (same\n"
    "inode), a missing one is created; on any error it is left untouched.\n"
    "The token, PIN source, key store and audit log come from the environment or\n"
    "config file (HSMSIGN_TOKEN, HSMSIGN_PIN_SOURCE, HSMSIGN_KEYSTORE, ...).\n";

typedef struct payload_args {
    const char *key, *in, *out;
} payload_args;

/* openssl-style single-dash options as releasetools appends them, plus
 * --key NAME / --key=NAME from --payload_signer_args. */
static int parse_args(int argc, char **argv, payload_args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        const char **slot = NULL;
        if (strncmp(opt, "--key=", 6) == 0) {
            a->key = opt + 6;
            continue;
        }
        if (strcmp(opt, "--key") == 0)
            slot = &a->key;
        else if (strcmp(opt, "-in") == 0)
            slot = &a->in;
        else if (strcmp(opt, "-out") == 0)
            slot = &a->out;
        else
            return cli_usage("payload-signer",
                             "unexpected argument '%s' (expected --key NAME -in HASH_FILE "
                             "-out SIG_FILE)",
                             opt);
        if (i + 1 >= argc)
            return cli_usage("payload-signer", "%s needs a value", opt);
        *slot = argv[++i];
    }
    if (a->key == NULL || *a->key == '\0')
        return cli_usage("payload-signer",
                         "--key NAME is required (releasetools passes it through "
                         "--payload_signer_args \"payload-signer --key NAME\")");
    if (a->in == NULL)
        return cli_usage("payload-signer", "-in HASH_FILE is required");
    if (a->out == NULL)
        return cli_usage("payload-signer", "-out SIG_FILE is required");
    return -1;
}

static hs_result read_digest(const char *path, uint8_t digest[32], hs_error *e)
{
    uint8_t *data;
    size_t len;
    /* One byte more than a digest, to tell "too long" from "exactly 32". */
    hs_result r = hs_read_file(path, 33, &data, &len, e);
    if (r != HS_OK)
        return r;
    if (len != 32)
        r = hs_fail(e, HS_E_FORMAT,
                    "%s: %s; a payload hash file holds exactly 32 bytes (a SHA-256 digest, as "
                    "delta_generator --out_hash_file writes it)",
                    path, len > 32 ? "more than 32 bytes" : "fewer than 32 bytes");
    else
        memcpy(digest, data, 32);
    free(data);
    return r;
}

/* Writes into SIG_FILE's own inode when it exists (the caller may hold
 * it open), else creates it atomically. */
static hs_result write_sig(const char *path, const uint8_t *sig, size_t len, hs_error *e)
{
    bool in_place;
    return hs_write_file_in_place(path, sig, len, 0644, &in_place, e);
}

int cmd_payload_signer(const cli_globals *g, int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(payload_help, stdout);
        return 0;
    }
    payload_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    hs_error e;
    hs_error_clear(&e);
    uint8_t digest[32], file_sha[32];
    const char *inputs[] = {a.in};
    /* Everything that can be checked without the token is, first: a bad
     * request must not cost a login or leave an audit entry. */
    hs_result r = hs_key_name_check(a.key, &e);
    if (r == HS_OK)
        r = cli_output_ok(g, a.out, inputs, 1, &e);
    if (r == HS_OK)
        r = read_digest(a.in, digest, &e);
    if (r != HS_OK)
        return cli_fail(g, &e);
    SHA256(digest, 32, file_sha); /* the HASH file is exactly the digest */
    cli_ctx ctx;
    if ((rc = cli_open(g, CLI_SIGNER | CLI_AGENT, &ctx)) != 0)
        return rc;
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    r = hs_signer_sign_digest(ctx.signer, a.key, digest, "payload-digest", a.in, file_sha, &sig,
                              &sig_len, &e);
    /* The entry is durable before the signature is written anywhere. */
    if (r == HS_OK)
        r = write_sig(a.out, sig, sig_len, &e);
    free(sig);
    cli_close(&ctx);
    return r == HS_OK ? 0 : cli_fail(g, &e);
}
