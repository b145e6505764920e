/* ctype classification and case mapping over every byte value. */
#include <stdio.h>
#include <ctype.h>

int main(void) {
    const char *names[] = {"alnum", "alpha", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space", "upper", "xdigit"};
    int (*fns[])(int) = {isalnum, isalpha, isblank, iscntrl, isdigit, isgraph, islower, isprint, ispunct, isspace, isupper, isxdigit};
    for (int f = 0; f < 12; f++) {
        int count = 0;
        unsigned long mask = 0;
        for (int c = 0; c < 256; c++) if (fns[f](c)) { count++; mask = mask * 3 + (unsigned long)c; }
        printf("%-7s count %3d signature %lu\n", names[f], count, mask);
    }
    printf("EOF: %d %d\n", isalpha(EOF) != 0, tolower(EOF));
    char s[] = "Hello, World! 123 MiXeD cAsE_text\t\n";
    for (char *p = s; *p; p++) putchar(toupper((unsigned char)*p));
    for (char *p = s; *p; p++) putchar(tolower((unsigned char)*p));
    int sum = 0;
    for (int c = 0; c < 256; c++) sum += toupper(c) * 3 + tolower(c);
    printf("map sum %d\n", sum);
    int words = 0, in = 0;
    const char *text = "  the quick\tbrown fox\njumps over  the lazy dog  ";
    for (const char *p = text; *p; p++) { if (isspace((unsigned char)*p)) in = 0; else if (!in) { in = 1; words++; } }
    printf("words %d\n", words);
    return 0;
}
