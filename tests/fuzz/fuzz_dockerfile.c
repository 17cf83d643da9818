/*
 * fuzz_dockerfile.c - libFuzzer entry point for the parsers of untrusted
 * build input: the Dockerfile parser (and its dump), the shell-word lexer
 * and .dockerignore. Not part of the ctest suite (tests/fuzz/ is outside its
 * globs); build and run it by hand from the repository root:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 \
 *     -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -I. \
 *     tests/fuzz/fuzz_dockerfile.c steps/dockerfile.c steps/dockershell.c \
 *     steps/dockerfile_text.c steps/dockerignore.c common/buf.c common/mem.c \
 *     common/err.c common/arena.c -o /tmp/fuzz_dockerfile
 *   mkdir -p /tmp/corpus && cp ../shared/fixtures/buildkit-parser/frontend/\
 *     dockerfile/parser/testfiles/ *\/Dockerfile ... /tmp/corpus/  (any seeds)
 *   /tmp/fuzz_dockerfile -max_len=4096 -max_total_time=300 /tmp/corpus
 *
 * Every input must return without a crash, a leak or undefined behaviour;
 * errors are expected and ignored.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "steps/dockerfile.h"
#include "steps/dockerignore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const char *const vars[] = {"A=1", "B=", "PATH=/usr/bin:/bin", "E"};
        struct step_shlex_env env = {vars, 4};
        struct step_shlex_options o = STEP_SHLEX_OPTIONS_INIT;
        const char *text = (const char *)data;
        struct sw_err err = SW_ERR_INIT;
        struct step_dockerfile *df = NULL;
        struct step_dockerignore *ig = NULL;
        char *word = NULL, **words = NULL;
        size_t len;

        if (step_dockerfile_parse(&df, text, size, &err) == 0) {
                struct sw_buf b;
                sw_buf_init(&b, 0);
                (void)step_dockerfile_dump(&b, df->ast, &err);
                sw_buf_release(&b);
                step_dockerfile_free(df);
        }
        /* The first byte picks the lexer's options, the rest is the word. */
        if (size > 0) {
                o.escape = (data[0] & 1) ? '`' : '\\';
                o.raw_quotes = data[0] & 2;
                o.raw_escapes = data[0] & 4;
                o.skip_process_quotes = data[0] & 8;
                o.skip_unset_env = data[0] & 16;
                sw_err_clear(&err);
                if (step_shlex_word(&word, &len, &o, text + 1, size - 1, &env, &err) == 0)
                        free(word);
                sw_err_clear(&err);
                if (step_shlex_words(&words, &len, &o, text + 1, size - 1, &env, &err) == 0)
                        step_shlex_words_free(words);
        }
        sw_err_clear(&err);
        if (step_dockerignore_parse(&ig, text, size, &err) == 0) {
                char path[256];
                size_t n = size < sizeof(path) - 1 ? size : sizeof(path) - 1;
                memcpy(path, text, n);
                path[n] = '\0';
                (void)step_dockerignore_match(ig, path, false);
                (void)step_dockerignore_match(ig, path, true);
                (void)step_dockerignore_match(ig, "a/b/c.txt", false);
                step_dockerignore_free(ig);
        }
        return 0;
}
