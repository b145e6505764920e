/* argv echo and environment lookups (the test harness sets HCT_TEST_VAR). */
// RUN: one "two words" three
// RUN:
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

int main(int argc, char **argv) {
    printf("argc %d\n", argc);
    for (int i = 1; i < argc; i++) printf("argv[%d] = [%s] (%zu)\n", i, argv[i], strlen(argv[i]));
    printf("argv[argc] is NULL: %d\n", argv[argc] == NULL);
    const char *v = getenv("HCT_TEST_VAR");
    printf("HCT_TEST_VAR = %s\n", v ? v : "(unset)");
    printf("NOT_SET = %s\n", getenv("HCT_SURELY_NOT_SET") ? "set" : "(unset)");
    setenv("HCT_NEW", "fresh", 1);
    printf("after setenv %s\n", getenv("HCT_NEW"));
    setenv("HCT_TEST_VAR", "replaced", 0);
    printf("no overwrite %s\n", getenv("HCT_TEST_VAR"));
    unsetenv("HCT_NEW");
    printf("after unsetenv %s\n", getenv("HCT_NEW") ? "set" : "(unset)");
    int n = 0, hct = 0;
    for (char **e = environ; *e; e++) { n++; if (strncmp(*e, "HCT_", 4) == 0) hct++; }
    printf("HCT_ variables in environ: %d (nonempty environ %d)\n", hct, n > 0);
    return argc > 3 ? 3 : 0;
}
