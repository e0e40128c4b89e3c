/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __LINUX_BITMAP_H
#define __LINUX_BITMAP_H

#include <linux/types.h>
#include <linux/bitops.h>

extern int __bitmap_weight(const unsigned long *bitmap, unsigned int nbits);

static inline int bitmap_weight(const unsigned long *src, unsigned int nbits)
{
	return __bitmap_weight(src, nbits);
}

/* Allocation and deallocation of bitmap, since 4.19 */
extern unsigned long *bitmap_alloc(unsigned int nbits, gfp_t flags);
extern unsigned long *bitmap_zalloc(unsigned int nbits, gfp_t flags);
extern void bitmap_free(const unsigned long *bitmap);

#endif /* __LINUX_BITMAP_H */
