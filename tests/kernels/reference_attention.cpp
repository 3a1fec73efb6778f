#include "reference_attention.h"

#include <algorithm>
#include <cmath>

namespace megrez::test {

void rope_head_reference(double* head, uint32_t head_dim, uint64_t pos, double theta) {
  const uint32_t half = head_dim / 2;
  for (uint32_t i = 0; i < half; ++i) {
    const double angle = static_cast<double>(pos) * std::pow(theta, -2.0 * i / head_dim);
    const double c = std::cos(angle), s = std::sin(angle);
    const double a = head[i], b = head[i + half];
    head[i] = a * c - b * s;
    head[i + half] = b * c + a * s;
  }
}

std::vector<double> rope_reference(const std::vector<float>& x, uint32_t tokens, uint32_t heads, uint32_t head_dim,
                                   uint32_t offset, uint32_t row_stride, uint32_t pos0, double theta) {
  std::vector<double> out(x.begin(), x.end());
  for (uint32_t t = 0; t < tokens; ++t) {
    for (uint32_t h = 0; h < heads; ++h) {
      rope_head_reference(&out[offset + size_t{t} * row_stride + size_t{h} * head_dim], head_dim, uint64_t{pos0} + t,
                          theta);
    }
  }
  return out;
}

std::vector<double> attention_reference(const std::vector<float>& q, const std::vector<float>& keys,
                                        const std::vector<float>& values, uint32_t tokens, uint32_t pos0,
                                        const AttentionRefShape& shape, double scale) {
  const uint32_t dh = shape.head_dim;
  const size_t q_row = size_t{shape.q_heads} * dh, kv_row = size_t{shape.kv_heads} * dh;
  const uint32_t group = shape.q_heads / shape.kv_heads;
  std::vector<double> out(tokens * q_row, 0.0);
  std::vector<double> scores;
  for (uint32_t t = 0; t < tokens; ++t) {
    const size_t visible = size_t{pos0} + t + 1;
    scores.assign(visible, 0.0);
    for (uint32_t h = 0; h < shape.q_heads; ++h) {
      const float* qh = &q[t * q_row + size_t{h} * dh];
      const size_t kv_col = size_t{h / group} * dh;
      for (size_t p = 0; p < visible; ++p) {
        double dot = 0;
        for (uint32_t d = 0; d < dh; ++d) dot += double{qh[d]} * keys[p * kv_row + kv_col + d];
        scores[p] = dot * scale;
      }
      const double max = *std::max_element(scores.begin(), scores.end());
      double total = 0;
      for (double& s : scores) total += (s = std::exp(s - max));
      double* oh = &out[t * q_row + size_t{h} * dh];
      for (size_t p = 0; p < visible; ++p) {
        for (uint32_t d = 0; d < dh; ++d) oh[d] += scores[p] * values[p * kv_row + kv_col + d];
      }
      for (uint32_t d = 0; d < dh; ++d) oh[d] /= total;
    }
  }
  return out;
}

}  // namespace megrez::test
