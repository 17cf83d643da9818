/*
 * tls.c - the API server's self-signed certificate.
 *
 * kubectl (client-go) sends bearer tokens only over TLS, so the API is
 * served over HTTPS even on loopback. When no certificate is configured,
 * one is generated on first start under the data directory: an ECDSA P-256
 * key and a self-signed certificate for 127.0.0.1 and localhost, valid ten
 * years, which `slipway kubeconfig` hands to kubectl as its CA.
 */
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/mem.h"
#include "orchestrator/orchestrator.h"
#include "common/banned.h"

#define TLS_VALID_S (10L * 365 * 24 * 3600)

static int add_ext(X509 *cert, int nid, const char *value)
{
        X509V3_CTX ctx;
        X509_EXTENSION *ext;
        int ok;

        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        if (!ext)
                return -1;
        ok = X509_add_ext(cert, ext, -1);
        X509_EXTENSION_free(ext);
        return ok ? 0 : -1;
}

/* PEM text of `key` and of a self-signed certificate for it. */
static int make_cert(char **cert_out, char **key_out, struct sw_err *err)
{
        EVP_PKEY *key = NULL;
        X509 *cert = NULL;
        X509_NAME *name;
        BIO *cb = NULL, *kb = NULL;
        unsigned char serial[16];
        BIGNUM *bn = NULL;
        char *data;
        long n;
        int rc = SW_EINTERNAL;

        key = EVP_EC_gen("P-256");
        cert = X509_new();
        if (!key || !cert)
                goto out;
        if (getrandom(serial, sizeof(serial), 0) != (ssize_t)sizeof(serial))
                goto out;
        serial[0] &= 0x7f;
        bn = BN_bin2bn(serial, sizeof(serial), NULL);
        if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)))
                goto out;
        X509_set_version(cert, 2);
        X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
        X509_gmtime_adj(X509_getm_notAfter(cert), TLS_VALID_S);
        X509_set_pubkey(cert, key);
        name = X509_get_subject_name(cert);
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"slipway", -1,
                                   -1, 0);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   (const unsigned char *)"slipway-kube-apiserver", -1, -1, 0);
        X509_set_issuer_name(cert, name);
        if (add_ext(cert, NID_basic_constraints, "critical,CA:TRUE") != 0 ||
            add_ext(cert, NID_key_usage, "critical,digitalSignature,keyCertSign") != 0 ||
            add_ext(cert, NID_ext_key_usage, "serverAuth") != 0 ||
            add_ext(cert, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost") != 0)
                goto out;
        if (!X509_sign(cert, key, EVP_sha256()))
                goto out;
        cb = BIO_new(BIO_s_mem());
        kb = BIO_new(BIO_s_mem());
        if (!cb || !kb || !PEM_write_bio_X509(cb, cert) ||
            !PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL))
                goto out;
        n = BIO_get_mem_data(cb, &data);
        *cert_out = sw_xstrndup(data, (size_t)n);
        n = BIO_get_mem_data(kb, &data);
        *key_out = sw_xstrndup(data, (size_t)n);
        rc = 0;
out:
        if (rc)
                sw_err_set(err, rc, "cannot generate the API server's TLS certificate");
        BIO_free(cb);
        BIO_free(kb);
        BN_free(bn);
        X509_free(cert);
        EVP_PKEY_free(key);
        return rc;
}

/*
 * The certificate and key under `data_dir` (kube-tls.crt, kube-tls.key),
 * generated when absent. *cert_path and *key_path are owned by the caller.
 */
int orch_tls_ensure(char **cert_path, char **key_path, const char *data_dir, struct sw_err *err)
{
        char *cp = sw_xasprintf("%s/kube-tls.crt", data_dir);
        char *kp = sw_xasprintf("%s/kube-tls.key", data_dir);
        char *cert = NULL, *key = NULL;
        int rc = 0;

        if (access(cp, R_OK) != 0 || access(kp, R_OK) != 0) {
                if ((rc = sw_mkdir_p(data_dir, 0700, err)) != 0 ||
                    (rc = make_cert(&cert, &key, err)) != 0)
                        goto out;
                /* The key first: a certificate without its key is never left behind. */
                if ((rc = sw_write_file_atomic(kp, key, strlen(key), 0600, err)) != 0 ||
                    (rc = sw_write_file_atomic(cp, cert, strlen(cert), 0644, err)) != 0)
                        goto out;
        }
        *cert_path = cp;
        *key_path = kp;
        cp = kp = NULL;
out:
        free(cp);
        free(kp);
        free(cert);
        sw_free_secret(key);
        return rc;
}
