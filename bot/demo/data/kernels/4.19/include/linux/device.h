/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _DEVICE_H_
#define _DEVICE_H_

#include <linux/kobject.h>
#include <linux/sysfs.h>

struct device {
	struct device		*parent;
	struct kobject		kobj;
	void			*driver_data;
};

struct device_attribute {
	struct attribute	attr;
	ssize_t (*show)(struct device *dev, struct device_attribute *attr,
			char *buf);
	ssize_t (*store)(struct device *dev, struct device_attribute *attr,
			 const char *buf, size_t count);
};

#define DEVICE_ATTR(_name, _mode, _show, _store) \
	struct device_attribute dev_attr_##_name = __ATTR(_name, _mode, _show, _store)

#define DEVICE_ATTR_RO(_name) \
	struct device_attribute dev_attr_##_name = __ATTR_RO(_name)

int device_create_file(struct device *device,
		       const struct device_attribute *entry);
void device_remove_file(struct device *dev,
			const struct device_attribute *attr);

static inline void *dev_get_drvdata(const struct device *dev)
{
	return dev->driver_data;
}

#endif /* _DEVICE_H_ */
