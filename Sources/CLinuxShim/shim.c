#ifndef _GNU_SOURCE
#error "CLinuxShim must be built with _GNU_SOURCE (see Package.swift)"
#endif

#include "CLinuxShim.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>

extern char **environ;

const int CLinuxShim_CLONE_NEWNET = CLONE_NEWNET;
const int CLinuxShim_CLONE_NEWNS = CLONE_NEWNS;
const int CLinuxShim_CLONE_NEWUSER = CLONE_NEWUSER;

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif
const long CLinuxShim_NSFS_MAGIC = NSFS_MAGIC;
const long CLinuxShim_PROC_SUPER_MAGIC = PROC_SUPER_MAGIC;

const unsigned int CLinuxShim_IFA_F_NODAD = IFA_F_NODAD;
const unsigned int CLinuxShim_IFA_F_NOPREFIXROUTE = IFA_F_NOPREFIXROUTE;

const unsigned char CLinuxShim_RTPROT_BOOT = RTPROT_BOOT;
const unsigned char CLinuxShim_RTPROT_KERNEL = RTPROT_KERNEL;

int CLinuxShim_setns(int fd, int nstype) { return setns(fd, nstype); }

int CLinuxShim_unshare(int flags) { return unshare(flags); }

int CLinuxShim_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }

pid_t CLinuxShim_gettid(void) { return (pid_t)syscall(SYS_gettid); }

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

struct socket_in_netns_request {
    int nsfd, family, type, protocol;
    int fd;
    int error;
};

static void *socket_in_netns_thread(void *raw) {
    struct socket_in_netns_request *request = raw;
    if (setns(request->nsfd, CLONE_NEWNET) != 0) {
        request->error = errno;
        return NULL;
    }
    int fd = socket(request->family, request->type, request->protocol);
    if (fd < 0) {
        request->error = errno;
        return NULL;
    }
    if (request->family == AF_NETLINK) {
        struct sockaddr_nl local;
        memset(&local, 0, sizeof local);
        local.nl_family = AF_NETLINK;
        if (bind(fd, (struct sockaddr *)&local, sizeof local) != 0) {
            request->error = errno;
            close(fd);
            return NULL;
        }
    }
    request->fd = fd;
    return NULL;
}

int CLinuxShim_socket_in_netns(int nsfd, int family, int type, int protocol) {
    struct socket_in_netns_request request = { nsfd, family, type, protocol, -1, 0 };
    pthread_attr_t attributes;
    int rc = pthread_attr_init(&attributes);
    if (rc == 0) rc = pthread_attr_setstacksize(&attributes, 64 * 1024);
    pthread_t thread;
    if (rc == 0) rc = pthread_create(&thread, &attributes, socket_in_netns_thread, &request);
    pthread_attr_destroy(&attributes);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    pthread_join(thread, NULL);
    if (request.fd < 0) {
        errno = request.error;
        return -1;
    }
    return request.fd;
}
