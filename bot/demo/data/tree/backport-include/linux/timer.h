#ifndef __BACKPORT_LINUX_TIMER_H
#define __BACKPORT_LINUX_TIMER_H
#include_next <linux/timer.h>
#include <linux/version.h>

#if LINUX_VERSION_IS_LESS(4,14,0)
#define TIMER_DATA_TYPE		unsigned long
#define TIMER_FUNC_TYPE		void (*)(TIMER_DATA_TYPE)

#define timer_setup LINUX_BACKPORT(timer_setup)
static inline void timer_setup(struct timer_list *timer,
			       void (*callback)(struct timer_list *),
			       unsigned int flags)
{
	setup_timer(timer, (TIMER_FUNC_TYPE)callback, (TIMER_DATA_TYPE)timer);
	timer->flags |= flags;
}

#define from_timer(var, callback_timer, timer_fieldname) \
	container_of(callback_timer, typeof(*var), timer_fieldname)
#endif /* < 4.14 */

/* This was backported to 4.19.312 and 5.10.215 (and 5.4.274, 5.15.154). */
#if LINUX_VERSION_IS_LESS(6,1,84) &&			\
	!LINUX_VERSION_IN_RANGE(4,19,255, 4,20,0) &&	\
	!LINUX_VERSION_IN_RANGE(5,4,255, 5,5,0) &&	\
	!LINUX_VERSION_IN_RANGE(5,10,215, 5,11,0) &&	\
	!LINUX_VERSION_IN_RANGE(5,15,154, 5,16,0)
static inline int timer_delete_sync(struct timer_list *timer)
{
	return del_timer_sync(timer);
}
#endif /* < 6.1.84 */

#endif /* __BACKPORT_LINUX_TIMER_H */
