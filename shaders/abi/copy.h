#ifndef MEGREZ_ABI_COPY_H
#define MEGREZ_ABI_COPY_H
// Push constants of shaders/copy.comp (variants copy, copy_vec4).
#include "prelude.h"

MEGREZ_ABI_BEGIN
struct CopyPush {
  uint count;  // elements to copy: 32-bit words (copy) or 16-byte vectors (copy_vec4)
};
MEGREZ_ABI_END

MEGREZ_ABI_CHECK_SIZE(megrez::abi::CopyPush, 4)

#endif
