/*
 * record.c - reconcile one host's A record and its ownership TXT record.
 *
 * external-dns's known failure is to overwrite or delete records it did not
 * create. Here every write is preceded by a read of what the name holds and
 * a decision (record_decide): a name is ours only when the TXT at its
 * ownership name ("a-<host>") says heritage=external-dns with our owner id.
 * Anything else at the name - an A without that TXT, a CNAME, a TXT naming
 * another owner, even one in external-dns's legacy place (a TXT at the host
 * itself) - is left alone and the caller is told who holds it. The A and the
 * TXT are written or deleted together in one PATCH, which PowerDNS applies
 * in one transaction, so a reader never sees one without the other.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "dns/dns.h"
#include "dns/dns_int.h"
#include "common/banned.h"

/* What a name holds, as read from the server. */
struct observed {
        struct dns_rrset *at; /* every rrset at the host */
        size_t nat;
        struct dns_rrset *txt; /* TXT at the ownership name */
        size_t ntxt;
        const struct dns_rrset *a; /* the A rrset at the host, or NULL */
        const char *other;         /* another type at the host (CNAME, AAAA...), or NULL */
        bool has_owner;            /* some ownership record was found */
        bool legacy;               /* ... in a TXT at the host itself */
        struct dns_owner own;      /* ours when we have one, else the first found */
        const char *own_content;   /* the TXT content `own` came from */
};

/* Canonical zone, host and ownership name from the caller's strings. */
struct names {
        char *zone;
        char *fqdn;
        char *txt;
};

static void names_release(struct names *n)
{
        free(n->zone);
        free(n->fqdn);
        free(n->txt);
}

static int names_init(struct names *n, const char *zone, const char *fqdn, struct sw_err *err)
{
        int rc;

        memset(n, 0, sizeof(*n));
        if ((rc = dns_name_canonical(&n->zone, zone, "zone", err)) != 0 ||
            (rc = dns_name_canonical(&n->fqdn, fqdn, "host", err)) != 0 ||
            (rc = dns_name_in_zone(n->fqdn, n->zone, err)) != 0) {
                names_release(n);
                return rc;
        }
        n->txt = dns_owner_txt_name(n->fqdn);
        return 0;
}

static void observed_release(struct observed *o)
{
        dns_rrsets_free(o->at, o->nat);
        dns_rrsets_free(o->txt, o->ntxt);
        memset(o, 0, sizeof(*o));
}

/* Look through a TXT rrset for ownership records; ours (`me`) wins over others. */
static void scan_owner(struct observed *o, const struct dns_rrset *rs, const char *me, bool legacy)
{
        for (size_t i = 0; i < rs->nrecords; i++) {
                struct dns_owner own;
                bool mine;

                if (dns_owner_txt_parse(&own, rs->records[i], NULL) != 0)
                        continue;
                mine = me && strcmp(own.owner, me) == 0;
                if (!o->has_owner || (mine && !legacy)) {
                        o->has_owner = true;
                        o->legacy = legacy;
                        o->own = own;
                        o->own_content = rs->records[i];
                }
                if (mine && !legacy)
                        return;
        }
}

static int observe(struct observed *o, struct dns_client *c, const struct dns_zone *z,
                   const struct names *n, const char *me, struct sw_err *err)
{
        int rc;

        memset(o, 0, sizeof(*o));
        rc = dns_rrsets_get(&o->at, &o->nat, c, z, n->fqdn, NULL, err);
        if (rc == 0)
                rc = dns_rrsets_get(&o->txt, &o->ntxt, c, z, n->txt, "TXT", err);
        if (rc) {
                observed_release(o);
                return rc;
        }
        for (size_t i = 0; i < o->ntxt; i++)
                scan_owner(o, &o->txt[i], me, false);
        for (size_t i = 0; i < o->nat; i++) {
                const struct dns_rrset *rs = &o->at[i];
                if (strcmp(rs->type, "A") == 0)
                        o->a = rs;
                else if (strcmp(rs->type, "TXT") == 0)
                        ;
                else if (!o->other)
                        o->other = rs->type;
        }
        /* external-dns's legacy registry: a TXT at the host itself, for messages only. */
        if (!o->has_owner)
                for (size_t i = 0; i < o->nat; i++)
                        if (strcmp(o->at[i].type, "TXT") == 0)
                                scan_owner(o, &o->at[i], NULL, true);
        return 0;
}

static bool is_mine(const struct observed *o, const char *me)
{
        return o->has_owner && !o->legacy && strcmp(o->own.owner, me) == 0;
}

/* "1.2.3.4, 5.6.7.8" for messages. */
static void ips_text(char *out, size_t size, const struct dns_rrset *a)
{
        size_t off = 0;

        out[0] = '\0';
        for (size_t i = 0; a && i < a->nrecords && off + 1 < size; i++)
                off += (size_t)snprintf(out + off, size - off, "%s%s", i ? ", " : "",
                                        a->records[i]);
}

/*
 * Refuse (SW_ECONFLICT) when the name is not ours to `verb` ("overwrite",
 * "delete"); 0 when it is ours or holds nothing.
 */
static int record_decide(const struct observed *o, const struct names *n, const char *me,
                         const char *resource, const char *verb, struct sw_err *err)
{
        char ips[200];

        if (is_mine(o, me)) {
                if (resource && o->own.resource[0] && strcmp(o->own.resource, resource) != 0)
                        return sw_err_set(err, SW_ECONFLICT,
                                          "host '%s' is already published by owner '%s' for '%s', "
                                          "not for '%s'; refusing to %s it (delete it first)",
                                          n->fqdn, me, o->own.resource, resource, verb);
                if (o->other)
                        return sw_err_set(err, SW_ECONFLICT,
                                          "host '%s' also has a %s record that slipway did not "
                                          "create; refusing to %s it",
                                          n->fqdn, o->other, verb);
                return 0;
        }
        if (o->has_owner && o->legacy && strcmp(o->own.owner, me) == 0)
                return sw_err_set(err, SW_ECONFLICT,
                                  "host '%s' carries owner '%s' only in a legacy TXT record at the "
                                  "host itself, not at '%s' where slipway keeps ownership: left "
                                  "alone, refusing to %s it (move or remove that record first)",
                                  n->fqdn, me, n->txt, verb);
        if (o->has_owner)
                return sw_err_set(
                        err, SW_ECONFLICT,
                        "host '%s' is owned by '%s'%s%s%s (ownership record '%s'), not by "
                        "'%s': left alone, refusing to %s it",
                        n->fqdn, o->own.owner, o->own.resource[0] ? " for '" : "", o->own.resource,
                        o->own.resource[0] ? "'" : "", o->legacy ? n->fqdn : n->txt, me, verb);
        if (o->ntxt > 0)
                return sw_err_set(err, SW_ECONFLICT,
                                  "host '%s': its ownership name '%s' holds a TXT record that is "
                                  "not an ownership record of '%s': left alone, refusing to %s it",
                                  n->fqdn, n->txt, me, verb);
        ips_text(ips, sizeof(ips), o->a);
        if (o->a)
                return sw_err_set(err, SW_ECONFLICT,
                                  "host '%s' already has an A record (%s) that nobody owns (no "
                                  "ownership TXT record at '%s'): left alone, refusing to %s it",
                                  n->fqdn, ips, n->txt, verb);
        if (o->other)
                return sw_err_set(err, SW_ECONFLICT,
                                  "host '%s' already has a %s record that nobody owns (no "
                                  "ownership TXT record at '%s'): left alone, refusing to %s it",
                                  n->fqdn, o->other, n->txt, verb);
        return 0;
}

static int ip_check(const char *ip, struct sw_err *err)
{
        unsigned char bin[4];
        char back[INET_ADDRSTRLEN], shown[64];

        if (ip && inet_pton(AF_INET, ip, bin) == 1 && inet_ntop(AF_INET, bin, back, sizeof(back)) &&
            strcmp(back, ip) == 0)
                return 0;
        dns__quote(shown, sizeof(shown), ip ? ip : "");
        return sw_err_set(err, SW_EINVAL, "ip '%s': not an IPv4 address (like 192.0.2.10)", shown);
}

int dns_record_upsert(struct dns_client *c, const char *zone, const char *fqdn, const char *ip,
                      uint32_t ttl, const char *owner, const char *resource, struct sw_err *err)
{
        struct names n;
        struct observed o;
        const struct dns_zone *z = NULL;
        const char *res;
        char *content = NULL;
        int rc;

        /* Everything the caller gave is checked before the first request. */
        rc = names_init(&n, zone, fqdn, err);
        if (rc)
                return rc;
        memset(&o, 0, sizeof(o));
        if ((rc = ip_check(ip, err)) != 0 || (rc = dns_owner_id_check(owner, err)) != 0 ||
            (resource && (rc = dns_owner_resource_check(resource, err)) != 0))
                goto out;
        if (ttl < 1 || ttl > DNS_TTL_MAX) {
                rc = sw_err_set(err, SW_EINVAL, "ttl %u: must be 1 to %d seconds", ttl,
                                DNS_TTL_MAX);
                goto out;
        }

        rc = dns__zone_get(&z, c, n.zone, true, err);
        if (rc == 0)
                rc = observe(&o, c, z, &n, owner, err);
        if (rc == 0)
                rc = record_decide(&o, &n, owner, resource, "overwrite", err);
        if (rc)
                goto out;
        res = resource ? resource
                       : (is_mine(&o, owner) && o.own.resource[0] ? o.own.resource : NULL);
        rc = dns_owner_txt_format(&content, owner, res, err);
        if (rc)
                goto out;
        if (is_mine(&o, owner) && o.a && o.a->nrecords == 1 && strcmp(o.a->records[0], ip) == 0 &&
            o.a->ttl == ttl && o.ntxt == 1 && o.txt[0].nrecords == 1 && o.txt[0].ttl == ttl &&
            strcmp(o.own_content, content) == 0)
                goto out; /* already as asked: nothing to write */
        {
                const char *a_recs[] = {ip};
                const char *t_recs[] = {content};
                struct dns_change ch[] = {
                        {n.fqdn, "A", false, ttl, a_recs, 1},
                        {n.txt, "TXT", false, ttl, t_recs, 1},
                };
                rc = dns_rrsets_patch(c, z, ch, 2, err);
        }
out:
        if (rc && rc != SW_ECONFLICT) /* conflicts name the host already */
                sw_err_wrap(err, "dns upsert '%s'", n.fqdn);
        observed_release(&o);
        free(content);
        names_release(&n);
        return rc;
}

int dns_record_delete(struct dns_client *c, const char *zone, const char *fqdn, const char *owner,
                      const char *resource, struct sw_err *err)
{
        struct names n;
        struct observed o;
        const struct dns_zone *z = NULL;
        int rc = names_init(&n, zone, fqdn, err);

        if (rc)
                return rc;
        memset(&o, 0, sizeof(o));
        if ((rc = dns_owner_id_check(owner, err)) != 0 ||
            (resource && (rc = dns_owner_resource_check(resource, err)) != 0))
                goto out;
        rc = dns__zone_get(&z, c, n.zone, false, err);
        if (rc == SW_ENOTFOUND) {
                sw_err_clear(err);
                rc = 0; /* no zone, no record */
                goto out;
        }
        if (rc == 0)
                rc = observe(&o, c, z, &n, owner, err);
        if (rc)
                goto out;
        if (!o.has_owner && !o.a && !o.other)
                goto out; /* nothing there: deleted already */
        rc = record_decide(&o, &n, owner, resource, "delete", err);
        if (rc)
                goto out;
        {
                struct dns_change ch[] = {
                        {n.fqdn, "A", true, 0, NULL, 0},
                        {n.txt, "TXT", true, 0, NULL, 0},
                };
                rc = dns_rrsets_patch(c, z, ch, 2, err);
        }
out:
        if (rc && rc != SW_ECONFLICT)
                sw_err_wrap(err, "dns delete '%s'", n.fqdn);
        observed_release(&o);
        names_release(&n);
        return rc;
}

int dns_record_get(struct dns_record **out, struct dns_client *c, const char *zone,
                   const char *fqdn, struct sw_err *err)
{
        struct names n;
        struct observed o;
        const struct dns_zone *z = NULL;
        struct dns_record *r;
        int rc = names_init(&n, zone, fqdn, err);

        if (rc)
                return rc;
        memset(&o, 0, sizeof(o));
        rc = dns__zone_get(&z, c, n.zone, false, err);
        if (rc == 0)
                rc = observe(&o, c, z, &n, NULL, err);
        if (rc)
                goto out;
        if (!o.a && !o.has_owner && !o.other) {
                rc = sw_err_set(err, SW_ENOTFOUND, "host '%s' has no A record", n.fqdn);
                goto out;
        }
        r = sw_xcalloc(1, sizeof(*r));
        r->fqdn = sw_xstrdup(n.fqdn);
        if (o.a) {
                r->nips = o.a->nrecords;
                r->ttl = o.a->ttl;
                r->ips = sw_xcalloc(r->nips + 1, sizeof(char *));
                for (size_t i = 0; i < r->nips; i++)
                        r->ips[i] = sw_xstrdup(o.a->records[i]);
        }
        r->has_owner = o.has_owner;
        r->legacy_owner = o.legacy;
        r->own = o.own;
        r->other_type = o.other ? sw_xstrdup(o.other) : NULL;
        *out = r;
out:
        observed_release(&o);
        names_release(&n);
        return rc;
}

void dns_record_free(struct dns_record *r)
{
        if (!r)
                return;
        for (size_t i = 0; i < r->nips; i++)
                free(r->ips[i]);
        free(r->ips);
        free(r->fqdn);
        free(r->other_type);
        free(r);
}

static const struct dns_rrset *rrset_find(const struct dns_rrset *rs, size_t n, const char *name,
                                          const char *type)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(rs[i].name, name) == 0 && strcmp(rs[i].type, type) == 0)
                        return &rs[i];
        return NULL;
}

int dns_record_list(struct dns_record ***out, size_t *n_out, struct dns_client *c, const char *zone,
                    const char *owner, struct sw_err *err)
{
        const struct dns_zone *z = NULL;
        struct dns_rrset *all = NULL;
        struct dns_record **list = NULL;
        char *zname = NULL;
        size_t nall = 0, n = 0;
        int rc = dns_name_canonical(&zname, zone, "zone", err);

        if (rc)
                return rc;
        rc = dns__zone_get(&z, c, zname, false, err);
        if (rc == SW_ENOTFOUND) {
                sw_err_clear(err);
                *out = sw_xcalloc(1, sizeof(*list));
                *n_out = 0;
                rc = 0;
                goto out;
        }
        if (rc == 0)
                rc = dns_rrsets_get(&all, &nall, c, z, NULL, NULL, err);
        if (rc)
                goto out;
        list = sw_xcalloc(nall + 1, sizeof(*list));
        for (size_t i = 0; i < nall; i++) {
                const struct dns_rrset *txt = &all[i], *a;
                struct observed o;
                struct dns_record *r;
                char *fqdn;

                if (strcmp(txt->type, "TXT") != 0 || strncmp(txt->name, "a-", 2) != 0)
                        continue;
                memset(&o, 0, sizeof(o));
                scan_owner(&o, txt, owner, false);
                if (!o.has_owner || (owner && strcmp(o.own.owner, owner) != 0))
                        continue;
                fqdn = dns__txt_owner_of(txt->name);
                if (!fqdn)
                        continue;
                a = rrset_find(all, nall, fqdn, "A");
                r = sw_xcalloc(1, sizeof(*r));
                r->fqdn = fqdn;
                r->has_owner = true;
                r->own = o.own;
                if (a) {
                        r->ttl = a->ttl;
                        r->nips = a->nrecords;
                        r->ips = sw_xcalloc(a->nrecords + 1, sizeof(char *));
                        for (size_t k = 0; k < a->nrecords; k++)
                                r->ips[k] = sw_xstrdup(a->records[k]);
                }
                list[n++] = r;
        }
        *out = list;
        *n_out = n;
        list = NULL; /* ownership moved to caller */
out:
        dns_record_list_free(list, n);
        dns_rrsets_free(all, nall);
        free(zname);
        return rc;
}

void dns_record_list_free(struct dns_record **list, size_t n)
{
        if (!list)
                return;
        for (size_t i = 0; i < n; i++)
                dns_record_free(list[i]);
        free(list);
}
