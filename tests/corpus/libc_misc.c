/* Miscellaneous libc: rand with a fixed seed, div/ldiv, abs, getcwd-free path ops, sprintf
 * of pointers-free data, strerror, bsearch-free tables, isatty on a pipe. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <limits.h>

int main(void) {
    srand(12345);
    unsigned long acc = 0;
    for (int i = 0; i < 1000; i++) acc = acc * 31 + (unsigned)rand();
    printf("rand checksum %lu (RAND_MAX %d)\n", acc, RAND_MAX);
    div_t d = div(-17, 5);
    ldiv_t ld = ldiv(1000000007L, -13L);
    lldiv_t lld = lldiv(-9000000000000000000LL, 7LL);
    printf("div %d %d ldiv %ld %ld lldiv %lld %lld\n", d.quot, d.rem, ld.quot, ld.rem, lld.quot, lld.rem);
    printf("abs %d labs %ld llabs %lld\n", abs(-5), labs(-1234567L), llabs(-99LL));
    printf("strerror(ENOENT) nonempty %d EINVAL %d\n", strlen(strerror(ENOENT)) > 0, EINVAL);
    errno = 0;
    FILE *f = fopen("/nonexistent-dir/x", "r");
    printf("fopen fails %d errno ENOENT %d\n", f == NULL, errno == ENOENT);
    printf("stdout isatty %d\n", isatty(1));
    char path[] = "/usr/local/lib/libthing.so.1";
    char *slash = strrchr(path, '/');
    printf("basename %s dirname-len %td\n", slash + 1, slash - path);
    printf("limits %d %ld %u\n", INT_MIN, LONG_MAX, UINT_MAX);
    char *end;
    unsigned long long v = strtoull("18446744073709551615", &end, 10);
    printf("ull max %llu\n", v);
    int arr[10] = {5, 3, 9, 1, 7, 2, 8, 6, 4, 0};
    int perm = 0;
    for (int i = 0; i < 10; i++) for (int j = i + 1; j < 10; j++) perm += arr[i] > arr[j];
    printf("inversions %d\n", perm);
    char *line = NULL; size_t cap = 0;
    static char text[] = "first\nsecond line\nthird";
    FILE *m = fmemopen(text, sizeof text - 1, "r");
    if (m) {
        ssize_t n;
        while ((n = getline(&line, &cap, m)) > 0) printf("getline %zd [%.*s]\n", n, (int)strcspn(line, "\n"), line);
        fclose(m);
    }
    free(line);
    return 0;
}
