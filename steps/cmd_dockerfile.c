/*
 * cmd_dockerfile.c - `slipway dockerfile parse FILE`: print a Dockerfile's
 * parse tree in buildkit's dump format, for checking what slipway will build
 * (and for comparing with buildkit's own test corpus).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"
#include "engine/cli.h"
#include "steps/dockerfile.h"
#include "common/banned.h"

static void usage(FILE *f)
{
        fprintf(f, "usage: slipway dockerfile parse FILE\n\n"
                   "Parse FILE ('-' for standard input) as a Dockerfile and print its parse\n"
                   "tree, one instruction per line, in buildkit's dump format:\n"
                   "  (instruction [\"--flag\"...] \"argument\"...)\n"
                   "A syntax error is reported with its line number (exit status 1).\n");
}

static int read_stdin(char **out, size_t *len, struct sw_err *err)
{
        struct sw_buf b;
        char chunk[65536];
        size_t n;
        int rc = 0;

        sw_buf_init(&b, STEP_DOCKERFILE_MAX_BYTES + 1);
        while (!rc && (n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
                rc = sw_buf_append(&b, chunk, n, err);
        if (!rc && ferror(stdin))
                rc = sw_err_set(err, SW_EIO, "reading standard input failed");
        if (rc) {
                sw_buf_release(&b);
                return rc;
        }
        *out = sw_buf_detach(&b, len);
        return 0;
}

int step_dockerfile_cmd(int argc, char **argv, const struct sw_config *cfg)
{
        struct sw_err err = SW_ERR_INIT;
        struct step_dockerfile *df = NULL;
        struct sw_buf out;
        char *text = NULL;
        size_t len = 0;
        int rc;

        (void)cfg;
        if (sw_cli_wants_help(argc, argv)) {
                usage(stdout);
                return 0;
        }
        if (argc < 2)
                return sw_cli_usage_error("dockerfile", "expected a subcommand ('parse')");
        if (strcmp(argv[1], "parse") != 0)
                return sw_cli_usage_error("dockerfile", "unknown subcommand '%s'", argv[1]);
        if (argc != 3)
                return sw_cli_usage_error("dockerfile", "parse expects exactly one FILE");
        if (strcmp(argv[2], "-") == 0)
                rc = read_stdin(&text, &len, &err);
        else
                rc = sw_read_file(&text, &len, argv[2], STEP_DOCKERFILE_MAX_BYTES + 1, &err);
        if (rc) {
                free(text);
                return sw_cli_fail("dockerfile", "%s: %s", argv[2], err.msg);
        }
        rc = step_dockerfile_parse(&df, text, len, &err);
        free(text);
        if (rc)
                return sw_cli_fail("dockerfile", "%s: %s", argv[2], err.msg);
        sw_buf_init(&out, 0);
        rc = step_dockerfile_dump(&out, df->ast, &err);
        step_dockerfile_free(df);
        if (rc) {
                sw_buf_release(&out);
                return sw_cli_fail("dockerfile", "%s: %s", argv[2], err.msg);
        }
        fwrite(sw_buf_str(&out), 1, out.len, stdout);
        fputc('\n', stdout);
        sw_buf_release(&out);
        return fflush(stdout) == 0 ? 0 : 1;
}
