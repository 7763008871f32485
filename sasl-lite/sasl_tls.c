/* Channel binding data from our TLS layer. See sechan/sasl.h. */
#include <string.h>

#include "sasl_internal.h"
#include "sechan/tls.h"

int sc_sasl_binding_from_tls(struct sc_sasl_binding *b, struct sc_tls *t,
                             enum sc_sasl_cb_type type)
{
    if (b == NULL || t == NULL)
        return SC_ERR_INVAL;
    memset(b, 0, sizeof(*b));
    int r;
    size_t len = 0;
    switch (type) {
    case SC_SASL_CB_TLS_EXPORTER:
        len = 32;
        r = sc_tls_export_keying_material(t, "EXPORTER-Channel-Binding", (const uint8_t *)"", 0,
                                          b->data, len);
        break;
    case SC_SASL_CB_TLS_SERVER_END_POINT:
        r = sc_tls_server_end_point(t, b->data, sizeof(b->data), &len);
        break;
    default:
        return SC_ERR_INVAL;
    }
    if (r != 0)
        return r;
    b->type = type;
    b->len = len;
    return SC_OK;
}
