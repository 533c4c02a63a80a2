#include "agent/server.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent/protocol.h"
#include "util/encoding.h"
#include "util/file.h"
#include "util/secmem.h"

#define MAX_CONNS 64

typedef struct conn {
    int fd;
    pid_t pid;
    bool closing;
    hs_agent_inbuf *in;
} conn;

/* One answer of a round, sent after the round's entries are durable. */
typedef struct reply {
    conn *c;
    json_t *msg;   /* the answer without its signature */
    uint8_t *sig;  /* a signature whose entry was appended without fsync */
    size_t sig_len;
} reply;

typedef struct server {
    const hs_agent_config *cfg;
    int listen_fd;
    conn conns[MAX_CONNS];
    size_t n_conns;
    reply *replies;
    size_t n_replies, cap_replies;
    unsigned long requests;
    size_t checkpointed; /* hs_audit_appended at the last checkpoint */
    /* hs_audit_fresh at the last checkpoint: a batch of reuse entries only
     * defers its checkpoint (record.h). */
    size_t checkpointed_fresh;
    long long last_request_ms;
    int stopper_fd; /* the connection that sent "stop", or -1 */
} server;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void agent_log(const server *s, const char *fmt, ...) HS_PRINTF(2, 3);
static void agent_log(const server *s, const char *fmt, ...)
{
    if (s->cfg->log == NULL)
        return;
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->cfg->log(s->cfg->ctx, msg);
}

hs_result hs_agent_default_path(char *out, size_t cap, hs_error *e)
{
    const char *rt = getenv("XDG_RUNTIME_DIR");
    int n = rt != NULL && rt[0] == '/' ? snprintf(out, cap, "%s/hsmsign/agent.sock", rt)
                                       : snprintf(out, cap, "/tmp/hsmsign-%u/agent.sock",
                                                  (unsigned)getuid());
    if (n < 0 || (size_t)n >= cap)
        return hs_fail(e, HS_E_USAGE, "the agent's socket path is too long; give --socket");
    return HS_OK;
}

/* The socket's directory: created 0700, else it must be ours and closed
 * to others, so no one else can reach or replace the socket. */
static hs_result private_dir(const char *path, hs_error *e)
{
    char *copy = strdup(path);
    if (copy == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    char *dir = dirname(copy);
    struct stat st;
    hs_result r = HS_OK;
    if (lstat(dir, &st) != 0 && errno == ENOENT)
        r = hs_mkdir_p(dir, 0700, e);
    if (r == HS_OK && lstat(dir, &st) != 0)
        r = hs_fail(e, HS_E_IO, "%s: %s", dir, strerror(errno));
    if (r == HS_OK && (!S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 022) != 0))
        r = hs_fail(e, HS_E_VERIFY,
                    "%s: the agent's directory must be a directory owned by this user and "
                    "writable by no one else", dir);
    free(copy);
    return r;
}

static hs_result fill_addr(const char *path, struct sockaddr_un *sa, hs_error *e)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (path == NULL)
        return hs_fail(e, HS_E_USAGE, "no agent socket path");
    size_t n = strlen(path);
    if (n >= sizeof sa->sun_path)
        return hs_fail(e, HS_E_USAGE, "agent socket path too long (%zu bytes, at most %zu): %.200s",
                       n, sizeof sa->sun_path - 1, path);
    memcpy(sa->sun_path, path, n + 1);
    return HS_OK;
}

/* An existing socket: an agent answering on it is kept; one nobody
 * answers on was left by a killed agent and is removed. */
static hs_result clear_stale(const char *path, const struct sockaddr_un *sa, hs_error *e)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? HS_OK : hs_fail(e, HS_E_IO, "%s: %s", path, strerror(errno));
    if (!S_ISSOCK(st.st_mode) || st.st_uid != getuid())
        return hs_fail(e, HS_E_EXISTS, "%s exists and is not this user's socket; not replacing it",
                       path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return hs_fail(e, HS_E_IO, "socket: %s", strerror(errno));
    int rc = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
    int err = errno;
    close(fd);
    if (rc == 0)
        return hs_fail(e, HS_E_EXISTS, "an agent is already running at %s", path);
    if (err != ECONNREFUSED)
        return hs_fail(e, HS_E_IO, "%s: %s", path, strerror(err));
    if (unlink(path) != 0 && errno != ENOENT)
        return hs_fail(e, HS_E_IO, "removing the stale socket %s: %s", path, strerror(errno));
    return HS_OK;
}

hs_result hs_agent_listen(const char *path, int *fd, hs_error *e)
{
    *fd = -1;
    struct sockaddr_un sa;
    hs_result r = fill_addr(path, &sa, e);
    if (r == HS_OK)
        r = private_dir(path, e);
    if (r == HS_OK)
        r = clear_stale(path, &sa, e);
    if (r != HS_OK)
        return r;
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0)
        return hs_fail(e, HS_E_IO, "socket: %s", strerror(errno));
    /* Created 0600 from the start: no moment where another user could
     * connect (the directory already keeps them out; this is the second
     * wall). */
    mode_t old = umask(0177);
    int rc = bind(s, (struct sockaddr *)&sa, sizeof sa);
    int err = errno;
    umask(old);
    if (rc != 0 || listen(s, 64) != 0) {
        err = rc != 0 ? err : errno;
        close(s);
        return hs_fail(e, err == EADDRINUSE ? HS_E_EXISTS : HS_E_IO, "%s: cannot listen: %s", path,
                       strerror(err));
    }
    *fd = s;
    return HS_OK;
}

/* --- connections -------------------------------------------------------- */

static void accept_all(server *s)
{
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return; /* EAGAIN: no more; anything else: the client gave up */
        struct ucred cred;
        socklen_t len = sizeof cred;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
            agent_log(s, "refused a connection: SO_PEERCRED failed: %s", strerror(errno));
            close(fd);
            continue;
        }
        if (cred.uid != getuid()) {
            agent_log(s, "refused a connection from uid %u (pid %d): the agent serves uid %u only",
                  (unsigned)cred.uid, (int)cred.pid, (unsigned)getuid());
            close(fd);
            continue;
        }
        hs_agent_inbuf *in = s->n_conns < MAX_CONNS ? malloc(sizeof *in) : NULL;
        if (in == NULL) {
            agent_log(s, "refused a connection from pid %d: too many connections", (int)cred.pid);
            close(fd);
            continue;
        }
        in->len = 0;
        s->conns[s->n_conns++] = (conn){.fd = fd, .pid = cred.pid, .in = in};
    }
}

static void drop_conn(server *s, size_t i)
{
    close(s->conns[i].fd);
    free(s->conns[i].in);
    s->conns[i] = s->conns[--s->n_conns];
}

/* --- requests ------------------------------------------------------------ */

static bool add_reply(server *s, conn *c, json_t *msg, uint8_t *sig, size_t sig_len)
{
    if (s->n_replies == s->cap_replies) {
        size_t cap = s->cap_replies ? 2 * s->cap_replies : 16;
        reply *grown = realloc(s->replies, cap * sizeof *grown);
        if (grown == NULL)
            return false;
        s->replies = grown;
        s->cap_replies = cap;
    }
    s->replies[s->n_replies++] = (reply){.c = c, .msg = msg, .sig = sig, .sig_len = sig_len};
    return true;
}

static json_t *ok_json(void)
{
    return json_pack("{s:b}", "ok", 1);
}

static json_t *status_json(server *s)
{
    json_t *o = json_deep_copy(s->cfg->info);
    hs_signer_stats st = hs_signer_get_stats(s->cfg->signer);
    size_t appended = hs_audit_appended(s->cfg->audit);
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "ok", json_true());
    json_object_set_new(o, "version", json_integer(HS_AGENT_PROTOCOL_VERSION));
    json_object_set_new(o, "pid", json_integer(getpid()));
    json_object_set_new(o, "requests", json_integer((json_int_t)s->requests));
    json_object_set_new(o, "connections", json_integer((json_int_t)s->n_conns));
    json_object_set_new(o, "signatures", json_integer(st.signatures));
    json_object_set_new(o, "unwraps", json_integer(st.unwraps));
    json_object_set_new(o, "reused", json_integer(st.reused)); /* of signatures, from the cache */
    json_object_set_new(o, "recoveries", json_integer(st.recoveries));
    json_object_set_new(o, "entries_since_checkpoint",
                        json_integer((json_int_t)(appended - s->checkpointed)));
    json_object_set_new(o, "idle_timeout", json_integer(s->cfg->idle_timeout));
    return o;
}

/* Signs with the entry appended but not yet fsynced; *sig is sent only
 * after the round's sync. */
static hs_result do_sign(server *s, const json_t *msg, uint8_t **sig, size_t *sig_len, hs_error *e)
{
    hs_agent_sign_msg m;
    hs_result r = hs_agent_sign_parse(msg, &m, e);
    if (r != HS_OK)
        return r;
    const hs_keyfile *kf;
    r = hs_signer_keyfile(s->cfg->signer, m.key, &kf, e);
    if (r == HS_OK && !hs_ct_equal(kf->fingerprint, m.key_fingerprint, 32))
        r = hs_fail(e, HS_E_VERIFY,
                    "key '%s': the client's key file is not the agent's (another key store?)",
                    m.key);
    m.req.defer_durability = true;
    if (r == HS_OK)
        r = hs_signer_sign(s->cfg->signer, &m.req, sig, sig_len, e);
    hs_agent_sign_msg_free(&m);
    return r;
}

static hs_result do_record_output(server *s, const json_t *msg, hs_error *e)
{
    uint8_t in[32], out[32];
    const char *purpose = hs_agent_str(msg, "purpose"), *key = hs_agent_str(msg, "key");
    hs_result r = hs_agent_hex(msg, "input_sha256", in, sizeof in, e);
    if (r == HS_OK)
        r = hs_agent_hex(msg, "output_sha256", out, sizeof out, e);
    if (r == HS_OK && (purpose == NULL || key == NULL))
        r = hs_fail(e, HS_E_FORMAT, "agent record-output request: purpose or key missing");
    if (r == HS_OK)
        r = hs_signer_record_output(s->cfg->signer, purpose, key, hs_agent_str(msg, "artifact"),
                                    in, out, e);
    return r;
}

/* Handles one request; false when memory ran out for its answer. */
static bool handle(server *s, conn *c, const json_t *msg)
{
    hs_error e;
    hs_error_clear(&e);
    const char *op = hs_agent_str(msg, "op");
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    json_t *ans = NULL;
    hs_result r = HS_OK;
    s->requests++;
    s->last_request_ms = now_ms();
    if (op != NULL && strcmp(op, "hello") == 0) {
        ans = status_json(s);
    } else if (op != NULL && strcmp(op, "sign") == 0) {
        r = do_sign(s, msg, &sig, &sig_len, &e);
    } else if (op != NULL && strcmp(op, "record-output") == 0) {
        r = do_record_output(s, msg, &e);
    } else if (op != NULL && strcmp(op, "stop") == 0) {
        s->stopper_fd = c->fd; /* answered once everything is released */
        return true;
    } else {
        r = hs_fail(&e, HS_E_USAGE, "unknown agent request \"%s\"", op != NULL ? op : "");
    }
    if (r != HS_OK) {
        agent_log(s, "request %s from pid %d failed: %s", op != NULL ? op : "?", (int)c->pid, e.msg);
        ans = hs_agent_error_json(&e);
    } else if (ans == NULL) {
        ans = ok_json();
    }
    if (ans == NULL || !add_reply(s, c, ans, sig, sig_len)) {
        json_decref(ans);
        hs_wipe(sig, sig_len);
        free(sig);
        c->closing = true;
        return false;
    }
    return true;
}

static void read_conn(server *s, conn *c)
{
    ssize_t n = read(c->fd, c->in->data + c->in->len, sizeof c->in->data - c->in->len);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        c->closing = true;
        return;
    }
    c->in->len += (size_t)n;
    for (;;) {
        hs_error e;
        json_t *msg = NULL;
        if (hs_agent_inbuf_take(c->in, &msg, &e) != HS_OK) {
            agent_log(s, "dropped the connection of pid %d: %s", (int)c->pid, e.msg);
            c->closing = true;
            return;
        }
        if (msg == NULL)
            return;
        bool ok = handle(s, c, msg);
        json_decref(msg);
        if (!ok || s->stopper_fd >= 0)
            return;
    }
}

/* The round's deferred entries become durable here, before any answer
 * leaves; if they cannot, every signature of the round is wiped and
 * answered with the error instead. */
static void flush_replies(server *s)
{
    bool deferred = false;
    for (size_t i = 0; i < s->n_replies; i++)
        deferred = deferred || s->replies[i].sig != NULL;
    hs_error e;
    hs_error_clear(&e);
    hs_result sync = deferred ? hs_signer_sync(s->cfg->signer, &e) : HS_OK;
    if (sync != HS_OK)
        agent_log(s, "audit log not durable, %s", e.msg);
    for (size_t i = 0; i < s->n_replies; i++) {
        reply *rp = &s->replies[i];
        if (rp->sig != NULL && sync != HS_OK) {
            json_decref(rp->msg);
            rp->msg = hs_agent_error_json(&e);
        } else if (rp->sig != NULL) {
            char *b64 = hs_base64_encode(rp->sig, rp->sig_len);
            json_object_set_new(rp->msg, "signature", b64 != NULL ? json_string(b64) : json_null());
            free(b64);
        }
        hs_error se;
        if (!rp->c->closing && (rp->msg == NULL || hs_agent_send(rp->c->fd, rp->msg, &se) != HS_OK))
            rp->c->closing = true;
        json_decref(rp->msg);
        hs_wipe(rp->sig, rp->sig_len);
        free(rp->sig);
    }
    s->n_replies = 0;
}

/* --- the loop ------------------------------------------------------------ */

static int poll_timeout(const server *s, long long now)
{
    long long wait = -1;
    const hs_agent_config *c = s->cfg;
    if (c->idle_timeout > 0)
        wait = s->last_request_ms + (long long)c->idle_timeout * 1000 - now;
    if (hs_audit_fresh(c->audit) > s->checkpointed_fresh) {
        long long cp = s->last_request_ms + (long long)c->checkpoint_delay * 1000 - now;
        if (wait < 0 || cp < wait)
            wait = cp;
    }
    if (wait < 0 && (c->idle_timeout > 0 || hs_audit_fresh(c->audit) > s->checkpointed_fresh))
        wait = 0;
    return wait > 60000 ? 60000 : (int)wait;
}

static void timers(server *s, long long now, bool *idle)
{
    const hs_agent_config *c = s->cfg;
    size_t fresh = hs_audit_fresh(c->audit);
    if (fresh > s->checkpointed_fresh &&
        now - s->last_request_ms >= (long long)c->checkpoint_delay * 1000) {
        if (c->checkpoint != NULL)
            c->checkpoint(c->ctx);
        s->checkpointed = hs_audit_appended(c->audit);
        s->checkpointed_fresh = fresh;
    }
    *idle = c->idle_timeout > 0 && now - s->last_request_ms >= (long long)c->idle_timeout * 1000;
}

static hs_result serve_round(server *s, bool *done, hs_agent_exit *why, hs_error *e)
{
    struct pollfd pfd[MAX_CONNS + 1];
    pfd[0] = (struct pollfd){.fd = s->listen_fd, .events = POLLIN};
    for (size_t i = 0; i < s->n_conns; i++)
        pfd[i + 1] = (struct pollfd){.fd = s->conns[i].fd, .events = POLLIN};
    int t = poll_timeout(s, now_ms());
    struct timespec ts = {.tv_sec = t / 1000, .tv_nsec = (long)(t % 1000) * 1000000};
    int n = ppoll(pfd, s->n_conns + 1, t < 0 ? NULL : &ts, s->cfg->wait_mask);
    if (n < 0 && errno != EINTR)
        return hs_fail(e, HS_E_IO, "agent: poll failed: %s", strerror(errno));
    if (*s->cfg->stop) {
        *why = HS_AGENT_EXIT_SIGNAL;
        *done = true;
        return HS_OK;
    }
    size_t polled = s->n_conns;
    for (size_t i = 0; n > 0 && i < polled; i++)
        if (pfd[i + 1].revents != 0 && s->stopper_fd < 0)
            read_conn(s, &s->conns[i]);
    flush_replies(s);
    for (size_t i = s->n_conns; i-- > 0;)
        if (s->conns[i].closing && s->conns[i].fd != s->stopper_fd)
            drop_conn(s, i);
    if (s->stopper_fd >= 0) {
        *why = HS_AGENT_EXIT_STOP;
        *done = true;
        return HS_OK;
    }
    if (n > 0 && pfd[0].revents != 0)
        accept_all(s);
    bool idle;
    timers(s, now_ms(), &idle);
    if (idle) {
        *why = HS_AGENT_EXIT_IDLE;
        *done = true;
    }
    return HS_OK;
}

hs_result hs_agent_serve(const hs_agent_config *cfg, int listen_fd, hs_agent_exit *why,
                         int *stop_fd, hs_error *e)
{
    server s = {.cfg = cfg, .listen_fd = listen_fd, .last_request_ms = now_ms(),
                .checkpointed = hs_audit_appended(cfg->audit),
                .checkpointed_fresh = hs_audit_fresh(cfg->audit), .stopper_fd = -1};
    *stop_fd = -1;
    bool done = false;
    hs_result r = HS_OK;
    while (r == HS_OK && !done)
        r = serve_round(&s, &done, why, e);
    for (size_t i = s.n_conns; i-- > 0;) {
        if (s.conns[i].fd == s.stopper_fd) {
            *stop_fd = s.conns[i].fd;
            free(s.conns[i].in);
            s.conns[i] = s.conns[--s.n_conns];
            continue;
        }
        drop_conn(&s, i);
    }
    free(s.replies);
    return r;
}

void hs_agent_stopped(int fd)
{
    if (fd < 0)
        return;
    json_t *ok = ok_json();
    hs_error e;
    /* The stopper may have gone; everything is released either way. */
    if (ok != NULL && hs_agent_send(fd, ok, &e) != HS_OK)
        hs_error_clear(&e);
    json_decref(ok);
    close(fd);
}
