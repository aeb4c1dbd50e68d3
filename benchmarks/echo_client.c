/* Load generator for the echo benchmarks: N connections, each sends one
   message of SIZE bytes, waits for all of it to come back, and repeats,
   for SECONDS. Prints the number of completed round trips. Plain epoll,
   one thread, so it costs little and runs pinned to its own core.

   usage: echo_client HOST PORT|unix:PATH CONNECTIONS SIZE SECONDS */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int fd;
    size_t sent;
    size_t received;
} conn_t;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int connect_to(const char *host, const char *port)
{
    int fd;
    if (strncmp(port, "unix:", 5) == 0) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        strncpy(sa.sun_path, port + 5, sizeof(sa.sun_path) - 1);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            return -1;
        }
    }
    else {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(port))};
        inet_pton(AF_INET, host, &sa.sin_addr);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            return -1;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return fd;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT|unix:PATH CONNECTIONS SIZE SECONDS\n", argv[0]);
        return 2;
    }
    int nconn = atoi(argv[3]);
    size_t size = (size_t)atol(argv[4]);
    double seconds = atof(argv[5]);
    char *out = malloc(size);
    char *in = malloc(size);
    memset(out, 'x', size);
    conn_t *conns = calloc((size_t)nconn, sizeof(conn_t));
    int ep = epoll_create1(0);
    for (int i = 0; i < nconn; i++) {
        int fd = connect_to(argv[1], argv[2]);
        if (fd < 0) {
            perror("connect");
            return 1;
        }
        conns[i].fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    long roundtrips = 0;
    double deadline = now() + seconds;
    /* Start every connection: blocking sends of the first message are fine,
       the server echoes as it reads. */
    for (int i = 0; i < nconn; i++) {
        ssize_t n = send(conns[i].fd, out, size, MSG_DONTWAIT);
        conns[i].sent = n > 0 ? (size_t)n : 0;
        if (conns[i].sent < size) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = &conns[i]};
            epoll_ctl(ep, EPOLL_CTL_MOD, conns[i].fd, &ev);
        }
    }
    struct epoll_event events[256];
    while (now() < deadline) {
        int n = epoll_wait(ep, events, 256, 100);
        for (int k = 0; k < n; k++) {
            conn_t *c = events[k].data.ptr;
            if (events[k].events & EPOLLOUT && c->sent < size) {
                ssize_t w = send(c->fd, out + c->sent, size - c->sent, MSG_DONTWAIT);
                if (w > 0) {
                    c->sent += (size_t)w;
                }
                if (c->sent == size) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            if (events[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t r = recv(c->fd, in, size - c->received, MSG_DONTWAIT);
                if (r == 0 || (r < 0 && errno != EAGAIN)) {
                    fprintf(stderr, "server closed a connection\n");
                    return 1;
                }
                if (r > 0) {
                    c->received += (size_t)r;
                }
                if (c->received == size) {
                    roundtrips++;
                    c->received = 0;
                    ssize_t w = send(c->fd, out, size, MSG_DONTWAIT);
                    c->sent = w > 0 ? (size_t)w : 0;
                    if (c->sent < size) {
                        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
                        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                    }
                }
            }
        }
    }
    printf("%ld\n", roundtrips);
    return 0;
}
