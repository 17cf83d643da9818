/*
 * clone_cmd.c - `slipway clone URL [--branch B] [--commit C] DIR`: the clone
 * step alone, for debugging a repository that a job cannot clone. It uses
 * the same mirror cache ($SLIPWAY_DATA/git), credentials file and limits as
 * the step, prints progress on stderr and the step's output JSON on stdout.
 */
#include <dirent.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/config.h"
#include "common/mem.h"
#include "engine/cli.h"
#include "steps/clone.h"
#include "common/banned.h"

static void clone_usage(FILE *f)
{
        fprintf(f, "usage: slipway clone URL [--branch B] [--commit C] [--no-submodules] DIR\n\n"
                   "Fetch URL into its mirror under $SLIPWAY_DATA/git and check out a branch,\n"
                   "a tag or a commit (full or abbreviated sha) in DIR (new or empty).\n"
                   "Without --branch and --commit the branch is 'main'. With both, the commit\n"
                   "must be reachable from the branch. Credentials for http(s) come from the\n"
                   "file named by SLIPWAY_GIT_CREDENTIALS; ssh:// needs SLIPWAY_GIT_SSH_KEY and\n"
                   "SLIPWAY_GIT_SSH_KNOWN_HOSTS; limits come from SLIPWAY_CLONE_MAX_BYTES and\n"
                   "SLIPWAY_CLONE_TIMEOUT_MS. Prints {\"commit\",\"ref\",\"path\",\"url\"}.\n\n"
                   "options:\n"
                   "  -b, --branch B      branch or tag to check out\n"
                   "  -c, --commit C      commit to check out\n"
                   "      --no-submodules leave submodules uninitialised\n"
                   "  -h, --help          this text\n");
}

static void print_line(void *arg, const char *line)
{
        (void)arg;
        fprintf(stderr, "%s\n", line);
}

int step_clone_cmd(int argc, char **argv, const struct sw_config *cfg)
{
        static const struct option opts[] = {
                {"branch", required_argument, NULL, 'b'},
                {"commit", required_argument, NULL, 'c'},
                {"no-submodules", no_argument, NULL, 'S'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct step_clone_options o = STEP_CLONE_OPTIONS_INIT;
        struct step_clone_result res;
        struct sw_err err = SW_ERR_INIT;
        char *user = NULL, *password = NULL, *cache = NULL, *dest = NULL;
        int c, rc;

        optind = 1;
        while ((c = getopt_long(argc, argv, "b:c:h", opts, NULL)) != -1) {
                switch (c) {
                case 'b':
                        o.branch = optarg;
                        break;
                case 'c':
                        o.commit = optarg;
                        break;
                case 'S':
                        o.no_submodules = true;
                        break;
                case 'h':
                        clone_usage(stdout);
                        return 0;
                default:
                        return sw_cli_usage_error("clone", "unknown option");
                }
        }
        if (!cfg) {
                clone_usage(stdout);
                return 0;
        }
        if (argc - optind != 2)
                return sw_cli_usage_error("clone", "expected a URL and a directory");
        if (!o.branch && !o.commit)
                o.branch = "main";
        o.url = argv[optind];
        if (argv[optind + 1][0] == '/') {
                dest = sw_xstrdup(argv[optind + 1]);
        } else {
                char *cwd = getcwd(NULL, 0);
                if (!cwd)
                        return sw_cli_fail("clone", "cannot read the current directory");
                dest = sw_xasprintf("%s/%s", cwd, argv[optind + 1]);
                free(cwd);
        }
        /* The step replaces its own work directory; a user's directory is never emptied. */
        {
                DIR *d = opendir(dest);
                struct dirent *e;
                bool empty = true;

                while (d && (e = readdir(d)) != NULL)
                        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                                empty = false;
                if (d)
                        closedir(d);
                if (!empty) {
                        rc = sw_cli_usage_error("clone", "'%s' exists and is not empty", dest);
                        goto out;
                }
        }
        if (cfg->git_credentials &&
            (strncmp(o.url, "https://", 8) == 0 || strncmp(o.url, "http://", 7) == 0)) {
                rc = step_clone_credentials_lookup(&user, &password, cfg->git_credentials, o.url,
                                                   &err);
                if (rc && rc != SW_ENOTFOUND) {
                        rc = sw_cli_fail("clone", "%s", err.msg);
                        goto out;
                }
                sw_err_clear(&err);
        }
        cache = sw_xasprintf("%s/git", cfg->data);
        o.user = user;
        o.password = password;
        o.cache_dir = cache;
        o.dest = dest;
        o.ssh_key = cfg->git_ssh_key;
        o.ssh_known_hosts = cfg->git_ssh_known_hosts;
        o.max_bytes = cfg->clone_max_bytes;
        o.timeout_ms = cfg->clone_timeout_ms;
        o.log = print_line;

        rc = step_clone_run(&res, &o, &err);
        if (rc) {
                rc = sw_cli_fail("clone", "%s", err.msg);
                goto out;
        }
        {
                json_t *j = json_pack("{s:s,s:s?,s:s,s:s}", "commit", res.commit, "ref", res.ref,
                                      "path", res.path, "url", res.url);
                char *text = json_dumps(j, JSON_COMPACT);
                printf("%s\n", text);
                free(text);
                json_decref(j);
        }
        step_clone_result_release(&res);
        rc = 0;
out:
        free(user);
        sw_free_secret(password);
        free(cache);
        free(dest);
        return rc;
}
