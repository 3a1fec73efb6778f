#include "loader/quant/quant.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "loader/error.h"

namespace megrez {

// ---------------------------------------------------------------- dtype facts

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::Q8_0: return "q8_0";
    case DType::Q4_0: return "q4_0";
  }
  return "?";
}

bool dtype_from_name(const std::string& name, DType& out) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0})
    if (name == dtype_name(t)) { out = t; return true; }
  return false;
}

bool dtype_is_quantized(DType t) { return t == DType::Q8_0 || t == DType::Q4_0; }

size_t row_bytes(DType t, int64_t n) {
  switch (t) {
    case DType::F32: return size_t(n) * 4;
    case DType::F16:
    case DType::BF16: return size_t(n) * 2;
    case DType::Q8_0: return size_t(n / kQuantBlock) * 34;
    case DType::Q4_0: return size_t(n / kQuantBlock) * 18;
  }
  return 0;
}

int64_t TensorView::rows() const {
  int64_t r = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) r *= shape[i];
  return r;
}

// ---------------------------------------------------------------- scalars

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t man = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: value = man * 2^-24
      float v = std::ldexp(float(man), -24);
      return sign ? -v : v;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  }
  return std::bit_cast<float>(bits);
}

uint16_t f32_to_f16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000);
  const uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u)  // inf or NaN (keep NaN quiet and non-zero)
    return sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0);
  if (absx >= 0x477ff000u) return sign | 0x7c00;  // rounds to >= 65520: overflow to inf
  if (absx < 0x38800000u) {                        // below 2^-14: f16 subnormal or zero
    // value in units of 2^-24, rounded to nearest even
    const float v = std::bit_cast<float>(absx);
    const float scaled = v * 16777216.0f;  // exact: multiply by 2^24
    float r = std::nearbyint(scaled);      // default rounding mode is nearest-even
    return sign | uint16_t(r);
  }
  // normal: rebias exponent, round mantissa from 23 to 10 bits, nearest even
  uint32_t m = absx + 0xc8000000u;  // exponent - 112
  const uint32_t round_bit = 1u << 12, sticky = round_bit - 1;
  uint32_t h = m >> 13;
  if ((m & round_bit) && ((m & sticky) || (h & 1))) ++h;
  return sign | uint16_t(h);
}

float bf16_to_f32(uint16_t b) { return std::bit_cast<float>(uint32_t(b) << 16); }

uint16_t f32_to_bf16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40);  // quiet NaN
  x += 0x7fffu + ((x >> 16) & 1);
  return uint16_t(x >> 16);
}

// ---------------------------------------------------------------- rows

static uint16_t load_u16(const uint8_t* p) { uint16_t v; std::memcpy(&v, p, 2); return v; }
static void store_u16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

void dequantize_row(DType t, const uint8_t* src, float* out, int64_t n) {
  switch (t) {
    case DType::F32: std::memcpy(out, src, size_t(n) * 4); return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(load_u16(src + 2 * i));
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(load_u16(src + 2 * i));
      return;
    case DType::Q8_0:
      for (int64_t b = 0; b < n / kQuantBlock; ++b) {
        const uint8_t* blk = src + b * 34;
        const float d = f16_to_f32(load_u16(blk));
        for (int j = 0; j < 32; ++j) out[b * 32 + j] = d * float(int8_t(blk[2 + j]));
      }
      return;
    case DType::Q4_0:
      for (int64_t b = 0; b < n / kQuantBlock; ++b) {
        const uint8_t* blk = src + b * 18;
        const float d = f16_to_f32(load_u16(blk));
        for (int j = 0; j < 16; ++j) {
          out[b * 32 + j] = d * float(int(blk[2 + j] & 15) - 8);
          out[b * 32 + j + 16] = d * float(int(blk[2 + j] >> 4) - 8);
        }
      }
      return;
  }
}

void quantize_row(DType t, const float* src, int64_t n, std::vector<uint8_t>& dst) {
  if (dtype_is_quantized(t) && n % kQuantBlock != 0)
    throw Error(std::string("cannot quantize a row of ") + std::to_string(n) + " values to " +
                dtype_name(t) + ": the row length must be a multiple of 32");
  const size_t at = dst.size();
  dst.resize(at + row_bytes(t, n));
  uint8_t* out = dst.data() + at;
  switch (t) {
    case DType::F32: std::memcpy(out, src, size_t(n) * 4); return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) store_u16(out + 2 * i, f32_to_f16(src[i]));
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) store_u16(out + 2 * i, f32_to_bf16(src[i]));
      return;
    case DType::Q8_0:  // ggml quantize_row_q8_0_ref
      for (int64_t b = 0; b < n / kQuantBlock; ++b) {
        const float* x = src + b * 32;
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
        uint8_t* blk = out + b * 34;
        store_u16(blk, f32_to_f16(d));
        for (int j = 0; j < 32; ++j) blk[2 + j] = uint8_t(int8_t(std::round(x[j] * id)));
      }
      return;
    case DType::Q4_0:  // ggml quantize_row_q4_0_ref: scale from the signed extreme value
      for (int64_t b = 0; b < n / kQuantBlock; ++b) {
        const float* x = src + b * 32;
        float amax = 0, max = 0;
        for (int j = 0; j < 32; ++j)
          if (amax < std::fabs(x[j])) { amax = std::fabs(x[j]); max = x[j]; }
        const float d = max / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
        uint8_t* blk = out + b * 18;
        store_u16(blk, f32_to_f16(d));
        for (int j = 0; j < 16; ++j) {
          const int lo = std::min(15, int(int8_t(x[j] * id + 8.5f)));
          const int hi = std::min(15, int(int8_t(x[j + 16] * id + 8.5f)));
          blk[2 + j] = uint8_t(lo | (hi << 4));
        }
      }
      return;
  }
}

std::vector<float> dequantize(const TensorView& t) {
  std::vector<float> out(size_t(t.numel()));
  for (int64_t r = 0; r < t.rows(); ++r) dequantize_row(t.dtype, t.row(r), out.data() + r * t.cols(), t.cols());
  return out;
}

std::vector<uint8_t> quantize(DType t, std::span<const float> values, int64_t cols) {
  std::vector<uint8_t> out;
  const int64_t rows = cols ? int64_t(values.size()) / cols : 0;
  out.reserve(row_bytes(t, cols) * size_t(rows));
  for (int64_t r = 0; r < rows; ++r) quantize_row(t, values.data() + r * cols, cols, out);
  return out;
}

}  // namespace megrez
