/*
 * worker_main.c - `slipway-worker`, the process behind `slipway worker`.
 *
 * It claims jobs, renews their leases and runs each in a child process
 * (`slipway-core job-exec`, next to this binary), so it links only what the
 * queue needs: SQLite, jansson and libc. An idle worker then maps none
 * of the libraries the steps use (libgit2, libcurl, OpenSSL, libarchive,
 * libmicrohttpd and theirs), which is most of a process's resident memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/log.h"
#include "engine/cli.h"
#include "engine/worker.h"
#include "common/banned.h"

extern char **environ;

int main(int argc, char **argv)
{
        struct eng_worker_setup ws = {0};
        struct sw_config cfg;
        struct sw_err err = SW_ERR_INIT;
        char *slipway;
        int rc, level;

        if (sw_cli_wants_help(argc, argv))
                return eng_worker_main(argc, argv, NULL, &ws);
        if (sw_config_load(&cfg, environ, &err) != 0) {
                fprintf(stderr, "slipway worker: configuration: %s\n", err.msg);
                return 1;
        }
        level = sw_log_level_parse(cfg.log_level);
        sw_log_init(1, level < 0 ? SW_LOG_INFO : (enum sw_log_level)level);
        slipway = eng_worker_sibling("slipway-core");
        if (!slipway) {
                fprintf(stderr, "slipway worker: cannot find slipway-core next to this binary\n");
                sw_config_release(&cfg);
                return 1;
        }
        ws.exec_path = slipway;
        rc = eng_worker_main(argc, argv, &cfg, &ws);
        free(slipway);
        sw_config_release(&cfg);
        return rc;
}
