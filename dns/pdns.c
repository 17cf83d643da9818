/*
 * pdns.c - the files a local pdns_server needs: its gsqlite3 database and a
 * pdns.conf that keeps it on loopback.
 *
 * Used by the test harness, and meant for `slipway serve`'s supervisor: both
 * start the same server the same way (the configuration verified in
 * shared/reference/powerdns.md), so what the tests prove holds for the
 * supervised one. Nothing is left half-written: the database is built under
 * a temporary name and renamed into place, and pdns.conf is written
 * atomically with mode 0600 because it holds the API key.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/fs.h"
#include "common/mem.h"
#include "dns/dns.h"
#include "common/banned.h"

#define PDNS_SCHEMA_MAX (1 << 20)

/* "127.0.0.1:5353" -> address and port, IPv4 only. */
static int listen_parse(char addr[INET_ADDRSTRLEN], int *port, const char *s, const char *what,
                        struct sw_err *err)
{
        const char *colon = s ? strrchr(s, ':') : NULL;
        struct in_addr a;
        char *end = NULL;
        long p;

        if (!colon || (size_t)(colon - s) >= INET_ADDRSTRLEN)
                return sw_err_set(err, SW_EINVAL, "%s: expected IPv4:port (127.0.0.1:5353)", what);
        memcpy(addr, s, (size_t)(colon - s));
        addr[colon - s] = '\0';
        errno = 0;
        p = strtol(colon + 1, &end, 10);
        if (inet_pton(AF_INET, addr, &a) != 1 || errno || end == colon + 1 || *end || p < 1 ||
            p > 65535)
                return sw_err_set(err, SW_EINVAL, "%s: expected IPv4:port (127.0.0.1:5353)", what);
        *port = (int)p;
        return 0;
}

/* Create the database from PowerDNS's schema, unless it exists already. */
static int db_create(const char *path, const char *schema_path, struct sw_err *err)
{
        struct stat st;
        sqlite3 *db = NULL;
        char *schema = NULL, *msg = NULL, *tmp = NULL;
        int rc;

        if (stat(path, &st) == 0)
                return 0;
        rc = sw_read_file(&schema, NULL, schema_path, PDNS_SCHEMA_MAX, err);
        if (rc)
                return sw_err_wrap(err, "powerdns schema (Debian package pdns-backend-sqlite3)");
        tmp = sw_xasprintf("%s.tmp", path);
        unlink(tmp);
        if (sqlite3_open(tmp, &db) != SQLITE_OK ||
            sqlite3_exec(db, schema, NULL, NULL, &msg) != SQLITE_OK) {
                rc = sw_err_set(err, SW_EIO, "create powerdns database %s: %s", path,
                                msg ? msg : sqlite3_errmsg(db));
                goto out;
        }
        sqlite3_close(db);
        db = NULL;
        if (rename(tmp, path) != 0)
                rc = sw_err_errno(err, SW_EIO, errno, "create powerdns database %s", path);
out:
        sqlite3_free(msg);
        sqlite3_close(db);
        if (rc)
                unlink(tmp);
        free(tmp);
        free(schema);
        return rc;
}

int dns_pdns_setup(struct dns_pdns_setup *out, const struct dns_pdns_options *opts,
                   struct sw_err *err)
{
        struct dns_pdns_setup s;
        char dns_addr[INET_ADDRSTRLEN], api_addr[INET_ADDRSTRLEN];
        char *conf = NULL, *conf_path = NULL;
        int dns_port = 0, api_port = 0, rc;

        memset(&s, 0, sizeof(s));
        if ((rc = listen_parse(dns_addr, &dns_port, opts->dns_listen, "powerdns dns address",
                               err)) != 0 ||
            (rc = listen_parse(api_addr, &api_port, opts->api_listen, "powerdns api address",
                               err)) != 0)
                return rc;
        if (!opts->api_key || !*opts->api_key || strpbrk(opts->api_key, "\r\n"))
                return sw_err_set(err, SW_EINVAL, "powerdns api key must be set and be one line");
        if ((rc = sw_mkdir_p(opts->dir, 0700, err)) != 0)
                return rc;
        s.db_path = sw_xasprintf("%s/pdns.db", opts->dir);
        rc = db_create(s.db_path, opts->schema_path ? opts->schema_path : DNS_PDNS_SCHEMA, err);
        if (rc)
                goto out;
        conf = sw_xasprintf("# written by slipway; the database is %s\n"
                            "launch=gsqlite3\n"
                            "gsqlite3-database=%s\n"
                            "gsqlite3-pragma-synchronous=1\n"
                            "local-address=%s\n"
                            "local-port=%d\n"
                            "api=yes\n"
                            "api-key=%s\n"
                            "webserver=yes\n"
                            "webserver-address=%s\n"
                            "webserver-port=%d\n"
                            "webserver-allow-from=127.0.0.0/8\n"
                            "socket-dir=%s\n"
                            "security-poll-suffix=\n"
                            "receiver-threads=1\n"
                            "distributor-threads=1\n"
                            "loglevel=4\n",
                            s.db_path, s.db_path, dns_addr, dns_port, opts->api_key, api_addr,
                            api_port, opts->dir);
        conf_path = sw_xasprintf("%s/pdns.conf", opts->dir);
        rc = sw_write_file_atomic(conf_path, conf, strlen(conf), 0600, err);
        if (rc)
                goto out;
        s.api_url = sw_xasprintf("http://%s:%d/api/v1", api_addr, api_port);
        s.config_dir_arg = sw_xasprintf("--config-dir=%s", opts->dir);
        s.argv[0] = DNS_PDNS_SERVER;
        s.argv[1] = "--daemon=no";
        s.argv[2] = "--guardian=no";
        s.argv[3] = "--disable-syslog";
        s.argv[4] = s.config_dir_arg;
        s.argv[5] = NULL;
        *out = s;
        memset(&s, 0, sizeof(s)); /* ownership moved to caller */
out:
        if (conf)
                sw_free_secret(conf);
        free(conf_path);
        dns_pdns_setup_release(&s);
        return rc;
}

void dns_pdns_setup_release(struct dns_pdns_setup *s)
{
        if (!s)
                return;
        free(s->db_path);
        free(s->api_url);
        free(s->config_dir_arg);
        memset(s, 0, sizeof(*s));
}
