/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _SYSFS_H_
#define _SYSFS_H_

#include <linux/types.h>
#include <linux/compiler.h>
#include <linux/stringify.h>

struct kobject;

struct attribute {
	const char		*name;
	umode_t			mode;
};

struct attribute_group {
	const char		*name;
	struct attribute	**attrs;
};

#define __ATTR(_name, _mode, _show, _store) {				\
	.attr = {.name = __stringify(_name), .mode = _mode },		\
	.show	= _show,						\
	.store	= _store,						\
}

#define __ATTR_RO(_name) {						\
	.attr	= { .name = __stringify(_name), .mode = 0444 },		\
	.show	= _name##_show,						\
}

int sysfs_create_group(struct kobject *kobj, const struct attribute_group *grp);
void sysfs_remove_group(struct kobject *kobj, const struct attribute_group *grp);

__printf(2, 3)
int sysfs_emit(char *buf, const char *fmt, ...);
__printf(3, 4)
int sysfs_emit_at(char *buf, int at, const char *fmt, ...);

#endif /* _SYSFS_H_ */
