/* Subject for migrations between machines: STEPS steps of a recurrence mixed with a digest
 * of all earlier states, each written as "i digest" (fixed width) at offset 0 of FILE, one
 * every 20 ms; the last line is the final digest. The file keeps one size (42 bytes), so
 * CRIU's size check of open files holds on every machine the program visits.
 *
 * usage: digest FILE STEPS
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc < 3) return 1;
    uint64_t steps = strtoull(argv[2], NULL, 10);
    int fd = open(argv[1], O_WRONLY | O_CREAT, 0644);
    if (fd < 0) return 1;
    uint64_t x = 88172645463325252ULL, digest = 14695981039346656037ULL;
    struct timespec ts = {0, 20 * 1000 * 1000};
    for (uint64_t i = 0; i < steps; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        for (int k = 0; k < 8; k++) {
            digest ^= (x >> (k * 8)) & 0xff;
            digest *= 1099511628211ULL;
        }
        char line[64];
        int len = snprintf(line, sizeof line, "%20llu %20llu\n", (unsigned long long)i, (unsigned long long)digest);
        if (pwrite(fd, line, len, 0) != len) return 2;
        nanosleep(&ts, NULL);
    }
    return 0;
}
