/*
 * driver.c - slipway's side of the differential check (see README.md): the
 * same modes and output format as oracle.go, for comparison byte by byte.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/buf.h"
#include "common/fs.h"
#include "steps/dockerfile.h"
#include "steps/dockerfile_int.h"
#include "steps/dockerignore.h"

static void q(const char *s, size_t n)
{
        struct sw_buf b;
        sw_buf_init(&b, 0);
        step_df_quote(&b, s, n, NULL);
        fwrite(b.data, 1, b.len, stdout);
        sw_buf_release(&b);
}

int main(int argc, char **argv)
{
        const char *mode = argv[1];
        for (int i = 2; i < argc; i++) {
                char *data = NULL;
                size_t len = 0;
                struct sw_err err = SW_ERR_INIT;
                sw_read_file(&data, &len, argv[i], 0, &err);
                if (!strcmp(mode, "parse")) {
                        struct step_dockerfile *df = NULL;
                        if (step_dockerfile_parse(&df, data, len, &err)) {
                                printf("ERROR\n");
                                free(data);
                                continue;
                        }
                        struct sw_buf b;
                        sw_buf_init(&b, 0);
                        step_dockerfile_dump(&b, df->ast, &err);
                        printf("%s\n", b.data ? b.data : "");
                        sw_buf_release(&b);
                        for (size_t c = 0; c < df->ast->n_children; c++) {
                                struct step_dockerfile_node *n = df->ast->children[c];
                                printf("L %d %d\n", n->start_line, n->end_line);
                                for (size_t h = 0; h < n->n_heredocs; h++) {
                                        struct step_dockerfile_heredoc *d = &n->heredocs[h];
                                        printf("H ");
                                        q(d->name, strlen(d->name));
                                        printf(" ");
                                        q(d->content, d->content_len);
                                        printf(" %s %s %llu\n", d->expand ? "true" : "false",
                                               d->chomp ? "true" : "false", d->fd);
                                }
                        }
                        step_dockerfile_free(df);
                } else if (!strcmp(mode, "word") || !strcmp(mode, "words")) {
                        static const char *const vars[] = {"A=1", "B=", "PATH=/usr/bin:/bin", "E",
                                                           "SP=a  b "};
                        struct step_shlex_env env = {vars, 5};
                        struct step_shlex_options o = STEP_SHLEX_OPTIONS_INIT;
                        const char *w = data;
                        size_t wl = len;
                        if (len > 0) {
                                unsigned char f = (unsigned char)data[0];
                                o.escape = (f & 1) ? '`' : '\\';
                                o.raw_quotes = f & 2;
                                o.raw_escapes = f & 4;
                                o.skip_process_quotes = f & 8;
                                o.skip_unset_env = f & 16;
                                w++;
                                wl--;
                        }
                        if (!strcmp(mode, "word")) {
                                char *out;
                                size_t ol;
                                if (step_shlex_word(&out, &ol, &o, w, wl, &env, &err))
                                        printf("ERROR\n");
                                else {
                                        q(out, ol);
                                        printf("\n");
                                        free(out);
                                }
                        } else {
                                char **ws;
                                size_t n;
                                if (step_shlex_words(&ws, &n, &o, w, wl, &env, &err))
                                        printf("ERROR\n");
                                else {
                                        printf("[");
                                        for (size_t k = 0; k < n; k++) {
                                                if (k)
                                                        printf(" ");
                                                q(ws[k], strlen(ws[k]));
                                        }
                                        printf("]\n");
                                        step_shlex_words_free(ws);
                                }
                        }
                } else if (!strcmp(mode, "ignore")) {
                        char *nl = memchr(data, '\n', len);
                        if (!nl) {
                                printf("SKIP\n");
                                free(data);
                                continue;
                        }
                        *nl = 0;
                        struct step_dockerignore *m = NULL;
                        if (step_dockerignore_parse(&m, nl + 1, len - (size_t)(nl + 1 - data),
                                                    &err)) {
                                printf("ERROR\n");
                                free(data);
                                continue;
                        }
                        printf("%s\n", (step_dockerignore_match(m, data, false) &
                                        STEP_DOCKERIGNORE_EXCLUDED)
                                               ? "true"
                                               : "false");
                        step_dockerignore_free(m);
                }
                free(data);
        }
        return 0;
}
