/* hsmsign agent start|stop|status: one login and one unwrap per key for
 * many commands (src/lib/agent/, docs/agent.md). The agent is the only
 * process that touches the token; commands reach it through the socket
 * HSMSIGN_AGENT names (cli_open with CLI_AGENT). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/client.h"
#include "agent/protocol.h"
#include "agent/server.h"
#include "cli.h"
#include "keystore/yubihsm.h"
#include "util/encoding.h"

#define PATH_CAP 108 /* sun_path */

static const char start_help[] =
    "usage: hsmsign agent start [--socket PATH] [--idle-timeout SECONDS]\n"
    "                           [--checkpoint-delay SECONDS] [--foreground]\n"
    "                           [--resident-keys N]\n"
    "\n"
    "Logs in to the token once (PIN from the usual --pin-source), then serves\n"
    "signing requests on a Unix socket private to this user, unwrapping each key\n"
    "once for the agent's life. Every signature still goes through the signer\n"
    "and the audit log; a checkpoint is signed and committed once no request came\n"
    "for --checkpoint-delay seconds (default 5) and when the agent exits.\n"
    "Prints the line to use, as ssh-agent does:\n"
    "  HSMSIGN_AGENT=PATH; export HSMSIGN_AGENT; HSMSIGN_AGENT_PID=N; ...\n"
    "Commands that sign (sign raw/apk/batch, avb ..., avb signing-helper, key\n"
    "rotate) then use the agent and need no PIN.\n"
    "\n"
    "  --socket PATH            default HSMSIGN_AGENT if set, else\n"
    "                           $XDG_RUNTIME_DIR/hsmsign/agent.sock, else\n"
    "                           /tmp/hsmsign-UID/agent.sock (directory 0700)\n"
    "  --idle-timeout SECONDS   exit after this long without a request (0: never,\n"
    "                           the default)\n"
    "  --checkpoint-delay SECONDS  quiet time before a checkpoint (default 5)\n"
    "  --foreground             stay attached; log to stderr\n"
    "  --resident-keys N        yubihsm profile: keep up to N unwrapped keys on the\n"
    "                           device between signatures, deleting the least\n"
    "                           recently used beyond that, and all when the agent\n"
    "                           exits (default: what half the free storage holds\n"
    "                           of RSA-4096 keys, at most 8; 0: delete after each)\n";

static const char stop_help[] =
    "usage: hsmsign agent stop [--socket PATH]\n"
    "\n"
    "Asks the agent (--socket, else HSMSIGN_AGENT, else the default socket) to\n"
    "sign a last checkpoint, close its sessions, destroy the unwrapped keys, wipe\n"
    "the PIN and remove its socket; returns when that is done.\n";

static const char status_help[] =
    "usage: hsmsign [--json] agent status [--socket PATH] [--json]\n"
    "\n"
    "Shows the running agent: token, key store, audit log, requests served,\n"
    "signatures, unwraps. Exit 8 when no agent answers.\n";

typedef struct agent_args {
    const char *socket;
    unsigned long idle, checkpoint_delay;
    long resident; /* -1: sized from the free storage */
    bool foreground, json;
} agent_args;

static int parse_args(const char *cmd, int argc, char **argv, agent_args *a)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},
        {"idle-timeout", required_argument, NULL, 'i'},
        {"checkpoint-delay", required_argument, NULL, 'c'},
        {"foreground", no_argument, NULL, 'f'},
        {"json", no_argument, NULL, 'j'},
        {"resident-keys", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    bool start = strcmp(cmd, "agent start") == 0;
    a->checkpoint_delay = 5;
    a->resident = -1;
    cli_reset_getopt();
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's': a->socket = optarg; break;
        case 'i':
            if (!start || !cli_parse_uint(optarg, 30L * 24 * 3600, &a->idle))
                return cli_usage(cmd, "bad --idle-timeout '%s'", optarg);
            break;
        case 'c':
            if (!start || !cli_parse_uint(optarg, 24 * 3600, &a->checkpoint_delay))
                return cli_usage(cmd, "bad --checkpoint-delay '%s'", optarg);
            break;
        case 'f':
            if (!start)
                return cli_usage(cmd, "--foreground is for `agent start`");
            a->foreground = true;
            break;
        case 'j': a->json = true; break;
        case 'r': {
            unsigned long n;
            if (!start || !cli_parse_uint(optarg, HS_YH_MAX_OBJECTS, &n))
                return cli_usage(cmd, "bad --resident-keys '%s'", optarg);
            a->resident = (long)n;
            break;
        }
        default: return 2;
        }
    }
    if (optind < argc)
        return cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
    return -1;
}

/* An absolute path, so the HSMSIGN_AGENT line and the agent's key store
 * and audit log mean the same from any directory. */
static bool absolute(const char *in, char *out, size_t cap)
{
    char cwd[4096];
    int n = in[0] == '/' ? snprintf(out, cap, "%s", in)
            : getcwd(cwd, sizeof cwd) != NULL ? snprintf(out, cap, "%s/%s", cwd, in)
                                              : -1;
    return n >= 0 && (size_t)n < cap;
}

static int socket_path(const cli_globals *g, const agent_args *a, char *out)
{
    hs_error e;
    hs_error_clear(&e);
    const char *env = getenv("HSMSIGN_AGENT");
    const char *given = a->socket != NULL ? a->socket : env != NULL && env[0] ? env : NULL;
    if (given != NULL && !absolute(given, out, PATH_CAP))
        return cli_usage("agent", "socket path too long: %s", given);
    if (given == NULL && hs_agent_default_path(out, PATH_CAP, &e) != HS_OK)
        return cli_fail(g, &e);
    return -1;
}

/* --- start ---------------------------------------------------------------- */

/* yubihsm: how many unwrapped keys stay on the device during a release.
 * By default half the free storage, counted in RSA-4096 keys (15 pages),
 * at most 8: the rest stays free for the keys of other work. */
static int set_resident_keys(const cli_globals *g, const agent_args *a, cli_ctx *ctx)
{
    if (ctx->profile.profile != HS_PROFILE_YUBIHSM)
        return 0;
    unsigned long n = a->resident >= 0 ? (unsigned long)a->resident : 0;
    if (a->resident < 0) {
        unsigned long objects = 0, pages = 0;
        hs_error e;
        hs_error_clear(&e);
        if (hs_yh_free_storage(ctx->p11, &objects, &pages, &e) != HS_OK) {
            cli_close(ctx);
            return cli_fail(g, &e);
        }
        n = pages / 15 / 2 < objects / 2 ? pages / 15 / 2 : objects / 2;
        n = n > 8 ? 8 : n;
    }
    hs_signer_set_resident_keys(ctx->signer, n);
    return 0;
}

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    (void)sig;
    stop_signal = 1;
}

static void log_line(void *ctx, const char *msg)
{
    (void)ctx;
    time_t t = time(NULL);
    struct tm tm;
    char when[32] = "";
    if (gmtime_r(&t, &tm) != NULL)
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(stderr, "%s hsmsign agent[%d]: %s\n", when, (int)getpid(), msg);
    (void)fflush(stderr);
}

static void checkpoint(void *ctx)
{
    cli_audit_checkpoint(ctx);
}

static json_t *agent_info(const cli_ctx *ctx, const char *path)
{
    char kcv[2 * HS_KCV_LEN + 1];
    hs_hex_encode(ctx->wrap.kcv, HS_KCV_LEN, kcv);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "socket", path, "token",
                     ctx->p11->label, "token_serial", ctx->p11->serial, "wrap_key",
                     ctx->wrap.label, "wrap_kcv", kcv, "keystore", ctx->g->keystore, "audit_log",
                     ctx->g->audit_log);
}

/* Tells the waiting parent (daemon mode) how start went: "0\n" or the
 * exit status, then the process detaches. */
static void report_ready(int fd, int rc)
{
    if (fd < 0)
        return;
    char line[16];
    int n = snprintf(line, sizeof line, "%d\n", rc);
    (void)!write(fd, line, (size_t)n);
    close(fd);
}

/* In the daemon: no terminal, stdout to /dev/null, log to PATH.log. */
static int detach(const char *path)
{
    char logp[PATH_CAP + 8];
    snprintf(logp, sizeof logp, "%s.log", path);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    int log = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (null < 0 || log < 0) {
        fprintf(stderr, "hsmsign agent: cannot open %s: %s\n", logp, strerror(errno));
        return 3;
    }
    (void)fflush(stdout);
    (void)fflush(stderr);
    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
    close(null);
    close(log);
    setsid();
    return 0;
}

static const char *exit_reason(hs_agent_exit why)
{
    switch (why) {
    case HS_AGENT_EXIT_STOP: return "stop requested";
    case HS_AGENT_EXIT_SIGNAL: return "signal";
    case HS_AGENT_EXIT_IDLE: return "idle timeout";
    }
    return "?";
}

/* Everything after the fork: the process that holds the token. */
static int run_agent(const cli_globals *g, const agent_args *a, const char *path, int ready_fd)
{
    sigset_t block, wait_mask;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &wait_mask);
    sigdelset(&wait_mask, SIGTERM);
    sigdelset(&wait_mask, SIGINT);
    sigdelset(&wait_mask, SIGHUP);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    hs_error e;
    hs_error_clear(&e);
    int lfd = -1;
    /* Refuse a running agent before asking for the PIN. */
    if (hs_agent_listen(path, &lfd, &e) != HS_OK) {
        int rc = cli_fail(g, &e);
        report_ready(ready_fd, rc);
        return rc;
    }
    cli_ctx ctx;
    int rc = cli_open(g, CLI_SIGNER, &ctx);
    if (rc == 0)
        rc = set_resident_keys(g, a, &ctx);
    json_t *info = rc == 0 ? agent_info(&ctx, path) : NULL;
    if (rc == 0 && info == NULL)
        rc = hs_result_exit_code(HS_E_NOMEM);
    if (rc == 0 && ready_fd >= 0)
        rc = detach(path);
    if (rc != 0) {
        unlink(path);
        close(lfd);
        if (info != NULL)
            cli_close(&ctx);
        json_decref(info);
        report_ready(ready_fd, rc);
        return rc;
    }
    if (ready_fd < 0) {
        printf("HSMSIGN_AGENT=%s; export HSMSIGN_AGENT; HSMSIGN_AGENT_PID=%d; export "
               "HSMSIGN_AGENT_PID;\n", path, (int)getpid());
        (void)fflush(stdout);
    }
    report_ready(ready_fd, 0);
    log_line(NULL, "serving");
    hs_agent_config cfg = {
        .signer = ctx.signer, .audit = ctx.audit, .idle_timeout = (unsigned)a->idle,
        .checkpoint_delay = (unsigned)a->checkpoint_delay, .checkpoint = checkpoint,
        .ctx = &ctx, .log = log_line, .info = info, .stop = &stop_signal,
        .wait_mask = &wait_mask,
    };
    hs_agent_exit why = HS_AGENT_EXIT_SIGNAL;
    int stop_fd = -1;
    hs_result r = hs_agent_serve(&cfg, lfd, &why, &stop_fd, &e);
    /* No new client from here on; then the last checkpoint, the unwrapped
     * keys destroyed, sessions closed, PIN wiped (cli_close). */
    unlink(path);
    close(lfd);
    cli_close(&ctx);
    json_decref(info);
    char msg[96];
    snprintf(msg, sizeof msg, "exiting (%s); sessions closed, socket removed", exit_reason(why));
    log_line(NULL, r == HS_OK ? msg : e.msg);
    hs_agent_stopped(stop_fd);
    return r == HS_OK ? 0 : hs_result_exit_code(r);
}

/* Daemon mode: the child logs in (it may prompt on the terminal) and
 * reports through a pipe; the parent prints the lines once it is ready. */
static int start_daemon(const cli_globals *g, const agent_args *a, const char *path)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        fprintf(stderr, "hsmsign agent: pipe: %s\n", strerror(errno));
        return 3;
    }
    (void)fflush(stdout);
    (void)fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "hsmsign agent: fork: %s\n", strerror(errno));
        return 3;
    }
    if (pid == 0) {
        close(p[0]);
        exit(run_agent(g, a, path, p[1]));
    }
    close(p[1]);
    char buf[16] = "";
    size_t len = 0;
    for (;;) {
        ssize_t n = read(p[0], buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(p[0]);
    if (len == 0) {
        fprintf(stderr, "hsmsign agent: the agent exited before it was ready\n");
        return 11;
    }
    int rc = atoi(buf);
    if (rc != 0)
        return rc;
    printf("HSMSIGN_AGENT=%s; export HSMSIGN_AGENT; HSMSIGN_AGENT_PID=%d; export "
           "HSMSIGN_AGENT_PID;\n", path, (int)pid);
    cli_note(g, "hsmsign agent: pid %d, log %s.log", (int)pid, path);
    return 0;
}

static int agent_start(const cli_globals *g, int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(start_help, stdout);
        return 0;
    }
    agent_args a = {0};
    int rc = parse_args("agent start", argc, argv, &a);
    if (rc >= 0)
        return rc;
    char path[PATH_CAP], keystore[4096], audit[4096];
    if ((rc = socket_path(g, &a, path)) >= 0)
        return rc;
    if (!absolute(g->keystore, keystore, sizeof keystore) ||
        !absolute(g->audit_log, audit, sizeof audit))
        return cli_usage("agent start", "key store or audit log path too long");
    cli_globals local = *g;
    local.keystore = keystore;
    local.audit_log = audit;
    return a.foreground ? run_agent(&local, &a, path, -1) : start_daemon(&local, &a, path);
}

/* --- stop, status --------------------------------------------------------- */

static int connect_agent(const cli_globals *g, int argc, char **argv, const char *cmd,
                         agent_args *a, hs_agent_client **c)
{
    int rc = parse_args(cmd, argc, argv, a);
    char path[PATH_CAP];
    if (rc >= 0 || (rc = socket_path(g, a, path)) >= 0)
        return rc;
    hs_error e;
    hs_error_clear(&e);
    if (hs_agent_connect(path, c, &e) != HS_OK)
        return cli_fail(g, &e);
    return -1;
}

static int agent_stop(const cli_globals *g, int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(stop_help, stdout);
        return 0;
    }
    agent_args a = {0};
    hs_agent_client *c = NULL;
    int rc = connect_agent(g, argc, argv, "agent stop", &a, &c);
    if (rc >= 0)
        return rc;
    hs_error e;
    hs_error_clear(&e);
    json_t *req = json_pack("{s:s}", "op", "stop"), *resp = NULL;
    hs_result r = req != NULL ? hs_agent_call(c, req, &resp, &e)
                              : hs_fail(&e, HS_E_NOMEM, "out of memory");
    if (r == HS_OK)
        r = hs_agent_response_check(resp, &e);
    json_decref(req);
    json_decref(resp);
    hs_agent_disconnect(c);
    if (r != HS_OK)
        return cli_fail(g, &e);
    cli_note(g, "hsmsign agent: stopped");
    return 0;
}

static int agent_status(const cli_globals *g, int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(status_help, stdout);
        return 0;
    }
    agent_args a = {0};
    hs_agent_client *c = NULL;
    int rc = connect_agent(g, argc, argv, "agent status", &a, &c);
    if (rc >= 0)
        return rc;
    const json_t *info = hs_agent_info(c);
    if (a.json || g->json) {
        cli_print_json(json_deep_copy(info));
    } else {
        const char *keys[] = {"socket", "pid", "token", "wrap_key", "keystore", "audit_log",
                              "requests", "signatures", "unwraps", "recoveries",
                              "entries_since_checkpoint", "idle_timeout"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            json_t *v = json_object_get(info, keys[i]);
            if (json_is_string(v))
                printf("%-26s %s\n", keys[i], json_string_value(v));
            else if (json_is_integer(v))
                printf("%-26s %lld\n", keys[i], (long long)json_integer_value(v));
        }
    }
    hs_agent_disconnect(c);
    return 0;
}

int cmd_agent(const cli_globals *g, int argc, char **argv)
{
    static const cli_subcommand subs[] = {
        {"start", agent_start, "log in once and serve signing requests on a private socket"},
        {"stop", agent_stop, "checkpoint, close sessions, wipe, remove the socket"},
        {"status", agent_status, "show the running agent"},
    };
    return cli_dispatch(g, "agent",
                        "A long-lived signer: one login and one unwrap per key for many\n"
                        "commands, which reach it through HSMSIGN_AGENT (docs/agent.md).",
                        subs, sizeof subs / sizeof subs[0], argc, argv);
}
