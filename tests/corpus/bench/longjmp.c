/* Bench: setjmp/longjmp in a loop (error unwinding through a few frames), so returns do
   not match their calls. argv[1]: iterations (default 30000000). */
// RUN: 1000
#include <stdio.h>
#include <stdlib.h>
#include <setjmp.h>

static jmp_buf env;
static volatile long depth_sum;

__attribute__((noinline)) static void deep(long i, int d) {
    depth_sum += d;
    if (d == 0) {
        if (i % 3) longjmp(env, (int)(i & 7) + 1);
        return;
    }
    deep(i, d - 1);
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 30000000;
    long jumps = 0, sum = 0;
    for (long i = 0; i < n; i++) {
        int v = setjmp(env);
        if (v == 0) {
            deep(i, (int)(i & 7));
        } else {
            jumps++;
            sum += v;
        }
    }
    printf("longjmp: %ld %ld %ld\n", jumps, sum, depth_sum);
    return 0;
}
