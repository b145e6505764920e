/* Bench: quicksort, merge sort and qsort of pseudo-random integers. argv[1]: elements (default 2000000). */
// RUN: 20000
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

static void quick(int32_t *a, long lo, long hi) {
    while (hi - lo > 16) {
        int32_t p = a[lo + (hi - lo) / 2];
        long i = lo, j = hi;
        while (i <= j) {
            while (a[i] < p) i++;
            while (a[j] > p) j--;
            if (i <= j) { int32_t t = a[i]; a[i] = a[j]; a[j] = t; i++; j--; }
        }
        if (j - lo < hi - i) { quick(a, lo, j); lo = i; } else { quick(a, i, hi); hi = j; }
    }
    for (long i = lo + 1; i <= hi; i++) { int32_t v = a[i]; long k = i - 1; while (k >= lo && a[k] > v) { a[k + 1] = a[k]; k--; } a[k + 1] = v; }
}
static void merge_sort(int32_t *a, int32_t *tmp, long n) {
    for (long w = 1; w < n; w *= 2) {
        for (long lo = 0; lo < n; lo += 2 * w) {
            long mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n, i = lo, j = mid, k = lo;
            while (i < mid && j < hi) tmp[k++] = a[i] <= a[j] ? a[i++] : a[j++];
            while (i < mid) tmp[k++] = a[i++];
            while (j < hi) tmp[k++] = a[j++];
        }
        memcpy(a, tmp, (size_t)n * sizeof *a);
    }
}
static int cmp(const void *x, const void *y) { int32_t a = *(const int32_t *)x, b = *(const int32_t *)y; return (a > b) - (a < b); }
static uint64_t check(const int32_t *a, long n) { uint64_t h = 0; for (long i = 0; i < n; i++) h = h * 1000003 + (uint32_t)a[i]; return h; }

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    int32_t *a = malloc((size_t)n * 4), *b = malloc((size_t)n * 4), *c = malloc((size_t)n * 4), *t = malloc((size_t)n * 4);
    uint64_t x = 88172645463325252ULL;
    for (long i = 0; i < n; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; a[i] = (int32_t)(x % 2000000001) - 1000000000; }
    memcpy(b, a, (size_t)n * 4); memcpy(c, a, (size_t)n * 4);
    quick(a, 0, n - 1);
    merge_sort(b, t, n);
    qsort(c, (size_t)n, 4, cmp);
    printf("quick %016llx merge %016llx qsort %016llx min %d max %d\n", (unsigned long long)check(a, n),
           (unsigned long long)check(b, n), (unsigned long long)check(c, n), a[0], a[n - 1]);
    free(a); free(b); free(c); free(t);
    return 0;
}
