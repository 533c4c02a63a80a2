/* hsmsign signapk (AOSP signapk.jar's command line, byte-identical
 * output, OUT written in place), hsmsign sign ota, and hsmsign-java (the
 * `java` that releasetools' --java_path runs). See docs/signapk.md. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "signapk/signapk.h"
#include "cli.h"
#include "util/file.h"

#define MAX_CERT_FILE (1024u * 1024u)
#define MAX_KEY_MAP (1024u * 1024u)
#define KEY_MAP_ENV "HSMSIGN_KEY_MAP"
#define DEBIAN_SIGNAPK_JAR "/usr/share/signapk/signapk.jar"

typedef struct signapk_args {
    hs_signapk_options opt;
    const char *cert, *key, *in, *out;
    const char *key_map;
} signapk_args;

static const char signapk_help[] =
    "usage: hsmsign signapk [-w] [-a N] [--align-file-size] [--min-sdk-version N]\n"
    "                       [--disable-v2] [--key-map FILE] [--so-alignment N]\n"
    "                       CERT KEY IN OUT\n"
    "\n"
    "AOSP signapk.jar's command line, output byte-identical to it. KEY names the\n"
    "hsmsign key: its base name without .pk8 (/keys/releasekey.pk8 -> releasekey),\n"
    "or what --key-map FILE (or $HSMSIGN_KEY_MAP) maps the path to: lines\n"
    "\"PATH = NAME\", PATH as given on the command line or its real path; # comments.\n"
    "CERT must hold that key's public key (exit 1 otherwise); its bytes are\n"
    "what signapk would sign with. -w signs an OTA package (whole-file signature).\n"
    "An existing OUT is rewritten in place (same inode) once the whole output is\n"
    "ready, since callers read it through a handle they hold; on error OUT is\n"
    "untouched. Stored .so entries are aligned to --so-alignment (default 16384,\n"
    "as AOSP main's signapk; Debian's signapk 10 uses 4096, which hsmsign-java\n"
    "passes when the jar it is given is Debian's). Refused: several CERT KEY pairs, --enable-v4, --lineage,\n"
    "-providerClass and other JCA options. See docs/signapk.md.\n";

static int parse_int_arg(const char *opt, const char *s, int *out)
{
    unsigned long v;
    if (s == NULL || !cli_parse_uint(s, 65535, &v))
        return cli_usage("signapk", "%s needs a number from 0 to 65535", opt);
    *out = (int)v;
    return -1;
}

/* SignApk.main's loop: options while the argument starts with '-'. */
static int parse_signapk(int argc, char **argv, signapk_args *a)
{
    memset(a, 0, sizeof *a);
    hs_signapk_options_init(&a->opt);
    a->key_map = getenv(KEY_MAP_ENV);
    int i = 1, rc = -1;
    for (; i < argc && argv[i][0] == '-' && rc < 0; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "-w") == 0) {
            a->opt.whole_file = true;
        } else if (strcmp(o, "-a") == 0) {
            rc = parse_int_arg(o, v, &a->opt.alignment);
            i++;
        } else if (strcmp(o, "--align-file-size") == 0) {
            a->opt.align_file_size = true;
        } else if (strcmp(o, "--min-sdk-version") == 0) {
            rc = parse_int_arg(o, v, &a->opt.min_sdk);
            i++;
        } else if (strcmp(o, "--disable-v2") == 0) {
            a->opt.v2 = false;
        } else if (strcmp(o, "--so-alignment") == 0) {
            rc = parse_int_arg(o, v, &a->opt.so_alignment);
            i++;
        } else if (strcmp(o, "--key-map") == 0 && v != NULL) {
            a->key_map = v;
            i++;
        } else if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
            fputs(signapk_help, stdout);
            return 0;
        } else {
            return cli_usage("signapk", "option %s is not supported by hsmsign signapk", o);
        }
    }
    if (rc >= 0)
        return rc;
    int n = argc - i;
    if (n > 4 && n % 2 == 0)
        return cli_usage("signapk", "several CERT KEY pairs are not supported (one signer "
                                    "only)");
    if (n != 4)
        return cli_usage("signapk", "give CERT KEY IN OUT");
    a->cert = argv[i];
    a->key = argv[i + 1];
    a->in = argv[i + 2];
    a->out = argv[i + 3];
    return -1;
}

/* "PATH = NAME" lines; PATH compared with the KEY argument and its real path. */
static hs_result map_key(const char *map, const char *key, char *name, size_t cap, bool *found,
                         hs_error *e)
{
    uint8_t *text = NULL;
    size_t len = 0;
    *found = false;
    hs_result r = hs_read_file(map, MAX_KEY_MAP, &text, &len, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "key map: ");
    char real[PATH_MAX];
    bool have_real = realpath(key, real) != NULL;
    char *save = NULL;
    char *buf = realloc(text, len + 1);
    if (buf == NULL) {
        free(text);
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    buf[len] = 0;
    for (char *line = strtok_r(buf, "\n", &save); line && !*found;
         line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (line[0] == '#' || eq == NULL)
            continue;
        char *l = line, *rgt = eq + 1;
        *eq = 0;
        while (*l == ' ' || *l == '\t')
            l++;
        for (char *t = eq - 1; t >= l && (*t == ' ' || *t == '\t' || *t == '\r'); t--)
            *t = 0;
        while (*rgt == ' ' || *rgt == '\t')
            rgt++;
        rgt[strcspn(rgt, " \t\r")] = 0;
        if (strcmp(l, key) == 0 || (have_real && strcmp(l, real) == 0)) {
            *found = snprintf(name, cap, "%s", rgt) < (int)cap && rgt[0] != 0;
            if (!*found)
                r = hs_fail(e, HS_E_FORMAT, "%s: bad key name for %s", map, key);
            break;
        }
    }
    free(buf);
    return r;
}

/* The hsmsign key KEY stands for. */
static hs_result key_name_for(const signapk_args *a, char *name, size_t cap, hs_error *e)
{
    bool found = false;
    if (a->key_map != NULL) {
        hs_result r = map_key(a->key_map, a->key, name, cap, &found, e);
        if (r != HS_OK || found)
            return r;
    }
    const char *base = strrchr(a->key, '/');
    base = base ? base + 1 : a->key;
    size_t n = strlen(base);
    if (n > 4 && strcmp(base + n - 4, ".pk8") == 0)
        n -= 4;
    if (n == 0 || n >= cap)
        return hs_fail(e, HS_E_USAGE, "%s: cannot derive a key name from this path", a->key);
    memcpy(name, base, n);
    name[n] = 0;
    return HS_OK;
}

/* CERT as signapk reads it: PEM or DER X.509. */
static hs_result read_cert(const char *path, uint8_t **file, size_t *file_len, X509 **cert,
                           hs_error *e)
{
    hs_result r = hs_read_file(path, MAX_CERT_FILE, file, file_len, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "certificate: ");
    BIO *bio = BIO_new_mem_buf(*file, (int)*file_len);
    *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (*cert == NULL) {
        const uint8_t *p = *file;
        *cert = d2i_X509(NULL, &p, (long)*file_len);
    }
    if (*cert == NULL)
        return hs_fail(e, HS_E_FORMAT, "%s: not an X.509 certificate (PEM or DER)", path);
    return HS_OK;
}

typedef struct signapk_run {
    const signapk_args *a;
    const char *purpose;
    uint8_t *cert_file, *cert_der;
    size_t cert_file_len;
    X509 *cert;
    char key_name[256];
    hs_signapk_result res;
    bool in_place;
} signapk_run;

static hs_result key_matches_cert(hs_signer *s, signapk_run *w, hs_apk_key *key, hs_error *e)
{
    const hs_keyfile *kf;
    hs_result r = hs_signer_keyfile(s, w->key_name, &kf, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "%s (hsmsign key '%s'): ", w->a->key, w->key_name);
    EVP_PKEY *cert_pub = X509_get0_pubkey(w->cert);
    if (cert_pub == NULL || EVP_PKEY_eq(cert_pub, kf->pub) != 1)
        return hs_fail(e, HS_E_VERIFY, "%s: certificate does not match hsmsign key '%s' (%s)",
                       w->a->cert, w->key_name, w->a->key);
    int len = i2d_X509(w->cert, &w->cert_der);
    if (len <= 0)
        return hs_fail(e, HS_E_CRYPTO, "%s: cannot encode the certificate", w->a->cert);
    memset(key, 0, sizeof *key);
    key->key_name = w->key_name;
    key->cert_der = w->cert_der;
    key->cert_der_len = (size_t)len;
    key->public_key = kf->pub;
    return HS_OK;
}

/* Signs, records the output in the audit log, then writes OUT. */
static hs_result sign_and_write(hs_signer *s, signapk_run *w, hs_error *e)
{
    hs_apk_key key;
    hs_signapk_options opt = w->a->opt;
    opt.otacert = w->cert_file;
    opt.otacert_len = w->cert_file_len;
    opt.artifact = w->a->in;
    hs_result r = key_matches_cert(s, w, &key, e);
    if (r == HS_OK)
        r = hs_signapk_sign(w->a->in, &key, &opt, hs_signer_fn(s), &w->res, e);
    if (r == HS_OK)
        r = hs_signer_record_output(s, w->purpose, w->key_name, w->a->in, w->res.input_sha256,
                                    w->res.output_sha256, e);
    if (r == HS_OK)
        r = hs_write_file_in_place(w->a->out, w->res.out.data, w->res.out.len, 0644,
                                   &w->in_place, e);
    return r;
}

static int run_signapk(const cli_globals *g, const signapk_args *a, signapk_run *w)
{
    hs_error e;
    hs_error_clear(&e);
    const char *inputs[] = {a->in, a->cert, a->key};
    int rc = cli_check_output(g, a->out, inputs, 3);
    if (rc != 0)
        return rc;
    if (w->key_name[0] == 0 && key_name_for(a, w->key_name, sizeof w->key_name, &e) != HS_OK)
        return cli_fail(g, &e);
    if (w->cert == NULL &&
        read_cert(a->cert, &w->cert_file, &w->cert_file_len, &w->cert, &e) != HS_OK)
        return cli_fail(g, &e);
    cli_ctx ctx;
    rc = cli_open(g, CLI_SIGNER | CLI_AGENT, &ctx);
    if (rc != 0)
        return rc;
    hs_result r = sign_and_write(ctx.signer, w, &e);
    cli_close(&ctx);
    if (r != HS_OK)
        return cli_fail(g, &e);
    if (g->json)
        cli_print_json(json_pack("{s:b, s:s, s:s, s:s, s:b, s:i, s:i}", "ok", 1, "input", a->in,
                                 "output", a->out, "key", w->key_name, "in_place", w->in_place,
                                 "min_sdk", w->res.min_sdk, "signatures", w->res.signatures));
    else if (g->verbose)
        cli_note(g, "signed %s -> %s (key '%s'%s)", a->in, a->out, w->key_name,
                 w->in_place ? ", in place" : "");
    return 0;
}

static void run_free(signapk_run *w)
{
    hs_signapk_result_free(&w->res);
    free(w->cert_file);
    OPENSSL_free(w->cert_der);
    X509_free(w->cert);
}

int cmd_signapk(const cli_globals *g, int argc, char **argv)
{
    signapk_args a;
    int rc = parse_signapk(argc, argv, &a);
    if (rc >= 0)
        return rc;
    signapk_run w = {.a = &a, .purpose = a.opt.whole_file ? "ota" : "apk"};
    rc = run_signapk(g, &a, &w);
    run_free(&w);
    return rc;
}

static const char ota_help[] =
    "usage: hsmsign sign ota --key NAME IN OUT\n"
    "\n"
    "Signs an OTA package with the whole-file signature (the layout of\n"
    "`signapk -w`, byte-identical to it with the key's certificate as CERT):\n"
    "META-INF/com/android/otacert holds the certificate (PEM), the zip comment\n"
    "a PKCS#7 signature over the archive. OUT is written in place if it exists.\n";

/* The key store's certificate as the PEM file signapk would be given. */
static hs_result key_cert_pem(hs_signer *s, signapk_run *w, hs_error *e)
{
    const hs_keyfile *kf;
    hs_result r = hs_signer_keyfile(s, w->key_name, &kf, e);
    if (r != HS_OK)
        return r;
    BIO *bio = BIO_new(BIO_s_mem());
    char *p = NULL;
    long n = 0;
    if (bio == NULL || !PEM_write_bio_X509(bio, kf->cert) || (n = BIO_get_mem_data(bio, &p)) <= 0 ||
        (w->cert_file = malloc((size_t)n)) == NULL) {
        BIO_free(bio);
        return hs_fail(e, HS_E_CRYPTO, "key %s: cannot encode its certificate", w->key_name);
    }
    memcpy(w->cert_file, p, (size_t)n);
    w->cert_file_len = (size_t)n;
    BIO_free(bio);
    w->cert = X509_dup(kf->cert);
    return w->cert ? HS_OK : hs_fail(e, HS_E_NOMEM, "out of memory");
}

int cli_sign_ota(const cli_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *key = NULL;
    int c;
    cli_reset_getopt();
    while ((c = getopt_long(argc, argv, "+k:h", opts, NULL)) != -1) {
        if (c == 'k')
            key = optarg;
        else if (c == 'h') {
            fputs(ota_help, stdout);
            return 0;
        } else
            return cli_usage("sign ota", "unknown option");
    }
    if (key == NULL || argc - optind != 2)
        return cli_usage("sign ota", "give --key NAME IN OUT");
    signapk_args a = {.key = key, .in = argv[optind], .out = argv[optind + 1], .cert = key};
    hs_signapk_options_init(&a.opt);
    a.opt.whole_file = true;
    signapk_run w = {.a = &a, .purpose = "ota"};
    snprintf(w.key_name, sizeof w.key_name, "%s", key);
    const char *inputs[] = {a.in};
    int rc = cli_check_output(g, a.out, inputs, 1);
    cli_ctx ctx;
    if (rc == 0)
        rc = cli_open(g, CLI_SIGNER | CLI_AGENT, &ctx);
    if (rc != 0)
        return rc;
    hs_error e;
    hs_error_clear(&e);
    hs_result r = key_cert_pem(ctx.signer, &w, &e);
    if (r == HS_OK)
        r = sign_and_write(ctx.signer, &w, &e);
    cli_close(&ctx);
    rc = r == HS_OK ? 0 : cli_fail(g, &e);
    if (r == HS_OK)
        cli_note(g, "signed %s -> %s (OTA whole-file, key '%s')", a.in, a.out, key);
    run_free(&w);
    return rc;
}

/* hsmsign-java: JVM options, then `-jar .../signapk*.jar ARGS` runs
 * `hsmsign signapk ARGS` here; anything else goes to the real java. */
static bool is_signapk_jar(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    return strncmp(base, "signapk", 7) == 0 && n > 4 && strcmp(base + n - 4, ".jar") == 0;
}

/* Debian's signapk 10 (package signapk) aligns .so to 4096, not 16384. */
static bool is_debian_jar(const char *path)
{
    char real[PATH_MAX];
    return realpath(path, real) != NULL && strcmp(real, DEBIAN_SIGNAPK_JAR) == 0;
}

/* JVM options that take the next argument as their value. */
static bool jvm_option_with_value(const char *o)
{
    static const char *const with[] = {"-cp", "-classpath", "--class-path", "--module-path",
                                       "-p", "--add-modules", "--add-opens", "--add-exports"};
    for (size_t i = 0; i < sizeof with / sizeof with[0]; i++)
        if (strcmp(o, with[i]) == 0)
            return true;
    return false;
}

/* $HSMSIGN_REAL_JAVA, else the first `java` on PATH that is not us. */
static bool find_real_java(char *out, size_t cap)
{
    const char *env = getenv("HSMSIGN_REAL_JAVA");
    if (env != NULL && env[0] != 0)
        return snprintf(out, cap, "%s", env) < (int)cap;
    char self[PATH_MAX];
    if (realpath("/proc/self/exe", self) == NULL)
        self[0] = 0;
    const char *path = getenv("PATH");
    char *dirs = strdup(path ? path : "/usr/bin:/bin");
    char *save = NULL;
    bool found = false;
    for (char *d = dirs ? strtok_r(dirs, ":", &save) : NULL; d && !found;
         d = strtok_r(NULL, ":", &save)) {
        char cand[PATH_MAX], real[PATH_MAX];
        if (snprintf(cand, sizeof cand, "%s/java", d[0] ? d : ".") >= (int)sizeof cand ||
            access(cand, X_OK) != 0 || realpath(cand, real) == NULL || strcmp(real, self) == 0)
            continue;
        found = snprintf(out, cap, "%s", cand) < (int)cap;
    }
    free(dirs);
    return found;
}

int cli_java_main(int argc, char **argv, int (*hsmsign_main)(int, char **))
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && strcmp(argv[i], "-jar") != 0; i++)
        if (jvm_option_with_value(argv[i]))
            i++;
    if (i + 1 < argc && strcmp(argv[i], "-jar") == 0 && is_signapk_jar(argv[i + 1])) {
        /* hsmsign signapk ARGS; global options come from HSMSIGN_* and the config. */
        int n = argc - (i + 2);
        char **args = calloc((size_t)n + 5, sizeof *args);
        if (args == NULL) {
            fputs("hsmsign-java: out of memory\n", stderr);
            return hs_result_exit_code(HS_E_NOMEM);
        }
        char self[] = "hsmsign", cmd[] = "signapk", so[] = "--so-alignment", debian[] = "4096";
        int k = 0;
        args[k++] = self;
        args[k++] = cmd;
        if (is_debian_jar(argv[i + 1])) {
            args[k++] = so;
            args[k++] = debian;
        }
        memcpy(args + k, argv + i + 2, (size_t)n * sizeof *args);
        int rc = hsmsign_main(n + k, args);
        free(args);
        return rc;
    }
    char java[PATH_MAX];
    if (!find_real_java(java, sizeof java)) {
        fputs("hsmsign-java: no real java found (set HSMSIGN_REAL_JAVA, or put java on PATH)\n",
              stderr);
        return 127;
    }
    argv[0] = java;
    execv(java, argv);
    fprintf(stderr, "hsmsign-java: cannot run %s: %s\n", java, strerror(errno));
    return 127;
}
