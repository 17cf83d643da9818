/*
 * apiserver.c - benchmark of the orchestrator's API server on loopback:
 * GETs/s and creates/s from concurrent keep-alive clients, the latency of
 * one change reaching 100 open watches, and the resident memory with
 * 100,000 stored objects. The server runs in this process over plain HTTP
 * (TLS is measured by nobody here), so the RSS figure includes the clients.
 *
 * Usage: bench_apiserver [objects]   (default 100000)
 */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/mem.h"
#include "orchestrator/orchestrator.h"
#include "tests/harness/t.h"

#define TOKEN "bench-token-0123456789abcdef"
#define CLIENTS 8
#define WATCHERS 100
#define EVENTS 50

static char base[64];

static size_t sink(char *p, size_t size, size_t n, void *arg)
{
        (void)p;
        (void)arg;
        return size * n;
}

static CURL *client(struct curl_slist **h)
{
        CURL *c = curl_easy_init();

        *h = curl_slist_append(NULL, "Authorization: Bearer " TOKEN);
        *h = curl_slist_append(*h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, *h);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
        return c;
}

struct worker {
        int id;
        int64_t n;
        bool create;
        int64_t done;
};

static void *run_worker(void *arg)
{
        struct worker *w = arg;
        struct curl_slist *h = NULL;
        CURL *c = client(&h);
        char url[256], body[256];

        for (int64_t i = 0; i < w->n; i++) {
                long code = 0;
                if (w->create) {
                        snprintf(url, sizeof(url), "%s/api/v1/namespaces/default/configmaps", base);
                        snprintf(body, sizeof(body),
                                 "{\"metadata\":{\"name\":\"b%d-%lld\"},\"data\":{\"k\":\"v\"}}",
                                 w->id, (long long)i);
                        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
                } else {
                        snprintf(url, sizeof(url),
                                 "%s/api/v1/namespaces/default/configmaps/b0-%lld", base,
                                 (long long)(i % 100));
                        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
                }
                curl_easy_setopt(c, CURLOPT_URL, url);
                if (curl_easy_perform(c) == CURLE_OK)
                        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
                if (code == 200 || code == 201)
                        w->done++;
        }
        curl_easy_cleanup(c);
        curl_slist_free_all(h);
        return NULL;
}

static double run_phase(bool create, int64_t per_client)
{
        pthread_t t[CLIENTS];
        struct worker w[CLIENTS];
        int64_t start = sw_mono_us(), done = 0;

        for (int i = 0; i < CLIENTS; i++) {
                w[i] = (struct worker){i, per_client, create, 0};
                pthread_create(&t[i], NULL, run_worker, &w[i]);
        }
        for (int i = 0; i < CLIENTS; i++) {
                pthread_join(t[i], NULL);
                done += w[i].done;
        }
        return (double)done * 1e6 / (double)(sw_mono_us() - start);
}

/* A watcher records when it sees each event's marker ("ev-N"). */
struct watcher {
        CURL *c;
        struct curl_slist *h;
        int64_t seen_us[EVENTS];
        struct sw_buf line;
};

static atomic_int_fast64_t sent_us[EVENTS];
static atomic_int ready;

static size_t on_watch(char *p, size_t size, size_t n, void *arg)
{
        struct watcher *w = arg;
        int64_t now = sw_mono_us();
        const char *m;

        sw_buf_append(&w->line, p, size * n, NULL);
        while ((m = strstr(sw_buf_str(&w->line), "\"ev-")) != NULL) {
                int k = (int)strtol(m + 4, NULL, 10);
                size_t cut = (size_t)(m - w->line.data) + 4;
                if (k >= 0 && k < EVENTS && !w->seen_us[k])
                        w->seen_us[k] = now;
                memmove(w->line.data, w->line.data + cut, w->line.len - cut);
                w->line.len -= cut;
                w->line.data[w->line.len] = '\0';
        }
        return size * n;
}

static void *run_watcher(void *arg)
{
        struct watcher *w = arg;
        char url[256];

        snprintf(
                url, sizeof(url),
                "%s/api/v1/namespaces/watch/configmaps?watch=1&resourceVersion=%s&timeoutSeconds=20",
                base, "0");
        curl_easy_setopt(w->c, CURLOPT_URL, url);
        curl_easy_setopt(w->c, CURLOPT_WRITEFUNCTION, on_watch);
        curl_easy_setopt(w->c, CURLOPT_WRITEDATA, w);
        curl_easy_setopt(w->c, CURLOPT_TIMEOUT_MS, 20000L);
        atomic_fetch_add(&ready, 1);
        curl_easy_perform(w->c);
        return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return x < y ? -1 : x > y;
}

static long rss_kb(void)
{
        FILE *f = fopen("/proc/self/status", "r");
        char line[256];
        long kb = -1;

        while (f && fgets(line, sizeof(line), f))
                if (strncmp(line, "VmRSS:", 6) == 0)
                        kb = strtol(line + 6, NULL, 10);
        if (f)
                fclose(f);
        return kb;
}

int main(int argc, char **argv)
{
        struct orch_api_options o = ORCH_API_OPTIONS_INIT;
        struct orch_api *api = NULL;
        struct sw_err err = SW_ERR_INIT;
        char *db = sw_xasprintf("%s/bench.db", t_tmpdir());
        int64_t objects = argc > 1 ? strtoll(argv[1], NULL, 10) : 100000;
        static struct watcher ws[WATCHERS];
        pthread_t wt[WATCHERS];
        int64_t lat[WATCHERS * EVENTS];
        int nlat = 0, missing = 0;
        struct curl_slist *h = NULL;
        CURL *c;

        curl_global_init(CURL_GLOBAL_DEFAULT);
        o.listen = "127.0.0.1:0";
        o.db_path = db;
        o.token = TOKEN;
        if (orch_api_start(&api, &o, &err) != 0) {
                fprintf(stderr, "start: %s\n", err.msg);
                return 1;
        }
        snprintf(base, sizeof(base), "http://127.0.0.1:%u", orch_api_port(api));

        printf("apiserver_creates_per_s: %.0f creates/s\n", run_phase(true, 2000));
        printf("apiserver_gets_per_s: %.0f gets/s\n", run_phase(false, 5000));
        fflush(stdout);

        /* Watch fan-out: 100 watches of one namespace, 50 changes, latency of each delivery. */
        c = client(&h);
        curl_easy_setopt(c, CURLOPT_URL, "http://127.0.0.1/");
        {
                char url[256];
                snprintf(url, sizeof(url), "%s/api/v1/namespaces", base);
                curl_easy_setopt(c, CURLOPT_URL, url);
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{\"metadata\":{\"name\":\"watch\"}}");
                curl_easy_perform(c);
        }
        for (int i = 0; i < WATCHERS; i++) {
                ws[i].c = client(&ws[i].h);
                sw_buf_init(&ws[i].line, 0);
                pthread_create(&wt[i], NULL, run_watcher, &ws[i]);
        }
        while (atomic_load(&ready) < WATCHERS)
                sw_sleep_ms(10);
        sw_sleep_ms(500);
        for (int k = 0; k < EVENTS; k++) {
                char url[256], body[128];
                snprintf(url, sizeof(url), "%s/api/v1/namespaces/watch/configmaps", base);
                snprintf(body, sizeof(body), "{\"metadata\":{\"name\":\"ev-%d\"}}", k);
                curl_easy_setopt(c, CURLOPT_URL, url);
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
                atomic_store(&sent_us[k], sw_mono_us());
                curl_easy_perform(c);
                sw_sleep_ms(20);
        }
        sw_sleep_ms(1000);
        orch_api_stop(api); /* ends the watches */
        api = NULL;
        for (int i = 0; i < WATCHERS; i++) {
                pthread_join(wt[i], NULL);
                for (int k = 0; k < EVENTS; k++) {
                        if (ws[i].seen_us[k])
                                lat[nlat++] = ws[i].seen_us[k] - atomic_load(&sent_us[k]);
                        else
                                missing++;
                }
                curl_easy_cleanup(ws[i].c);
                curl_slist_free_all(ws[i].h);
                sw_buf_release(&ws[i].line);
        }
        qsort(lat, (size_t)nlat, sizeof(lat[0]), cmp_i64);
        printf("apiserver_watch_fanout_p50: %.2f ms\n", nlat ? lat[nlat / 2] / 1000.0 : -1.0);
        printf("apiserver_watch_fanout_p99: %.2f ms\n",
               nlat ? lat[(nlat * 99) / 100 - (nlat >= 100 ? 1 : 0)] / 1000.0 : -1.0);
        printf("apiserver_watch_missed_events: %d events\n", missing);
        fflush(stdout);

        /* Memory: the store holds `objects` objects; RSS of the idle server afterwards. */
        if (orch_api_start(&api, &o, &err) != 0) {
                fprintf(stderr, "restart: %s\n", err.msg);
                return 1;
        }
        snprintf(base, sizeof(base), "http://127.0.0.1:%u", orch_api_port(api));
        {
                int64_t have = 16000 + EVENTS, per = (objects - have) / CLIENTS;
                if (per > 0)
                        run_phase(true, per);
        }
        sw_sleep_ms(1000); /* idle: the store hands freed memory back after 200 ms */
        printf("apiserver_objects: %lld objects\n", (long long)objects);
        printf("apiserver_rss_with_objects: %ld KiB\n", rss_kb());
        curl_easy_cleanup(c);
        curl_slist_free_all(h);
        orch_api_stop(api);
        free(db);
        curl_global_cleanup();
        return t_done();
}
