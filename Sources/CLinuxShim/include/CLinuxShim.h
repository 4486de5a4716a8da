/* What Swift's Glibc module hides behind _GNU_SOURCE, and kernel constants that are macros.
 * Every function returns what the C call returns: -1 with errno set on failure. */
#ifndef PODWIRE_CLINUXSHIM_H
#define PODWIRE_CLINUXSHIM_H

#include <sys/types.h>
#include <stdint.h>

#ifdef __linux__

/* statfs f_type of a namespace file: nsfs bind mounts and /proc/<pid>/ns/net. */
extern const long CLinuxShim_NSFS_MAGIC;
extern const long CLinuxShim_PROC_SUPER_MAGIC;

/* Interface address flags (linux/if_addr.h); IFA_F_NODAD and IFA_F_NOPREFIXROUTE. */
extern const unsigned int CLinuxShim_IFA_F_NODAD;
extern const unsigned int CLinuxShim_IFA_F_NOPREFIXROUTE;

/* The route protocol ip(8) prints as "boot": what routes added by a plugin carry. */
extern const unsigned char CLinuxShim_RTPROT_BOOT;

/* linkat(2) flag: link the file an fd refers to (needs CAP_DAC_READ_SEARCH). */
extern const int CLinuxShim_AT_EMPTY_PATH;

int   CLinuxShim_pipe2(int fds[2], int flags);
/* getrandom(2) that retries until len bytes are filled; 0 on success. */
int   CLinuxShim_getrandom(void *buffer, size_t len);
/* statfs(2) on an open fd; writes f_type. */
int   CLinuxShim_fstatfs_type(int fd, long *type);
/* The process environment (environ), so Swift code need not name the C global. */
char **CLinuxShim_environ(void);

/* socket(2) created inside the network namespace `nsfd`, then bind(2) to a kernel-chosen address
 * of `family` (netlink: a port id), and handed to the caller: a socket stays in the namespace it
 * was created in. setns changes only the calling thread, so the work runs on a short-lived thread
 * of its own with a small stack that runs no Swift and allocates nothing; the caller's thread
 * never leaves its namespace and works meanwhile. `start` returns NULL with errno set when the
 * thread cannot be started; `finish` waits for it and returns the fd, or -1 with errno set (from
 * setns, socket or bind). Every started call must be finished exactly once. */
typedef struct CLinuxShim_socket_in_netns_call CLinuxShim_socket_in_netns_call;
CLinuxShim_socket_in_netns_call *CLinuxShim_socket_in_netns_start(int nsfd, int family, int type, int protocol);
int CLinuxShim_socket_in_netns_finish(CLinuxShim_socket_in_netns_call *call);

/* A netlink request that the kernel takes long to answer, sent from a thread of its own so the
 * caller can work meanwhile. `start` copies the message (one complete nlmsghdr with NLM_F_ACK),
 * opens a socket of `protocol` in the caller's namespace and sends it from a new thread; NULL
 * with errno set on failure. `done_fd` becomes readable when the kernel has answered. `finish`
 * waits for the answer, frees everything and returns 0 or the kernel's -errno. */
typedef struct CLinuxShim_netlink_call CLinuxShim_netlink_call;
CLinuxShim_netlink_call *CLinuxShim_netlink_call_start(int protocol, const void *message, size_t length);
int CLinuxShim_netlink_call_done_fd(const CLinuxShim_netlink_call *call);
int CLinuxShim_netlink_call_finish(CLinuxShim_netlink_call *call);

/* A NETLINK_ROUTE socket in the caller's namespace that receives link notifications (RTMGRP_LINK).
 * Returns the fd, or -1 with errno set. */
int CLinuxShim_link_monitor_open(void);
/* Reads `monitor` until it announces RTM_DELLINK for `ifindex` (returns 1) or `done_fd` becomes
 * readable first (returns 0). Returns -1 with errno set when the monitor fails, ENOBUFS when the
 * kernel dropped notifications: the caller then cannot tell, and must wait for the request. */
int CLinuxShim_link_monitor_wait_removed(int monitor, int ifindex, int done_fd);

#endif /* __linux__ */
#endif
