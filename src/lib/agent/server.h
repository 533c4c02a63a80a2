/* The agent's server: a Unix socket, private to the user, in front of one
 * signer (one login, each key unwrapped once for the agent's life).
 *
 * One thread serves every connection, so token access is serialised.
 * Requests that arrive together are signed with their audit entries
 * appended without fsync, then one fsync makes them all durable, and only
 * then are the signatures sent: no signature leaves the agent before its
 * entry is on disk. Every connection's peer must run as the agent's user
 * (SO_PEERCRED); any other is refused and logged. */
#ifndef HSMSIGN_AGENT_SERVER_H
#define HSMSIGN_AGENT_SERVER_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>

#include "audit/record.h"
#include "signer/signer.h"
#include "util/result.h"

/* Why hs_agent_serve returned. */
typedef enum hs_agent_exit {
    HS_AGENT_EXIT_STOP,   /* a client sent "stop" (*stop_fd waits for the answer) */
    HS_AGENT_EXIT_SIGNAL, /* *cfg->stop was set (SIGTERM, SIGINT) */
    HS_AGENT_EXIT_IDLE,   /* no request for idle_timeout seconds */
} hs_agent_exit;

typedef struct hs_agent_config {
    hs_signer *signer;
    hs_audit *audit;
    unsigned idle_timeout;     /* seconds without a request before exiting; 0: never */
    unsigned checkpoint_delay; /* seconds without a request before a checkpoint */
    /* Signs a checkpoint of the log and commits it (audit/log.h). */
    void (*checkpoint)(void *ctx);
    void *ctx;
    /* Where refused peers and failed requests are reported. */
    void (*log)(void *ctx, const char *msg);
    json_t *info; /* static hello fields (token, wrap_key, wrap_kcv, keystore, ...) */
    volatile sig_atomic_t *stop; /* set by a signal handler */
    const sigset_t *wait_mask;   /* signal mask while waiting (ppoll) */
} hs_agent_config;

/* Creates the socket at path: its directory is made 0700 when missing and
 * must be owned by this user and not writable by others; an existing
 * socket nobody answers on (a killed agent) is replaced, one an agent
 * answers on is HS_E_EXISTS. The socket is 0600. */
hs_result hs_agent_listen(const char *path, int *fd, hs_error *e) HS_MUST_CHECK;

/* Serves until stop, signal or idle timeout. On HS_AGENT_EXIT_STOP,
 * *stop_fd is the connection that asked (answer it with hs_agent_stopped
 * once everything is released), else -1. Every other connection is closed
 * on return. */
hs_result hs_agent_serve(const hs_agent_config *cfg, int listen_fd, hs_agent_exit *why,
                         int *stop_fd, hs_error *e) HS_MUST_CHECK;

/* Answers "stop" and closes the connection. */
void hs_agent_stopped(int fd);

/* The default socket: $XDG_RUNTIME_DIR/hsmsign/agent.sock, else
 * /tmp/hsmsign-UID/agent.sock. */
hs_result hs_agent_default_path(char *out, size_t cap, hs_error *e) HS_MUST_CHECK;

#endif
