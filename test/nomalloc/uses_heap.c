/* Deliberately uses the heap: `make check-nomalloc` must reject this object,
 * which proves the check can fail. Never linked into anything. */
#include <stdlib.h>

void *sc_selftest_uses_heap(size_t n);
void *sc_selftest_uses_heap(size_t n)
{
    return malloc(n);
}
