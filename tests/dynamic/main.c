/* A dynamically linked program exercising what the guest's own ld.so does: a library found
 * through RUNPATH $ORIGIN/lib, an IFUNC, dlopen/dlsym/dlclose of a library with TLS used by
 * several threads, qsort through a callback in it, iconv (glibc dlopens a gconv module),
 * getpwnam, /proc/self/exe, and interposition when LD_PRELOAD is set.
 *
 * usage: main PLUGIN_PATH */
#include <dlfcn.h>
#include <iconv.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int dep_add(int, int);
const char *dep_name(void);

static long (*step)(int, int);
static const char *(*tag_now)(void);

struct job { int id; long result; char tag[32]; };

static void *worker(void *p) {
    struct job *j = p;
    for (int r = 0; r < 50; r++) j->result = step(j->id, 1000 + r);
    snprintf(j->tag, sizeof j->tag, "%s", tag_now());
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    printf("dep_add(20, 22) = %d, dep_name = %s\n", dep_add(20, 22), dep_name());
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) { exe[n] = 0; printf("exe ends with %s\n", strrchr(exe, '/')); }

    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) { printf("dlopen: %s\n", dlerror()); return 3; }
    step = (long (*)(int, int))dlsym(h, "plug_step");
    tag_now = (const char *(*)(void))dlsym(h, "plug_tag_now");
    int (*cmp)(const void *, const void *) = (int (*)(const void *, const void *))dlsym(h, "plug_cmp");
    long *counter = dlsym(h, "plug_counter");
    if (!step || !tag_now || !cmp || !counter) { printf("dlsym: %s\n", dlerror()); return 4; }
    printf("main thread tag before: %s\n", tag_now());

    pthread_t t[4];
    struct job jobs[4];
    for (int i = 0; i < 4; i++) { jobs[i].id = i + 1; pthread_create(&t[i], NULL, worker, &jobs[i]); }
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 4; i++) printf("thread %d: %ld %s\n", jobs[i].id, jobs[i].result, jobs[i].tag);
    printf("main thread: counter %ld tag %s\n", *counter, tag_now());

    const char *words[] = {"kiwi", "apple", "fig", "banana", "cherry"};
    qsort(words, 5, sizeof words[0], cmp);
    for (int i = 0; i < 5; i++) printf("%s%c", words[i], i == 4 ? '\n' : ' ');

    iconv_t cd = iconv_open("UTF-8", "ISO-8859-1");
    if (cd == (iconv_t)-1) { perror("iconv_open"); return 5; }
    char in[] = "caf\xe9 cr\xe8me", out[64] = {0};
    char *ip = in, *op = out;
    size_t il = strlen(in), ol = sizeof out - 1;
    iconv(cd, &ip, &il, &op, &ol);
    iconv_close(cd);
    printf("iconv: %s (%zu bytes)\n", out, strlen(out));

    struct passwd *pw = getpwnam("root");
    printf("root: uid %d, shell %s\n", pw ? (int)pw->pw_uid : -1, pw ? pw->pw_shell : "?");
    dlclose(h);
    puts("done");
    return 0;
}
