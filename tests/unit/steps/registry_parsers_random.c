/*
 * registry_parsers_random.c - the parsers of untrusted registry input
 * (WWW-Authenticate challenges, manifests, image references) fed with many
 * seeded random mutations of valid inputs. Under ASan/UBSan this catches
 * out-of-bounds reads and leaks; plainly it checks that every input gets an
 * answer (0 or an SW_E* code) and that results are released.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steps/oci.h"
#include "steps/registry.h"
#include "tests/harness/t.h"

#define ROUNDS 3000

static uint64_t rnd(uint64_t *s)
{
        uint64_t x = *s;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *s = x;
        return x;
}

/* A mutated copy of `seed` (NUL-terminated, malloc'ed; *len_out excludes the NUL). */
static char *mutate(const char *seed, uint64_t *s, size_t *len_out)
{
        static const char alphabet[] = "\"\\,= :/@{}[]aZ09\t\r\n.-_";
        size_t n = strlen(seed), cap = n * 2 + 16;
        char *b = malloc(cap);
        int edits = 1 + (int)(rnd(s) % 4);

        memcpy(b, seed, n + 1);
        for (int e = 0; e < edits; e++) {
                size_t pos = n ? (size_t)(rnd(s) % n) : 0;
                char c = alphabet[rnd(s) % (sizeof(alphabet) - 1)];
                switch (rnd(s) % 4) {
                case 0: /* replace */
                        if (n)
                                b[pos] = c;
                        break;
                case 1: /* insert */
                        if (n + 2 < cap) {
                                memmove(b + pos + 1, b + pos, n - pos + 1);
                                b[pos] = c;
                                n++;
                        }
                        break;
                case 2: /* delete */
                        if (n) {
                                memmove(b + pos, b + pos + 1, n - pos);
                                n--;
                        }
                        break;
                default: /* truncate */
                        n = pos;
                        b[n] = '\0';
                        break;
                }
        }
        *len_out = n;
        return b;
}

static void test_challenges(void)
{
        static const char *seeds[] = {
                "Bearer realm=\"https://auth.example/token\",service=\"registry.example\","
                "scope=\"repository:team/app:pull,push\"",
                "Basic realm=\"Registry \\\"Realm\\\"\"",
                "Bearer realm=http://127.0.0.1:9/t, error=\"insufficient_scope\"",
        };
        uint64_t s = 0x1234567;
        int ok = 0;

        for (int i = 0; i < ROUNDS; i++) {
                struct step_registry_challenge c;
                struct sw_err err = SW_ERR_INIT;
                size_t len;
                char *in = mutate(seeds[i % 3], &s, &len);
                int rc = step_registry_challenge_parse(&c, in, &err);

                CHECK(rc == 0 || rc == SW_EPROTO);
                if (rc == 0) {
                        ok++;
                        step_registry_challenge_release(&c);
                } else {
                        CHECK(err.msg[0] != '\0');
                }
                free(in);
        }
        CHECK(ok > 0);
}

static void test_manifests(void)
{
        static const char *seeds[] = {
                "{\"schemaVersion\":2,\"mediaType\":\"" STEP_OCI_MT_MANIFEST "\",\"config\":{"
                "\"mediaType\":\"" STEP_OCI_MT_CONFIG "\",\"digest\":\"sha256:"
                "1111111111111111111111111111111111111111111111111111111111111111\",\"size\":10},"
                "\"layers\":[{\"mediaType\":\"" STEP_OCI_MT_LAYER_GZIP "\",\"digest\":\"sha256:"
                "2222222222222222222222222222222222222222222222222222222222222222\",\"size\":20}]}",
                "{\"schemaVersion\":2,\"mediaType\":\"" STEP_OCI_MT_INDEX "\",\"manifests\":[]}",
        };
        uint64_t s = 0xabcdef;

        for (int i = 0; i < ROUNDS; i++) {
                struct step_oci_manifest m;
                struct sw_err err = SW_ERR_INIT;
                size_t len;
                char *in = mutate(seeds[i % 2], &s, &len);
                int rc = step_oci_manifest_parse(&m, (i % 5) ? NULL : STEP_OCI_MT_MANIFEST, in, len,
                                                 &err);

                CHECK(rc == 0 || rc == SW_EINVAL || rc == SW_EPROTO || rc == SW_ETOOBIG);
                if (rc == 0) {
                        CHECK(sw_digest_valid(m.config.digest));
                        for (size_t k = 0; k < m.n_layers; k++)
                                CHECK(sw_digest_valid(m.layers[k].digest));
                        step_oci_manifest_release(&m);
                }
                free(in);
        }
}

static void test_refs(void)
{
        static const char *seeds[] = {
                "127.0.0.1:5000/team/app:v1",
                "harbor.example.com/proj/app@sha256:"
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "team/app:1.2.3-rc_1",
        };
        uint64_t s = 0x55aa55;

        for (int i = 0; i < ROUNDS; i++) {
                struct step_registry_ref r;
                struct sw_err err = SW_ERR_INIT;
                size_t len;
                char *in = mutate(seeds[i % 3], &s, &len);
                int rc = step_registry_ref_parse(&r, in, "d:1", &err);

                CHECK(rc == 0 || rc == SW_EINVAL);
                if (rc == 0) {
                        /* Whatever was accepted is safe to put in a URL path. */
                        CHECK(strstr(r.repo, "..") == NULL);
                        CHECK(strpbrk(r.repo, "?#%@: ") == NULL);
                        CHECK(strpbrk(r.tag, "/?#%@ ") == NULL);
                        CHECK(r.tag[0] || r.digest[0]);
                }
                free(in);
        }
}

int main(void)
{
        T_RUN(test_challenges);
        T_RUN(test_manifests);
        T_RUN(test_refs);
        return t_done();
}
