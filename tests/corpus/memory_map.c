/* Memory management syscalls: mmap/munmap/mprotect, sbrk growth, large stack arrays. */
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/mman.h>

static uint32_t fill(unsigned char *p, size_t n, unsigned seed) {
    uint32_t h = seed;
    for (size_t i = 0; i < n; i++) { p[i] = (unsigned char)(i * seed); h = h * 31 + p[i]; }
    return h;
}

int main(void) {
    size_t sizes[] = {4096, 65536, 1 << 20, 10 << 20};
    for (int i = 0; i < 4; i++) {
        unsigned char *p = mmap(NULL, sizes[i], PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) { printf("mmap failed\n"); return 1; }
        int zero = 1;
        for (size_t k = 0; k < sizes[i]; k += 4096) if (p[k]) zero = 0;
        printf("mmap %zu zeroed %d hash %08x\n", sizes[i], zero, fill(p, sizes[i], (unsigned)i + 3));
        if (mprotect(p, 4096, PROT_READ) != 0) printf("mprotect failed\n");
        printf("read after mprotect %u\n", p[100]);
        munmap(p, sizes[i]);
    }
    void *b0 = sbrk(0);
    void *b1 = sbrk(1 << 16);
    if (b1 == (void *)-1) {
        /* musl refuses to move the break with sbrk (ENOMEM); glibc moves it. */
        printf("sbrk(65536) refused\n");
    } else {
        void *b2 = sbrk(0);
        printf("sbrk grew by %td (returned old break %d)\n", (char *)b2 - (char *)b0, b1 == b0);
        memset(b1, 7, 1 << 16);
        sbrk(-(1 << 16));
        printf("sbrk shrank back %d\n", sbrk(0) == b0);
    }
    volatile unsigned char stack[1 << 20];
    for (size_t i = 0; i < sizeof stack; i += 512) stack[i] = (unsigned char)(i >> 9);
    unsigned s = 0;
    for (size_t i = 0; i < sizeof stack; i += 512) s += stack[i];
    printf("stack array sum %u\n", s);
    long page = sysconf(_SC_PAGESIZE);
    printf("page size %ld\n", page);
    unsigned char *fixed = mmap((void *)0x200000000000ULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("hinted mmap ok %d\n", fixed != MAP_FAILED);
    if (fixed != MAP_FAILED) { fixed[8191] = 9; printf("last byte %u\n", fixed[8191]); munmap(fixed, 8192); }
    return 0;
}
