/* libm functions, rounding, conversions between float, double and integers. */
#include <stdio.h>
#include <math.h>
#include <stdint.h>

int main(void) {
    for (int i = -8; i <= 8; i++) {
        double x = i * 0.75 + 0.125;
        printf("x=%g sqrt=%.10g sin=%.12f cos=%.12f tan=%.8g exp=%.12g atan=%.12f\n", x,
               sqrt(fabs(x)), sin(x), cos(x), tan(x), exp(x), atan(x));
        printf("  floor=%g ceil=%g round=%g trunc=%g rint=%g lrint=%ld fmod=%.12g\n", floor(x),
               ceil(x), round(x), trunc(x), rint(x), lrint(x), fmod(x, 1.3));
        if (x > 0) printf("  log=%.14g log10=%.14g log2=%.14g pow=%.14g cbrt=%.14g\n", log(x),
                          log10(x), log2(x), pow(x, 1.7), cbrt(x));
    }
    printf("hypot %.15g atan2 %.15g %.15g\n", hypot(3, 4), atan2(1, -1), atan2(-0.0, -1));
    /* Conversions. */
    volatile double ds[] = {-2.7, -0.5, 0.49999, 1e9, 3e9, -3e9, 1.5e18, 123.999};
    for (unsigned i = 0; i < sizeof ds / sizeof ds[0]; i++) {
        double d = ds[i];
        long long ll = (long long)d;
        int iv = (d > -2e9 && d < 2e9) ? (int)d : -1;
        unsigned long long ul = d >= 0 ? (unsigned long long)d : 0;
        float f = (float)d;
        printf("conv %g -> %lld %d %llu %.9g %.17g\n", d, ll, iv, ul, f, (double)f);
    }
    uint64_t big = 18446744073709551615ULL;
    printf("u64->double %.1f i64->float %.1f\n", (double)big, (float)(int64_t)-123456789012LL);
    /* Float (single) arithmetic. */
    float a = 1.1f, b = 2.2f, c = 0;
    for (int i = 0; i < 100; i++) c = c * 0.99f + a * b - (float)i / 7.0f;
    printf("float loop %.6f sqrtf %.7f fminf %g fmaxf %g\n", c, sqrtf(2.0f), fminf(a, b), fmaxf(a, b));
    double s = 0;
    for (int i = 1; i < 20000; i++) s += (i & 1 ? 1.0 : -1.0) / (2 * i - 1);
    printf("leibniz %.15f\n", 4 * s);
    printf("frexp/ldexp: ");
    int e;
    double m = frexp(1234.5, &e);
    printf("%g %d %g\n", m, e, ldexp(m, e));
    printf("copysign %g nextafter %.17g fma %.17g\n", copysign(3, -0.0), nextafter(1.0, 2.0), fma(0.1, 10, -1));
    return 0;
}
