/* Function pointers: tables, callbacks, pointers returned from functions, indirect tail calls. */
#include <stdio.h>
#include <stdlib.h>

typedef long (*binop)(long, long);
static long add(long a, long b) { return a + b; }
static long sub(long a, long b) { return a - b; }
static long mul(long a, long b) { return a * b; }
static long maxf(long a, long b) { return a > b ? a : b; }
static long xor_(long a, long b) { return a ^ b; }
static binop table[] = {add, sub, mul, maxf, xor_};
static const char *tnames[] = {"add", "sub", "mul", "max", "xor"};

static binop pick(int i) { return table[i % 5]; }
static long fold(const long *v, int n, binop f, long init) {
    for (int i = 0; i < n; i++) init = f(init, v[i]);
    return init;
}
static void apply(void (*cb)(int, void *), void *ctx, int n) { for (int i = 0; i < n; i++) cb(i, ctx); }
static void accumulate(int i, void *ctx) { *(long *)ctx += (long)i * i; }
static void print_it(int i, void *ctx) { printf("%s%d", (const char *)ctx, i); }

static int even(unsigned n);
static int odd(unsigned n) { return n == 0 ? 0 : even(n - 1); }
static int even(unsigned n) { return n == 0 ? 1 : odd(n - 1); }
static int (*volatile parity[2])(unsigned) = {even, odd};

struct shape { const char *name; double (*area)(const double *); double dims[2]; };
static double rect(const double *d) { return d[0] * d[1]; }
static double tri(const double *d) { return d[0] * d[1] / 2; }
static double circ(const double *d) { return 3.14159 * d[0] * d[0]; }

int main(void) {
    long v[] = {3, -4, 5, 9, -2, 7, 1};
    for (int i = 0; i < 5; i++) printf("%s fold = %ld\n", tnames[i], fold(v, 7, pick(i), i == 2 ? 1 : 0));
    long acc = 0;
    apply(accumulate, &acc, 100);
    printf("sum squares %ld\n", acc);
    apply(print_it, " #", 6);
    printf("\n");
    for (unsigned n = 0; n < 2000; n += 333) printf("even(%u)=%d odd(%u)=%d\n", n, parity[0](n), n, parity[1](n));
    struct shape s[] = {{"rect", rect, {3, 4}}, {"tri", tri, {3, 4}}, {"circle", circ, {2, 0}}};
    for (int i = 0; i < 3; i++) printf("%s area %.4f\n", s[i].name, s[i].area(s[i].dims));
    long (*volatile vp)(long, long) = mul;
    printf("volatile pointer %ld\n", vp(6, 7));
    int (*cmp)(const char *) = atoi;
    printf("atoi via pointer %d\n", cmp("1234"));
    return 0;
}
