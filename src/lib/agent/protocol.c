#include "agent/protocol.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/encoding.h"

hs_result hs_agent_inbuf_take(hs_agent_inbuf *buf, json_t **msg, hs_error *e)
{
    *msg = NULL;
    char *nl = memchr(buf->data, '\n', buf->len);
    if (nl == NULL)
        return buf->len < sizeof buf->data
                   ? HS_OK
                   : hs_fail(e, HS_E_FORMAT, "agent message longer than %d bytes",
                             HS_AGENT_MSG_MAX);
    size_t line = (size_t)(nl - buf->data);
    json_error_t je;
    json_t *v = json_loadb(buf->data, line, JSON_REJECT_DUPLICATES, &je);
    memmove(buf->data, nl + 1, buf->len - line - 1);
    buf->len -= line + 1;
    if (v == NULL || !json_is_object(v)) {
        json_decref(v);
        return hs_fail(e, HS_E_FORMAT, "agent message is not a JSON object");
    }
    *msg = v;
    return HS_OK;
}

hs_result hs_agent_send(int fd, const json_t *msg, hs_error *e)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    if (text == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    size_t len = strlen(text);
    hs_result r = HS_OK;
    /* The terminating newline goes with the text: one send for the whole
     * message keeps it from interleaving with nothing else on this fd. */
    char *line = malloc(len + 1);
    if (line == NULL) {
        free(text);
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    memcpy(line, text, len);
    line[len] = '\n';
    size_t off = 0;
    while (off < len + 1) {
        ssize_t n = send(fd, line + off, len + 1 - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            r = hs_fail(e, HS_E_IO, "agent connection: send failed: %s", strerror(errno));
            break;
        }
        off += (size_t)n;
    }
    free(line);
    free(text);
    return r;
}

hs_result hs_agent_recv(int fd, hs_agent_inbuf *buf, json_t **msg, hs_error *e)
{
    for (;;) {
        hs_result r = hs_agent_inbuf_take(buf, msg, e);
        if (r != HS_OK || *msg != NULL)
            return r;
        ssize_t n = read(fd, buf->data + buf->len, sizeof buf->data - buf->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return hs_fail(e, HS_E_IO, "agent connection: read failed: %s", strerror(errno));
        if (n == 0)
            return hs_fail(e, HS_E_IO, "the agent closed the connection without an answer");
        buf->len += (size_t)n;
    }
}

const char *hs_agent_str(const json_t *o, const char *name)
{
    return json_string_value(json_object_get(o, name));
}

hs_result hs_agent_hex(const json_t *o, const char *name, uint8_t *out, size_t len, hs_error *e)
{
    const char *s = hs_agent_str(o, name);
    if (s == NULL || !hs_hex_decode(s, out, len))
        return hs_fail(e, HS_E_FORMAT, "agent message: \"%s\" is not %zu bytes of hex", name, len);
    return HS_OK;
}

void hs_agent_set_hex(json_t *o, const char *name, const uint8_t *p, size_t len)
{
    if (p == NULL)
        return;
    char hex[2 * HS_MAX_DIGEST_LEN + 1];
    if (len > HS_MAX_DIGEST_LEN)
        return;
    hs_hex_encode(p, len, hex);
    json_object_set_new(o, name, json_string(hex));
}

json_t *hs_agent_sign_json(const hs_sign_request *req, const uint8_t key_fp[32])
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "op", "sign", "key", req->key_name, "alg",
                          hs_sig_alg_name(req->alg), "operation",
                          req->operation != NULL ? req->operation : "");
    if (o == NULL)
        return NULL;
    hs_agent_set_hex(o, "digest", req->digest, req->digest_len);
    hs_agent_set_hex(o, "tbs_sha256", req->tbs_sha256, 32);
    hs_agent_set_hex(o, "key_fingerprint", key_fp, 32);
    hs_agent_set_hex(o, "artifact_sha256", req->artifact_sha256, 32);
    if (req->artifact != NULL)
        json_object_set_new(o, "artifact", json_string(req->artifact));
    return o;
}

static hs_result copy_name(const json_t *msg, const char *field, char *out, size_t cap,
                           hs_error *e)
{
    const char *s = hs_agent_str(msg, field);
    if (s == NULL || strlen(s) >= cap)
        return hs_fail(e, HS_E_FORMAT, "agent sign request: \"%s\" missing or too long", field);
    memcpy(out, s, strlen(s) + 1);
    return HS_OK;
}

hs_result hs_agent_sign_parse(const json_t *msg, hs_agent_sign_msg *m, hs_error *e)
{
    memset(m, 0, sizeof *m);
    hs_result r = copy_name(msg, "key", m->key, sizeof m->key, e);
    if (r == HS_OK)
        r = copy_name(msg, "operation", m->operation, sizeof m->operation, e);
    const char *alg = hs_agent_str(msg, "alg");
    if (r == HS_OK && (alg == NULL || !hs_sig_alg_parse(alg, &m->req.alg)))
        r = hs_fail(e, HS_E_FORMAT, "agent sign request: unknown signature algorithm");
    if (r == HS_OK)
        r = hs_agent_hex(msg, "digest", m->digest, hs_sig_alg_digest_len(m->req.alg), e);
    if (r == HS_OK)
        r = hs_agent_hex(msg, "tbs_sha256", m->req.tbs_sha256, 32, e);
    if (r == HS_OK)
        r = hs_agent_hex(msg, "key_fingerprint", m->key_fingerprint, 32, e);
    if (r == HS_OK && json_object_get(msg, "artifact_sha256") != NULL) {
        r = hs_agent_hex(msg, "artifact_sha256", m->artifact_sha256, 32, e);
        m->req.artifact_sha256 = m->artifact_sha256;
    }
    const char *artifact = hs_agent_str(msg, "artifact");
    if (r == HS_OK && artifact != NULL && (m->artifact = strdup(artifact)) == NULL)
        r = hs_fail(e, HS_E_NOMEM, "out of memory");
    if (r != HS_OK) {
        hs_agent_sign_msg_free(m);
        return r;
    }
    m->req.key_name = m->key;
    m->req.operation = m->operation;
    m->req.digest = m->digest;
    m->req.digest_len = hs_sig_alg_digest_len(m->req.alg);
    m->req.artifact = m->artifact;
    return HS_OK;
}

void hs_agent_sign_msg_free(hs_agent_sign_msg *m)
{
    free(m->artifact);
    m->artifact = NULL;
}

json_t *hs_agent_error_json(const hs_error *e)
{
    json_t *o = json_pack("{s:b, s:s, s:s, s:i}", "ok", 0, "error", e->msg, "kind",
                          hs_result_name(e->code), "code", (int)e->code);
    if (o != NULL && e->ckr != 0)
        json_object_set_new(o, "ckr", json_integer((json_int_t)e->ckr));
    return o;
}

hs_result hs_agent_response_check(const json_t *resp, hs_error *e)
{
    if (json_is_true(json_object_get(resp, "ok")))
        return HS_OK;
    json_int_t code = json_integer_value(json_object_get(resp, "code"));
    hs_result rc = code > HS_OK && code <= HS_E_INTERNAL ? (hs_result)code : HS_E_INTERNAL;
    const char *msg = hs_agent_str(resp, "error");
    hs_fail(e, rc, "agent: %s", msg != NULL ? msg : "request refused");
    e->ckr = (unsigned long)json_integer_value(json_object_get(resp, "ckr"));
    return rc;
}
