/* hsmsign: global options, then one command group. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "keystore/keystore.h"
#include "util/release.h"
#include "util/result.h"
#include "util/secmem.h"

static const char usage_text[] =
    "usage: hsmsign [global options] COMMAND [ARGS]\n"
    "\n"
    "Sign Android releases with keys that never leave a PKCS#11 HSM in plaintext.\n"
    "\n"
    "Commands:\n"
    "  token      initialize, list and describe tokens (SoftHSM convenience: token init --dir)\n"
    "  wrapkey    create or show the token's AES wrap key\n"
    "  key        generate, import, list and show signing keys\n"
    "  sign       sign files: raw, apk, batch, ota, apex\n"
    "  verify     check signatures: apk\n"
    "  signapk    AOSP signapk.jar's command line (byte-identical output, OUT in place)\n"
    "  payload-signer  releasetools' --payload_signer: sign a SHA-256 digest (-in HASH -out SIG)\n"
    "  avb        Android Verified Boot: vbmeta, hash/hashtree footers, avbtool helper\n"
    "  ceremony   provision two HSMs with a wrap key split into shares; restore one\n"
    "  shares     verify backup shares against a ceremony transcript\n"
    "  audit      the signed audit log: show, verify, prove, verify-proof, check, policy\n"
    "  agent      start, stop, status: one login for many commands (HSMSIGN_AGENT)\n"
    "  cache      show or clear the signature cache\n"
    "  help       this text; `hsmsign help COMMAND [SUBCOMMAND]` is COMMAND's --help\n"
    "\n"
    "Global options (each also settable by environment variable and config file):\n"
    "  --module PATH        PKCS#11 module [HSMSIGN_MODULE; default SoftHSMv2]\n"
    "  --module-init-args S the module's configuration string, passed to C_Initialize\n"
    "                       (NSS: \"configdir='sql:DIR' ...\") [HSMSIGN_MODULE_INIT_ARGS]\n"
    "  --accept-custody-gap use a token that does not enforce the wrap key's custody\n"
    "                       attributes (NSS softokn) [HSMSIGN_ACCEPT_CUSTODY_GAP=1]\n"
    "  --token URI|LABEL    token: RFC 7512 pkcs11: URI or label [HSMSIGN_TOKEN]\n"
    "  --pin-source SRC     env:VAR, file:PATH, fd:N or prompt [HSMSIGN_PIN_SOURCE;\n"
    "                       default env:HSMSIGN_PIN if set, else prompt]. Never a PIN itself.\n"
    "  --keystore DIR       key files [HSMSIGN_KEYSTORE; default ./keys]\n"
    "  --audit-log DIR      audit log [HSMSIGN_AUDIT_LOG; default ./audit]\n"
    "  --wrap-key-label L   wrap key label [HSMSIGN_WRAP_KEY_LABEL; default hsmsign-wrap]\n"
    "  --profile NAME       how keys are kept on the token: wrapped, yubihsm or resident\n"
    "                       [HSMSIGN_PROFILE; default: chosen from the token, see\n"
    "                       `hsmsign token info`]\n"
    "  --signature-cache D  signatures already made, reused after verification, or 'off'\n"
    "                       [HSMSIGN_SIGNATURE_CACHE; default ~/.cache/hsmsign/signatures]\n"
    "  --artifact-cache D   whole signed APKs reused after verification: DIR, 'on'\n"
    "                       (~/.cache/hsmsign/artifacts) or 'off' [HSMSIGN_ARTIFACT_CACHE;\n"
    "                       default off]\n"
    "  --config FILE        config file [HSMSIGN_CONFIG; default ~/.config/hsmsign/config,\n"
    "                       else /etc/hsmsign/config; never one in the working directory]\n"
    "  --json               machine-readable output on stdout\n"
    "  -q, --quiet          no progress or notes on stderr\n"
    "  -v, --verbose        more detail\n"
    "  -h, --help           this help; `hsmsign COMMAND --help` for a command\n"
    "  --version            print the version\n"
    "\n"
    "Exit status: 0 success, 1 verification or policy failure, 2 usage error,\n"
    "3 I/O, 4 PKCS#11/token, 5 malformed input, 6 crypto, 7 audit log, 8 not found,\n"
    "9 already exists, 10 out of memory, 11 internal error. See hsmsign(1).\n";

static const struct {
    const char *name;
    int (*run)(const cli_globals *, int, char **);
} commands[] = {
    {"token", cmd_token},
    {"wrapkey", cmd_wrapkey},
    {"key", cmd_key},
    {"sign", cmd_sign},
    {"verify", cmd_verify},
    {"avb", cmd_avb},
    {"signapk", cmd_signapk},
    {"ceremony", cmd_ceremony},
    {"shares", cmd_shares},
    {"audit", cmd_audit},
    {"agent", cmd_agent},
    {"cache", cmd_cache},
    {"payload-signer", cmd_payload_signer},
};

enum { OPT_MODULE_INIT_ARGS = 240, OPT_CUSTODY_GAP, OPT_MODULE = 256, OPT_TOKEN, OPT_PIN_SOURCE, OPT_KEYSTORE, OPT_AUDIT, OPT_CONFIG, OPT_JSON,
       OPT_VERSION, OPT_WRAP_LABEL, OPT_PIN, OPT_PROFILE, OPT_SIGCACHE, OPT_ARTCACHE };

static int parse_globals(int argc, char **argv, cli_globals *g)
{
    static const struct option opts[] = {
        {"module", required_argument, NULL, OPT_MODULE},
        {"module-init-args", required_argument, NULL, OPT_MODULE_INIT_ARGS},
        {"accept-custody-gap", no_argument, NULL, OPT_CUSTODY_GAP},
        {"token", required_argument, NULL, OPT_TOKEN},
        {"pin-source", required_argument, NULL, OPT_PIN_SOURCE},
        {"keystore", required_argument, NULL, OPT_KEYSTORE},
        {"audit-log", required_argument, NULL, OPT_AUDIT},
        {"wrap-key-label", required_argument, NULL, OPT_WRAP_LABEL},
        {"signature-cache", required_argument, NULL, OPT_SIGCACHE},
        {"artifact-cache", required_argument, NULL, OPT_ARTCACHE},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"json", no_argument, NULL, OPT_JSON},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {"pin", required_argument, NULL, OPT_PIN},
        {"profile", required_argument, NULL, OPT_PROFILE},
        {NULL, 0, NULL, 0},
    };
    int c;
    /* '+': stop at the command name; its options are its own. */
    while ((c = getopt_long(argc, argv, "+qvh", opts, NULL)) != -1) {
        switch (c) {
        case OPT_MODULE: g->module = optarg; break;
        case OPT_MODULE_INIT_ARGS: g->module_init_args = optarg; break;
        case OPT_CUSTODY_GAP: g->accept_custody_gap = true; break;
        case OPT_TOKEN: g->token = optarg; break;
        case OPT_PIN_SOURCE: g->pin_source = optarg; break;
        case OPT_KEYSTORE: g->keystore = optarg; break;
        case OPT_AUDIT: g->audit_log = optarg; break;
        case OPT_WRAP_LABEL: g->wrap_label = optarg; break;
        case OPT_PROFILE: g->profile = optarg; break;
        case OPT_SIGCACHE: g->signature_cache = optarg; break;
        case OPT_ARTCACHE: g->artifact_cache = optarg; break;
        case OPT_CONFIG: g->config = optarg; break;
        case OPT_JSON: g->json = true; break;
        case 'q': g->quiet = true; break;
        case 'v': g->verbose++; break;
        case 'h': fputs(usage_text, stdout); return 0;
        case OPT_VERSION: printf("hsmsign %s\n", HSMSIGN_VERSION); return 0;
        case OPT_PIN:
            fprintf(stderr, "hsmsign: a PIN is never accepted on the command line (other users "
                            "can read it in the process list); use --pin-source env:VAR, "
                            "file:PATH, fd:N or prompt\n");
            return 2;
        default: fputs("(see `hsmsign --help`)\n", stderr); return 2;
        }
    }
    return -1;
}

static int find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* `hsmsign help [COMMAND [SUBCOMMAND...]]`: the same text as --help at
 * that level (argv[0] is "help"). */
static int help_command(const cli_globals *g, int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_text, stdout);
        return 0;
    }
    int i = find_command(argv[1]);
    if (i < 0) {
        fprintf(stderr, "hsmsign help: unknown command '%s' (see `hsmsign help`)\n", argv[1]);
        return 2;
    }
    /* COMMAND [SUBCOMMAND...] --help, NULL-terminated like argv. */
    char help_opt[] = "--help";
    char **args = calloc((size_t)argc + 1, sizeof *args);
    if (args == NULL) {
        fputs("hsmsign: out of memory\n", stderr);
        return hs_result_exit_code(HS_E_NOMEM);
    }
    memcpy(args, argv + 1, ((size_t)argc - 1) * sizeof *args);
    args[argc - 1] = help_opt;
    int rc = commands[i].run(g, argc, args);
    free(args);
    return rc;
}

static int run(int argc, char **argv)
{
    cli_globals g;
    memset(&g, 0, sizeof g);
    int rc = parse_globals(argc, argv, &g);
    if (rc >= 0)
        return rc;
    if (optind >= argc) {
        fputs(usage_text, stderr);
        return 2;
    }
    if (strcmp(argv[optind], "help") == 0)
        return help_command(&g, argc - optind, argv + optind);
    cli_config_env(&g);
    hs_error e;
    hs_error_clear(&e);
    if (cli_config_find(&g, &e) != HS_OK)
        return cli_fail(&g, &e);
    if (g.keystore == NULL)
        g.keystore = HS_KEYSTORE_DEFAULT_DIR;
    if (g.audit_log == NULL)
        g.audit_log = HS_AUDIT_DEFAULT_DIR;
    const char *name = argv[optind];
    int i = find_command(name);
    if (i >= 0)
        return commands[i].run(&g, argc - optind, argv + optind);
    fprintf(stderr, "hsmsign: unknown command '%s' (see `hsmsign --help`)\n", name);
    return 2;
}

/* What goes to stdout (JSON, public keys, certificates, help) is what
 * scripts consume, so a failed write (disk full, a closed terminal) must
 * not end in status 0. Stream errors are sticky: one check here covers
 * every print before it, which is why the prints themselves go unchecked. */
static int finish_stdout(int rc)
{
    if (fflush(stdout) == 0 && !ferror(stdout))
        return rc;
    fputs("hsmsign: error writing to standard output\n", stderr);
    return rc != 0 ? rc : hs_result_exit_code(HS_E_IO);
}

/* Called as hsmsign-java (the symlink releasetools' --java_path names). */
static bool called_as_java(const char *argv0)
{
    const char *base = strrchr(argv0, '/');
    return strcmp(base ? base + 1 : argv0, "hsmsign-java") == 0;
}

int main(int argc, char **argv)
{
    hs_harden_process();
    int rc = argc > 0 && called_as_java(argv[0]) ? cli_java_main(argc, argv, run)
                                                  : run(argc, argv);
    hs_release_wait(); /* replaced outputs closed: no thread left at exit */
    return finish_stdout(rc);
}
