/*
 * A pod sandbox's first process, as small as a pause image gets: it holds the pod's namespaces
 * open, reaps whatever exits under it (it is PID 1 of the pod's PID namespace) and exits 0 on
 * SIGTERM or SIGINT, which is how containerd's StopPodSandbox asks it to go.
 *
 * Built static (`gcc -static -O2 -o pause pause.c`) so the image needs nothing but this file.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;

static void on_stop(int signo) {
    (void)signo;
    stopping = 1;
}

static void on_child(int signo) {
    (void)signo;
    int saved = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved;
}

static int handle(int signo, void (*handler)(int)) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = signo == SIGCHLD ? SA_NOCLDSTOP | SA_RESTART : 0;
    return sigaction(signo, &action, NULL);
}

int main(void) {
    if (handle(SIGTERM, on_stop) != 0 || handle(SIGINT, on_stop) != 0 || handle(SIGCHLD, on_child) != 0) {
        perror("pause: sigaction");
        return 1;
    }
    /* Block the stop signals between the check and the wait, so one arriving in that window is
     * not lost: sigsuspend unblocks them atomically while it waits. */
    sigset_t blocked, waiting;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGTERM);
    sigaddset(&blocked, SIGINT);
    if (sigprocmask(SIG_BLOCK, &blocked, &waiting) != 0) {
        perror("pause: sigprocmask");
        return 1;
    }
    sigdelset(&waiting, SIGTERM);
    sigdelset(&waiting, SIGINT);
    while (!stopping) {
        sigsuspend(&waiting);
    }
    return 0;
}
