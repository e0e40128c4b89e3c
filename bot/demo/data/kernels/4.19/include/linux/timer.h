/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _LINUX_TIMER_H
#define _LINUX_TIMER_H

#include <linux/kernel.h>
#include <linux/jiffies.h>

struct timer_list {
	unsigned long		expires;
	void			(*function)(struct timer_list *);
	u32			flags;
};

#define TIMER_DEFERRABLE	0x00080000

void init_timer_key(struct timer_list *timer,
		    void (*func)(struct timer_list *), unsigned int flags,
		    const char *name, void *key);

#define timer_setup(timer, callback, flags)			\
	init_timer_key((timer), (callback), (flags), #timer, NULL)

#define from_timer(var, callback_timer, timer_fieldname) \
	container_of(callback_timer, typeof(*var), timer_fieldname)

extern int mod_timer(struct timer_list *timer, unsigned long expires);
extern int del_timer(struct timer_list *timer);

extern int timer_delete_sync(struct timer_list *timer);

static inline int del_timer_sync(struct timer_list *timer)
{
	return timer_delete_sync(timer);
}

#endif /* _LINUX_TIMER_H */
