/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __LINUX_PLATFORM_DATA_MINIDRV_H
#define __LINUX_PLATFORM_DATA_MINIDRV_H

/**
 * struct minidrv_platform_data - board description for minidrv
 * @num_channels: number of channels the radio can tune to
 * @watchdog_ms: firmware watchdog period, 0 for the default
 */
struct minidrv_platform_data {
	unsigned int num_channels;
	unsigned int watchdog_ms;
};

#endif /* __LINUX_PLATFORM_DATA_MINIDRV_H */
