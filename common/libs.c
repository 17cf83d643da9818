/*
 * libs.c - once-only global initialisation of libcurl and libgit2.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <curl/curl.h>
#include <git2.h>

#include "common/libs.h"
#include "common/banned.h"

static pthread_once_t libs_once = PTHREAD_ONCE_INIT;
static atomic_bool libs_ready;

static void libs_do_init(void)
{
        curl_global_init(CURL_GLOBAL_DEFAULT);
        git_libgit2_init();
        atomic_store(&libs_ready, true);
}

void sw_libs_init(void)
{
        pthread_once(&libs_once, libs_do_init);
}

void sw_libs_shutdown(void)
{
        if (!atomic_load(&libs_ready))
                return;
        git_libgit2_shutdown();
        curl_global_cleanup();
}
