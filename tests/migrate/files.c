/* A program that holds files open for its whole run and keeps writing to them, for
 * migration tests: log.txt (O_APPEND, one line per step), data.bin (plain writes, then a
 * pwrite back into a header that counts the records) and a FILE* stream (sum.txt, stdio
 * buffered). Between writes it computes, so a checkpoint may land anywhere. The files'
 * final contents depend only on the arguments.
 *
 * usage: files STEPS [WORK]   (run in the directory the files go to)
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t mix(uint64_t x) {
    x ^= x >> 31;
    x *= 0x7fb5d329728ea185ull;
    x ^= x >> 27;
    x *= 0x81dadef4bc2dd44dull;
    x ^= x >> 33;
    return x;
}

static void put(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n <= 0)
            exit(5);
        p += n;
        len -= (size_t)n;
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: files STEPS [WORK]\n");
        return 2;
    }
    long steps = strtol(argv[1], NULL, 10);
    long work = argc > 2 ? strtol(argv[2], NULL, 10) : 2000000;
    setvbuf(stdout, NULL, _IOLBF, 0);
    int log = open("log.txt", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    int data = open("data.bin", O_RDWR | O_CREAT | O_TRUNC, 0644);
    FILE *sum = fopen("sum.txt", "w");
    if (log < 0 || data < 0 || !sum)
        return 3;
    uint64_t header[2] = {0x5245434f52445321ull, 0};
    put(data, header, sizeof header);
    uint64_t x = 1;
    for (long s = 0; s < steps; s++) {
        for (long i = 0; i < work; i++)
            x = mix(x + (uint64_t)i);
        char line[96];
        int n = snprintf(line, sizeof line, "step %ld %016llx\n", s, (unsigned long long)x);
        put(log, line, (size_t)n);
        uint64_t rec[4] = {(uint64_t)s, x, x ^ (uint64_t)s, ~x};
        put(data, rec, sizeof rec);
        header[1] = (uint64_t)s + 1;
        if (pwrite(data, header, sizeof header, 0) != sizeof header)
            return 6;
        fprintf(sum, "%ld:%llu\n", s, (unsigned long long)(x % 1000003));
        if (s % 10 == 9)
            printf("progress %ld\n", s + 1);
    }
    fclose(sum);
    close(data);
    close(log);
    printf("done %016llx\n", (unsigned long long)x);
    return 0;
}
