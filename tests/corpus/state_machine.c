/* A small lexer and an expression evaluator driven by an explicit state machine. */
#include <stdio.h>
#include <ctype.h>
#include <string.h>

enum state { START, IN_NUM, IN_IDENT, IN_STR, IN_COMMENT, DONE };
enum tok { T_NUM, T_IDENT, T_STR, T_OP, T_END };

static const char *src =
    "let x = 42 + y1 * (7 - 3); // comment here\n"
    "print \"hello, world\" ; z_9 = 0x_not_hex 1234567 - 89 / 3;\n"
    "# another comment\nend";

int main(void) {
    enum state st = START;
    const char *p = src, *start = p;
    int counts[5] = {0};
    long numsum = 0;
    char tokbuf[64];
    while (st != DONE) {
        char c = *p;
        switch (st) {
        case START:
            start = p;
            if (c == 0) { st = DONE; counts[T_END]++; break; }
            if (isdigit((unsigned char)c)) st = IN_NUM;
            else if (isalpha((unsigned char)c) || c == '_') st = IN_IDENT;
            else if (c == '"') st = IN_STR;
            else if (c == '#' || (c == '/' && p[1] == '/')) st = IN_COMMENT;
            else if (!isspace((unsigned char)c)) { counts[T_OP]++; printf("op   %c\n", c); }
            p++;
            break;
        case IN_NUM:
            if (isdigit((unsigned char)c)) { p++; break; }
            memcpy(tokbuf, start, (size_t)(p - start)); tokbuf[p - start] = 0;
            long v = 0;
            for (char *q = tokbuf; *q; q++) v = v * 10 + (*q - '0');
            numsum += v; counts[T_NUM]++;
            printf("num  %ld\n", v);
            st = START;
            break;
        case IN_IDENT:
            if (isalnum((unsigned char)c) || c == '_') { p++; break; }
            printf("id   %.*s\n", (int)(p - start), start);
            counts[T_IDENT]++;
            st = START;
            break;
        case IN_STR:
            if (c == 0) { printf("unterminated\n"); st = DONE; break; }
            p++;
            if (c == '"') { printf("str  %.*s\n", (int)(p - start), start); counts[T_STR]++; st = START; }
            break;
        case IN_COMMENT:
            if (c == '\n' || c == 0) { printf("comment (%d chars)\n", (int)(p - start)); st = START; break; }
            p++;
            break;
        case DONE: break;
        }
    }
    printf("nums %d ids %d strs %d ops %d ends %d numsum %ld\n", counts[0], counts[1], counts[2], counts[3], counts[4], numsum);
    /* A table-driven DFA: accepts binary numbers divisible by 3. */
    static const int dfa[3][2] = {{0, 1}, {2, 0}, {1, 2}};
    for (unsigned n = 0; n < 40; n++) {
        int s = 0;
        for (int b = 31; b >= 0; b--) s = dfa[s][(n >> b) & 1];
        printf("%u%s", n, s == 0 ? "* " : " ");
    }
    printf("\n");
    return 0;
}
