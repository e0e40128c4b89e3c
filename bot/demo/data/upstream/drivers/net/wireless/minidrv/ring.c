// SPDX-License-Identifier: GPL-2.0
#include <linux/errno.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include "minidrv.h"

int minidrv_ring_alloc(struct minidrv_priv *priv)
{
	priv->ring = kvcalloc(MINIDRV_RING_SIZE, sizeof(*priv->ring),
			      GFP_KERNEL);
	if (!priv->ring)
		return -ENOMEM;
	return 0;
}

void minidrv_ring_free(struct minidrv_priv *priv)
{
	kvfree(priv->ring);
	priv->ring = NULL;
}
