/*
 * bench/dns.c - DNS latency: from the start of an upsert through the
 * PowerDNS HTTP API to the moment the server answers the new address over
 * UDP, against a real pdns_server (gsqlite3) on loopback.
 *
 * Figures (each a `name: value unit` line), over 200 upserts that each
 * change the address of one of 20 hosts (so every one is a real write):
 *  - upsert -> answer, p50/p99/max (target: p99 <= 50 ms);
 *  - the upsert alone (zone cached, two reads and one PATCH), p50/p99;
 *  - an unchanged re-upsert (two reads, no write), p50;
 *  - one UDP query to the server, p50/p99.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "common/clock.h"
#include "dns/dns.h"
#include "tests/harness/pdns.h"
#include "tests/harness/t.h"

#define N_UPSERTS 200
#define N_HOSTS 20
#define ZONE "bench.test."

static int cmp_i64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return x < y ? -1 : x > y;
}

static double pct_ms(int64_t *us, size_t n, double p)
{
        size_t i = (size_t)(p * (double)(n - 1) + 0.5);

        qsort(us, n, sizeof(*us), cmp_i64);
        return (double)us[i] / 1000.0;
}

static void die_on(int rc, const struct sw_err *err)
{
        if (rc) {
                fprintf(stderr, "bench dns: %s\n", err->msg);
                exit(1);
        }
}

int main(void)
{
        static int64_t total[N_UPSERTS], api[N_UPSERTS], same[N_UPSERTS], query[N_UPSERTS];
        struct dns_options o = DNS_OPTIONS_INIT;
        struct dns_client *c = NULL;
        struct sw_err err = SW_ERR_INIT;
        struct tp_pdns pd;
        char host[64], ip[32];

        curl_global_init(CURL_GLOBAL_DEFAULT);
        if (tp_pdns_start(&pd, "bench-key") != 0)
                return 1;
        o.api_url = pd.api_url;
        o.api_key = pd.api_key;
        o.create_zones = true;
        die_on(dns_client_new(&c, &o, &err), &err);
        /* warm up: the zone exists and is cached, every host has a first record */
        for (int h = 0; h < N_HOSTS; h++) {
                snprintf(host, sizeof(host), "app%d.bench.test", h);
                die_on(dns_record_upsert(c, ZONE, host, "10.0.0.1", 60, "slipway", NULL, &err),
                       &err);
        }
        for (int i = 0; i < N_UPSERTS; i++) {
                int64_t t0, t1, t2;

                snprintf(host, sizeof(host), "app%d.bench.test", i % N_HOSTS);
                snprintf(ip, sizeof(ip), "10.0.%d.%d", 1 + i / 250, 2 + i % 250);
                t0 = sw_mono_us();
                die_on(dns_record_upsert(c, ZONE, host, ip, 60, "slipway", NULL, &err), &err);
                t1 = sw_mono_us();
                die_on(dns_wait_a(NULL, pd.server, host, ip, 5000, &err), &err);
                t2 = sw_mono_us();
                total[i] = t2 - t0;
                api[i] = t1 - t0;
                t0 = sw_mono_us();
                die_on(dns_record_upsert(c, ZONE, host, ip, 60, "slipway", NULL, &err), &err);
                same[i] = sw_mono_us() - t0;
                t0 = sw_mono_us();
                {
                        struct dns_answer a;
                        die_on(dns_query_a(&a, pd.server, host, 1000, &err), &err);
                }
                query[i] = sw_mono_us() - t0;
        }
        printf("dns_upsert_to_answer_p50: %.2f ms\n", pct_ms(total, N_UPSERTS, 0.50));
        printf("dns_upsert_to_answer_p99: %.2f ms\n", pct_ms(total, N_UPSERTS, 0.99));
        printf("dns_upsert_to_answer_max: %.2f ms\n", pct_ms(total, N_UPSERTS, 1.0));
        printf("dns_upsert_api_p50: %.2f ms\n", pct_ms(api, N_UPSERTS, 0.50));
        printf("dns_upsert_api_p99: %.2f ms\n", pct_ms(api, N_UPSERTS, 0.99));
        printf("dns_upsert_unchanged_p50: %.2f ms\n", pct_ms(same, N_UPSERTS, 0.50));
        printf("dns_udp_query_p50: %.3f ms\n", pct_ms(query, N_UPSERTS, 0.50));
        printf("dns_udp_query_p99: %.3f ms\n", pct_ms(query, N_UPSERTS, 0.99));
        dns_client_free(c);
        tp_pdns_release(&pd);
        curl_global_cleanup();
        t_done();
        return 0;
}
