/*
 * base64.c - base64 with OpenSSL's EVP block functions.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/base64.h"
#include "common/mem.h"
#include "common/banned.h"

char *sw_base64_encode(const void *data, size_t len)
{
        char *out = sw_xmalloc(4 * ((len + 2) / 3) + 1);

        EVP_EncodeBlock((unsigned char *)out, data, (int)len);
        return out;
}

int sw_base64_decode(unsigned char **out, size_t *len_out, const char *text, struct sw_err *err)
{
        size_t n = 0, len = strlen(text), pad = 0;
        char *clean = sw_xmalloc(len + 1);
        unsigned char *bin;
        int got;

        for (size_t i = 0; i < len; i++)
                if (text[i] != ' ' && text[i] != '\n' && text[i] != '\r' && text[i] != '\t')
                        clean[n++] = text[i];
        clean[n] = '\0';
        if (n % 4 != 0) {
                free(clean);
                return sw_err_set(err, SW_EINVAL,
                                  "invalid base64: length %zu is not a multiple "
                                  "of 4",
                                  n);
        }
        if (n >= 1 && clean[n - 1] == '=')
                pad++;
        if (n >= 2 && clean[n - 2] == '=')
                pad++;
        bin = sw_xmalloc(n / 4 * 3 + 1);
        got = EVP_DecodeBlock(bin, (const unsigned char *)clean, (int)n);
        sw_wipe(clean, n);
        free(clean);
        if (got < 0) {
                free(bin);
                return sw_err_set(err, SW_EINVAL, "invalid base64");
        }
        /* EVP_DecodeBlock counts padding as data. */
        got -= (int)pad;
        bin[got] = '\0';
        *out = bin;
        *len_out = (size_t)got;
        return 0;
}

int sw_hex_digit(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

char *sw_pct_decode(const char *s, size_t n)
{
        char *out = sw_xmalloc(n + 1);
        size_t j = 0;

        for (size_t i = 0; i < n; i++) {
                if (s[i] == '%' && i + 2 < n && sw_hex_digit(s[i + 1]) >= 0 &&
                    sw_hex_digit(s[i + 2]) >= 0) {
                        out[j++] = (char)(sw_hex_digit(s[i + 1]) * 16 + sw_hex_digit(s[i + 2]));
                        i += 2;
                } else {
                        out[j++] = s[i];
                }
        }
        out[j] = '\0';
        return out;
}
