/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _ASM_PAGE_H
#define _ASM_PAGE_H

/* x86_64 values; pgprot_t and PAGE_KERNEL live in asm/pgtable_types.h really */
#define PAGE_SHIFT	12
#define PAGE_SIZE	(1UL << PAGE_SHIFT)
#define PAGE_MASK	(~(PAGE_SIZE - 1))

typedef struct { unsigned long pgprot; } pgprot_t;
#define __pgprot(x)	((pgprot_t) { (x) })
#define PAGE_KERNEL	__pgprot(0x163)

#endif /* _ASM_PAGE_H */
