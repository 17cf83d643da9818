/*
 * test_pdns.c - the PowerDNS client and owned records against a real
 * pdns_server (gsqlite3) on loopback: zones found and created, upserts seen
 * by `dig` and by our own resolver, idempotence, IP changes, records of
 * other owners and unowned records left alone with a reason, deletes that
 * remove only ours, names refused before any request, a wrong API key, a
 * failing backend (500, transient), and a stopped server (transient) that
 * works again once restarted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include <curl/curl.h>
#include <sqlite3.h>

#include "common/fs.h"
#include "common/mem.h"
#include "dns/dns.h"
#include "tests/harness/pdns.h"
#include "tests/harness/proc.h"
#include "tests/harness/t.h"

#define KEY "test-key-5e3a"
#define ZONE "apps.test."

static struct tp_pdns pd;

static struct dns_client *client_with(const char *key, bool create)
{
        struct dns_options o = DNS_OPTIONS_INIT;
        struct dns_client *c = NULL;
        struct sw_err err = SW_ERR_INIT;

        o.api_url = pd.api_url;
        o.api_key = key;
        o.create_zones = create;
        o.timeout_ms = 3000;
        CHECK_OK(dns_client_new(&c, &o, &err), &err);
        return c;
}

/* `dig @127.0.0.1 -p PORT name TYPE +short`, trimmed. */
static char *dig(const char *name, const char *type)
{
        char port[16], at[] = "@127.0.0.1";
        char *out = NULL;
        char *argv[] = {"/usr/bin/dig", at,       "-p",      port,       (char *)name,
                        (char *)type,   "+short", "+time=2", "+tries=1", NULL};
        size_t n;

        snprintf(port, sizeof(port), "%d", pd.dns_port);
        CHECK_INT(t_run_capture(&out, argv, NULL, 10000), 0);
        n = strlen(out);
        while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
                out[--n] = '\0';
        return out;
}

/* Write records straight through the API, as another tool or a person would. */
static void foreign_write(const char *name, const char *type, const char *content)
{
        struct dns_client *c = client_with(KEY, false);
        struct dns_zone *z = NULL;
        struct sw_err err = SW_ERR_INIT;
        const char *recs[] = {content};
        struct dns_change ch = {name, type, false, 300, recs, 1};

        CHECK_OK(dns_zone_find(&z, c, ZONE, &err), &err);
        if (z)
                CHECK_OK(dns_rrsets_patch(c, z, &ch, 1, &err), &err);
        dns_zone_free(z);
        dns_client_free(c);
}

static void test_zone_create_find(void)
{
        struct dns_client *c = client_with(KEY, true);
        struct dns_zone *z = NULL, *z2 = NULL;
        struct sw_err err = SW_ERR_INIT;

        CHECK_INT(dns_zone_find(&z, c, ZONE, &err), SW_ENOTFOUND);
        CHECK(strstr(err.msg, "zone 'apps.test.' does not exist") != NULL);
        sw_err_clear(&err);
        CHECK_OK(dns_zone_ensure(&z, c, "apps.test", true, &err), &err);
        CHECK_STR(z ? z->name : NULL, ZONE);
        CHECK_STR(z ? z->id : NULL, ZONE);
        CHECK_OK(dns_zone_find(&z2, c, ZONE, &err), &err);
        CHECK_STR(z2 ? z2->id : NULL, z ? z->id : "");
        dns_zone_free(z2);
        z2 = NULL;
        /* creating it again is a 409 with a plain-text body */
        CHECK_INT(dns_zone_create(&z2, c, ZONE, &err), SW_EEXIST);
        CHECK(strstr(err.msg, "already exists") && strstr(err.msg, "Conflict"));
        sw_err_clear(&err);
        /* ensure is idempotent */
        CHECK_OK(dns_zone_ensure(&z2, c, ZONE, true, &err), &err);
        dns_zone_free(z2);
        z2 = NULL;
        /* a name pdns refuses (422, JSON error body) */
        {
                const char *recs[] = {"not-an-ip"};
                struct dns_change ch = {"bad.apps.test.", "A", false, 60, recs, 1};
                CHECK_INT(dns_rrsets_patch(c, z, &ch, 1, &err), SW_EINVAL);
                CHECK(strstr(err.msg, "powerdns refused it (422)") && strstr(err.msg, "not-an-ip"));
                sw_err_clear(&err);
        }
        dns_zone_free(z);
        dns_client_free(c);
}

/*
 * A classless reverse zone ("0/26.2.0.192.in-addr.arpa.", RFC 2317) has the
 * id "0=2F26.2.0.192.in-addr.arpa.": the client must use that id as given.
 * slipway itself only publishes host names, so the zone is made with curl.
 */
static void test_zone_id_escaped(void)
{
        char url[128], hdr[64], *out = NULL;
        char *argv[] = {"/usr/bin/curl",
                        "-s",
                        "-X",
                        "POST",
                        "-H",
                        hdr,
                        url,
                        "-d",
                        "{\"name\":\"0/26.2.0.192.in-addr.arpa.\",\"kind\":\"Native\","
                        "\"nameservers\":[]}",
                        NULL};
        struct dns_client *c = client_with(KEY, false);
        struct dns_zone z = {"0=2F26.2.0.192.in-addr.arpa.", "0/26.2.0.192.in-addr.arpa.",
                             "Native"};
        const char *recs[] = {"web.apps.test."};
        struct dns_change ch = {"10.0/26.2.0.192.in-addr.arpa.", "PTR", false, 60, recs, 1};
        struct dns_rrset *rs = NULL;
        struct sw_err err = SW_ERR_INIT;
        size_t n = 0;

        snprintf(url, sizeof(url), "%s/servers/localhost/zones", pd.api_url);
        snprintf(hdr, sizeof(hdr), "X-API-Key: %s", KEY);
        CHECK_INT(t_run_capture(&out, argv, NULL, 10000), 0);
        CHECK(strstr(out, "\"id\": \"0=2F26.2.0.192.in-addr.arpa.\"") != NULL);
        free(out);
        CHECK_OK(dns_rrsets_patch(c, &z, &ch, 1, &err), &err);
        CHECK_OK(dns_rrsets_get(&rs, &n, c, &z, "10.0/26.2.0.192.in-addr.arpa.", "PTR", &err),
                 &err);
        CHECK_INT(n, 1);
        if (n == 1) {
                CHECK_STR(rs[0].type, "PTR");
                CHECK_INT(rs[0].nrecords, 1);
                CHECK_STR(rs[0].records[0], "web.apps.test.");
        }
        dns_rrsets_free(rs, n);
        CHECK_OK(dns_zone_delete(c, &z, &err), &err);
        CHECK_INT(dns_zone_delete(c, &z, &err), SW_ENOTFOUND);
        CHECK(strstr(err.msg, "Not Found") != NULL);
        dns_client_free(c);
}

static void test_upsert_dig_and_resolver(void)
{
        struct dns_client *c = client_with(KEY, true);
        struct sw_err err = SW_ERR_INIT;
        struct dns_answer a;
        struct dns_record *r = NULL;
        int64_t took = -1;
        char *out;

        CHECK_OK(dns_record_upsert(c, ZONE, "shop.default.apps.test", "127.0.0.1", 60, "slipway",
                                   "ingress/default/shop", &err),
                 &err);
        out = dig("shop.default.apps.test", "A");
        CHECK_STR(out, "127.0.0.1");
        free(out);
        out = dig("a-shop.default.apps.test", "TXT");
        CHECK_STR(out, "\"heritage=external-dns,external-dns/owner=slipway,"
                       "external-dns/resource=ingress/default/shop\"");
        free(out);
        CHECK_OK(dns_query_a(&a, pd.server, "shop.default.apps.test.", 2000, &err), &err);
        CHECK_INT(a.rcode, DNS_RCODE_NOERROR);
        CHECK(a.authoritative);
        CHECK_INT(a.naddrs, 1);
        CHECK(memcmp(a.addrs[0], "\x7f\x00\x00\x01", 4) == 0);
        CHECK_INT(a.ttls[0], 60);
        CHECK_OK(dns_wait_a(&took, pd.server, "shop.default.apps.test", "127.0.0.1", 2000, &err),
                 &err);
        CHECK(took >= 0 && took < 2000);
        CHECK_OK(dns_record_get(&r, c, ZONE, "shop.default.apps.test", &err), &err);
        if (r) {
                CHECK_INT(r->nips, 1);
                CHECK_STR(r->ips[0], "127.0.0.1");
                CHECK(r->has_owner && !r->legacy_owner);
                CHECK_STR(r->own.owner, "slipway");
                CHECK_STR(r->own.resource, "ingress/default/shop");
        }
        dns_record_free(r);
        /* a name that does not exist: NXDOMAIN from our resolver, a clear timeout from wait */
        CHECK_OK(dns_query_a(&a, pd.server, "nope.apps.test", 2000, &err), &err);
        CHECK_INT(a.rcode, DNS_RCODE_NXDOMAIN);
        CHECK_INT(dns_wait_a(NULL, pd.server, "nope.apps.test", "127.0.0.1", 100, &err),
                  SW_ETIMEDOUT);
        CHECK(strstr(err.msg, "NXDOMAIN") != NULL);
        dns_client_free(c);
}

/* The serial moves only when something was written. */
static char *zone_serial(void)
{
        return dig(ZONE, "SOA");
}

static void test_idempotent_and_ip_change(void)
{
        struct dns_client *c = client_with(KEY, true);
        struct sw_err err = SW_ERR_INIT;
        char *before, *after, *out;

        CHECK_OK(dns_record_upsert(c, ZONE, "web.apps.test.", "127.0.0.2", 60, "slipway",
                                   "ingress/default/web", &err),
                 &err);
        before = zone_serial();
        CHECK_OK(dns_record_upsert(c, ZONE, "web.apps.test.", "127.0.0.2", 60, "slipway",
                                   "ingress/default/web", &err),
                 &err);
        /* NULL resource keeps the existing one */
        CHECK_OK(dns_record_upsert(c, ZONE, "web.apps.test.", "127.0.0.2", 60, "slipway", NULL,
                                   &err),
                 &err);
        after = zone_serial();
        CHECK_STR(after, before);
        free(before);
        free(after);

        CHECK_OK(dns_record_upsert(c, ZONE, "web.apps.test.", "127.0.0.3", 60, "slipway",
                                   "ingress/default/web", &err),
                 &err);
        CHECK_OK(dns_wait_a(NULL, pd.server, "web.apps.test", "127.0.0.3", 3000, &err), &err);
        out = dig("web.apps.test", "A");
        CHECK_STR(out, "127.0.0.3");
        free(out);
        out = dig("a-web.apps.test", "TXT");
        CHECK(strstr(out, "external-dns/resource=ingress/default/web") != NULL);
        free(out);

        /* the same owner, another app: refused, the first app keeps its record */
        CHECK_INT(dns_record_upsert(c, ZONE, "web.apps.test.", "127.0.0.9", 60, "slipway",
                                    "ingress/other/web", &err),
                  SW_ECONFLICT);
        CHECK(strstr(err.msg, "already published") && strstr(err.msg, "ingress/default/web"));
        sw_err_clear(&err);
        out = dig("web.apps.test", "A");
        CHECK_STR(out, "127.0.0.3");
        free(out);
        dns_client_free(c);
}

static void test_foreign_records_left_alone(void)
{
        struct dns_client *c = client_with(KEY, true);
        struct sw_err err = SW_ERR_INIT;
        struct dns_record *r = NULL;
        char *out;

        /* an A record someone created by hand, without an ownership record */
        foreign_write("mail.apps.test.", "A", "192.0.2.25");
        CHECK_INT(dns_record_upsert(c, ZONE, "mail.apps.test", "127.0.0.1", 60, "slipway",
                                    "ingress/default/mail", &err),
                  SW_ECONFLICT);
        CHECK(strstr(err.msg, "192.0.2.25") && strstr(err.msg, "nobody owns") &&
              strstr(err.msg, "a-mail.apps.test."));
        printf("# unowned: %s\n", err.msg);
        sw_err_clear(&err);
        CHECK_INT(dns_record_delete(c, ZONE, "mail.apps.test", "slipway", NULL, &err),
                  SW_ECONFLICT);
        sw_err_clear(&err);
        out = dig("mail.apps.test", "A");
        CHECK_STR(out, "192.0.2.25");
        free(out);
        CHECK_OK(dns_record_get(&r, c, ZONE, "mail.apps.test", &err), &err);
        CHECK(r && !r->has_owner && r->nips == 1);
        dns_record_free(r);
        r = NULL;

        /* a record of another external-dns owner */
        foreign_write("api.apps.test.", "A", "192.0.2.30");
        foreign_write("a-api.apps.test.", "TXT",
                      "\"heritage=external-dns,external-dns/owner=cluster-b,"
                      "external-dns/resource=ingress/prod/api\"");
        CHECK_INT(dns_record_upsert(c, ZONE, "api.apps.test", "127.0.0.1", 60, "slipway",
                                    "ingress/default/api", &err),
                  SW_ECONFLICT);
        CHECK(strstr(err.msg, "owned by 'cluster-b'") && strstr(err.msg, "ingress/prod/api") &&
              strstr(err.msg, "left alone"));
        printf("# other owner: %s\n", err.msg);
        sw_err_clear(&err);
        CHECK_INT(dns_record_delete(c, ZONE, "api.apps.test", "slipway", NULL, &err), SW_ECONFLICT);
        CHECK(strstr(err.msg, "cluster-b") != NULL);
        sw_err_clear(&err);
        out = dig("api.apps.test", "A");
        CHECK_STR(out, "192.0.2.30");
        free(out);

        /* another owner's claim on a name without an A yet also blocks us */
        foreign_write("a-soon.apps.test.", "TXT",
                      "\"heritage=external-dns,external-dns/owner=cluster-b\"");
        CHECK_INT(dns_record_upsert(c, ZONE, "soon.apps.test", "127.0.0.1", 60, "slipway", NULL,
                                    &err),
                  SW_ECONFLICT);
        sw_err_clear(&err);

        /* any other TXT at our ownership name (here an owner id too long to be one) */
        foreign_write("a-odd.apps.test.", "TXT",
                      "\"heritage=external-dns,external-dns/owner="
                      "0123456789012345678901234567890123456789012345678901234567890123456789\"");
        CHECK_INT(
                dns_record_upsert(c, ZONE, "odd.apps.test", "127.0.0.1", 60, "slipway", NULL, &err),
                SW_ECONFLICT);
        CHECK(strstr(err.msg, "holds a TXT record that is not an ownership record") != NULL);
        sw_err_clear(&err);
        out = dig("a-odd.apps.test", "TXT");
        CHECK(strstr(out, "0123456789") != NULL);
        free(out);

        /* a CNAME someone created */
        foreign_write("docs.apps.test.", "CNAME", "web.apps.test.");
        CHECK_INT(dns_record_upsert(c, ZONE, "docs.apps.test", "127.0.0.1", 60, "slipway", NULL,
                                    &err),
                  SW_ECONFLICT);
        CHECK(strstr(err.msg, "CNAME") != NULL);
        sw_err_clear(&err);

        /* the legacy external-dns place (TXT at the host) names the owner too */
        foreign_write("old.apps.test.", "A", "192.0.2.40");
        foreign_write("old.apps.test.", "TXT",
                      "\"heritage=external-dns,external-dns/owner=legacy-team\"");
        CHECK_INT(
                dns_record_upsert(c, ZONE, "old.apps.test", "127.0.0.1", 60, "slipway", NULL, &err),
                SW_ECONFLICT);
        CHECK(strstr(err.msg, "owned by 'legacy-team'") != NULL);
        sw_err_clear(&err);
        /* ... even when it names our own owner id: ownership lives at a-<host> only */
        foreign_write("old2.apps.test.", "A", "192.0.2.41");
        foreign_write("old2.apps.test.", "TXT",
                      "\"heritage=external-dns,external-dns/owner=slipway\"");
        CHECK_INT(dns_record_upsert(c, ZONE, "old2.apps.test", "127.0.0.1", 60, "slipway", NULL,
                                    &err),
                  SW_ECONFLICT);
        CHECK(strstr(err.msg, "legacy TXT record") != NULL);
        printf("# legacy: %s\n", err.msg);
        sw_err_clear(&err);
        dns_client_free(c);
}

static void test_delete_only_ours(void)
{
        struct dns_client *c = client_with(KEY, true);
        struct sw_err err = SW_ERR_INIT;
        struct dns_record *r = NULL;
        char *out;

        CHECK_OK(dns_record_upsert(c, ZONE, "gone.apps.test", "127.0.0.5", 60, "slipway",
                                   "ingress/default/gone", &err),
                 &err);
        /* another owner id, or another resource of ours, may not delete it */
        CHECK_INT(dns_record_delete(c, ZONE, "gone.apps.test", "someone-else", NULL, &err),
                  SW_ECONFLICT);
        sw_err_clear(&err);
        CHECK_INT(dns_record_delete(c, ZONE, "gone.apps.test", "slipway", "ingress/x/y", &err),
                  SW_ECONFLICT);
        sw_err_clear(&err);
        out = dig("gone.apps.test", "A");
        CHECK_STR(out, "127.0.0.5");
        free(out);

        CHECK_OK(dns_record_delete(c, ZONE, "gone.apps.test", "slipway", "ingress/default/gone",
                                   &err),
                 &err);
        out = dig("gone.apps.test", "A");
        CHECK_STR(out, "");
        free(out);
        out = dig("a-gone.apps.test", "TXT");
        CHECK_STR(out, "");
        free(out);
        CHECK_INT(dns_record_get(&r, c, ZONE, "gone.apps.test", &err), SW_ENOTFOUND);
        sw_err_clear(&err);
        /* idempotent: nothing there any more, and no zone at all */
        CHECK_OK(dns_record_delete(c, ZONE, "gone.apps.test", "slipway", NULL, &err), &err);
        CHECK_OK(dns_record_delete(c, "nozone.test", "x.nozone.test", "slipway", NULL, &err), &err);
        /* the hand-made records next door are still there */
        out = dig("mail.apps.test", "A");
        CHECK_STR(out, "192.0.2.25");
        free(out);
        dns_client_free(c);
}

static bool listed(struct dns_record **l, size_t n, const char *fqdn, const char *owner)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(l[i]->fqdn, fqdn) == 0 && strcmp(l[i]->own.owner, owner) == 0)
                        return true;
        return false;
}

static void test_list_owned(void)
{
        struct dns_client *c = client_with(KEY, true);
        struct sw_err err = SW_ERR_INIT;
        struct dns_record **l = NULL;
        size_t n = 0;

        CHECK_OK(dns_record_list(&l, &n, c, ZONE, "slipway", &err), &err);
        CHECK(listed(l, n, "shop.default.apps.test.", "slipway"));
        CHECK(listed(l, n, "web.apps.test.", "slipway"));
        CHECK(!listed(l, n, "api.apps.test.", "cluster-b"));
        CHECK(!listed(l, n, "mail.apps.test.", "slipway"));
        for (size_t i = 0; i < n; i++) {
                if (strcmp(l[i]->fqdn, "web.apps.test.") == 0) {
                        CHECK_INT(l[i]->nips, 1);
                        CHECK_STR(l[i]->ips[0], "127.0.0.3");
                        CHECK_STR(l[i]->own.resource, "ingress/default/web");
                }
        }
        dns_record_list_free(l, n);
        l = NULL;
        CHECK_OK(dns_record_list(&l, &n, c, ZONE, NULL, &err), &err);
        CHECK(listed(l, n, "api.apps.test.", "cluster-b"));
        CHECK(listed(l, n, "soon.apps.test.", "cluster-b"));
        CHECK(listed(l, n, "web.apps.test.", "slipway"));
        dns_record_list_free(l, n);
        l = NULL;
        CHECK_OK(dns_record_list(&l, &n, c, "nozone.test", "slipway", &err), &err);
        CHECK_INT(n, 0);
        dns_record_list_free(l, n);
        dns_client_free(c);
}

/* Refused before any request: the client points at a port where nothing listens. */
static void test_invalid_refused_before_request(void)
{
        struct dns_options o = DNS_OPTIONS_INIT;
        struct dns_client *c = NULL;
        struct sw_err err = SW_ERR_INIT;
        char longname[300];
        struct {
                const char *host, *ip, *needle;
        } cases[] = {
                {"shop.example.com", "127.0.0.1", "not inside the zone 'apps.test.'"},
                {"Shop.apps.test", "127.0.0.1", "lower-case"},
                {"sh op.apps.test", "127.0.0.1", "must not contain spaces"},
                {"shop\n.apps.test", "127.0.0.1", "'shop\\n.apps.test'"},
                {"apps.test", "127.0.0.1", "not inside the zone"},
                {"shop.apps.test", "127.0.0.256", "not an IPv4 address"},
                {"shop.apps.test", "::1", "not an IPv4 address"},
                {longname, "127.0.0.1", "longer than 253"},
        };

        memset(longname, 'a', sizeof(longname));
        for (int i = 60; i < 280; i += 61)
                longname[i] = '.';
        memcpy(longname + 280, ".apps.test", 11);
        o.api_url = "http://127.0.0.1:1/api/v1";
        o.api_key = KEY;
        o.create_zones = true;
        CHECK_OK(dns_client_new(&c, &o, &err), &err);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                sw_err_clear(&err);
                CHECK_INT(dns_record_upsert(c, ZONE, cases[i].host, cases[i].ip, 60, "slipway",
                                            NULL, &err),
                          SW_EINVAL);
                if (!strstr(err.msg, cases[i].needle))
                        t_fail(__FILE__, __LINE__, "case %zu: '%s' not in: %s", i, cases[i].needle,
                               err.msg);
                CHECK(strchr(err.msg, '\n') == NULL);
                CHECK(strstr(err.msg, "unreachable") == NULL);
                sw_err_clear(&err);
                CHECK_INT(dns_record_delete(c, ZONE, cases[i].host, "slipway", NULL, &err),
                          i >= 5 && i <= 6 ? SW_EUNAVAIL : SW_EINVAL);
        }
        sw_err_clear(&err);
        CHECK_INT(dns_record_upsert(c, ZONE, "ok.apps.test", "127.0.0.1", 0, "slipway", NULL, &err),
                  SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(dns_record_upsert(c, ZONE, "ok.apps.test", "127.0.0.1", 60, "bad owner", NULL,
                                    &err),
                  SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(dns_record_upsert(c, "Apps.Test", "ok.apps.test", "127.0.0.1", 60, "slipway",
                                    NULL, &err),
                  SW_EINVAL);
        dns_client_free(c);

        /* options */
        sw_err_clear(&err);
        o.api_url = "ftp://127.0.0.1/api";
        CHECK_INT(dns_client_new(&c, &o, &err), SW_EINVAL);
        sw_err_clear(&err);
        o.api_url = pd.api_url;
        o.api_key = "";
        CHECK_INT(dns_client_new(&c, &o, &err), SW_EINVAL);
}

static void test_wrong_api_key(void)
{
        struct dns_client *c = client_with("wrong-key-secret-9f", true);
        struct sw_err err = SW_ERR_INIT;

        CHECK_INT(dns_record_upsert(c, ZONE, "k.apps.test", "127.0.0.1", 60, "slipway", NULL, &err),
                  SW_EAUTH);
        CHECK(strstr(err.msg, "rejected the API key") && strstr(err.msg, "401"));
        CHECK(strstr(err.msg, "wrong-key-secret-9f") == NULL);
        CHECK(!sw_err_transient(SW_EAUTH));
        printf("# wrong key: %s\n", err.msg);
        dns_client_free(c);
}

/* Rename pdns's records table under it: the real server then answers 500. */
static void break_backend(bool broken)
{
        char path[320];
        sqlite3 *db = NULL;

        snprintf(path, sizeof(path), "%s/pdns.db", pd.dir);
        CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
        CHECK_INT(sqlite3_exec(db,
                               broken ? "ALTER TABLE records RENAME TO records_hidden"
                                      : "ALTER TABLE records_hidden RENAME TO records",
                               NULL, NULL, NULL),
                  SQLITE_OK);
        sqlite3_close(db);
}

static void test_server_error_transient(void)
{
        struct dns_client *c = client_with(KEY, true);
        struct sw_err err = SW_ERR_INIT;
        int rc;

        break_backend(true);
        rc = dns_record_upsert(c, ZONE, "five.apps.test", "127.0.0.8", 60, "slipway", NULL, &err);
        break_backend(false);
        CHECK_INT(rc, SW_EUNAVAIL);
        CHECK(sw_err_transient(rc));
        CHECK(strstr(err.msg, "failed (500)") && strstr(err.msg, "Internal Server Error"));
        printf("# 500: %s\n", err.msg);
        sw_err_clear(&err);
        CHECK_OK(dns_record_upsert(c, ZONE, "five.apps.test", "127.0.0.8", 60, "slipway", NULL,
                                   &err),
                 &err);
        dns_client_free(c);
}

static void test_server_down_then_back(void)
{
        struct dns_client *c = client_with(KEY, true);
        struct sw_err err = SW_ERR_INIT;
        int rc;

        tp_pdns_stop(&pd);
        rc = dns_record_upsert(c, ZONE, "later.apps.test", "127.0.0.7", 60, "slipway",
                               "ingress/default/later", &err);
        CHECK_INT(rc, SW_EUNAVAIL);
        CHECK(sw_err_transient(rc));
        CHECK(strstr(err.msg, "unreachable") != NULL);
        printf("# down: %s\n", err.msg);
        sw_err_clear(&err);
        CHECK_INT(dns_query_a(&(struct dns_answer){0}, pd.server, "later.apps.test", 300, &err),
                  SW_EUNAVAIL);
        sw_err_clear(&err);

        CHECK_INT(tp_pdns_restart(&pd), 0);
        CHECK_OK(dns_record_upsert(c, ZONE, "later.apps.test", "127.0.0.7", 60, "slipway",
                                   "ingress/default/later", &err),
                 &err);
        CHECK_OK(dns_wait_a(NULL, pd.server, "later.apps.test", "127.0.0.7", 3000, &err), &err);
        dns_client_free(c);
}

/* The setup the harness (and slipway serve) uses: idempotent, key file private, bad input refused. */
static void test_pdns_setup(void)
{
        struct dns_pdns_options o;
        struct dns_pdns_setup st;
        struct sw_err err = SW_ERR_INIT;
        struct stat sb;
        char path[400];
        char *conf = NULL, api_listen[32];

        snprintf(api_listen, sizeof(api_listen), "127.0.0.1:%d", pd.api_port);
        memset(&o, 0, sizeof(o));
        o.dir = pd.dir;
        o.dns_listen = pd.server;
        o.api_listen = api_listen;
        o.api_key = KEY;
        /* again on the running server's directory: the database (and its records) stay */
        CHECK_OK(dns_pdns_setup(&st, &o, &err), &err);
        CHECK_STR(st.api_url, pd.api_url);
        CHECK_STR(st.argv[0], DNS_PDNS_SERVER);
        CHECK(st.argv[5] == NULL);
        dns_pdns_setup_release(&st);
        snprintf(path, sizeof(path), "%s/pdns.conf", pd.dir);
        CHECK_INT(stat(path, &sb), 0);
        CHECK_INT(sb.st_mode & 0777, 0600);
        CHECK_OK(sw_read_file(&conf, NULL, path, 1 << 16, &err), &err);
        CHECK(conf && strstr(conf, "security-poll-suffix=\n") && strstr(conf, "launch=gsqlite3"));
        free(conf);
        {
                char *out = dig("web.apps.test", "A");
                CHECK_STR(out, "127.0.0.3");
                free(out);
        }

        o.dns_listen = "localhost:53";
        CHECK_INT(dns_pdns_setup(&st, &o, &err), SW_EINVAL);
        sw_err_clear(&err);
        o.dns_listen = pd.server;
        o.api_key = "two\nlines";
        CHECK_INT(dns_pdns_setup(&st, &o, &err), SW_EINVAL);
        sw_err_clear(&err);
        snprintf(path, sizeof(path), "%s/other", t_tmpdir());
        o.dir = path;
        o.api_key = KEY;
        o.schema_path = "/nonexistent/schema.sql";
        CHECK_INT(dns_pdns_setup(&st, &o, &err), SW_ENOTFOUND);
        CHECK(strstr(err.msg, "pdns-backend-sqlite3") != NULL);
}

int main(void)
{
        curl_global_init(CURL_GLOBAL_DEFAULT);
        if (tp_pdns_start(&pd, KEY) != 0) {
                fprintf(stderr, "cannot start pdns_server\n");
                return 1;
        }
        T_RUN(test_zone_create_find);
        T_RUN(test_zone_id_escaped);
        T_RUN(test_upsert_dig_and_resolver);
        T_RUN(test_idempotent_and_ip_change);
        T_RUN(test_foreign_records_left_alone);
        T_RUN(test_delete_only_ours);
        T_RUN(test_list_owned);
        T_RUN(test_pdns_setup);
        T_RUN(test_invalid_refused_before_request);
        T_RUN(test_wrong_api_key);
        T_RUN(test_server_error_transient);
        T_RUN(test_server_down_then_back);
        tp_pdns_release(&pd);
        curl_global_cleanup();
        return t_done();
}
