/* Runs a command as a lean runtime would and reports how long it took, from just before the
 * spawn to the reaped exit, on stderr as "timed_exec_ns=<n>" (its last line). Its stdin is read
 * in full first and handed to the command through a pipe that already holds it, so the clock
 * never waits on the caller; stdout and stderr pass through.
 *
 * The bench's other rows time plugins from Python (subprocess), whose own spawning and reaping
 * add about 0.15 ms to every sample; this is for rows that compare a plugin's own account of its
 * time (the call log) with the time a runtime waits. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s command [args...]\n", argv[0]); return 2; }
    size_t length = 0, capacity = 1 << 16;
    char *input = malloc(capacity);
    for (ssize_t n; (n = read(0, input + length, capacity - length)) != 0;) {
        if (n < 0) { perror("read stdin"); return 1; }
        length += (size_t)n;
        if (length == capacity) input = realloc(input, capacity *= 2);
    }
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) { perror("pipe"); return 1; }
    if (length > 65536 && fcntl(pipe_fds[1], F_SETPIPE_SZ, (int)length) < 0) { perror("F_SETPIPE_SZ"); return 1; }
    for (size_t done = 0; done < length;) {
        ssize_t n = write(pipe_fds[1], input + done, length - done);
        if (n < 0) { perror("write"); return 1; }
        done += (size_t)n;
    }
    close(pipe_fds[1]);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[0], 0);
    pid_t pid;
    long long started = now();
    int rc = posix_spawn(&pid, argv[1], &actions, NULL, argv + 1, environ);
    if (rc != 0) { fprintf(stderr, "spawn %s: error %d\n", argv[1], rc); return 127; }
    int status = 0;
    if (waitpid(pid, &status, 0) < 0) { perror("waitpid"); return 1; }
    long long elapsed = now() - started;
    fprintf(stderr, "timed_exec_ns=%lld\n", elapsed);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
