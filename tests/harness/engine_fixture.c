/*
 * engine_fixture.c - temporary databases and configurations for tests.
 */
#include <stdio.h>
#include <stdlib.h>

#include "common/mem.h"
#include "tests/harness/engine_fixture.h"
#include "tests/harness/t.h"

void tf_config(struct sw_config *cfg, const char *const *extra_env)
{
        static int seq;
        char *env[32];
        struct sw_err err = SW_ERR_INIT;
        int n = 0;

        env[n++] = sw_xasprintf("SLIPWAY_DATA=%s/data%d", t_tmpdir(), ++seq);
        for (int i = 0; extra_env && extra_env[i] && n < 30; i++)
                env[n++] = sw_xstrdup(extra_env[i]);
        env[n] = NULL;
        if (sw_config_load(cfg, env, &err) != 0) {
                fprintf(stderr, "config: %s\n", err.msg);
                exit(1);
        }
        for (int i = 0; i < n; i++)
                free(env[i]);
}

char *tf_db_path(const struct sw_config *cfg)
{
        return sw_xasprintf("%s/slipway.db", cfg->data);
}

struct eng_queue *tf_queue(const struct sw_config *cfg)
{
        struct eng_queue_options qo = ENG_QUEUE_OPTIONS_INIT;
        struct eng_queue *q = NULL;
        struct sw_err err = SW_ERR_INIT;
        char *path = tf_db_path(cfg);

        qo.path = path;
        if (eng_queue_open(&q, &qo, &err) != 0) {
                fprintf(stderr, "open queue: %s\n", err.msg);
                exit(1);
        }
        free(path);
        return q;
}
