/* fastdrop's side of the XLA FFI protocol, in C against XLA's C API (xla_ffi_c_api.h,
 * vendored): what a C++ XLA_FFI_DEFINE_HANDLER handler does before and around its body
 * (xla/ffi/api/api.h, Handler::Call and PopulateMetadata), written out for the handlers
 * of fastdrop._cpu._xla:
 *
 * - the call frame's size is checked (a frame older than this header: an error);
 * - a metadata query (XLA_FFI_Metadata_Extension in the frame's extension chain, sent by
 *   XLA when the handler is registered or the program compiled) is answered with the API
 *   version of this header and no traits, and nothing runs;
 * - any stage but EXECUTE is an error (the handlers are registered for that stage only);
 * - arguments, results and attributes are read with their types checked;
 * - errors go back to XLA as XLA_FFI_Error (created through the frame's api; XLA owns and
 *   destroys them): a bad call fails the XLA program with the message, it never crashes.
 *
 * Nothing here needs the GIL or allocates.
 */
#ifndef FD_XLA_FFI_FASTDROP_H
#define FD_XLA_FFI_FASTDROP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "xla_ffi_c_api.h"

#define FD_FFI_API_MAJOR XLA_FFI_API_MAJOR
#define FD_FFI_API_MINOR XLA_FFI_API_MINOR

/* An error for XLA: invalid != 0 for INVALID_ARGUMENT, else INTERNAL.  XLA copies the
 * message. */
static inline XLA_FFI_Error* fd_ffi_error(const XLA_FFI_CallFrame* f, int invalid,
                                          const char* msg)
{
    XLA_FFI_Error_Create_Args a;
    a.struct_size = XLA_FFI_Error_Create_Args_STRUCT_SIZE;
    a.extension_start = NULL;
    a.message = msg;
    a.errc = invalid ? XLA_FFI_Error_Code_INVALID_ARGUMENT : XLA_FFI_Error_Code_INTERNAL;
    return f->api->XLA_FFI_Error_Create(&a);
}

/* The start of every handler: 0 when the call is to run; 1 when it was answered here
 * (a metadata query: *err is NULL or the error; a bad frame or stage: *err the error). */
static inline int fd_ffi_prologue(XLA_FFI_CallFrame* f, XLA_FFI_Error** err)
{
    XLA_FFI_Extension_Base* ext;
    *err = NULL;
    if (f->struct_size < XLA_FFI_CallFrame_STRUCT_SIZE) {
        *err = fd_ffi_error(f, 1, "fastdrop: unexpected XLA_FFI_CallFrame size (an XLA "
                                  "older than the FFI API fastdrop was built against)");
        return 1;
    }
    for (ext = f->extension_start; ext != NULL; ext = ext->next) {
        if (ext->type == XLA_FFI_Extension_Metadata) {
            XLA_FFI_Metadata_Extension* m = (XLA_FFI_Metadata_Extension*)ext;
            XLA_FFI_Metadata* md;
            if (m->extension_base.struct_size < XLA_FFI_Metadata_Extension_STRUCT_SIZE
                    || m->metadata == NULL
                    || m->metadata->struct_size < XLA_FFI_Metadata_STRUCT_SIZE) {
                *err = fd_ffi_error(f, 1, "fastdrop: unexpected XLA_FFI_Metadata size");
                return 1;
            }
            md = m->metadata;
            md->api_version.struct_size = XLA_FFI_Api_Version_STRUCT_SIZE;
            md->api_version.extension_start = NULL;
            md->api_version.major_version = XLA_FFI_API_MAJOR;
            md->api_version.minor_version = XLA_FFI_API_MINOR;
            md->traits = 0;  /* a CPU handler: no command-buffer trait */
            if (md->struct_size >= offsetof(XLA_FFI_Metadata, state_type_id)
                                   + sizeof(XLA_FFI_TypeId))
                md->state_type_id.type_id = 0;  /* stateless: XLA_FFI_UNKNOWN_TYPE_ID */
            return 1;
        }
    }
    if (f->stage != XLA_FFI_ExecutionStage_EXECUTE) {
        *err = fd_ffi_error(f, 1, "fastdrop: handler called at a stage other than EXECUTE");
        return 1;
    }
    return 0;
}

static inline int64_t fd_ffi_nargs(const XLA_FFI_CallFrame* f) { return f->args.size; }
static inline int64_t fd_ffi_nrets(const XLA_FFI_CallFrame* f) { return f->rets.size; }

/* Argument i as a buffer, or NULL (out of range, or not a buffer). */
static inline XLA_FFI_Buffer* fd_ffi_arg(const XLA_FFI_CallFrame* f, int64_t i)
{
    if (i < 0 || i >= f->args.size || f->args.types[i] != XLA_FFI_ArgType_BUFFER)
        return NULL;
    return (XLA_FFI_Buffer*)f->args.args[i];
}

/* Result i as a buffer, or NULL. */
static inline XLA_FFI_Buffer* fd_ffi_ret(const XLA_FFI_CallFrame* f, int64_t i)
{
    if (i < 0 || i >= f->rets.size || f->rets.types[i] != XLA_FFI_RetType_BUFFER)
        return NULL;
    return (XLA_FFI_Buffer*)f->rets.rets[i];
}

/* The index of the attribute called `name`, or -1. */
static inline int64_t fd_ffi_attr_index(const XLA_FFI_CallFrame* f, const char* name)
{
    size_t len = strlen(name);
    int64_t i;
    for (i = 0; i < f->attrs.size; i++) {
        const XLA_FFI_ByteSpan* s = f->attrs.names[i];
        if (s->len == len && memcmp(s->ptr, name, len) == 0)
            return i;
    }
    return -1;
}

/* Integer scalar attribute `name` into *out: 0; missing: -1; not an integer scalar: -2. */
static inline int fd_ffi_attr_i64(const XLA_FFI_CallFrame* f, const char* name,
                                  int64_t* out)
{
    int64_t i = fd_ffi_attr_index(f, name);
    const XLA_FFI_Scalar* sc;
    if (i < 0)
        return -1;
    if (f->attrs.types[i] != XLA_FFI_AttrType_SCALAR)
        return -2;
    sc = (const XLA_FFI_Scalar*)f->attrs.attrs[i];
    switch (sc->dtype) {
    case XLA_FFI_DataType_S64: *out = *(const int64_t*)sc->value; return 0;
    case XLA_FFI_DataType_S32: *out = *(const int32_t*)sc->value; return 0;
    case XLA_FFI_DataType_U32: *out = *(const uint32_t*)sc->value; return 0;
    case XLA_FFI_DataType_PRED: *out = *(const uint8_t*)sc->value != 0; return 0;
    default: return -2;
    }
}

/* Float scalar attribute `name` into *out (f64, or f32 widened): 0 / -1 / -2. */
static inline int fd_ffi_attr_f64(const XLA_FFI_CallFrame* f, const char* name, double* out)
{
    int64_t i = fd_ffi_attr_index(f, name);
    const XLA_FFI_Scalar* sc;
    if (i < 0)
        return -1;
    if (f->attrs.types[i] != XLA_FFI_AttrType_SCALAR)
        return -2;
    sc = (const XLA_FFI_Scalar*)f->attrs.attrs[i];
    if (sc->dtype == XLA_FFI_DataType_F64) { *out = *(const double*)sc->value; return 0; }
    if (sc->dtype == XLA_FFI_DataType_F32) { *out = *(const float*)sc->value; return 0; }
    return -2;
}

/* i64 array attribute `name`: *data and *n set, 0; missing: -1; another type: -2. */
static inline int fd_ffi_attr_i64s(const XLA_FFI_CallFrame* f, const char* name,
                                   const int64_t** data, int64_t* n)
{
    int64_t i = fd_ffi_attr_index(f, name);
    const XLA_FFI_Array* arr;
    if (i < 0)
        return -1;
    if (f->attrs.types[i] != XLA_FFI_AttrType_ARRAY)
        return -2;
    arr = (const XLA_FFI_Array*)f->attrs.attrs[i];
    if (arr->dtype != XLA_FFI_DataType_S64)
        return -2;
    *data = (const int64_t*)arr->data;
    *n = (int64_t)arr->size;
    return 0;
}

#endif /* FD_XLA_FFI_FASTDROP_H */
