/* Bench: deep recursion: Ackermann, Fibonacci, structs passed and returned by value, variadic
   calls. argv[1]: scale (default 28). */
// RUN: 12
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>

struct vec3 { double x, y, z; long tag; };

__attribute__((noinline)) static long ack(long m, long n) {
    if (m == 0) return n + 1;
    if (n == 0) return ack(m - 1, 1);
    return ack(m - 1, ack(m, n - 1));
}
__attribute__((noinline)) static long fib(long n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
__attribute__((noinline)) static struct vec3 walk(struct vec3 v, int depth) {
    if (depth == 0) return v;
    struct vec3 w = { v.y + 1.0, v.z * 0.5, v.x - v.y, v.tag + depth };
    struct vec3 r = walk(w, depth - 1);
    r.tag ^= depth;
    return r;
}
__attribute__((noinline)) static long sum(int n, ...) {
    va_list ap;
    va_start(ap, n);
    long s = 0;
    for (int i = 0; i < n; i++) s += va_arg(ap, long);
    va_end(ap);
    return s;
}
__attribute__((noinline)) static long vrec(long d) { return d == 0 ? 0 : sum(4, d, d * 2, vrec(d - 1), 1L); }

int main(int argc, char **argv) {
    long k = argc > 1 ? atol(argv[1]) : 28;
    long a = ack(2, k * 40);
    long f = fib(k);
    struct vec3 v = { 1, 2, 3, 0 };
    double acc = 0;
    long tags = 0;
    for (long i = 0; i < k * 4000; i++) {
        struct vec3 r = walk(v, 60);
        acc += r.x + r.y + r.z;
        tags += r.tag;
        v.x += 0.001;
    }
    long vs = 0;
    for (long i = 0; i < k * 2000; i++) vs += vrec(100);
    printf("recurse: %ld %ld %.6f %ld %ld\n", a, f, acc, tags, vs);
    return 0;
}
