/* Benchmark subject for migration latency: THREADS threads busy computing over a table
 * of MB mebibytes that main touched page by page first (so it is resident). Runs until
 * killed; prints "ready" once the memory is touched and every thread runs.
 *
 * usage: resident THREADS MB
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile uint64_t *mem;
static size_t words;
static volatile int started;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void *spin(void *arg) {
    uint64_t x = (uint64_t)(uintptr_t)arg + 1;
    pthread_mutex_lock(&lock);
    started++;
    pthread_mutex_unlock(&lock);
    for (;;) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        size_t i = (size_t)(x >> 20) % words;
        mem[i] += x;
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: resident THREADS MB\n");
        return 2;
    }
    int threads = atoi(argv[1]);
    size_t mb = (size_t)strtoul(argv[2], NULL, 10);
    words = mb * 131072;
    if (words == 0)
        words = 512;
    mem = malloc(words * 8);
    if (!mem)
        return 3;
    for (size_t i = 0; i < words; i += 512)
        mem[i] = i * 2654435761u + 1;
    pthread_t t;
    for (long i = 1; i < threads; i++)
        if (pthread_create(&t, NULL, spin, (void *)i) != 0)
            return 4;
    while (started < threads - 1)
        ;
    printf("ready\n");
    fflush(stdout);
    spin((void *)0);
    return 0;
}
