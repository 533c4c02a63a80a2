#include "agent/client.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/protocol.h"
#include "util/encoding.h"
#include "util/secmem.h"

struct hs_agent_client {
    int fd;
    pthread_mutex_t lock;
    hs_agent_inbuf in;
    json_t *info;
    hs_signer_remote remote;
    char path[108];
};

static hs_result connect_socket(const char *path, int *fd, hs_error *e)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return hs_fail(e, HS_E_USAGE, "agent socket path too long: %s", path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    *fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*fd < 0)
        return hs_fail(e, HS_E_IO, "socket: %s", strerror(errno));
    if (connect(*fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int err = errno;
        close(*fd);
        *fd = -1;
        /* ECONNREFUSED: a socket left by a killed agent. */
        return hs_fail(e, err == ENOENT || err == ECONNREFUSED ? HS_E_NOTFOUND : HS_E_IO,
                       "no agent at %s (HSMSIGN_AGENT): %s; start one with `hsmsign agent start`",
                       path, strerror(err));
    }
    /* A socket someone else planted (a shared /tmp) must not receive our
     * digests nor hand us signatures. */
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(*fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        (cred.uid != getuid() && cred.uid != 0)) {
        close(*fd);
        *fd = -1;
        return hs_fail(e, HS_E_VERIFY, "the agent at %s runs as another user; refusing it", path);
    }
    return HS_OK;
}

hs_result hs_agent_call(hs_agent_client *c, const json_t *req, json_t **resp, hs_error *e)
{
    *resp = NULL;
    pthread_mutex_lock(&c->lock);
    hs_result r = c->fd >= 0 ? hs_agent_send(c->fd, req, e)
                             : hs_fail(e, HS_E_IO, "agent connection %s already failed", c->path);
    if (r == HS_OK)
        r = hs_agent_recv(c->fd, &c->in, resp, e);
    if (r != HS_OK && c->fd >= 0) {
        /* Request and answer are out of step now: no further use. */
        close(c->fd);
        c->fd = -1;
    }
    pthread_mutex_unlock(&c->lock);
    return r;
}

hs_result hs_agent_connect(const char *path, hs_agent_client **out, hs_error *e)
{
    *out = NULL;
    hs_agent_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    pthread_mutex_init(&c->lock, NULL);
    snprintf(c->path, sizeof c->path, "%s", path);
    hs_result r = connect_socket(path, &c->fd, e);
    json_t *hello = r == HS_OK ? json_pack("{s:s}", "op", "hello") : NULL;
    if (r == HS_OK)
        r = hello != NULL ? hs_agent_call(c, hello, &c->info, e)
                          : hs_fail(e, HS_E_NOMEM, "out of memory");
    json_decref(hello);
    if (r == HS_E_IO)
        r = hs_error_prefix(e, "the agent at %s dropped the connection (it serves its own user "
                               "only): ", path);
    if (r == HS_OK)
        r = hs_agent_response_check(c->info, e);
    if (r == HS_OK &&
        json_integer_value(json_object_get(c->info, "version")) != HS_AGENT_PROTOCOL_VERSION)
        r = hs_fail(e, HS_E_FORMAT, "the agent at %s speaks another protocol version", path);
    if (r != HS_OK) {
        hs_agent_disconnect(c);
        return r;
    }
    *out = c;
    return HS_OK;
}

void hs_agent_disconnect(hs_agent_client *c)
{
    if (c == NULL)
        return;
    if (c->fd >= 0)
        close(c->fd);
    json_decref(c->info);
    pthread_mutex_destroy(&c->lock);
    hs_wipe(c->in.data, c->in.len);
    free(c);
}

const json_t *hs_agent_info(const hs_agent_client *c)
{
    return c->info;
}

static hs_result remote_sign(void *ctx, const hs_sign_request *req, const uint8_t key_fp[32],
                             uint8_t **sig, size_t *sig_len, hs_error *e)
{
    hs_agent_client *c = ctx;
    json_t *msg = hs_agent_sign_json(req, key_fp), *resp = NULL;
    hs_result r = msg != NULL ? hs_agent_call(c, msg, &resp, e)
                              : hs_fail(e, HS_E_NOMEM, "out of memory");
    if (r == HS_OK)
        r = hs_agent_response_check(resp, e);
    const char *b64 = r == HS_OK ? hs_agent_str(resp, "signature") : NULL;
    if (r == HS_OK && (b64 == NULL || !hs_base64_decode(b64, sig, sig_len)))
        r = hs_fail(e, HS_E_FORMAT, "the agent's answer holds no signature");
    json_decref(msg);
    json_decref(resp);
    return r;
}

static hs_result remote_record_output(void *ctx, const char *purpose, const char *key_name,
                                      const char *artifact, const uint8_t input_sha256[32],
                                      const uint8_t output_sha256[32], hs_error *e)
{
    hs_agent_client *c = ctx;
    json_t *msg = json_pack("{s:s, s:s, s:s, s:s?}", "op", "record-output", "purpose", purpose,
                            "key", key_name, "artifact", artifact);
    json_t *resp = NULL;
    hs_result r = HS_OK;
    if (msg == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    hs_agent_set_hex(msg, "input_sha256", input_sha256, 32);
    hs_agent_set_hex(msg, "output_sha256", output_sha256, 32);
    r = hs_agent_call(c, msg, &resp, e);
    if (r == HS_OK)
        r = hs_agent_response_check(resp, e);
    json_decref(msg);
    json_decref(resp);
    return r;
}

hs_result hs_agent_signer(hs_agent_client *c, hs_signer **out, hs_error *e)
{
    hs_wrapkey wrap;
    memset(&wrap, 0, sizeof wrap);
    const char *label = hs_agent_str(c->info, "wrap_key");
    const char *keystore = hs_agent_str(c->info, "keystore");
    const char *token = hs_agent_str(c->info, "token");
    hs_result r = hs_agent_hex(c->info, "wrap_kcv", wrap.kcv, HS_KCV_LEN, e);
    if (r == HS_OK && (label == NULL || keystore == NULL || token == NULL))
        r = hs_fail(e, HS_E_FORMAT, "the agent's hello lacks its token, wrap key or key store");
    if (r != HS_OK)
        return r;
    snprintf(wrap.label, sizeof wrap.label, "%s", label);
    /* A token without CKA_CHECK_VALUE (NSS) announces zeros: nothing to
     * compare here then; the agent checks each key file by its canary. */
    for (size_t i = 0; i < HS_KCV_LEN; i++)
        wrap.have_kcv = wrap.have_kcv || wrap.kcv[i] != 0;
    c->remote = (hs_signer_remote){.ctx = c, .sign = remote_sign,
                                   .record_output = remote_record_output};
    return hs_signer_new_remote(&c->remote, token, &wrap, keystore, out, e);
}
