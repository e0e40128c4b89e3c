/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _KOBJECT_H_
#define _KOBJECT_H_

struct kobject {
	const char		*name;
	struct kobject		*parent;
};

#endif /* _KOBJECT_H_ */
