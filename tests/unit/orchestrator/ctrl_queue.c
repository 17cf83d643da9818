/*
 * ctrl_queue.c - the controller framework's key queue (de-duplication,
 * delayed adds, per-key exponential backoff, close) and its object helpers
 * (keys, controller owner references, pod readiness with minReadySeconds).
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "orchestrator/ctrl_int.h"
#include "tests/harness/t.h"

static void test_dedup(void)
{
        struct orch_ctrl_queue q;
        char *k;

        orch_ctrl_queue_init(&q);
        orch_ctrl_queue_add(&q, "ns/a");
        orch_ctrl_queue_add(&q, "ns/b");
        orch_ctrl_queue_add(&q, "ns/a");
        CHECK_INT((int)orch_ctrl_queue_len(&q), 2);
        k = orch_ctrl_queue_get(&q, 0);
        CHECK(k != NULL);
        /* added again while processed: queued again, once */
        orch_ctrl_queue_add(&q, k);
        orch_ctrl_queue_add(&q, k);
        CHECK_INT((int)orch_ctrl_queue_len(&q), 2);
        orch_ctrl_queue_done(&q, k, false, 1000);
        free(k);
        k = orch_ctrl_queue_get(&q, 0);
        CHECK(k != NULL);
        orch_ctrl_queue_done(&q, k, false, 1000);
        free(k);
        k = orch_ctrl_queue_get(&q, 0);
        CHECK(k != NULL);
        orch_ctrl_queue_done(&q, k, false, 1000);
        free(k);
        CHECK(orch_ctrl_queue_get(&q, 0) == NULL);
        orch_ctrl_queue_release(&q);
}

static void test_delay_and_order(void)
{
        struct orch_ctrl_queue q;
        int64_t t0 = sw_mono_ms();
        char *k;

        orch_ctrl_queue_init(&q);
        orch_ctrl_queue_add_after(&q, "late", 150);
        orch_ctrl_queue_add_after(&q, "soon", 50);
        CHECK(orch_ctrl_queue_get(&q, 0) == NULL);
        k = orch_ctrl_queue_get(&q, 1000);
        CHECK_STR(k, "soon");
        CHECK(sw_mono_ms() - t0 >= 45);
        orch_ctrl_queue_done(&q, k, false, 1000);
        free(k);
        /* an immediate add overrides a later due time */
        orch_ctrl_queue_add(&q, "late");
        k = orch_ctrl_queue_get(&q, 0);
        CHECK_STR(k, "late");
        orch_ctrl_queue_done(&q, k, false, 1000);
        free(k);
        orch_ctrl_queue_release(&q);
}

/*
 * take: every due key in one call, a delayed one only once due, and the
 * queue keeps no key once it is done (a batch controller sees each pod
 * once: its queue must not grow with every key it ever saw).
 */
static void test_take(void)
{
        struct orch_ctrl_queue q;
        json_t *keys = json_array();
        char name[16];

        orch_ctrl_queue_init(&q);
        for (int i = 0; i < 100; i++) {
                snprintf(name, sizeof(name), "ns/p%d", i);
                orch_ctrl_queue_add(&q, name);
        }
        orch_ctrl_queue_add_after(&q, "ns/later", 60);
        CHECK_INT((int)orch_ctrl_queue_take(&q, keys, 40, 0), 40);
        CHECK_INT((int)orch_ctrl_queue_take(&q, keys, 5000, 0), 60);
        CHECK_INT((int)json_array_size(keys), 100);
        CHECK_INT((int)orch_ctrl_queue_take(&q, keys, 5000, 0), 0);
        CHECK_INT((int)orch_ctrl_queue_take(&q, keys, 5000, 1000), 1);
        CHECK_STR(json_string_value(json_array_get(keys, 100)), "ns/later");
        for (size_t i = 0; i < json_array_size(keys); i++)
                orch_ctrl_queue_done(&q, json_string_value(json_array_get(keys, i)), false, 1000);
        CHECK_INT((int)q.n, 0);
        /* One queued again while it was processed stays, and comes back. */
        orch_ctrl_queue_add(&q, "ns/again");
        json_array_clear(keys);
        CHECK_INT((int)orch_ctrl_queue_take(&q, keys, 5000, 0), 1);
        orch_ctrl_queue_add(&q, "ns/again");
        orch_ctrl_queue_done(&q, "ns/again", false, 1000);
        CHECK_INT((int)orch_ctrl_queue_take(&q, keys, 5000, 0), 1);
        json_decref(keys);
        orch_ctrl_queue_release(&q);
}

static void test_backoff(void)
{
        struct orch_ctrl_queue q;
        int64_t delays[4];
        char *k;

        orch_ctrl_queue_init(&q);
        orch_ctrl_queue_add(&q, "x");
        for (int i = 0; i < 4; i++) {
                int64_t t0;
                k = orch_ctrl_queue_get(&q, 0);
                if (!k)
                        k = orch_ctrl_queue_get(&q, 2000);
                CHECK(k != NULL);
                t0 = sw_mono_ms();
                orch_ctrl_queue_done(&q, k, true, 60);
                free(k);
                k = orch_ctrl_queue_get(&q, 2000);
                delays[i] = sw_mono_ms() - t0;
                CHECK(k != NULL);
                orch_ctrl_queue_add(&q, k); /* keep it failing from the front */
                free(k);
        }
        /* 10, 20, 40, then capped at 60 ms */
        CHECK(delays[0] >= 8 && delays[0] < 40);
        CHECK(delays[2] >= 35);
        CHECK(delays[3] >= 55 && delays[3] < 200);
        /* success forgets the failures */
        k = orch_ctrl_queue_get(&q, 0);
        CHECK(k != NULL);
        orch_ctrl_queue_done(&q, k, false, 60);
        free(k);
        CHECK_INT((int)q.n, 0);
        orch_ctrl_queue_release(&q);
}

static void *closer(void *arg)
{
        sw_sleep_ms(50);
        orch_ctrl_queue_close(arg);
        return NULL;
}

static void test_close_wakes(void)
{
        struct orch_ctrl_queue q;
        pthread_t th;
        int64_t t0 = sw_mono_ms();

        orch_ctrl_queue_init(&q);
        pthread_create(&th, NULL, closer, &q);
        CHECK(orch_ctrl_queue_get(&q, 5000) == NULL);
        CHECK(sw_mono_ms() - t0 < 2000);
        pthread_join(th, NULL);
        orch_ctrl_queue_release(&q);
}

static void test_helpers(void)
{
        json_t *pod = json_loads(
                "{\"metadata\":{\"name\":\"p\",\"namespace\":\"ns\",\"ownerReferences\":["
                "{\"kind\":\"ReplicaSet\",\"name\":\"r\",\"uid\":\"u1\"},"
                "{\"kind\":\"ReplicaSet\",\"name\":\"r2\",\"uid\":\"u2\",\"controller\":true}]},"
                "\"status\":{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Ready\","
                "\"status\":\"True\",\"lastTransitionTime\":\"2026-01-01T00:00:00Z\"}]}}",
                0, NULL);
        char *key = orch_ctrl_key(pod), *ns = NULL, *name = NULL;
        const json_t *ref = orch_ctrl_owner(pod, "ReplicaSet");
        int64_t since = 0, t = 1767225600000LL; /* 2026-01-01T00:00:00Z */
        json_t *sel = json_loads("{\"matchLabels\":{\"app\":\"w\"}}", 0, NULL);
        json_t *lab = json_loads("{\"app\":\"w\",\"x\":\"y\"}", 0, NULL);
        json_t *empty = json_object();

        CHECK_STR(key, "ns/p");
        orch_ctrl_key_split(key, &ns, &name);
        CHECK_STR(ns, "ns");
        CHECK_STR(name, "p");
        free(ns);
        free(name);
        orch_ctrl_key_split("node1", &ns, &name);
        CHECK_STR(ns, "");
        CHECK_STR(name, "node1");
        free(ns);
        free(name);
        CHECK(ref && strcmp(json_string_value(json_object_get(ref, "uid")), "u2") == 0);
        CHECK(orch_ctrl_owner(pod, "Deployment") == NULL);
        CHECK(orch_ctrl_pod_ready(pod, 0, t, &since));
        CHECK(since == t);
        CHECK(!orch_ctrl_pod_ready(pod, 10000, t + 5000, NULL));
        CHECK(orch_ctrl_pod_ready(pod, 10000, t + 10000, NULL));
        CHECK(orch_ctrl_pod_active(pod));
        CHECK(orch_ctrl_selects(sel, lab));
        CHECK(!orch_ctrl_selects(empty, lab)); /* an empty selector selects nothing */
        json_decref(empty);
        json_decref(sel);
        json_decref(lab);
        free(key);
        json_decref(pod);
}

int main(void)
{
        T_RUN(test_dedup);
        T_RUN(test_delay_and_order);
        T_RUN(test_take);
        T_RUN(test_backoff);
        T_RUN(test_close_wakes);
        T_RUN(test_helpers);
        return t_done();
}
