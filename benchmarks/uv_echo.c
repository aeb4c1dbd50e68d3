/* The ceiling row of the echo benchmarks: an echo server in plain C over
   libuv, doing what an asyncio Protocol echo server asks of a loop (read
   into a buffer, write it back, try the write at once and queue the rest).
   With a second argument "http" it answers every request it reads (each
   blank line ending a header block) with one fixed keep-alive response
   instead: the fast, fixed server of the HTTP client benchmarks.

   usage: uv_echo PORT|unix:PATH [http]      prints "ready" once listening */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static uv_loop_t *loop;
static int http_mode;
static const char http_response[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                    "Content-Length: 13\r\n\r\nHello, world!";

typedef struct {
    uv_write_t req;
    uv_buf_t buf;
} write_req_t;

static void on_close(uv_handle_t *handle)
{
    free(handle);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    static char slab[256 * 1024];
    buf->base = slab;
    buf->len = sizeof(slab);
}

static void on_write(uv_write_t *req, int status)
{
    write_req_t *wr = (write_req_t *)req;
    free(wr->buf.base);
    free(wr);
}

static void on_read(uv_stream_t *client, ssize_t nread, const uv_buf_t *buf)
{
    if (nread < 0) {
        uv_close((uv_handle_t *)client, on_close);
        return;
    }
    if (nread == 0) {
        return;
    }
    if (http_mode) {
        /* Count the ends of header blocks; a request split across reads
           at its blank line is not expected from the benchmark clients. */
        int requests = 0;
        for (ssize_t i = 3; i < nread; i++) {
            if (memcmp(buf->base + i - 3, "\r\n\r\n", 4) == 0) {
                requests++;
            }
        }
        for (int i = 0; i < requests; i++) {
            write_req_t *wr = malloc(sizeof(*wr));
            size_t len = sizeof(http_response) - 1;
            wr->buf = uv_buf_init(malloc(len), (unsigned int)len);
            memcpy(wr->buf.base, http_response, len);
            uv_write(&wr->req, client, &wr->buf, 1, on_write);
        }
        return;
    }
    uv_buf_t b = uv_buf_init(buf->base, (unsigned int)nread);
    int n = uv_try_write(client, &b, 1);
    if (n < 0) {
        n = 0;
    }
    if (n < nread) {
        write_req_t *wr = malloc(sizeof(*wr));
        size_t rest = (size_t)nread - (size_t)n;
        wr->buf = uv_buf_init(malloc(rest), (unsigned int)rest);
        memcpy(wr->buf.base, buf->base + n, rest);
        uv_write(&wr->req, client, &wr->buf, 1, on_write);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0) {
        return;
    }
    uv_stream_t *client;
    if (server->type == UV_TCP) {
        client = malloc(sizeof(uv_tcp_t));
        uv_tcp_init(loop, (uv_tcp_t *)client);
        uv_tcp_nodelay((uv_tcp_t *)client, 1);
    }
    else {
        client = malloc(sizeof(uv_pipe_t));
        uv_pipe_init(loop, (uv_pipe_t *)client, 0);
    }
    if (uv_accept(server, client) == 0) {
        uv_read_start(client, on_alloc, on_read);
    }
    else {
        uv_close((uv_handle_t *)client, on_close);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: %s PORT|unix:PATH [http]\n", argv[0]);
        return 2;
    }
    http_mode = argc == 3 && strcmp(argv[2], "http") == 0;
    loop = uv_default_loop();
    int err;
    if (strncmp(argv[1], "unix:", 5) == 0) {
        static uv_pipe_t server;
        uv_pipe_init(loop, &server, 0);
        err = uv_pipe_bind(&server, argv[1] + 5);
        if (err == 0) {
            err = uv_listen((uv_stream_t *)&server, 1024, on_connection);
        }
    }
    else {
        static uv_tcp_t server;
        struct sockaddr_in addr;
        uv_tcp_init(loop, &server);
        uv_ip4_addr("127.0.0.1", atoi(argv[1]), &addr);
        err = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
        if (err == 0) {
            err = uv_listen((uv_stream_t *)&server, 1024, on_connection);
        }
    }
    if (err != 0) {
        fprintf(stderr, "listen: %s\n", uv_strerror(err));
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    return uv_run(loop, UV_RUN_DEFAULT);
}
