/* Integer arithmetic of every width: wrap-around, shifts, mixed signedness, a checksum. */
#include <stdio.h>
#include <stdint.h>
#include <limits.h>

static volatile int64_t vals[] = {0, 1, -1, 2, -2, 7, -7, 127, -128, 255, 32767, -32768,
    65535, 2147483647LL, -2147483647LL - 1, 4294967295LL, 123456789012345LL,
    -987654321098765LL, INT64_MAX, INT64_MIN};
#define N (sizeof vals / sizeof vals[0])

int main(void) {
    uint64_t sum = 0;
    for (unsigned i = 0; i < N; i++) {
        for (unsigned j = 0; j < N; j++) {
            int64_t a = vals[i], b = vals[j];
            uint64_t ua = (uint64_t)a, ub = (uint64_t)b;
            uint64_t add = ua + ub, sub = ua - ub, mul = ua * ub;
            uint32_t mul32 = (uint32_t)ua * (uint32_t)ub;
            int32_t sa = (int32_t)a;
            int16_t s16 = (int16_t)(a + b);
            int8_t s8 = (int8_t)(a ^ b);
            unsigned sh = (unsigned)(ub & 63);
            uint64_t shl = ua << sh, shr = ua >> sh;
            int64_t sar = a >> sh;
            int32_t sar32 = sa >> (sh & 31);
            int cmp = (a < b) * 4 + (ua < ub) * 2 + (a == b);
            sum = sum * 31 + add;
            sum = sum * 31 + sub;
            sum = sum * 31 + mul;
            sum = sum * 31 + mul32;
            sum = sum * 31 + (uint64_t)(int64_t)s16;
            sum = sum * 31 + (uint64_t)(int64_t)s8;
            sum = sum * 31 + shl + shr + (uint64_t)sar + (uint64_t)(int64_t)sar32;
            sum = sum * 31 + (uint64_t)cmp;
            if (i < 6 && j < 6)
                printf("a=%lld b=%lld add=%llu sub=%lld mul=%lld m32=%u s16=%d s8=%d cmp=%d\n",
                       (long long)a, (long long)b, (unsigned long long)add, (long long)sub,
                       (long long)mul, mul32, s16, s8, cmp);
        }
    }
    printf("checksum %016llx\n", (unsigned long long)sum);
    /* Narrow arithmetic through unsigned char / short promotion. */
    unsigned char uc = 200; unsigned short us = 60000; signed char sc = -100;
    printf("promo %d %d %d %u\n", uc + uc, us * 2, sc * sc, (unsigned)(uc * us));
    /* min/max and absolute values. */
    long long m = LLONG_MIN + 1;
    printf("abs %lld %d %ld\n", m < 0 ? -m : m, INT_MAX, LONG_MIN + 1);
    return 0;
}
