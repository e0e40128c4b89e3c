/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _LINUX_JIFFIES_H
#define _LINUX_JIFFIES_H

#include <linux/types.h>

#define HZ	250

extern unsigned long volatile jiffies;
extern unsigned long msecs_to_jiffies(const unsigned int m);

#endif /* _LINUX_JIFFIES_H */
