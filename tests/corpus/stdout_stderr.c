/* Interleaved stdout and stderr through stdio and raw write(2); exit status 3. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < 20; i++) {
        printf("out %d\n", i);
        fprintf(stderr, "err %d%s", i, i % 3 ? "\n" : " (no newline yet)...\n");
    }
    const char *raw = "raw write to fd 1\n";
    write(1, raw, strlen(raw));
    write(2, "raw write to fd 2\n", 18);
    char big[10000];
    for (int i = 0; i < (int)sizeof big; i++) big[i] = (char)('a' + i % 26);
    big[sizeof big - 1] = '\n';
    fwrite(big, 1, sizeof big, stdout);
    fputs("partial line without newline on stderr", stderr);
    setvbuf(stdout, NULL, _IOFBF, 4096);
    for (int i = 0; i < 3000; i++) printf("%d%c", i, i % 40 == 39 ? '\n' : ' ');
    printf("\nend\n");
    return 3;
}
