/* Runs a command with stdin passed through and reports its peak resident memory (KiB) on
 * stderr as "peak_rss_kib=<n>". The measuring process is this small C program, so what the
 * child held before exec (a copy of us) is far below any plugin's own peak. */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s command [args...]\n", argv[0]); return 2; }
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 1; }
    if (pid == 0) { execv(argv[1], argv + 1); perror("exec"); _exit(127); }
    int status = 0;
    struct rusage usage;
    if (wait4(pid, &status, 0, &usage) < 0) { perror("wait4"); return 1; }
    fprintf(stderr, "peak_rss_kib=%ld\n", usage.ru_maxrss);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
