/* Bench: a bytecode interpreter loop over a dense switch (as Lua's and Python's are), in a
   noinline function called for every instruction. argv[1]: outer iterations (default 1500000). */
// RUN: 2000
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

enum { PUSH, ADD, SUB, MUL, DUP, SWAP, DROP, JNZ, DEC, XOR, SHL, HALT };

static int64_t stack[64];

__attribute__((noinline)) static int step(const uint8_t *code, int *pc, int *sp) {
    int64_t a, b;
    switch (code[(*pc)++]) {
    case PUSH: stack[(*sp)++] = code[(*pc)++]; return 1;
    case ADD: b = stack[--*sp]; a = stack[--*sp]; stack[(*sp)++] = a + b; return 1;
    case SUB: b = stack[--*sp]; a = stack[--*sp]; stack[(*sp)++] = a - b; return 1;
    case MUL: b = stack[--*sp]; a = stack[--*sp]; stack[(*sp)++] = a * b; return 1;
    case DUP: a = stack[*sp - 1]; stack[(*sp)++] = a; return 1;
    case SWAP: a = stack[*sp - 1]; stack[*sp - 1] = stack[*sp - 2]; stack[*sp - 2] = a; return 1;
    case DROP: --*sp; return 1;
    case JNZ: a = stack[--*sp]; if (a) *pc = code[*pc]; else (*pc)++; return 1;
    case DEC: stack[*sp - 1]--; return 1;
    case XOR: b = stack[--*sp]; a = stack[--*sp]; stack[(*sp)++] = a ^ b; return 1;
    case SHL: stack[*sp - 1] <<= 1; return 1;
    default: return 0;
    }
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1500000;
    /* acc = 0; loop 4 times: acc = ((acc ^ 7) * 3 + 5) << 1 - 1 ... */
    static const uint8_t code[] = {
        PUSH, 1,            /* acc */
        PUSH, 4,            /* counter */
        /* 4: */ SWAP, PUSH, 7, XOR, PUSH, 3, MUL, PUSH, 5, ADD, SHL, PUSH, 1, SUB, SWAP,
        DEC, DUP, JNZ, 4,
        DROP, HALT,
    };
    int64_t sum = 0;
    for (long i = 0; i < n; i++) {
        int pc = 0, sp = 0;
        while (step(code, &pc, &sp)) {}
        sum += stack[0] + i;
    }
    printf("interp: %lld\n", (long long)sum);
    return 0;
}
