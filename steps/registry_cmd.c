/*
 * registry_cmd.c - `slipway push LAYOUT_DIR REF` and `slipway pull REF LAYOUT_DIR`:
 * the registry client alone, for scripting and debugging, with one progress
 * line per blob.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/config.h"
#include "engine/cli.h"
#include "steps/oci.h"
#include "steps/registry.h"
#include "common/banned.h"

static const char *result_word(enum step_registry_blob_result r)
{
        switch (r) {
        case STEP_REGISTRY_UPLOADED:
                return "uploaded";
        case STEP_REGISTRY_EXISTED:
                return "skipped";
        case STEP_REGISTRY_MOUNTED:
                return "mounted";
        case STEP_REGISTRY_DOWNLOADED:
                return "downloaded";
        case STEP_REGISTRY_PRESENT:
                return "present";
        }
        return "?";
}

static void fmt_bytes(char *out, size_t size, int64_t n)
{
        if (n >= (int64_t)1 << 20)
                snprintf(out, size, "%.1f MiB", (double)n / (1 << 20));
        else if (n >= 1024)
                snprintf(out, size, "%.1f KiB", (double)n / 1024);
        else
                snprintf(out, size, "%lld B", (long long)n);
}

static void print_progress(void *arg, const struct step_registry_progress *p)
{
        char bytes[32], rate[32], dur[16];
        bool moved = p->result == STEP_REGISTRY_UPLOADED || p->result == STEP_REGISTRY_DOWNLOADED;

        (void)arg;
        fmt_bytes(bytes, sizeof(bytes), p->size);
        sw_duration_fmt(dur, sizeof(dur), p->elapsed_ms);
        if (moved && p->elapsed_ms > 0)
                fmt_bytes(rate, sizeof(rate), p->size * 1000 / p->elapsed_ms);
        else
                snprintf(rate, sizeof(rate), "-");
        printf("%-8s %.19s  %10s  %-10s %7s  %s/s\n", p->what, p->digest, bytes,
               result_word(p->result), dur, rate);
        fflush(stdout);
}

static int open_client(struct step_registry **out, const struct sw_config *cfg, const char *host,
                       struct sw_err *err)
{
        struct step_registry_options o = STEP_REGISTRY_OPTIONS_INIT;

        step_registry_options_from_config(&o, cfg, host);
        o.progress = print_progress;
        return step_registry_new(out, &o, err);
}

int step_registry_cmd_push(int argc, char **argv, const struct sw_config *cfg)
{
        static const struct option longopts[] = {{"mount-from", required_argument, NULL, 'm'},
                                                 {"name", required_argument, NULL, 'n'},
                                                 {"help", no_argument, NULL, 'h'},
                                                 {NULL, 0, NULL, 0}};
        struct sw_err err = SW_ERR_INIT;
        struct step_registry_ref ref;
        struct step_oci_layout *l = NULL;
        struct step_registry *r = NULL;
        const char *mount_from = NULL, *name = NULL;
        char digest[SW_DIGEST_STR_LEN];
        int c, rc;

        optind = 1;
        while ((c = getopt_long(argc, argv, "m:n:h", longopts, NULL)) != -1) {
                switch (c) {
                case 'm':
                        mount_from = optarg;
                        break;
                case 'n':
                        name = optarg;
                        break;
                case 'h':
                        printf("usage: slipway push [--mount-from REPO] [--name NAME] LAYOUT_DIR "
                               "REF\n\n"
                               "Push an image from an OCI image layout to a registry.\n"
                               "REF is host[:port]/repository[:tag] (tag 'latest' by default;\n"
                               "without a host, SLIPWAY_REGISTRY is used). The image taken is the\n"
                               "layout entry named NAME, else the one named like the tag, else the\n"
                               "layout's only image. Blobs the registry has are skipped.\n\n"
                               "  --mount-from REPO  mount missing blobs from REPO of the same\n"
                               "                     registry instead of uploading them\n"
                               "  --name NAME        the org.opencontainers.image.ref.name to push\n\n"
                               "Credentials: SLIPWAY_REGISTRY_USER and SLIPWAY_REGISTRY_PASSWORD, or\n"
                               "SLIPWAY_DOCKER_CONFIG; plain HTTP for SLIPWAY_INSECURE_REGISTRIES.\n");
                        return 0;
                default:
                        return sw_cli_usage_error("push", "unknown option");
                }
        }
        if (argc - optind != 2)
                return sw_cli_usage_error("push", "expected LAYOUT_DIR and REF");
        if (step_registry_ref_parse(&ref, argv[optind + 1], cfg->registry, &err) != 0)
                return sw_cli_usage_error("push", "%s", err.msg);
        if (ref.digest[0] && !ref.tag[0])
                return sw_cli_usage_error("push", "push needs a tag, not a digest: '%s'",
                                          argv[optind + 1]);
        rc = step_oci_layout_open(&l, argv[optind], false, &err);
        if (rc == 0 && !name) {
                /* No --name: the entry named like the tag, else the layout's only image. */
                struct step_oci_desc d;
                struct sw_err e2 = SW_ERR_INIT;
                name = step_oci_ref_resolve(&d, l, ref.tag, &e2) == 0 ? ref.tag : NULL;
        }
        if (rc == 0)
                rc = open_client(&r, cfg, ref.host, &err);
        if (rc == 0)
                rc = step_registry_push(digest, r, l, name, ref.repo, ref.tag, mount_from, &err);
        step_registry_free(r);
        step_oci_layout_free(l);
        if (rc)
                return sw_cli_fail("push", "%s", err.msg);
        printf("pushed %s/%s:%s@%s\n", ref.host, ref.repo, ref.tag, digest);
        return 0;
}

int step_registry_cmd_pull(int argc, char **argv, const struct sw_config *cfg)
{
        static const struct option longopts[] = {{"name", required_argument, NULL, 'n'},
                                                 {"help", no_argument, NULL, 'h'},
                                                 {NULL, 0, NULL, 0}};
        struct sw_err err = SW_ERR_INIT;
        struct step_registry_ref ref;
        struct step_oci_layout *l = NULL;
        struct step_registry *r = NULL;
        struct step_oci_desc desc;
        const char *name = NULL;
        int c, rc;

        optind = 1;
        while ((c = getopt_long(argc, argv, "n:h", longopts, NULL)) != -1) {
                switch (c) {
                case 'n':
                        name = optarg;
                        break;
                case 'h':
                        printf("usage: slipway pull [--name NAME] REF LAYOUT_DIR\n\n"
                               "Pull an image from a registry into an OCI image layout (created\n"
                               "when missing). REF is host[:port]/repository[:tag|@sha256:...];\n"
                               "from a multi-platform index the linux/amd64 image is taken. Every\n"
                               "blob is verified against its digest; on failure the layout keeps\n"
                               "only complete blobs and its index.json is unchanged.\n\n"
                               "  --name NAME  the org.opencontainers.image.ref.name to record\n"
                               "               (default: the tag)\n\n"
                               "Credentials: SLIPWAY_REGISTRY_USER and SLIPWAY_REGISTRY_PASSWORD, or\n"
                               "SLIPWAY_DOCKER_CONFIG; plain HTTP for SLIPWAY_INSECURE_REGISTRIES.\n");
                        return 0;
                default:
                        return sw_cli_usage_error("pull", "unknown option");
                }
        }
        if (argc - optind != 2)
                return sw_cli_usage_error("pull", "expected REF and LAYOUT_DIR");
        if (step_registry_ref_parse(&ref, argv[optind], cfg->registry, &err) != 0)
                return sw_cli_usage_error("pull", "%s", err.msg);
        rc = step_oci_layout_open(&l, argv[optind + 1], true, &err);
        if (rc == 0)
                rc = open_client(&r, cfg, ref.host, &err);
        if (rc == 0)
                rc = step_registry_pull(&desc, r, ref.repo, ref.digest[0] ? ref.digest : ref.tag, l,
                                        name         ? name
                                        : ref.tag[0] ? ref.tag
                                                     : NULL,
                                        &err);
        step_registry_free(r);
        step_oci_layout_free(l);
        if (rc)
                return sw_cli_fail("pull", "%s", err.msg);
        printf("pulled %s/%s@%s\n", ref.host, ref.repo, desc.digest);
        return 0;
}
