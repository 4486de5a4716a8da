/* libnl-3 and libnl-route-3, as podwire's Netlink module uses them.
 * Every libnl call returns 0 or a negative NLE_* code (never errno). */
#ifndef PODWIRE_CNETLINK_SHIM_H
#define PODWIRE_CNETLINK_SHIM_H

#include <netlink/netlink.h>
#include <netlink/errno.h>
#include <netlink/socket.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/link/inet.h>
#include <linux/ip.h>
#include <linux/netconf.h>
#include <netlink/route/addr.h>
#include <netlink/route/route.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/nexthop.h>

#endif
