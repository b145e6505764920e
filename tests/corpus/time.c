/* Clocks: only deterministic facts are printed (monotonic increase, plausible ranges). */
#include <stdio.h>
#include <time.h>
#include <sys/time.h>

int main(void) {
    time_t t = time(NULL);
    printf("time after 2020: %d\n", t > 1577836800);
    struct timespec a, b, r;
    clock_gettime(CLOCK_MONOTONIC, &a);
    volatile unsigned long x = 0;
    for (unsigned long i = 0; i < 3000000; i++) x += i;
    struct timespec req = {0, 2000000};
    nanosleep(&req, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    long long ns = (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
    printf("monotonic increased: %d (>= 2ms: %d)\n", ns > 0, ns >= 2000000);
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    printf("realtime close to time(): %d\n", rt.tv_sec - t >= 0 && rt.tv_sec - t < 60);
    printf("nsec in range: %d\n", rt.tv_nsec >= 0 && rt.tv_nsec < 1000000000);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    printf("gettimeofday usec in range: %d\n", tv.tv_usec >= 0 && tv.tv_usec < 1000000);
    clock_getres(CLOCK_MONOTONIC, &r);
    printf("resolution positive: %d\n", r.tv_sec > 0 || r.tv_nsec > 0);
    clock_t c = clock();
    printf("clock nonnegative: %d\n", c >= 0);
    struct tm tmv;
    time_t fixed = 1700000000;
    gmtime_r(&fixed, &tmv);
    char buf[64];
    strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %A %j", &tmv);
    printf("gmtime %s\n", buf);
    printf("mktime-free timegm check: yday %d wday %d\n", tmv.tm_yday, tmv.tm_wday);
    printf("sum %lu\n", (unsigned long)x);
    return 0;
}
