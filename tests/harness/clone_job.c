/*
 * clone_job.c - one clone job through the real pipeline runner (see clone_job.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/digest.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/mem.h"
#include "engine/pipeline.h"
#include "engine/queue.h"
#include "steps/steps.h"
#include "tests/harness/clone_job.h"
#include "tests/harness/t.h"
#include "common/banned.h"

int t_clone_config(struct sw_config *cfg, char *const *env)
{
        struct sw_err err = SW_ERR_INIT;

        if (sw_config_load(cfg, env, &err) != 0) {
                fprintf(stderr, "  configuration: %s\n", err.msg);
                return -1;
        }
        return 0;
}

static void collect_line(void *arg, int64_t seq, int64_t ts, const char *step, const char *line)
{
        char **log = arg;
        char *next = sw_xasprintf("%s%s\n", *log ? *log : "", line);

        (void)seq;
        (void)ts;
        (void)step;
        free(*log);
        *log = next;
}

int t_clone_job_run(struct t_clone_job *out, const struct sw_config *cfg, const char *payload,
                    atomic_int *stop)
{
        static const struct eng_step_def *const steps[] = {&step_clone_def};
        const struct eng_pipeline_def def = {"clone-test", steps, 1};
        struct eng_queue_options qo = ENG_QUEUE_OPTIONS_INIT;
        struct eng_job_spec spec = {0};
        struct eng_run_env env = {0};
        struct eng_queue *q = NULL;
        struct eng_job *job = NULL;
        struct eng_step_record *recs = NULL;
        struct sw_err err = SW_ERR_INIT;
        char *db = sw_xasprintf("%s/slipway.db", cfg->data);
        char *scratch = sw_xasprintf("%s/scratch", cfg->data);
        size_t nrecs = 0;
        int64_t last = 0;
        int rc = -1;

        memset(out, 0, sizeof(*out));
        qo.path = db;
        if (eng_queue_open(&q, &qo, &err) != 0 || sw_mkdir_p(scratch, 0700, &err) != 0)
                goto out;
        spec.kind = "clone-test";
        spec.payload = payload;
        spec.max_attempts = 1;
        if (eng_queue_enqueue(&out->id, NULL, q, &spec, &err) != 0 ||
            eng_queue_claim(&job, q, "test", 3600000, &err) != 0)
                goto out;
        if (job->id != out->id) {
                sw_err_set(&err, SW_EINTERNAL, "claimed job %lld, not %lld", (long long)job->id,
                           (long long)out->id);
                goto out;
        }
        env.cfg = cfg;
        env.scratch_root = scratch;
        env.log_max_bytes = 1 << 20;
        env.stop = stop;
        out->rc = eng_pipeline_run(q, job, &def, &env, &out->err);
        if (out->rc == 0)
                eng_queue_complete(q, job->id, "test", &err);
        else
                eng_queue_fail(NULL, q, job->id, "test", false, out->err.msg, 1, &err);
        sw_err_clear(&err);
        if (eng_steps_list(&recs, &nrecs, q, job->id, &err) != 0)
                goto out;
        if (nrecs == 1) {
                out->state = sw_xstrdup(recs[0].state);
                out->error = recs[0].error ? sw_xstrdup(recs[0].error) : NULL;
                if (recs[0].output)
                        sw_json_parse(&out->output, recs[0].output, strlen(recs[0].output), 0,
                                      &err);
        }
        if (eng_logs_read(&last, q, job->id, 0, 100000, collect_line, &out->log, &err) != 0)
                goto out;
        if (!out->log)
                out->log = sw_xstrdup("");
        rc = 0;
out:
        if (rc)
                fprintf(stderr, "  job setup: %s\n", err.msg);
        eng_steps_free(recs, nrecs);
        eng_job_free(job);
        eng_queue_close(q);
        free(db);
        free(scratch);
        return rc;
}

void t_clone_job_release(struct t_clone_job *j)
{
        free(j->state);
        free(j->error);
        free(j->log);
        json_decref(j->output);
        memset(j, 0, sizeof(*j));
}

int t_clone_run(struct t_clone_job *j, const char *data, const char *const *extra,
                const char *payload, atomic_int *stop)
{
        char *env[16];
        struct sw_config cfg;
        size_t n = 0;
        int rc;

        env[n++] = sw_xasprintf("SLIPWAY_DATA=%s", data);
        for (size_t i = 0; extra && extra[i] && n < 15; i++)
                env[n++] = sw_xstrdup(extra[i]);
        env[n] = NULL;
        rc = t_clone_config(&cfg, env);
        if (rc == 0) {
                rc = t_clone_job_run(j, &cfg, payload, stop);
                sw_config_release(&cfg);
        }
        for (size_t i = 0; i < n; i++)
                free(env[i]);
        return rc;
}

char *t_clone_payload(const char *url, const char *branch, const char *commit)
{
        json_t *p = json_pack("{s:s}", "repo", url);
        char *text;

        if (branch)
                json_object_set_new(p, "branch", json_string(branch));
        if (commit)
                json_object_set_new(p, "commit", json_string(commit));
        text = sw_json_dump(p);
        json_decref(p);
        return text;
}

char *t_clone_file_text(const char *dir, const char *name)
{
        struct sw_err err = SW_ERR_INIT;
        char *path = sw_xasprintf("%s/%s", dir, name), *text = NULL;
        size_t len;

        if (sw_read_file(&text, &len, path, 1 << 20, &err) != 0)
                text = NULL;
        free(path);
        return text;
}

char *t_clone_mirror_path(const char *data, const char *url)
{
        char d[SW_DIGEST_STR_LEN];

        sw_sha256_digest(d, url, strlen(url));
        return sw_xasprintf("%s/git/%s", data, d + 7);
}

int t_clone_run_limited(struct t_clone_job *j, const char *data, const char *max_bytes,
                        const char *payload)
{
        char *limit = max_bytes ? sw_xasprintf("SLIPWAY_CLONE_MAX_BYTES=%s", max_bytes) : NULL;
        const char *extra[] = {limit, NULL};
        int rc = t_clone_run(j, data, extra, payload, NULL);

        free(limit);
        return rc;
}

char *t_clone_data_dir(void)
{
        static int seq; /* the test process's own counter */

        return sw_xasprintf("%s/data%d", t_tmpdir(), ++seq);
}

bool t_clone_exists(const char *path)
{
        struct stat st;

        return stat(path, &st) == 0;
}
