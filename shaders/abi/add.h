#ifndef MEGREZ_ABI_ADD_H
#define MEGREZ_ABI_ADD_H
// Push constants of shaders/add.comp (variant add): x[i] += y[i] for i < count.
// Bindings: 0 x (fp32, read-write), 1 y (fp32). Any grid (grid-stride loop).
#include "prelude.h"

MEGREZ_ABI_BEGIN
struct AddPush {
  uint count;
};
MEGREZ_ABI_END

MEGREZ_ABI_CHECK_SIZE(megrez::abi::AddPush, 4)

#endif
