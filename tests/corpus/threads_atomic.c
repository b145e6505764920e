/* Threads updating shared words at the same time: atomic add/sub/and/or/xor/exchange of
 * four widths (lock add, xadd, sub, or, and, xor, xchg, bts), a compare-and-swap loop, a
 * spin lock, a mutex and a barrier. Every total is exact only if each update is atomic. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#define THREADS 4
#define ITERS 20000
#define HOT_ITERS 500000

static volatile int64_t add64;
static volatile int32_t xadd32;
static volatile int16_t add16;
static volatile uint8_t add8;
static volatile int64_t sub64 = 1000000;
static volatile uint64_t or_word, xor_word, and_word = ~0ull;
static volatile int64_t cas_total;
static volatile int spin;
static int64_t spin_total;
static int64_t mutex_total;
static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static volatile uint64_t bitmap[THREADS];
static int first_sets[THREADS];
static int64_t xadd_sums[THREADS];
static pthread_barrier_t barrier;

static volatile int64_t hot64;
static volatile int32_t hot32;

static void *worker(void *arg) {
    long t = (long)arg;
    pthread_barrier_wait(&barrier);
    /* Two words hammered by every thread at once: a non-atomic update loses counts here. */
    for (long i = 0; i < HOT_ITERS; i++) {
        __atomic_fetch_add(&hot64, 1, __ATOMIC_SEQ_CST);
        __atomic_fetch_sub(&hot32, 1, __ATOMIC_SEQ_CST);
    }
    for (long i = 0; i < ITERS; i++) {
        __atomic_fetch_add(&add64, 3, __ATOMIC_SEQ_CST);
        xadd_sums[t] += __atomic_fetch_add(&xadd32, 1, __ATOMIC_SEQ_CST) & 1;
        __atomic_fetch_add(&add16, 1, __ATOMIC_SEQ_CST);
        __atomic_fetch_add(&add8, 1, __ATOMIC_SEQ_CST);
        __atomic_fetch_sub(&sub64, 2, __ATOMIC_SEQ_CST);
        __atomic_fetch_or(&or_word, 1ull << ((t * 7 + i) % 61), __ATOMIC_SEQ_CST);
        __atomic_fetch_and(&and_word, ~(1ull << ((t * 5 + i) % 59)), __ATOMIC_SEQ_CST);
        __atomic_fetch_xor(&xor_word, (uint64_t)(i + t) * 0x9e3779b97f4a7c15ull, __ATOMIC_SEQ_CST);
        int64_t c = cas_total;
        while (!__atomic_compare_exchange_n(&cas_total, &c, c + 5, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            ;
        uint64_t bit = 1ull << (i % 64);
        if (!(__atomic_fetch_or(&bitmap[i % THREADS], bit, __ATOMIC_SEQ_CST) & bit))
            first_sets[t]++;
        if (i % 16 == 0) {
            pthread_mutex_lock(&mutex);
            mutex_total += t + 1;
            pthread_mutex_unlock(&mutex);
        }
        if (i % 16 == 8) {
            while (__atomic_exchange_n(&spin, 1, __ATOMIC_ACQUIRE))
                ;
            spin_total += t + 2;
            __atomic_store_n(&spin, 0, __ATOMIC_RELEASE);
        }
    }
    pthread_barrier_wait(&barrier);
    return NULL;
}

int main(void) {
    pthread_t tid[THREADS];
    pthread_barrier_init(&barrier, NULL, THREADS + 1);
    for (long t = 0; t < THREADS; t++)
        if (pthread_create(&tid[t], NULL, worker, (void *)t) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    pthread_barrier_wait(&barrier);
    pthread_barrier_wait(&barrier);
    int firsts = 0;
    int64_t xadd_odd = 0;
    for (long t = 0; t < THREADS; t++) {
        pthread_join(tid[t], NULL);
        firsts += first_sets[t];
        xadd_odd += xadd_sums[t];
    }
    printf("hot64 %lld hot32 %d\n", (long long)hot64, hot32);
    printf("add64 %lld xadd32 %d (odd seen %lld) add16 %d add8 %u sub64 %lld\n", (long long)add64, xadd32,
           (long long)xadd_odd, add16, add8, (long long)sub64);
    printf("or %016llx and %016llx xor %016llx\n", (unsigned long long)or_word, (unsigned long long)and_word,
           (unsigned long long)xor_word);
    printf("cas %lld mutex %lld spin %lld first sets %d\n", (long long)cas_total, (long long)mutex_total,
           (long long)spin_total, firsts);
    return 0;
}
