/* Long deterministic computation for migration tests: ROUNDS rounds of integer mixing over
 * a 1 MiB table, a progress line per round and a final digest. The result depends only on
 * the arguments, never on timing, so a run migrated many times prints exactly what an
 * uninterrupted run prints.
 *
 * usage: compute ROUNDS [WORK]   (WORK: table passes per round, default 8)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define WORDS (1u << 17) /* 1 MiB of uint64_t */

static uint64_t table[WORDS];

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: compute ROUNDS [WORK]\n");
        return 2;
    }
    long rounds = strtol(argv[1], NULL, 10);
    long work = argc > 2 ? strtol(argv[2], NULL, 10) : 8;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (uint32_t i = 0; i < WORDS; i++)
        table[i] = mix(i + 1);
    uint64_t digest = 0x243f6a8885a308d3ull;
    for (long r = 0; r < rounds; r++) {
        uint64_t acc = (uint64_t)r;
        for (long p = 0; p < work; p++) {
            for (uint32_t i = 0; i < WORDS; i++) {
                uint32_t j = (uint32_t)(table[i] ^ acc) & (WORDS - 1);
                acc = (acc << 7 | acc >> 57) + table[j];
                table[i] = table[i] * 6364136223846793005ull + acc;
            }
        }
        digest = mix(digest ^ acc);
        printf("round %ld %016llx\n", r, (unsigned long long)digest);
    }
    printf("digest %016llx\n", (unsigned long long)digest);
    return 0;
}
