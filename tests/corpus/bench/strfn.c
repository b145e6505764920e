/* Bench: text processing with the string functions: strlen, strncat, strtok, strchr, strcmp,
   memcpy, strstr. argv[1]: rounds (default 240000). */
// RUN: 100
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *words[] = { "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
    "iota", "kappa", "lambda", "mu", "nu", "xi", "omicron", "pi" };

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 240000;
    char line[512], copy[512];
    unsigned long h = 5381, tokens = 0, hits = 0;
    for (long r = 0; r < n; r++) {
        line[0] = 0;
        for (int i = 0; i < 24; i++) {
            strncat(line, words[(r + i * 7) & 15], sizeof line - strlen(line) - 2);
            strncat(line, (i % 5) ? " " : ",", sizeof line - strlen(line) - 1);
        }
        memcpy(copy, line, strlen(line) + 1);
        hits += strstr(copy, "lambda mu") != NULL;
        for (char *t = strtok(copy, " ,"); t; t = strtok(NULL, " ,")) {
            tokens++;
            if (strcmp(t, "kappa") == 0) hits++;
            if (strchr(t, 'z')) h = h * 33 + (unsigned char)t[0];
            h = h * 33 + strlen(t);
        }
    }
    printf("strfn: %lu %lu %lu\n", h, tokens, hits);
    return 0;
}
