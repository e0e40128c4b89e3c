/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _LINUX_TIMER_H
#define _LINUX_TIMER_H

#include <linux/kernel.h>
#include <linux/jiffies.h>

struct timer_list {
	unsigned long		expires;
	void			(*function)(unsigned long);
	unsigned long		data;
	u32			flags;
};

#define TIMER_DEFERRABLE	0x00080000

void init_timer_key(struct timer_list *timer, unsigned int flags,
		    const char *name, void *key);

#define init_timer(timer)	init_timer_key((timer), 0, #timer, NULL)

#define __setup_timer(_timer, _fn, _data, _flags)		\
	do {							\
		init_timer_key((_timer), (_flags), #_timer, NULL);	\
		(_timer)->function = (_fn);			\
		(_timer)->data = (_data);			\
	} while (0)

#define setup_timer(timer, fn, data)				\
	__setup_timer((timer), (fn), (data), 0)

extern int mod_timer(struct timer_list *timer, unsigned long expires);
extern int del_timer(struct timer_list *timer);
extern int del_timer_sync(struct timer_list *timer);

#endif /* _LINUX_TIMER_H */
