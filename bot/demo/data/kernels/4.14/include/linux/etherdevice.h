/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _LINUX_ETHERDEVICE_H
#define _LINUX_ETHERDEVICE_H

#include <linux/netdevice.h>

struct net_device *alloc_etherdev_mqs(int sizeof_priv, unsigned int txqs,
				      unsigned int rxqs);
#define alloc_etherdev(sizeof_priv) alloc_etherdev_mq(sizeof_priv, 1)
#define alloc_etherdev_mq(sizeof_priv, count) \
	alloc_etherdev_mqs(sizeof_priv, count, count)

#endif /* _LINUX_ETHERDEVICE_H */
