/* Guest for the notify test: "single" reads stdin in the main thread; "threads" starts a
   reader (blocked in read) and a sleeper (nanosleep), while the main thread computes;
   "pingpong" bounces a byte between the main thread and an echo thread through two pipes
   (short blocking reads all the time) until the reader got stdin. Prints "ready" once
   started, then results that do not depend on timing. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char got[64];
static long got_n;
static int slept;

static void *reader(void *arg) {
  (void)arg;
  got_n = read(0, got, sizeof got - 1);
  return NULL;
}

static void *sleeper(void *arg) {
  (void)arg;
  for (int i = 0; i < 2; i++) {
    struct timespec ts = {0, 400 * 1000 * 1000};
    nanosleep(&ts, NULL);
    slept++;
  }
  return NULL;
}

static unsigned long compute(unsigned long n) {
  unsigned long h = 1469598103934665603ul;
  for (unsigned long i = 0; i < n; i++) h = (h ^ (i & 0xff)) * 1099511628211ul;
  return h;
}

static int ping[2], pong[2];
static volatile int stop;

static void *echo(void *arg) {
  (void)arg;
  char c;
  while (read(ping[0], &c, 1) == 1 && c != 'q') write(pong[1], &c, 1);
  return NULL;
}

static void *stop_reader(void *arg) {
  reader(arg);
  stop = 1;
  return NULL;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "pingpong") == 0) {
    pthread_t e, r;
    if (pipe(ping) || pipe(pong)) return 1;
    pthread_create(&e, NULL, echo, NULL);
    pthread_create(&r, NULL, stop_reader, NULL);
    printf("ready\n");
    fflush(stdout);
    char c = 'x';
    while (!stop) {
      if (write(ping[1], &c, 1) != 1 || read(pong[0], &c, 1) != 1) return 2;
    }
    c = 'q';
    write(ping[1], &c, 1);
    pthread_join(e, NULL);
    pthread_join(r, NULL);
    printf("pingpong read %ld '%s'\n", got_n, got);
    return 0;
  }
  if (argc > 1 && strcmp(argv[1], "threads") == 0) {
    pthread_t r, s;
    pthread_create(&r, NULL, reader, NULL);
    pthread_create(&s, NULL, sleeper, NULL);
    printf("ready\n");
    fflush(stdout);
    unsigned long h = compute(400ul * 1000 * 1000);
    pthread_join(r, NULL);
    pthread_join(s, NULL);
    printf("hash %lx read %ld '%s' slept %d\n", h, got_n, got, slept);
  } else {
    printf("ready\n");
    fflush(stdout);
    reader(NULL);
    printf("hash %lx read %ld '%s'\n", compute(1000), got_n, got);
  }
  return 0;
}
