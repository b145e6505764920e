/* Bench: qsort and bsearch with comparators, over integers and short strings. argv[1]: elements (default 300000). */
// RUN: 2000
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 300000;
    int *v = malloc(n * sizeof *v);
    char **s = malloc(n * sizeof *s);
    char *pool = malloc(n * 12);
    uint32_t r = 12345;
    for (long i = 0; i < n; i++) {
        r = r * 1103515245 + 12345;
        v[i] = (int)(r >> 1);
        s[i] = pool + i * 12;
        snprintf(s[i], 12, "k%07u", (unsigned)(r % 10000000));
    }
    qsort(v, n, sizeof *v, cmp_int);
    qsort(s, n, sizeof *s, cmp_str);
    long found = 0;
    for (long i = 0; i < n; i++) {
        int key = v[(i * 7919) % n] + (int)(i & 1);
        found += bsearch(&key, v, n, sizeof *v, cmp_int) != NULL;
        char *k = s[(i * 104729) % n];
        found += bsearch(&k, s, n, sizeof *s, cmp_str) != NULL;
    }
    printf("qsortbs: %ld %d %s %s\n", found, v[n / 2], s[0], s[n - 1]);
    return 0;
}
