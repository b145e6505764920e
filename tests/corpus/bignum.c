/* Arbitrary-precision decimal arithmetic: factorials, powers of two, Fibonacci, multiplication. */
#include <stdio.h>
#include <string.h>
#include <stdint.h>

#define LIMBS 400 /* base 1e9 limbs, little endian: up to 3600 digits */
typedef struct { uint32_t d[LIMBS]; int n; } big;

static void set(big *a, uint32_t v) { memset(a, 0, sizeof *a); a->d[0] = v; a->n = 1; }
static void mul_small(big *a, uint32_t m) {
    uint64_t carry = 0;
    for (int i = 0; i < a->n; i++) { uint64_t t = (uint64_t)a->d[i] * m + carry; a->d[i] = (uint32_t)(t % 1000000000); carry = t / 1000000000; }
    while (carry) { a->d[a->n++] = (uint32_t)(carry % 1000000000); carry /= 1000000000; }
}
static void add(big *r, const big *a, const big *b) {
    uint32_t carry = 0; int n = a->n > b->n ? a->n : b->n;
    for (int i = 0; i < n; i++) { uint32_t t = a->d[i] + b->d[i] + carry; carry = t >= 1000000000; r->d[i] = t - carry * 1000000000; }
    r->n = n;
    if (carry) r->d[r->n++] = 1;
}
static void mul(big *r, const big *a, const big *b) {
    static uint64_t acc[2 * LIMBS];
    memset(acc, 0, sizeof acc);
    for (int i = 0; i < a->n; i++) {
        uint64_t carry = 0;
        for (int j = 0; j < b->n || carry; j++) {
            uint64_t t = acc[i + j] + carry + (j < b->n ? (uint64_t)a->d[i] * b->d[j] : 0);
            acc[i + j] = t % 1000000000; carry = t / 1000000000;
        }
    }
    memset(r, 0, sizeof *r);
    int n = a->n + b->n;
    for (int i = 0; i < n && i < LIMBS; i++) r->d[i] = (uint32_t)acc[i];
    while (n > 1 && r->d[n - 1] == 0) n--;
    r->n = n;
}
static void print(const char *label, const big *a) {
    char buf[LIMBS * 9 + 1]; int len = sprintf(buf, "%u", a->d[a->n - 1]);
    for (int i = a->n - 2; i >= 0; i--) len += sprintf(buf + len, "%09u", a->d[i]);
    unsigned sum = 0; for (int i = 0; i < len; i++) sum += (unsigned)(buf[i] - '0');
    if (len > 60) printf("%s: %d digits, digit sum %u, head %.20s tail %s\n", label, len, sum, buf, buf + len - 20);
    else printf("%s: %s\n", label, buf);
}

int main(void) {
    static big a, b, c;
    set(&a, 1);
    for (uint32_t i = 1; i <= 450; i++) { mul_small(&a, i); if (i == 25 || i == 100 || i == 450) { char l[16]; sprintf(l, "%u!", i); print(l, &a); } }
    set(&a, 1);
    for (int i = 0; i < 1000; i++) mul_small(&a, 2);
    print("2^1000", &a);
    set(&a, 0); set(&b, 1);
    for (int i = 0; i < 2000; i++) { add(&c, &a, &b); a = b; b = c; }
    print("fib(2001)", &b);
    set(&a, 3);
    for (int i = 0; i < 9; i++) { mul(&b, &a, &a); a = b; }
    print("3^512", &a);
    set(&c, 123456789); mul_small(&c, 987654321);
    print("123456789*987654321", &c);
    return 0;
}
