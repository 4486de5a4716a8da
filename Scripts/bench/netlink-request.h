/* What the floor probes (veth-floor.c, wire-floor.c) share: a netlink request buffer, appending
 * attributes and closing nests, and a monotonic clock in nanoseconds. */
#ifndef PODWIRE_BENCH_NETLINK_REQUEST_H
#define PODWIRE_BENCH_NETLINK_REQUEST_H
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <time.h>

/* A netlink message buffer: header, ifinfomsg, then attributes appended by put(). */
union request { struct nlmsghdr header; char bytes[1024]; };

static struct rtattr *put(struct nlmsghdr *h, int type, const void *data, int length) {
    struct rtattr *attribute = (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));
    attribute->rta_type = type;
    attribute->rta_len = RTA_LENGTH(length);
    if (length) memcpy(RTA_DATA(attribute), data, length);
    h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(attribute->rta_len);
    return attribute;
}

static void end(struct nlmsghdr *h, struct rtattr *nest) { nest->rta_len = (char *)h + h->nlmsg_len - (char *)nest; }

static long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

#endif
