#ifndef __BACKPORT_LINUX_NETDEVICE_H
#define __BACKPORT_LINUX_NETDEVICE_H
#include_next <linux/netdevice.h>
#include <linux/version.h>

#if LINUX_VERSION_IS_LESS(3,11,0)
#define NAPI_POLL_WEIGHT 64
#endif /* < 3.11 */

#if LINUX_VERSION_IS_LESS(5,19,0)
static inline void netif_napi_add_weight(struct net_device *dev,
					 struct napi_struct *napi,
					 int (*poll)(struct napi_struct *, int),
					 int weight)
{
	netif_napi_add(dev, napi, poll, weight);
}
#endif /* < 5.19 */

#if LINUX_VERSION_IS_LESS(6,1,0)
/* 6.1 dropped the weight argument */
#define netif_napi_add(dev, napi, poll) \
	netif_napi_add_weight(dev, napi, poll, NAPI_POLL_WEIGHT)
#endif /* < 6.1 */

#endif /* __BACKPORT_LINUX_NETDEVICE_H */
