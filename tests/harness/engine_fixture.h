/*
 * engine_fixture.h - a temporary database and configuration for engine tests.
 */
#ifndef SW_TEST_ENGINE_FIXTURE_H
#define SW_TEST_ENGINE_FIXTURE_H

#include "common/config.h"
#include "engine/queue.h"

/* A config whose data dir is a fresh directory under t_tmpdir(); extra "NAME=value" pairs may be NULL. */
void tf_config(struct sw_config *cfg, const char *const *extra_env);
/* A queue on a fresh database under cfg->data (aborts the test binary on failure). */
struct eng_queue *tf_queue(const struct sw_config *cfg);
/* Path of the database file under cfg->data; the caller frees. */
char *tf_db_path(const struct sw_config *cfg);

#endif
