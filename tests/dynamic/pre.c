/* libhctpre.so, for LD_PRELOAD: interposes dep_name of libhctdep. */
#include <stdio.h>
const char *dep_name(void) { return "preloaded"; }
__attribute__((constructor)) static void pre_init(void) { fputs("pre: constructor\n", stdout); }
