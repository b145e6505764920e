/* Number parsing: strtod, atof, strtol family with bases, end pointers and edge cases. */
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>

int main(void) {
    const char *ds[] = {"0", "-0", "3.14159", "  -2.5e-3xyz", "1e308", "1e309", "-1e-400", "0x1.8p3",
        "inf", "-Infinity", "nan", ".5", "5.", "1.7976931348623157e308", "2.2250738585072014e-308",
        "123456789012345678901234567890", "0.1", "1e-5", "abc", "+7.25E+2", "4.9406564584124654e-324"};
    for (unsigned i = 0; i < sizeof ds / sizeof ds[0]; i++) {
        char *end;
        errno = 0;
        double d = strtod(ds[i], &end);
        printf("strtod(\"%s\") = %.17g consumed %td erange %d atof %.6g\n", ds[i], d, end - ds[i], errno == ERANGE,
               atof(ds[i]));
    }
    const char *ls[] = {"0", "-17", "  +42", "0x1f", "0777", "z", "9223372036854775807", "9223372036854775808",
        "-9223372036854775809", "1010b", "ff", "  -0x80000000"};
    int bases[] = {10, 0, 16, 2, 8, 36};
    for (unsigned i = 0; i < sizeof ls / sizeof ls[0]; i++) {
        for (unsigned b = 0; b < 6; b++) {
            char *end;
            errno = 0;
            long v = strtol(ls[i], &end, bases[b]);
            printf("strtol(\"%s\",%d)=%ld end=%td e=%d  ", ls[i], bases[b], v, end - ls[i], errno == ERANGE);
        }
        errno = 0;
        unsigned long long u = strtoull(ls[i], NULL, 0);
        printf("strtoull=%llu e=%d atoi=%d atol=%ld\n", u, errno == ERANGE, atoi(ls[i]), atol(ls[i]));
    }
    float f = strtof("3.4028235e38", NULL), g = strtof("1e39", NULL);
    printf("strtof %.9g %g\n", f, g);
    long double ld = strtold("1.18973149535723176502e+4932", NULL);
    printf("strtold %.10Lg\n", ld);
    double sum = 0;
    char buf[32];
    for (int i = 0; i < 500; i++) {
        snprintf(buf, sizeof buf, "%.17g", i * 0.37 - 50.0 / (i + 1));
        sum += strtod(buf, NULL);
    }
    printf("round-trip sum %.17g\n", sum);
    return 0;
}
