/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _LINUX_MODULE_H
#define _LINUX_MODULE_H

#include <linux/compiler.h>
#include <linux/stringify.h>
#include <linux/init.h>
#include <linux/export.h>

#define MODULE_INFO(tag, info)						\
	static const char __UNIQUE_ID_##tag[] __used			\
	__attribute__((__section__(".modinfo"), __aligned__(1)))	\
	= __stringify(tag) "=" info

#define MODULE_LICENSE(_license)	MODULE_INFO(license, _license)
#define MODULE_AUTHOR(_author)		MODULE_INFO(author, _author)
#define MODULE_DESCRIPTION(_desc)	MODULE_INFO(description, _desc)

#define module_init(initfn)						\
	static inline int (*__inittest(void))(void) { return initfn; }	\
	int init_module(void) __attribute__((alias(#initfn)));

#define module_exit(exitfn)						\
	static inline void (*__exittest(void))(void) { return exitfn; }	\
	void cleanup_module(void) __attribute__((alias(#exitfn)));

#define subsys_initcall(fn)	module_init(fn)

#endif /* _LINUX_MODULE_H */
