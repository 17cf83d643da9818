/*
 * wait.c - "does the host answer through nginx yet?", over HTTP with libcurl.
 *
 * The route step and the benchmark ask nginx's listen address directly with
 * the app's Host header, so no DNS is involved. Every attempt opens a new
 * connection: after a reload the old workers keep serving the connections
 * they have (for about 100 ms, until the master tells them to stop), and a
 * kept-alive probe would keep asking the old configuration.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "common/clock.h"
#include "common/mem.h"
#include "ingress/ingress_int.h"
#include "common/banned.h"

static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
        (void)p;
        (void)ctx;
        return size * n;
}

int ingress_wait_host(long *status_out, const struct ingress_probe *p, struct sw_err *err)
{
        int64_t timeout = p->timeout_ms > 0 ? p->timeout_ms : 30000;
        int64_t interval = p->interval_ms > 0 ? p->interval_ms : 20;
        int64_t deadline = sw_mono_ms() + timeout;
        struct curl_slist *headers = NULL;
        char *url = NULL, *host_header = NULL;
        char last[CURL_ERROR_SIZE + 64] = "no attempt";
        char curl_msg[CURL_ERROR_SIZE];
        CURL *c = NULL;
        int rc;

        if (!p->addr || !p->host)
                return sw_err_set(err, SW_EINVAL, "probe: address and host are required");
        if ((rc = ingress_valid_backend(p->addr, "probe address", err)) != 0)
                return rc;
        if ((rc = ingress_valid_host(p->host, "probe host", err)) != 0)
                return rc;
        if (p->path && (rc = ingress_valid_path(p->path, "probe path", err)) != 0)
                return rc;
        url = sw_xasprintf("http://%s%s", p->addr, p->path ? p->path : "/");
        host_header = sw_xasprintf("Host: %s", p->host);
        c = curl_easy_init();
        if (!c) {
                rc = sw_err_set(err, SW_EINTERNAL, "probe: curl_easy_init failed");
                goto out;
        }
        headers = curl_slist_append(NULL, host_header);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_PROXY, "");
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_msg);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
        curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);

        for (;;) {
                int64_t left = deadline - sw_mono_ms();
                long status = 0;
                CURLcode cc;

                curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                                 (long)(left > 5000 ? 5000
                                        : left > 1  ? left
                                                    : 1));
                curl_msg[0] = '\0';
                cc = curl_easy_perform(c);
                if (cc == CURLE_OK) {
                        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
                        if (p->expect_status ? status == p->expect_status : status < 500) {
                                if (status_out)
                                        *status_out = status;
                                rc = 0;
                                goto out;
                        }
                        snprintf(last, sizeof(last), "status %ld", status);
                } else {
                        snprintf(last, sizeof(last), "%s",
                                 curl_msg[0] ? curl_msg : curl_easy_strerror(cc));
                }
                if (sw_mono_ms() + interval > deadline) {
                        rc = sw_err_set(err, SW_ETIMEDOUT,
                                        "host '%s' did not answer%s through %s within %lld ms "
                                        "(last: %s)",
                                        p->host, p->expect_status ? " as expected" : "", p->addr,
                                        (long long)timeout, last);
                        goto out;
                }
                sw_sleep_ms(interval);
        }
out:
        curl_slist_free_all(headers);
        if (c)
                curl_easy_cleanup(c);
        free(url);
        free(host_header);
        return rc;
}
