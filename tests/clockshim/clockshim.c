/*
 * clockshim: an LD_PRELOAD library for the fault tests of snowflake_id.
 *
 * It shifts the wall clock of every process of a PostgreSQL server by an offset that the test
 * changes while the server runs, so a test can step the clock back (or forward) at runtime.
 *
 *   SNOWFLAKE_CLOCKSHIM_FILE  path of a file whose first 8 bytes are the offset in microseconds,
 *                             a native-endian int64, written by the test with one aligned atomic
 *                             store through its own shared mapping.
 *
 * The file is mapped once, when the library is loaded into the postmaster; children inherit the
 * mapping over fork(), so a new offset is seen by every process at once, without a system call.
 * Shifted: clock_gettime(CLOCK_REALTIME / CLOCK_REALTIME_COARSE), gettimeofday(), time().
 * Not shifted: CLOCK_MONOTONIC and every other clock; the generator measures real elapsed time
 * with CLOCK_MONOTONIC to tell a backward step from a burst, as on a real machine where a step
 * of the wall clock leaves the monotonic clock alone.
 *
 * Build: cc -shared -fPIC -O2 -o clockshim.so clockshim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static const int64_t *shared_offset_us; /* NULL: no file, no shift */
static clock_gettime_fn next_clock_gettime;

static clock_gettime_fn resolve(void)
{
    clock_gettime_fn f = __atomic_load_n(&next_clock_gettime, __ATOMIC_ACQUIRE);
    if (f == NULL) {
        f = (clock_gettime_fn) dlsym(RTLD_NEXT, "clock_gettime");
        __atomic_store_n(&next_clock_gettime, f, __ATOMIC_RELEASE);
    }
    return f;
}

__attribute__((constructor)) static void clockshim_load(void)
{
    resolve();
    const char *path = getenv("SNOWFLAKE_CLOCKSHIM_FILE");
    if (path == NULL || *path == '\0')
        return;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        /* A test that asked for a shifted clock must not silently run on the real one. */
        fprintf(stderr, "clockshim: cannot open %s\n", path);
        abort();
    }
    void *p = mmap(NULL, sizeof(int64_t), PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        fprintf(stderr, "clockshim: cannot map %s\n", path);
        abort();
    }
    shared_offset_us = (const int64_t *) p;
}

static int64_t offset_us(void)
{
    return shared_offset_us ? __atomic_load_n(shared_offset_us, __ATOMIC_RELAXED) : 0;
}

static void add_us(struct timespec *ts, int64_t us)
{
    int64_t ns = (int64_t) ts->tv_nsec + (us % 1000000) * 1000;
    int64_t sec = (int64_t) ts->tv_sec + us / 1000000;
    while (ns < 0) {
        ns += 1000000000;
        sec -= 1;
    }
    while (ns >= 1000000000) {
        ns -= 1000000000;
        sec += 1;
    }
    ts->tv_sec = (time_t) sec;
    ts->tv_nsec = (long) ns;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    int rc = resolve()(id, ts);
    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
        add_us(ts, offset_us());
    return rc;
}

/* glibc declares tv nonnull, but callers may pass NULL (the kernel accepts it): keep the check. */
#pragma GCC diagnostic ignored "-Wnonnull-compare"
int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    (void) tz; /* obsolete; glibc ignores it too */
    if (tv != NULL) {
        struct timespec ts;
        int rc = clock_gettime(CLOCK_REALTIME, &ts);
        if (rc != 0)
            return rc;
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return 0;
}

time_t time(time_t *out)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return (time_t) -1;
    if (out != NULL)
        *out = ts.tv_sec;
    return ts.tv_sec;
}
