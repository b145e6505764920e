/* Loops the compiler vectorizes at -O2 (SSE): sums, saxpy, min/max, byte ops, conversions. */
#include <stdio.h>
#include <stdint.h>

#define N 4099
static float fa[N], fb[N];
static double da[N];
static int32_t ia[N], ib[N];
static uint8_t ba[N], bb[N];
static int16_t sa[N];

int main(void) {
    for (int i = 0; i < N; i++) {
        fa[i] = (float)(i % 97) * 0.5f - 10.0f;
        fb[i] = (float)((i * 7) % 31) / 3.0f;
        da[i] = i * 0.001 - 2.0;
        ia[i] = (i * 2654435761u) >> 7;
        ib[i] = (int32_t)(i * 40503u) - 20000;
        ba[i] = (uint8_t)(i * 13);
        bb[i] = (uint8_t)(255 - i * 3);
        sa[i] = (int16_t)(i * 37 - 30000);
    }
    for (int r = 0; r < 3; r++) for (int i = 0; i < N; i++) fa[i] = fa[i] * 0.75f + fb[i] * 1.25f;
    float fs = 0; double ds = 0; int64_t is = 0; uint32_t bs = 0; int32_t mn = INT32_MAX, mx = INT32_MIN;
    for (int i = 0; i < N; i++) fs += fa[i];
    for (int i = 0; i < N; i++) ds += da[i] * da[i];
    for (int i = 0; i < N; i++) is += (int64_t)ia[i] * ib[i];
    for (int i = 0; i < N; i++) { mn = ia[i] - ib[i] < mn ? ia[i] - ib[i] : mn; mx = ib[i] > mx ? ib[i] : mx; }
    for (int i = 0; i < N; i++) { uint8_t s = (uint8_t)(ba[i] + bb[i]); bs += s; ba[i] = ba[i] > bb[i] ? ba[i] : bb[i]; }
    uint32_t xs = 0;
    for (int i = 0; i < N; i++) xs ^= (uint32_t)ia[i] << (i & 7) | (uint32_t)(ba[i] & 0x0f);
    int32_t ss = 0;
    for (int i = 0; i < N; i++) ss += sa[i] >> 3;
    double cv = 0;
    for (int i = 0; i < N; i++) cv += (double)ia[i] / 1024.0 + (double)fb[i];
    int32_t ic[N];
    for (int i = 0; i < N; i++) ic[i] = (int32_t)(fa[i] * 100.0f);
    int64_t icsum = 0;
    for (int i = 0; i < N; i++) icsum += ic[i];
    printf("fs %.4f ds %.6f is %lld mn %d mx %d bs %u xs %08x ss %d cv %.6f icsum %lld\n", fs, ds, (long long)is, mn, mx,
           bs, xs, ss, cv, (long long)icsum);
    int cnt = 0;
    for (int i = 0; i < N; i++) cnt += fa[i] > 0.0f;
    printf("positive %d\n", cnt);
    return 0;
}
