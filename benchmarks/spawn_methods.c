/* How fast can N concurrent `true` processes be started and reaped, by
   each way of spawning (no event loop, no Python): the measurement behind
   process.c's choice of posix_spawn. Usage: spawn_methods uv|posix_spawn|vfork|fork N */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

extern char **environ;
static char *argv_true[] = {"/bin/true", NULL};
static int exited;

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
    (void)status;
    (void)sig;
    exited++;
    uv_close((uv_handle_t *)p, NULL);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        return 2;
    }
    int n = atoi(argv[2]);
    double t0 = now();
    if (strcmp(argv[1], "uv") == 0) {
        uv_loop_t *loop = uv_default_loop();
        uv_process_t *procs = calloc(n, sizeof(uv_process_t));
        uv_process_options_t opt = {0};
        opt.file = argv_true[0];
        opt.args = argv_true;
        opt.exit_cb = on_exit_cb;
        for (int i = 0; i < n; i++) {
            if (uv_spawn(loop, &procs[i], &opt) != 0) {
                return 1;
            }
        }
        while (exited < n) {
            uv_run(loop, UV_RUN_ONCE);
        }
    }
    else {
        for (int i = 0; i < n; i++) {
            pid_t pid;
            if (strcmp(argv[1], "posix_spawn") == 0) {
                if (posix_spawn(&pid, argv_true[0], NULL, NULL, argv_true, environ) != 0) {
                    return 1;
                }
            }
            else {
                pid = strcmp(argv[1], "vfork") == 0 ? vfork() : fork();
                if (pid == 0) {
                    execve(argv_true[0], argv_true, environ);
                    _exit(127);
                }
            }
        }
        for (int i = 0; i < n; i++) {
            wait(NULL);
        }
    }
    printf("%.6f\n", now() - t0);
    return 0;
}
