/*
 * test_owner.c - the names slipway may publish and the external-dns style
 * ownership TXT records: formatting, parsing (split strings, escapes, other
 * heritages), and the checks that refuse a name before any request.
 */
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"
#include "tests/harness/t.h"

static void test_txt_format(void)
{
        struct sw_err err = SW_ERR_INIT;
        char *s = NULL;

        CHECK_OK(dns_owner_txt_format(&s, "slipway", "ingress/default/shop", &err), &err);
        CHECK_STR(s, "\"heritage=external-dns,external-dns/owner=slipway,"
                     "external-dns/resource=ingress/default/shop\"");
        free(s);
        CHECK_OK(dns_owner_txt_format(&s, "team-a.prod_1", NULL, &err), &err);
        CHECK_STR(s, "\"heritage=external-dns,external-dns/owner=team-a.prod_1\"");
        free(s);

        /* nothing that could break out of the quotes or add a key is accepted */
        const char *bad_owners[] = {
                "",     "a,b",
                "a=b",  "a\"b",
                "a b",  "a\\b",
                "a\nb", "0123456789012345678901234567890123456789012345678901234567890123"};
        for (size_t i = 0; i < sizeof(bad_owners) / sizeof(bad_owners[0]); i++) {
                sw_err_clear(&err);
                s = NULL;
                CHECK_INT(dns_owner_txt_format(&s, bad_owners[i], NULL, &err), SW_EINVAL);
                CHECK(s == NULL);
                CHECK(strstr(err.msg, "owner id") != NULL);
                CHECK(strchr(err.msg, '\n') == NULL);
        }
        sw_err_clear(&err);
        CHECK_INT(dns_owner_txt_format(&s, "slipway", "ingress/x,heritage=evil", &err), SW_EINVAL);
        CHECK(strstr(err.msg, "resource") != NULL);
}

static void test_txt_parse(void)
{
        struct sw_err err = SW_ERR_INIT;
        struct dns_owner o;
        char *s = NULL;

        /* round trip */
        CHECK_OK(dns_owner_txt_format(&s, "slipway", "ingress/ns1/web", &err), &err);
        CHECK_OK(dns_owner_txt_parse(&o, s, &err), &err);
        CHECK_STR(o.owner, "slipway");
        CHECK_STR(o.resource, "ingress/ns1/web");
        free(s);

        /* what external-dns itself writes, with keys in another order and one we do not know */
        CHECK_OK(dns_owner_txt_parse(&o,
                                     "\"heritage=external-dns,external-dns/resource=service/a/b,"
                                     "external-dns/owner=default,external-dns/extra=1\"",
                                     &err),
                 &err);
        CHECK_STR(o.owner, "default");
        CHECK_STR(o.resource, "service/a/b");

        /* character-strings are joined; escapes are decoded */
        CHECK_OK(dns_owner_txt_parse(
                         &o, "\"heritage=external-dns,external-dns/ow\" \"ner=x\\046y\"", &err),
                 &err);
        CHECK_STR(o.owner, "x.y");
        CHECK_STR(o.resource, "");
        CHECK_OK(
                dns_owner_txt_parse(&o, "\"heritage=external-dns,external-dns/owner=q\\\"\"", &err),
                &err);
        CHECK_STR(o.owner, "q\"");

        /* other TXT records are not ownership records */
        CHECK_INT(dns_owner_txt_parse(&o, "\"v=spf1 -all\"", &err), SW_ENOTFOUND);
        sw_err_clear(&err);
        CHECK_INT(dns_owner_txt_parse(&o, "\"heritage=other,external-dns/owner=x\"", &err),
                  SW_ENOTFOUND);
        sw_err_clear(&err);
        CHECK_INT(dns_owner_txt_parse(&o, "\"heritage=external-dns\"", &err), SW_ENOTFOUND);
        sw_err_clear(&err);
        CHECK_INT(dns_owner_txt_parse(&o, "\"heritage=external-dnsx,external-dns/owner=x\"", &err),
                  SW_ENOTFOUND);
        sw_err_clear(&err);
        CHECK_INT(dns_owner_txt_parse(&o, "\"\"", &err), SW_ENOTFOUND);
        sw_err_clear(&err);

        /* malformed presentation format */
        CHECK_INT(dns_owner_txt_parse(&o, "\"heritage=external-dns", &err), SW_EINVAL);
        CHECK(strstr(err.msg, "unterminated") != NULL);
        sw_err_clear(&err);
        CHECK_INT(dns_owner_txt_parse(&o, "\"abc\\999\"", &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(dns_owner_txt_parse(&o, "abc\\", &err), SW_EINVAL);
}

static void expect_bad_name(const char *name, const char *needle)
{
        struct sw_err err = SW_ERR_INIT;
        char *out = NULL;
        int rc = dns_name_canonical(&out, name, "host", &err);

        CHECK_INT(rc, SW_EINVAL);
        CHECK(out == NULL);
        if (!strstr(err.msg, needle))
                t_fail(__FILE__, __LINE__, "message for bad name lacks '%s': %s", needle, err.msg);
        if (strchr(err.msg, '\n'))
                t_fail(__FILE__, __LINE__, "message has a raw newline: %s", err.msg);
        free(out);
}

static void test_names(void)
{
        struct sw_err err = SW_ERR_INIT;
        char *out = NULL;
        char long_name[300];

        CHECK_OK(dns_name_canonical(&out, "shop.default.slipway.local", "host", &err), &err);
        CHECK_STR(out, "shop.default.slipway.local.");
        free(out);
        CHECK_OK(dns_name_canonical(&out, "shop.default.slipway.local.", "host", &err), &err);
        CHECK_STR(out, "shop.default.slipway.local.");
        free(out);

        expect_bad_name("Shop.example.org", "lower-case");
        expect_bad_name("a b.example.org", "must not contain spaces");
        expect_bad_name("shop\n.example.org", "shop\\n.example.org");
        expect_bad_name("shop\t.example.org", "control characters");
        expect_bad_name("", "must not be empty");
        expect_bad_name("a..example.org", "host");
        expect_bad_name("-a.example.org", "start and end");
        expect_bad_name("a_b.example.org", "lowercase letters, digits");
        expect_bad_name("caf\xc3\xa9.example.org", "control characters");
        memset(long_name, 'a', sizeof(long_name));
        for (int i = 50; i < 260; i += 51)
                long_name[i] = '.';
        long_name[260] = '\0';
        expect_bad_name(long_name, "longer than 253");
}

/* Found by tests/fuzz/fuzz_dns.c: escapes near the end of the message buffer overflowed it. */
static void test_quote_long_escapes(void)
{
        struct sw_err err = SW_ERR_INIT;
        char name[300];
        char *out = NULL;

        for (size_t fill = 1; fill < 8; fill++) {
                memset(name, 'a', fill);
                memset(name + fill, 0xff, sizeof(name) - fill - 1);
                name[sizeof(name) - 1] = '\0';
                sw_err_clear(&err);
                CHECK_INT(dns_name_canonical(&out, name, "host", &err), SW_EINVAL);
                CHECK(strstr(err.msg, "\\xff...") != NULL);
        }
}

static void test_in_zone(void)
{
        struct sw_err err = SW_ERR_INIT;
        char label[80], name[200];
        char *txt;

        CHECK_OK(dns_name_in_zone("shop.apps.example.org.", "example.org.", &err), &err);
        CHECK_INT(dns_name_in_zone("shop.example.com.", "example.org.", &err), SW_EINVAL);
        CHECK(strstr(err.msg, "not inside the zone 'example.org.'") != NULL);
        sw_err_clear(&err);
        CHECK_INT(dns_name_in_zone("xexample.org.", "example.org.", &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(dns_name_in_zone("example.org.", "example.org.", &err), SW_EINVAL);
        sw_err_clear(&err);
        /* a 62-character first label leaves no room for "a-" */
        memset(label, 'b', 62);
        label[62] = '\0';
        snprintf(name, sizeof(name), "%s.example.org.", label);
        CHECK_INT(dns_name_in_zone(name, "example.org.", &err), SW_EINVAL);
        CHECK(strstr(err.msg, "ownership record") != NULL);
        sw_err_clear(&err);
        label[61] = '\0';
        snprintf(name, sizeof(name), "%s.example.org.", label);
        CHECK_OK(dns_name_in_zone(name, "example.org.", &err), &err);

        txt = dns_owner_txt_name("shop.apps.example.org.");
        CHECK_STR(txt, "a-shop.apps.example.org.");
        free(txt);
}

int main(void)
{
        T_RUN(test_txt_format);
        T_RUN(test_txt_parse);
        T_RUN(test_names);
        T_RUN(test_quote_long_escapes);
        T_RUN(test_in_zone);
        return t_done();
}
