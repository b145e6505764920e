/* Bench: dense double matrix multiply (i-k-j order) and a checksum. argv[1]: size (default 560). */
// RUN: 40
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 560;
    double *a = malloc(sizeof(double) * (size_t)n * n), *b = malloc(sizeof(double) * (size_t)n * n), *c = calloc((size_t)n * n, sizeof(double));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) { a[i * n + j] = (double)((i * 31 + j * 17) % 101) / 50.0 - 1.0; b[i * n + j] = (double)((i * 7 + j * 13) % 89) / 44.0 - 1.0; }
    for (int rep = 0; rep < 3; rep++) {
        for (int i = 0; i < n; i++)
            for (int k = 0; k < n; k++) {
                double aik = a[i * n + k];
                for (int j = 0; j < n; j++) c[i * n + j] += aik * b[k * n + j];
            }
        double *t = a; a = c; c = t;
        for (long i = 0; i < (long)n * n; i++) { a[i] /= n; c[i] = 0; }
    }
    double trace = 0, sum = 0;
    for (int i = 0; i < n; i++) trace += a[i * n + i];
    for (long i = 0; i < (long)n * n; i++) sum += a[i];
    printf("n=%d trace %.10e sum %.10e\n", n, trace, sum);
    free(a); free(b); free(c);
    return 0;
}
