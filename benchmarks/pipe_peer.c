/* The other end of the pipe benchmark (benchmarks/pipes.py), pinned to the
   other core: "w N" writes N bytes to stdout as fast as it can (1 MiB
   writes), "r" reads stdin until EOF (1 MiB reads) and prints the count. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOCK (1 << 20)

int main(int argc, char **argv)
{
    static char buf[BLOCK];
    if (argc >= 3 && strcmp(argv[1], "w") == 0) {
        long long left = atoll(argv[2]);
        memset(buf, 'x', sizeof(buf));
        while (left > 0) {
            size_t n = left < BLOCK ? (size_t)left : BLOCK;
            ssize_t w = write(1, buf, n);
            if (w < 0) {
                if (errno == EINTR) {
                    continue;
                }
                perror("write");
                return 1;
            }
            left -= w;
        }
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "r") == 0) {
        long long total = 0;
        for (;;) {
            ssize_t n = read(0, buf, sizeof(buf));
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                perror("read");
                return 1;
            }
            if (n == 0) {
                break;
            }
            total += n;
        }
        fprintf(stderr, "%lld\n", total);
        return 0;
    }
    fprintf(stderr, "usage: pipe_peer w BYTES | pipe_peer r\n");
    return 2;
}
