/* An open-addressing hash table with string keys: insert, update, lookup, delete, resize. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

struct entry { char *key; long value; int used; int deleted; };
struct table { struct entry *e; size_t cap, len; };

static uint64_t hash(const char *s) {
    uint64_t h = 14695981039346656037ULL;
    while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return h;
}
static void put(struct table *t, const char *k, long v);
static void grow(struct table *t) {
    struct table n = {calloc(t->cap * 2, sizeof(struct entry)), t->cap * 2, 0};
    for (size_t i = 0; i < t->cap; i++)
        if (t->e[i].used && !t->e[i].deleted) { put(&n, t->e[i].key, t->e[i].value); free(t->e[i].key); }
        else if (t->e[i].used) free(t->e[i].key);
    free(t->e);
    *t = n;
}
static struct entry *find(struct table *t, const char *k) {
    for (size_t i = hash(k) & (t->cap - 1), n = 0; n < t->cap; i = (i + 1) & (t->cap - 1), n++) {
        if (!t->e[i].used) return NULL;
        if (!t->e[i].deleted && strcmp(t->e[i].key, k) == 0) return &t->e[i];
    }
    return NULL;
}
static void put(struct table *t, const char *k, long v) {
    struct entry *f = find(t, k);
    if (f) { f->value = v; return; }
    if ((t->len + 1) * 4 > t->cap * 3) grow(t);
    size_t i = hash(k) & (t->cap - 1);
    while (t->e[i].used && !t->e[i].deleted) i = (i + 1) & (t->cap - 1);
    if (t->e[i].used) free(t->e[i].key);
    t->e[i].key = strdup(k); t->e[i].value = v; t->e[i].used = 1; t->e[i].deleted = 0;
    t->len++;
}
static int del(struct table *t, const char *k) {
    struct entry *f = find(t, k);
    if (!f) return 0;
    f->deleted = 1; t->len--;
    return 1;
}

int main(void) {
    struct table t = {calloc(8, sizeof(struct entry)), 8, 0};
    char key[32];
    for (int i = 0; i < 20000; i++) { snprintf(key, sizeof key, "key-%d", i * 7919 % 100003); put(&t, key, i); }
    printf("len %zu cap %zu\n", t.len, t.cap);
    int removed = 0;
    for (int i = 0; i < 20000; i += 3) { snprintf(key, sizeof key, "key-%d", i * 7919 % 100003); removed += del(&t, key); }
    printf("removed %d len %zu\n", removed, t.len);
    long sum = 0; int hits = 0;
    for (int i = 0; i < 25000; i++) {
        snprintf(key, sizeof key, "key-%d", i * 7919 % 100003);
        struct entry *e = find(&t, key);
        if (e) { hits++; sum += e->value; }
    }
    printf("hits %d sum %ld\n", hits, sum);
    for (int i = 0; i < 10; i++) { snprintf(key, sizeof key, "key-%d", i * 7919 % 100003); put(&t, key, -i); }
    const char *words = "the cat and the dog and the bird saw the cat";
    struct table w = {calloc(4, sizeof(struct entry)), 4, 0};
    char buf[128]; strcpy(buf, words);
    for (char *s = strtok(buf, " "); s; s = strtok(NULL, " ")) { struct entry *e = find(&w, s); put(&w, s, e ? e->value + 1 : 1); }
    const char *probe[] = {"the", "cat", "and", "dog", "bird", "saw", "fish"};
    for (int i = 0; i < 7; i++) { struct entry *e = find(&w, probe[i]); printf("%s=%ld ", probe[i], e ? e->value : 0); }
    printf("\nfinal len %zu\n", t.len);
    return 0;
}
