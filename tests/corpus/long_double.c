/* long double (x87 extended precision) arithmetic and printing. */
#include <stdio.h>
#include <math.h>

int main(void) {
    long double x = 1.0L;
    for (int i = 1; i <= 25; i++) {
        x = x * 3.0L / 2.0L + 1.0L / i;
        printf("%2d %Lf %.20Lf %Le %.18Lg\n", i, x, 1.0L / i, x, x);
    }
    long double third = 1.0L / 3.0L;
    printf("third %.25Lf\n", third);
    printf("sqrtl(2) %.21Lf\n", sqrtl(2.0L));
    printf("expl(1) %.21Lf logl(10) %.21Lf\n", expl(1.0L), logl(10.0L));
    printf("sinl(1) %.21Lf cosl(1) %.21Lf\n", sinl(1.0L), cosl(1.0L));
    printf("powl %.18Lg fabsl %Lg floorl %Lg\n", powl(1.0001L, 10000.0L), fabsl(-2.5L), floorl(-2.5L));
    volatile long double big = 12345678901234567890.0L;
    unsigned long long u = (unsigned long long)big;
    long long s = (long long)(-big / 10);
    printf("conv %llu %lld %.3Lf\n", u, s, (long double)u);
    long double acc = 0;
    for (int k = 1; k <= 10000; k++) acc += 1.0L / ((long double)k * k * k);
    printf("zeta3 %.20Lf\n", acc);
    printf("cmp %d %d %d\n", third < 0.34L, third > (long double)(1.0 / 3.0), x == x);
    printf("double->ld->double %.17g\n", (double)(long double)0.1);
    printf("eps %Lg max %Le\n", __LDBL_EPSILON__, __LDBL_MAX__);
    return 0;
}
