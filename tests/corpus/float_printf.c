/* printf of doubles with %f %e %g %a at many precisions and widths, special values too. */
#include <stdio.h>
#include <math.h>

static volatile double vals[] = {0.0, -0.0, 1.0, -1.5, 0.1, 2.0 / 3.0, 3.14159265358979,
    1e-5, 123456.789, 1e10, 6.02214076e23, 1.602e-19, 9.999999, 0.5, 2.5, -2.5, 1e300,
    4.9e-324, 2.2250738585072014e-308, 1.7976931348623157e308};

int main(void) {
    for (unsigned i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        double v = vals[i];
        printf("[%f] [%.0f] [%.3f] [%12.4f] [%-12.2f|] [%+.1f]\n", v, v, v, v, v, v);
        printf("[%e] [%.0e] [%.10e] [%E] [%15.3e]\n", v, v, v, v, v);
        printf("[%g] [%.1g] [%.8g] [%.17g] [%G] [%#g]\n", v, v, v, v, v, v);
        printf("[%a]\n", v);
    }
    double inf = INFINITY, nan_ = NAN;
    printf("special [%f] [%e] [%g] [%f] [%5.1f] [%-8f|]\n", inf, -inf, inf, nan_ != nan_ ? 1.0 : 0.0, -inf, inf);
    printf("isnan %d isinf %d signbit(-0) %d\n", isnan(nan_), isinf(-inf), signbit(-0.0) != 0);
    float f = 1.0f / 3.0f;
    printf("float %f %.9g %e\n", f, f, (double)f * 3);
    double acc = 0;
    for (int k = 1; k <= 1000; k++) acc += 1.0 / ((double)k * k);
    printf("basel %.15f pi^2/6 %.15f\n", acc, M_PI * M_PI / 6);
    return 0;
}
