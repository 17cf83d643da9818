/*
 * digest.c - sha256 on OpenSSL's EVP interface.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/digest.h"
#include "common/mem.h"
#include "common/banned.h"

struct sw_sha256 {
        EVP_MD_CTX *md;
};

struct sw_sha256 *sw_sha256_new(void)
{
        struct sw_sha256 *h = sw_xcalloc(1, sizeof(*h));

        h->md = EVP_MD_CTX_new();
        /* Like any allocation failure, an unusable digest context is fatal (mem.h). */
        if (!h->md || EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1)
                abort();
        return h;
}

void sw_sha256_update(struct sw_sha256 *h, const void *data, size_t len)
{
        EVP_DigestUpdate(h->md, data, len);
}

void sw_sha256_final(struct sw_sha256 *h, char out[SW_DIGEST_STR_LEN])
{
        static const char hex[] = "0123456789abcdef";
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;

        EVP_DigestFinal_ex(h->md, md, &n);
        memcpy(out, "sha256:", 7);
        for (unsigned int i = 0; i < n && i < 32; i++) {
                out[7 + 2 * i] = hex[md[i] >> 4];
                out[7 + 2 * i + 1] = hex[md[i] & 15];
        }
        out[7 + 64] = '\0';
        EVP_DigestInit_ex(h->md, EVP_sha256(), NULL);
}

void sw_sha256_free(struct sw_sha256 *h)
{
        if (!h)
                return;
        EVP_MD_CTX_free(h->md);
        free(h);
}

void sw_sha256_digest(char out[SW_DIGEST_STR_LEN], const void *data, size_t len)
{
        struct sw_sha256 *h = sw_sha256_new();

        sw_sha256_update(h, data, len);
        sw_sha256_final(h, out);
        sw_sha256_free(h);
}

int sw_sha256_file(char out[SW_DIGEST_STR_LEN], int64_t *size_out, const char *path,
                   struct sw_err *err)
{
        unsigned char buf[65536];
        struct sw_sha256 *h;
        int64_t total = 0;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return sw_err_errno(err, sw_err_from_errno(errno), errno, "open '%s'", path);
        h = sw_sha256_new();
        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        int rc = sw_err_errno(err, SW_EIO, errno, "read '%s'", path);
                        sw_sha256_free(h);
                        close(fd);
                        return rc;
                }
                if (n == 0)
                        break;
                sw_sha256_update(h, buf, (size_t)n);
                total += n;
        }
        close(fd);
        sw_sha256_final(h, out);
        sw_sha256_free(h);
        if (size_out)
                *size_out = total;
        return 0;
}

int sw_digest_valid(const char *s)
{
        if (strncmp(s, "sha256:", 7) != 0 || strlen(s) != 7 + 64)
                return 0;
        for (int i = 7; i < 7 + 64; i++)
                if (!strchr("0123456789abcdef", s[i]) || s[i] == '\0')
                        return 0;
        return 1;
}
