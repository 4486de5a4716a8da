#define _GNU_SOURCE
#include "CNetlinkSockets.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <linux/netlink.h>

int CNetlinkSockets_open(int protocol, unsigned int groups, int nonblocking) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), protocol);
    if (fd < 0 || groups == 0) return fd;
    struct sockaddr_nl local;
    memset(&local, 0, sizeof local);
    local.nl_family = AF_NETLINK;
    local.nl_groups = groups;
    if (bind(fd, (struct sockaddr *)&local, sizeof local) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

struct CNetlinkSockets_socket_in_netns {
    pthread_t thread;
    int nsfd, protocol;
    int fd;
    int error;
    int borrowed_stack;
};

static void *socket_in_netns_thread(void *raw) {
    struct CNetlinkSockets_socket_in_netns *call = raw;
    if (setns(call->nsfd, CLONE_NEWNET) != 0) {
        call->error = errno;
        return NULL;
    }
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, call->protocol);
    if (fd < 0) {
        call->error = errno;
        return NULL;
    }
    struct sockaddr_nl local;
    memset(&local, 0, sizeof local);
    local.nl_family = AF_NETLINK;
    if (bind(fd, (struct sockaddr *)&local, sizeof local) != 0) {
        call->error = errno;
        close(fd);
        return NULL;
    }
    call->fd = fd;
    return NULL;
}

/* The thread's stack: one static block that a call borrows while its thread runs, so starting the
 * thread maps and protects no memory (a plugin process makes one such socket). A second call
 * while it is borrowed gets a stack from glibc as usual. */
static char socket_in_netns_stack[64 * 1024] __attribute__((aligned(64)));
static atomic_flag socket_in_netns_stack_borrowed = ATOMIC_FLAG_INIT;

CNetlinkSockets_socket_in_netns *CNetlinkSockets_socket_in_netns_start(int nsfd, int protocol) {
    struct CNetlinkSockets_socket_in_netns *call = malloc(sizeof *call);
    if (call == NULL) return NULL;
    *call = (struct CNetlinkSockets_socket_in_netns){ .nsfd = nsfd, .protocol = protocol, .fd = -1 };
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

int CNetlinkSockets_socket_in_netns_finish(CNetlinkSockets_socket_in_netns *call) {
    pthread_join(call->thread, NULL);
    if (call->borrowed_stack) atomic_flag_clear(&socket_in_netns_stack_borrowed);
    int fd = call->fd, error = call->error;
    free(call);
    if (fd < 0) errno = error;
    return fd;
}

struct CNetlinkSockets_send {
    pthread_t thread;
    int fd;
    int done_fd;
    int error;
    size_t length;
    unsigned char bytes[];
};

static void *send_thread(void *raw) {
    struct CNetlinkSockets_send *call = raw;
    ssize_t sent;
    do { sent = send(call->fd, call->bytes, call->length, 0); } while (sent < 0 && errno == EINTR);
    call->error = sent < 0 ? errno : 0;
    uint64_t one = 1;
    ssize_t written;
    do { written = write(call->done_fd, &one, sizeof one); } while (written < 0 && errno == EINTR);
    return NULL;
}

CNetlinkSockets_send *CNetlinkSockets_send_start(int fd, const void *bytes, size_t length) {
    struct CNetlinkSockets_send *call = malloc(sizeof *call + length);
    if (!call) return NULL;
    memcpy(call->bytes, bytes, length);
    call->length = length;
    call->fd = fd;
    call->error = 0;
    call->done_fd = eventfd(0, EFD_CLOEXEC);
    int rc = call->done_fd < 0 ? errno : 0;
    pthread_attr_t attributes;
    if (rc == 0) rc = pthread_attr_init(&attributes);
    if (rc == 0) {
        rc = pthread_attr_setstacksize(&attributes, 64 * 1024);
        if (rc == 0) rc = pthread_create(&call->thread, &attributes, send_thread, call);
        pthread_attr_destroy(&attributes);
    }
    if (rc != 0) {
        if (call->done_fd >= 0) close(call->done_fd);
        free(call);
        errno = rc;
        return NULL;
    }
    return call;
}

int CNetlinkSockets_send_done_fd(const CNetlinkSockets_send *call) { return call->done_fd; }

int CNetlinkSockets_send_finish(CNetlinkSockets_send *call) {
    pthread_join(call->thread, NULL);
    int error = call->error;
    close(call->done_fd);
    free(call);
    if (error != 0) {
        errno = error;
        return -1;
    }
    return 0;
}
