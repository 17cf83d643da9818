/*
 * resolve.c - ask a DNS server for A records over UDP and wait for an answer.
 *
 * This is how slipway checks that a record it wrote through the API is what
 * the server really answers: the same question a resolver would ask, sent
 * straight to the authoritative server (any port, not only 53). Each query
 * has a random id and its own connected socket, so only that server's reply
 * to that question is accepted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "dns/dns.h"
#include "dns/dns_int.h"
#include "common/banned.h"

#define REPLY_MAX 4096
#define RETRY_MIN_MS 1
#define RETRY_MAX_MS 50
#define TRY_TIMEOUT_MS 500

/* "a.b.c.d[:port]" -> address; port 53 when omitted. */
static int server_parse(struct sockaddr_in *sa, const char *server, struct sw_err *err)
{
        char host[INET_ADDRSTRLEN], shown[80];
        const char *colon = strchr(server, ':');
        size_t hl = colon ? (size_t)(colon - server) : strlen(server);
        long port = 53;

        dns__quote(shown, sizeof(shown), server);
        memset(sa, 0, sizeof(*sa));
        sa->sin_family = AF_INET;
        if (colon) {
                char *end = NULL;
                errno = 0;
                port = strtol(colon + 1, &end, 10);
                if (errno || end == colon + 1 || *end || port < 1 || port > 65535)
                        return sw_err_set(err, SW_EINVAL, "dns server '%s': bad port", shown);
        }
        if (hl == 0 || hl >= sizeof(host))
                return sw_err_set(err, SW_EINVAL,
                                  "dns server '%s': expected an IPv4 address and port "
                                  "(127.0.0.1:5353)",
                                  shown);
        memcpy(host, server, hl);
        host[hl] = '\0';
        if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
                return sw_err_set(err, SW_EINVAL,
                                  "dns server '%s': expected an IPv4 address and port "
                                  "(127.0.0.1:5353)",
                                  shown);
        sa->sin_port = htons((uint16_t)port);
        return 0;
}

int dns_query_a(struct dns_answer *out, const char *server, const char *name, int64_t timeout_ms,
                struct sw_err *err)
{
        struct sockaddr_in sa;
        uint8_t q[DNS_QUERY_MAX_BYTES], reply[REPLY_MAX];
        size_t qlen = 0;
        uint16_t id = 0;
        int64_t deadline = sw_mono_ms() + timeout_ms;
        int fd = -1, rc;

        rc = server_parse(&sa, server, err);
        if (rc)
                return rc;
        if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id))
                id = (uint16_t)(sw_mono_us() ^ (uint64_t)getpid());
        rc = dns_wire_query(q, sizeof(q), &qlen, id, name, DNS_TYPE_A, err);
        if (rc)
                return rc;
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return sw_err_errno(err, SW_EIO, errno, "dns query: socket");
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
                rc = sw_err_errno(err, SW_EUNAVAIL, errno, "dns query to %s", server);
                goto out;
        }
        if (send(fd, q, qlen, 0) != (ssize_t)qlen) {
                rc = sw_err_errno(err, SW_EUNAVAIL, errno, "dns query to %s", server);
                goto out;
        }
        for (;;) {
                struct pollfd pfd = {fd, POLLIN, 0};
                int64_t left = deadline - sw_mono_ms();
                ssize_t n;

                if (left <= 0) {
                        rc = sw_err_set(err, SW_ETIMEDOUT,
                                        "dns server %s did not answer within %lld ms", server,
                                        (long long)timeout_ms);
                        goto out;
                }
                if (poll(&pfd, 1, (int)left) < 0) {
                        if (errno == EINTR)
                                continue;
                        rc = sw_err_errno(err, SW_EIO, errno, "dns query: poll");
                        goto out;
                }
                if (!(pfd.revents & (POLLIN | POLLERR)))
                        continue;
                n = recv(fd, reply, sizeof(reply), 0);
                if (n < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        /* ECONNREFUSED: an ICMP port unreachable, nothing listens there. */
                        rc = sw_err_errno(err, SW_EUNAVAIL, errno, "dns server %s", server);
                        goto out;
                }
                /* A reply that is not to our question is ignored, as a resolver does. */
                if (dns_wire_answer(out, reply, (size_t)n, id, name, NULL) == 0) {
                        rc = 0;
                        goto out;
                }
        }
out:
        close(fd);
        return rc;
}

/* "1.2.3.4, 5.6.7.8", "no A record", "NXDOMAIN" ... for messages. */
static void answer_text(char *out, size_t size, const struct dns_answer *a)
{
        size_t off = 0;

        if (a->rcode == DNS_RCODE_NXDOMAIN) {
                snprintf(out, size, "NXDOMAIN (no such name)");
                return;
        }
        if (a->rcode != DNS_RCODE_NOERROR) {
                snprintf(out, size, "rcode %d", a->rcode);
                return;
        }
        if (a->naddrs == 0) {
                snprintf(out, size, "no A record");
                return;
        }
        out[0] = '\0';
        for (size_t i = 0; i < a->naddrs && off + 1 < size; i++)
                off += (size_t)snprintf(out + off, size - off, "%s%u.%u.%u.%u", i ? ", " : "",
                                        a->addrs[i][0], a->addrs[i][1], a->addrs[i][2],
                                        a->addrs[i][3]);
}

int dns_wait_a(int64_t *elapsed_ms_out, const char *server, const char *name, const char *ip,
               int64_t timeout_ms, struct sw_err *err)
{
        struct in_addr want;
        struct dns_answer a;
        struct sw_err last = SW_ERR_INIT;
        int64_t start = sw_mono_ms(), deadline = start + timeout_ms, pause = RETRY_MIN_MS;
        char seen[200] = "";
        int rc;

        if (inet_pton(AF_INET, ip, &want) != 1)
                return sw_err_set(err, SW_EINVAL, "expected ip '%s': not an IPv4 address", ip);
        for (;;) {
                int64_t left = deadline - sw_mono_ms();

                sw_err_clear(&last);
                rc = dns_query_a(&a, server, name, left < TRY_TIMEOUT_MS ? left : TRY_TIMEOUT_MS,
                                 &last);
                if (rc == 0) {
                        if (a.rcode == DNS_RCODE_NOERROR && a.naddrs == 1 &&
                            memcmp(a.addrs[0], &want.s_addr, 4) == 0) {
                                if (elapsed_ms_out)
                                        *elapsed_ms_out = sw_mono_ms() - start;
                                return 0;
                        }
                        answer_text(seen, sizeof(seen), &a);
                } else if (rc == SW_EINVAL) {
                        return sw_err_set(err, rc, "%s", last.msg);
                }
                if (sw_mono_ms() + pause >= deadline)
                        break;
                sw_sleep_ms(pause);
                pause = pause * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : pause * 2;
        }
        if (rc == 0 || seen[0])
                return sw_err_set(err, SW_ETIMEDOUT,
                                  "dns server %s still answers '%s' for '%s' after %lld ms, "
                                  "expected '%s'",
                                  server, seen, name, (long long)timeout_ms, ip);
        return sw_err_set(err, SW_ETIMEDOUT, "no answer for '%s' within %lld ms: %.400s", name,
                          (long long)timeout_ms, last.msg);
}
