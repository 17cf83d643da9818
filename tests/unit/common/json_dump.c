/*
 * json_dump.c - sw_json_dump() writes what jansson's json_dumps() writes
 * (compact, keys in insertion order), byte for byte: on strings that need
 * every kind of escape, on numbers and nesting, and on every JSON document
 * of the team's fixtures and this repository's.
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "common/json.h"
#include "tests/harness/t.h"

static int docs;

static void same_as_jansson(const json_t *v, const char *what)
{
        char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        char *got = sw_json_dump(v);

        CHECK(want && got);
        if (want && got && strcmp(want, got) != 0) {
                fprintf(stderr, "  %s:\n  jansson %.200s\n  ours    %.200s\n", what, want, got);
                CHECK(0);
        }
        free(want);
        free(got);
}

static void test_escapes_and_values(void)
{
        json_t *o = json_object(), *a = json_array();
        char all[40];

        for (int i = 0; i < 32; i++)
                all[i] = (char)(i + 1 == 32 ? ' ' : i + 1);
        all[32] = '"';
        all[33] = '\\';
        all[34] = '/';
        all[35] = 0x7f;
        json_object_set_new(o, "controls", json_stringn(all, 36));
        json_object_set_new(o, "nul", json_stringn("a\0b", 3));
        json_object_set_new(o, "utf8", json_string("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"));
        json_object_set_new(o, "key \"quoted\"\n", json_string(""));
        json_object_set_new(o, "ints",
                            json_pack("[I,I,I,i]", (json_int_t)INT64_MAX, (json_int_t)INT64_MIN,
                                      (json_int_t)0, -7));
        json_object_set_new(o, "reals", json_pack("[f,f,f,f]", 0.1, -2.5, 1e300, 3.0));
        json_object_set_new(o, "lits", json_pack("[b,b,n]", 1, 0));
        json_object_set_new(o, "empty", json_pack("{s:{},s:[]}", "o", "a"));
        json_array_append_new(a, json_pack("{s:[{s:[[]]}]}", "deep", "er"));
        json_object_set_new(o, "nested", a);
        same_as_jansson(o, "synthetic");
        same_as_jansson(json_object_get(o, "ints"), "an array alone");
        {
                json_t *s = json_string("top-level \"string\"");
                same_as_jansson(s, "a string alone");
                json_decref(s);
        }
        CHECK(sw_json_dump(NULL) == NULL);
        json_decref(o);
}

static int visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
        json_t *v;
        json_error_t jerr;
        size_t n = strlen(path);

        (void)st;
        (void)ftw;
        if (type != FTW_F || n < 5 || strcmp(path + n - 5, ".json") != 0)
                return 0;
        v = json_load_file(path, 0, &jerr);
        if (!v)
                return 0; /* not JSON after all: nothing to compare */
        same_as_jansson(v, path);
        json_decref(v);
        docs++;
        return 0;
}

static void test_fixture_documents(void)
{
        nftw(SW_TEST_SOURCE_DIR "/tests/fixtures", visit, 16, FTW_PHYS);
        nftw(SW_TEST_SOURCE_DIR "/../shared/fixtures", visit, 16, FTW_PHYS);
        CHECK(docs > 0);
        fprintf(stderr, "  %d documents compared\n", docs);
}

int main(void)
{
        T_RUN(test_escapes_and_values);
        T_RUN(test_fixture_documents);
        return t_done();
}
