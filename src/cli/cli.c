#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "agent/client.h"
#include "audit/git.h"
#include "keystore/keystore.h"
#include "keystore/yubihsm.h"

int cli_fail(const cli_globals *g, const hs_error *e)
{
    int code = hs_result_exit_code(e->code);
    if (g != NULL && g->json) {
        json_t *o = json_pack("{s:b, s:s, s:s, s:i}", "ok", 0, "error", e->msg, "kind",
                              hs_result_name(e->code), "exit_code", code);
        if (e->ckr != 0)
            json_object_set_new(o, "ckr", json_integer((json_int_t)e->ckr));
        cli_print_json(o);
    }
    fprintf(stderr, "hsmsign: %s\n", e->msg[0] ? e->msg : hs_result_name(e->code));
    return code;
}

int cli_usage(const char *command, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hsmsign %s: ", command);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see `hsmsign %s --help`)\n", command);
    va_end(ap);
    return 2;
}

void cli_note(const cli_globals *g, const char *fmt, ...)
{
    if (g->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void cli_print_json(json_t *v)
{
    if (v == NULL)
        return;
    json_dumpf(v, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
    /* Unchecked here: main() checks stdout's sticky error state at exit. */
    (void)fflush(stdout);
    json_decref(v);
}

static bool progress_shown;

void cli_progress(const cli_globals *g, size_t done, size_t total, const char *what)
{
    if (g->quiet || !isatty(STDERR_FILENO))
        return;
    fprintf(stderr, "\r\033[K[%zu/%zu] %s", done, total, what);
    /* A progress line that cannot be shown is no reason to stop signing. */
    (void)fflush(stderr);
    progress_shown = true;
}

void cli_progress_end(const cli_globals *g)
{
    if (progress_shown && !g->quiet && isatty(STDERR_FILENO))
        fprintf(stderr, "\r\033[K");
    progress_shown = false;
}

bool cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return true;
    }
    return false;
}

int cli_plain_args(int argc, char **argv, int want, const char *command, const char *help,
                   const char *missing)
{
    if (cli_wants_help(argc, argv)) {
        fputs(help, stdout);
        return 0;
    }
    if (argc != want + 1)
        return cli_usage(command, "%s", want == 0 ? "no arguments are taken" : missing);
    return -1;
}

int cli_plain_open(const cli_globals *g, int argc, char **argv, const char *command,
                   const char *help, unsigned what, cli_ctx *ctx)
{
    int rc = cli_plain_args(argc, argv, 0, command, help, NULL);
    if (rc >= 0)
        return rc;
    rc = cli_open(g, what, ctx);
    return rc != 0 ? rc : -1;
}

bool cli_parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    if (s == NULL || *s == '\0' || *s == '-')
        return false;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

void cli_reset_getopt(void)
{
    optind = 0; /* glibc: 0 re-initializes getopt completely */
    opterr = 1;
}

/* The PIN prompt the library calls for `--pin-source prompt`: reads from
 * the controlling terminal with echo off. */
static hs_result tty_prompt(const char *prompt, char *buf, size_t cap, hs_error *e)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return hs_fail(e, HS_E_USAGE,
                       "no terminal to ask for the PIN on; give --pin-source env:VAR, file:PATH or fd:N");
    struct termios old, quiet;
    bool restore = tcgetattr(fd, &old) == 0;
    if (restore) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
        quiet.c_lflag |= ICANON;
        tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    (void)!write(fd, prompt, strlen(prompt));
    size_t len = 0;
    hs_result r = HS_OK;
    for (;;) {
        char c;
        ssize_t n = read(fd, &c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || c == '\n')
            break;
        if (len + 1 < cap)
            buf[len++] = c;
        else
            r = hs_fail(e, HS_E_USAGE, "PIN too long");
    }
    buf[len] = '\0';
    (void)!write(fd, "\n", 1);
    if (restore)
        tcsetattr(fd, TCSAFLUSH, &old);
    close(fd);
    return r;
}

hs_result cli_pin_source(const char *spec, const char *default_env, hs_pin_source *out, hs_error *e)
{
    hs_result r;
    if (spec != NULL) {
        r = hs_pin_source_parse(spec, out, e);
    } else if (hs_pin_env_available(default_env)) {
        char def[64];
        snprintf(def, sizeof def, "env:%s", default_env);
        r = hs_pin_source_parse(def, out, e);
    } else {
        r = hs_pin_source_parse("prompt", out, e);
    }
    out->prompt = tty_prompt;
    return r;
}

/* The agent holds the token, the login and the audit log: only connect
 * (docs/agent.md). */
static int open_agent(const cli_globals *g, const char *path, cli_ctx *ctx)
{
    hs_error e;
    hs_error_clear(&e);
    hs_result r = hs_agent_connect(path, &ctx->agent, &e);
    if (r == HS_OK)
        r = hs_agent_signer(ctx->agent, &ctx->signer, &e);
    if (r != HS_OK) {
        cli_close(ctx);
        return cli_fail(g, &e);
    }
    return 0;
}

/* The signer's warnings (a cache entry dropped as forged) on stderr, even
 * with -q: they say something is wrong. */
static void print_warning(void *ctx, const char *message)
{
    (void)ctx;
    fprintf(stderr, "hsmsign: warning: %s\n", message);
}

static hs_result open_sigcache(const cli_globals *g, hs_signer *s, hs_error *e)
{
    hs_sigcache *c = NULL;
    hs_result r = cli_open_sigcache(g, &c, e);
    if (r == HS_OK) {
        hs_signer_set_cache(s, c);
        hs_signer_set_warn(s, print_warning, NULL);
    }
    return r;
}

int cli_open(const cli_globals *g, unsigned what, cli_ctx *ctx)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->g = g;
    const char *agent = getenv("HSMSIGN_AGENT");
    if ((what & CLI_AGENT) && (what & CLI_SIGNER) && agent != NULL && agent[0] != '\0')
        return open_agent(g, agent, ctx);
    hs_error e;
    hs_error_clear(&e);
    hs_result r = hs_p11_open_args(g->module, g->module_init_args, &ctx->p11, &e);
    if (r == HS_OK) {
        ctx->p11->accept_custody_gap = g->accept_custody_gap;
        r = hs_p11_select_token(ctx->p11, g->token, &e);
        if (r == HS_OK)
            r = hs_profile_choose(ctx->p11, g->profile, &ctx->profile, &e);
    }
    if (r == HS_OK && (what & (CLI_LOGIN | CLI_SIGNER))) {
        hs_pin_source src;
        r = cli_pin_source(g->pin_source, "HSMSIGN_PIN", &src, &e);
        if (r == HS_OK)
            r = hs_p11_login(ctx->p11, &src, &e);
    }
    if (r == HS_OK && (what & CLI_SIGNER)) {
        /* A signing command ends in an audit commit: libgit2 loads and
         * initialises on a thread while this one talks to the token (the
         * module is loaded by now, so the two dlopens do not queue). */
        hs_auditgit_warm_up();
        bool wrapped = hs_profile_ops_of(ctx->profile.profile)->has_wrap_key;
        if (wrapped && ctx->profile.profile == HS_PROFILE_YUBIHSM)
            r = hs_yh_wrapkey_find(ctx->p11, g->wrap_label, &ctx->wrap, &e);
        else if (wrapped)
            r = hs_wrapkey_find(ctx->p11, g->wrap_label, &ctx->wrap, &e);
        if (r == HS_OK && wrapped && ctx->wrap.custody_gap && !g->quiet)
            fprintf(stderr, "hsmsign: note: token '%s' does not enforce the wrap key's custody "
                            "attributes (accepted with --accept-custody-gap; docs/tokens.md)\n",
                    ctx->p11->label);
        if (r == HS_OK)
            r = cli_open_audit(ctx, &e);
        if (r == HS_OK)
            r = hs_signer_new(ctx->p11, ctx->profile.profile, wrapped ? &ctx->wrap : NULL,
                              g->keystore, ctx->audit, &ctx->signer, &e);
        if (r == HS_OK)
            r = open_sigcache(g, ctx->signer, &e);
    }
    if (r != HS_OK) {
        cli_close(ctx);
        return cli_fail(g, &e);
    }
    return 0;
}

hs_result cli_require_wrap_profile(const cli_ctx *ctx, const char *doing, hs_error *e)
{
    if (hs_profile_ops_of(ctx->profile.profile)->has_wrap_key)
        return HS_OK;
    return hs_fail(e, HS_E_USAGE,
                   "token '%s' is used with the %s profile (%s): it has no wrap key and no "
                   "shares, so there is nothing to %s. Signing keys are generated inside it with "
                   "`hsmsign key generate` and never leave it; `hsmsign audit init` makes the "
                   "audit key. To use a wrap key on a token that can, give --profile wrapped",
                   ctx->p11->label, hs_profile_name(ctx->profile.profile), ctx->profile.why,
                   doing);
}

hs_result cli_open_audit(cli_ctx *ctx, hs_error *e)
{
    if (ctx->audit_key.public_key == NULL) {
        hs_result r = hs_auditkey_find(ctx->p11, &ctx->audit_key, e);
        if (r == HS_E_NOTFOUND)
            hs_error_clear(e); /* hs_audit_open says what to do, in words */
        else if (r != HS_OK)
            return r;
    }
    hs_audit_context ac = {.token_label = ctx->p11->label, .token_serial = ctx->p11->serial,
                           .batch_id = getenv("HSMSIGN_BATCH_ID"),
                           .audit_key = &ctx->audit_key, .p11 = ctx->p11};
    return hs_audit_open(ctx->g->audit_log, &ac, &ctx->audit, e);
}

void cli_close(cli_ctx *ctx)
{
    cli_audit_checkpoint(ctx);
    hs_signer_free(ctx->signer);
    ctx->signer = NULL;
    hs_agent_disconnect(ctx->agent);
    ctx->agent = NULL;
    hs_audit_close(ctx->audit);
    ctx->audit = NULL;
    /* cli_open's warm-up, when the audit log was never opened (a command
     * that failed first): no libgit2 initialisation left running at exit. */
    hs_auditgit_warm_wait();
    hs_auditkey_clear(&ctx->audit_key);
    hs_p11_close(ctx->p11);
    ctx->p11 = NULL;
}

int cli_dispatch(const cli_globals *g, const char *group, const char *description,
                 const cli_subcommand *subs, size_t n, int argc, char **argv)
{
    bool help = argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0;
    if (help) {
        FILE *out = argc < 2 ? stderr : stdout;
        fprintf(out, "usage: hsmsign %s SUBCOMMAND [ARGS]\n\n%s\n\nSubcommands:\n", group,
                description);
        for (size_t i = 0; i < n; i++)
            fprintf(out, "  %-14s %s\n", subs[i].name, subs[i].summary);
        fprintf(out, "\n`hsmsign %s SUBCOMMAND --help` for its options.\n", group);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(subs[i].name, argv[1]) == 0)
            return subs[i].run(g, argc - 1, argv + 1);
    fprintf(stderr, "hsmsign %s: unknown subcommand '%s' (see `hsmsign %s --help`)\n", group,
            argv[1], group);
    return 2;
}
