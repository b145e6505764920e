/* Deep recursion (depth 100000), mutual recursion, Ackermann, memoized Fibonacci. */
#include <stdio.h>

static volatile int sink;

static long deep(int n) {
    if (n == 0) return 0;
    long r = deep(n - 1);
    sink = n;
    return r + (n % 7);
}
static unsigned long ack(unsigned long m, unsigned long n) {
    if (m == 0) return n + 1;
    if (n == 0) return ack(m - 1, 1);
    return ack(m - 1, ack(m, n - 1));
}
static unsigned long long memo[100];
static unsigned long long fib(int n) {
    if (n < 2) return (unsigned long long)n;
    if (memo[n]) return memo[n];
    return memo[n] = fib(n - 1) + fib(n - 2);
}
static int hanoi(int n, int from, int to, int via) {
    if (n == 0) return 0;
    return hanoi(n - 1, from, via, to) + 1 + hanoi(n - 1, via, to, from);
}
static int collatz_depth(long n) { return n == 1 ? 0 : 1 + collatz_depth(n % 2 ? 3 * n + 1 : n / 2); }

int main(void) {
    printf("deep(100000) = %ld\n", deep(100000));
    printf("deep(12345) = %ld\n", deep(12345));
    for (unsigned long m = 0; m <= 2; m++)
        for (unsigned long n = 0; n <= 4; n++) printf("ack(%lu,%lu)=%lu\n", m, n, ack(m, n));
    printf("ack(3,5)=%lu\n", ack(3, 5));
    printf("fib(90)=%llu\n", fib(90));
    printf("hanoi(18)=%d\n", hanoi(18, 1, 3, 2));
    int best = 0; long arg = 0;
    for (long i = 1; i < 30000; i++) { int d = collatz_depth(i); if (d > best) { best = d; arg = i; } }
    printf("collatz longest below 30000: %ld (%d steps)\n", arg, best);
    return 0;
}
