/* UDP echo load generator for benchmarks/udp.py.

     udp_client HOST PORT SIZE SECONDS INFLIGHT

   One connected UDP socket keeps INFLIGHT datagrams of SIZE bytes in
   flight to an echo server for SECONDS and prints the number of echoes
   received. A datagram lost (none is, normally, on loopback) is replaced
   after 100 ms without replies, so that the window never drains. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT SIZE SECONDS INFLIGHT\n", argv[0]);
        return 2;
    }
    size_t size = (size_t)atol(argv[3]);
    double seconds = atof(argv[4]);
    int inflight = atoi(argv[5]);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
        fprintf(stderr, "bad host\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("socket/connect");
        return 1;
    }
    struct timeval tv = {0, 100000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char *buf = calloc(1, size > 65536 ? size : 65536);
    memset(buf, 'x', size);
    for (int i = 0; i < inflight; i++) {
        if (send(fd, buf, size, 0) < 0) {
            perror("send");
            return 1;
        }
    }
    long n = 0;
    int refused = 0;
    double end = now() + seconds;
    while (now() < end) {
        ssize_t r = recv(fd, buf, 65536, 0);
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                for (int i = 0; i < inflight; i++) {
                    send(fd, buf, size, 0);
                }
                continue;
            }
            if (errno == ECONNREFUSED && refused++ < 100) {
                usleep(10000);
                send(fd, buf, size, 0);
                continue;
            }
            perror("recv");
            return 1;
        }
        n++;
        if (send(fd, buf, size, 0) < 0 && errno != ECONNREFUSED) {
            perror("send");
            return 1;
        }
    }
    printf("%ld\n", n);
    return 0;
}
