#ifndef MEGREZ_ABI_RMSNORM_H
#define MEGREZ_ABI_RMSNORM_H
// Push constants of shaders/rmsnorm.comp, one workgroup per row (grid {rows}):
//   rmsnorm[_shmem]      bindings 0 x, 1 w, 2 y:   y = x / sqrt(mean(x^2) + eps) * w
//   add_rmsnorm[_shmem]  bindings 0 residual (read-write), 1 addend, 2 w, 3 y:
//                        residual += addend, then y = rmsnorm(residual) * w
//                        (the residual add and the next layer's norm in one pass).
//   moe_combine_rmsnorm[_shmem]  bindings 0 residual (read-write), 1 expert outputs
//                        [rows, top_k, dim], 2 router weights [rows, top_k], 3 shared [rows, dim],
//                        4 w, 5 y: residual += sum_k w_k y_k + shared (moe_combine's bits),
//                        then y = rmsnorm(residual) * w.
// x, y, residual, addend are fp32 [rows, dim]; w is fp32 [dim]. rmsnorm may run in place
// (y bound to x's range: each invocation reads its elements before writing them); add_rmsnorm's
// y must not alias the residual, which keeps the un-normalised sum.
#include "prelude.h"

MEGREZ_ABI_BEGIN
struct RmsnormPush {
  uint rows;
  uint dim;
  float eps;
  uint top_k;  // moe_combine_rmsnorm only: experts per token
};
MEGREZ_ABI_END

MEGREZ_ABI_CHECK_SIZE(megrez::abi::RmsnormPush, 16)
MEGREZ_ABI_CHECK_OFFSET(megrez::abi::RmsnormPush, eps, 8)

#endif
