/* Multi-threaded deterministic computation for migration tests: THREADS workers each mix
 * their own slice of a shared table per round; a barrier ends every round and the main
 * thread folds the per-thread results in thread order into the digest. Output depends only
 * on the arguments, not on scheduling.
 *
 * usage: threads THREADS ROUNDS [WORK]
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_THREADS 64
#define WORDS_PER_THREAD (1u << 14) /* 128 KiB per thread */

static int nthreads;
static long rounds, work;
static uint64_t *table;
static uint64_t results[MAX_THREADS];
static pthread_barrier_t start_round, end_round;

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static void *worker(void *arg) {
    long t = (long)arg;
    uint64_t *mine = table + (size_t)t * WORDS_PER_THREAD;
    for (long r = 0; r < rounds; r++) {
        pthread_barrier_wait(&start_round);
        uint64_t acc = mix((uint64_t)r * 131 + (uint64_t)t);
        for (long p = 0; p < work; p++) {
            for (uint32_t i = 0; i < WORDS_PER_THREAD; i++) {
                uint32_t j = (uint32_t)(mine[i] ^ acc) & (WORDS_PER_THREAD - 1);
                acc = (acc << 11 | acc >> 53) ^ mine[j];
                mine[i] += acc * 0x9e3779b97f4a7c15ull;
            }
        }
        results[t] = acc;
        pthread_barrier_wait(&end_round);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: threads THREADS ROUNDS [WORK]\n");
        return 2;
    }
    nthreads = atoi(argv[1]);
    rounds = strtol(argv[2], NULL, 10);
    work = argc > 3 ? strtol(argv[3], NULL, 10) : 4;
    if (nthreads < 1 || nthreads > MAX_THREADS)
        return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    table = calloc((size_t)nthreads * WORDS_PER_THREAD, sizeof *table);
    if (!table)
        return 3;
    for (size_t i = 0; i < (size_t)nthreads * WORDS_PER_THREAD; i++)
        table[i] = mix(i);
    pthread_barrier_init(&start_round, NULL, (unsigned)nthreads + 1);
    pthread_barrier_init(&end_round, NULL, (unsigned)nthreads + 1);
    pthread_t tid[MAX_THREADS];
    for (long t = 0; t < nthreads; t++)
        if (pthread_create(&tid[t], NULL, worker, (void *)t) != 0)
            return 4;
    uint64_t digest = 0x13198a2e03707344ull;
    for (long r = 0; r < rounds; r++) {
        pthread_barrier_wait(&start_round);
        pthread_barrier_wait(&end_round);
        for (int t = 0; t < nthreads; t++)
            digest = mix(digest ^ results[t]);
        printf("round %ld %016llx\n", r, (unsigned long long)digest);
    }
    for (int t = 0; t < nthreads; t++)
        pthread_join(tid[t], NULL);
    printf("digest %016llx threads %d\n", (unsigned long long)digest, nthreads);
    return 0;
}
