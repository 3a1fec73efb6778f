#include "reference_ops.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "loader/quant/quant.h"

namespace megrez::test {

std::vector<uint32_t> EncodedMatrix::words() const {
  std::vector<uint32_t> out((bytes.size() + 3) / 4, 0u);
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

std::vector<float> EncodedMatrix::decode() const {
  std::vector<float> out(size_t{rows} * cols);
  for (uint32_t r = 0; r < rows; ++r) {
    dequantize_row(dtype, bytes.data() + r * row_size(), out.data() + size_t{r} * cols, cols);
  }
  return out;
}

namespace {

void append_u16(std::vector<uint8_t>& bytes, uint16_t v) {
  bytes.push_back(uint8_t(v & 0xff));
  bytes.push_back(uint8_t(v >> 8));
}

// splitmix64: fast enough to fill the 22M-weight Megrez2 matrices in a test's time budget.
struct FastRng {
  uint64_t state;
  uint32_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return uint32_t((z ^ (z >> 31)) >> 32);
  }
};

// A float with random sign, magnitude in [2^-8, 2^4) and a random mantissa, built from bits:
// exercises exponent handling across 12 binades.
float spread_value(FastRng& rng) {
  const uint32_t r = rng.next();
  const uint32_t exponent = 127 - 8 + (r >> 8) % 12;
  const uint32_t bits = (r & 0x80000000u) | (exponent << 23) | (rng.next() & 0x7fffffu);
  float v;
  std::memcpy(&v, &bits, 4);
  return v;
}

}  // namespace

EncodedMatrix random_matrix(DType dtype, uint32_t rows, uint32_t cols, uint32_t seed) {
  EncodedMatrix m{dtype, rows, cols, {}};
  FastRng rng{seed * 0x1000193ull + 1};
  const size_t count = size_t{rows} * cols;
  m.bytes.reserve(size_t{rows} * m.row_size() + 4);
  switch (dtype) {
    case DType::F32:
      for (size_t i = 0; i < count; ++i) {
        const float v = spread_value(rng);
        uint8_t b[4];
        std::memcpy(b, &v, 4);
        m.bytes.insert(m.bytes.end(), b, b + 4);
      }
      break;
    case DType::F16:
    case DType::BF16:
      for (size_t i = 0; i < count; ++i) {
        float v = spread_value(rng);
        if (dtype == DType::F16 && i % 97 == 5) v = std::ldexp(v, -16);  // some f16 subnormals
        append_u16(m.bytes, dtype == DType::F16 ? f32_to_f16(v) : f32_to_bf16(v));
      }
      break;
    case DType::Q8_0:
    case DType::Q4_0:
      for (size_t b = 0; b < count / kQuantBlock; ++b) {
        // Scales in +-[0.001, 0.05), and now and then an f16-subnormal one.
        float d = (0.001f + float(rng.next() >> 8) * (0.049f / 16777216.0f)) * (rng.next() & 1 ? 1.0f : -1.0f);
        if (b % 53 == 7) d = 3.0e-6f;
        append_u16(m.bytes, f32_to_f16(d));
        const int quant_bytes = dtype == DType::Q8_0 ? 32 : 16;
        for (int j = 0; j < quant_bytes; j += 4) {
          const uint32_t r = rng.next();
          for (int k = 0; k < 4; ++k) m.bytes.push_back(uint8_t(r >> (8 * k)));
        }
      }
      break;
  }
  while (m.bytes.size() % 4) m.bytes.push_back(0);
  return m;
}

std::vector<float> random_vector(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

std::vector<RefDot> ref_matvec(const std::vector<float>& w, uint32_t rows, uint32_t cols, const std::vector<float>& x) {
  return ref_matmul(w, rows, cols, x, 1);
}

std::vector<RefDot> ref_matmul(const std::vector<float>& w, uint32_t rows, uint32_t cols, const std::vector<float>& x,
                               uint32_t tokens) {
  std::vector<RefDot> y(size_t{tokens} * rows);
  for (uint32_t t = 0; t < tokens; ++t) {
    const float* xt = x.data() + size_t{t} * cols;
    for (uint32_t r = 0; r < rows; ++r) {
      const float* wr = w.data() + size_t{r} * cols;
      // Four independent fp64 chains: the Megrez2-sized tests spend their time here.
      double value[4] = {0, 0, 0, 0}, magnitude[4] = {0, 0, 0, 0};
      uint32_t c = 0;
      for (; c + 4 <= cols; c += 4) {
        for (int k = 0; k < 4; ++k) {
          const double p = double(wr[c + k]) * double(xt[c + k]);
          value[k] += p;
          magnitude[k] += std::fabs(p);
        }
      }
      for (; c < cols; ++c) {
        const double p = double(wr[c]) * double(xt[c]);
        value[0] += p;
        magnitude[0] += std::fabs(p);
      }
      y[size_t{t} * rows + r] = {(value[0] + value[1]) + (value[2] + value[3]),
                                 (magnitude[0] + magnitude[1]) + (magnitude[2] + magnitude[3])};
    }
  }
  return y;
}

std::vector<double> ref_rmsnorm(const std::vector<float>& x, const std::vector<float>& w, uint32_t rows, uint32_t dim,
                                double eps) {
  std::vector<double> y(size_t{rows} * dim);
  for (uint32_t r = 0; r < rows; ++r) {
    const float* xr = x.data() + size_t{r} * dim;
    double sum_sq = 0;
    for (uint32_t c = 0; c < dim; ++c) sum_sq += double(xr[c]) * double(xr[c]);
    const double inv_rms = 1.0 / std::sqrt(sum_sq / dim + eps);
    for (uint32_t c = 0; c < dim; ++c) y[size_t{r} * dim + c] = double(xr[c]) * inv_rms * double(w[c]);
  }
  return y;
}

uint32_t ref_argmax(const std::vector<float>& logits) {
  uint32_t best = 0;
  float best_value = -std::numeric_limits<float>::infinity();
  for (uint32_t i = 0; i < logits.size(); ++i) {
    const float v = std::isnan(logits[i]) ? -std::numeric_limits<float>::infinity() : logits[i];
    if (v > best_value || i == 0) {
      best_value = v;
      best = i;
    }
  }
  return best;
}

}  // namespace megrez::test
