/* Bench: string processing: generate text, tokenize, count words in a hash table, reverse and
 * search. argv[1]: rounds (default 120). */
// RUN: 1
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <stdint.h>

#define TAB 8192
struct slot { char word[16]; int count; };
static struct slot tab[TAB];

static void count_word(const char *w, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)w[i]) * 16777619u;
    for (uint32_t i = h & (TAB - 1);; i = (i + 1) & (TAB - 1)) {
        if (tab[i].count == 0) { memcpy(tab[i].word, w, n); tab[i].word[n] = 0; tab[i].count = 1; return; }
        if (strlen(tab[i].word) == n && memcmp(tab[i].word, w, n) == 0) { tab[i].count++; return; }
    }
}

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 120;
    static const char *syll[] = {"ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "zu", "xa", "qo"};
    size_t cap = 1 << 20;
    char *text = malloc(cap + 64), *rev = malloc(cap + 64);
    uint32_t x = 7;
    size_t len = 0;
    while (len < cap) {
        int ns = 1 + (int)((x >> 5) % 3);
        for (int s = 0; s < ns; s++) { x = x * 1664525u + 1013904223u; const char *p = syll[(x >> 11) % 12]; text[len++] = p[0]; text[len++] = p[1]; }
        text[len++] = (x >> 20) % 9 == 0 ? '.' : ' ';
    }
    text[len] = 0;
    long words = 0, found = 0, upper = 0;
    for (long r = 0; r < rounds; r++) {
        size_t i = 0;
        while (i < len) {
            while (i < len && !isalpha((unsigned char)text[i])) i++;
            size_t s = i;
            while (i < len && isalpha((unsigned char)text[i])) i++;
            if (i > s && i - s < 16) { count_word(text + s, i - s); words++; }
        }
        for (size_t k = 0; k < len; k++) rev[k] = text[len - 1 - k];
        rev[len] = 0;
        const char *p = rev;
        while ((p = strstr(p, "iruz")) != NULL) { found++; p++; }
        text[(size_t)r * 7919 % len] = (char)toupper((unsigned char)text[(size_t)r * 7919 % len]);
        for (size_t k = 0; k < len; k += 4096) upper += isupper((unsigned char)text[k]) != 0;
    }
    int distinct = 0, best = 0; const char *bw = "";
    for (int i = 0; i < TAB; i++) if (tab[i].count) { distinct++; if (tab[i].count > best) { best = tab[i].count; bw = tab[i].word; } }
    printf("words %ld distinct %d most common %s x%d found %ld upper %ld\n", words, distinct, bw, best, found, upper);
    free(text); free(rev);
    return 0;
}
