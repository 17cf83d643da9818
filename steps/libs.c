/*
 * libs.c - the steps' once-per-process library set-up (see steps.h).
 */
#include <pthread.h>

#include "common/libs.h"
#include "common/log.h"
#include "steps/clone.h"
#include "steps/steps.h"
#include "common/banned.h"

static pthread_once_t steps_once = PTHREAD_ONCE_INIT;

static void steps_do_init(void)
{
        struct sw_err err = SW_ERR_INIT;

        sw_libs_init();
        /* Without it clones still work; a silent server is then only noticed by the kernel. */
        if (step_clone_global_init(&err) != 0)
                sw_log(SW_LOG_WARN, "steps", "clone stream not installed", "{s:s}", "error",
                       err.msg);
}

void step_libs_init(void)
{
        pthread_once(&steps_once, steps_do_init);
}
