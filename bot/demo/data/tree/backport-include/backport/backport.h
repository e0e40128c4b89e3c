#ifndef __BACKPORT_H
#define __BACKPORT_H
/*
 * Included first in every file of the package (the Makefile passes
 * -include backport/backport.h), so LINUX_VERSION_IS_LESS() and friends
 * work everywhere, also in code changed by patches/.
 */
#include <linux/version.h>

/* rename a backported symbol so it never clashes with the kernel's own */
#define LINUX_BACKPORT(__sym) backport_ ##__sym

#endif /* __BACKPORT_H */
