/*
 * pdns.c - start and stop a real pdns_server for tests (see pdns.h).
 */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/mem.h"
#include "dns/dns.h"
#include "tests/harness/pdns.h"
#include "tests/harness/proc.h"
#include "tests/harness/t.h"

#define PDNS_BIN "/usr/sbin/pdns_server"
#define PDNS_SCHEMA "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql"
#define PDNS_START_MS 15000

static int create_db(const char *path)
{
        struct sw_err err = SW_ERR_INIT;
        sqlite3 *db = NULL;
        char *schema = NULL, *msg = NULL;
        int rc = -1;

        if (sw_read_file(&schema, NULL, PDNS_SCHEMA, 1 << 20, &err) != 0) {
                fprintf(stderr, "pdns schema: %s\n", err.msg);
                return -1;
        }
        if (sqlite3_open(path, &db) == SQLITE_OK &&
            sqlite3_exec(db, schema, NULL, NULL, &msg) == SQLITE_OK)
                rc = 0;
        else
                fprintf(stderr, "pdns database %s: %s\n", path, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        sqlite3_close(db);
        free(schema);
        return rc;
}

static bool tcp_open(int port)
{
        struct sockaddr_in a;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        bool ok;

        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons((uint16_t)port);
        ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(fd);
        return ok;
}

static int wait_ready(struct tp_pdns *p)
{
        int64_t deadline = sw_mono_ms() + PDNS_START_MS;

        while (sw_mono_ms() < deadline) {
                struct dns_answer a;
                struct sw_err err = SW_ERR_INIT;

                if (tp_wait(p->pid, 0) >= 0) {
                        fprintf(stderr, "pdns_server exited early; see %s/pdns.log\n", p->dir);
                        p->pid = -1;
                        return -1;
                }
                /* Any answer, even REFUSED for a name outside every zone, means it serves. */
                if (tcp_open(p->api_port) &&
                    dns_query_a(&a, p->server, "ready.invalid.", 200, &err) == 0)
                        return 0;
                sw_sleep_ms(20);
        }
        fprintf(stderr, "pdns_server did not start within %d ms; see %s/pdns.log\n", PDNS_START_MS,
                p->dir);
        tp_pdns_stop(p);
        return -1;
}

int tp_pdns_restart(struct tp_pdns *p)
{
        char conf_dir[300], log_path[300];
        char *argv[] = {PDNS_BIN,           "--daemon=no", "--guardian=no",
                        "--disable-syslog", conf_dir,      NULL};

        snprintf(conf_dir, sizeof(conf_dir), "--config-dir=%s", p->dir);
        snprintf(log_path, sizeof(log_path), "%s/pdns.log", p->dir);
        p->pid = tp_spawn(argv, NULL, log_path);
        if (p->pid < 0)
                return -1;
        return wait_ready(p);
}

int tp_pdns_start(struct tp_pdns *p, const char *api_key)
{
        static int seq;
        struct sw_err err = SW_ERR_INIT;
        char path[320];
        char *conf;
        int rc;

        memset(p, 0, sizeof(*p));
        p->pid = -1;
        snprintf(p->dir, sizeof(p->dir), "%s/pdns%d", t_tmpdir(), ++seq);
        snprintf(p->api_key, sizeof(p->api_key), "%s", api_key);
        if (sw_mkdir_p(p->dir, 0700, &err) != 0) {
                fprintf(stderr, "pdns dir: %s\n", err.msg);
                return -1;
        }
        snprintf(path, sizeof(path), "%s/pdns.db", p->dir);
        if (create_db(path) != 0)
                return -1;
        p->dns_port = tp_free_port();
        do
                p->api_port = tp_free_port();
        while (p->api_port == p->dns_port);
        snprintf(p->api_url, sizeof(p->api_url), "http://127.0.0.1:%d/api/v1", p->api_port);
        snprintf(p->server, sizeof(p->server), "127.0.0.1:%d", p->dns_port);
        conf = sw_xasprintf("launch=gsqlite3\n"
                            "gsqlite3-database=%s\n"
                            "local-address=127.0.0.1\n"
                            "local-port=%d\n"
                            "api=yes\n"
                            "api-key=%s\n"
                            "webserver=yes\n"
                            "webserver-address=127.0.0.1\n"
                            "webserver-port=%d\n"
                            "webserver-allow-from=127.0.0.0/8\n"
                            "socket-dir=%s\n"
                            "security-poll-suffix=\n"
                            "gsqlite3-pragma-synchronous=1\n"
                            "receiver-threads=1\n"
                            "distributor-threads=1\n"
                            "loglevel=4\n",
                            path, p->dns_port, api_key, p->api_port, p->dir);
        snprintf(path, sizeof(path), "%s/pdns.conf", p->dir);
        rc = sw_write_file_atomic(path, conf, strlen(conf), 0600, &err);
        free(conf);
        if (rc != 0) {
                fprintf(stderr, "pdns.conf: %s\n", err.msg);
                return -1;
        }
        return tp_pdns_restart(p);
}

void tp_pdns_stop(struct tp_pdns *p)
{
        if (p->pid <= 0)
                return;
        kill(p->pid, SIGTERM);
        if (tp_wait(p->pid, 5000) < 0)
                tp_kill(p->pid);
        p->pid = -1;
}
