/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __MINIDRV_H
#define __MINIDRV_H

#include <linux/device.h>
#include <linux/netdevice.h>
#include <linux/timer.h>
#include <linux/platform_data/minidrv.h>

#define MINIDRV_MAX_CHANNELS	64
#define MINIDRV_RSSI_BUCKETS	8
#define MINIDRV_RING_SIZE	256

struct minidrv_desc {
	u32 addr;
	u32 len;
};

struct minidrv_priv {
	struct net_device *ndev;
	struct device *dev;
	struct napi_struct napi;
	struct timer_list watchdog;
	unsigned int watchdog_ms;

	unsigned long *chan_map;
	unsigned int num_channels;
	unsigned int channel;

	unsigned int tx_timeouts;
	u32 rssi_hist[MINIDRV_RSSI_BUCKETS];
	struct minidrv_desc *ring;
};

struct minidrv_priv *minidrv_create(struct device *dev,
				    const struct minidrv_platform_data *pdata);
void minidrv_destroy(struct minidrv_priv *priv);

int minidrv_sysfs_init(struct minidrv_priv *priv);
void minidrv_sysfs_exit(struct minidrv_priv *priv);

int minidrv_stats_init(struct minidrv_priv *priv);
void minidrv_stats_exit(struct minidrv_priv *priv);

int minidrv_ring_alloc(struct minidrv_priv *priv);
void minidrv_ring_free(struct minidrv_priv *priv);

#endif /* __MINIDRV_H */
