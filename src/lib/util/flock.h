/* Waiting for an exclusive flock with a bound, and the small pieces that
 * go with it (sleeping, timeouts from the environment). Used by the audit
 * log's lock (audit/lock.c) and the PKCS#11 token lock (p11/token_lock.c).
 *
 * flock rather than fcntl locks: an flock belongs to the open file
 * description, so closing some other descriptor of the same file (which
 * SoftHSM does all the time) does not drop it, and the kernel drops it
 * when the holder dies, even by SIGKILL: a killed process never wedges
 * the others. */
#ifndef HSMSIGN_UTIL_FLOCK_H
#define HSMSIGN_UTIL_FLOCK_H

/* Sleeps ms milliseconds, resuming after signals. */
void hs_sleep_ms(unsigned ms);

/* A timeout in milliseconds from environment variable NAME, which holds
 * whole seconds, 0 to 3600; default_ms when it is unset or anything else
 * (trailing junk, overflow: atoi could not tell those from a number). */
unsigned hs_env_timeout_ms(const char *name, unsigned default_ms);

/* Takes an exclusive flock on fd, polling (after 1 ms, 2 ms, ..., then
 * every 50 ms) for up to timeout_ms: polling rather than a blocking flock
 * interrupted by an alarm, as a library has no signal handler to install.
 * Returns 0, or the errno: EWOULDBLOCK when another holder kept it for the
 * whole timeout. */
int hs_flock_wait(int fd, unsigned timeout_ms);

#endif
