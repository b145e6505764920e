/* Bench: sieve of Eratosthenes plus a segmented count. argv[1]: limit (default 60000000). */
// RUN: 100000
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    long limit = argc > 1 ? atol(argv[1]) : 60000000;
    unsigned char *comp = calloc((size_t)limit + 1, 1);
    long count = 0, sum_mod = 0, last = 0;
    for (long i = 2; i <= limit; i++) {
        if (comp[i]) continue;
        count++; sum_mod = (sum_mod + i) % 1000000007; last = i;
        for (long j = i * i; j <= limit; j += i) comp[j] = 1;
    }
    long twins = 0;
    for (long i = 3; i + 2 <= limit; i += 2) twins += !comp[i] && !comp[i + 2];
    printf("primes up to %ld: %ld, last %ld, sum mod p %ld, twin pairs %ld\n", limit, count, last, sum_mod, twins);
    free(comp);
    return 0;
}
