/*
 * test_wire.c - the DNS query encoder and answer decoder: exact bytes of a
 * query, answers with compression, case-insensitive names, rcodes, and
 * hostile messages (bad pointers, loops, truncation, random corruption)
 * refused without reading out of bounds.
 */
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"
#include "tests/harness/t.h"

static void test_query_encode(void)
{
        static const uint8_t want[] = {0x12, 0x34, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
                                       0x00, 0x00, 0x00, 3,    'w',  'w',  'w',  7,    'e',
                                       'x',  'a',  'm',  'p',  'l',  'e',  3,    'o',  'r',
                                       'g',  0,    0x00, 0x01, 0x00, 0x01};
        struct sw_err err = SW_ERR_INIT;
        uint8_t buf[DNS_QUERY_MAX_BYTES];
        size_t len = 0;
        char name[400];

        CHECK_OK(
                dns_wire_query(buf, sizeof(buf), &len, 0x1234, "www.example.org", DNS_TYPE_A, &err),
                &err);
        CHECK_INT(len, sizeof(want));
        CHECK(memcmp(buf, want, sizeof(want)) == 0);
        CHECK_OK(dns_wire_query(buf, sizeof(buf), &len, 0x1234, "www.example.org.", DNS_TYPE_A,
                                &err),
                 &err);
        CHECK_INT(len, sizeof(want));
        CHECK(memcmp(buf, want, sizeof(want)) == 0);

        CHECK_INT(dns_wire_query(buf, sizeof(buf), &len, 1, "a..b", DNS_TYPE_A, &err), SW_EINVAL);
        sw_err_clear(&err);
        memset(name, 'x', 64);
        memcpy(name + 64, ".org", 5);
        CHECK_INT(dns_wire_query(buf, sizeof(buf), &len, 1, name, DNS_TYPE_A, &err), SW_EINVAL);
        sw_err_clear(&err);
        /* 5 labels of 63: 320 bytes on the wire, over the 255 limit */
        for (int i = 0; i < 5; i++) {
                memset(name + i * 64, 'y', 63);
                name[i * 64 + 63] = '.';
        }
        name[5 * 64 - 1] = '\0';
        CHECK_INT(dns_wire_query(buf, sizeof(buf), &len, 1, name, DNS_TYPE_A, &err), SW_EINVAL);
        sw_err_clear(&err);
        CHECK_INT(dns_wire_query(buf, 20, &len, 1, "www.example.org", DNS_TYPE_A, &err),
                  SW_ETOOBIG);
}

/* A response to "www.example.org" A with id 0x1234: two A records and a CNAME. */
static size_t make_answer(uint8_t *m)
{
        size_t n = 0;
        static const uint8_t head[] = {0x12, 0x34, 0x84, 0x00, 0x00, 0x01,
                                       0x00, 0x03, 0x00, 0x00, 0x00, 0x00};
        static const uint8_t q[] = {3,   'w', 'w', 'w', 7,   'e', 'x',  'a',  'm',  'p', 'l',
                                    'e', 3,   'o', 'r', 'g', 0,   0x00, 0x01, 0x00, 0x01};
        /* pointer to the question name, A, IN, ttl 60, 192.0.2.10 */
        static const uint8_t a1[] = {0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
                                     0x00, 0x3c, 0x00, 0x04, 192,  0,    2,    10};
        /* an unrelated CNAME at "x" + pointer to "example.org", skipped */
        static const uint8_t c1[] = {1,    'x',  0xc0, 0x10, 0x00, 0x05, 0x00, 0x01,
                                     0x00, 0x00, 0x00, 0x3c, 0x00, 0x02, 0xc0, 0x0c};
        /* the name spelled out in upper case, A 192.0.2.11, ttl 300 */
        static const uint8_t a2[] = {3,    'W',  'W',  'W',  7,    'E',  'X',  'A',
                                     'M',  'P',  'L',  'E',  3,    'O',  'R',  'G',
                                     0,    0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x01,
                                     0x2c, 0x00, 0x04, 192,  0,    2,    11};

        memcpy(m + n, head, sizeof(head));
        n += sizeof(head);
        memcpy(m + n, q, sizeof(q));
        n += sizeof(q);
        memcpy(m + n, a1, sizeof(a1));
        n += sizeof(a1);
        memcpy(m + n, c1, sizeof(c1));
        n += sizeof(c1);
        memcpy(m + n, a2, sizeof(a2));
        n += sizeof(a2);
        return n;
}

static void test_answer_decode(void)
{
        struct sw_err err = SW_ERR_INIT;
        struct dns_answer a;
        uint8_t m[512];
        size_t n = make_answer(m);

        CHECK_OK(dns_wire_answer(&a, m, n, 0x1234, "www.example.org.", &err), &err);
        CHECK_INT(a.rcode, DNS_RCODE_NOERROR);
        CHECK(a.authoritative);
        CHECK(!a.truncated);
        CHECK_INT(a.naddrs, 2);
        CHECK(memcmp(a.addrs[0], "\xc0\x00\x02\x0a", 4) == 0);
        CHECK_INT(a.ttls[0], 60);
        CHECK(memcmp(a.addrs[1], "\xc0\x00\x02\x0b", 4) == 0);
        CHECK_INT(a.ttls[1], 300);
        /* the question is compared without regard to case */
        CHECK_OK(dns_wire_answer(&a, m, n, 0x1234, "WWW.Example.ORG", &err), &err);
        CHECK_INT(a.naddrs, 2);

        /* another id, another question, or a query instead of a response */
        CHECK_INT(dns_wire_answer(&a, m, n, 0x4321, "www.example.org", &err), SW_EPROTO);
        sw_err_clear(&err);
        CHECK_INT(dns_wire_answer(&a, m, n, 0x1234, "ww.example.org", &err), SW_EPROTO);
        sw_err_clear(&err);
        m[2] &= 0x7f;
        CHECK_INT(dns_wire_answer(&a, m, n, 0x1234, "www.example.org", &err), SW_EPROTO);
        m[2] |= 0x80;
        sw_err_clear(&err);

        /* NXDOMAIN with no answers is a valid answer */
        m[3] = 0x03;
        m[7] = 0;
        CHECK_OK(dns_wire_answer(&a, m, 12 + 21, 0x1234, "www.example.org", &err), &err);
        CHECK_INT(a.rcode, DNS_RCODE_NXDOMAIN);
        CHECK_INT(a.naddrs, 0);
}

static void test_hostile_answers(void)
{
        struct sw_err err = SW_ERR_INIT;
        struct dns_answer a;
        uint8_t m[512], copy[512];
        size_t n = make_answer(m);

        /* every truncation of a valid answer fails cleanly */
        for (size_t cut = 0; cut < n; cut++) {
                sw_err_clear(&err);
                CHECK(dns_wire_answer(&a, m, cut, 0x1234, "www.example.org", &err) != 0);
        }
        /* a pointer to itself, and a forward pointer */
        memcpy(copy, m, n);
        copy[12 + 21] = 0xc0;
        copy[12 + 21 + 1] = 12 + 21;
        CHECK_INT(dns_wire_answer(&a, copy, n, 0x1234, "www.example.org", &err), SW_EPROTO);
        sw_err_clear(&err);
        copy[12 + 21 + 1] = 200;
        CHECK_INT(dns_wire_answer(&a, copy, n, 0x1234, "www.example.org", &err), SW_EPROTO);
        sw_err_clear(&err);
        /* an A record whose data is not 4 bytes */
        memcpy(copy, m, n);
        copy[12 + 21 + 11] = 5;
        CHECK_INT(dns_wire_answer(&a, copy, n, 0x1234, "www.example.org", &err), SW_EPROTO);
        sw_err_clear(&err);
        /* an answer count far past the records present */
        memcpy(copy, m, n);
        copy[7] = 0xff;
        CHECK_INT(dns_wire_answer(&a, copy, n, 0x1234, "www.example.org", &err), SW_EPROTO);
        sw_err_clear(&err);

        /* random corruption: never a crash or an out-of-bounds read (ASan checks) */
        srand(42);
        for (int i = 0; i < 20000; i++) {
                size_t len = n;
                memcpy(copy, m, n);
                for (int k = 0; k < 1 + rand() % 4; k++)
                        copy[rand() % n] = (uint8_t)rand();
                if (rand() % 4 == 0)
                        len = (size_t)rand() % (n + 1);
                uint8_t *heap = malloc(len ? len : 1);
                memcpy(heap, copy, len);
                sw_err_clear(&err);
                if (dns_wire_answer(&a, heap, len, 0x1234, "www.example.org", &err) == 0)
                        CHECK(a.naddrs <= DNS_ANSWER_MAX_ADDRS);
                free(heap);
        }
}

int main(void)
{
        T_RUN(test_query_encode);
        T_RUN(test_answer_decode);
        T_RUN(test_hostile_answers);
        return t_done();
}
