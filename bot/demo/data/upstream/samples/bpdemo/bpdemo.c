// SPDX-License-Identifier: GPL-2.0
/*
 * bpdemo: a tiny module built with real kbuild against real kernel headers
 * (the "real kernels" rules profile, rules/realkernels.toml).
 */
#include <linux/module.h>
#include <linux/string.h>
#include <linux/timer.h>
#include <linux/version.h>

static struct timer_list bpdemo_timer;
static char bpdemo_name[16];

static void bpdemo_tick(struct timer_list *t)
{
	pr_info("bpdemo: tick for %s\n", bpdemo_name);
}

static int __init bpdemo_init(void)
{
	strscpy(bpdemo_name, "bpdemo", sizeof(bpdemo_name));
	timer_setup(&bpdemo_timer, bpdemo_tick, 0);
	return 0;
}

static void __exit bpdemo_exit(void)
{
	del_timer_sync(&bpdemo_timer);
}

module_init(bpdemo_init);
module_exit(bpdemo_exit);
MODULE_DESCRIPTION("backports sample module for real kbuild");
MODULE_LICENSE("GPL");
