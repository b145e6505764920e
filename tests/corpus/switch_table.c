/* Dense switches (jump tables) with many cases, a sparse switch, nested switches. */
#include <stdio.h>

static int dense(int x) {
    switch (x) {
    case 0: return 17; case 1: return 4; case 2: return 99; case 3: return -3;
    case 4: return 12; case 5: return 5; case 6: return 66; case 7: return 70;
    case 8: return 81; case 9: return 9; case 10: return 1010; case 11: return -11;
    case 12: return 144; case 13: return 31; case 14: return 41; case 15: return 15;
    case 16: return 256; case 17: return 71; case 18: return 18; case 19: return 91;
    case 20: return 400; case 21: return 2121; case 22: return 222; case 23: return 32;
    case 24: return 24; case 25: return 625; case 26: return 62; case 27: return 72;
    case 28: return 28; case 29: return 292; case 30: return 3; case 31: return 13;
    case 32: return 1024; case 33: return 333; case 34: return 43; case 35: return 53;
    case 36: return 63; case 37: return 73; case 38: return 83; case 39: return 93;
    case 40: return 1600; case 41: return 14; case 42: return 42; case 43: return 34;
    case 44: return 44; case 45: return 54; case 46: return 64; case 47: return 74;
    default: return -1;
    }
}

static const char *names(unsigned c) {
    switch (c) {
    case 'a': return "alpha"; case 'b': return "bravo"; case 'c': return "charlie";
    case 'd': return "delta"; case 'e': return "echo"; case 'f': return "foxtrot";
    case 'g': return "golf"; case 'h': return "hotel"; case 'i': return "india";
    case 'j': return "juliet"; case 'k': return "kilo"; case 'l': return "lima";
    case 'm': return "mike"; case 'n': return "november"; case 'o': return "oscar";
    default: return "?";
    }
}

static long sparse(long x) {
    switch (x) {
    case -1000000: return 1; case -77: return 2; case 3: return 3; case 1000: return 4;
    case 65536: return 5; case 1L << 40: return 6; case 999999937: return 7;
    default: return 0;
    }
}

static int fallthrough(int x) {
    int r = 0;
    switch (x & 7) {
    case 0: r += 1; /* fall through */
    case 1: r += 10; /* fall through */
    case 2: r += 100; break;
    case 3: r -= 5; /* fall through */
    case 4: case 5: r *= 3; r += 7; break;
    default: r = x;
    }
    return r;
}

int main(void) {
    long total = 0;
    for (int i = -3; i < 52; i++) {
        int d = dense(i);
        total = total * 7 + d;
        printf("dense(%d)=%d fall=%d\n", i, d, fallthrough(i));
    }
    for (unsigned c = 'Z'; c <= 'q'; c++) printf("%c:%s ", c, names(c));
    printf("\n");
    long xs[] = {-1000000, -77, 3, 1000, 65536, 1L << 40, 999999937, 5, -5};
    for (unsigned i = 0; i < sizeof xs / sizeof xs[0]; i++) printf("sparse(%ld)=%ld\n", xs[i], sparse(xs[i]));
    printf("total %ld\n", total);
    return 0;
}
