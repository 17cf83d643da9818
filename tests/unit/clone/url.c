/*
 * url.c - repository URLs without credentials, and the credentials file.
 */
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "common/mem.h"
#include "common/validate.h"
#include "steps/clone.h"
#include "tests/harness/t.h"

static void test_url_clean(void)
{
        struct sw_err err = SW_ERR_INIT;
        char *out = NULL;

        CHECK_OK(step_clone_url_clean(&out, "https://git.example.com/a/b.git", &err), &err);
        CHECK_STR(out, "https://git.example.com/a/b.git");
        free(out);
        CHECK_OK(step_clone_url_clean(&out, "https://deploy@git.example.com:8443/b.git", &err),
                 &err);
        CHECK_STR(out, "https://git.example.com:8443/b.git");
        free(out);
        CHECK_OK(step_clone_url_clean(&out, "/srv/git/app.git", &err), &err);
        CHECK_STR(out, "/srv/git/app.git");
        free(out);
        out = NULL;
        CHECK_INT(step_clone_url_clean(&out, "https://bob:hunter22@h/r.git", &err), SW_EINVAL);
        CHECK(out == NULL);
        CHECK(strstr(err.msg, "must not contain a password") != NULL);
        CHECK(strstr(err.msg, "hunter22") == NULL);
}

static void test_valid_repo_url_refuses_password(void)
{
        struct sw_err err = SW_ERR_INIT;

        CHECK_INT(sw_valid_repo_url("http://bob:s3cret-pw@127.0.0.1:8080/x.git", "--repo", &err),
                  SW_EINVAL);
        CHECK(strstr(err.msg, "--repo") != NULL);
        CHECK(strstr(err.msg, "s3cret-pw") == NULL);
        sw_err_clear(&err);
        /* A user name alone, and '@' or ':' in the path, are fine. */
        CHECK_OK(sw_valid_repo_url("https://deploy@git.example.com/a.git", "--repo", &err), &err);
        CHECK_OK(sw_valid_repo_url("https://git.example.com:443/a/@b:c.git", "--repo", &err), &err);
}

static char *creds(const char *text)
{
        struct sw_err err = SW_ERR_INIT;
        char *path = sw_xasprintf("%s/creds-%zu", t_tmpdir(), strlen(text));

        if (sw_write_file_atomic(path, text, strlen(text), 0600, &err) != 0)
                t_fail(__FILE__, __LINE__, "%s", err.msg);
        return path;
}

static void test_credentials_lookup(void)
{
        struct sw_err err = SW_ERR_INIT;
        char *user = NULL, *pw = NULL;
        char *file = creds("# comment lines and junk are skipped\n"
                           "not a url\n"
                           "https://ci:first%40pass@git.example.com/team-a\n"
                           "https://ci:second-pass@git.example.com\r\n"
                           "http://robot:p%3Ass%2Fword@127.0.0.1:8080\n"
                           "https://other:x-pass@other.example.com:8443\n");

        /* The path prefix narrows a line to the repositories under it. */
        CHECK_OK(step_clone_credentials_lookup(&user, &pw, file,
                                               "https://git.example.com/team-a/app.git", &err),
                 &err);
        CHECK_STR(user, "ci");
        CHECK_STR(pw, "first@pass");
        free(user);
        sw_free_secret(pw);
        CHECK_OK(step_clone_credentials_lookup(&user, &pw, file,
                                               "https://git.example.com:443/team-b/app.git", &err),
                 &err);
        CHECK_STR(pw, "second-pass");
        free(user);
        sw_free_secret(pw);
        /* "team-ab" is not under "team-a". */
        CHECK_OK(step_clone_credentials_lookup(&user, &pw, file,
                                               "https://git.example.com/team-ab/app.git", &err),
                 &err);
        CHECK_STR(pw, "second-pass");
        free(user);
        sw_free_secret(pw);
        CHECK_OK(step_clone_credentials_lookup(&user, &pw, file, "http://127.0.0.1:8080/x.git",
                                               &err),
                 &err);
        CHECK_STR(user, "robot");
        CHECK_STR(pw, "p:ss/word");
        free(user);
        sw_free_secret(pw);

        /* Another scheme, port or host gets nothing. */
        user = pw = NULL;
        CHECK_INT(step_clone_credentials_lookup(&user, &pw, file, "http://git.example.com/a.git",
                                                &err),
                  SW_ENOTFOUND);
        sw_err_clear(&err);
        CHECK_INT(step_clone_credentials_lookup(&user, &pw, file, "http://127.0.0.1:8081/x.git",
                                                &err),
                  SW_ENOTFOUND);
        sw_err_clear(&err);
        CHECK_INT(step_clone_credentials_lookup(&user, &pw, file, "https://other.example.com/x.git",
                                                &err),
                  SW_ENOTFOUND);
        CHECK(strstr(err.msg, "https://other.example.com:443") != NULL);
        CHECK(user == NULL && pw == NULL);
        sw_err_clear(&err);
        free(file);

        file = sw_xasprintf("%s/absent", t_tmpdir());
        CHECK(step_clone_credentials_lookup(&user, &pw, file, "https://h/x.git", &err) != 0);
        CHECK(strstr(err.msg, "SLIPWAY_GIT_CREDENTIALS") != NULL);
        free(file);
}

static void test_options_checked(void)
{
        struct step_clone_options o = STEP_CLONE_OPTIONS_INIT;
        struct step_clone_result r;
        struct sw_err err = SW_ERR_INIT;

        o.url = "ssh://git@example.com/x.git";
        o.branch = "main";
        o.cache_dir = "/tmp/unused-cache";
        o.dest = "/tmp/unused-dest";
        CHECK_INT(step_clone_run(&r, &o, &err), SW_EINVAL);
        CHECK(strstr(err.msg, "ssh://") != NULL);
        sw_err_clear(&err);
        o.url = "https://example.com/x.git";
        o.branch = "bad..ref";
        CHECK_INT(step_clone_run(&r, &o, &err), SW_EINVAL);
        CHECK(strstr(err.msg, "branch") != NULL);
        sw_err_clear(&err);
        o.branch = NULL;
        o.commit = "xyz";
        CHECK_INT(step_clone_run(&r, &o, &err), SW_EINVAL);
        CHECK(strstr(err.msg, "commit") != NULL);
        sw_err_clear(&err);
        o.commit = NULL;
        CHECK_INT(step_clone_run(&r, &o, &err), SW_EINVAL);
        sw_err_clear(&err);
        o.branch = "main";
        o.dest = "relative/dir";
        CHECK_INT(step_clone_run(&r, &o, &err), SW_EINVAL);
}

int main(void)
{
        T_RUN(test_url_clean);
        T_RUN(test_valid_repo_url_refuses_password);
        T_RUN(test_credentials_lookup);
        T_RUN(test_options_checked);
        return t_done();
}
