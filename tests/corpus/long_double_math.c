/* long double libm functions on values known only at run time: glibc and musl compute them
 * with the x87 transcendental instructions (f2xm1, fyl2x, fyl2xp1, fpatan, and musl's fsin,
 * fcos, fptan family). Printed to 15 digits: the hardware rounds these instructions only
 * within one unit in the last place, so the last of the 64 bits is not part of the output. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    /* The arguments come from argv so the compiler cannot fold the calls. */
    long double step = argc > 1 ? strtold(argv[1], NULL) : 0.37L;
    long double sum = 0;
    for (int i = -12; i <= 12; i++) {
        volatile long double x = i * step;
        long double a = fabsl(x) + 0.5L;
        printf("%3d e %.15Lg 2 %.15Lg m1 %.15Lg ln %.15Lg l2 %.15Lg l10 %.15Lg l1p %.15Lg\n", i,
               expl(x), exp2l(x), expm1l(x / 8), logl(a), log2l(a), log10l(a), log1pl(x / 16));
        printf("    at %.15Lg at2 %.15Lg as %.15Lg ac %.15Lg pw %.15Lg sn %.15Lg cs %.15Lg tn %.15Lg\n",
               atanl(x), atan2l(x, step - 2), asinl(x / 5), acosl(x / 5), powl(a, x), sinl(x),
               cosl(x), tanl(x));
        sum += expl(x / 4) + logl(a) + atan2l(x, 1.5L) + sinl(x);
    }
    /* Large and tiny arguments: argument reduction, underflow, overflow. */
    volatile long double big = 1e6L * step, tiny = 1e-3000L * step;
    printf("big sin %.15Lg cos %.15Lg tan %.15Lg\n", sinl(big), cosl(big), tanl(big));
    printf("tiny exp %.15Lg log1p %.15Lg atan %.15Lg sin %.15Lg\n", expl(tiny) - 1, log1pl(tiny),
           atanl(tiny), sinl(tiny));
    printf("huge exp %Lg log %.15Lg pow %Lg\n", expl(20000 * step), logl(1e4000L * step),
           powl(10, 5000 * step));
    printf("special log(0) %Lg log(-1) %Lg atan2(0,-1) %.15Lg exp(-inf) %Lg\n", logl(0 * step),
           logl(-step), atan2l(0 * step, -step), expl(-INFINITY * step));
    printf("sum %.15Lg\n", sum);
    return 0;
}
