/* What Swift's Glibc module hides behind _GNU_SOURCE, and libc constants and macros Swift cannot
 * import. Nothing netlink: that is CNetlink, CNFTables and CNetlinkSockets, for the Netlink module.
 * Every function returns what the C call returns: -1 with errno set on failure. */
#ifndef PODWIRE_CLINUXSHIM_H
#define PODWIRE_CLINUXSHIM_H

#include <sys/types.h>
#include <stdint.h>

#ifdef __linux__

/* statfs f_type of a namespace file: nsfs bind mounts and /proc/<pid>/ns/net. */
extern const long CLinuxShim_NSFS_MAGIC;
extern const long CLinuxShim_PROC_SUPER_MAGIC;

/* linkat(2) flag: link the file an fd refers to (needs CAP_DAC_READ_SEARCH). */
extern const int CLinuxShim_AT_EMPTY_PATH;
/* open(2) flag for an unnamed file in a directory (hidden by Glibc's Swift module without _GNU_SOURCE). */
extern const int CLinuxShim_O_TMPFILE;
/* futimens(2)/utimensat(2) tv_nsec that leaves that timestamp as it is. */
extern const long CLinuxShim_UTIME_OMIT;

/* waitpid(2) status decoding: the <sys/wait.h> macros, as functions. */
int   CLinuxShim_WIFEXITED(int status);
int   CLinuxShim_WEXITSTATUS(int status);
int   CLinuxShim_WIFSIGNALED(int status);
int   CLinuxShim_WTERMSIG(int status);

int   CLinuxShim_pipe2(int fds[2], int flags);
/* getrandom(2) that retries until len bytes are filled; 0 on success. */
int   CLinuxShim_getrandom(void *buffer, size_t len);
/* statfs(2) on an open fd; writes f_type. */
int   CLinuxShim_fstatfs_type(int fd, long *type);
/* The process environment (environ), so Swift code need not name the C global. */
char **CLinuxShim_environ(void);

#endif /* __linux__ */
#endif
