/* The agent's wire protocol (docs/agent.md): over a Unix stream socket,
 * each message is one compact JSON object on one line ('\n'-terminated,
 * at most HS_AGENT_MSG_MAX bytes). The client sends a request and reads
 * its response; binary values are lowercase hex.
 *
 *   {"op":"hello"}                       -> {"ok":true, "version":1, ...status}
 *   {"op":"sign", "key", "alg", "digest", "tbs_sha256", "operation",
 *    "artifact"?, "artifact_sha256"?, "key_fingerprint"}
 *                                        -> {"ok":true, "signature":HEX}
 *   {"op":"record-output", "purpose", "key", "artifact", "input_sha256",
 *    "output_sha256"}                    -> {"ok":true}
 *   {"op":"stop"}                        -> {"ok":true} once everything is released
 *   any failure                          -> {"ok":false, "error":MSG, "kind":NAME,
 *                                            "code":N, "ckr":N?}
 */
#ifndef HSMSIGN_AGENT_PROTOCOL_H
#define HSMSIGN_AGENT_PROTOCOL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keystore/keyfile.h"
#include "signer/sign_fn.h"
#include "util/result.h"

#define HS_AGENT_PROTOCOL_VERSION 1
#define HS_AGENT_MSG_MAX (64 * 1024)

/* Bytes read from a connection and not yet parsed. */
typedef struct hs_agent_inbuf {
    char data[HS_AGENT_MSG_MAX];
    size_t len;
} hs_agent_inbuf;

/* Takes the first complete line out of buf as a JSON object: *msg NULL
 * when no line is complete yet; HS_E_FORMAT for a line that is too long
 * or not a JSON object (the connection is then unusable). */
hs_result hs_agent_inbuf_take(hs_agent_inbuf *buf, json_t **msg, hs_error *e) HS_MUST_CHECK;

/* Writes msg as one line (all of it, retrying on EINTR; MSG_NOSIGNAL).
 * Does not take the reference. */
hs_result hs_agent_send(int fd, const json_t *msg, hs_error *e) HS_MUST_CHECK;

/* Blocks until one whole message has arrived on fd. HS_E_IO when the
 * peer closed the connection first. */
hs_result hs_agent_recv(int fd, hs_agent_inbuf *buf, json_t **msg, hs_error *e) HS_MUST_CHECK;

/* A sign request as it crossed the wire; req points into the struct. */
typedef struct hs_agent_sign_msg {
    hs_sign_request req;
    char key[HS_KEY_NAME_MAX + 1];
    char operation[64];
    char *artifact; /* malloc'd, or NULL */
    uint8_t digest[HS_MAX_DIGEST_LEN];
    uint8_t artifact_sha256[32];
    uint8_t key_fingerprint[32];
} hs_agent_sign_msg;

json_t *hs_agent_sign_json(const hs_sign_request *req, const uint8_t key_fp[32]);
hs_result hs_agent_sign_parse(const json_t *msg, hs_agent_sign_msg *out, hs_error *e) HS_MUST_CHECK;
void hs_agent_sign_msg_free(hs_agent_sign_msg *m);

/* {"ok":false, ...} from an error, and back: a response that is not
 * ok becomes *e (its code and message) and its code is returned. */
json_t *hs_agent_error_json(const hs_error *e);
hs_result hs_agent_response_check(const json_t *resp, hs_error *e) HS_MUST_CHECK;

/* Field helpers: a string member (NULL when absent or not a string), and
 * a hex member decoded to exactly len bytes. */
const char *hs_agent_str(const json_t *o, const char *name);
hs_result hs_agent_hex(const json_t *o, const char *name, uint8_t *out, size_t len,
                       hs_error *e) HS_MUST_CHECK;
/* Sets o.name to the hex of len bytes (nothing when p is NULL). */
void hs_agent_set_hex(json_t *o, const char *name, const uint8_t *p, size_t len);

#endif
