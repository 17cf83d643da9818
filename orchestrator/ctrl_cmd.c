/*
 * ctrl_cmd.c - `slipway controller-manager`: the controllers and the
 * scheduler in the foreground against an API server named by a
 * kubeconfig, until SIGTERM or SIGINT.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "engine/cli.h"
#include "orchestrator/ctrl.h"
#include "common/banned.h"

static int parse_ms(int64_t *out, const char *s)
{
        char *end = NULL;
        long long v = strtoll(s, &end, 10);

        if (!end || end == s || *end || v < 0)
                return -1;
        *out = (int64_t)v;
        return 0;
}

int orch_ctrl_cmd(int argc, char **argv, const struct sw_config *cfg)
{
        static const struct option opts[] = {{"kubeconfig", required_argument, NULL, 'k'},
                                             {"node-grace-ms", required_argument, NULL, 'g'},
                                             {"eviction-ms", required_argument, NULL, 'e'},
                                             {"job-backoff-ms", required_argument, NULL, 'b'},
                                             {"cron-time-scale", required_argument, NULL, 's'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
        struct orch_ctrl_options co = ORCH_CTRL_OPTIONS_INIT;
        struct sw_err err = SW_ERR_INIT;
        struct orch_ctrl *ctrl = NULL;
        sigset_t set;
        int c, sig;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 'k':
                        co.kubeconfig = optarg;
                        break;
                case 'g':
                        if (parse_ms(&co.node_grace_ms, optarg) != 0)
                                return sw_cli_usage_error("controller-manager",
                                                          "--node-grace-ms wants milliseconds, "
                                                          "not '%s'",
                                                          optarg);
                        break;
                case 'e':
                        if (parse_ms(&co.eviction_ms, optarg) != 0)
                                return sw_cli_usage_error("controller-manager",
                                                          "--eviction-ms wants milliseconds, "
                                                          "not '%s'",
                                                          optarg);
                        break;
                case 'b':
                        if (parse_ms(&co.job_backoff_ms, optarg) != 0)
                                return sw_cli_usage_error("controller-manager",
                                                          "--job-backoff-ms wants milliseconds, "
                                                          "not '%s'",
                                                          optarg);
                        break;
                case 's':
                        if (parse_ms(&co.cron_time_scale, optarg) != 0 || co.cron_time_scale < 1 ||
                            co.cron_time_scale > 3600)
                                return sw_cli_usage_error("controller-manager",
                                                          "--cron-time-scale wants a factor "
                                                          "from 1 to 3600, not '%s'",
                                                          optarg);
                        break;
                case 'h':
                        printf("usage: slipway controller-manager --kubeconfig FILE "
                               "[--node-grace-ms MS] [--eviction-ms MS]\n"
                               "       [--job-backoff-ms MS] [--cron-time-scale N]\n\n"
                               "Run the orchestrator's controllers (Deployment, ReplicaSet,\n"
                               "Endpoints, Job, CronJob, node lifecycle, garbage collector) and\n"
                               "the scheduler against the API server of FILE, until SIGTERM or\n"
                               "SIGINT.\n\n"
                               "  --node-grace-ms MS  heartbeat age that makes a node NotReady "
                               "(40000)\n"
                               "  --eviction-ms MS    delay before pods of an unreachable node "
                               "are evicted (0)\n"
                               "  --job-backoff-ms MS first delay before a failed Job pod is "
                               "replaced (10000)\n"
                               "  --cron-time-scale N run the CronJob clock N times faster "
                               "(tests; 1)\n");
                        return 0;
                default:
                        return sw_cli_usage_error("controller-manager", "unknown option");
                }
        }
        if (!cfg)
                return 0;
        if (!co.kubeconfig)
                return sw_cli_usage_error("controller-manager", "--kubeconfig FILE is required");
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        signal(SIGPIPE, SIG_IGN);
        if (orch_ctrl_start(&ctrl, &co, &err) != 0)
                return sw_cli_fail("controller-manager", "%s", err.msg);
        sw_log(SW_LOG_INFO, "ctrl", "controllers running", "{s:s}", "kubeconfig", co.kubeconfig);
        sig = 0;
        while (sigwait(&set, &sig) != 0)
                ;
        sw_log(SW_LOG_INFO, "ctrl", "stopping", "{s:s}", "reason",
               sig == SIGTERM ? "SIGTERM" : "SIGINT");
        orch_ctrl_stop(ctrl);
        return 0;
}
