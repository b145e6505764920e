/* libhctplug.so: loaded with dlopen; thread-local variables (initialized and zero), a
 * constructor and destructor, and a callback the program calls through a pointer. */
#include <stdio.h>
#include <string.h>

__thread long plug_counter;
__thread char plug_tag[32] = "fresh";
static __thread unsigned plug_hash = 2166136261u;

long plug_step(int id, int n) {
    for (int i = 0; i < n; i++) {
        plug_counter += id + i;
        plug_hash = (plug_hash ^ (unsigned)(id * 31 + i)) * 16777619u;
    }
    snprintf(plug_tag, sizeof plug_tag, "thread-%d", id);
    return plug_counter ^ plug_hash;
}

const char *plug_tag_now(void) { return plug_tag; }

int plug_cmp(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

__attribute__((constructor)) static void plug_init(void) { fputs("plug: constructor\n", stdout); }
__attribute__((destructor)) static void plug_fini(void) { fputs("plug: destructor\n", stdout); }
