/* avbtool's two signing helper protocols, so stock avbtool and AOSP
 * releasetools sign with a key in the HSM:
 *
 *   --signing_helper APP:            APP ALGORITHM KEY_PATH
 *       padded PKCS#1 v1.5 block on stdin, raw signature on stdout;
 *   --signing_helper_with_files APP: APP ALGORITHM KEY_PATH FILE
 *       the block in FILE, the signature written back into FILE.
 *
 * KEY_PATH is whatever was given to avbtool's --key: a PEM private or
 * public key (avbtool reads only the public half from it when a helper
 * signs). The key store key with the same public key is used. The block is
 * checked (hs_avb_helper_parse_block) and only its digest goes to the
 * signer chokepoint (HSM + audit entry), never a raw RSA request. Nothing
 * but the signature is written to stdout; errors go to stderr. */
#include <errno.h>
#include <openssl/decoder.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "avb/avb_helper.h"
#include "avb/avb_pubkey.h"
#include "cmd_avb.h"
#include "keystore/keystore.h"
#include "util/file.h"
#include "util/secmem.h"

/* The largest block: an RSA-8192 modulus. */
#define MAX_BLOCK 1024
#define MAX_KEY_FILE (64 * 1024)

static const char helper_help[] =
    "usage: hsmsign avb signing-helper ALGORITHM PUBKEY_PATH\n"
    "       hsmsign avb signing-helper-with-files ALGORITHM PUBKEY_PATH FILE\n"
    "\n"
    "avbtool's --signing_helper and --signing_helper_with_files protocols. avbtool\n"
    "runs a single program, so point it at a two-line wrapper script:\n"
    "    #!/bin/sh\n"
    "    exec hsmsign avb signing-helper \"$@\"\n"
    "and run `avbtool ... --key avb_pub.pem --algorithm SHA256_RSA4096\n"
    "--signing_helper /path/to/wrapper`. PUBKEY_PATH (avbtool's --key) may be a\n"
    "PEM public key, e.g. from `hsmsign key show NAME --public-key`; the key store\n"
    "key with that public key signs. The padded PKCS#1 v1.5 block is checked\n"
    "(padding, DigestInfo of the algorithm's hash, key size) and only its digest\n"
    "goes to the HSM; the signature is recorded in the audit log.\n"
    "signing-helper reads the block on stdin and writes only the signature to\n"
    "stdout. signing-helper-with-files overwrites FILE's block with the signature\n"
    "in place (same inode: avbtool reads it back through its open handle).\n"
    "The token, PIN source and key store come from the environment or config file.\n";

/* PUBKEY_PATH as avbtool got it: PEM or DER, public or private key, or
 * an .avbpubkey blob. Read into locked memory, as it may hold a private
 * key; only the public half is kept. */
static hs_result load_public_key(const char *path, EVP_PKEY **out, hs_error *e)
{
    *out = NULL;
    uint8_t *data;
    size_t len;
    hs_result r = hs_read_secret_file(path, MAX_KEY_FILE, &data, &len, e);
    if (r != HS_OK)
        return r;
    EVP_PKEY *pkey = NULL;
    OSSL_DECODER_CTX *dctx =
        OSSL_DECODER_CTX_new_for_pkey(&pkey, NULL, NULL, "RSA", 0, NULL, NULL);
    const unsigned char *p = data;
    size_t left = len;
    if (dctx == NULL || !OSSL_DECODER_from_data(dctx, &p, &left)) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    OSSL_DECODER_CTX_free(dctx);
    if (pkey == NULL) {
        hs_error ignored;
        if (hs_avb_pubkey_decode(data, len, path, &pkey, NULL, &ignored) != HS_OK)
            pkey = NULL;
    }
    hs_secure_free(data, len + 1);
    if (pkey == NULL)
        return hs_fail(e, HS_E_FORMAT,
                       "%s: not an RSA key (expected the PEM public or private key given to "
                       "avbtool's --key, or an .avbpubkey file)",
                       path);
    *out = pkey;
    return HS_OK;
}

/* The key store key whose public key equals pub; *name is malloc'd. */
static hs_result find_key(const char *keystore, EVP_PKEY *pub, const char *pub_path, char **name,
                          int *bits, hs_error *e)
{
    char **names;
    size_t n;
    *name = NULL;
    hs_result r = hs_keystore_list(keystore, &names, &n, e);
    if (r != HS_OK)
        return r;
    for (size_t i = 0; i < n && *name == NULL; i++) {
        hs_keyfile kf;
        hs_error ignored;
        /* A damaged key file is another key's problem, not this one's. */
        if (hs_keystore_load(keystore, names[i], &kf, &ignored) != HS_OK)
            continue;
        if (hs_keyalg_is_rsa(kf.alg) && EVP_PKEY_eq(kf.pub, pub) == 1) {
            *name = strdup(names[i]);
            *bits = EVP_PKEY_get_bits(kf.pub);
        }
        hs_keyfile_free(&kf);
    }
    hs_keystore_list_free(names, n);
    if (*name != NULL)
        return HS_OK;
    return hs_fail(e, HS_E_NOTFOUND, "no key in the key store %s has the public key of %s",
                   keystore, pub_path);
}

static hs_result read_stdin_block(uint8_t *buf, size_t cap, size_t *len, hs_error *e)
{
    *len = 0;
    for (;;) {
        ssize_t n = read(STDIN_FILENO, buf + *len, cap - *len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return hs_fail(e, HS_E_IO, "signing helper: reading the block from stdin: %s",
                           strerror(errno));
        if (n == 0)
            return HS_OK;
        *len += (size_t)n;
        if (*len == cap) /* cap is one more than the largest block */
            return hs_fail(e, HS_E_FORMAT,
                           "signing helper: more than %d bytes on stdin; a block is at most "
                           "the modulus length of an RSA-8192 key",
                           MAX_BLOCK);
    }
}

/* Checks the block, finds the key, has the HSM sign the digest. */
static hs_result sign_block(const cli_globals *g, const char *algorithm, const char *pub_path,
                            const uint8_t *block, size_t len, uint8_t **sig, size_t *sig_len,
                            hs_error *e)
{
    hs_avb_helper_block hb;
    hs_result r = hs_avb_helper_parse_block(algorithm, block, len, &hb, e);
    if (r != HS_OK)
        return r;
    EVP_PKEY *pub;
    if ((r = load_public_key(pub_path, &pub, e)) != HS_OK)
        return r;
    char *key = NULL;
    int bits = 0;
    r = find_key(g->keystore, pub, pub_path, &key, &bits, e);
    EVP_PKEY_free(pub);
    if (r == HS_OK && (size_t)bits != hb.alg->sig_len * 8)
        r = hs_fail(e, HS_E_USAGE, "key '%s' is a %d-bit RSA key; %s needs a %zu-bit key", key,
                    bits, hb.alg->name, hb.alg->sig_len * 8);
    cli_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    if (r == HS_OK && cli_open(g, CLI_SIGNER | CLI_AGENT, &ctx) != 0)
        r = hs_fail(e, HS_E_P11, "signing helper: could not open the token (see above)");
    if (r == HS_OK) {
        hs_sign_request req;
        memset(&req, 0, sizeof req);
        req.key_name = key;
        req.alg = hb.sig_alg;
        req.digest = hb.digest;
        req.digest_len = hb.digest_len;
        /* The signed bytes never reach us, only their digest. For SHA-256
         * algorithms that digest IS their SHA-256; for SHA-512 ones the
         * audit records SHA-256 of the SHA-512 digest (docs/avb.md). */
        if (hb.digest_len == 32)
            memcpy(req.tbs_sha256, hb.digest, 32);
        else
            EVP_Digest(hb.digest, hb.digest_len, req.tbs_sha256, NULL, EVP_sha256(), NULL);
        req.operation = "avb-signing-helper";
        r = hs_signer_sign(ctx.signer, &req, sig, sig_len, e);
        if (r == HS_OK && *sig_len != hb.alg->sig_len) {
            r = hs_fail(e, HS_E_CRYPTO, "the HSM returned %zu signature bytes, %s needs %zu",
                        *sig_len, hb.alg->name, hb.alg->sig_len);
            free(*sig);
            *sig = NULL;
        }
    }
    cli_close(&ctx);
    free(key);
    return r;
}

int cmd_avb_signing_helper(const cli_globals *g, int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(helper_help, stdout);
        return 0;
    }
    if (argc != 3)
        return cli_usage("avb signing-helper", "expected ALGORITHM PUBKEY_PATH (as avbtool passes)");
    uint8_t block[MAX_BLOCK + 1]; /* one more, to notice a longer input */
    size_t len;
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    hs_error e;
    hs_error_clear(&e);
    hs_result r = read_stdin_block(block, sizeof block, &len, &e);
    if (r == HS_OK)
        r = sign_block(g, argv[1], argv[2], block, len, &sig, &sig_len, &e);
    if (r == HS_OK)
        r = hs_write_fd_all(STDOUT_FILENO, sig, sig_len, "stdout", &e);
    free(sig);
    return r == HS_OK ? 0 : cli_fail(NULL, &e);
}

/* avbtool keeps FILE open and reads the signature back through that
 * handle (seek(0), read()), so the signature goes into the same inode
 * (hs_write_file_in_place): a rename over FILE would leave avbtool reading
 * its own block back. */
int cmd_avb_signing_helper_with_files(const cli_globals *g, int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(helper_help, stdout);
        return 0;
    }
    if (argc != 4)
        return cli_usage("avb signing-helper-with-files",
                         "expected ALGORITHM PUBKEY_PATH FILE (as avbtool passes)");
    const char *file = argv[3];
    uint8_t *block = NULL, *sig = NULL;
    size_t len = 0, sig_len = 0;
    hs_error e;
    hs_error_clear(&e);
    /* FILE is written in place (avbtool's temporary file), so it is
     * checked before anything is signed. */
    hs_result r = cli_output_ok(g, file, NULL, 0, &e);
    if (r == HS_OK)
        r = hs_read_file(file, MAX_BLOCK, &block, &len, &e);
    if (r == HS_OK)
        r = sign_block(g, argv[1], argv[2], block, len, &sig, &sig_len, &e);
    bool in_place;
    if (r == HS_OK)
        r = hs_write_file_in_place(file, sig, sig_len, 0644, &in_place, &e);
    free(block);
    free(sig);
    return r == HS_OK ? 0 : cli_fail(NULL, &e);
}
