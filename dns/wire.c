/*
 * wire.c - just enough of the DNS message format (RFC 1035 section 4) to ask
 * for a name's A records and read the answer.
 *
 * The decoder reads untrusted bytes: every read is bounds-checked against
 * the message length, compression pointers may only point backwards and are
 * followed at most DNS_MAX_HOPS times, and names are limited to 255 bytes on
 * the wire, so a hostile message can neither loop nor read out of bounds.
 */
#include <string.h>

#include "dns/dns.h"
#include "common/banned.h"

#define HEADER_LEN 12
#define FLAG_QR 0x8000
#define FLAG_AA 0x0400
#define FLAG_TC 0x0200
#define NAME_WIRE_MAX 255
#define DNS_MAX_HOPS 32

static uint16_t get16(const uint8_t *p)
{
        return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
        return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
        p[0] = (uint8_t)(v >> 8);
        p[1] = (uint8_t)v;
}

/* Encode `name` as labels into out[0..cap); *len_out gets the length. */
static int name_encode(uint8_t *out, size_t cap, size_t *len_out, const char *name,
                       struct sw_err *err)
{
        size_t len = strlen(name), o = 0;
        const char *p = name;

        if (len > 0 && name[len - 1] == '.')
                len--;
        if (len == 0) {
                if (cap < 1)
                        return sw_err_set(err, SW_ETOOBIG, "dns query: buffer too small");
                out[0] = 0;
                *len_out = 1;
                return 0;
        }
        while (p < name + len) {
                const char *dot = memchr(p, '.', (size_t)(name + len - p));
                size_t l = dot ? (size_t)(dot - p) : (size_t)(name + len - p);

                if (l == 0 || l > 63)
                        return sw_err_set(err, SW_EINVAL,
                                          "dns query: name has an empty label or one longer than "
                                          "63 bytes");
                if (o + 1 + l + 1 > NAME_WIRE_MAX)
                        return sw_err_set(err, SW_EINVAL,
                                          "dns query: name longer than 255 bytes on the wire");
                if (o + 1 + l + 1 > cap)
                        return sw_err_set(err, SW_ETOOBIG, "dns query: buffer too small");
                out[o++] = (uint8_t)l;
                memcpy(out + o, p, l);
                o += l;
                p += l + (dot ? 1 : 0);
        }
        out[o++] = 0;
        *len_out = o;
        return 0;
}

int dns_wire_query(uint8_t *buf, size_t cap, size_t *len_out, uint16_t id, const char *name,
                   uint16_t qtype, struct sw_err *err)
{
        size_t nlen = 0;
        int rc;

        if (cap < HEADER_LEN + 4)
                return sw_err_set(err, SW_ETOOBIG, "dns query: buffer too small");
        memset(buf, 0, HEADER_LEN);
        put16(buf, id);
        put16(buf + 4, 1); /* QDCOUNT; flags 0: a standard query, no recursion wanted */
        rc = name_encode(buf + HEADER_LEN, cap - HEADER_LEN - 4, &nlen, name, err);
        if (rc)
                return rc;
        put16(buf + HEADER_LEN + nlen, qtype);
        put16(buf + HEADER_LEN + nlen + 2, DNS_CLASS_IN);
        *len_out = HEADER_LEN + nlen + 4;
        return 0;
}

/*
 * Read the name at *off into out (lower-case, dotted, no trailing dot,
 * "" for the root) and move *off past it.
 */
static int name_read(char out[NAME_WIRE_MAX + 1], const uint8_t *msg, size_t len, size_t *off,
                     struct sw_err *err)
{
        size_t p = *off, o = 0, wire = 0;
        size_t end = 0; /* where the name ends in the record, once a pointer was taken */
        int hops = 0;

        for (;;) {
                uint8_t l;

                if (p >= len)
                        return sw_err_set(err, SW_EPROTO, "dns answer: name runs past the end");
                l = msg[p];
                if ((l & 0xc0) == 0xc0) {
                        size_t target;

                        if (p + 1 >= len)
                                return sw_err_set(err, SW_EPROTO,
                                                  "dns answer: truncated compression pointer");
                        target = ((size_t)(l & 0x3f) << 8) | msg[p + 1];
                        if (target >= p || ++hops > DNS_MAX_HOPS)
                                return sw_err_set(err, SW_EPROTO,
                                                  "dns answer: bad compression pointer");
                        if (!end)
                                end = p + 2;
                        p = target;
                        continue;
                }
                if (l & 0xc0)
                        return sw_err_set(err, SW_EPROTO, "dns answer: unknown label type");
                if (l == 0) {
                        p++;
                        break;
                }
                wire += (size_t)l + 1;
                if (p + 1 + l > len || wire + 1 > NAME_WIRE_MAX)
                        return sw_err_set(err, SW_EPROTO, "dns answer: name too long");
                if (o)
                        out[o++] = '.';
                for (size_t i = 0; i < l; i++) {
                        char ch = (char)msg[p + 1 + i];
                        out[o++] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
                }
                p += 1 + (size_t)l;
        }
        out[o] = '\0';
        *off = end ? end : p;
        return 0;
}

/* Compare a decoded name with the asked one (trailing dot optional, case ignored). */
static bool name_eq(const char *decoded, const char *asked)
{
        size_t n = strlen(asked);

        if (n > 0 && asked[n - 1] == '.')
                n--;
        if (strlen(decoded) != n)
                return false;
        for (size_t i = 0; i < n; i++) {
                char a = asked[i];
                if (a >= 'A' && a <= 'Z')
                        a = (char)(a - 'A' + 'a');
                if (decoded[i] != a)
                        return false;
        }
        return true;
}

int dns_wire_answer(struct dns_answer *out, const uint8_t *msg, size_t len, uint16_t id,
                    const char *name, struct sw_err *err)
{
        struct dns_answer a;
        char rname[NAME_WIRE_MAX + 1];
        uint16_t flags, qd, an;
        size_t off = HEADER_LEN;
        int rc;

        memset(&a, 0, sizeof(a));
        if (len < HEADER_LEN)
                return sw_err_set(err, SW_EPROTO, "dns answer: %zu bytes, shorter than a header",
                                  len);
        flags = get16(msg + 2);
        if (get16(msg) != id)
                return sw_err_set(err, SW_EPROTO, "dns answer: id %u does not match query %u",
                                  get16(msg), id);
        if (!(flags & FLAG_QR) || ((flags >> 11) & 0xf) != 0)
                return sw_err_set(err, SW_EPROTO, "dns answer: not a response to a query");
        a.rcode = flags & 0xf;
        a.authoritative = (flags & FLAG_AA) != 0;
        a.truncated = (flags & FLAG_TC) != 0;
        qd = get16(msg + 4);
        an = get16(msg + 6);
        if (qd != 1)
                return sw_err_set(err, SW_EPROTO, "dns answer: %u questions instead of 1", qd);
        if ((rc = name_read(rname, msg, len, &off, err)) != 0)
                return rc;
        if (off + 4 > len)
                return sw_err_set(err, SW_EPROTO, "dns answer: truncated question");
        if (!name_eq(rname, name) || get16(msg + off) != DNS_TYPE_A ||
            get16(msg + off + 2) != DNS_CLASS_IN)
                return sw_err_set(err, SW_EPROTO, "dns answer: for another question");
        off += 4;
        for (uint16_t i = 0; i < an; i++) {
                uint16_t type, class, rdlen;
                uint32_t ttl;

                if ((rc = name_read(rname, msg, len, &off, err)) != 0)
                        return rc;
                if (off + 10 > len)
                        return sw_err_set(err, SW_EPROTO, "dns answer: truncated record");
                type = get16(msg + off);
                class = get16(msg + off + 2);
                ttl = get32(msg + off + 4);
                rdlen = get16(msg + off + 8);
                off += 10;
                if (off + rdlen > len)
                        return sw_err_set(err, SW_EPROTO,
                                          "dns answer: record data runs past the end");
                if (type == DNS_TYPE_A && class == DNS_CLASS_IN && name_eq(rname, name)) {
                        if (rdlen != 4)
                                return sw_err_set(err, SW_EPROTO,
                                                  "dns answer: A record of %u bytes", rdlen);
                        if (a.naddrs < DNS_ANSWER_MAX_ADDRS) {
                                memcpy(a.addrs[a.naddrs], msg + off, 4);
                                a.ttls[a.naddrs] = ttl;
                                a.naddrs++;
                        }
                }
                off += rdlen;
        }
        *out = a;
        return 0;
}
