/* libhctdep.so: linked by main (DT_NEEDED, found through main's RUNPATH $ORIGIN/lib); an
 * IFUNC whose resolver picks an implementation at load time, and a function LD_PRELOAD may
 * interpose. */
#include <stdio.h>

static int add_plain(int a, int b) { return a + b; }
static int add_twice(int a, int b) { return 2 * (a + b) - a - b; }
static void *resolve_add(void) { return sizeof(long) == 8 ? (void *)add_twice : (void *)add_plain; }
int dep_add(int a, int b) __attribute__((ifunc("resolve_add")));

const char *dep_name(void) { return "libhctdep"; }

__attribute__((constructor)) static void dep_init(void) { fputs("dep: constructor\n", stdout); }
