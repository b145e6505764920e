/* A single-threaded TCP key-value server for migration tests. Line protocol:
 *   SET key value  -> "OK <count>"     (sent only after the value is stored)
 *   GET key        -> "VALUE value" or "NONE"
 *   COUNT          -> "COUNT <number of keys>"
 *   SHUTDOWN       -> "BYE", then the server exits 0
 * Anything else gets "ERR". One poll(2) loop serves the listening socket and every client.
 * On start it prints "listening <port>" on stdout (port 0 picks a free one).
 *
 * usage: kv PORT
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLIENTS 32
#define MAX_KEYS (1u << 20)
#define LINE 512

struct entry {
    char *key, *value;
};

/* Open addressing, twice as many slots as keys. */
#define SLOTS (2 * MAX_KEYS)
static unsigned slots[SLOTS]; /* 0: empty, else index + 1 into keys */

struct client {
    int fd;
    size_t len;
    char buf[LINE];
};

static struct entry keys[MAX_KEYS];
static size_t nkeys;
static struct client clients[MAX_CLIENTS];

static unsigned hash(const char *s) {
    unsigned h = 2166136261u;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

/* The slot holding `key`, or the empty slot where it would go. */
static unsigned *slot_of(const char *key) {
    unsigned i = hash(key) & (SLOTS - 1);
    while (slots[i] && strcmp(keys[slots[i] - 1].key, key) != 0)
        i = (i + 1) & (SLOTS - 1);
    return &slots[i];
}

static struct entry *find(const char *key) {
    unsigned *s = slot_of(key);
    return *s ? &keys[*s - 1] : NULL;
}

static int send_all(int fd, const char *s) {
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
        if (n <= 0)
            return -1;
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Returns 1 when the server should exit. */
static int command(int fd, char *line) {
    char reply[LINE + 16];
    char *sp = strchr(line, ' ');
    if (strncmp(line, "SET ", 4) == 0 && sp) {
        char *key = line + 4;
        char *val = strchr(key, ' ');
        if (!val) {
            send_all(fd, "ERR\n");
            return 0;
        }
        *val++ = 0;
        unsigned *s = slot_of(key);
        if (*s) {
            free(keys[*s - 1].value);
            keys[*s - 1].value = strdup(val);
        } else if (nkeys < MAX_KEYS) {
            keys[nkeys].key = strdup(key);
            keys[nkeys].value = strdup(val);
            nkeys++;
            *s = (unsigned)nkeys;
        } else {
            send_all(fd, "ERR full\n");
            return 0;
        }
        snprintf(reply, sizeof reply, "OK %zu\n", nkeys);
    } else if (strncmp(line, "GET ", 4) == 0) {
        struct entry *e = find(line + 4);
        if (e)
            snprintf(reply, sizeof reply, "VALUE %s\n", e->value);
        else
            snprintf(reply, sizeof reply, "NONE\n");
    } else if (strcmp(line, "COUNT") == 0) {
        snprintf(reply, sizeof reply, "COUNT %zu\n", nkeys);
    } else if (strcmp(line, "SHUTDOWN") == 0) {
        send_all(fd, "BYE\n");
        return 1;
    } else {
        snprintf(reply, sizeof reply, "ERR\n");
    }
    send_all(fd, reply);
    return 0;
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 0;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(ls, 16) != 0) {
        perror("bind/listen");
        return 3;
    }
    socklen_t alen = sizeof addr;
    getsockname(ls, (struct sockaddr *)&addr, &alen);
    printf("listening %d\n", ntohs(addr.sin_port));
    fflush(stdout);
    for (int i = 0; i < MAX_CLIENTS; i++)
        clients[i].fd = -1;
    for (;;) {
        struct pollfd pfd[MAX_CLIENTS + 1];
        int who[MAX_CLIENTS + 1];
        int n = 0;
        pfd[n].fd = ls;
        pfd[n].events = POLLIN;
        who[n++] = -1;
        for (int i = 0; i < MAX_CLIENTS; i++) {
            if (clients[i].fd >= 0) {
                pfd[n].fd = clients[i].fd;
                pfd[n].events = POLLIN;
                who[n++] = i;
            }
        }
        if (poll(pfd, (nfds_t)n, -1) < 0)
            continue; /* EINTR */
        for (int k = 0; k < n; k++) {
            if (!pfd[k].revents)
                continue;
            if (who[k] < 0) {
                int c = accept(ls, NULL, NULL);
                if (c < 0)
                    continue;
                int slot = -1;
                for (int i = 0; i < MAX_CLIENTS; i++)
                    if (clients[i].fd < 0) {
                        slot = i;
                        break;
                    }
                if (slot < 0) {
                    close(c);
                    continue;
                }
                clients[slot].fd = c;
                clients[slot].len = 0;
                continue;
            }
            struct client *cl = &clients[who[k]];
            ssize_t got = recv(cl->fd, cl->buf + cl->len, LINE - 1 - cl->len, 0);
            if (got <= 0) {
                close(cl->fd);
                cl->fd = -1;
                continue;
            }
            cl->len += (size_t)got;
            char *nl;
            while ((nl = memchr(cl->buf, '\n', cl->len)) != NULL) {
                *nl = 0;
                if (command(cl->fd, cl->buf))
                    return 0;
                size_t used = (size_t)(nl - cl->buf) + 1;
                memmove(cl->buf, cl->buf + used, cl->len - used);
                cl->len -= used;
            }
            if (cl->len == LINE - 1) { /* line too long: drop it */
                send_all(cl->fd, "ERR long\n");
                cl->len = 0;
            }
        }
    }
}
