/* podwire's netlink sockets: opened here (socket types are glibc enums whose Swift owner module
 * varies with the headers other modules include), and the two jobs that need a thread of their
 * own, in C so that the thread runs no Swift and allocates nothing. Framing (headers,
 * attributes, acks) is not here: it is all in Swift, in the Netlink module. Every function
 * returns -1 (or NULL) with errno set on failure. */
#ifndef PODWIRE_CNETLINKTHREADS_H
#define PODWIRE_CNETLINKTHREADS_H

#include <sys/types.h>

#ifdef __linux__

/* A SOCK_RAW | SOCK_CLOEXEC netlink socket of `protocol` in the caller's namespace; with `groups`,
 * bound to those multicast groups (a monitor), and with `nonblocking`, SOCK_NONBLOCK. */
int CNetlinkSockets_open(int protocol, unsigned int groups, int nonblocking);

/* A netlink socket of `protocol` created inside the network namespace `nsfd`, then bound to a
 * kernel-chosen port id, and handed to the caller: a socket stays in the namespace it
 * was created in. setns changes only the calling thread, so the work runs on a short-lived thread
 * of its own with a small stack; the caller's thread never leaves its namespace and works
 * meanwhile. `start` returns NULL with errno set when the thread cannot be started; `finish`
 * waits for it and returns the fd, or -1 with errno set (from setns, socket or bind). Every
 * started call must be finished exactly once. */
typedef struct CNetlinkSockets_socket_in_netns CNetlinkSockets_socket_in_netns;
CNetlinkSockets_socket_in_netns *CNetlinkSockets_socket_in_netns_start(int nsfd, int protocol);
int CNetlinkSockets_socket_in_netns_finish(CNetlinkSockets_socket_in_netns *call);

/* send(2) of `length` bytes (copied) on `fd` from a thread of its own: rtnetlink handles a
 * request inside the sender's send(2), so a request the kernel takes long to handle (a link
 * deletion waits out RCU grace periods) blocks only that thread. The kernel's answer is queued on
 * `fd` by the time the send returns. `done_fd` becomes readable then. `finish` waits for the
 * thread and returns 0, or -1 with errno set from send(2). The caller keeps `fd` open until then. */
typedef struct CNetlinkSockets_send CNetlinkSockets_send;
CNetlinkSockets_send *CNetlinkSockets_send_start(int fd, const void *bytes, size_t length);
int CNetlinkSockets_send_done_fd(const CNetlinkSockets_send *call);
int CNetlinkSockets_send_finish(CNetlinkSockets_send *call);

#endif /* __linux__ */
#endif
