/* What the kernel itself costs for everything a ptp-style ADD asks of it, without a plugin: the
 * same requests podwire sends, in the same order, from one C process, timed around them only.
 * No process start, no JSON, no IPAM store. For information beside the floor the targets use
 * (veth-floor.c): it shows how much of an ADD is kernel work that any plugin must wait for.
 *
 *   pod:  a netlink socket opened inside the pod's namespace; eth0 looked up (absent);
 *         10.244.0.2/24 noprefixroute; up; 10.244.0.1 scope link; default and 10.244.0.0/24 via it
 *   node: ip_forward read; the veth pair created with the pod end born in the pod's namespace;
 *         disable_ipv6 and forwarding on the host end; host end looked up, alias set, up;
 *         10.244.0.1/32 on it; 10.244.0.2/32 scope host via it
 *
 * usage: wire-floor <pod-netns-path> <iterations>  (the namespace must hold no eth0)
 * prints one line per iteration: "<wire-ns>"; the pair is deleted (untimed) after each. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "netlink-request.h"

/* Sends one request and reads until its ack; returns -errno, else the ifindex of a RTM_NEWLINK
 * reply if there was one, else 0. */
static int transact(int sock, struct nlmsghdr *h) {
    if (send(sock, h, h->nlmsg_len, 0) < 0) return -errno;
    char buffer[8192];
    int index = 0;
    for (;;) {
        ssize_t n = recv(sock, buffer, sizeof buffer, 0);
        if (n < 0) return -errno;
        for (struct nlmsghdr *reply = (struct nlmsghdr *)buffer; NLMSG_OK(reply, (size_t)n); reply = NLMSG_NEXT(reply, n)) {
            if (reply->nlmsg_type == RTM_NEWLINK) index = ((struct ifinfomsg *)NLMSG_DATA(reply))->ifi_index;
            if (reply->nlmsg_type == NLMSG_ERROR) {
                int error = ((struct nlmsgerr *)NLMSG_DATA(reply))->error;
                return error < 0 ? error : index;
            }
        }
    }
}

static struct nlmsghdr *start(union request *r, int type, int flags, size_t body) {
    memset(r, 0, sizeof *r);
    r->header.nlmsg_len = NLMSG_LENGTH(body);
    r->header.nlmsg_type = type;
    r->header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    return &r->header;
}

static int get_link(int sock, const char *name) {
    union request r;
    struct nlmsghdr *h = start(&r, RTM_GETLINK, 0, sizeof(struct ifinfomsg));
    put(h, IFLA_IFNAME, name, strlen(name) + 1);
    return transact(sock, h);
}

static int set_up(int sock, int index, const char *alias) {
    union request r;
    struct nlmsghdr *h = start(&r, RTM_NEWLINK, 0, sizeof(struct ifinfomsg));
    struct ifinfomsg *info = NLMSG_DATA(h);
    info->ifi_index = index;
    info->ifi_flags = IFF_UP;
    info->ifi_change = IFF_UP;
    if (alias) put(h, IFLA_IFALIAS, alias, strlen(alias) + 1);
    return transact(sock, h);
}

static int add_address(int sock, int index, const char *address, int prefix, unsigned flags) {
    union request r;
    struct nlmsghdr *h = start(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, sizeof(struct ifaddrmsg));
    struct ifaddrmsg *info = NLMSG_DATA(h);
    info->ifa_family = AF_INET;
    info->ifa_prefixlen = prefix;
    info->ifa_index = index;
    struct in_addr a;
    inet_pton(AF_INET, address, &a);
    put(h, IFA_LOCAL, &a, 4);
    put(h, IFA_ADDRESS, &a, 4);
    if (flags) put(h, IFA_FLAGS, &flags, 4);
    return transact(sock, h);
}

static int add_route(int sock, int index, const char *destination, int prefix, const char *gateway,
                     const char *source, int scope, int flags) {
    union request r;
    struct nlmsghdr *h = start(&r, RTM_NEWROUTE, NLM_F_CREATE | flags, sizeof(struct rtmsg));
    struct rtmsg *info = NLMSG_DATA(h);
    info->rtm_family = AF_INET;
    info->rtm_dst_len = prefix;
    info->rtm_table = RT_TABLE_MAIN;
    info->rtm_protocol = RTPROT_BOOT;
    info->rtm_scope = scope;
    info->rtm_type = RTN_UNICAST;
    struct in_addr a;
    if (prefix) { inet_pton(AF_INET, destination, &a); put(h, RTA_DST, &a, 4); }
    if (gateway) { inet_pton(AF_INET, gateway, &a); put(h, RTA_GATEWAY, &a, 4); }
    if (source) { inet_pton(AF_INET, source, &a); put(h, RTA_PREFSRC, &a, 4); }
    put(h, RTA_OIF, &index, 4);
    return transact(sock, h);
}

static int sysctl_write(const char *path, const char *value) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int rc = write(fd, value, strlen(value)) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

#define CHECK(what, expression) do { int rc_ = (expression); if (rc_ < 0) { fprintf(stderr, "%s: %s\n", what, strerror(-rc_)); return 1; } } while (0)

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s <pod-netns-path> <iterations>\n", argv[0]); return 2; }
    int iterations = atoi(argv[2]);
    int host = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (host < 0 || home < 0) { perror("setup"); return 1; }
    for (int i = 0; i < iterations; i++) {
        char name[IFNAMSIZ], path[128], alias[64];
        snprintf(name, sizeof name, "vwire%d", i % 100000);
        snprintf(alias, sizeof alias, "wire-floor %d eth0", i);
        long long t0 = now();
        int ns = open(argv[1], O_RDONLY | O_CLOEXEC);
        if (ns < 0 || setns(ns, CLONE_NEWNET) < 0) { perror("enter the pod namespace"); return 1; }
        int pod = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (setns(home, CLONE_NEWNET) < 0 || pod < 0) { perror("pod socket"); return 1; }
        if (get_link(pod, "eth0") != -ENODEV) { fprintf(stderr, "eth0 exists in the pod\n"); return 1; }
        char forward[8];
        int fd = open("/proc/sys/net/ipv4/ip_forward", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read(fd, forward, sizeof forward) < 0) { perror("ip_forward"); return 1; }
        close(fd);

        union request create;
        struct nlmsghdr *h = start(&create, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, sizeof(struct ifinfomsg));
        put(h, IFLA_IFNAME, name, strlen(name) + 1);
        struct rtattr *linkinfo = put(h, IFLA_LINKINFO, NULL, 0);
        put(h, IFLA_INFO_KIND, "veth", 4);
        struct rtattr *data = put(h, IFLA_INFO_DATA, NULL, 0);
        struct rtattr *peer = put(h, VETH_INFO_PEER, NULL, 0);
        h->nlmsg_len += sizeof(struct ifinfomsg);
        put(h, IFLA_IFNAME, "eth0", 5);
        put(h, IFLA_NET_NS_FD, &ns, sizeof ns);
        end(h, peer);
        end(h, data);
        end(h, linkinfo);
        CHECK("create the pair", transact(host, h));

        snprintf(path, sizeof path, "/proc/sys/net/ipv4/conf/%s/forwarding", name);
        CHECK("forwarding", sysctl_write(path, "1\n"));
        snprintf(path, sizeof path, "/proc/sys/net/ipv6/conf/%s/disable_ipv6", name);
        CHECK("disable_ipv6", sysctl_write(path, "1\n"));
        int host_index = get_link(host, name);
        CHECK("look up the host end", host_index);
        CHECK("host end up", set_up(host, host_index, alias));

        int pod_index = get_link(pod, "eth0");
        CHECK("look up eth0", pod_index);
        CHECK("pod address", add_address(pod, pod_index, "10.244.0.2", 24, IFA_F_NOPREFIXROUTE));
        CHECK("eth0 up", set_up(pod, pod_index, NULL));
        CHECK("gateway route", add_route(pod, pod_index, "10.244.0.1", 32, NULL, "10.244.0.2", RT_SCOPE_LINK, NLM_F_EXCL));
        CHECK("default route", add_route(pod, pod_index, "0.0.0.0", 0, "10.244.0.1", NULL, RT_SCOPE_UNIVERSE, 0));
        CHECK("subnet route", add_route(pod, pod_index, "10.244.0.0", 24, "10.244.0.1", "10.244.0.2", RT_SCOPE_UNIVERSE, NLM_F_EXCL));
        CHECK("gateway address", add_address(host, host_index, "10.244.0.1", 32, 0));
        CHECK("host route", add_route(host, host_index, "10.244.0.2", 32, NULL, NULL, RT_SCOPE_HOST, NLM_F_REPLACE));
        long long t1 = now();
        close(pod);
        close(ns);

        union request destroy;
        h = start(&destroy, RTM_DELLINK, 0, sizeof(struct ifinfomsg));
        ((struct ifinfomsg *)NLMSG_DATA(h))->ifi_index = host_index;
        CHECK("delete", transact(host, h));
        printf("%lld\n", t1 - t0);
    }
    return 0;
}
