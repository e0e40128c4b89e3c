/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __LINUX_COMPILER_H
#define __LINUX_COMPILER_H

#define likely(x)	__builtin_expect(!!(x), 1)
#define unlikely(x)	__builtin_expect(!!(x), 0)
#define __used		__attribute__((__used__))
#define __printf(a, b)	__attribute__((format(printf, a, b)))
#define asmlinkage

#endif /* __LINUX_COMPILER_H */
