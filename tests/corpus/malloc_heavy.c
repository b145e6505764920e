/* Many allocations, frees and reallocs with pattern checks; calloc zeroing; big blocks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

static uint32_t rng = 99;
static uint32_t rnd(void) { rng ^= rng << 13; rng ^= rng >> 17; rng ^= rng << 5; return rng; }

int main(void) {
    enum { SLOTS = 512 };
    static unsigned char *p[SLOTS];
    static size_t sz[SLOTS];
    unsigned long ops = 0, bad = 0, total = 0;
    for (int round = 0; round < 40000; round++) {
        int i = (int)(rnd() % SLOTS);
        if (p[i]) {
            for (size_t k = 0; k < sz[i]; k++) if (p[i][k] != (unsigned char)(i + k)) { bad++; break; }
            if (rnd() % 3 == 0) {
                size_t ns = rnd() % 3000 + 1;
                unsigned char *q = realloc(p[i], ns);
                if (!q) { printf("realloc failed\n"); return 2; }
                for (size_t k = sz[i]; k < ns; k++) q[k] = (unsigned char)(i + k);
                p[i] = q; sz[i] = ns;
            } else {
                free(p[i]); p[i] = NULL; total += sz[i]; sz[i] = 0;
            }
        } else {
            size_t n = (rnd() % 8 == 0) ? rnd() % 200000 + 1 : rnd() % 256 + 1;
            p[i] = malloc(n);
            if (!p[i]) { printf("malloc failed\n"); return 2; }
            for (size_t k = 0; k < n; k++) p[i][k] = (unsigned char)(i + k);
            sz[i] = n;
        }
        ops++;
    }
    for (int i = 0; i < SLOTS; i++) free(p[i]);
    printf("ops %lu corrupt %lu freed-bytes %lu\n", ops, bad, total);
    int zero = 1;
    for (int r = 0; r < 50; r++) {
        size_t n = (size_t)(r * 997 + 1);
        long *c = calloc(n, sizeof(long));
        for (size_t k = 0; k < n; k++) if (c[k]) zero = 0;
        memset(c, 0xff, n * sizeof(long));
        free(c);
    }
    printf("calloc zeroed %d\n", zero);
    char *s = NULL; size_t len = 0;
    for (int i = 0; i < 2000; i++) {
        char piece[16];
        int n = snprintf(piece, sizeof piece, "%d,", i);
        s = realloc(s, len + (size_t)n + 1);
        memcpy(s + len, piece, (size_t)n + 1);
        len += (size_t)n;
    }
    printf("grown string len %zu tail %s\n", len, s + len - 10);
    free(s);
    void *big = malloc(64 << 20);
    memset(big, 1, 64 << 20);
    printf("64MiB block ok %d\n", ((unsigned char *)big)[(64 << 20) - 1]);
    free(big);
    return 0;
}
