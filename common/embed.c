/*
 * embed.c - lookup in the table of embedded files.
 */
#include <string.h>

#include "common/embed.h"
#include "common/banned.h"

const struct sw_embedded_file *sw_embedded_find(const char *name)
{
        for (const struct sw_embedded_file *f = sw_embedded; f->name; f++)
                if (strcmp(f->name, name) == 0)
                        return f;
        return NULL;
}
