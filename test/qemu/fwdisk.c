/* fwdisk: the host side of the firmware tests. Writes the export the
 * firmware expects and checks what it left behind, with the very functions
 * the firmware uses (boards/common/fwapp.h).
 *
 *   fwdisk make FILE SIZE      FILE holds the pattern, SIZE bytes
 *   fwdisk check FILE TAG      pattern everywhere but the firmware's block,
 *                              which holds the block of TAG (hex)
 *   fwdisk check FILE -        pattern everywhere: nothing was written
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fwapp.h"

static int make(const char *path, uint64_t size)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        fprintf(stderr, "fwdisk: %s: %s\n", path, strerror(errno));
        return 1;
    }
    for (uint64_t off = 0; off < size; off++)
        putc(fw_pattern_byte(off), f);
    if (fclose(f) != 0) {
        fprintf(stderr, "fwdisk: %s: %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

static int check(const char *path, const char *tag_text)
{
    bool written = strcmp(tag_text, "-") != 0;
    char *end = NULL;
    unsigned long tag = strtoul(tag_text, &end, 16);
    if (written && (end == tag_text || *end != '\0' || tag > UINT32_MAX)) {
        fprintf(stderr, "fwdisk: bad tag %s\n", tag_text);
        return 2;
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "fwdisk: %s: %s\n", path, strerror(errno));
        return 1;
    }
    uint64_t off = 0, bad = 0, first_bad = 0;
    int c;
    while ((c = getc(f)) != EOF) {
        uint8_t want = fw_pattern_byte(off);
        if (written && off >= FW_WRITE_OFFSET && off < FW_WRITE_OFFSET + FW_WRITE_BYTES)
            want = fw_block_byte((uint32_t)tag, (uint32_t)(off - FW_WRITE_OFFSET));
        if ((uint8_t)c != want && bad++ == 0)
            first_bad = off;
        off++;
    }
    fclose(f);
    if (off < FW_WRITE_OFFSET + FW_WRITE_BYTES) {
        fprintf(stderr, "fwdisk: %s: only %" PRIu64 " bytes\n", path, off);
        return 1;
    }
    if (bad != 0) {
        fprintf(stderr, "fwdisk: %s: %" PRIu64 " bytes differ, the first at %" PRIu64 "\n",
                path, bad, first_bad);
        return 1;
    }
    printf("fwdisk: %s: %" PRIu64 " bytes as expected (%s)\n", path, off,
           written ? "pattern + the firmware's block" : "pattern, untouched");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "make") == 0)
        return make(argv[2], strtoull(argv[3], NULL, 0));
    if (argc == 4 && strcmp(argv[1], "check") == 0)
        return check(argv[2], argv[3]);
    fprintf(stderr, "usage: fwdisk make FILE SIZE | fwdisk check FILE TAG|-\n");
    return 2;
}
