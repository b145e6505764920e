/* Prints where Linux put the start-up stack's strings, relative to the stack top, in the
   format fake_guest.rs prints them for the runtime's guest stack: run.sh compares the two. */
#include <elf.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv, char **envp) {
    unsigned long sp = (unsigned long)(argv - 1);
    char **e = envp;
    while (*e) e++;
    unsigned long execfn = 0, platform = 0, random = 0;
    for (Elf64_auxv_t *a = (Elf64_auxv_t *)(e + 1); a->a_type != AT_NULL; a++) {
        if (a->a_type == AT_EXECFN) execfn = a->a_un.a_val;
        if (a->a_type == AT_PLATFORM) platform = a->a_un.a_val;
        if (a->a_type == AT_RANDOM) random = a->a_un.a_val;
    }
    unsigned long top = execfn + strlen((char *)execfn) + 1 + 8;
    printf("layout top-page-aligned %d\n", (top & 4095) == 0);
    for (int i = 0; i < argc; i++) printf("layout argv%d %lu\n", i, top - (unsigned long)argv[i]);
    for (int i = 0; envp[i]; i++) printf("layout env%d %lu\n", i, top - (unsigned long)envp[i]);
    printf("layout execfn %lu\n", top - execfn);
    printf("layout platform %lu\n", top - platform);
    printf("layout random %lu\n", top - random);
    printf("layout sp-mod-16 %lu\n", sp % 16);
    return 0;
}
