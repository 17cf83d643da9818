/*
 * test_pipeline.c - from a commit to an image in the registry, through the
 * real `slipway serve` (with its own docker-registry, PowerDNS and nginx on
 * free loopback ports, its orchestrator, controllers and node agent) and the
 * real CLI; the image is checked with skopeo, the name with dig, the page
 * through nginx.
 */
#include <curl/curl.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/libs.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/mem.h"
#include "tests/harness/proc.h"
#include "tests/harness/t.h"

static char *env_data, *env_reg, *env_reg_listen, *env_dns, *env_api, *env_ingress, *env_kube;

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
        struct sw_err ignored = SW_ERR_INIT;

        return sw_buf_append(arg, data, size * n, &ignored) == 0 ? size * n : 0;
}

static int sw(char **out, const char *a1, const char *a2, const char *a3, const char *a4,
              const char *a5, const char *a6, const char *a7)
{
        char *argv[] = {(char *)t_slipway(), (char *)a1, (char *)a2, (char *)a3, (char *)a4,
                        (char *)a5,          (char *)a6, (char *)a7, NULL};
        const char *env[] = {env_data, env_reg,     env_reg_listen, env_dns,
                             env_api,  env_ingress, env_kube,       NULL};

        return t_run_capture(out, argv, env, 300000);
}

/* GET http://addr/ with a Host header; the body into *out (may be NULL). Returns the status. */
static long get_page(char **out, const char *addr, const char *host)
{
        char *url = sw_xasprintf("http://%s/", addr), *hdr = sw_xasprintf("Host: %s", host);
        struct curl_slist *h = curl_slist_append(NULL, hdr);
        struct sw_buf body = SW_BUF_INIT;
        CURL *c = curl_easy_init();
        long status = 0;

        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
        if (curl_easy_perform(c) == CURLE_OK)
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(c);
        curl_slist_free_all(h);
        if (out)
                *out = sw_buf_detach(&body, NULL);
        sw_buf_release(&body);
        free(url);
        free(hdr);
        return status;
}

static void check_app(const char *expect)
{
        const char *dns = strchr(env_dns, '=') + 1, *colon = strrchr(dns, ':');
        char *port = sw_xstrdup(colon + 1), *at = sw_xasprintf("@127.0.0.1");
        char *argv[] = {"/usr/bin/dig", at,  "-p", port, "hello.default.slipway.local", "A",
                        "+short",       NULL};
        char *out = NULL;

        CHECK_INT(t_run_capture(&out, argv, NULL, 10000), 0);
        CHECK(out && strncmp(out, "127.0.0.1", 9) == 0);
        free(out);
        out = NULL;
        CHECK_INT(get_page(&out, strchr(env_ingress, '=') + 1, "hello.default.slipway.local"), 200);
        if (!out || !strstr(out, expect))
                t_fail(__FILE__, __LINE__, "page lacks '%s': %s", expect, out ? out : "");
        free(out);
        free(port);
        free(at);
}

struct load {
        const char *addr, *host;
        atomic_int stop;
        int ok, failed;
};

static void *load_loop(void *arg)
{
        struct load *l = arg;

        while (!atomic_load(&l->stop)) {
                if (get_page(NULL, l->addr, l->host) == 200)
                        l->ok++;
                else
                        l->failed++;
                sw_sleep_ms(20);
        }
        return NULL;
}

static void git(const char *dir, const char *a, const char *b, const char *c)
{
        char *argv[] = {
                "/usr/bin/git",           "-C",      (char *)dir, "-c",      "user.name=t", "-c",
                "user.email=t@localhost", (char *)a, (char *)b,   (char *)c, NULL};
        char *out = NULL;

        if (t_run_capture(&out, argv, NULL, 30000) != 0)
                t_fail(__FILE__, __LINE__, "git %s: %s", a, out);
        free(out);
}

/* The image of the Deployment's pod template, through kubectl. */
static char *deployed_image(const char *tmp)
{
        char *kc = sw_xasprintf("%s/data/kubeconfig", tmp), *out = NULL;
        char *argv[] = {"/usr/bin/kubectl",
                        "--kubeconfig",
                        kc,
                        "get",
                        "deployment",
                        "hello",
                        "-o",
                        "jsonpath={.spec.template.spec.containers[0].image}",
                        NULL};

        CHECK_INT(t_run_capture(&out, argv, NULL, 30000), 0);
        free(kc);
        return out;
}

/*
 * SLIPWAY_AUTO_ROLLBACK: a release whose container exits at once fails its
 * rollout; the job fails naming the release it rolled back to (job 2), the
 * Deployment's template is job 2's again, and the page is still served.
 */
static void roll_back_a_crash(const char *repo, const char *url, const char *tmp)
{
        static const char crash[] = "FROM scratch\n"
                                    "COPY busybox /bin/busybox\n"
                                    "COPY index.html /www/index.html\n"
                                    "ENV PORT=8080\n"
                                    "EXPOSE 8080\n"
                                    "USER 65534\n"
                                    "ENTRYPOINT [\"/bin/busybox\", \"sh\", \"-c\", "
                                    "\"echo broken release; exit 3\"]\n";
        char *dockerfile = sw_xasprintf("%s/Dockerfile", repo), *out = NULL, *before, *after;
        struct sw_err err = SW_ERR_INIT;
        json_t *job = NULL;

        before = deployed_image(tmp);
        CHECK_INT(sw(&out, "job", "2", "--json", NULL, NULL, NULL, NULL), 0);
        CHECK_OK(sw_json_parse(&job, out, strlen(out), 0, &err), &err);
        CHECK_STR(before,
                  sw_json_str(json_object_get(json_array_get(json_object_get(job, "steps"), 3),
                                              "output"),
                              "image", "?"));
        json_decref(job);
        free(out);
        CHECK_OK(sw_write_file_atomic(dockerfile, crash, sizeof(crash) - 1, 0644, &err), &err);
        git(repo, "commit", "-qam", "three, crashing");
        CHECK(sw(&out, "submit", "--repo", url, "--name", "hello", "--wait", NULL) != 0);
        if (!out || !strstr(out, "job 3 failed") ||
            !strstr(out, "rolled back to the release of job 2"))
                t_fail(__FILE__, __LINE__, "no rollback in: %s", out ? out : "");
        free(out);
        after = deployed_image(tmp);
        CHECK_STR(after, before);
        check_app("Version two");
        free(before);
        free(after);
        free(dockerfile);
}

static void test_commit_to_image(void)
{
        const char *tmp = t_tmpdir();
        int reg_port = t_free_port();
        char *ready = sw_xasprintf("%s/ready", tmp), *log = sw_xasprintf("%s/serve.log", tmp);
        char *repo = sw_xasprintf("%s/hello", tmp), *url = NULL, *out = NULL;
        struct sw_err err = SW_ERR_INIT;
        pid_t serve;

        env_data = sw_xasprintf("SLIPWAY_DATA=%s/data", tmp);
        env_reg = sw_xasprintf("SLIPWAY_REGISTRY=127.0.0.1:%d", reg_port);
        env_reg_listen = sw_xasprintf("SLIPWAY_REGISTRY_LISTEN=127.0.0.1:%d", reg_port);
        env_dns = sw_xasprintf("SLIPWAY_DNS_LISTEN=127.0.0.1:%d", t_free_port());
        env_api = sw_xasprintf("SLIPWAY_PDNS_API_LISTEN=127.0.0.1:%d", t_free_port());
        env_ingress = sw_xasprintf("SLIPWAY_INGRESS_LISTEN=127.0.0.1:%d", t_free_port());
        env_kube = sw_xasprintf("SLIPWAY_KUBE_LISTEN=127.0.0.1:%d", t_free_port());
        {
                char *argv[] = {(char *)t_slipway(), "serve", "--ready-file", ready, NULL};
                const char *env[] = {env_data,
                                     env_reg,
                                     env_reg_listen,
                                     env_dns,
                                     env_api,
                                     env_ingress,
                                     env_kube,
                                     "SLIPWAY_AUTO_ROLLBACK=true",
                                     "SLIPWAY_ROLLOUT_TIMEOUT_MS=30000",
                                     NULL};
                serve = t_spawn_extra(argv, env, log);
        }
        for (int i = 0; i < 240 && access(ready, F_OK) != 0; i++)
                sw_sleep_ms(250);
        CHECK(access(ready, F_OK) == 0);
        CHECK_INT(sw(&out, "status", NULL, NULL, NULL, NULL, NULL, NULL), 0);
        CHECK(strstr(out, "registry") && strstr(out, "pdns") && strstr(out, "nginx"));
        free(out);

        /* the example app, committed */
        char *cp[] = {"/bin/cp", "-r", SW_TEST_SOURCE_DIR "/examples/hello", repo, NULL};
        CHECK_INT(t_run_capture(&out, cp, NULL, 10000), 0);
        free(out);
        char *bb = sw_xasprintf("%s/busybox", repo);
        char *cp2[] = {"/bin/cp", "/bin/busybox", bb, NULL};
        CHECK_INT(t_run_capture(&out, cp2, NULL, 10000), 0);
        free(out);
        free(bb);
        git(repo, "init", "-q", "--initial-branch=main");
        git(repo, "add", "-A", NULL);
        git(repo, "commit", "-qm", "hello");

        url = sw_xasprintf("file://%s", repo);
        CHECK_INT(sw(&out, "submit", "--repo", url, "--name", "hello", "--wait", NULL), 0);
        CHECK(strstr(out, "job 1 succeeded") != NULL);
        free(out);
        CHECK_INT(sw(&out, "job", "1", "--json", NULL, NULL, NULL, NULL), 0);
        json_t *job = NULL;
        CHECK_OK(sw_json_parse(&job, out, strlen(out), 0, &err), &err);
        free(out);
        const json_t *steps = json_object_get(job, "steps"), *st;
        size_t i;
        const char *want[] = {"validate", "clone",  "build", "push",
                              "render",   "deploy", "route", "dns"};
        CHECK_INT(json_array_size(steps), 8);
        json_array_foreach(steps, i, st)
        {
                if (i < 8)
                        CHECK_STR(sw_json_str(st, "name", ""), want[i]);
                CHECK_STR(sw_json_str(st, "state", ""), "succeeded");
        }
        const char *image =
                sw_json_str(json_object_get(json_array_get(steps, 3), "output"), "image", "");
        /* the registry has it: skopeo, another client, reads it back by digest */
        char *ref = sw_xasprintf("docker://%s", image);
        char *argv[] = {"/usr/bin/skopeo",
                        "inspect",
                        "--tls-verify=false",
                        "--format",
                        "{{.Digest}}",
                        ref,
                        NULL};
        CHECK_INT(t_run_capture(&out, argv, NULL, 60000), 0);
        CHECK(strstr(image, "@") && strstr(out, strchr(image, '@') + 1) != NULL);
        free(out);
        /* its labels name the repository and the commit it was built from */
        char *cargv[] = {"/usr/bin/skopeo", "inspect", "--tls-verify=false", "--config", ref, NULL};
        CHECK_INT(t_run_capture(&out, cargv, NULL, 60000), 0);
        {
                json_t *ic = NULL;
                const char *commit = sw_json_str(
                        json_object_get(json_array_get(steps, 1), "output"), "commit", "?");
                CHECK_OK(sw_json_parse(&ic, out, strlen(out), 0, &err), &err);
                const json_t *labels = json_object_get(json_object_get(ic, "config"), "Labels");
                CHECK_STR(sw_json_str(labels, "org.opencontainers.image.source", ""), url);
                CHECK_STR(sw_json_str(labels, "org.opencontainers.image.revision", ""), commit);
                CHECK_INT((int)strlen(commit), 40);
                json_decref(ic);
        }
        free(out);
        free(ref);
        /* the rendered Deployment runs exactly that image */
        const json_t *docs =
                json_object_get(json_object_get(json_array_get(steps, 4), "output"), "documents");
        const json_t *d;
        bool found = false;
        json_array_foreach(docs, i, d)
        {
                if (!strcmp(sw_json_str(d, "kind", ""), "Deployment")) {
                        const json_t *c = json_array_get(
                                json_object_get(
                                        json_object_get(json_object_get(json_object_get(d, "spec"),
                                                                        "template"),
                                                        "spec"),
                                        "containers"),
                                0);
                        CHECK_STR(sw_json_str(c, "image", ""), image);
                        found = true;
                }
        }
        CHECK(found);
        json_decref(job);

        /* the app answers at its URL: DNS from PowerDNS, the page through nginx */
        check_app("Hello from slipway");

        /* a second commit rolls out while requests keep being answered */
        struct load load = {0};
        pthread_t th;
        char *page = sw_xasprintf("%s/index.html", repo);
        struct sw_err werr = SW_ERR_INIT;
        CHECK_OK(sw_write_file_atomic(page, "<h1>Version two</h1>\n", 21, 0644, &werr), &werr);
        free(page);
        git(repo, "commit", "-qam", "two");
        load.host = "hello.default.slipway.local";
        load.addr = strchr(env_ingress, '=') + 1;
        pthread_create(&th, NULL, load_loop, &load);
        CHECK_INT(sw(&out, "submit", "--repo", url, "--name", "hello", "--wait", NULL), 0);
        CHECK(strstr(out, "job 2 succeeded") != NULL);
        free(out);
        atomic_store(&load.stop, 1);
        pthread_join(th, NULL);
        CHECK(load.ok > 0);
        CHECK_INT(load.failed, 0);
        check_app("Version two");

        /* a third commit crashes: the job fails and the second release is put back */
        roll_back_a_crash(repo, url, tmp);

        kill(serve, SIGTERM);
        CHECK_INT(t_wait(serve, 60000), 0);
        /* nothing of the app outlives serve: no container in the node's runtime state */
        char *state = sw_xasprintf("%s/data/node/slipway-node/runc", tmp);
        DIR *sd = opendir(state);
        struct dirent *de;
        while (sd && (de = readdir(sd)) != NULL)
                if (de->d_name[0] != '.')
                        t_fail(__FILE__, __LINE__, "container %s left behind", de->d_name);
        if (sd)
                closedir(sd);
        free(state);
        free(ready);
        free(log);
        free(repo);
        free(url);
}

int main(void)
{
        if (geteuid() != 0) {
                printf("needs root (runc, overlayfs); skipped\n");
                return 0;
        }
        sw_libs_init();
        T_RUN(test_commit_to_image);
        return t_done();
}
