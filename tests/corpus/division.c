/* Division and remainder of every width, negative operands included (never by zero or
 * MIN / -1). */
#include <stdio.h>
#include <stdint.h>

static volatile long long nums[] = {0, 1, -1, 7, -7, 13, -13, 100, -100, 255, -256, 1000003,
    -1000003, 2147483647LL, -2147483647LL, 9223372036854775807LL, -9223372036854775807LL};
static volatile long long dens[] = {1, -1, 2, -2, 3, -3, 7, -7, 10, -10, 256, -256, 65537,
    1000000007LL, -1000000007LL};

int main(void) {
    unsigned long long h = 1469598103934665603ULL;
    for (unsigned i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        for (unsigned j = 0; j < sizeof dens / sizeof dens[0]; j++) {
            long long a = nums[i], b = dens[j];
            long long q = a / b, r = a % b;
            unsigned long long uq = (unsigned long long)a / (unsigned long long)b;
            unsigned long long ur = (unsigned long long)a % (unsigned long long)b;
            int a32 = (int)a, b32 = (int)b;
            int q32 = 0, r32 = 0;
            if (b32 != 0 && !(a32 == INT32_MIN && b32 == -1)) { q32 = a32 / b32; r32 = a32 % b32; }
            unsigned uq32 = b32 ? (unsigned)a32 / (unsigned)b32 : 0;
            short a16 = (short)a, b16 = (short)b;
            int q16 = b16 ? a16 / b16 : 0;
            signed char a8 = (signed char)a, b8 = (signed char)b;
            int r8 = b8 ? a8 % b8 : 0;
            h = (h ^ (unsigned long long)q) * 1099511628211ULL;
            h = (h ^ (unsigned long long)r) * 1099511628211ULL;
            h = (h ^ uq ^ ur) * 1099511628211ULL;
            h = (h ^ (unsigned)q32 ^ ((unsigned long long)(unsigned)r32 << 32)) * 1099511628211ULL;
            h = (h ^ uq32 ^ (unsigned)q16 ^ (unsigned)r8) * 1099511628211ULL;
            if (j < 6 && i < 9)
                printf("%lld / %lld = %lld rem %lld; u %llu rem %llu; 32: %d %d; 16: %d; 8: %d\n",
                       a, b, q, r, uq, ur, q32, r32, q16, r8);
        }
    }
    /* Constant divisors (the compiler turns these into multiplications). */
    long long acc = 0;
    for (long long x = -5000; x <= 5000; x += 7)
        acc += x / 3 + x / 7 + x % 10 + x / 1000 + (long long)((unsigned long long)(x + 6000) / 9);
    printf("const-div acc %lld\n", acc);
    printf("hash %016llx\n", h);
    return 0;
}
