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

static pthread_once_t http_once = PTHREAD_ONCE_INIT;
static pthread_once_t libs_once = PTHREAD_ONCE_INIT;
static atomic_bool http_ready;
static atomic_bool git_ready;

static void http_do_init(void)
{
        curl_global_init(CURL_GLOBAL_DEFAULT);
        atomic_store(&http_ready, true);
}

static void libs_do_init(void)
{
        pthread_once(&http_once, http_do_init);
        git_libgit2_init();
        atomic_store(&git_ready, true);
}

void sw_libs_init_http(void)
{
        pthread_once(&http_once, http_do_init);
}

void sw_libs_init(void)
{
        pthread_once(&libs_once, libs_do_init);
}

void sw_libs_shutdown(void)
{
        if (atomic_load(&git_ready))
                git_libgit2_shutdown();
        if (atomic_load(&http_ready))
                curl_global_cleanup();
}
