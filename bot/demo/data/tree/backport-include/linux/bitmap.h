#ifndef __BACKPORT_LINUX_BITMAP_H
#define __BACKPORT_LINUX_BITMAP_H
#include_next <linux/bitmap.h>
#include <linux/version.h>

#if LINUX_VERSION_IS_LESS(4,19,0)
/* implemented in compat/backport-4.19.c */
#define bitmap_alloc LINUX_BACKPORT(bitmap_alloc)
unsigned long *bitmap_alloc(unsigned int nbits, gfp_t flags);
#define bitmap_zalloc LINUX_BACKPORT(bitmap_zalloc)
unsigned long *bitmap_zalloc(unsigned int nbits, gfp_t flags);
#define bitmap_free LINUX_BACKPORT(bitmap_free)
void bitmap_free(const unsigned long *bitmap);
#endif /* < 4.19 */

#endif /* __BACKPORT_LINUX_BITMAP_H */
