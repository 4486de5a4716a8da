#ifndef _GNU_SOURCE
#error "CLinuxShim must be built with _GNU_SOURCE (see Package.swift)"
#endif

#include "CLinuxShim.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/wait.h>

extern char **environ;

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif
const long CLinuxShim_NSFS_MAGIC = NSFS_MAGIC;
const long CLinuxShim_PROC_SUPER_MAGIC = PROC_SUPER_MAGIC;

const int CLinuxShim_AT_EMPTY_PATH = AT_EMPTY_PATH;
const int CLinuxShim_O_TMPFILE = O_TMPFILE;
const long CLinuxShim_UTIME_OMIT = UTIME_OMIT;

int CLinuxShim_WIFEXITED(int status) { return WIFEXITED(status); }
int CLinuxShim_WEXITSTATUS(int status) { return WEXITSTATUS(status); }
int CLinuxShim_WIFSIGNALED(int status) { return WIFSIGNALED(status); }
int CLinuxShim_WTERMSIG(int status) { return WTERMSIG(status); }

int CLinuxShim_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }

int CLinuxShim_getrandom(void *buffer, size_t len) {
    unsigned char *p = buffer;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int CLinuxShim_fstatfs_type(int fd, long *type) {
    struct statfs buf;
    int rc;
    do { rc = fstatfs(fd, &buf); } while (rc < 0 && errno == EINTR);
    if (rc == 0) *type = (long)buf.f_type;
    return rc;
}

char **CLinuxShim_environ(void) { return environ; }
