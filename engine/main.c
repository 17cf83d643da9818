/*
 * main.c - `slipway-core`, which the `slipway` launcher (launcher.c) runs for
 * every subcommand but `worker`: load the configuration once, initialise the
 * libraries' global state, and dispatch to a subcommand.
 */
#include <stdio.h>
#include <string.h>

#include "common/config.h"
#include "common/libs.h"
#include "steps/steps.h"
#include "common/log.h"
#include "dns/dns.h"
#include "engine/cli.h"
#include "serve/serve.h"
#include "steps/build.h"
#include "steps/render.h"
#include "steps/layer.h"
#include "steps/dockerfile.h"
#include "steps/registry.h"
#include "steps/clone.h"
#include "ingress/ingress.h"
#include "orchestrator/agent.h"
#include "orchestrator/orchestrator.h"
#include "orchestrator/ctrl.h"
#include "common/banned.h"

extern char **environ;

static const struct sw_cmd commands[] = {
        {"submit", eng_cmd_submit, "queue a deploy job (repository, branch, name, resources)"},
        {"jobs", eng_cmd_jobs, "list jobs"},
        {"job", eng_cmd_job, "show one job and its steps"},
        {"logs", eng_cmd_logs, "print a job's log (-f to follow)"},
        {"cancel", eng_cmd_cancel, "cancel a queued or running job"},
        {"retry", eng_cmd_retry,
         "queue a failed or cancelled job again, resuming after its last good step"},
        {"serve", serve_cmd, "run everything on this machine (workers, registry, DNS, ingress)"},
        {"status", serve_status_cmd, "show the parts `slipway serve` runs and their health"},
        {"worker", eng_cmd_worker, "run queue workers until SIGTERM"},
        {"job-exec", eng_cmd_job_exec, "run one claimed job (started by `slipway worker`)"},
        {"build", step_build_cmd, "build a Dockerfile into an OCI image, without a Docker daemon"},
        {"render", step_render_cmd, "print the Kubernetes documents a deploy would apply"},
        {"config", eng_cmd_config, "print every SLIPWAY_* setting and its value"},
        {"layer", step_cmd_layer, "pack a directory into a reproducible layer, or apply one"},
        {"dockerfile", step_dockerfile_cmd, "parse a Dockerfile and print its parse tree"},
        {"push", step_registry_cmd_push, "push an image from an OCI layout to a registry"},
        {"pull", step_registry_cmd_pull, "pull an image from a registry into an OCI layout"},
        {"clone", step_clone_cmd, "clone a repository at a branch, tag or commit into DIR"},
        {"ingress", ingress_cmd, "render the nginx configuration for Ingress documents"},
        {"dns", dns_cmd, "publish, show, list or remove app host records in PowerDNS"},
        {"kube-apiserver", orch_cmd_apiserver,
         "serve the orchestrator's Kubernetes API in the foreground"},
        {"kubeconfig", orch_cmd_kubeconfig, "print a kubeconfig for the orchestrator's API"},
        {"controller-manager", orch_ctrl_cmd,
         "run the orchestrator's controllers and scheduler against an API server"},
        {"node", orch_agent_cmd, "run a node agent: register a Node and run its pods under runc"},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
        fprintf(f, "usage: slipway COMMAND [ARGS...]\n\n"
                   "slipway turns a git commit into a running app at a URL.\n\ncommands:\n");
        for (size_t i = 0; i < NCOMMANDS; i++)
                fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
        fprintf(f,
                "\nRun 'slipway COMMAND --help' for a command's options.\n"
                "Settings come from SLIPWAY_* environment variables; 'slipway config' lists them.\n");
}

int main(int argc, char **argv)
{
        struct sw_config cfg;
        struct sw_err err = SW_ERR_INIT;
        const struct sw_cmd *cmd = NULL;
        int level, rc;

        if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
            strcmp(argv[1], "help") == 0) {
                usage(argc < 2 ? stderr : stdout);
                return argc < 2 ? 2 : 0;
        }
        if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
                printf("slipway 0.1.0\n");
                return 0;
        }
        for (size_t i = 0; i < NCOMMANDS; i++)
                if (strcmp(argv[1], commands[i].name) == 0)
                        cmd = &commands[i];
        if (!cmd) {
                fprintf(stderr, "slipway: unknown command '%s'\n\n", argv[1]);
                usage(stderr);
                return 2;
        }
        if (sw_cli_wants_help(argc - 1, argv + 1))
                return cmd->run(argc - 1, argv + 1, NULL);

        if (sw_config_load(&cfg, environ, &err) != 0) {
                fprintf(stderr, "slipway: configuration: %s\n", err.msg);
                return 1;
        }
        level = sw_log_level_parse(cfg.log_level);
        sw_log_init(1, level < 0 ? SW_LOG_INFO : (enum sw_log_level)level);
        /*
         * Library global state is set up here, once, before any thread starts,
         * except for the worker, which defers it to its first job (common/libs.h).
         */
        if (strcmp(cmd->name, "build") == 0)
                sw_libs_init_http(); /* no git in a build: common/libs.h */
        else if (strcmp(cmd->name, "worker") != 0 && strcmp(cmd->name, "serve") != 0)
                step_libs_init();

        rc = cmd->run(argc - 1, argv + 1, &cfg);

        sw_libs_shutdown();
        sw_config_release(&cfg);
        return rc;
}
