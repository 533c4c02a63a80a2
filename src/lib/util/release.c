#include "util/release.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* A batch may replace hundreds of outputs: past this many threads not yet
 * joined, the close is done in place (the rename's old cost, no worse). */
#define MAX_PENDING 32

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t pending[MAX_PENDING];
static size_t n_pending;

int hs_release_hold(const char *path)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
        st.st_size < HS_RELEASE_MIN_SIZE) {
        close(fd);
        return -1;
    }
    return fd;
}

static void *closer(void *arg)
{
    (void)close((int)(intptr_t)arg); /* the file has no name: nothing to report */
    return NULL;
}

void hs_release_later(int fd)
{
    if (fd < 0)
        return;
    pthread_mutex_lock(&lock);
    bool started = false;
    if (n_pending < MAX_PENDING) {
        /* No signal is delivered to the helper: the command's handlers
         * run on the threads they expect. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        started = pthread_create(&pending[n_pending], NULL, closer, (void *)(intptr_t)fd) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (started)
            n_pending++;
    }
    pthread_mutex_unlock(&lock);
    if (!started)
        (void)close(fd);
}

void hs_release_wait(void)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_pending; i++)
        (void)pthread_join(pending[i], NULL); /* closer cannot fail */
    n_pending = 0;
    pthread_mutex_unlock(&lock);
}
