/* File I/O in the current directory: stdio and raw syscalls, stat, seek, rename, unlink.
 * Leaves result.txt behind so the written file itself is compared. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

int main(void) {
    FILE *f = fopen("scratch.txt", "w");
    if (!f) { perror("fopen"); return 1; }
    for (int i = 0; i < 1000; i++) fprintf(f, "line %04d %s\n", i, i % 2 ? "odd" : "even");
    fclose(f);
    struct stat st;
    if (stat("scratch.txt", &st) != 0) { perror("stat"); return 1; }
    printf("size %lld regular %d\n", (long long)st.st_size, S_ISREG(st.st_mode));
    f = fopen("scratch.txt", "r");
    char line[64]; int n = 0, odd = 0;
    while (fgets(line, sizeof line, f)) { n++; if (strstr(line, "odd")) odd++; }
    printf("lines %d odd %d\n", n, odd);
    fseek(f, 15 * 500, SEEK_SET);
    fgets(line, sizeof line, f);
    printf("seek -> %s", line);
    printf("ftell %ld\n", ftell(f));
    fclose(f);

    int fd = open("raw.bin", O_CREAT | O_WRONLY | O_TRUNC, 0644);
    unsigned char buf[4096];
    for (int i = 0; i < 4096; i++) buf[i] = (unsigned char)(i * 31);
    for (int k = 0; k < 5; k++) if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) { perror("write"); return 1; }
    close(fd);
    fd = open("raw.bin", O_RDONLY);
    off_t end = lseek(fd, 0, SEEK_END);
    lseek(fd, 4096 * 2 + 100, SEEK_SET);
    unsigned char b2[8];
    ssize_t got = read(fd, b2, sizeof b2);
    struct stat fs;
    fstat(fd, &fs);
    printf("raw end %lld read %zd first %u fstat %lld\n", (long long)end, got, b2[0], (long long)fs.st_size);
    close(fd);
    if (rename("raw.bin", "raw2.bin") != 0) perror("rename");
    printf("old exists %d new exists %d\n", access("raw.bin", F_OK) == 0, access("raw2.bin", F_OK) == 0);
    unlink("raw2.bin");
    unlink("scratch.txt");
    printf("after unlink %d\n", access("scratch.txt", F_OK));
    if (mkdir("sub", 0755) == 0) {
        FILE *g = fopen("sub/inner.txt", "w");
        fputs("inner\n", g);
        fclose(g);
        unlink("sub/inner.txt");
        printf("rmdir %d\n", rmdir("sub"));
    }
    f = fopen("result.txt", "w");
    fprintf(f, "result file\n%d lines, %d odd\n", n, odd);
    fclose(f);
    f = fopen("result.txt", "a");
    fprintf(f, "appended %.2f\n", 2.5);
    fclose(f);
    FILE *missing = fopen("does-not-exist.txt", "r");
    printf("missing file -> %s\n", missing ? "opened?" : "NULL");
    return 0;
}
