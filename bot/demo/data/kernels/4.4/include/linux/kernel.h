/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _LINUX_KERNEL_H
#define _LINUX_KERNEL_H

#include <stdarg.h>
#include <linux/types.h>
#include <linux/compiler.h>

#define KERN_SOH	"\001"
#define KERN_WARNING	KERN_SOH "4"
#define KERN_INFO	KERN_SOH "6"
#define KERN_DEBUG	KERN_SOH "7"

#define SIZE_MAX	(~(size_t)0)
#define ARRAY_SIZE(arr)	(sizeof(arr) / sizeof((arr)[0]))
#define offsetof(TYPE, MEMBER)	__builtin_offsetof(TYPE, MEMBER)

#define container_of(ptr, type, member) ({			\
	void *__mptr = (void *)(ptr);				\
	((type *)(__mptr - offsetof(type, member))); })

#define min_t(type, x, y) ({			\
	type __min1 = (x);			\
	type __min2 = (y);			\
	__min1 < __min2 ? __min1 : __min2; })

asmlinkage __printf(1, 2) int printk(const char *fmt, ...);
__printf(3, 4) int scnprintf(char *buf, size_t size, const char *fmt, ...);
__printf(3, 0) int vscnprintf(char *buf, size_t size, const char *fmt, va_list args);

#define WARN(condition, format...) ({			\
	int __ret_warn_on = !!(condition);		\
	if (unlikely(__ret_warn_on))			\
		printk(format);				\
	unlikely(__ret_warn_on);			\
})

#endif /* _LINUX_KERNEL_H */
