// SPDX-License-Identifier: GPL-2.0
/*
 * minidrv - a tiny example wireless NIC driver
 */
#include <linux/bitmap.h>
#include <linux/etherdevice.h>
#include <linux/module.h>
#include <linux/netdevice.h>
#include <linux/slab.h>
#include <linux/timer.h>
#include "minidrv.h"

static void minidrv_watchdog(struct timer_list *t)
{
	struct minidrv_priv *priv = from_timer(priv, t, watchdog);

	netdev_dbg(priv->ndev, "watchdog: %u tx timeouts\n", priv->tx_timeouts);
	mod_timer(&priv->watchdog,
		  jiffies + msecs_to_jiffies(priv->watchdog_ms));
}

static int minidrv_poll(struct napi_struct *napi, int budget)
{
	int done = 0;

	/* no hardware behind us: nothing is ever received */
	if (done < budget)
		napi_complete(napi);
	return done;
}

static int minidrv_open(struct net_device *ndev)
{
	struct minidrv_priv *priv = netdev_priv(ndev);

	napi_enable(&priv->napi);
	mod_timer(&priv->watchdog,
		  jiffies + msecs_to_jiffies(priv->watchdog_ms));
	netif_start_queue(ndev);
	return 0;
}

static int minidrv_stop(struct net_device *ndev)
{
	struct minidrv_priv *priv = netdev_priv(ndev);

	netif_stop_queue(ndev);
	timer_delete_sync(&priv->watchdog);
	napi_disable(&priv->napi);
	return 0;
}

static void minidrv_tx_timeout(struct net_device *ndev, unsigned int txqueue)
{
	struct minidrv_priv *priv = netdev_priv(ndev);

	netdev_warn(ndev, "transmit timed out on queue %u\n", txqueue);
	priv->tx_timeouts++;
}

static const struct net_device_ops minidrv_netdev_ops = {
	.ndo_open	= minidrv_open,
	.ndo_stop	= minidrv_stop,
	.ndo_tx_timeout	= minidrv_tx_timeout,
};

struct minidrv_priv *minidrv_create(struct device *dev,
				    const struct minidrv_platform_data *pdata)
{
	struct minidrv_priv *priv;
	struct net_device *ndev;

	ndev = alloc_etherdev(sizeof(*priv));
	if (!ndev)
		return NULL;
	SET_NETDEV_DEV(ndev, dev);
	ndev->netdev_ops = &minidrv_netdev_ops;
	ndev->watchdog_timeo = 5 * HZ;

	priv = netdev_priv(ndev);
	priv->ndev = ndev;
	priv->dev = dev;
	priv->num_channels = min_t(unsigned int, pdata->num_channels,
				   MINIDRV_MAX_CHANNELS);
	priv->watchdog_ms = pdata->watchdog_ms ?: 1000;

	priv->chan_map = bitmap_zalloc(priv->num_channels, GFP_KERNEL);
	if (!priv->chan_map)
		goto err_free_netdev;

	timer_setup(&priv->watchdog, minidrv_watchdog, 0);
	netif_napi_add(ndev, &priv->napi, minidrv_poll);

	if (register_netdev(ndev))
		goto err_free_map;
	return priv;

err_free_map:
	bitmap_free(priv->chan_map);
err_free_netdev:
	free_netdev(ndev);
	return NULL;
}

void minidrv_destroy(struct minidrv_priv *priv)
{
	struct net_device *ndev = priv->ndev;

	unregister_netdev(ndev);
	bitmap_free(priv->chan_map);
	free_netdev(ndev);
}

MODULE_DESCRIPTION("minidrv example wireless NIC driver");
MODULE_LICENSE("GPL");
