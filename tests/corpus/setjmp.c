/* setjmp/longjmp: nested buffers, jumps across several frames, volatile locals. */
#include <stdio.h>
#include <setjmp.h>

static jmp_buf outer, inner;
static int depth_reached;

static void dive(int depth, int target) {
    volatile char pad[64];
    pad[depth % 64] = (char)depth;
    depth_reached = depth;
    if (depth == target) longjmp(inner, depth * 10 + pad[depth % 64] % 3);
    dive(depth + 1, target);
}

static int safe_div(int a, int b) {
    if (b == 0) longjmp(outer, 99);
    return a / b;
}

int main(void) {
    for (volatile int t = 0; t < 8; t++) {
        volatile int count = 0;
        int v = setjmp(inner);
        count++;
        if (v == 0) dive(0, t * 37);
        printf("target %d: longjmp value %d depth %d count %d\n", t * 37, v, depth_reached, count);
    }
    int divisors[] = {3, 1, 0, 7};
    for (volatile int i = 0; i < 4; i++) {
        int r = setjmp(outer);
        if (r == 0)
            printf("100/%d = %d\n", divisors[i], safe_div(100, divisors[i]));
        else
            printf("caught division by zero (code %d)\n", r);
    }
    /* longjmp with value 0 delivers 1. */
    volatile int rounds = 0;
    int r = setjmp(outer);
    if (rounds++ < 3) longjmp(outer, 0);
    printf("last setjmp value %d after %d rounds\n", r, rounds);
    sigjmp_buf sj;
    volatile int n = 0;
    if (sigsetjmp(sj, 1) < 5) { n++; siglongjmp(sj, n); }
    printf("sigsetjmp loop n=%d\n", n);
    return 0;
}
