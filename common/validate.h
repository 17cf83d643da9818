/*
 * validate.h - the names and values that reach YAML, DNS and nginx.
 *
 * Every name that slipway puts into a Kubernetes object, a DNS record or an
 * nginx configuration goes through one of these first. Each returns 0 or
 * SW_EINVAL with a message naming `what` (the field, e.g. "--name").
 */
#ifndef SW_VALIDATE_H
#define SW_VALIDATE_H

#include <jansson.h>
#include <stdint.h>

#include "common/err.h"

/* RFC 1123 label: 1-63 of [a-z0-9-], alphanumeric at both ends (namespaces, pod names). */
int sw_valid_dns1123_label(const char *s, const char *what, struct sw_err *err);
/* RFC 1035 label: like RFC 1123 but starting with a letter (Service names). */
int sw_valid_dns1035_label(const char *s, const char *what, struct sw_err *err);
/* RFC 1123 subdomain: dot-separated labels, at most 253 characters (hosts, object names). */
int sw_valid_dns1123_subdomain(const char *s, const char *what, struct sw_err *err);
/* A git branch or tag name, by git-check-ref-format's rules. */
int sw_valid_git_ref(const char *s, const char *what, struct sw_err *err);
/* 4 to 40 hexadecimal digits. */
int sw_valid_git_commit(const char *s, const char *what, struct sw_err *err);
/* A repository URL slipway can clone: https://, http://, git://, ssh://, file:// or an absolute path. */
int sw_valid_repo_url(const char *s, const char *what, struct sw_err *err);

/*
 * A Kubernetes quantity ("500m", "1.5", "128Mi", "1G", "2e3"), as the value
 * times 1000 rounded up (millicores for cpu; for memory divide by 1000).
 * Negative quantities and values past 2^62 are refused.
 */
int sw_quantity_milli(int64_t *out, const char *s, const char *what, struct sw_err *err);
/* The same of a JSON number or text; `def` when it is neither. */
int64_t sw_json_quantity(const json_t *v, int64_t def);

#endif /* SW_VALIDATE_H */
