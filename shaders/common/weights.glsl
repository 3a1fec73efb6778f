#ifndef MEGREZ_WEIGHTS_GLSL
#define MEGREZ_WEIGHTS_GLSL
// Decoding of every weight format (loader/tensor.h DType) from a storage buffer of 32-bit
// words. Shared by the dense kernels (matvec, matmul, embed) and the MoE expert kernels.
//
// WHY words: 8/16-bit storage is optional (missing on some phone drivers and in the
// "minimum" profile), and q4_0's 18-byte / q8_0's 34-byte blocks are only 2-byte aligned,
// so every format is read as uint words and the bytes are extracted with shifts.
//
// ---- How to use ---------------------------------------------------------------------------
//   1. Define exactly one format:   WEIGHT_F32, WEIGHT_F16, WEIGHT_BF16, WEIGHT_Q8_0, WEIGHT_Q4_0
//   2. Declare the weight buffer and tell this file how to read word i of it:
//        layout(set = 0, binding = 0) readonly buffer W { uint w[]; };
//        #define WEIGHT_WORD(i) w[i]
//      (a macro, so the includer may add a base offset or read a different buffer). The
//      macro is expanded inside these functions, so its names must not collide with their
//      locals/parameters (values, words, qs, d, x, k, b, i, base, first, prev, next, byte,
//      bytes, sum, ...): `w` or `weight_words` are fine.
//   3. #include "common/weights.glsl"
//
// Matrices are row-major [rows, cols] with cols along the input dimension; quantized rows
// are cols/32 consecutive blocks. All offsets below are BYTE offsets into the bound range
// (a binding is <= maxStorageBufferRange <= 4 GiB, so uint suffices).
//
//   WEIGHT_ROW_BYTES(cols)      bytes of one row (cols % 32 == 0 for q8_0 / q4_0)
//   WEIGHT_BLOCK_BYTES          bytes of 32 consecutive weights of a row (128/64/64/34/18)
//   weight_block(byte, out v)   the 32 weights starting at `byte`, which must be the start of
//                               a row plus k * WEIGHT_BLOCK_BYTES. Float formats: the 32
//                               weights must all lie inside the row (see weight_at for tails).
//   weight_block_dot(byte, x)   dot(those 32 weights, x[0..31]) with x as vec4[8]; the
//                               quantized formats factor out the block scale d.
//   weight_quarter(byte, q, out lo, out hi)
//                               quarter q (0..3) of that block: 8 weights, the 4 at block
//                               columns WEIGHT_QUARTER_LO(q)..+3 in `lo` and the 4 at
//                               WEIGHT_QUARTER_HI(q)..+3 in `hi`. The finest unit that stays
//                               cheap in every format (one q4_0 qs word), so a 2048-wide row
//                               is 256 units of work. Float formats: all 8 inside the row.
//   weight_at(row_byte, col)    one weight (any format); for float-format tails (cols % 32)
//                               and gathers. Quantized formats decode only the needed nibble/byte.
//
// Element order inside a block: q4_0 stores element j (j < 16) in the low nibble of qs[j]
// and element j + 16 in its high nibble (ggml layout); weight_block/weight_at return
// elements in natural order 0..31, so callers never see the nibble layout.
//
// Requirements on the bound range: its size must be a multiple of 4 bytes (pad the last
// row), since the last block's bytes are read through whole words. Decoding is exact: the
// values equal loader/quant/quant.h's dequantize_row bit for bit (f16 -> f32 is exact, the q scale
// multiplies an exactly representable small integer).

#if !defined(WEIGHT_F32) && !defined(WEIGHT_F16) && !defined(WEIGHT_BF16) && !defined(WEIGHT_Q8_0) && \
    !defined(WEIGHT_Q4_0)
#error "define one of WEIGHT_F32, WEIGHT_F16, WEIGHT_BF16, WEIGHT_Q8_0, WEIGHT_Q4_0"
#endif
#if (defined(WEIGHT_F32) && (defined(WEIGHT_F16) || defined(WEIGHT_BF16) || defined(WEIGHT_Q8_0) || defined(WEIGHT_Q4_0))) || \
    (defined(WEIGHT_F16) && (defined(WEIGHT_BF16) || defined(WEIGHT_Q8_0) || defined(WEIGHT_Q4_0))) ||                     \
    (defined(WEIGHT_BF16) && (defined(WEIGHT_Q8_0) || defined(WEIGHT_Q4_0))) || (defined(WEIGHT_Q8_0) && defined(WEIGHT_Q4_0))
#error "define only one WEIGHT_<format>"
#endif
#ifndef WEIGHT_WORD
#error "define WEIGHT_WORD(i) (word i of the weight buffer) before including weights.glsl"
#endif

#if defined(WEIGHT_F32)
#define WEIGHT_BLOCK_BYTES 128u
#define WEIGHT_ROW_BYTES(cols) ((cols) * 4u)
#elif defined(WEIGHT_F16) || defined(WEIGHT_BF16)
#define WEIGHT_BLOCK_BYTES 64u
#define WEIGHT_ROW_BYTES(cols) ((cols) * 2u)
#elif defined(WEIGHT_Q8_0)
#define WEIGHT_BLOCK_BYTES 34u
#define WEIGHT_ROW_BYTES(cols) (((cols) / 32u) * 34u)
#else
#define WEIGHT_BLOCK_BYTES 18u
#define WEIGHT_ROW_BYTES(cols) (((cols) / 32u) * 18u)
#endif
// Columns (within a block of 32) of the two vec4 halves of quarter q: q4_0 keeps element j
// and j + 16 in one byte, so its quarter is columns 4q.. and 16 + 4q..; the others are 8q...
#if defined(WEIGHT_Q4_0)
#define WEIGHT_QUARTER_LO(q) (4u * (q))
#define WEIGHT_QUARTER_HI(q) (16u + 4u * (q))
#else
#define WEIGHT_QUARTER_LO(q) (8u * (q))
#define WEIGHT_QUARTER_HI(q) (8u * (q) + 4u)
#endif
// True for the ggml block formats (rows must be whole blocks).
#if defined(WEIGHT_Q8_0) || defined(WEIGHT_Q4_0)
#define WEIGHT_QUANTIZED 1
#else
#define WEIGHT_QUANTIZED 0
#endif

// ---- Byte helpers ---------------------------------------------------------------------------

// The 16-bit value at a 2-byte aligned byte offset.
uint weight_u16_at(uint byte_offset) {
  return (WEIGHT_WORD(byte_offset >> 2) >> ((byte_offset & 2u) * 8u)) & 0xffffu;
}

// Words k = 0..n-1 of the byte stream starting at a 2-byte aligned offset: a 2-byte
// misalignment is undone by joining the high half of one word with the low half of the next.
// `lo`/`hi` are consecutive words of the buffer; `odd` says the stream starts mid-word.
uint weight_join(uint lo, uint hi, bool odd) { return odd ? ((lo >> 16) | (hi << 16)) : lo; }

float weight_half(uint bits16) { return unpackHalf2x16(bits16).x; }

// The 32-bit value at a 2-byte aligned byte offset (reads the next word only when needed).
uint weight_u32_at(uint byte_offset) {
  uint base = byte_offset >> 2;
  uint lo = WEIGHT_WORD(base);
  if ((byte_offset & 2u) == 0u) return lo;
  return weight_join(lo, WEIGHT_WORD(base + 1u), true);
}

// The four signed bytes of a word as floats (q8_0 quants).
vec4 weight_i8x4(uint word) {
  int v = int(word);
  return vec4(bitfieldExtract(v, 0, 8), bitfieldExtract(v, 8, 8), bitfieldExtract(v, 16, 8), bitfieldExtract(v, 24, 8));
}

// ---- Quantized formats ----------------------------------------------------------------------
#if defined(WEIGHT_Q8_0)

// Block: f16 d at +0, int8 qs[32] at +2. The block starts 2-byte aligned, so the scale and
// the 32 quants are 9 words read once: qs starts word-aligned when the block does not.
void weight_q8_0_load(uint byte_offset, out float d, out uint qs[8]) {
  uint base = byte_offset >> 2;
  bool block_odd = (byte_offset & 2u) != 0u;  // d is the high half of word `base`
  uint first = WEIGHT_WORD(base);
  d = weight_half(block_odd ? (first >> 16) : (first & 0xffffu));
  // qs begins at byte_offset + 2: word-aligned exactly when the block is "odd".
  uint prev = first;
  for (uint k = 0u; k < 8u; ++k) {
    uint next = WEIGHT_WORD(base + 1u + k);
    qs[k] = block_odd ? next : ((prev >> 16) | (next << 16));
    prev = next;
  }
}

void weight_block(uint byte_offset, out float values[32]) {
  float d;
  uint qs[8];
  weight_q8_0_load(byte_offset, d, qs);
  for (uint k = 0u; k < 8u; ++k) {
    for (uint b = 0u; b < 4u; ++b) {
      values[4u * k + b] = d * float(bitfieldExtract(int(qs[k]), int(8u * b), 8));
    }
  }
}

float weight_block_dot(uint byte_offset, vec4 x[8]) {
  float d;
  uint qs[8];
  weight_q8_0_load(byte_offset, d, qs);
  float sum = 0.0;
  for (uint k = 0u; k < 8u; ++k) {
    sum += dot(weight_i8x4(qs[k]), x[k]);
  }
  return d * sum;
}

void weight_quarter(uint byte_offset, uint q, out vec4 lo, out vec4 hi) {
  float d = weight_half(weight_u16_at(byte_offset));
  uint qs_byte = byte_offset + 2u + 8u * q;
  lo = d * weight_i8x4(weight_u32_at(qs_byte));
  hi = d * weight_i8x4(weight_u32_at(qs_byte + 4u));
}

float weight_at(uint row_byte, uint col) {
  uint block_byte = row_byte + (col / 32u) * 34u;
  float d = weight_half(weight_u16_at(block_byte));
  uint byte = block_byte + 2u + (col % 32u);
  int q = bitfieldExtract(int(WEIGHT_WORD(byte >> 2)), int((byte & 3u) * 8u), 8);
  return d * float(q);
}

#elif defined(WEIGHT_Q4_0)

// Block: f16 d at +0, uint8 qs[16] at +2; element j = low nibble of qs[j] - 8 and element
// j + 16 = high nibble - 8 (j < 16). Scale and quants are 5 words read once.
void weight_q4_0_load(uint byte_offset, out float d, out uint qs[4]) {
  uint base = byte_offset >> 2;
  bool block_odd = (byte_offset & 2u) != 0u;
  uint first = WEIGHT_WORD(base);
  d = weight_half(block_odd ? (first >> 16) : (first & 0xffffu));
  uint prev = first;
  for (uint k = 0u; k < 4u; ++k) {
    uint next = WEIGHT_WORD(base + 1u + k);
    qs[k] = block_odd ? next : ((prev >> 16) | (next << 16));
    prev = next;
  }
}

void weight_block(uint byte_offset, out float values[32]) {
  float d;
  uint qs[4];
  weight_q4_0_load(byte_offset, d, qs);
  for (uint k = 0u; k < 4u; ++k) {
    for (uint b = 0u; b < 4u; ++b) {
      uint byte = (qs[k] >> (8u * b)) & 0xffu;
      values[4u * k + b] = d * float(int(byte & 15u) - 8);
      values[16u + 4u * k + b] = d * float(int(byte >> 4) - 8);
    }
  }
}

float weight_block_dot(uint byte_offset, vec4 x[8]) {
  float d;
  uint qs[4];
  weight_q4_0_load(byte_offset, d, qs);
  float sum = 0.0;
  for (uint k = 0u; k < 4u; ++k) {
    // Low nibbles are elements 4k..4k+3 (x[k]); high nibbles are 16+4k.. (x[k + 4]).
    uvec4 bytes = (uvec4(qs[k]) >> uvec4(0u, 8u, 16u, 24u)) & 0xffu;
    vec4 lo = vec4(bytes & 15u) - 8.0;
    vec4 hi = vec4(bytes >> 4u) - 8.0;
    sum += dot(lo, x[k]) + dot(hi, x[k + 4u]);
  }
  return d * sum;
}

void weight_quarter(uint byte_offset, uint q, out vec4 lo, out vec4 hi) {
  float d = weight_half(weight_u16_at(byte_offset));
  // qs bytes 4q..4q+3: their low nibbles are columns 4q.., their high nibbles 16+4q...
  uvec4 bytes = (uvec4(weight_u32_at(byte_offset + 2u + 4u * q)) >> uvec4(0u, 8u, 16u, 24u)) & 0xffu;
  lo = d * (vec4(bytes & 15u) - 8.0);
  hi = d * (vec4(bytes >> 4u) - 8.0);
}

float weight_at(uint row_byte, uint col) {
  uint block_byte = row_byte + (col / 32u) * 18u;
  float d = weight_half(weight_u16_at(block_byte));
  uint j = col % 32u;
  uint byte_offset = block_byte + 2u + (j % 16u);
  uint byte = (WEIGHT_WORD(byte_offset >> 2) >> ((byte_offset & 3u) * 8u)) & 0xffu;
  uint nibble = j < 16u ? (byte & 15u) : (byte >> 4);
  return d * float(int(nibble) - 8);
}

// ---- Float formats --------------------------------------------------------------------------
#elif defined(WEIGHT_F32)

float weight_at(uint row_byte, uint col) { return uintBitsToFloat(WEIGHT_WORD((row_byte >> 2) + col)); }

void weight_block(uint byte_offset, out float values[32]) {
  uint base = byte_offset >> 2;
  for (uint k = 0u; k < 32u; ++k) values[k] = uintBitsToFloat(WEIGHT_WORD(base + k));
}

void weight_quarter(uint byte_offset, uint q, out vec4 lo, out vec4 hi) {
  uint i = (byte_offset >> 2) + 8u * q;
  lo = uintBitsToFloat(uvec4(WEIGHT_WORD(i), WEIGHT_WORD(i + 1u), WEIGHT_WORD(i + 2u), WEIGHT_WORD(i + 3u)));
  hi = uintBitsToFloat(uvec4(WEIGHT_WORD(i + 4u), WEIGHT_WORD(i + 5u), WEIGHT_WORD(i + 6u), WEIGHT_WORD(i + 7u)));
}

float weight_block_dot(uint byte_offset, vec4 x[8]) {
  uint base = byte_offset >> 2;
  float sum = 0.0;
  for (uint k = 0u; k < 8u; ++k) {
    uint i = base + 4u * k;
    vec4 wv = uintBitsToFloat(uvec4(WEIGHT_WORD(i), WEIGHT_WORD(i + 1u), WEIGHT_WORD(i + 2u), WEIGHT_WORD(i + 3u)));
    sum += dot(wv, x[k]);
  }
  return sum;
}

#else  // WEIGHT_F16 or WEIGHT_BF16: two 16-bit values per word, rows 2-byte aligned

#if defined(WEIGHT_F16)
vec2 weight_pair(uint word) { return unpackHalf2x16(word); }
float weight_scalar(uint bits16) { return unpackHalf2x16(bits16).x; }
#else
// bf16 is the top half of an f32: shift it into place.
vec2 weight_pair(uint word) { return uintBitsToFloat(uvec2(word << 16, word & 0xffff0000u)); }
float weight_scalar(uint bits16) { return uintBitsToFloat(bits16 << 16); }
#endif

float weight_at(uint row_byte, uint col) { return weight_scalar(weight_u16_at(row_byte + 2u * col)); }

void weight_quarter(uint byte_offset, uint q, out vec4 lo, out vec4 hi) {
  uint start = byte_offset + 16u * q;  // 8 values = 16 bytes, 2-byte aligned
  uint base = start >> 2;
  uint w0 = WEIGHT_WORD(base), w1 = WEIGHT_WORD(base + 1u), w2 = WEIGHT_WORD(base + 2u), w3 = WEIGHT_WORD(base + 3u);
  if ((start & 2u) != 0u) {
    uint w4 = WEIGHT_WORD(base + 4u);
    w0 = weight_join(w0, w1, true);
    w1 = weight_join(w1, w2, true);
    w2 = weight_join(w2, w3, true);
    w3 = weight_join(w3, w4, true);
  }
  lo = vec4(weight_pair(w0), weight_pair(w1));
  hi = vec4(weight_pair(w2), weight_pair(w3));
}

// The 16 words holding 32 values starting at a 2-byte aligned offset (17 words read when
// the start is mid-word, e.g. an odd number of columns before this row).
void weight_half_words(uint byte_offset, out uint words[16]) {
  uint base = byte_offset >> 2;
  bool odd = (byte_offset & 2u) != 0u;
  uint prev = WEIGHT_WORD(base);
  for (uint k = 0u; k < 16u; ++k) {
    // When aligned, the 17th word is never needed: do not read past the row's last word.
    uint next = 0u;
    if (odd || k < 15u) next = WEIGHT_WORD(base + k + 1u);
    words[k] = weight_join(prev, next, odd);
    prev = next;
  }
}

void weight_block(uint byte_offset, out float values[32]) {
  uint words[16];
  weight_half_words(byte_offset, words);
  for (uint k = 0u; k < 16u; ++k) {
    vec2 pair = weight_pair(words[k]);
    values[2u * k] = pair.x;
    values[2u * k + 1u] = pair.y;
  }
}

float weight_block_dot(uint byte_offset, vec4 x[8]) {
  uint words[16];
  weight_half_words(byte_offset, words);
  float sum = 0.0;
  for (uint k = 0u; k < 8u; ++k) {
    vec4 wv = vec4(weight_pair(words[2u * k]), weight_pair(words[2u * k + 1u]));
    sum += dot(wv, x[k]);
  }
  return sum;
}

#endif

#endif  // MEGREZ_WEIGHTS_GLSL
