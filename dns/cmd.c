/*
 * cmd.c - `slipway dns`: the operator's view of the records slipway owns.
 *
 * The same reconcile functions as the pipeline's dns step, so the same
 * ownership rules: an operator can publish, inspect and remove records owned
 * by SLIPWAY_DNS_OWNER, and is told (not obeyed) when a host belongs to
 * someone else.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/config.h"
#include "common/json.h"
#include "dns/dns.h"
#include "engine/cli.h"
#include "common/banned.h"

#define CMD_VERIFY_TIMEOUT_MS 10000

static void usage(void)
{
        printf("usage: slipway dns upsert HOST [IP] [--ttl SECONDS] [--resource KIND/NS/NAME]\n"
               "                          [--no-verify]\n"
               "       slipway dns delete HOST [--resource KIND/NS/NAME]\n"
               "       slipway dns get HOST [--json]\n"
               "       slipway dns list [--all] [--json]\n\n"
               "Publish, show or remove the A record of HOST in the PowerDNS zone\n"
               "SLIPWAY_DNS_ZONE, through the API at SLIPWAY_PDNS_URL.\n\n"
               "upsert  point HOST at IP (default SLIPWAY_EDGE_IP) with an ownership TXT record\n"
               "        for SLIPWAY_DNS_OWNER, then ask the server at SLIPWAY_DNS_LISTEN over\n"
               "        UDP until it answers IP (unless --no-verify). A host whose record\n"
               "        belongs to another owner, or to nobody, is refused and left alone.\n"
               "delete  remove HOST's A record and ownership record, only when they are ours.\n"
               "get     show HOST's A records and who owns them.\n"
               "list    every host with an ownership record of SLIPWAY_DNS_OWNER (--all: of any\n"
               "        owner), to find records left behind.\n\n"
               "The ownership record is a TXT record at a-HOST in external-dns's format:\n"
               "\"heritage=external-dns,external-dns/owner=OWNER,external-dns/resource=...\".\n");
}

static int parse_ttl(uint32_t *out, const char *s)
{
        char *end = NULL;
        long v = strtol(s, &end, 10);

        if (end == s || *end || v < 1 || v > DNS_TTL_MAX)
                return -1;
        *out = (uint32_t)v;
        return 0;
}

static int cmd_get(struct dns_client *c, const struct sw_config *cfg, const char *host, bool json,
                   struct sw_err *err)
{
        struct dns_record *r = NULL;
        int rc = dns_record_get(&r, c, cfg->dns_zone, host, err);

        if (rc)
                return rc;
        if (json) {
                json_t *ips = json_array(), *o;
                char *text;

                for (size_t i = 0; i < r->nips; i++)
                        json_array_append_new(ips, json_string(r->ips[i]));
                o = json_pack("{s:s,s:o,s:I,s:s?,s:s?,s:b,s:s?}", "host", r->fqdn, "ips", ips,
                              "ttl", (json_int_t)r->ttl, "owner",
                              r->has_owner ? r->own.owner : NULL, "resource",
                              r->has_owner && r->own.resource[0] ? r->own.resource : NULL, "ours",
                              r->has_owner && !r->legacy_owner &&
                                      strcmp(r->own.owner, cfg->dns_owner) == 0,
                              "other_type", r->other_type);
                text = sw_json_dump(o);
                printf("%s\n", text);
                free(text);
                json_decref(o);
        } else {
                for (size_t i = 0; i < r->nips; i++)
                        printf("%s A %s ttl %u\n", r->fqdn, r->ips[i], r->ttl);
                if (r->other_type)
                        printf("%s also has a %s record\n", r->fqdn, r->other_type);
                if (r->has_owner)
                        printf("owner: %s%s%s%s%s\n", r->own.owner,
                               r->own.resource[0] ? " for " : "", r->own.resource,
                               r->legacy_owner ? " (legacy TXT at the host)" : "",
                               strcmp(r->own.owner, cfg->dns_owner) == 0 && !r->legacy_owner
                                       ? " (ours)"
                                       : "");
                else
                        printf("owner: none (no ownership record: not slipway's to change)\n");
        }
        dns_record_free(r);
        return 0;
}

static int cmd_list(struct dns_client *c, const struct sw_config *cfg, bool all, bool json,
                    struct sw_err *err)
{
        struct dns_record **list = NULL;
        size_t n = 0;
        json_t *arr = json_array();
        int rc = dns_record_list(&list, &n, c, cfg->dns_zone, all ? NULL : cfg->dns_owner, err);

        for (size_t i = 0; rc == 0 && i < n; i++) {
                const struct dns_record *r = list[i];
                json_t *ips = json_array();

                for (size_t k = 0; k < r->nips; k++)
                        json_array_append_new(ips, json_string(r->ips[k]));
                if (json) {
                        json_array_append_new(
                                arr, json_pack("{s:s,s:o,s:s,s:s?}", "host", r->fqdn, "ips", ips,
                                               "owner", r->own.owner, "resource",
                                               r->own.resource[0] ? r->own.resource : NULL));
                        continue;
                }
                json_decref(ips);
                printf("%s\t%s\t%s\t%s\n", r->fqdn, r->nips ? r->ips[0] : "(no A record)",
                       r->own.owner, r->own.resource[0] ? r->own.resource : "-");
        }
        if (rc == 0 && json) {
                char *text = sw_json_dump(arr);
                printf("%s\n", text);
                free(text);
        }
        json_decref(arr);
        dns_record_list_free(list, n);
        return rc;
}

int dns_cmd(int argc, char **argv, const struct sw_config *cfg)
{
        struct sw_err err = SW_ERR_INIT;
        struct dns_client *c = NULL;
        const char *verb, *host = NULL, *ip = NULL, *resource = NULL;
        uint32_t ttl;
        bool verify = true, json = false, all = false;
        int rc;

        if (!cfg) {
                usage();
                return 0;
        }
        if (argc < 2)
                return sw_cli_usage_error("dns", "expected upsert, delete, get or list");
        verb = argv[1];
        if (strcmp(verb, "upsert") != 0 && strcmp(verb, "delete") != 0 &&
            strcmp(verb, "get") != 0 && strcmp(verb, "list") != 0)
                return sw_cli_usage_error(
                        "dns", "unknown action '%s' (upsert, delete, get or list)", verb);
        ttl = (uint32_t)cfg->dns_ttl;
        for (int i = 2; i < argc; i++) {
                const char *a = argv[i];
                bool has_val = i + 1 < argc;

                if (strcmp(a, "--ttl") == 0 && has_val && strcmp(verb, "upsert") == 0) {
                        if (parse_ttl(&ttl, argv[++i]) != 0)
                                return sw_cli_usage_error("dns", "--ttl: '%s' is not 1 to %d",
                                                          argv[i], DNS_TTL_MAX);
                } else if (strcmp(a, "--resource") == 0 && has_val && strcmp(verb, "get") != 0) {
                        resource = argv[++i];
                } else if (strcmp(a, "--no-verify") == 0 && strcmp(verb, "upsert") == 0) {
                        verify = false;
                } else if (strcmp(a, "--json") == 0 &&
                           (strcmp(verb, "get") == 0 || strcmp(verb, "list") == 0)) {
                        json = true;
                } else if (strcmp(a, "--all") == 0 && strcmp(verb, "list") == 0) {
                        all = true;
                } else if (a[0] == '-' && a[1]) {
                        return sw_cli_usage_error("dns", "unknown option '%s' for %s", a, verb);
                } else if (!host && strcmp(verb, "list") != 0) {
                        host = a;
                } else if (!ip && strcmp(verb, "upsert") == 0) {
                        ip = a;
                } else {
                        return sw_cli_usage_error("dns", "unexpected argument '%s'", a);
                }
        }
        if (!host && strcmp(verb, "list") != 0)
                return sw_cli_usage_error("dns", "%s: expected a HOST", verb);
        if (!ip)
                ip = cfg->edge_ip;

        rc = dns_client_from_config(&c, cfg, &err);
        if (rc)
                goto out;
        if (strcmp(verb, "list") == 0) {
                rc = cmd_list(c, cfg, all, json, &err);
        } else if (strcmp(verb, "get") == 0) {
                rc = cmd_get(c, cfg, host, json, &err);
        } else if (strcmp(verb, "delete") == 0) {
                rc = dns_record_delete(c, cfg->dns_zone, host, cfg->dns_owner, resource, &err);
                if (rc == 0)
                        printf("%s: no record of owner '%s' left\n", host, cfg->dns_owner);
        } else {
                int64_t took = 0;

                rc = dns_record_upsert(c, cfg->dns_zone, host, ip, ttl, cfg->dns_owner, resource,
                                       &err);
                if (rc == 0 && verify) {
                        rc = dns_wait_a(&took, cfg->dns_listen, host, ip, CMD_VERIFY_TIMEOUT_MS,
                                        &err);
                        if (rc == 0)
                                printf("%s A %s: published, answered by %s in %lld ms\n", host, ip,
                                       cfg->dns_listen, (long long)took);
                } else if (rc == 0) {
                        printf("%s A %s: published\n", host, ip);
                }
        }
out:
        dns_client_free(c);
        if (rc)
                return sw_cli_fail("dns", "%s", err.msg);
        return 0;
}
