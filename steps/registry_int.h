/*
 * registry_int.h - helpers shared by the files of the registry client.
 */
#ifndef SW_STEPS_REGISTRY_INT_H
#define SW_STEPS_REGISTRY_INT_H

#include <stdbool.h>

/* A repository path: lowercase alphanumeric components joined by / with . _ - inside. */
bool step__registry_repo_valid(const char *s);
/* A tag: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}. */
bool step__registry_tag_valid(const char *s);

#endif /* SW_STEPS_REGISTRY_INT_H */
