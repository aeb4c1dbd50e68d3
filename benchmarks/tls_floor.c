/* The C ceiling of the TLS echo benchmark (benchmarks/tls.py --floor): a
   TLS echo server in plain C over OpenSSL, no Python, no event loop but
   epoll, one thread, loaded by the same tls_client.c with the same
   certificate and the TLS settings of Python's default server context
   (ssl.create_default_context(ssl.Purpose.CLIENT_AUTH): the options, mode
   and cipher list that CPython's _ssl module gives an SSLContext, TLS 1.2
   at least), so that the same protocol and cipher are negotiated.

   mem  OpenSSL over memory BIOs, the architecture ssl.SSLObject forces on
        every Python event loop: recv() into a buffer, BIO_write into the
        read BIO, SSL_read until SSL_ERROR_WANT_READ, one SSL_write of all
        that was read (an echo's data_received -> write), BIO_read of the
        write BIO into a buffer, send().
   fd   OpenSSL on the socket itself (SSL_set_fd: its socket BIO), which no
        Python loop can use.

   Each readable event is one recv() (mem) or the SSL_read()s until
   WANT_READ (fd), then the echo of all it decrypted, as a loop's
   data_received would. A close_notify is answered with ours, then the
   socket is closed, as asyncio's SSLProtocol does.

   usage: tls_floor mem|fd PORT CERTFILE KEYFILE
   prints "ready" once listening on 127.0.0.1:PORT; the negotiated protocol
   and cipher of the first connection go to stderr. Runs until killed. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE (256 * 1024) /* asyncio's max_size */

typedef struct {
    int fd;
    SSL *ssl;
    BIO *rbio, *wbio; /* mem mode: BIOs owned by ssl */
    char *out;        /* mem: ciphertext send() did not take; fd: plaintext to SSL_write */
    size_t out_len, out_cap;
    unsigned events;
    int handshaken;
} conn_t;

static int use_mem, ep, reported;
static char *rbuf, *pbuf, *cbuf; /* recv, plaintext, ciphertext scratch */

static void die(const char *what)
{
    fprintf(stderr, "tls_floor: %s\n", what);
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

static void close_conn(conn_t *c)
{
    SSL_free(c->ssl); /* frees the BIOs */
    close(c->fd);
    free(c->out);
    free(c);
}

static void keep(conn_t *c, const char *data, size_t len)
{
    if (c->out_len + len > c->out_cap) {
        c->out_cap = (c->out_len + len) * 2;
        if ((c->out = realloc(c->out, c->out_cap)) == NULL) {
            die("out of memory");
        }
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
}

/* mem: sends what the write BIO holds (and what an earlier send left).
   -1 if the connection failed. */
static int flush_mem(conn_t *c)
{
    size_t pending;
    while ((pending = BIO_ctrl_pending(c->wbio)) > 0) {
        size_t n = pending > BUF_SIZE ? BUF_SIZE : pending;
        int got = BIO_read(c->wbio, cbuf, (int)n);
        if (got <= 0) {
            return -1;
        }
        if (c->out_len > 0) {
            keep(c, cbuf, (size_t)got);
            continue;
        }
        ssize_t s = send(c->fd, cbuf, (size_t)got, MSG_NOSIGNAL);
        if (s < 0) {
            if (errno != EAGAIN) {
                return -1;
            }
            s = 0;
        }
        if ((size_t)s < (size_t)got) {
            keep(c, cbuf + s, (size_t)got - (size_t)s);
        }
    }
    watch(c, c->out_len ? EPOLLIN | EPOLLOUT : EPOLLIN);
    return 0;
}

static int send_kept(conn_t *c)
{
    ssize_t s = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
    if (s < 0) {
        return errno == EAGAIN ? 0 : -1;
    }
    memmove(c->out, c->out + s, c->out_len - (size_t)s);
    c->out_len -= (size_t)s;
    watch(c, c->out_len ? EPOLLIN | EPOLLOUT : EPOLLIN);
    return 0;
}

/* fd: SSL_write of the kept plaintext; 0 done or waiting, -1 failed */
static int write_fd(conn_t *c)
{
    while (c->out_len > 0) {
        int r = SSL_write(c->ssl, c->out, (int)c->out_len);
        if (r <= 0) {
            int err = SSL_get_error(c->ssl, r);
            if (err == SSL_ERROR_WANT_WRITE) {
                watch(c, EPOLLIN | EPOLLOUT);
                return 0;
            }
            return err == SSL_ERROR_WANT_READ ? 0 : -1;
        }
        memmove(c->out, c->out + r, c->out_len - (size_t)r);
        c->out_len -= (size_t)r;
    }
    watch(c, EPOLLIN);
    return 0;
}

static void report(conn_t *c)
{
    if (!reported) {
        reported = 1;
        fprintf(stderr, "%s %s options %#llx\n", SSL_get_version(c->ssl), SSL_get_cipher(c->ssl),
                (unsigned long long)SSL_get_options(c->ssl));
    }
}

/* Decrypts all it can, echoes it. 1: the peer closed (close_notify
   answered), 0: go on, -1: failed. */
static int read_echo(conn_t *c)
{
    if (!c->handshaken) {
        int r = SSL_do_handshake(c->ssl);
        if (r <= 0) {
            int err = SSL_get_error(c->ssl, r);
            if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
                return -1;
            }
            return 0;
        }
        c->handshaken = 1;
        report(c);
    }
    size_t got = 0;
    int closed = 0;
    while (got < BUF_SIZE) {
        int r = SSL_read(c->ssl, pbuf + got, (int)(BUF_SIZE - got));
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        int err = SSL_get_error(c->ssl, r);
        if (err == SSL_ERROR_ZERO_RETURN) {
            closed = 1;
        }
        else if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
            return -1;
        }
        break;
    }
    if (got > 0) {
        if (use_mem) {
            /* the memory BIO takes it all at once */
            if (SSL_write(c->ssl, pbuf, (int)got) != (int)got) {
                return -1;
            }
        }
        else {
            keep(c, pbuf, got);
            if (write_fd(c) < 0) {
                return -1;
            }
        }
    }
    if (closed) {
        SSL_shutdown(c->ssl); /* our close_notify */
    }
    return closed;
}

static void on_event(conn_t *c, unsigned events)
{
    int rc = 0;
    if (use_mem) {
        if ((events & EPOLLOUT) && c->out_len > 0) {
            rc = send_kept(c);
        }
        if (rc == 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
            ssize_t n = recv(c->fd, rbuf, BUF_SIZE, 0);
            if (n == 0) {
                rc = 1;
            }
            else if (n < 0) {
                rc = errno == EAGAIN ? 0 : -1;
            }
            else if (BIO_write(c->rbio, rbuf, (int)n) != (int)n) {
                rc = -1;
            }
            else {
                rc = read_echo(c);
            }
            if (rc >= 0 && flush_mem(c) < 0) {
                rc = -1;
            }
        }
    }
    else {
        if ((events & EPOLLOUT) && c->out_len > 0) {
            rc = write_fd(c);
        }
        if (rc == 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
            rc = read_echo(c);
        }
        if (rc == 0 && !c->handshaken) {
            watch(c, SSL_want_write(c->ssl) ? EPOLLIN | EPOLLOUT : EPOLLIN);
        }
    }
    if (rc != 0) {
        close_conn(c);
    }
}

static SSL_CTX *make_ctx(const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        die("SSL_CTX_new failed");
    }
    /* what CPython's _ssl gives a PROTOCOL_TLS_SERVER context ... */
    uint64_t options = (SSL_OP_ALL & ~SSL_OP_DONT_INSERT_EMPTY_FRAGMENTS) | SSL_OP_NO_SSLv2 |
                       SSL_OP_NO_SSLv3 | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                       SSL_OP_SINGLE_DH_USE | SSL_OP_SINGLE_ECDH_USE;
    SSL_CTX_set_options(ctx, options);
    if (!SSL_CTX_set_cipher_list(ctx, "@SECLEVEL=2:ECDH+AESGCM:ECDH+CHACHA20:ECDH+AES:DHE+AES:"
                                      "!aNULL:!eNULL:!aDSS:!SHA1:!AESCCM")) {
        die("cipher list");
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"Python", 7);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    /* ... and what create_default_context adds */
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        die("cannot load the certificate");
    }
    return ctx;
}

int main(int argc, char **argv)
{
    if (argc != 5 || (strcmp(argv[1], "mem") != 0 && strcmp(argv[1], "fd") != 0)) {
        fprintf(stderr, "usage: %s mem|fd PORT CERTFILE KEYFILE\n", argv[0]);
        return 2;
    }
    use_mem = strcmp(argv[1], "mem") == 0;
    signal(SIGPIPE, SIG_IGN); /* the socket BIO writes without MSG_NOSIGNAL */
    SSL_CTX *ctx = make_ctx(argv[3], argv[4]);
    rbuf = malloc(BUF_SIZE);
    pbuf = malloc(BUF_SIZE);
    cbuf = malloc(BUF_SIZE);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 128) < 0) {
        die("cannot listen");
    }
    ep = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);
    printf("ready\n");
    fflush(stdout);
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        for (int k = 0; k < n; k++) {
            conn_t *c = events[k].data.ptr;
            if (c != NULL) {
                on_event(c, events[k].events);
                continue;
            }
            int fd;
            while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                c = calloc(1, sizeof(*c));
                c->fd = fd;
                c->ssl = SSL_new(ctx);
                if (c == NULL || c->ssl == NULL) {
                    die("SSL_new failed");
                }
                /* what CPython's _ssl sets on each SSL object */
                SSL_set_mode(c->ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_AUTO_RETRY);
                if (use_mem) {
                    c->rbio = BIO_new(BIO_s_mem());
                    c->wbio = BIO_new(BIO_s_mem());
                    /* ssl.MemoryBIO: reads from an empty BIO are retried */
                    BIO_set_mem_eof_return(c->rbio, -1);
                    BIO_set_mem_eof_return(c->wbio, -1);
                    SSL_set_bio(c->ssl, c->rbio, c->wbio);
                }
                else {
                    SSL_set_fd(c->ssl, fd);
                }
                SSL_set_accept_state(c->ssl);
                c->events = EPOLLIN;
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
            }
        }
    }
}
