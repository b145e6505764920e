/* Variadic functions: ints, doubles and mixed, va_copy, vsnprintf, long argument lists. */
#include <stdio.h>
#include <stdarg.h>
#include <string.h>

static long sum_ints(int n, ...) {
    va_list ap;
    va_start(ap, n);
    long s = 0;
    for (int i = 0; i < n; i++) s += va_arg(ap, int);
    va_end(ap);
    return s;
}
static double sum_doubles(int n, ...) {
    va_list ap;
    va_start(ap, n);
    double s = 0;
    for (int i = 0; i < n; i++) s += va_arg(ap, double) * (i + 1);
    va_end(ap);
    return s;
}
/* fmt: 'i' int, 'l' long, 'd' double, 's' string. */
static void mixed(const char *fmt, ...) {
    va_list ap, copy;
    va_start(ap, fmt);
    va_copy(copy, ap);
    for (const char *p = fmt; *p; p++) {
        switch (*p) {
        case 'i': printf("i:%d ", va_arg(ap, int)); break;
        case 'l': printf("l:%ld ", va_arg(ap, long)); break;
        case 'd': printf("d:%.3f ", va_arg(ap, double)); break;
        case 's': printf("s:%s ", va_arg(ap, const char *)); break;
        }
    }
    int count = 0;
    for (const char *p = fmt; *p; p++) {
        if (*p == 'd') (void)va_arg(copy, double);
        else if (*p == 's') count += (int)strlen(va_arg(copy, const char *));
        else if (*p == 'l') (void)va_arg(copy, long);
        else (void)va_arg(copy, int);
    }
    printf("| strchars=%d\n", count);
    va_end(copy);
    va_end(ap);
}
static int fmt(char *buf, size_t n, const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    int r = vsnprintf(buf, n, f, ap);
    va_end(ap);
    return r;
}

int main(void) {
    printf("%ld\n", sum_ints(0));
    printf("%ld\n", sum_ints(3, 1, 2, 3));
    printf("%ld\n", sum_ints(12, 1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, 1000000));
    printf("%.6f\n", sum_doubles(10, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5));
    mixed("idsidlsdd", 1, 2.25, "two", 3, -4.5, 1L << 40, "seventeen", 1e3, -0.001);
    mixed("dddddddddddi", 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12);
    char buf[32];
    int r = fmt(buf, sizeof buf, "%s-%d-%.2f-%c-%x", "abc", 42, 3.14159, 'Z', 0xbeef);
    printf("vsnprintf %d [%s]\n", r, buf);
    r = fmt(buf, 8, "%d%d%d", 123456, 789, 42);
    printf("truncated %d [%s]\n", r, buf);
    printf("%d %s %c %5.2f %-4d| %lu %lld %hhd %hd\n", 1, "two", '3', 4.0, 5, 6UL, -7LL, (char)300, (short)70000);
    return 0;
}
