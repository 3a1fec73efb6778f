#ifndef MEGREZ_ABI_EMBED_H
#define MEGREZ_ABI_EMBED_H
// Push constants of shaders/embed.comp (variants embed_<fmt>): out[t, :] = table[ids[t], :]
// decoded to fp32, for the tokens whose id lies in [row_offset, row_offset + row_count),
// the part of the table that is bound; other tokens are left untouched, so a table split by
// rows (SplitBuffer) takes one dispatch per part. Ids past the vocabulary are the caller's
// to reject (the host validates token ids).
// Bindings: 0 table part (any format, range a multiple of 4 bytes), 1 ids (uint [tokens]),
// 2 out (fp32 [tokens, dim]). Grid: {tokens}, one workgroup per token.
#include "prelude.h"

MEGREZ_ABI_BEGIN
struct EmbedPush {
  uint tokens;
  uint dim;         // row length (a multiple of 32 for q8_0 / q4_0)
  uint row_offset;  // vocabulary id of the bound part's first row
  uint row_count;   // rows in the bound part
};
MEGREZ_ABI_END

MEGREZ_ABI_CHECK_SIZE(megrez::abi::EmbedPush, 16)
MEGREZ_ABI_CHECK_OFFSET(megrez::abi::EmbedPush, row_count, 12)

#endif
