// SPDX-License-Identifier: GPL-2.0
/*
 * Backport functionality introduced in Linux 5.10.
 * Built only for kernels older than 5.10.
 */
#include <linux/export.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/sysfs.h>

/**
 * sysfs_emit - scnprintf equivalent, aware of PAGE_SIZE buffer.
 * @buf: start of PAGE_SIZE buffer.
 * @fmt: format
 * @...: optional arguments to @format
 *
 * Returns number of characters written to @buf.
 */
int sysfs_emit(char *buf, const char *fmt, ...)
{
	va_list args;
	int len;

	if (WARN(!buf || offset_in_page(buf),
		 "invalid sysfs_emit: buf:%p\n", buf))
		return 0;

	va_start(args, fmt);
	len = vscnprintf(buf, PAGE_SIZE, fmt, args);
	va_end(args);

	return len;
}
EXPORT_SYMBOL_GPL(sysfs_emit);
