/* NBD URI parsing as libnbd and the NBD URI specification read URIs, and
 * a clear refusal for everything else. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "../../tools/sechan-nbd/uri.h"

static struct nbd_uri u;
static char err[128];

static void ok(const char *s)
{
    int r = nbd_uri_parse(s, &u, err, sizeof(err));
    if (r != 0)
        print_error("%s: %s\n", s, err);
    assert_int_equal(r, 0);
}

static void bad(const char *s, const char *why)
{
    assert_int_equal(nbd_uri_parse(s, &u, err, sizeof(err)), -1);
    if (strstr(err, why) == NULL)
        print_error("%s: got '%s', wanted '%s'\n", s, err, why);
    assert_non_null(strstr(err, why));
}

static void test_tcp(void **st)
{
    (void)st;
    ok("nbd://example.com");
    assert_false(u.tls);
    assert_string_equal(u.host, "example.com");
    assert_int_equal(u.port, 10809);
    assert_string_equal(u.export_name, "");
    ok("nbd://127.0.0.1:20801/disk");
    assert_int_equal(u.port, 20801);
    assert_string_equal(u.export_name, "disk");
    ok("nbd://[::1]:1234/a%20b%2Fc");
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 1234);
    assert_string_equal(u.export_name, "a b/c");
    ok("nbd://h/");
    assert_string_equal(u.export_name, "");
}

static void test_tls_params(void **st)
{
    (void)st;
    ok("nbds://alice@localhost:20804/disk?tls-psk-file=/p/keys.psk");
    assert_true(u.tls);
    assert_string_equal(u.user, "alice");
    assert_string_equal(u.tls_psk_file, "/p/keys.psk");
    assert_true(u.tls_verify_peer);
    ok("nbds://h/x?tls-certificates=/pki&tls-verify-peer=false&tls-hostname=other");
    assert_string_equal(u.tls_certificates, "/pki");
    assert_false(u.tls_verify_peer);
    assert_string_equal(u.tls_hostname, "other");
    ok("nbds://h/?tls-psk-file=k&tls-username=bob");
    assert_string_equal(u.user, "bob");
}

static void test_unix(void **st)
{
    (void)st;
    ok("nbd+unix:///disk?socket=/run/nbd.sock");
    assert_true(u.is_unix);
    assert_string_equal(u.socket, "/run/nbd.sock");
    assert_string_equal(u.export_name, "disk");
    ok("nbds+unix://alice@/?socket=s&tls-psk-file=k");
    assert_true(u.tls && u.is_unix);
    assert_string_equal(u.user, "alice");
}

static void test_refusals(void **st)
{
    (void)st;
    bad("http://h/", "not an NBD URI");
    bad("nbd://h:0/", "port");
    bad("nbd://h:65536/", "port");
    bad("nbd://h:12a/", "port");
    bad("nbd://h:/", "port");
    bad("nbd:///x", "host");
    bad("nbd://[::1/x", "IPv6");
    bad("nbd://h/%zz", "export name");
    bad("nbd://h/%00", "export name");
    bad("nbd://h/%4", "export name");
    bad("nbd://h/?socket=x", "nbd+unix");
    bad("nbd+unix:///x", "socket=");
    bad("nbd+unix://h/x?socket=s", "no host");
    bad("nbd://h/?tls-certificates=/pki", "nbds://");
    bad("nbds://h/?tls-certificates=a&tls-psk-file=b", "not both");
    bad("nbd://h/?frobnicate=1", "unknown query parameter");
    bad("nbd://h/?socket", "without '='");
    bad("nbds://h/?tls-verify-peer=maybe", "true or false");
    char longname[6000] = "nbd://h/";
    memset(longname + 8, 'x', 5000);
    longname[5008] = '\0';
    bad(longname, "longer than 4096");
    char longhost[400] = "nbd://";
    memset(longhost + 6, 'h', 300);
    longhost[306] = '\0';
    bad(longhost, "host");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp),
        cmocka_unit_test(test_tls_params),
        cmocka_unit_test(test_unix),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests_name("uri", tests, NULL, NULL);
}
