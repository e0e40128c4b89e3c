// SPDX-License-Identifier: GPL-2.0
#include <linux/device.h>
#include <linux/sysfs.h>
#include "minidrv.h"

static ssize_t channel_show(struct device *dev, struct device_attribute *attr,
			    char *buf)
{
	struct minidrv_priv *priv = dev_get_drvdata(dev);

	return sysfs_emit(buf, "%u\n", priv->channel);
}
static DEVICE_ATTR_RO(channel);

static ssize_t tx_timeouts_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	struct minidrv_priv *priv = dev_get_drvdata(dev);

	return sysfs_emit(buf, "%u\n", priv->tx_timeouts);
}
static DEVICE_ATTR_RO(tx_timeouts);

static struct attribute *minidrv_attrs[] = {
	&dev_attr_channel.attr,
	&dev_attr_tx_timeouts.attr,
	NULL,
};

static const struct attribute_group minidrv_group = {
	.attrs = minidrv_attrs,
};

int minidrv_sysfs_init(struct minidrv_priv *priv)
{
	return sysfs_create_group(&priv->dev->kobj, &minidrv_group);
}

void minidrv_sysfs_exit(struct minidrv_priv *priv)
{
	sysfs_remove_group(&priv->dev->kobj, &minidrv_group);
}
