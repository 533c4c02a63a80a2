/* Test-only driver around the age library, for age_interop.sh.
 *
 *   age_tool keygen                          identity file on stdout
 *   age_tool recipient -i FILE               recipients of an identity file
 *   age_tool encrypt [-a] -r RECIPIENT...    stdin -> stdout
 *   age_tool encrypt-passphrase [-a] [-w N]  passphrase in $AGE_TOOL_PASSPHRASE
 *   age_tool decrypt [-i FILE]... [-p]       -p: passphrase in $AGE_TOOL_PASSPHRASE
 *
 * Exit status follows hs_result_exit_code; errors go to stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup/age.h"
#include "util/file.h"
#include "util/secmem.h"

#define MAX_ARGS 64
#define MAX_INPUT (256u << 20)

static int fail(const hs_error *e)
{
    fprintf(stderr, "age_tool: %s\n", e->msg);
    return hs_result_exit_code(e->code);
}

static int usage(void)
{
    fprintf(stderr, "usage: age_tool keygen | recipient -i FILE | encrypt [-a] -r R... |\n"
                    "       encrypt-passphrase [-a] [-w N] | decrypt [-i FILE]... [-p]\n");
    return 2;
}

/* Standard input may be a pipe, which hs_read_file (regular files only)
 * does not take. */
static hs_result read_stdin(uint8_t **data, size_t *len, hs_error *e)
{
    size_t cap = 65536, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (buf == NULL)
            return hs_fail(e, HS_E_NOMEM, "standard input: out of memory");
        if (n == cap) {
            if (cap >= MAX_INPUT) {
                free(buf);
                return hs_fail(e, HS_E_USAGE, "standard input: larger than %u bytes", MAX_INPUT);
            }
            uint8_t *grown = realloc(buf, cap * 2);
            if (grown == NULL)
                free(buf);
            buf = grown;
            cap *= 2;
            continue;
        }
        ssize_t got = read(STDIN_FILENO, buf + n, cap - n);
        if (got < 0) {
            free(buf);
            return hs_fail(e, HS_E_IO, "standard input: read failed");
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    *data = buf;
    *len = n;
    return HS_OK;
}

static int write_stdout(const uint8_t *data, size_t len)
{
    hs_error e;
    if (hs_write_fd_all(STDOUT_FILENO, data, len, "standard output", &e) != HS_OK)
        return fail(&e);
    return 0;
}

static int cmd_keygen(void)
{
    char *id = NULL, *rcpt = NULL;
    hs_error e;
    if (hs_age_keygen(&id, &rcpt, &e) != HS_OK)
        return fail(&e);
    printf("# public key: %s\n%s\n", rcpt, id);
    hs_age_secret_free(id);
    free(rcpt);
    return fflush(stdout) == 0 ? 0 : 3;
}

/* Appends the identities of one file to ids[]. */
static hs_result load_identities(const char *path, char **ids, size_t *n, hs_error *e)
{
    uint8_t *text;
    size_t len;
    char **list;
    size_t count;
    hs_result rc = hs_read_file(path, 1u << 20, &text, &len, e);
    if (rc != HS_OK)
        return rc;
    rc = hs_age_parse_identity_file(text, len, &list, &count, e);
    free(text);
    if (rc != HS_OK)
        return hs_error_prefix(e, "%s: ", path);
    for (size_t i = 0; i < count; i++) {
        if (*n < MAX_ARGS)
            ids[(*n)++] = list[i];
        else
            hs_age_secret_free(list[i]);
    }
    free(list);
    return HS_OK;
}

static int cmd_recipient(int argc, char **argv)
{
    char *ids[MAX_ARGS];
    size_t n = 0;
    hs_error e;
    if (argc != 3 || strcmp(argv[1], "-i") != 0)
        return usage();
    if (load_identities(argv[2], ids, &n, &e) != HS_OK)
        return fail(&e);
    int status = 0;
    for (size_t i = 0; i < n; i++) {
        char *r = NULL;
        if (status == 0 && hs_age_identity_to_recipient(ids[i], &r, &e) != HS_OK)
            status = fail(&e);
        if (r != NULL)
            printf("%s\n", r);
        free(r);
        hs_age_secret_free(ids[i]);
    }
    return status;
}

static int cmd_encrypt(int argc, char **argv, bool passphrase_mode)
{
    const char *recipients[MAX_ARGS];
    size_t n = 0;
    bool armor = false;
    int work = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-a") == 0)
            armor = true;
        else if (!passphrase_mode && strcmp(argv[i], "-r") == 0 && i + 1 < argc && n < MAX_ARGS)
            recipients[n++] = argv[++i];
        else if (passphrase_mode && strcmp(argv[i], "-w") == 0 && i + 1 < argc)
            work = atoi(argv[++i]);
        else
            return usage();
    }
    uint8_t *in, *out;
    size_t in_len, out_len;
    hs_error e;
    if (read_stdin(&in, &in_len, &e) != HS_OK)
        return fail(&e);
    hs_result rc;
    if (passphrase_mode) {
        const char *pass = getenv("AGE_TOOL_PASSPHRASE");
        rc = hs_age_encrypt_passphrase(pass ? pass : "", work, in, in_len, armor, &out,
                                       &out_len, &e);
    } else {
        rc = hs_age_encrypt(recipients, n, in, in_len, armor, &out, &out_len, &e);
    }
    free(in);
    if (rc != HS_OK)
        return fail(&e);
    int status = write_stdout(out, out_len);
    free(out);
    return status;
}

static int cmd_decrypt(int argc, char **argv)
{
    char *ids[MAX_ARGS];
    size_t n = 0;
    const char *pass = NULL;
    hs_error e;
    int status = 0;
    for (int i = 1; i < argc && status == 0; i++) {
        if (strcmp(argv[i], "-i") == 0 && i + 1 < argc) {
            if (load_identities(argv[++i], ids, &n, &e) != HS_OK)
                status = fail(&e);
        } else if (strcmp(argv[i], "-p") == 0) {
            pass = getenv("AGE_TOOL_PASSPHRASE");
        } else {
            status = usage();
        }
    }
    uint8_t *in = NULL, *plain = NULL;
    size_t in_len = 0, plain_len = 0;
    if (status == 0 && read_stdin(&in, &in_len, &e) != HS_OK)
        status = fail(&e);
    if (status == 0 && hs_age_decrypt((const char *const *)ids, n, pass, in, in_len, &plain,
                                      &plain_len, &e) != HS_OK)
        status = fail(&e);
    if (status == 0)
        status = write_stdout(plain, plain_len);
    if (plain != NULL)
        hs_secure_free(plain, plain_len);
    free(in);
    for (size_t i = 0; i < n; i++)
        hs_age_secret_free(ids[i]);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    const char *cmd = argv[1];
    if (strcmp(cmd, "keygen") == 0 && argc == 2)
        return cmd_keygen();
    if (strcmp(cmd, "recipient") == 0)
        return cmd_recipient(argc - 1, argv + 1);
    if (strcmp(cmd, "encrypt") == 0)
        return cmd_encrypt(argc - 1, argv + 1, false);
    if (strcmp(cmd, "encrypt-passphrase") == 0)
        return cmd_encrypt(argc - 1, argv + 1, true);
    if (strcmp(cmd, "decrypt") == 0)
        return cmd_decrypt(argc - 1, argv + 1);
    return usage();
}
