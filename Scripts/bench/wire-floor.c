/* What the kernel itself costs for everything a ptp-style ADD asks of it, without a plugin: the
 * same requests podwire sends, batched as podwire batches them, from one C process, timed around
 * them only. No process start, no JSON, no IPAM store. For information beside the floor the
 * targets use (veth-floor.c): it shows how much of an ADD is kernel work that any plugin must
 * wait for.
 *
 *   node: ip_forward read
 *   pod:  a netlink socket opened inside the pod's namespace, which creates the pair: eth0 in the
 *         pod, the host end in this process's namespace, one queue each, echoed back
 *   node: disable_ipv6 on the host end
 *   pod:  one batch: 10.244.0.2/24 noprefixroute; up; 10.244.0.1 scope link; default and
 *         10.244.0.0/24 via it
 *   node: one batch: host end alias, forwarding and up; 10.244.0.1/32 on it; 10.244.0.2/32 scope
 *         host via it
 *
 * usage: wire-floor <pod-netns-path> <iterations> [<pod-address>]  (the namespace must hold no eth0;
 *        the pod's address defaults to 10.244.0.2, the gateway is 10.244.0.1 either way)
 * prints one line per iteration: "<wire-ns>"; the pair is deleted (untimed) after each. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/ip.h>
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

/* Sends `count` requests in one send and reads until each is answered; returns the first -errno,
 * else 0. An echoed RTM_NEWLINK sets *index to its ifindex and *peer to its IFLA_LINK. */
static int transact_batch(int sock, union request *requests, int count, int *index, int *peer) {
    char message[8192];
    size_t length = 0;
    for (int i = 0; i < count; i++) {
        requests[i].header.nlmsg_seq = i + 1;
        memcpy(message + length, &requests[i], requests[i].header.nlmsg_len);
        length += NLMSG_ALIGN(requests[i].header.nlmsg_len);
    }
    if (send(sock, message, length, 0) < 0) return -errno;
    char buffer[8192];
    int answered = 0, result = 0;
    while (answered < count) {
        ssize_t n = recv(sock, buffer, sizeof buffer, 0);
        if (n < 0) return -errno;
        for (struct nlmsghdr *reply = (struct nlmsghdr *)buffer; NLMSG_OK(reply, (size_t)n); reply = NLMSG_NEXT(reply, n)) {
            if (reply->nlmsg_type == RTM_NEWLINK && index != NULL) {
                struct ifinfomsg *info = NLMSG_DATA(reply);
                *index = info->ifi_index;
                int left = IFLA_PAYLOAD(reply);
                for (struct rtattr *a = IFLA_RTA(info); RTA_OK(a, left); a = RTA_NEXT(a, left))
                    if (a->rta_type == IFLA_LINK) *peer = *(int *)RTA_DATA(a);
            }
            if (reply->nlmsg_type == NLMSG_ERROR) {
                int error = ((struct nlmsgerr *)NLMSG_DATA(reply))->error;
                if (error < 0 && result == 0) result = error;
                answered++;
            }
        }
    }
    return result;
}

static int transact(int sock, struct nlmsghdr *h) {
    return transact_batch(sock, (union request *)h, 1, NULL, NULL);
}

static struct nlmsghdr *start(union request *r, int type, int flags, size_t body) {
    memset(r, 0, sizeof *r);
    r->header.nlmsg_len = NLMSG_LENGTH(body);
    r->header.nlmsg_type = type;
    r->header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    return &r->header;
}

static void set_up(union request *r, int index, const char *alias, int forwarding) {
    struct nlmsghdr *h = start(r, RTM_NEWLINK, 0, sizeof(struct ifinfomsg));
    struct ifinfomsg *info = NLMSG_DATA(h);
    info->ifi_index = index;
    info->ifi_flags = IFF_UP;
    info->ifi_change = IFF_UP;
    if (alias) put(h, IFLA_IFALIAS, alias, strlen(alias) + 1);
    if (forwarding) {
        struct rtattr *spec = put(h, IFLA_AF_SPEC, NULL, 0);
        struct rtattr *inet = put(h, AF_INET, NULL, 0);
        struct rtattr *conf = put(h, IFLA_INET_CONF, NULL, 0);
        int one = 1;
        put(h, IPV4_DEVCONF_FORWARDING, &one, 4);
        end(h, conf);
        end(h, inet);
        end(h, spec);
    }
}

static void add_address(union request *r, int index, const char *address, int prefix, unsigned flags) {
    struct nlmsghdr *h = start(r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, sizeof(struct ifaddrmsg));
    struct ifaddrmsg *info = NLMSG_DATA(h);
    info->ifa_family = AF_INET;
    info->ifa_prefixlen = prefix;
    info->ifa_index = index;
    struct in_addr a;
    inet_pton(AF_INET, address, &a);
    put(h, IFA_LOCAL, &a, 4);
    put(h, IFA_ADDRESS, &a, 4);
    if (flags) put(h, IFA_FLAGS, &flags, 4);
}

static void add_route(union request *r, int index, const char *destination, int prefix, const char *gateway,
                      const char *source, int scope, int flags) {
    struct nlmsghdr *h = start(r, RTM_NEWROUTE, NLM_F_CREATE | flags, sizeof(struct rtmsg));
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
    if (argc != 3 && argc != 4) { fprintf(stderr, "usage: %s <pod-netns-path> <iterations> [<pod-address>]\n", argv[0]); return 2; }
    int iterations = atoi(argv[2]);
    const char *pod_address = argc == 4 ? argv[3] : "10.244.0.2";
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
        char forward[8];
        int fd = open("/proc/sys/net/ipv4/ip_forward", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read(fd, forward, sizeof forward) < 0) { perror("ip_forward"); return 1; }
        close(fd);

        union request create;
        struct nlmsghdr *h = start(&create, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO, sizeof(struct ifinfomsg));
        int one = 1, pid = getpid();
        put(h, IFLA_IFNAME, "eth0", 5);
        put(h, IFLA_NUM_TX_QUEUES, &one, 4);
        put(h, IFLA_NUM_RX_QUEUES, &one, 4);
        struct rtattr *linkinfo = put(h, IFLA_LINKINFO, NULL, 0);
        put(h, IFLA_INFO_KIND, "veth", 4);
        struct rtattr *data = put(h, IFLA_INFO_DATA, NULL, 0);
        struct rtattr *peer = put(h, VETH_INFO_PEER, NULL, 0);
        h->nlmsg_len += sizeof(struct ifinfomsg);
        put(h, IFLA_IFNAME, name, strlen(name) + 1);
        put(h, IFLA_NUM_TX_QUEUES, &one, 4);
        put(h, IFLA_NUM_RX_QUEUES, &one, 4);
        put(h, IFLA_NET_NS_PID, &pid, sizeof pid);
        end(h, peer);
        end(h, data);
        end(h, linkinfo);
        int pod_index = 0, host_index = 0;
        CHECK("create the pair", transact_batch(pod, &create, 1, &pod_index, &host_index));
        if (pod_index == 0 || host_index == 0) { fprintf(stderr, "the kernel did not echo the new pair\n"); return 1; }

        snprintf(path, sizeof path, "/proc/sys/net/ipv6/conf/%s/disable_ipv6", name);
        CHECK("disable_ipv6", sysctl_write(path, "1\n"));

        union request pod_side[5];
        add_address(&pod_side[0], pod_index, pod_address, 24, IFA_F_NOPREFIXROUTE);
        set_up(&pod_side[1], pod_index, NULL, 0);
        add_route(&pod_side[2], pod_index, "10.244.0.1", 32, NULL, pod_address, RT_SCOPE_LINK, NLM_F_EXCL);
        add_route(&pod_side[3], pod_index, "0.0.0.0", 0, "10.244.0.1", NULL, RT_SCOPE_UNIVERSE, 0);
        add_route(&pod_side[4], pod_index, "10.244.0.0", 24, "10.244.0.1", pod_address, RT_SCOPE_UNIVERSE, NLM_F_EXCL);
        CHECK("pod side", transact_batch(pod, pod_side, 5, NULL, NULL));

        union request host_side[3];
        set_up(&host_side[0], host_index, alias, 1);
        add_address(&host_side[1], host_index, "10.244.0.1", 32, 0);
        add_route(&host_side[2], host_index, pod_address, 32, NULL, NULL, RT_SCOPE_HOST, NLM_F_REPLACE);
        CHECK("host side", transact_batch(host, host_side, 3, NULL, NULL));
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
