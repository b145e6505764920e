/* Bench: calls through a table of function pointers in rotation, and through a struct of
   callbacks (as Redis dispatches commands and dict callbacks). argv[1]: calls (default 100000000). */
// RUN: 100000
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

__attribute__((noinline)) static uint64_t f_add(uint64_t x) { return x + 0x9e3779b9; }
__attribute__((noinline)) static uint64_t f_mul(uint64_t x) { return x * 6364136223846793005ull; }
__attribute__((noinline)) static uint64_t f_rot(uint64_t x) { return (x << 13) | (x >> 51); }
__attribute__((noinline)) static uint64_t f_xor(uint64_t x) { return x ^ (x >> 7); }

struct ops { uint64_t (*hash)(uint64_t); uint64_t (*mix)(uint64_t); };

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100000000;
    uint64_t (*volatile table[3])(uint64_t) = { f_add, f_mul, f_rot };
    struct ops o[2] = { { f_xor, f_add }, { f_rot, f_mul } };
    struct ops *volatile po = o;
    uint64_t x = 1;
    for (long i = 0; i < n; i++) {
        x = table[i % 3](x);
        if ((i & 7) == 0) x = po[i & 1].hash(x) + po[(i >> 3) & 1].mix(i);
    }
    printf("fptr: %llu\n", (unsigned long long)x);
    return 0;
}
