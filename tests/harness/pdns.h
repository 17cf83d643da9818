/*
 * pdns.h - a real pdns_server for tests: gsqlite3 backend in a temporary
 * directory, DNS and HTTP API on free loopback ports, no outbound traffic
 * (security-poll-suffix is empty), stopped by PID.
 */
#ifndef SW_TEST_PDNS_H
#define SW_TEST_PDNS_H

#include <sys/types.h>

#include "dns/dns.h"

struct tp_pdns {
        pid_t pid;
        int dns_port;
        int api_port;
        char dir[256];    /* config, database, socket and log */
        char api_url[64]; /* "http://127.0.0.1:PORT/api/v1" */
        char server[32];  /* "127.0.0.1:PORT" (DNS) */
        char api_key[64];
        struct dns_pdns_setup setup; /* the files and argv, from dns_pdns_setup() */
};

/*
 * Start pdns_server under t_tmpdir() with `api_key`, prepared by
 * dns_pdns_setup() as `slipway serve` prepares its own, and wait until its API
 * and its DNS port answer. Returns 0, or -1 with the reason on stderr.
 */
int tp_pdns_start(struct tp_pdns *p, const char *api_key);
/* SIGTERM, then SIGKILL after 5 s; reaps it. Keeps the database. */
void tp_pdns_stop(struct tp_pdns *p);
/* Start it again on the same ports and database (after tp_pdns_stop). */
int tp_pdns_restart(struct tp_pdns *p);
/* Stop it and free what tp_pdns_start() allocated. */
void tp_pdns_release(struct tp_pdns *p);

#endif
