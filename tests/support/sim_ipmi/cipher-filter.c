/* ipmi_sim loadlib module: make chosen cipher suites unusable, so the simulator answers an
 * Open Session proposing them with RMCP+ status 0x11 (no matching cipher suite).
 * lan.conf: loadlib "<dir>/cipher-filter.so" "3,17"  (comma-separated suite numbers)
 * Build: gcc -shared -fPIC -O2 -o cipher-filter.so cipher-filter.c
 * It overwrites entries of libIPMIlanserv's exported valid_cipher_suites[] table
 * ({auth, integ, conf} ints, ended by auth == -1) with algorithm 63, which never matches. */
#include <stdlib.h>
#include <string.h>

struct cipher_suite { int auth, integ, conf; };
extern struct cipher_suite valid_cipher_suites[];

int ipmi_sim_module_init(void *sys, const char *options)
{
    char *copy = strdup(options ? options : ""), *save = NULL, *tok;
    (void)sys;
    if (!copy)
        return 1;
    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int n = atoi(tok), i;
        for (i = 0; i <= n; i++)
            if (valid_cipher_suites[i].auth == -1)
                break;
        if (i > n) {
            valid_cipher_suites[n].auth = 63;
            valid_cipher_suites[n].integ = 63;
            valid_cipher_suites[n].conf = 63;
        }
    }
    free(copy);
    return 0;
}

int ipmi_sim_module_print_version(void *sys, const char *options)
{
    (void)sys;
    (void)options;
    return 0;
}
