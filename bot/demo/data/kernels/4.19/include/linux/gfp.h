/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __LINUX_GFP_H
#define __LINUX_GFP_H

#include <linux/types.h>

#define __GFP_NOWARN	((gfp_t)0x200u)
#define __GFP_ZERO	((gfp_t)0x8000u)
#define GFP_ATOMIC	((gfp_t)0xa20u)
#define GFP_KERNEL	((gfp_t)0xcc0u)

#endif /* __LINUX_GFP_H */
