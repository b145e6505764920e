/* Subject for pre-copy migration: a heap of MB mebibytes of which only PAGES pages change
 * per step, one step every 20 ms; a service with a large, slowly changing state.
 *
 * After each step it writes "STEP STATUS" (42 bytes, fixed width) at offset 0 of FILE, so the
 * file keeps one size on every machine it runs on. Every 50 steps it checks the whole heap
 * against a table of what each page must hold: STATUS is "ok" until a page holds anything
 * else (a page restored from the wrong dump, say), then "corrupt-PAGE" and exit status 2.
 * Runs STEPS steps (absent or 0: until killed).
 *
 * usage: slow_heap FILE MB PAGES [STEPS]
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define WORDS (PAGE / sizeof(uint64_t))

static void fill(uint64_t *page, uint64_t v) {
    for (size_t i = 0; i < WORDS; i++)
        page[i] = v ^ i;
}

static int holds(const uint64_t *page, uint64_t v) {
    for (size_t i = 0; i < WORDS; i++)
        if (page[i] != (v ^ i))
            return 0;
    return 1;
}

static int report(int fd, uint64_t step, const char *status) {
    char line[64];
    int len = snprintf(line, sizeof line, "%20llu %20s\n", (unsigned long long)step, status);
    return pwrite(fd, line, len, 0) == len;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: slow_heap FILE MB PAGES [STEPS]\n");
        return 1;
    }
    int fd = open(argv[1], O_WRONLY | O_CREAT, 0644);
    if (fd < 0)
        return 1;
    size_t pages = (size_t)strtoull(argv[2], NULL, 10) * (1024 * 1024 / PAGE);
    size_t per_step = (size_t)strtoull(argv[3], NULL, 10);
    uint64_t steps = argc > 4 ? strtoull(argv[4], NULL, 10) : 0;
    if (pages == 0)
        pages = 1;
    uint64_t *heap = malloc(pages * PAGE);
    uint64_t *expect = malloc(pages * sizeof *expect);
    if (!heap || !expect)
        return 3;
    for (size_t p = 0; p < pages; p++) {
        expect[p] = 0x9e3779b97f4a7c15ull * (p + 1);
        fill(heap + p * WORDS, expect[p]);
    }
    struct timespec tick = {0, 20 * 1000 * 1000};
    for (uint64_t n = 1; steps == 0 || n <= steps; n++) {
        for (size_t k = 0; k < per_step; k++) {
            size_t p = (n * per_step + k) % pages;
            expect[p] = n * 0x100000001b3ull + p;
            fill(heap + p * WORDS, expect[p]);
        }
        if (n % 50 == 0) {
            for (size_t p = 0; p < pages; p++) {
                if (!holds(heap + p * WORDS, expect[p])) {
                    char status[32];
                    snprintf(status, sizeof status, "corrupt-%zu", p);
                    report(fd, n, status);
                    return 2;
                }
            }
        }
        if (!report(fd, n, "ok"))
            return 1;
        nanosleep(&tick, NULL);
    }
    return 0;
}
