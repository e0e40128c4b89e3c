#ifndef __BACKPORT_LINUX_SYSFS_H
#define __BACKPORT_LINUX_SYSFS_H
#include_next <linux/sysfs.h>
#include <linux/version.h>

#if LINUX_VERSION_IS_LESS(5,10,0)
/* implemented in compat/backport-5.10.c */
#define sysfs_emit LINUX_BACKPORT(sysfs_emit)
__printf(2, 3)
int sysfs_emit(char *buf, const char *fmt, ...);
#endif /* < 5.10 */

#endif /* __BACKPORT_LINUX_SYSFS_H */
