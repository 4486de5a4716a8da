#ifndef _GNU_SOURCE
#error "CLinuxShim must be built with _GNU_SOURCE (see Package.swift)"
#endif

#include "CLinuxShim.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <sys/random.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>

extern char **environ;

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif
const long CLinuxShim_NSFS_MAGIC = NSFS_MAGIC;
const long CLinuxShim_PROC_SUPER_MAGIC = PROC_SUPER_MAGIC;

const unsigned int CLinuxShim_IFA_F_NODAD = IFA_F_NODAD;
const unsigned int CLinuxShim_IFA_F_NOPREFIXROUTE = IFA_F_NOPREFIXROUTE;

const unsigned char CLinuxShim_RTPROT_BOOT = RTPROT_BOOT;

const int CLinuxShim_AT_EMPTY_PATH = AT_EMPTY_PATH;

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

struct CLinuxShim_socket_in_netns_call {
    pthread_t thread;
    int nsfd, family, type, protocol;
    int fd;
    int error;
    int borrowed_stack;
};

static void *socket_in_netns_thread(void *raw) {
    struct CLinuxShim_socket_in_netns_call *call = raw;
    if (setns(call->nsfd, CLONE_NEWNET) != 0) {
        call->error = errno;
        return NULL;
    }
    int fd = socket(call->family, call->type, call->protocol);
    if (fd < 0) {
        call->error = errno;
        return NULL;
    }
    if (call->family == AF_NETLINK) {
        struct sockaddr_nl local;
        memset(&local, 0, sizeof local);
        local.nl_family = AF_NETLINK;
        if (bind(fd, (struct sockaddr *)&local, sizeof local) != 0) {
            call->error = errno;
            close(fd);
            return NULL;
        }
    }
    call->fd = fd;
    return NULL;
}

/* The thread's stack: one static block that a call borrows while its thread runs, so starting the
 * thread maps and protects no memory (a plugin process makes one such socket). A second call
 * while it is borrowed gets a stack from glibc as usual. */
static char socket_in_netns_stack[64 * 1024] __attribute__((aligned(64)));
static atomic_flag socket_in_netns_stack_borrowed = ATOMIC_FLAG_INIT;

CLinuxShim_socket_in_netns_call *CLinuxShim_socket_in_netns_start(int nsfd, int family, int type, int protocol) {
    struct CLinuxShim_socket_in_netns_call *call = malloc(sizeof *call);
    if (call == NULL) return NULL;
    *call = (struct CLinuxShim_socket_in_netns_call){ .nsfd = nsfd, .family = family, .type = type, .protocol = protocol, .fd = -1 };
    pthread_attr_t attributes;
    int rc = pthread_attr_init(&attributes);
    if (rc == 0 && !atomic_flag_test_and_set(&socket_in_netns_stack_borrowed)) {
        call->borrowed_stack = 1;
        rc = pthread_attr_setstack(&attributes, socket_in_netns_stack, sizeof socket_in_netns_stack);
    } else if (rc == 0) {
        rc = pthread_attr_setstacksize(&attributes, 64 * 1024);
    }
    if (rc == 0) rc = pthread_create(&call->thread, &attributes, socket_in_netns_thread, call);
    pthread_attr_destroy(&attributes);
    if (rc != 0) {
        if (call->borrowed_stack) atomic_flag_clear(&socket_in_netns_stack_borrowed);
        free(call);
        errno = rc;
        return NULL;
    }
    return call;
}

int CLinuxShim_socket_in_netns_finish(CLinuxShim_socket_in_netns_call *call) {
    pthread_join(call->thread, NULL);
    if (call->borrowed_stack) atomic_flag_clear(&socket_in_netns_stack_borrowed);
    int fd = call->fd, error = call->error;
    free(call);
    if (fd < 0) errno = error;
    return fd;
}

struct CLinuxShim_netlink_call {
    pthread_t thread;
    int socket_fd;
    int done_fd;
    size_t length;
    int result;
    unsigned char message[];
};

static int netlink_call_transact(struct CLinuxShim_netlink_call *call) {
    ssize_t sent;
    do { sent = send(call->socket_fd, call->message, call->length, 0); } while (sent < 0 && errno == EINTR);
    if (sent < 0) return -errno;
    const struct nlmsghdr *request = (const struct nlmsghdr *)call->message;
    /* 8 KiB holds any ack of a request we send (the echoed request is small). */
    unsigned char buffer[8192];
    for (;;) {
        ssize_t received = recv(call->socket_fd, buffer, sizeof buffer, 0);
        if (received < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        for (struct nlmsghdr *reply = (struct nlmsghdr *)buffer; NLMSG_OK(reply, (size_t)received);
             reply = NLMSG_NEXT(reply, received)) {
            if (reply->nlmsg_seq != request->nlmsg_seq) continue;
            if (reply->nlmsg_type == NLMSG_ERROR) {
                if (reply->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) return -EBADMSG;
                return ((const struct nlmsgerr *)NLMSG_DATA(reply))->error;
            }
        }
    }
}

static void *netlink_call_thread(void *raw) {
    struct CLinuxShim_netlink_call *call = raw;
    call->result = netlink_call_transact(call);
    uint64_t one = 1;
    ssize_t written;
    do { written = write(call->done_fd, &one, sizeof one); } while (written < 0 && errno == EINTR);
    return NULL;
}

CLinuxShim_netlink_call *CLinuxShim_netlink_call_start(int protocol, const void *message, size_t length) {
    if (length < sizeof(struct nlmsghdr)) {
        errno = EINVAL;
        return NULL;
    }
    struct CLinuxShim_netlink_call *call = malloc(sizeof *call + length);
    if (!call) return NULL;
    memcpy(call->message, message, length);
    call->length = length;
    call->result = 0;
    call->socket_fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    call->done_fd = call->socket_fd < 0 ? -1 : eventfd(0, EFD_CLOEXEC);
    int rc = call->done_fd < 0 ? errno : 0;
    pthread_attr_t attributes;
    if (rc == 0) rc = pthread_attr_init(&attributes);
    if (rc == 0) {
        rc = pthread_attr_setstacksize(&attributes, 64 * 1024);
        if (rc == 0) rc = pthread_create(&call->thread, &attributes, netlink_call_thread, call);
        pthread_attr_destroy(&attributes);
    }
    if (rc != 0) {
        if (call->socket_fd >= 0) close(call->socket_fd);
        if (call->done_fd >= 0) close(call->done_fd);
        free(call);
        errno = rc;
        return NULL;
    }
    return call;
}

int CLinuxShim_netlink_call_done_fd(const CLinuxShim_netlink_call *call) { return call->done_fd; }

int CLinuxShim_netlink_call_finish(CLinuxShim_netlink_call *call) {
    pthread_join(call->thread, NULL);
    int result = call->result;
    close(call->socket_fd);
    close(call->done_fd);
    free(call);
    return result;
}

int CLinuxShim_link_monitor_open(void) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
    if (fd < 0) return -1;
    struct sockaddr_nl local;
    memset(&local, 0, sizeof local);
    local.nl_family = AF_NETLINK;
    local.nl_groups = RTMGRP_LINK;
    if (bind(fd, (struct sockaddr *)&local, sizeof local) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int CLinuxShim_link_monitor_wait_removed(int monitor, int ifindex, int done_fd) {
    unsigned char buffer[16384];
    for (;;) {
        struct pollfd fds[2] = { { .fd = monitor, .events = POLLIN }, { .fd = done_fd, .events = POLLIN } };
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        /* Notifications first: the kernel announces the removal before it answers the request. */
        while (fds[0].revents) {
            ssize_t received = recv(monitor, buffer, sizeof buffer, 0);
            if (received < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                return -1;
            }
            for (struct nlmsghdr *message = (struct nlmsghdr *)buffer; NLMSG_OK(message, (size_t)received);
                 message = NLMSG_NEXT(message, received)) {
                if (message->nlmsg_type != RTM_DELLINK) continue;
                if (message->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg))) continue;
                const struct ifinfomsg *link = NLMSG_DATA(message);
                /* AF_BRIDGE deletions announce a port leaving its bridge, not the link going. */
                if (link->ifi_family == AF_UNSPEC && link->ifi_index == ifindex) return 1;
            }
        }
        if (fds[1].revents) return 0;
    }
}
