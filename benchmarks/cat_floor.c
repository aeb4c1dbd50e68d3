/* What piping data through `cat` costs with no event loop and no Python:
   the floor of benchmarks/spawn.py's `cat` row. The parent spawns cat
   (posix_spawnp) with its stdin and stdout on two pipes of the default
   size (or, with `socketpair`, on two AF_UNIX stream socketpairs, as
   libuv's uv_spawn makes them for uvloop), makes its ends non-blocking and
   does what an event loop does: poll() both, write the rest of the input
   to stdin while reading stdout (reads of up to 256 KiB, asyncio's
   max_size) into one buffer grown by doubling with realloc. When both are
   ready it reads first (`write-first`: writes first, as a loop that
   handles epoll's events in the kernel's order does: cat then blocks
   twice per pipeful instead of once).

   usage: cat_floor pipe|socketpair MIB REPS [read-first|write-first]
   prints per rep one line of space-separated key=value pairs: wall ms,
   CPU ms (user, sys) and voluntary / involuntary context switches and
   minor faults of the parent and of cat, and the parent's poll, read and
   write calls and EAGAINs. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_READ (256 * 1024)

extern char **environ;

static double ms(struct timeval tv)
{
    return (double)tv.tv_sec * 1e3 + (double)tv.tv_usec / 1e3;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int make_pair(int use_sock, int fds[2])
{
    if (use_sock) {
        return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds);
    }
    return pipe2(fds, O_CLOEXEC);
}

static int run(int use_sock, int write_first, const char *in, size_t len)
{
    int a[2], b[2]; /* a: parent -> cat's stdin, b: cat's stdout -> parent */
    if (make_pair(use_sock, a) < 0 || make_pair(use_sock, b) < 0) {
        perror("pipe");
        return -1;
    }
    /* pipe2: [0] read end, [1] write end; a socketpair's ends are alike */
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, a[0], 0);
    posix_spawn_file_actions_adddup2(&fa, b[1], 1);
    char *argv[] = {"cat", NULL};
    struct rusage r0, r1, rc;
    getrusage(RUSAGE_SELF, &r0);
    double t0 = now_ms();
    pid_t pid;
    int err = posix_spawnp(&pid, "cat", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (err != 0) {
        errno = err;
        perror("posix_spawnp");
        return -1;
    }
    close(a[0]);
    close(b[1]);
    int wfd = a[1], rfd = b[0];
    fcntl(wfd, F_SETFL, O_NONBLOCK);
    fcntl(rfd, F_SETFL, O_NONBLOCK);
    size_t sent = 0, got = 0, cap = 0;
    char *out = NULL;
    long polls = 0, reads = 0, writes = 0, eagain = 0;
    for (;;) {
        struct pollfd p[2] = {{rfd, POLLIN, 0}, {wfd, POLLOUT, 0}};
        int np = wfd >= 0 ? 2 : 1;
        if (poll(p, (nfds_t)np, -1) < 0) {
            perror("poll");
            return -1;
        }
        polls++;
        /* the write, before the read or after it */
        for (int step = 0; step < 2; step++) {
            if (step == (write_first ? 0 : 1)) {
                if (np == 2 && p[1].revents) {
                    ssize_t n = write(wfd, in + sent, len - sent);
                    writes++;
                    if (n < 0 && errno != EAGAIN) {
                        perror("write");
                        return -1;
                    }
                    eagain += n < 0;
                    sent += n > 0 ? (size_t)n : 0;
                    if (sent == len) {
                        close(wfd);
                        wfd = -1;
                    }
                }
                continue;
            }
            if (p[0].revents) {
                if (cap - got < MAX_READ) {
                    cap = cap ? cap * 2 : MAX_READ;
                    out = realloc(out, cap);
                    if (out == NULL) {
                        perror("realloc");
                        return -1;
                    }
                }
                ssize_t n = read(rfd, out + got, MAX_READ);
                reads++;
                if (n < 0 && errno != EAGAIN) {
                    perror("read");
                    return -1;
                }
                eagain += n < 0;
                if (n == 0) {
                    goto eof;
                }
                got += n > 0 ? (size_t)n : 0;
            }
        }
    }
eof:
    close(rfd);
    int status;
    if (wait4(pid, &status, 0, &rc) < 0) {
        perror("wait4");
        return -1;
    }
    double wall = now_ms() - t0;
    getrusage(RUSAGE_SELF, &r1);
    if (got != len || memcmp(out, in, len) != 0) {
        fprintf(stderr, "output differs (%zu of %zu bytes)\n", got, len);
        return -1;
    }
    free(out);
    printf("wall_ms=%.1f self_user_ms=%.1f self_sys_ms=%.1f self_vcsw=%ld self_ivcsw=%ld "
           "self_minflt=%ld cat_user_ms=%.1f cat_sys_ms=%.1f cat_vcsw=%ld cat_ivcsw=%ld "
           "polls=%ld reads=%ld writes=%ld eagain=%ld\n",
           wall, ms(r1.ru_utime) - ms(r0.ru_utime), ms(r1.ru_stime) - ms(r0.ru_stime),
           r1.ru_nvcsw - r0.ru_nvcsw, r1.ru_nivcsw - r0.ru_nivcsw, r1.ru_minflt - r0.ru_minflt,
           ms(rc.ru_utime), ms(rc.ru_stime), rc.ru_nvcsw, rc.ru_nivcsw, polls, reads, writes,
           eagain);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5 ||
        (strcmp(argv[1], "pipe") != 0 && strcmp(argv[1], "socketpair") != 0) ||
        (argc == 5 && strcmp(argv[4], "read-first") != 0 && strcmp(argv[4], "write-first") != 0)) {
        fprintf(stderr, "usage: %s pipe|socketpair MIB REPS [read-first|write-first]\n", argv[0]);
        return 2;
    }
    int write_first = argc == 5 && strcmp(argv[4], "write-first") == 0;
    size_t len = (size_t)atol(argv[2]) << 20;
    char *in = malloc(len);
    if (in == NULL) {
        perror("malloc");
        return 1;
    }
    memset(in, 'x', len);
    for (int i = 0, reps = atoi(argv[3]); i < reps; i++) {
        if (run(strcmp(argv[1], "socketpair") == 0, write_first, in, len) < 0) {
            return 1;
        }
    }
    return 0;
}
