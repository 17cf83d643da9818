/*
 * layer_cmd.c - `slipway layer pack|apply`, the layer toolkit by hand.
 *
 * For debugging a build or an unpack: pack a directory the way the builder
 * does and print its digests, or apply a layer blob to a directory the way
 * the node agent does.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cli.h"
#include "steps/layer.h"
#include "common/banned.h"

static const char layer_usage[] =
        "usage: slipway layer pack [OPTIONS] DIR OUT\n"
        "       slipway layer apply [OPTIONS] LAYER DIR\n"
        "\n"
        "pack: write DIR as a reproducible OCI layer blob OUT and print its diff_id,\n"
        "digest and size.\n"
        "  --mtime SECONDS   timestamp of every entry (SOURCE_DATE_EPOCH; default 0)\n"
        "  --level N         gzip level 1..9 (default 6)\n"
        "  --uncompressed    write a plain tar\n"
        "  --zstd            compress with zstd (level 3) instead of gzip\n"
        "  --changeset       DIR is an overlayfs upper dir: whiteouts become .wh. entries\n"
        "  --uid N, --gid N  owner and group of every entry (default: as on disk)\n"
        "  --xattrs          store extended attributes\n"
        "\n"
        "apply: extract the layer blob LAYER (gzip, zstd or tar) on top of DIR, applying\n"
        "its whiteouts; never writes outside DIR.\n"
        "  --digest DIGEST   refuse the blob unless its sha256 is DIGEST\n"
        "  --fresh           DIR must be absent or empty; it appears only when all went well\n"
        "  --overlay         keep whiteouts as overlayfs does (0/0 devices, opaque xattr);\n"
        "                    implies --fresh\n"
        "  --no-xattrs       do not restore extended attributes\n";

static int parse_i64(int64_t *out, const char *s, int64_t min, int64_t max)
{
        char *end = NULL;
        long long v;

        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno || !end || end == s || *end || v < min || v > max)
                return -1;
        *out = v;
        return 0;
}

static void print_info(const struct step_layer_info *info)
{
        printf("diff_id: %s\ndigest: %s\nsize: %" PRId64 " bytes\ntar_size: %" PRId64
               " bytes\nentries: %" PRId64 "\nskipped: %" PRId64 "\nmedia_type: %s\n",
               info->diff_id, info->digest, info->size, info->tar_size, info->entries,
               info->skipped, info->media_type);
}

static int cmd_pack(int argc, char **argv)
{
        struct step_layer_pack_options o = STEP_LAYER_PACK_OPTIONS_INIT;
        struct step_layer_info info;
        struct sw_err err = SW_ERR_INIT;
        const char *pos[2];
        int npos = 0;
        int64_t v;

        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                bool more = i + 1 < argc;
                if (strcmp(a, "--mtime") == 0 && more) {
                        if (parse_i64(&o.mtime, argv[++i], 0, INT64_C(8589934591)))
                                return sw_cli_usage_error("layer", "bad --mtime '%s'", argv[i]);
                } else if (strcmp(a, "--level") == 0 && more) {
                        if (parse_i64(&v, argv[++i], 1, 9))
                                return sw_cli_usage_error("layer", "bad --level '%s'", argv[i]);
                        o.gzip_level = (int)v;
                } else if (strcmp(a, "--uid") == 0 && more) {
                        if (parse_i64(&o.uid, argv[++i], 0, INT64_C(4294967294)))
                                return sw_cli_usage_error("layer", "bad --uid '%s'", argv[i]);
                } else if (strcmp(a, "--gid") == 0 && more) {
                        if (parse_i64(&o.gid, argv[++i], 0, INT64_C(4294967294)))
                                return sw_cli_usage_error("layer", "bad --gid '%s'", argv[i]);
                } else if (strcmp(a, "--uncompressed") == 0) {
                        o.compression = STEP_LAYER_UNCOMPRESSED;
                } else if (strcmp(a, "--zstd") == 0) {
                        o.compression = STEP_LAYER_ZSTD;
                } else if (strcmp(a, "--changeset") == 0) {
                        o.changeset = true;
                } else if (strcmp(a, "--xattrs") == 0) {
                        o.xattrs = true;
                } else if (a[0] == '-') {
                        return sw_cli_usage_error("layer", "unknown option '%s'", a);
                } else if (npos < 2) {
                        pos[npos++] = a;
                } else {
                        return sw_cli_usage_error("layer", "too many arguments");
                }
        }
        if (npos != 2)
                return sw_cli_usage_error("layer", "pack needs DIR and OUT");
        if (step_layer_pack(&info, pos[0], pos[1], &o, &err) != 0)
                return sw_cli_fail("layer", "%s", err.msg);
        print_info(&info);
        return 0;
}

static int cmd_apply(int argc, char **argv)
{
        struct step_layer_unpack_options o = STEP_LAYER_UNPACK_OPTIONS_INIT;
        struct step_layer_info info;
        struct sw_err err = SW_ERR_INIT;
        const char *pos[2];
        int npos = 0, rc;
        bool fresh = false;

        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                if (strcmp(a, "--digest") == 0 && i + 1 < argc) {
                        o.expected_digest = argv[++i];
                } else if (strcmp(a, "--fresh") == 0) {
                        fresh = true;
                } else if (strcmp(a, "--overlay") == 0) {
                        o.whiteouts = STEP_LAYER_WHITEOUT_OVERLAY;
                        fresh = true;
                } else if (strcmp(a, "--no-xattrs") == 0) {
                        o.xattrs = false;
                } else if (a[0] == '-') {
                        return sw_cli_usage_error("layer", "unknown option '%s'", a);
                } else if (npos < 2) {
                        pos[npos++] = a;
                } else {
                        return sw_cli_usage_error("layer", "too many arguments");
                }
        }
        if (npos != 2)
                return sw_cli_usage_error("layer", "apply needs LAYER and DIR");
        rc = fresh ? step_layer_unpack(&info, pos[0], pos[1], &o, &err)
                   : step_layer_apply(&info, pos[0], pos[1], &o, &err);
        if (rc != 0)
                return sw_cli_fail("layer", "%s", err.msg);
        print_info(&info);
        return 0;
}

int step_cmd_layer(int argc, char **argv, const struct sw_config *cfg)
{
        (void)cfg;
        if (sw_cli_wants_help(argc, argv)) {
                fputs(layer_usage, stdout);
                return 0;
        }
        if (argc < 2)
                return sw_cli_usage_error("layer", "missing subcommand (pack or apply)");
        if (strcmp(argv[1], "pack") == 0)
                return cmd_pack(argc - 1, argv + 1);
        if (strcmp(argv[1], "apply") == 0)
                return cmd_apply(argc - 1, argv + 1);
        return sw_cli_usage_error("layer", "unknown subcommand '%s'", argv[1]);
}
