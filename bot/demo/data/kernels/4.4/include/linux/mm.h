/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _LINUX_MM_H
#define _LINUX_MM_H

#include <linux/gfp.h>
#include <linux/kernel.h>
#include <asm/page.h>

#define offset_in_page(p)	((unsigned long)(p) & ~PAGE_MASK)

extern bool is_vmalloc_addr(const void *x);

extern void kvfree(const void *addr);

#endif /* _LINUX_MM_H */
