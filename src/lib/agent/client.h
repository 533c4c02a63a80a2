/* The client side of the agent (protocol.h): one connection, used by a
 * command that signs when HSMSIGN_AGENT names the agent's socket. The
 * client never opens the token and never needs the PIN; it reads key
 * files (public data) from the agent's key store and checks every
 * signature the agent returns with the key file's public key. */
#ifndef HSMSIGN_AGENT_CLIENT_H
#define HSMSIGN_AGENT_CLIENT_H

#include <jansson.h>

#include "signer/signer.h"
#include "util/result.h"

typedef struct hs_agent_client hs_agent_client;

/* Connects to the agent at path and checks that the process listening
 * runs as this user (SO_PEERCRED; root's agent is accepted too). */
hs_result hs_agent_connect(const char *path, hs_agent_client **out, hs_error *e) HS_MUST_CHECK;
void hs_agent_disconnect(hs_agent_client *c);

/* One request, one response; *resp is the response, ok or not (caller
 * decrefs). Thread-safe: requests on one client are serialised. */
hs_result hs_agent_call(hs_agent_client *c, const json_t *req, json_t **resp,
                        hs_error *e) HS_MUST_CHECK;

/* The agent's hello answer (token, wrap key, key store, counters);
 * borrowed, valid until disconnect. */
const json_t *hs_agent_info(const hs_agent_client *c);

/* A signer whose signatures and output records are made by the agent
 * (hs_signer_new_remote), over the agent's key store and wrap key. */
hs_result hs_agent_signer(hs_agent_client *c, hs_signer **out, hs_error *e) HS_MUST_CHECK;

#endif
