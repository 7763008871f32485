/* sechan/vport.h: a Linux virtio-serial port (/dev/vportNpM, or the
 * /dev/virtio-ports/NAME link udev makes) as a channel, for a guest agent.
 * Linux only. Non-blocking; read() returns 0 once the host side has closed
 * (nothing connected to the port's chardev).
 */
#ifndef SECHAN_VPORT_H
#define SECHAN_VPORT_H

#include <stdint.h>

#include "sechan/channel.h"

struct sc_vport {
    struct sc_channel base;   /* first: a struct sc_vport * is a channel */
    int fd;
    enum sc_dir want;
    char msg[96];
};

/* Open the port device at path (SC_ERR_FILE if it cannot be opened). */
int sc_vport_open(struct sc_vport *v, const char *path);

/* Find the port named name (sysfs: /sys/class/virtio-ports/<dev>/name) and
 * write its device path into out; SC_ERR_NOT_FOUND if there is none. */
int sc_vport_find(const char *name, char *out, size_t cap);

#endif
