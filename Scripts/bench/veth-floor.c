/* The kernel's own floor for what a ptp-style plugin must do: create a veth pair with one end
 * born in another network namespace (one RTM_NEWLINK), and delete it again (one RTM_DELLINK),
 * timed around the netlink round trip only. No process start, no JSON, no IPAM.
 *
 * With "up", the pod end is brought up too (one more RTM_NEWLINK from a socket opened inside the
 * pod's namespace), as a pod's eth0 is: a live pair starts IPv6 link-local setup, which the
 * kernel must also tear down on delete.
 *
 * usage: veth-floor <netns-path> <iterations> [up]
 * prints one line per iteration: "<create-ns> <delete-ns>" */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "netlink-request.h"

static int transact(int sock, struct nlmsghdr *h) {
    if (send(sock, h, h->nlmsg_len, 0) < 0) return -errno;
    char buffer[4096];
    ssize_t n = recv(sock, buffer, sizeof buffer, 0);
    if (n < 0) return -errno;
    struct nlmsghdr *reply = (struct nlmsghdr *)buffer;
    if (reply->nlmsg_type == NLMSG_ERROR) return ((struct nlmsgerr *)NLMSG_DATA(reply))->error;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) { fprintf(stderr, "usage: %s <netns-path> <iterations> [up]\n", argv[0]); return 2; }
    int ns = open(argv[1], O_RDONLY | O_CLOEXEC);
    int iterations = atoi(argv[2]);
    int peer_up = argc == 4 && strcmp(argv[3], "up") == 0;
    int sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (ns < 0 || sock < 0 || home < 0) { perror("setup"); return 1; }
    int pod_sock = -1;
    if (peer_up) {
        /* A netlink socket stays bound to the namespace it was created in. */
        if (setns(ns, CLONE_NEWNET) < 0) { perror("setns"); return 1; }
        pod_sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (setns(home, CLONE_NEWNET) < 0 || pod_sock < 0) { perror("pod socket"); return 1; }
    }
    for (int i = 0; i < iterations; i++) {
        char name[IFNAMSIZ];
        snprintf(name, sizeof name, "vfloor%d", i % 100000);
        union request create = {0};
        create.header.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
        create.header.nlmsg_type = RTM_NEWLINK;
        create.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
        struct ifinfomsg *info = NLMSG_DATA(&create.header);
        info->ifi_flags = IFF_UP;
        info->ifi_change = IFF_UP;
        put(&create.header, IFLA_IFNAME, name, strlen(name) + 1);
        struct rtattr *linkinfo = put(&create.header, IFLA_LINKINFO, NULL, 0);
        put(&create.header, IFLA_INFO_KIND, "veth", 4);
        struct rtattr *data = put(&create.header, IFLA_INFO_DATA, NULL, 0);
        struct rtattr *peer = put(&create.header, VETH_INFO_PEER, NULL, 0);
        create.header.nlmsg_len += sizeof(struct ifinfomsg);
        put(&create.header, IFLA_IFNAME, "eth0", 5);
        put(&create.header, IFLA_NET_NS_FD, &ns, sizeof ns);
        end(&create.header, peer);
        end(&create.header, data);
        end(&create.header, linkinfo);
        long long t0 = now();
        int rc = transact(sock, &create.header);
        if (rc == 0 && peer_up) {
            union request up = {0};
            up.header.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
            up.header.nlmsg_type = RTM_NEWLINK;
            up.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
            struct ifinfomsg *upinfo = NLMSG_DATA(&up.header);
            upinfo->ifi_flags = IFF_UP;
            upinfo->ifi_change = IFF_UP;
            put(&up.header, IFLA_IFNAME, "eth0", 5);
            rc = transact(pod_sock, &up.header);
        }
        long long t1 = now();
        if (rc) { fprintf(stderr, "create: %s\n", strerror(-rc)); return 1; }

        union request destroy = {0};
        destroy.header.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
        destroy.header.nlmsg_type = RTM_DELLINK;
        destroy.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
        put(&destroy.header, IFLA_IFNAME, name, strlen(name) + 1);
        long long t2 = now();
        rc = transact(sock, &destroy.header);
        long long t3 = now();
        if (rc) { fprintf(stderr, "delete: %s\n", strerror(-rc)); return 1; }
        printf("%lld %lld\n", t1 - t0, t3 - t2);
    }
    return 0;
}
