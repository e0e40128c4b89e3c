#ifndef __BACKPORT_LINUX_DEVICE_H
#define __BACKPORT_LINUX_DEVICE_H
#include_next <linux/device.h>
#include <linux/version.h>

#if LINUX_VERSION_IS_LESS(3,11,0)
#define DEVICE_ATTR_RO(_name) \
	struct device_attribute dev_attr_##_name = __ATTR_RO(_name)
#endif /* < 3.11 */

#endif /* __BACKPORT_LINUX_DEVICE_H */
