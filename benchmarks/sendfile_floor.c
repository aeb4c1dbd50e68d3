/* What loopback TCP costs the sender with no event loop and no Python:
   sendfile(2) of a file against pread()+write() of it in 256 KiB chunks,
   both on a non-blocking socket (poll() on EAGAIN), to a reader process
   (recv of 1 MiB) pinned to the other core.  The ratio of the two is the
   most loop.sendfile can gain over a user's read+write loop, per sender
   CPU-second (benchmarks/sendfile.py --floor).

   usage: sendfile_floor sendfile|readwrite FILE REPS SENDER_CPU READER_CPU
   prints: ms of sender CPU per MiB, ms of reader CPU per MiB, MB/s, and
   syscalls and EAGAINs per MiB. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (256 * 1024)

static double cpu_of(const struct rusage *r)
{
    return (double)(r->ru_utime.tv_sec + r->ru_stime.tv_sec) +
           (double)(r->ru_utime.tv_usec + r->ru_stime.tv_usec) / 1e6;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof(set), &set);
}

static void wait_writable(int fd)
{
    struct pollfd p = {fd, POLLOUT, 0};
    poll(&p, 1, -1);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s sendfile|readwrite FILE REPS SENDER_CPU READER_CPU\n", argv[0]);
        return 2;
    }
    int use_sendfile = strcmp(argv[1], "sendfile") == 0;
    int reps = atoi(argv[3]);
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(addr);
    if (ls < 0 || bind(ls, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(ls, 1) < 0 ||
        getsockname(ls, (struct sockaddr *)&addr, &alen) < 0) {
        perror("listen");
        return 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        pin(atoi(argv[5]));
        int c = accept(ls, NULL, NULL);
        char *buf = malloc(1 << 20);
        while (recv(c, buf, 1 << 20, 0) > 0) {
        }
        _exit(0);
    }
    pin(atoi(argv[4]));
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        perror("connect");
        return 1;
    }
    fcntl(s, F_SETFL, O_NONBLOCK);
    int fd = open(argv[2], O_RDONLY);
    if (fd < 0) {
        perror(argv[2]);
        return 1;
    }
    off_t size = lseek(fd, 0, SEEK_END);
    char *buf = malloc(CHUNK);
    long calls = 0, eagain = 0;
    struct rusage r0, r1, rr;
    getrusage(RUSAGE_SELF, &r0);
    double t0 = now();
    for (int rep = 0; rep < reps; rep++) {
        off_t off = 0;
        while (off < size) {
            if (use_sendfile) {
                ssize_t n = sendfile(s, fd, &off, (size_t)(size - off));
                calls++;
                if (n < 0) {
                    if (errno != EAGAIN) {
                        perror("sendfile");
                        return 1;
                    }
                    eagain++;
                    wait_writable(s);
                }
                continue;
            }
            ssize_t m = pread(fd, buf, CHUNK, off);
            calls++;
            if (m <= 0) {
                perror("pread");
                return 1;
            }
            for (ssize_t done = 0; done < m;) {
                ssize_t n = write(s, buf + done, (size_t)(m - done));
                calls++;
                if (n < 0) {
                    if (errno != EAGAIN) {
                        perror("write");
                        return 1;
                    }
                    eagain++;
                    wait_writable(s);
                    continue;
                }
                done += n;
            }
            off += m;
        }
    }
    double wall = now() - t0;
    getrusage(RUSAGE_SELF, &r1);
    close(s);
    if (wait4(pid, NULL, 0, &rr) < 0) {
        perror("wait4");
        return 1;
    }
    double mib = (double)size * reps / (1 << 20);
    printf("%.4f %.4f %.1f %.3f %.3f\n", (cpu_of(&r1) - cpu_of(&r0)) * 1e3 / mib,
           cpu_of(&rr) * 1e3 / mib, mib * 1.048576 / wall, (double)calls / mib,
           (double)eagain / mib);
    return 0;
}
