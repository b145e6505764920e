/* Test program for migration: appends 1, 2, 3, ... to the file argv[1], one line every
 * 20 ms. With argv[2] = N it also keeps an N MiB heap whose pages change slowly (16 pages
 * per line), and checks the whole heap against a table of what each page must hold every
 * 50 lines: a page restored from the wrong dump is reported as "CORRUPT" and ends the
 * program with status 2. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define WORDS (PAGE / sizeof(unsigned long))

static unsigned long expect[1 << 16];

static void fill(unsigned long *page, unsigned long v) {
    for (size_t i = 0; i < WORDS; i++)
        page[i] = v;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 1;
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0)
        return 1;
    size_t pages = argc > 2 ? (size_t)atol(argv[2]) * 256 : 0;
    if (pages > sizeof expect / sizeof expect[0])
        pages = sizeof expect / sizeof expect[0];
    unsigned long *heap = pages ? malloc(pages * PAGE) : NULL;
    for (size_t p = 0; p < pages; p++) {
        expect[p] = 1000000 + p;
        fill(heap + p * WORDS, expect[p]);
    }
    for (unsigned long n = 1;; n++) {
        char line[32];
        int len = snprintf(line, sizeof line, "%lu\n", n);
        if (write(fd, line, len) != len)
            return 1;
        for (size_t k = 0; pages && k < 16; k++) {
            size_t p = (n * 16 + k) % pages;
            expect[p] = n;
            fill(heap + p * WORDS, n);
        }
        if (pages && n % 50 == 0) {
            for (size_t p = 0; p < pages; p++) {
                unsigned long *w = heap + p * WORDS;
                for (size_t i = 0; i < WORDS; i++) {
                    if (w[i] != expect[p]) {
                        len = snprintf(line, sizeof line, "CORRUPT %zu\n", p);
                        (void)!write(fd, line, len);
                        return 2;
                    }
                }
            }
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}
