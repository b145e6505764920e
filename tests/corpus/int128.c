/* __int128 arithmetic: multiplication, division, shifts, comparisons, decimal printing. */
#include <stdio.h>
#include <stdint.h>

typedef unsigned __int128 u128;
typedef __int128 i128;

static void put_u128(u128 v) {
    char buf[48]; int i = 47; buf[i] = 0;
    do { buf[--i] = (char)('0' + (int)(v % 10)); v /= 10; } while (v);
    fputs(buf + i, stdout);
}
static void put_i128(i128 v) {
    if (v < 0) { putchar('-'); put_u128((u128)0 - (u128)v); } else put_u128((u128)v);
}

int main(void) {
    u128 f = 1;
    for (int i = 1; i <= 34; i++) { f *= (u128)i; printf("%d! = ", i); put_u128(f); putchar('\n'); }
    u128 max = ~(u128)0;
    printf("max = "); put_u128(max); putchar('\n');
    i128 neg = -((i128)1 << 100) + 12345;
    printf("neg = "); put_i128(neg); printf(" /7 = "); put_i128(neg / 7); printf(" %%7 = "); put_i128(neg % 7); putchar('\n');
    volatile uint64_t a = 0xfedcba9876543210ULL, b = 0x123456789abcdef1ULL;
    u128 p = (u128)a * b;
    printf("mul hi %016llx lo %016llx\n", (unsigned long long)(p >> 64), (unsigned long long)p);
    for (int s = 0; s < 128; s += 19) {
        u128 l = p << s, r = p >> s;
        i128 ar = (i128)p >> s;
        printf("shift %3d: %016llx%016llx %016llx %016llx\n", s, (unsigned long long)(l >> 64),
               (unsigned long long)l, (unsigned long long)r, (unsigned long long)(ar >> 64));
    }
    u128 d = p / 1000000007u, m = p % 1000000007u;
    printf("div "); put_u128(d); printf(" rem "); put_u128(m); putchar('\n');
    u128 q = max / p;
    printf("max/p "); put_u128(q); printf(" cmp %d %d\n", p > (u128)a, (i128)neg < 0);
    i128 x = 1;
    for (int i = 0; i < 60; i++) x = x * 3 - (i128)i * 1000003;
    printf("poly "); put_i128(x); putchar('\n');
    return 0;
}
