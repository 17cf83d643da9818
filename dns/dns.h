/*
 * dns.h - PowerDNS HTTP API client, owned A records, and answers checked over
 * the DNS protocol.
 *
 * Three layers, each usable alone:
 *
 *  - the API client (dns/client.c): zones found by name and created, rrsets
 *    read, replaced and deleted through the PowerDNS Authoritative HTTP API.
 *    Zone ids are opaque: they come from the API and go back into URLs as
 *    they are ("0=2F26.2.0.192.in-addr.arpa."), never rebuilt from a name.
 *  - owned records (dns/record.c, dns/owner.c): an A record at the app's
 *    host and, next to it, an ownership TXT record in external-dns's format
 *    ("heritage=external-dns,external-dns/owner=<id>,external-dns/resource=
 *    ingress/<ns>/<name>"). The TXT record lives at the name external-dns's
 *    "new format" registry uses for A records: the host's first label
 *    prefixed with "a-" (shop.apps.example. -> a-shop.apps.example.), so it
 *    never collides with a TXT or CNAME the app itself publishes, and an
 *    external-dns with the same owner id recognises slipway's records (and
 *    slipway recognises, and leaves alone, those of other owners). A record
 *    is changed or deleted only when that TXT carries our owner id.
 *    dns_record_list() finds what an owner published, so records an app left
 *    behind (it moved to another host) are removed rather than left stale.
 *  - the DNS protocol (dns/wire.c, dns/resolve.c): a minimal query encoder,
 *    answer decoder and UDP client for A records, used to see what the server
 *    really answers after an upsert.
 *  - a local pdns_server's files (dns/pdns.c), for tests and `slipway serve`.
 *
 * Ownership: dns_client_new() returns a client owned by the caller; free it
 * with dns_client_free() (accepts NULL). Strings passed in are copied; the
 * API key is wiped when the client is freed and never appears in an error
 * message or a log line. Results (zones, rrsets, records) are owned by the
 * caller and freed with their _free function (each accepts NULL).
 * Errors: 0 or a negative SW_E* code with `err` filled. Connection failures,
 * timeouts and 5xx answers are transient (SW_EUNAVAIL, SW_ETIMEDOUT); 4xx
 * answers are permanent: 401/403 SW_EAUTH, 404 SW_ENOTFOUND, 409 SW_EEXIST,
 * 400/422 SW_EINVAL (with PowerDNS's message, JSON or plain text alike).
 * Threads: one thread at a time per client; the wire and resolver functions
 * keep no state and are safe from any thread.
 */
#ifndef SW_DNS_H
#define SW_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct dns_client;
struct sw_config;

struct dns_options {
        const char *api_url;   /* "http://127.0.0.1:8081/api/v1" */
        const char *api_key;   /* sent as X-API-Key */
        const char *server_id; /* NULL means "localhost" */
        uint32_t timeout_ms;   /* per HTTP request; 0 means 5000 */
        bool create_zones;     /* dns_record_upsert() creates a missing zone */
};

#define DNS_OPTIONS_INIT                                                                           \
        {                                                                                          \
                NULL, NULL, NULL, 0, false                                                         \
        }

/* Limits on what the API may hand back, and on what slipway writes. */
#define DNS_RESPONSE_MAX_BYTES ((size_t)16 << 20)
#define DNS_OWNER_MAX 63
#define DNS_RESOURCE_MAX 253
#define DNS_TTL_MAX 604800

/*
 * A client for the API at opts->api_url. Checks the options (an http(s) URL,
 * a non-empty key, a plain server id) but sends nothing. SW_EINVAL on bad
 * options.
 */
int dns_client_new(struct dns_client **out, const struct dns_options *opts, struct sw_err *err);
void dns_client_free(struct dns_client *c);

/*
 * A client from the SLIPWAY_PDNS_* settings. SW_EINVAL when SLIPWAY_PDNS_URL
 * or SLIPWAY_PDNS_API_KEY is unset.
 */
int dns_client_from_config(struct dns_client **out, const struct sw_config *cfg,
                           struct sw_err *err);

/* --- zones --- */

struct dns_zone {
        char *id;   /* opaque, as the API returned it */
        char *name; /* canonical: "example.org." */
        char *kind; /* "Native", "Master", ... */
};

/*
 * The zone named `zone` (with or without the trailing dot). SW_ENOTFOUND when
 * the server has no such zone. Read-only.
 */
int dns_zone_find(struct dns_zone **out, struct dns_client *c, const char *zone,
                  struct sw_err *err);
/*
 * Create `zone` as a Native zone without nameservers. SW_EEXIST when it
 * already exists (409).
 */
int dns_zone_create(struct dns_zone **out, struct dns_client *c, const char *zone,
                    struct sw_err *err);
/* Find `zone`, creating it when missing and `create` is set; idempotent. */
int dns_zone_ensure(struct dns_zone **out, struct dns_client *c, const char *zone, bool create,
                    struct sw_err *err);
/* Delete the zone and all its records. SW_ENOTFOUND when it is gone already. */
int dns_zone_delete(struct dns_client *c, const struct dns_zone *z, struct sw_err *err);
void dns_zone_free(struct dns_zone *z);

/* --- rrsets --- */

struct dns_rrset {
        char *name; /* canonical */
        char *type; /* "A", "TXT", ... */
        uint32_t ttl;
        size_t nrecords;
        char **records; /* content in presentation format; TXT with its quotes */
};

/* One change of a PATCH: REPLACE the rrset with `records`, or DELETE it. */
struct dns_change {
        const char *name; /* canonical */
        const char *type;
        bool delete_rrset;
        uint32_t ttl;               /* REPLACE only */
        const char *const *records; /* REPLACE only */
        size_t nrecords;            /* REPLACE only */
};

/*
 * The rrsets of `z` at `name` (canonical; NULL for the whole zone), all
 * types or only `type` when not NULL. *n_out is 0 when there are none (not
 * an error). Read-only.
 */
int dns_rrsets_get(struct dns_rrset **out, size_t *n_out, struct dns_client *c,
                   const struct dns_zone *z, const char *name, const char *type,
                   struct sw_err *err);
void dns_rrsets_free(struct dns_rrset *rrsets, size_t n);
/*
 * Apply `changes` in one PATCH, which PowerDNS applies in one transaction:
 * all or nothing. REPLACE and DELETE are idempotent (deleting an absent
 * rrset succeeds).
 */
int dns_rrsets_patch(struct dns_client *c, const struct dns_zone *z,
                     const struct dns_change *changes, size_t n, struct sw_err *err);

/* --- names and ownership records (pure functions, no I/O) --- */

/*
 * The canonical form of `name` ("shop.example.org.") in *out (caller frees):
 * lower-case RFC 1123 labels only, at most 253 characters, no spaces or
 * control characters (the message never echoes them raw). `what` names the
 * value in messages ("host"). SW_EINVAL otherwise.
 */
int dns_name_canonical(char **out, const char *name, const char *what, struct sw_err *err);
/*
 * Check that canonical `fqdn` can be published in canonical `zone`: strictly
 * below the zone apex, and with a first label short enough for its ownership
 * TXT name. SW_EINVAL with a message saying why not.
 */
int dns_name_in_zone(const char *fqdn, const char *zone, struct sw_err *err);
/* The ownership TXT name of canonical `fqdn`: "a-" + fqdn. The caller frees. */
char *dns_owner_txt_name(const char *fqdn);

/* What an ownership TXT record says. */
struct dns_owner {
        char owner[DNS_OWNER_MAX + 1];       /* external-dns/owner */
        char resource[DNS_RESOURCE_MAX + 1]; /* external-dns/resource, "" when absent */
};

/* Checks an owner id: 1-63 of [A-Za-z0-9._-]. SW_EINVAL otherwise. */
int dns_owner_id_check(const char *owner, struct sw_err *err);
/* Checks a resource ("ingress/<ns>/<name>"): 1-253 of [A-Za-z0-9._/-]. */
int dns_owner_resource_check(const char *resource, struct sw_err *err);
/*
 * The TXT content for `owner` and `resource` (may be NULL: no resource
 * field), with the surrounding quotes PowerDNS needs. The caller frees.
 * SW_EINVAL when either is malformed.
 */
int dns_owner_txt_format(char **out, const char *owner, const char *resource, struct sw_err *err);
/*
 * Parse TXT content in presentation format (one or more quoted strings,
 * with \" \\ and \DDD escapes). Returns 0 with *out filled for an
 * external-dns heritage record, SW_ENOTFOUND for any other TXT, SW_EINVAL
 * for content that is not valid TXT presentation format.
 */
int dns_owner_txt_parse(struct dns_owner *out, const char *content, struct sw_err *err);

/* --- owned A records --- */

struct dns_record {
        char *fqdn;           /* canonical */
        size_t nips;          /* A records at fqdn */
        char **ips;           /* dotted quads */
        uint32_t ttl;         /* of the A rrset, 0 when none */
        bool has_owner;       /* an external-dns ownership TXT was found */
        struct dns_owner own; /* when has_owner */
        bool legacy_owner;    /* the ownership came from a TXT at fqdn itself */
        char *other_type;     /* a CNAME (or other conflicting type) at fqdn, or NULL */
};

/*
 * What the server holds at `fqdn` in `zone`: its A records and their owner.
 * SW_ENOTFOUND when there is neither an A record nor an ownership record,
 * or when the zone does not exist. Read-only.
 */
int dns_record_get(struct dns_record **out, struct dns_client *c, const char *zone,
                   const char *fqdn, struct sw_err *err);
void dns_record_free(struct dns_record *r);

/*
 * Every host in `zone` whose ownership record (at "a-<host>") names `owner`
 * (any owner when NULL), with its A records: what slipway published, found
 * again, so that records of apps that moved or went away can be removed
 * instead of left stale. Reads the whole zone. An absent zone gives an empty
 * list. The caller frees with dns_record_list_free().
 */
int dns_record_list(struct dns_record ***out, size_t *n_out, struct dns_client *c, const char *zone,
                    const char *owner, struct sw_err *err);
void dns_record_list_free(struct dns_record **list, size_t n);

/*
 * Make `fqdn` (in `zone`) answer `ip` (an IPv4 dotted quad) with `ttl`
 * seconds, owned by `owner` for `resource` ("ingress/<ns>/<name>"; NULL
 * keeps the resource of an existing record of ours). The A record and its
 * ownership TXT are written in one PATCH. Everything is validated before any
 * request: SW_EINVAL for a bad name, IP, TTL, owner or resource.
 * Refuses with SW_ECONFLICT, and changes nothing, when the name holds records
 * that are not ours: an A (or CNAME) without an ownership TXT ("unowned"), an
 * ownership TXT of another owner (named in the message), or ours for another
 * resource. Creates the zone when missing if the client allows it, else
 * SW_ENOTFOUND. Idempotent: when the records are already as asked, nothing
 * is written.
 */
int dns_record_upsert(struct dns_client *c, const char *zone, const char *fqdn, const char *ip,
                      uint32_t ttl, const char *owner, const char *resource, struct sw_err *err);

/*
 * Delete the A record at `fqdn` and its ownership TXT, only when the TXT
 * carries `owner` (and `resource`, when not NULL). Returns 0 when they were
 * deleted or were not there (idempotent; also when the zone is missing);
 * SW_ECONFLICT, deleting nothing, when the name holds records that are not
 * ours.
 */
int dns_record_delete(struct dns_client *c, const char *zone, const char *fqdn, const char *owner,
                      const char *resource, struct sw_err *err);

/* --- the DNS protocol --- */

#define DNS_TYPE_A 1
#define DNS_TYPE_TXT 16
#define DNS_CLASS_IN 1
#define DNS_RCODE_NOERROR 0
#define DNS_RCODE_SERVFAIL 2
#define DNS_RCODE_NXDOMAIN 3
#define DNS_RCODE_REFUSED 5
#define DNS_ANSWER_MAX_ADDRS 16
/* A query for one name is at most 12 + 255 + 4 bytes. */
#define DNS_QUERY_MAX_BYTES 271

struct dns_answer {
        int rcode;          /* DNS_RCODE_* */
        bool authoritative; /* AA bit */
        bool truncated;     /* TC bit: the answer did not fit in UDP */
        size_t naddrs;      /* A records for the queried name, at most DNS_ANSWER_MAX_ADDRS */
        uint8_t addrs[DNS_ANSWER_MAX_ADDRS][4];
        uint32_t ttls[DNS_ANSWER_MAX_ADDRS];
};

/*
 * Encode a query (one question, class IN, no recursion wanted) for `name`
 * (with or without the trailing dot) and `qtype` into buf[0..cap).
 * SW_EINVAL for a name that cannot be encoded, SW_ETOOBIG when cap is short.
 */
int dns_wire_query(uint8_t *buf, size_t cap, size_t *len_out, uint16_t id, const char *name,
                   uint16_t qtype, struct sw_err *err);
/*
 * Decode a response to the query `id` for `name` and type A: header flags,
 * rcode and the A records owned by `name` (names compared without regard to
 * case; compression pointers followed with a hop limit). SW_EPROTO for a
 * message that is not a response to that question or is malformed.
 */
int dns_wire_answer(struct dns_answer *out, const uint8_t *msg, size_t len, uint16_t id,
                    const char *name, struct sw_err *err);

/*
 * Ask the DNS server at `server` ("127.0.0.1:5353"; port 53 when omitted)
 * for the A records of `name` over UDP, waiting at most `timeout_ms`.
 * SW_ETIMEDOUT without an answer, SW_EUNAVAIL when nothing listens there.
 */
int dns_query_a(struct dns_answer *out, const char *server, const char *name, int64_t timeout_ms,
                struct sw_err *err);
/*
 * Ask repeatedly until the answer for `name` is exactly `ip`, for at most
 * `timeout_ms`. *elapsed_ms_out (may be NULL) gets the time it took.
 * SW_ETIMEDOUT (transient) saying what was last answered.
 */
int dns_wait_a(int64_t *elapsed_ms_out, const char *server, const char *name, const char *ip,
               int64_t timeout_ms, struct sw_err *err);

/* --- a local pdns_server (the tests' and `slipway serve`'s) --- */

#define DNS_PDNS_SERVER "/usr/sbin/pdns_server"
#define DNS_PDNS_SCHEMA "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql"

struct dns_pdns_options {
        const char *dir;         /* pdns.conf, pdns.db and the control socket; made 0700 */
        const char *dns_listen;  /* "127.0.0.1:5353" (UDP and TCP) */
        const char *api_listen;  /* "127.0.0.1:8081" (HTTP API) */
        const char *api_key;     /* written into pdns.conf, which is made 0600 */
        const char *schema_path; /* NULL means DNS_PDNS_SCHEMA */
};

struct dns_pdns_setup {
        char *db_path;
        char *api_url; /* "http://127.0.0.1:8081/api/v1" */
        char *config_dir_arg;
        const char *argv[6]; /* pdns_server in the foreground, NULL-terminated */
};

/*
 * Prepare opts->dir for a pdns_server with the gsqlite3 backend on the given
 * loopback addresses: the database from PowerDNS's schema (kept when it
 * exists: records survive restarts) and pdns.conf (rewritten each time),
 * without outbound security polling. *out gets the API URL and the argv to
 * start it with (--daemon=no --guardian=no --disable-syslog); release it
 * with dns_pdns_setup_release(). Idempotent. SW_EINVAL for a bad address or
 * key, SW_ENOTFOUND when the schema file (pdns-backend-sqlite3) is missing.
 */
int dns_pdns_setup(struct dns_pdns_setup *out, const struct dns_pdns_options *opts,
                   struct sw_err *err);
void dns_pdns_setup_release(struct dns_pdns_setup *s);

/* --- command line --- */

/* `slipway dns upsert|delete|get ...` (engine/cli.h conventions). */
int dns_cmd(int argc, char **argv, const struct sw_config *cfg);

#endif /* SW_DNS_H */
