// SPDX-License-Identifier: GPL-2.0
#include <linux/device.h>
#include <linux/sysfs.h>
#include "minidrv.h"

static ssize_t rssi_histogram_show(struct device *dev,
				   struct device_attribute *attr, char *buf)
{
	struct minidrv_priv *priv = dev_get_drvdata(dev);
	int i, len = 0;

	for (i = 0; i < MINIDRV_RSSI_BUCKETS; i++)
		len += sysfs_emit_at(buf, len, "%s%u", i ? " " : "",
				     priv->rssi_hist[i]);
	len += sysfs_emit_at(buf, len, "\n");
	return len;
}
static DEVICE_ATTR_RO(rssi_histogram);

int minidrv_stats_init(struct minidrv_priv *priv)
{
	return device_create_file(priv->dev, &dev_attr_rssi_histogram);
}

void minidrv_stats_exit(struct minidrv_priv *priv)
{
	device_remove_file(priv->dev, &dev_attr_rssi_histogram);
}
