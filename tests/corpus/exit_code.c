/* Exit status chosen by the program, atexit handlers, output flushed at exit. */
// RUN:
// RUN: 7
// RUN: 300
// RUN: 0
#include <stdio.h>
#include <stdlib.h>

static void first(void) { printf("atexit first-registered runs last\n"); }
static void second(void) { printf("atexit second-registered runs first\n"); }

int main(int argc, char **argv) {
    atexit(first);
    atexit(second);
    int code = argc > 1 ? atoi(argv[1]) : 42;
    printf("exiting with %d (buffered, no newline flush yet)", code);
    if (code == 7) _Exit(7);
    exit(code);
}
