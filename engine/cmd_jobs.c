/*
 * cmd_jobs.c - the job commands: submit, jobs, job, logs, cancel, retry,
 * worker, config. They work on the local database under SLIPWAY_DATA.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/json.h"
#include "steps/steps.h"
#include "common/log.h"
#include "common/mem.h"
#include "engine/cli.h"
#include "engine/engine_int.h"
#include "engine/pipeline.h"
#include "engine/pool.h"
#include "engine/queue.h"
#include "engine/request.h"
#include "engine/worker.h"
#include "common/banned.h"

static int parse_job_id(int64_t *id, const char *cmd, int argc, char **argv)
{
        if (optind != argc - 1)
                return sw_cli_usage_error(cmd, "expected one job id");
        if (sw_cli_parse_i64(id, argv[optind], 1, INT64_MAX) != 0)
                return sw_cli_usage_error(cmd, "'%s' is not a job id", argv[optind]);
        return 0;
}

/* ---- follow a job's log ---- */

struct log_print {
        bool timestamps;
};

static void print_log_line(void *arg, int64_t seq, int64_t ts, const char *step, const char *line)
{
        const struct log_print *lp = arg;
        char when[40];

        (void)seq;
        (void)step;
        if (lp->timestamps) {
                sw_time_iso(when, sizeof(when), ts);
                printf("%s %s\n", when, line);
        } else {
                printf("%s\n", line);
        }
}

/* Print the log from after_seq on; with follow, until the job has ended. Returns the final state. */
static int follow_log(enum eng_job_state *final, struct eng_queue *q, int64_t id, bool follow,
                      bool timestamps, struct sw_err *err)
{
        struct log_print lp = {timestamps};
        int64_t seq = 0;
        int rc;

        for (;;) {
                struct eng_job *job = NULL;
                enum eng_job_state state;

                /* Read the state first: lines written before it ended are then all visible. */
                rc = eng_queue_get(&job, q, id, err);
                if (rc)
                        return rc;
                state = job->state;
                eng_job_free(job);
                do {
                        int64_t before = seq;
                        rc = eng_logs_read(&seq, q, id, seq, 1000, print_log_line, &lp, err);
                        if (rc)
                                return rc;
                        if (seq == before)
                                break;
                } while (1);
                fflush(stdout);
                if (!follow || state >= ENG_JOB_SUCCEEDED) {
                        *final = state;
                        return 0;
                }
                sw_sleep_ms(200);
        }
}

/* After --wait: the app's URL, or the error of the job that failed. */
static void print_outcome(struct eng_queue *q, int64_t id, enum eng_job_state final)
{
        struct eng_step_record *steps = NULL;
        struct eng_job *job = NULL;
        struct sw_err err = SW_ERR_INIT;
        size_t n = 0;

        if (final != ENG_JOB_SUCCEEDED) {
                if (eng_queue_get(&job, q, id, &err) == 0 && job->error)
                        printf("error: %s\n", job->error);
                eng_job_free(job);
                return;
        }
        if (eng_steps_list(&steps, &n, q, id, &err) != 0)
                return;
        for (size_t i = 0; i < n; i++) {
                json_t *out = NULL;
                struct sw_err perr = SW_ERR_INIT;
                if (strcmp(steps[i].name, "route") != 0 || !steps[i].output ||
                    sw_json_parse(&out, steps[i].output, strlen(steps[i].output), 0, &perr) != 0)
                        continue;
                printf("%s is at %s\n", sw_json_str(out, "host", "the app"),
                       sw_json_str(out, "url", "?"));
                json_decref(out);
        }
        eng_steps_free(steps, n);
}

/* ---- submit ---- */

static void submit_usage(FILE *f)
{
        fprintf(f,
                "usage: slipway submit --repo URL --name NAME [options]\n\n"
                "Queue a deploy job: clone the repository at the branch or commit, build its\n"
                "Dockerfile, push the image, and run it as NAME at a URL.\n\n%s"
                "  --idempotency-key KEY  submitting again with the same key returns the same job\n"
                "  --priority N           higher runs first (default: 0)\n"
                "  --wait                 follow the job's log until it ends; exit 1 unless it succeeded\n"
                "  --json                 print the queued job as JSON\n",
                eng_request_flags_help());
}

int eng_cmd_submit(int argc, char **argv, const struct sw_config *cfg)
{
        static const struct option own[] = {
                {"idempotency-key", required_argument, NULL, 'i'},
                {"priority", required_argument, NULL, 'P'},
                {"wait", no_argument, NULL, 'w'},
                {"json", no_argument, NULL, 'j'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct option *opts = eng_request_options(own);
        json_t *in = json_object(), *req = NULL;
        struct eng_queue *q = NULL;
        struct sw_err err = SW_ERR_INIT;
        struct eng_job_spec spec = {0};
        const char *idem = NULL;
        char *payload = NULL, *ckey = NULL;
        bool wait = false, as_json = false, existed = false;
        int64_t id = 0, priority = 0;
        int c, rc = 1;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                int r = eng_request_flag(in, c, optarg, &err);
                if (r < 0) {
                        rc = sw_cli_usage_error("submit", "%s", err.msg);
                        goto out;
                }
                if (r == 1)
                        continue;
                switch (c) {
                case 'h':
                        submit_usage(stdout);
                        rc = 0;
                        goto out;
                case 'i':
                        idem = optarg;
                        break;
                case 'P':
                        if (sw_cli_parse_i64(&priority, optarg, -1000, 1000) != 0) {
                                rc = sw_cli_usage_error("submit",
                                                        "--priority: '%s' is not a whole number "
                                                        "from -1000 to 1000",
                                                        optarg);
                                goto out;
                        }
                        break;
                case 'w':
                        wait = true;
                        break;
                case 'j':
                        as_json = true;
                        break;
                default:
                        rc = sw_cli_usage_error("submit", "unknown option");
                        goto out;
                }
        }
        if (optind != argc) {
                rc = sw_cli_usage_error("submit", "unexpected argument '%s'", argv[optind]);
                goto out;
        }
        if (eng_request_normalize(&req, in, ENG_REQUEST_FLAGS, &err) != 0) {
                rc = sw_cli_usage_error("submit", "%s", err.msg);
                goto out;
        }
        payload = sw_json_dump(req);
        ckey = eng_request_concurrency_key(req);
        spec.kind = "deploy";
        spec.payload = payload;
        spec.priority = (int)priority;
        spec.max_attempts = (int)cfg->max_attempts;
        spec.idempotency_key = idem;
        spec.concurrency_key = ckey;
        spec.supersede = true;
        if (eng__open_queue(&q, cfg, true, &err) != 0 ||
            eng_queue_enqueue(&id, &existed, q, &spec, &err) != 0) {
                rc = sw_cli_fail("submit", "%s", err.msg);
                goto out;
        }
        if (as_json) {
                json_t *o = json_pack("{s:I,s:s,s:b,s:O}", "id", (json_int_t)id, "kind", "deploy",
                                      "existing", existed, "request", req);
                char *s = sw_json_dump(o);
                printf("%s\n", s);
                free(s);
                json_decref(o);
        } else {
                printf("job %lld %s: deploy %s/%s from %s %s\n", (long long)id,
                       existed ? "already exists (same idempotency key)" : "queued",
                       sw_json_str(req, "namespace", ""), sw_json_str(req, "name", ""),
                       sw_json_str(req, "repo", ""),
                       sw_json_str(req, "commit", sw_json_str(req, "branch", "")));
        }
        fflush(stdout);
        rc = 0;
        if (wait) {
                enum eng_job_state final;
                if (follow_log(&final, q, id, true, false, &err) != 0) {
                        rc = sw_cli_fail("submit", "%s", err.msg);
                        goto out;
                }
                printf("job %lld %s\n", (long long)id, eng_job_state_name(final));
                print_outcome(q, id, final);
                rc = final == ENG_JOB_SUCCEEDED ? 0 : 1;
        }
out:
        eng_queue_close(q);
        json_decref(in);
        json_decref(req);
        free(payload);
        free(ckey);
        free(opts);
        return rc;
}

/* ---- jobs ---- */

static void age_fmt(char *out, size_t size, int64_t since_ms)
{
        sw_duration_fmt(out, size, sw_now_ms() - since_ms);
}

static json_t *job_json(const struct eng_job *j)
{
        json_t *payload = NULL;
        struct sw_err err = SW_ERR_INIT;

        if (sw_json_parse(&payload, j->payload, strlen(j->payload), 0, &err) != 0)
                payload = json_string(j->payload);
        return json_pack("{s:I,s:s,s:s,s:i,s:i,s:i,s:o,s:s?,s:s?,s:b,s:I,s:I,s:I,s:I}", "id",
                         (json_int_t)j->id, "kind", j->kind, "state", eng_job_state_name(j->state),
                         "priority", j->priority, "attempt", j->attempt, "max_attempts",
                         j->max_attempts, "payload", payload, "error", j->error, "lease_owner",
                         j->lease_owner, "cancel_requested", j->cancel_requested, "created_at",
                         (json_int_t)j->created_at, "started_at", (json_int_t)j->started_at,
                         "finished_at", (json_int_t)j->finished_at, "run_after",
                         (json_int_t)j->run_after);
}

int eng_cmd_jobs(int argc, char **argv, const struct sw_config *cfg)
{
        static const struct option opts[] = {
                {"state", required_argument, NULL, 's'},
                {"limit", required_argument, NULL, 'l'},
                {"json", no_argument, NULL, 'j'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct eng_queue *q = NULL;
        struct eng_job **jobs = NULL;
        struct sw_err err = SW_ERR_INIT;
        enum eng_job_state state;
        bool have_state = false, as_json = false;
        int64_t limit = 20;
        size_t n = 0;
        int c, rc = 1;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 'h':
                        printf("usage: slipway jobs [--state STATE] [--limit N] [--json]\n\n"
                               "List jobs, newest first.\n\n"
                               "  --state STATE  only queued, running, succeeded, failed or cancelled jobs\n"
                               "  --limit N      at most N jobs (default: 20)\n"
                               "  --json         one JSON object per line\n");
                        return 0;
                case 's':
                        if (eng_job_state_parse(&state, optarg) != 0)
                                return sw_cli_usage_error(
                                        "jobs", "--state: '%s' is not a job state", optarg);
                        have_state = true;
                        break;
                case 'l':
                        if (sw_cli_parse_i64(&limit, optarg, 1, 100000) != 0)
                                return sw_cli_usage_error("jobs", "--limit: '%s' is not a number",
                                                          optarg);
                        break;
                case 'j':
                        as_json = true;
                        break;
                default:
                        return sw_cli_usage_error("jobs", "unknown option");
                }
        }
        if (eng__open_queue(&q, cfg, false, &err) != 0 ||
            eng_queue_list(&jobs, &n, q, have_state ? &state : NULL, (size_t)limit, &err) != 0) {
                rc = sw_cli_fail("jobs", "%s", err.msg);
                goto out;
        }
        if (!as_json)
                printf("%-6s %-8s %-10s %-7s %-28s %-8s %s\n", "ID", "KIND", "STATE", "ATTEMPT",
                       "APP", "AGE", "ERROR");
        for (size_t i = 0; i < n; i++) {
                const struct eng_job *j = jobs[i];
                json_t *p = NULL;
                char app[96], age[16], attempt[16];
                struct sw_err perr = SW_ERR_INIT;

                if (as_json) {
                        json_t *o = job_json(j);
                        char *s = sw_json_dump(o);
                        printf("%s\n", s);
                        free(s);
                        json_decref(o);
                        continue;
                }
                sw_json_parse(&p, j->payload, strlen(j->payload), 0, &perr);
                snprintf(app, sizeof(app), "%s/%s", sw_json_str(p, "namespace", "-"),
                         sw_json_str(p, "name", "-"));
                json_decref(p);
                age_fmt(age, sizeof(age), j->created_at);
                snprintf(attempt, sizeof(attempt), "%d/%d", j->attempt, j->max_attempts);
                printf("%-6lld %-8s %-10s %-7s %-28s %-8s %s\n", (long long)j->id, j->kind,
                       eng_job_state_name(j->state), attempt, app, age, j->error ? j->error : "");
        }
        rc = 0;
out:
        eng_job_list_free(jobs, n);
        eng_queue_close(q);
        return rc;
}

/* ---- job ---- */

int eng_cmd_job(int argc, char **argv, const struct sw_config *cfg)
{
        static const struct option opts[] = {
                {"json", no_argument, NULL, 'j'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct eng_queue *q = NULL;
        struct eng_job *job = NULL;
        struct eng_step_record *steps = NULL;
        struct sw_err err = SW_ERR_INIT;
        bool as_json = false;
        size_t n = 0;
        int64_t id;
        int c, rc;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                if (c == 'h') {
                        printf("usage: slipway job ID [--json]\n\n"
                               "Show a job: its request, state, attempts and each step with its\n"
                               "state, duration, output and error.\n");
                        return 0;
                }
                if (c != 'j')
                        return sw_cli_usage_error("job", "unknown option");
                as_json = true;
        }
        if ((rc = parse_job_id(&id, "job", argc, argv)) != 0)
                return rc;
        rc = 1;
        if (eng__open_queue(&q, cfg, false, &err) != 0 || eng_queue_get(&job, q, id, &err) != 0 ||
            eng_steps_list(&steps, &n, q, id, &err) != 0) {
                rc = sw_cli_fail("job", "%s", err.msg);
                goto out;
        }
        if (as_json) {
                json_t *o = job_json(job), *arr = json_array();
                for (size_t i = 0; i < n; i++) {
                        json_t *output = NULL;
                        struct sw_err perr = SW_ERR_INIT;
                        if (steps[i].output)
                                sw_json_parse(&output, steps[i].output, strlen(steps[i].output), 0,
                                              &perr);
                        json_array_append_new(
                                arr,
                                json_pack("{s:s,s:s,s:i,s:I,s:I,s:o?,s:s?}", "name", steps[i].name,
                                          "state", steps[i].state, "attempt", steps[i].attempt,
                                          "started_at", (json_int_t)steps[i].started_at,
                                          "finished_at", (json_int_t)steps[i].finished_at, "output",
                                          output, "error", steps[i].error));
                }
                json_object_set_new(o, "steps", arr);
                char *s = sw_json_dump(o);
                printf("%s\n", s);
                free(s);
                json_decref(o);
                rc = 0;
                goto out;
        }
        {
                char created[40], dur[16];
                sw_time_iso(created, sizeof(created), job->created_at);
                printf("job %lld  %s  %s  attempt %d of %d\n", (long long)job->id, job->kind,
                       eng_job_state_name(job->state), job->attempt, job->max_attempts);
                printf("request:  %s\n", job->payload);
                printf("created:  %s\n", created);
                if (job->finished_at && job->started_at) {
                        sw_duration_fmt(dur, sizeof(dur), job->finished_at - job->started_at);
                        printf("took:     %s\n", dur);
                }
                if (job->lease_owner && job->state == ENG_JOB_RUNNING)
                        printf("worker:   %s\n", job->lease_owner);
                if (job->state == ENG_JOB_QUEUED && job->run_after > sw_now_ms()) {
                        sw_duration_fmt(dur, sizeof(dur), job->run_after - sw_now_ms());
                        printf("retry in: %s\n", dur);
                }
                if (job->error)
                        printf("error:    %s\n", job->error);
                printf("\n%-4s %-12s %-10s %-8s %-9s %s\n", "#", "STEP", "STATE", "ATTEMPT",
                       "DURATION", "OUTPUT / ERROR");
                for (size_t i = 0; i < n; i++) {
                        int64_t end = steps[i].finished_at ? steps[i].finished_at : sw_now_ms();
                        sw_duration_fmt(dur, sizeof(dur), end - steps[i].started_at);
                        const char *what = steps[i].error    ? steps[i].error
                                           : steps[i].output ? steps[i].output
                                                             : "";
                        /* errors in full; outputs cut to a line (`slipway job --json` has them all) */
                        int width = steps[i].error || strlen(what) <= 100 ? (int)strlen(what) : 97;
                        printf("%-4d %-12s %-10s %-8d %-9s %.*s%s\n", steps[i].idx + 1,
                               steps[i].name, steps[i].state, steps[i].attempt, dur, width, what,
                               width < (int)strlen(what) ? "..." : "");
                }
        }
        rc = 0;
out:
        eng_steps_free(steps, n);
        eng_job_free(job);
        eng_queue_close(q);
        return rc;
}

/* ---- logs, cancel, retry ---- */

int eng_cmd_logs(int argc, char **argv, const struct sw_config *cfg)
{
        static const struct option opts[] = {
                {"follow", no_argument, NULL, 'f'},
                {"timestamps", no_argument, NULL, 't'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct eng_queue *q = NULL;
        struct sw_err err = SW_ERR_INIT;
        enum eng_job_state final;
        bool follow = false, ts = false;
        int64_t id;
        int c, rc;

        optind = 1;
        while ((c = getopt_long(argc, argv, "hft", opts, NULL)) != -1) {
                switch (c) {
                case 'h':
                        printf("usage: slipway logs ID [-f] [-t]\n\n"
                               "Print a job's log.\n\n"
                               "  -f, --follow      keep printing until the job has ended\n"
                               "  -t, --timestamps  prefix each line with its time\n");
                        return 0;
                case 'f':
                        follow = true;
                        break;
                case 't':
                        ts = true;
                        break;
                default:
                        return sw_cli_usage_error("logs", "unknown option");
                }
        }
        if ((rc = parse_job_id(&id, "logs", argc, argv)) != 0)
                return rc;
        if (eng__open_queue(&q, cfg, false, &err) != 0 ||
            follow_log(&final, q, id, follow, ts, &err) != 0)
                rc = sw_cli_fail("logs", "%s", err.msg);
        eng_queue_close(q);
        return rc;
}

int eng_cmd_cancel(int argc, char **argv, const struct sw_config *cfg)
{
        struct eng_queue *q = NULL;
        struct sw_err err = SW_ERR_INIT;
        enum eng_job_state state;
        int64_t id;
        int rc;

        if (sw_cli_wants_help(argc, argv)) {
                printf("usage: slipway cancel ID\n\n"
                       "Cancel a job. A queued job is cancelled at once; a running job's\n"
                       "worker stops it within about a second.\n");
                return 0;
        }
        optind = 1;
        if ((rc = parse_job_id(&id, "cancel", argc, argv)) != 0)
                return rc;
        if (eng__open_queue(&q, cfg, false, &err) != 0 ||
            eng_queue_cancel(&state, q, id, &err) != 0) {
                rc = sw_cli_fail("cancel", "%s", err.msg);
        } else if (state == ENG_JOB_RUNNING) {
                printf("job %lld: cancel requested; its worker stops it within a second\n",
                       (long long)id);
        } else {
                printf("job %lld cancelled\n", (long long)id);
        }
        eng_queue_close(q);
        return rc;
}

int eng_cmd_retry(int argc, char **argv, const struct sw_config *cfg)
{
        struct eng_queue *q = NULL;
        struct sw_err err = SW_ERR_INIT;
        int64_t id;
        int rc;

        if (sw_cli_wants_help(argc, argv)) {
                printf("usage: slipway retry ID\n\n"
                       "Queue a failed or cancelled job again with a fresh set of attempts.\n"
                       "Steps that already succeeded are not run again.\n");
                return 0;
        }
        optind = 1;
        if ((rc = parse_job_id(&id, "retry", argc, argv)) != 0)
                return rc;
        if (eng__open_queue(&q, cfg, false, &err) != 0 || eng_queue_retry(q, id, &err) != 0)
                rc = sw_cli_fail("retry", "%s", err.msg);
        else
                printf("job %lld queued again\n", (long long)id);
        eng_queue_close(q);
        return rc;
}

/* ---- worker ---- */

int eng_cmd_worker(int argc, char **argv, const struct sw_config *cfg)
{
        struct eng_worker_setup ws = {0};
        unsigned long npipelines = 0;
        char *slim;

        /*
         * The supervising process is `slipway-worker` (engine/worker_main.c),
         * built next to this binary: it links only SQLite and jansson, so an
         * idle worker stays small, and it runs each job in `slipway
         * job-exec`. Without it (a partial install), the jobs run on threads
         * of this process.
         */
        slim = eng_worker_sibling("slipway-worker");
        if (slim && access(slim, X_OK) == 0) {
                argv[0] = slim;
                execv(slim, argv);
                sw_log(SW_LOG_WARN, "worker",
                       "cannot start slipway-worker; running jobs in-process", "{s:s,s:s}", "path",
                       slim, "error", strerror(errno));
        }
        free(slim);
        ws.pipelines = sw_pipelines(&npipelines);
        ws.npipelines = npipelines;
        ws.before_job = step_libs_init;
        return eng_worker_main(argc, argv, cfg, &ws);
}

/* ---- config ---- */

int eng_cmd_config(int argc, char **argv, const struct sw_config *cfg)
{
        const struct sw_config_var *vars;
        bool markdown = argc > 1 && strcmp(argv[1], "--markdown") == 0;
        int n;

        if (sw_cli_wants_help(argc, argv)) {
                printf("usage: slipway config [--markdown]\n\n"
                       "Print every SLIPWAY_* variable with its current value (secrets\n"
                       "redacted), its default and what it does. --markdown prints the\n"
                       "table of variables and defaults for documentation.\n");
                return 0;
        }
        if (argc > 1 && !markdown)
                return sw_cli_usage_error("config", "unexpected argument '%s'", argv[1]);
        vars = sw_config_vars(&n);
        if (markdown)
                printf("| variable | default | meaning |\n| --- | --- | --- |\n");
        for (int i = 0; i < n; i++) {
                char value[512];
                const char *def = vars[i].def ? vars[i].def : "";

                if (markdown) {
                        printf("| `%s` | %s%s%s | %s |\n", vars[i].env, *def ? "`" : "",
                               *def ? def : "(unset)", *def ? "`" : "", vars[i].help);
                        continue;
                }
                sw_config_value_fmt(cfg, i, value, sizeof(value));
                printf("%s=%s\n    default: %s; %s\n", vars[i].env, value, *def ? def : "(unset)",
                       vars[i].help);
        }
        return 0;
}

int eng_cmd_job_exec(int argc, char **argv, const struct sw_config *cfg)
{
        static const struct option opts[] = {
                {"job", required_argument, NULL, 'j'},
                {"owner", required_argument, NULL, 'o'},
                {"result-fd", required_argument, NULL, 'r'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct sw_err err = SW_ERR_INIT;
        unsigned long npipelines = 0;
        const struct eng_pipeline_def *defs;
        const char *owner = NULL;
        int64_t id = 0, fd = -1;
        int c;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 'h':
                        printf("usage: slipway job-exec --job ID --owner OWNER --result-fd FD\n\n"
                               "Run the pipeline of one job that OWNER has claimed, and write\n"
                               "the outcome to FD. `slipway worker` starts one of these per job;\n"
                               "it is not meant to be run by hand.\n");
                        return 0;
                case 'j':
                        if (sw_cli_parse_i64(&id, optarg, 1, INT64_MAX) != 0)
                                return sw_cli_usage_error("job-exec", "--job: '%s' is not a job id",
                                                          optarg);
                        break;
                case 'o':
                        owner = optarg;
                        break;
                case 'r':
                        if (sw_cli_parse_i64(&fd, optarg, 0, 1 << 20) != 0)
                                return sw_cli_usage_error("job-exec", "--result-fd: '%s'", optarg);
                        break;
                default:
                        return sw_cli_usage_error("job-exec", "unknown option");
                }
        }
        if (!id || !owner || fd < 0)
                return sw_cli_usage_error("job-exec",
                                          "--job, --owner and --result-fd are required");
        defs = sw_pipelines(&npipelines);
        if (eng_pool_exec_child(cfg, defs, npipelines, id, owner, (int)fd, &err) != 0)
                return sw_cli_fail("job-exec", "%s", err.msg);
        return 0;
}
