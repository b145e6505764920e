/* snprintf: widths, flags, conversions, truncation and return values. */
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <stddef.h>
#include <inttypes.h>

int main(void) {
    char buf[128];
    int r;
    r = snprintf(buf, sizeof buf, "[%5d][%-5d][%05d][%+d][% d][%x][%X][%#x][%o][%#o]", 42, 42, 42, 42, 42, 255, 255, 255, 8, 8);
    printf("%d %s\n", r, buf);
    r = snprintf(buf, sizeof buf, "[%10s][%-10s][%.3s][%c][%%][%5c]", "right", "left", "truncate", 'q', 'w');
    printf("%d %s\n", r, buf);
    r = snprintf(buf, sizeof buf, "[%lld][%llu][%hd][%hhu][%zu][%td]", -9223372036854775807LL - 1, 18446744073709551615ULL,
                 (short)-32768, (unsigned char)255, (size_t)123, (ptrdiff_t)-5);
    printf("%d %s\n", r, buf);
    r = snprintf(buf, sizeof buf, "[%" PRId64 "][%" PRIx32 "][%*d][%-*d][%.*f]", INT64_MIN, UINT32_MAX, 6, 7, 6, 7, 2, 3.14159);
    printf("%d %s\n", r, buf);
    r = snprintf(buf, sizeof buf, "[%.0f][%.1f][%.2f][%.3f]", 0.5, 0.25, 0.125, 2.0005);
    printf("%d %s\n", r, buf);
    r = snprintf(buf, sizeof buf, "[%s]", (char *)"");
    printf("%d %s\n", r, buf);
    for (size_t n = 0; n < 12; n++) {
        memset(buf, '#', 20);
        r = snprintf(buf, n, "hello %d", 12345);
        buf[19] = 0;
        printf("n=%zu r=%d buf=%s\n", n, r, n ? buf : "(untouched)");
    }
    r = snprintf(NULL, 0, "%d-%s-%f", 7, "size", 1.5);
    printf("size query %d\n", r);
    char big[4096];
    int pos = 0;
    for (int i = 0; i < 200 && pos < (int)sizeof big; i++) pos += snprintf(big + pos, sizeof big - (size_t)pos, "%d:%x;", i, i * i);
    printf("built %d chars, tail %s\n", pos, big + pos - 20);
    int n1 = 0, n2 = 0;
    printf("count%n positions%n\n", &n1, &n2);
    printf("n1=%d n2=%d\n", n1, n2);
    return 0;
}
