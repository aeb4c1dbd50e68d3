/* Load generator for the TLS benchmarks (benchmarks/tls.py): N TLS
   connections over OpenSSL, plain epoll, one thread, so that the client
   costs little next to the server it measures.

   SIZE > 0: each connection sends a message of SIZE bytes, waits for all
   of it to come back, and repeats.
   SIZE 0: handshakes. Each connection makes a full handshake (no session
   is resumed), echoes 1 byte, exchanges close_notify both ways, closes,
   and a new connection takes its place.

   LIMIT is SECONDS to run, or xCOUNT to stop after COUNT round trips (or
   handshakes) in all. Prints the number completed.

   usage: tls_client HOST PORT CONNECTIONS SIZE SECONDS|xCOUNT CAFILE */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { HANDSHAKE, ECHO, SHUTDOWN };

typedef struct {
    int fd;
    SSL *ssl;
    int phase;
    size_t sent, received;
    unsigned events; /* what epoll watches */
} conn_t;

static SSL_CTX *ctx;
static const char *host, *port;
static size_t size;
static char *out, *in;
static int ep;
static long done;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "tls_client: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static void watch(conn_t *c, unsigned events)
{
    if (events != c->events) {
        struct epoll_event ev = {.events = events, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->events = events;
    }
}

static void open_conn(conn_t *c)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(port))};
    inet_pton(AF_INET, host, &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        die("connect failed");
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL || !SSL_set_fd(ssl, fd)) {
        die("SSL_new failed");
    }
    SSL_set_connect_state(ssl);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
    *c = (conn_t){.fd = fd, .ssl = ssl, .phase = HANDSHAKE, .events = EPOLLIN | EPOLLOUT};
    struct epoll_event ev = {.events = c->events, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static void close_conn(conn_t *c)
{
    SSL_free(c->ssl);
    close(c->fd); /* also leaves the epoll set */
    c->ssl = NULL;
}

/* 0: wait for the socket (c->events set), -1: the connection failed */
static int want(conn_t *c, int r, unsigned extra)
{
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        watch(c, EPOLLIN | extra);
        return 0;
    case SSL_ERROR_WANT_WRITE:
        watch(c, EPOLLIN | EPOLLOUT);
        return 0;
    default:
        return -1;
    }
}

/* Moves a connection on as far as it goes without waiting. Returns 1 when
   it finished (handshake mode: closed), 0 to wait, -1 on failure. */
static int step(conn_t *c)
{
    for (;;) {
        if (c->phase == HANDSHAKE) {
            int r = SSL_do_handshake(c->ssl);
            if (r <= 0) {
                return want(c, r, 0);
            }
            c->phase = ECHO;
            c->sent = c->received = 0;
            continue;
        }
        if (c->phase == SHUTDOWN) {
            /* our close_notify is out; read until the server's */
            int r = SSL_read(c->ssl, in, 1);
            if (r > 0) {
                continue;
            }
            int err = SSL_get_error(c->ssl, r);
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
                return want(c, r, 0);
            }
            close_conn(c);
            return 1;
        }
        size_t n = size ? size : 1;
        int progress = 0;
        unsigned extra = 0;
        if (c->sent < n) {
            int r = SSL_write(c->ssl, out + c->sent, (int)(n - c->sent));
            if (r > 0) {
                c->sent += (size_t)r;
                progress = 1;
            }
            else {
                int err = SSL_get_error(c->ssl, r);
                if (err == SSL_ERROR_WANT_WRITE) {
                    extra = EPOLLOUT;
                }
                else if (err != SSL_ERROR_WANT_READ) {
                    return -1;
                }
            }
        }
        if (c->received < c->sent) {
            int r = SSL_read(c->ssl, in, (int)(n - c->received));
            if (r > 0) {
                c->received += (size_t)r;
                progress = 1;
            }
            else {
                int err = SSL_get_error(c->ssl, r);
                if (err == SSL_ERROR_WANT_WRITE) {
                    extra = EPOLLOUT;
                }
                else if (err != SSL_ERROR_WANT_READ) {
                    return -1;
                }
            }
        }
        if (c->received == n) {
            done++;
            if (size == 0) {
                SSL_shutdown(c->ssl); /* sends close_notify */
                c->phase = SHUTDOWN;
                continue;
            }
            c->sent = c->received = 0;
            return 1;
        }
        if (!progress) {
            watch(c, EPOLLIN | extra);
            return 0;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: %s HOST PORT CONNECTIONS SIZE SECONDS|xCOUNT CAFILE\n", argv[0]);
        return 2;
    }
    host = argv[1];
    port = argv[2];
    int nconn = atoi(argv[3]);
    size = (size_t)atol(argv[4]);
    long limit = argv[5][0] == 'x' ? atol(argv[5] + 1) : 0;
    double deadline = limit ? 0 : now() + atof(argv[5]);
    out = malloc(size ? size : 1);
    in = malloc(size ? size : 1);
    memset(out, 'x', size ? size : 1);

    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || SSL_CTX_load_verify_locations(ctx, argv[6], NULL) != 1) {
        die("cannot load the CA");
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);

    ep = epoll_create1(0);
    conn_t *conns = calloc((size_t)nconn, sizeof(conn_t));
    for (int i = 0; i < nconn; i++) {
        open_conn(&conns[i]);
    }
    struct epoll_event events[256];
    while (limit ? done < limit : now() < deadline) {
        int n = epoll_wait(ep, events, 256, 100);
        for (int k = 0; k < n && (!limit || done < limit); k++) {
            conn_t *c = events[k].data.ptr;
            if (c->ssl == NULL) {
                continue; /* closed earlier in this batch */
            }
            int r;
            while ((r = step(c)) == 1) {
                if (size == 0) {
                    if (!limit || done < limit) {
                        open_conn(c);
                    }
                    break; /* the new socket reports when it is ready */
                }
                if (limit && done >= limit) {
                    break;
                }
            }
            if (r < 0) {
                die(c->phase == HANDSHAKE ? "handshake failed" : "connection failed");
            }
        }
    }
    for (int i = 0; i < nconn; i++) {
        if (conns[i].ssl != NULL) {
            SSL_shutdown(conns[i].ssl);
            close_conn(&conns[i]);
        }
    }
    printf("%ld\n", done);
    return 0;
}
