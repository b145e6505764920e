/* Bit tricks: popcount, ctz, clz, bswap, rotates, parity, bit reversal. */
#include <stdio.h>
#include <stdint.h>

static uint32_t rotl32(uint32_t x, unsigned r) { return (x << (r & 31)) | (x >> ((32 - r) & 31)); }
static uint64_t rotr64(uint64_t x, unsigned r) { return (x >> (r & 63)) | (x << ((64 - r) & 63)); }
static uint32_t rev32(uint32_t x) {
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
    return __builtin_bswap32(x);
}

int main(void) {
    uint64_t x = 0x9e3779b97f4a7c15ULL, h = 0;
    for (int i = 0; i < 64; i++) {
        uint64_t v = x >> (i % 37) | (i & 1);
        uint32_t w = (uint32_t)(v ^ (v >> 29));
        int pc = __builtin_popcountll(v), tz = __builtin_ctzll(v), lz = __builtin_clzll(v);
        int pc32 = __builtin_popcount(w), tz32 = w ? __builtin_ctz(w) : 32, lz32 = w ? __builtin_clz(w) : 32;
        if (i < 16)
            printf("%016llx pc=%d tz=%d lz=%d | %08x pc=%d tz=%d lz=%d par=%d ffs=%d\n", (unsigned long long)v, pc, tz, lz,
                   w, pc32, tz32, lz32, __builtin_parity(w), __builtin_ffs((int)w));
        h = h * 131 + (uint64_t)(pc + tz * 64 + lz * 4096 + pc32 + tz32 * 7 + lz32 * 11);
        h ^= __builtin_bswap64(v) + __builtin_bswap32(w) + __builtin_bswap16((uint16_t)w);
        h += rotl32(w, (unsigned)i) + rotr64(v, (unsigned)i * 3) + rev32(w);
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    }
    printf("hash %016llx\n", (unsigned long long)h);
    /* Classic tricks. */
    for (uint32_t n = 1; n < 1u << 31; n = n * 3 + 1) {
        uint32_t lowest = n & -n, pow2 = n && !(n & (n - 1));
        uint32_t next = n - 1; next |= next >> 1; next |= next >> 2; next |= next >> 4; next |= next >> 8; next |= next >> 16; next++;
        printf("n=%u lowest=%u pow2=%u nextpow2=%u rev=%08x\n", n, lowest, pow2, next, rev32(n));
    }
    int16_t s = -12345;
    printf("sign ext %d %lld zero ext %u\n", (int)s, (long long)(int8_t)s, (unsigned)(uint16_t)s);
    printf("clrsb %d %d\n", __builtin_clrsb(-1), __builtin_clrsbll(12345));
    return 0;
}
