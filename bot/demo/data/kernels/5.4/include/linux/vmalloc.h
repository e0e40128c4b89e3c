/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _LINUX_VMALLOC_H
#define _LINUX_VMALLOC_H

#include <linux/gfp.h>
#include <asm/page.h>

void *vmalloc(unsigned long size);
void *vzalloc(unsigned long size);
void *__vmalloc(unsigned long size, gfp_t gfp_mask, pgprot_t prot);
void vfree(const void *addr);

#endif /* _LINUX_VMALLOC_H */
