/* qsort and bsearch on ints, strings and structs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rec { int key; double weight; char name[12]; };

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
static int cmp_rec(const void *a, const void *b) {
    const struct rec *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return strcmp(x->name, y->name);
}

static unsigned rng = 12345;
static unsigned next(void) { rng = rng * 1103515245u + 12345u; return (rng >> 8) & 0xffffff; }

int main(void) {
    enum { N = 5000 };
    static int a[N];
    for (int i = 0; i < N; i++) a[i] = (int)(next() % 100000) - 50000;
    qsort(a, N, sizeof a[0], cmp_int);
    long long s = 0;
    int sorted = 1;
    for (int i = 0; i < N; i++) { s += (long long)a[i] * (i % 17); if (i && a[i - 1] > a[i]) sorted = 0; }
    printf("ints sorted=%d min=%d max=%d med=%d weighted=%lld\n", sorted, a[0], a[N - 1], a[N / 2], s);
    for (int probe = -50000; probe < 50000; probe += 9973) {
        int *f = bsearch(&probe, a, N, sizeof a[0], cmp_int);
        printf("bsearch %d -> %s\n", probe, f ? "found" : "missing");
    }
    const char *words[] = {"pear", "apple", "fig", "banana", "cherry", "date", "elderberry",
        "grape", "kiwi", "lemon", "mango", "nectarine", "orange", "apple", "zucchini", ""};
    int nw = sizeof words / sizeof words[0];
    qsort(words, (size_t)nw, sizeof words[0], cmp_str);
    for (int i = 0; i < nw; i++) printf("%s%c", words[i], i + 1 < nw ? ' ' : '\n');
    static struct rec r[300];
    for (int i = 0; i < 300; i++) {
        r[i].key = (int)(next() % 20);
        r[i].weight = (double)(next() % 1000) / 8.0;
        snprintf(r[i].name, sizeof r[i].name, "n%u", next() % 1000);
    }
    qsort(r, 300, sizeof r[0], cmp_rec);
    double w = 0;
    for (int i = 0; i < 300; i++) w += r[i].weight * (i + 1);
    printf("recs first=%d/%s last=%d/%s w=%.3f\n", r[0].key, r[0].name, r[299].key, r[299].name, w);
    /* Already sorted and reverse-sorted input. */
    for (int i = 0; i < N; i++) a[i] = N - i;
    qsort(a, N, sizeof a[0], cmp_int);
    printf("reverse -> %d %d %d\n", a[0], a[1], a[N - 1]);
    return 0;
}
