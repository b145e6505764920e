/* Structs passed and returned by value: small (registers), mixed int/float, large (memory). */
#include <stdio.h>
#include <string.h>

struct small { int a, b; };
struct pair { long x; double y; };
struct fpair { float f; double d; };
struct big { long v[9]; char tag[16]; };
struct bytes { char c[3]; };
struct nested { struct small s; struct pair p; short k; };

static struct small mk_small(int a, int b) { struct small s = {a, b}; return s; }
static struct small swap_small(struct small s) { struct small r = {s.b, s.a}; return r; }
static struct pair scale(struct pair p, double k) { p.x = (long)(p.x * k); p.y *= k; return p; }
static struct fpair fp(struct fpair a, struct fpair b) { struct fpair r = {a.f + b.f, a.d * b.d}; return r; }
static struct big make_big(int seed) {
    struct big b;
    for (int i = 0; i < 9; i++) b.v[i] = (long)seed * (i + 1) - i * i;
    snprintf(b.tag, sizeof b.tag, "big-%d", seed);
    return b;
}
static long sum_big(struct big b) { long s = 0; for (int i = 0; i < 9; i++) s += b.v[i]; return s + (long)strlen(b.tag); }
static struct big twice(struct big b) { for (int i = 0; i < 9; i++) b.v[i] *= 2; b.tag[0] = 'B'; return b; }
static struct bytes rot(struct bytes b) { struct bytes r = {{b.c[1], b.c[2], b.c[0]}}; return r; }
static struct nested nest(struct small s, struct pair p, short k) { struct nested n = {s, p, k}; return n; }
static double many(struct small a, struct pair b, struct fpair c, struct big d, struct small e, double f, int g) {
    return a.a + a.b + (double)b.x + b.y + c.f + c.d + (double)sum_big(d) + e.a * e.b + f + g;
}

int main(void) {
    struct small s = swap_small(mk_small(3, -9));
    printf("small %d %d\n", s.a, s.b);
    struct pair p = scale((struct pair){1000, 2.5}, 1.5);
    printf("pair %ld %.3f\n", p.x, p.y);
    struct fpair f = fp((struct fpair){1.5f, 2.0}, (struct fpair){2.25f, -3.5});
    printf("fpair %.3f %.3f\n", f.f, f.d);
    struct big b = twice(make_big(7));
    printf("big %s sum %ld v8 %ld\n", b.tag, sum_big(b), b.v[8]);
    struct bytes by = rot(rot((struct bytes){{'x', 'y', 'z'}}));
    printf("bytes %c%c%c\n", by.c[0], by.c[1], by.c[2]);
    struct nested n = nest(s, p, -12);
    printf("nested %d %d %ld %.2f %d\n", n.s.a, n.s.b, n.p.x, n.p.y, n.k);
    printf("many %.4f\n", many(s, p, f, b, mk_small(4, 5), 0.125, -3));
    struct big arr[4];
    for (int i = 0; i < 4; i++) arr[i] = make_big(i * 11);
    long t = 0;
    for (int i = 0; i < 4; i++) t += sum_big(arr[i]);
    printf("array of big %ld\n", t);
    return 0;
}
