#include "reference_moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "loader/quant/quant.h"

namespace megrez::test {

namespace {

void store_u16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

void decode_values(HostMatrix& m) {
  m.values.resize(size_t(m.rows * m.cols));
  const size_t rb = row_bytes(m.dtype, m.cols);
  for (int64_t r = 0; r < m.rows; ++r)
    dequantize_row(m.dtype, m.bytes.data() + size_t(r) * rb, m.values.data() + r * m.cols, m.cols);
}

}  // namespace

TensorView HostMatrix::view(const std::string& name) const {
  TensorView v;
  v.name = name;
  v.dtype = dtype;
  v.shape = {rows, cols};
  v.bytes = std::span<const uint8_t>(bytes);
  return v;
}

std::vector<float> random_vector(size_t n, float scale, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

HostMatrix random_matrix(DType dtype, int64_t rows, int64_t cols, float scale, std::mt19937& rng) {
  HostMatrix m{dtype, rows, cols, {}, {}};
  const std::vector<float> source = random_vector(size_t(rows * cols), scale, rng);
  m.bytes = quantize(dtype, source, cols);
  decode_values(m);
  return m;
}

// Grid: weights are integer codes times 2^-6 (|code| <= 16; q4_0: codes -8..7 times 2^-5),
// inputs are integers times 2^-4 (|i| <= 4). Every product is a multiple of 2^-10 and a row
// of up to 2^13 columns sums to less than 2^13 * 2^-4: all partial sums fit 24 bits, so any
// fp32 summation order gives the exact value (the fp64 reference's value too).
HostMatrix exact_matrix(DType dtype, int64_t rows, int64_t cols, std::mt19937& rng) {
  HostMatrix m{dtype, rows, cols, {}, {}};
  const bool q4 = dtype == DType::Q4_0;
  std::uniform_int_distribution<int> code(q4 ? -8 : -16, q4 ? 7 : 16);
  const float step = q4 ? 1.0f / 32 : 1.0f / 64;
  for (int64_t r = 0; r < rows; ++r) {
    if (dtype == DType::Q8_0 || dtype == DType::Q4_0) {
      for (int64_t b = 0; b < cols / kQuantBlock; ++b) {
        const size_t at = m.bytes.size();
        m.bytes.resize(at + (q4 ? 18 : 34));
        store_u16(&m.bytes[at], f32_to_f16(step));
        if (q4) {
          for (int j = 0; j < 16; ++j) m.bytes[at + 2 + size_t(j)] = uint8_t((code(rng) + 8) | ((code(rng) + 8) << 4));
        } else {
          for (int j = 0; j < 32; ++j) m.bytes[at + 2 + size_t(j)] = uint8_t(int8_t(code(rng)));
        }
      }
    } else {
      std::vector<float> row(static_cast<size_t>(cols));
      for (float& v : row) v = float(code(rng)) * step;
      quantize_row(dtype, row.data(), cols, m.bytes);  // exact: 6-bit codes fit every float format
    }
  }
  decode_values(m);
  return m;
}

std::vector<float> exact_inputs(size_t n, std::mt19937& rng) {
  std::uniform_int_distribution<int> code(-4, 4);
  std::vector<float> v(n);
  for (float& x : v) x = float(code(rng)) / 16.0f;
  return v;
}

std::vector<uint32_t> to_words(const std::vector<uint8_t>& bytes) {
  std::vector<uint32_t> words((bytes.size() + 3) / 4, 0u);
  std::memcpy(words.data(), bytes.data(), bytes.size());
  return words;
}

std::vector<DType> all_weight_formats() { return {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0}; }

std::string format_suffix(DType dtype) { return dtype_name(dtype); }

float silu(float x) { return float(double(x) / (1.0 + std::exp(-double(x)))); }

std::vector<float> matvec(const HostMatrix& m, const float* x) {
  std::vector<float> y(size_t(m.rows));
  for (int64_t r = 0; r < m.rows; ++r) {
    double sum = 0;
    for (int64_t c = 0; c < m.cols; ++c) sum += double(m.at(r, c)) * double(x[c]);
    y[size_t(r)] = float(sum);
  }
  return y;
}

std::vector<float> swiglu_mlp_hidden(const HostMatrix& gate, const HostMatrix& up, const float* x) {
  std::vector<float> g = matvec(gate, x), u = matvec(up, x), h(g.size());
  for (size_t i = 0; i < h.size(); ++i) h[i] = float(double(silu(g[i])) * double(u[i]));
  return h;
}

HostExpert random_expert(DType gate_up, DType down, int64_t dim, int64_t inter, std::mt19937& rng) {
  // Scales keep activations O(1) like a trained model's (|x| <= 1, 1/sqrt(fan-in) weights).
  const float gu_scale = 2.0f / std::sqrt(float(dim)), down_scale = 2.0f / std::sqrt(float(inter));
  HostExpert e;
  e.gate = random_matrix(gate_up, inter, dim, gu_scale, rng);
  e.up = random_matrix(gate_up, inter, dim, gu_scale, rng);
  e.down = random_matrix(down, dim, inter, down_scale, rng);
  return e;
}

std::vector<uint8_t> pack_slots(const std::vector<HostExpert>& experts, const std::vector<uint32_t>& slot_of,
                                uint32_t n_slots, const ExpertSlotLayout& layout) {
  std::vector<uint8_t> bytes(size_t(n_slots) * layout.slot_bytes, 0);
  for (size_t e = 0; e < experts.size(); ++e) {
    uint8_t* slot = bytes.data() + size_t(slot_of[e]) * layout.slot_bytes;
    std::memcpy(slot + layout.gate_offset, experts[e].gate.bytes.data(), experts[e].gate.bytes.size());
    std::memcpy(slot + layout.up_offset, experts[e].up.bytes.data(), experts[e].up.bytes.size());
    std::memcpy(slot + layout.down_offset, experts[e].down.bytes.data(), experts[e].down.bytes.size());
  }
  return bytes;
}

std::vector<float> moe_token(const std::vector<const HostExpert*>& expert_of, const uint32_t* ids,
                             const float* weights, uint32_t top_k, const float* x, const float* shared) {
  const HostMatrix& any_down = expert_of.at(0)->down;
  std::vector<double> y(size_t(any_down.rows), 0.0);
  for (uint32_t k = 0; k < top_k; ++k) {
    const HostExpert& e = *expert_of.at(ids[k]);
    const std::vector<float> h = swiglu_mlp_hidden(e.gate, e.up, x);
    const std::vector<float> out = matvec(e.down, h.data());
    for (size_t d = 0; d < y.size(); ++d) y[d] += double(weights[k]) * double(out[d]);
  }
  std::vector<float> result(y.size());
  for (size_t d = 0; d < y.size(); ++d) result[d] = float(y[d] + (shared ? double(shared[d]) : 0.0));
  return result;
}

double nmse(const std::vector<float>& got, const std::vector<float>& expected) {
  double err = 0, ref = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const double d = double(got.at(i)) - double(expected[i]);
    err += d * d;
    ref += double(expected[i]) * double(expected[i]);
  }
  if (std::isnan(err)) return INFINITY;
  return ref == 0 ? err : err / ref;
}

double max_rel_error(const std::vector<float>& got, const std::vector<float>& expected, double floor) {
  double worst = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const double e = std::fabs(double(got.at(i)) - double(expected[i])) / (std::fabs(double(expected[i])) + floor);
    if (std::isnan(e)) return INFINITY;
    worst = std::max(worst, e);
  }
  return worst;
}

}  // namespace megrez::test
