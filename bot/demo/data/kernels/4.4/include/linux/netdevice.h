/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _LINUX_NETDEVICE_H
#define _LINUX_NETDEVICE_H

#include <linux/kernel.h>
#include <linux/device.h>

struct sk_buff;
struct net_device;

#define NAPI_POLL_WEIGHT 64

struct napi_struct {
	struct net_device	*dev;
	int			(*poll)(struct napi_struct *, int);
	int			weight;
	unsigned long		state;
};

typedef enum netdev_tx {
	NETDEV_TX_OK	 = 0x00,
	NETDEV_TX_BUSY	 = 0x10,
} netdev_tx_t;

struct net_device_ops {
	int			(*ndo_open)(struct net_device *dev);
	int			(*ndo_stop)(struct net_device *dev);
	netdev_tx_t		(*ndo_start_xmit)(struct sk_buff *skb,
						  struct net_device *dev);
	void			(*ndo_tx_timeout)(struct net_device *dev);
};

struct net_device {
	char			name[16];
	const struct net_device_ops *netdev_ops;
	int			watchdog_timeo;
	struct device		dev;
};

#define SET_NETDEV_DEV(net, pdev)	((net)->dev.parent = (pdev))

static inline void *netdev_priv(const struct net_device *dev)
{
	return (char *)dev + sizeof(struct net_device);
}

void netif_napi_add(struct net_device *dev, struct napi_struct *napi,
		    int (*poll)(struct napi_struct *, int), int weight);

void napi_enable(struct napi_struct *n);
void napi_disable(struct napi_struct *n);

void napi_complete_done(struct napi_struct *n, int work_done);

static inline void napi_complete(struct napi_struct *n)
{
	return napi_complete_done(n, 0);
}

void netif_start_queue(struct net_device *dev);
void netif_stop_queue(struct net_device *dev);

int register_netdev(struct net_device *dev);
void unregister_netdev(struct net_device *dev);
void free_netdev(struct net_device *dev);

__printf(3, 4)
void netdev_printk(const char *level, const struct net_device *dev,
		   const char *format, ...);
__printf(2, 3)
void netdev_warn(const struct net_device *dev, const char *format, ...);
__printf(2, 3)
void netdev_info(const struct net_device *dev, const char *format, ...);

#define netdev_dbg(__dev, format, args...)				\
({									\
	if (0)								\
		netdev_printk(KERN_DEBUG, __dev, format, ##args);	\
})

#endif /* _LINUX_NETDEVICE_H */
