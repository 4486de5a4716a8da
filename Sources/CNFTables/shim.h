/* The kernel's nf_tables netlink ABI (UAPI headers only: podwire builds its nfnetlink messages
 * itself, so nothing is linked and a static release needs no libnftnl or libmnl). */
#ifndef PODWIRE_CNFTABLES_SHIM_H
#define PODWIRE_CNFTABLES_SHIM_H

/* glibc's netinet/in.h first: linux/libc-compat.h then keeps the kernel's in.h / in6.h from
 * redefining in_addr and in6_addr, which other modules already see through glibc. */
#include <sys/socket.h>
#include <netinet/in.h>
#include <linux/netlink.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netfilter/nf_conntrack_common.h>

/* Function-like or aliased macros Swift does not import. */
static const unsigned short CNFTables_MSG_BATCH_BEGIN = NFNL_MSG_BATCH_BEGIN;
static const unsigned short CNFTables_MSG_BATCH_END = NFNL_MSG_BATCH_END;
static const unsigned short CNFTables_NLA_F_NESTED = NLA_F_NESTED;
static const unsigned short CNFTables_NLA_TYPE_MASK = NLA_TYPE_MASK;
static const int CNFTables_SOL_NETLINK = SOL_NETLINK;
/* NF_IP_PRI_NAT_SRC (linux/netfilter_ipv4.h), the priority nft calls "srcnat". */
static const int CNFTables_PRIORITY_SRCNAT = 100;

#endif
