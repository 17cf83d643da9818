/*
 * fuzz_dns.c - libFuzzer entry point for the DNS module's parsers of
 * untrusted input: the DNS answer decoder (bytes from the network), the
 * ownership TXT parser (record content written by anyone with API access)
 * and the host name check. Not part of the ctest suite (tests/fuzz/ is
 * outside its globs; tests/unit/dns/test_wire.c runs a seeded corruption
 * loop on every build). Build and run it by hand from the repository root:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 \
 *     -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -I. \
 *     tests/fuzz/fuzz_dns.c dns/wire.c dns/owner.c common/validate.c \
 *     common/buf.c common/mem.c common/err.c -o /tmp/fuzz_dns
 *   /tmp/fuzz_dns -max_len=1024 -max_total_time=300
 *
 * Every input must return without a crash, a leak or undefined behaviour;
 * errors are expected and ignored.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct sw_err err = SW_ERR_INIT;
        struct dns_answer a;
        struct dns_owner own;
        char *text, *canon = NULL;
        uint16_t id = size >= 2 ? (uint16_t)((data[0] << 8) | data[1]) : 0;

        /* As a response to a query for www.example.org with the message's own id. */
        (void)dns_wire_answer(&a, data, size, id, "www.example.org", &err);

        text = malloc(size + 1);
        memcpy(text, data, size);
        text[size] = '\0';
        sw_err_clear(&err);
        (void)dns_owner_txt_parse(&own, text, &err);
        sw_err_clear(&err);
        if (dns_name_canonical(&canon, text, "host", &err) == 0) {
                sw_err_clear(&err);
                (void)dns_name_in_zone(canon, "example.org.", &err);
                free(canon);
        }
        free(text);
        return 0;
}
