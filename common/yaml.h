/*
 * yaml.h - YAML <-> JSON on libyaml, with limits.
 *
 * Kubernetes manifests are YAML on disk and JSON on the wire. Loading maps
 * YAML 1.2 core-schema scalars to JSON types (plain null/~, true/false,
 * integers, floats; everything quoted or else is a string; explicit !!str,
 * !!int, !!bool, !!float, !!null tags are honoured). Aliases are refused: a
 * manifest does not need them and they are how a small file becomes a huge
 * document. Dumping quotes every string that would otherwise be read back
 * as another type, so a round trip keeps types.
 */
#ifndef SW_YAML_H
#define SW_YAML_H

#include <stddef.h>

#include <jansson.h>

#include "common/err.h"

#define SW_YAML_MAX_BYTES ((size_t)4 << 20)
#define SW_YAML_MAX_DEPTH 64

/*
 * Parse every document of a YAML stream into a JSON array (empty documents
 * are skipped). Errors name the line: "line 3 column 5: ...". `what` names the
 * source in messages ("deployment.yaml").
 */
int sw_yaml_load(json_t **docs_out, const char *text, size_t len, const char *what,
                 struct sw_err *err);

/* Emit `docs` (a JSON array: one document each, separated by "---") as YAML; the caller frees. */
int sw_yaml_dump(char **out, const json_t *docs, struct sw_err *err);

/* True when a plain (unquoted) scalar with this text would load as something other than a string. */
int sw_yaml_plain_is_typed(const char *s);

#endif /* SW_YAML_H */
