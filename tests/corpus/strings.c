/* String and memory functions over many lengths and alignments. */
#include <stdio.h>
#include <string.h>
#include <stdint.h>

static unsigned char src[1024], dst[1024];
static char sbuf[600], tbuf[600];

static uint32_t hash(const void *p, size_t n) {
    const unsigned char *c = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 16777619u;
    return h;
}

int main(void) {
    for (int i = 0; i < 1024; i++) src[i] = (unsigned char)(i * 7 + 3);
    uint32_t h = 0;
    for (size_t align = 0; align < 16; align++) {
        for (size_t len = 0; len < 300; len += (len < 40 ? 1 : 13)) {
            memset(dst, 0xAA, sizeof dst);
            memcpy(dst + align, src + (align * 3) % 16, len);
            h = h * 33 + hash(dst, 400);
            memset(dst + align, (int)len, len);
            h = h * 33 + hash(dst, 400);
            memmove(dst + align + 1, dst + align, len);
            h = h * 33 + hash(dst, 400);
            h = h * 33 + (uint32_t)(memcmp(dst + align, src, len) > 0) + 7 * (uint32_t)(memcmp(dst, dst, len) == 0);
            /* C strings of length len starting at an offset. */
            for (size_t k = 0; k < len; k++) sbuf[align + k] = (char)('a' + (k * 5 + align) % 26);
            sbuf[align + len] = 0;
            h = h * 33 + (uint32_t)strlen(sbuf + align);
            strcpy(tbuf + (15 - align), sbuf + align);
            h = h * 33 + (uint32_t)(strcmp(tbuf + (15 - align), sbuf + align) == 0);
            if (len > 3) {
                char needle[4] = {sbuf[align + len - 3], sbuf[align + len - 2], sbuf[align + len - 1], 0};
                char *f = strstr(sbuf + align, needle);
                h = h * 33 + (uint32_t)(f ? f - (sbuf + align) : -1);
                char *c = strchr(sbuf + align, 'q');
                char *r = strrchr(sbuf + align, 'e');
                h = h * 33 + (uint32_t)(c ? c - sbuf : -1) + (uint32_t)(r ? r - sbuf : -1);
            }
            h = h * 33 + (uint32_t)strncmp(sbuf + align, "abc", 3 < len ? 3 : len);
        }
        printf("align %2zu hash %08x\n", align, h);
    }
    char buf[64];
    strcpy(buf, "hello");
    strcat(buf, ", world");
    strncat(buf, "!!!!!!", 2);
    printf("%s len=%zu spn=%zu cspn=%zu\n", buf, strlen(buf), strspn(buf, "hel"), strcspn(buf, ","));
    printf("cmp %d %d %d\n", strcmp("abc", "abd") < 0, strcmp("b", "a") > 0, strcmp("x", "x"));
    char *tok, tokbuf[] = "a,bb,,ccc;dddd";
    char *save = NULL;
    for (tok = strtok_r(tokbuf, ",;", &save); tok; tok = strtok_r(NULL, ",;", &save)) printf("tok[%s]\n", tok);
    char *d = strdup("duplicate me");
    printf("%s %zu\n", d, strnlen(d, 5));
    printf("memchr %td\n", (char *)memchr(d, 'c', 12) - d);
    return 0;
}
