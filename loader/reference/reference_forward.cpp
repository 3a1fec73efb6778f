#include "loader/reference/reference_forward.h"

#include <cmath>
#include <string>

#include "loader/error.h"
#include "loader/quant/quant.h"

namespace megrez {
namespace {

// ---------------------------------------------------------------- small math

// y[r] = x[r] W^T for n rows: x is [n, in], W is [out, in] in any DType, y is [n, out].
// Each weight row is dequantised once and dotted with every input row in fp64.
std::vector<float> matmul(const TensorView& w, std::span<const float> x, int64_t n) {
  const int64_t out = w.rows(), in = w.cols();
  std::vector<float> row(static_cast<size_t>(in)), y(static_cast<size_t>(n * out));
  for (int64_t o = 0; o < out; ++o) {
    dequantize_row(w.dtype, w.row(o), row.data(), in);
    for (int64_t r = 0; r < n; ++r) {
      const float* xr = x.data() + r * in;
      double acc = 0.0;
      for (int64_t j = 0; j < in; ++j) acc += double(xr[j]) * double(row[size_t(j)]);
      y[size_t(r * out + o)] = float(acc);
    }
  }
  return y;
}

std::vector<float> as_floats(const TensorView& t) {
  std::vector<float> v(size_t(t.numel()));
  dequantize_row(t.dtype, t.bytes.data(), v.data(), t.numel());
  return v;
}

// RMSNorm over each of the n rows of x [n, d]: x / sqrt(mean(x^2) + eps) * weight.
std::vector<float> rms_norm(const std::vector<float>& x, int64_t n, const TensorView& weight, double eps) {
  const std::vector<float> w = as_floats(weight);
  const int64_t d = int64_t(w.size());
  std::vector<float> y(x.size());
  for (int64_t r = 0; r < n; ++r) {
    const float* xr = x.data() + r * d;
    float* yr = y.data() + r * d;
    double sum_sq = 0.0;
    for (int64_t j = 0; j < d; ++j) sum_sq += double(xr[j]) * double(xr[j]);
    const double inv_rms = 1.0 / std::sqrt(sum_sq / double(d) + eps);
    for (int64_t j = 0; j < d; ++j) yr[j] = float(double(xr[j]) * inv_rms * double(w[size_t(j)]));
  }
  return y;
}

double silu(double v) { return v / (1.0 + std::exp(-v)); }

// down( silu(gate x) * up x ) for n rows of x.
std::vector<float> swiglu(const TensorView& gate, const TensorView& up, const TensorView& down,
                          std::span<const float> x, int64_t n) {
  std::vector<float> g = matmul(gate, x, n);
  const std::vector<float> u = matmul(up, x, n);
  for (size_t j = 0; j < g.size(); ++j) g[j] = float(silu(double(g[j])) * double(u[j]));
  return matmul(down, g, n);
}

// NeoX RoPE (rotate_half): element j pairs with j + Dh/2 and turns by pos * theta^(-2j/Dh).
void rope_neox(float* head, int64_t head_dim, int64_t pos, double theta) {
  const int64_t half = head_dim / 2;
  for (int64_t j = 0; j < half; ++j) {
    const double angle = double(pos) * std::pow(theta, -2.0 * double(j) / double(head_dim));
    const double a = head[j], b = head[j + half];
    head[j] = float(a * std::cos(angle) - b * std::sin(angle));
    head[j + half] = float(b * std::cos(angle) + a * std::sin(angle));
  }
}

void expect_shape(const TensorView& t, std::vector<int64_t> shape, const std::string& what) {
  if (t.shape == shape) return;
  auto str = [](const std::vector<int64_t>& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
  };
  throw Error("reference forward: " + what + " (" + (t.name.empty() ? "unnamed" : t.name) + ") has shape " +
              str(t.shape) + ", expected " + str(shape));
}

}  // namespace

// ---------------------------------------------------------------- setup

ReferenceForward::ReferenceForward(const ModelConfig& config, const ModelWeights& weights, ReferenceOptions options)
    : config_(config), weights_(weights), options_(options) {
  const ModelConfig& c = config_;
  if (c.num_attention_heads < 1 || c.num_key_value_heads < 1 || c.num_attention_heads % c.num_key_value_heads != 0)
    throw Error("reference forward: num_attention_heads " + std::to_string(c.num_attention_heads) +
                " is not a multiple of num_key_value_heads " + std::to_string(c.num_key_value_heads));
  if (c.head_dim < 2 || c.head_dim % 2 != 0)
    throw Error("reference forward: head_dim must be even for RoPE, got " + std::to_string(c.head_dim));
  if (c.num_hidden_layers > c.first_k_dense_replace && c.first_k_dense_replace < 1 && c.pre_gate &&
      !options_.route_from_current_layer)
    throw Error("reference forward: pre-gated routing needs first_k_dense_replace >= 1 "
                "(layer 0 has no previous layer)");
  if (c.experts_shared_frequency < 1 || c.moe_layer_freq != 1)
    throw Error("reference forward: needs experts_shared_frequency >= 1 and moe_layer_freq == 1");
  check_shapes();
  if (c.num_hidden_layers > c.first_k_dense_replace) {  // reject a bad router config now, not mid-token
    const std::vector<float> flat(size_t(c.n_routed_experts), 0.5f), zero(size_t(c.n_routed_experts), 0.0f);
    select_experts(flat, zero, c);
  }
  reset();
}

void ReferenceForward::check_shapes() const {
  const ModelConfig& c = config_;
  const int64_t d = c.hidden_size, q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
  const ModelWeights& w = weights_;
  expect_shape(w.token_embd, {c.vocab_size, d}, "token embedding");
  expect_shape(w.output, {c.vocab_size, d}, "lm_head");
  expect_shape(w.output_norm, {d}, "final norm");
  if (int64_t(w.layers.size()) != c.num_hidden_layers)
    throw Error("reference forward: " + std::to_string(w.layers.size()) + " layers of weights, config says " +
                std::to_string(c.num_hidden_layers));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const LayerWeights& l = w.layers[size_t(i)];
    const std::string at = " of layer " + std::to_string(i);
    expect_shape(l.attn_norm, {d}, "input_layernorm" + at);
    expect_shape(l.wq, {q, d}, "q_proj" + at);
    expect_shape(l.wk, {kv, d}, "k_proj" + at);
    expect_shape(l.wv, {kv, d}, "v_proj" + at);
    expect_shape(l.wo, {d, q}, "o_proj" + at);
    expect_shape(l.ffn_norm, {d}, "post_attention_layernorm" + at);
    if (!c.is_moe_layer(i)) {
      expect_shape(l.ffn_gate, {c.intermediate_size, d}, "mlp.gate_proj" + at);
      expect_shape(l.ffn_up, {c.intermediate_size, d}, "mlp.up_proj" + at);
      expect_shape(l.ffn_down, {d, c.intermediate_size}, "mlp.down_proj" + at);
      continue;
    }
    expect_shape(l.router, {c.n_routed_experts, d}, "router" + at);
    expect_shape(l.router_bias, {c.n_routed_experts}, "router bias" + at);
    expect_shape(l.shexp_gate, {c.shared_width(), d}, "shared_experts.gate_proj" + at);
    expect_shape(l.shexp_up, {c.shared_width(), d}, "shared_experts.up_proj" + at);
    expect_shape(l.shexp_down, {d, c.shared_width()}, "shared_experts.down_proj" + at);
    if (l.pool != c.pool_of(i) || l.pool >= int64_t(w.pools.size()) ||
        int64_t(w.pools[size_t(l.pool)].size()) != c.n_routed_experts)
      throw Error("reference forward: layer " + std::to_string(i) + " must use expert pool " +
                  std::to_string(c.pool_of(i)) + " holding " + std::to_string(c.n_routed_experts) + " experts");
    for (const ExpertWeights& e : w.pools[size_t(l.pool)]) {
      const std::string pool = " of pool " + std::to_string(l.pool);
      expect_shape(e.gate, {c.moe_intermediate_size, d}, "expert gate_proj" + pool);
      expect_shape(e.up, {c.moe_intermediate_size, d}, "expert up_proj" + pool);
      expect_shape(e.down, {d, c.moe_intermediate_size}, "expert down_proj" + pool);
    }
  }
}

void ReferenceForward::reset() {
  position_ = 0;
  cache_.assign(size_t(config_.num_hidden_layers), LayerCache{});
  routes_.clear();
}

const RouteResult& ReferenceForward::routing(int64_t pos, int64_t layer) const {
  if (pos < 0 || pos >= position_ || layer < 0 || layer >= config_.num_hidden_layers)
    throw Error("reference forward: no routing recorded for position " + std::to_string(pos) + ", layer " +
                std::to_string(layer));
  return routes_[size_t(pos)][size_t(layer)];
}

// ---------------------------------------------------------------- forward

std::vector<float> ReferenceForward::forward(std::span<const int32_t> ids) {
  reset();
  return append(ids);
}

std::vector<float> ReferenceForward::append(std::span<const int32_t> ids) {
  const ModelConfig& c = config_;
  const int64_t n = int64_t(ids.size()), d = c.hidden_size;
  for (int32_t id : ids)
    if (id < 0 || id >= c.vocab_size)
      throw Error("reference forward: token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                  std::to_string(c.vocab_size - 1) + ")");

  // x = embed_tokens[ids]
  std::vector<float> x(size_t(n * d));
  for (int64_t r = 0; r < n; ++r)
    dequantize_row(weights_.token_embd.dtype, weights_.token_embd.row(ids[size_t(r)]), x.data() + r * d, d);
  routes_.resize(size_t(position_ + n), std::vector<RouteResult>(size_t(c.num_hidden_layers)));

  // Routing from a layer's own h2 is the test-only switch (or a checkpoint that declares
  // pre_gate false); Megrez2 routes layer i from layer i-1's h2.
  const bool route_from_own_h2 = options_.route_from_current_layer || !c.pre_gate;
  std::vector<float> pre_gate;  // h2 of the previous layer: the input of this layer's router
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const LayerWeights& l = weights_.layers[size_t(i)];
    const std::vector<float> attn = attention(i, rms_norm(x, n, l.attn_norm, c.rms_norm_eps), n);
    for (size_t j = 0; j < x.size(); ++j) x[j] += attn[j];
    std::vector<float> h2 = rms_norm(x, n, l.ffn_norm, c.rms_norm_eps);
    const std::vector<float> y =
        c.is_moe_layer(i) ? moe(i, h2, route_from_own_h2 ? h2 : pre_gate, n)
                          : swiglu(l.ffn_gate, l.ffn_up, l.ffn_down, h2, n);
    for (size_t j = 0; j < x.size(); ++j) x[j] += y[j];
    pre_gate = std::move(h2);
  }
  position_ += n;
  return matmul(weights_.output, rms_norm(x, n, weights_.output_norm, c.rms_norm_eps), n);
}

// Causal GQA self-attention of rows at positions position_..position_+n-1 over the cache;
// returns a Wo^T (the caller adds it to the residual).
std::vector<float> ReferenceForward::attention(int64_t layer, const std::vector<float>& h, int64_t n) {
  const ModelConfig& c = config_;
  const LayerWeights& l = weights_.layers[size_t(layer)];
  const int64_t dh = c.head_dim, n_heads = c.num_attention_heads, n_kv = c.num_key_value_heads;
  const int64_t group = n_heads / n_kv;  // q heads per kv head
  std::vector<float> q = matmul(l.wq, h, n), k = matmul(l.wk, h, n);
  std::vector<float> v = matmul(l.wv, h, n);
  for (int64_t r = 0; r < n; ++r) {
    float* q_row = q.data() + r * n_heads * dh;
    float* k_row = k.data() + r * n_kv * dh;
    for (int64_t head = 0; head < n_heads; ++head) rope_neox(q_row + head * dh, dh, position_ + r, c.rope_theta);
    for (int64_t head = 0; head < n_kv; ++head) rope_neox(k_row + head * dh, dh, position_ + r, c.rope_theta);
  }
  LayerCache& cache = cache_[size_t(layer)];
  if (options_.kv_f16) {
    for (float& x : k) x = f16_to_f32(f32_to_f16(x));
    for (float& x : v) x = f16_to_f32(f32_to_f16(x));
  }
  cache.k.insert(cache.k.end(), k.begin(), k.end());
  cache.v.insert(cache.v.end(), v.begin(), v.end());

  const double scale = 1.0 / std::sqrt(double(dh));
  std::vector<float> out(size_t(n * n_heads * dh));
  for (int64_t r = 0; r < n; ++r) {
    const int64_t n_keys = position_ + r + 1;  // causal: itself and everything before
    for (int64_t head = 0; head < n_heads; ++head) {
      const float* qh = &q[size_t((r * n_heads + head) * dh)];
      const int64_t kv_offset = (head / group) * dh;
      std::vector<double> p(static_cast<size_t>(n_keys));
      double max_score = -INFINITY, denom = 0.0;
      for (int64_t t = 0; t < n_keys; ++t) {
        const float* kt = &cache.k[size_t(t * n_kv * dh + kv_offset)];
        double dot = 0.0;
        for (int64_t j = 0; j < dh; ++j) dot += double(qh[j]) * double(kt[j]);
        p[size_t(t)] = dot * scale;
        max_score = std::max(max_score, p[size_t(t)]);
      }
      for (double& s : p) denom += (s = std::exp(s - max_score));
      std::vector<double> acc(static_cast<size_t>(dh), 0.0);
      for (int64_t t = 0; t < n_keys; ++t) {
        const float* vt = &cache.v[size_t(t * n_kv * dh + kv_offset)];
        for (int64_t j = 0; j < dh; ++j) acc[size_t(j)] += p[size_t(t)] * double(vt[j]);
      }
      for (int64_t j = 0; j < dh; ++j) out[size_t((r * n_heads + head) * dh + j)] = float(acc[size_t(j)] / denom);
    }
  }
  return matmul(l.wo, out, n);
}

// y = sum_k w[k] * Expert[pool][idx[k]](h2) + SharedMLP(h2), routed from `router_in`.
std::vector<float> ReferenceForward::moe(int64_t layer, const std::vector<float>& h2,
                                         const std::vector<float>& router_in, int64_t n) {
  const ModelConfig& c = config_;
  const LayerWeights& l = weights_.layers[size_t(layer)];
  const int64_t d = c.hidden_size;
  std::vector<float> y = swiglu(l.shexp_gate, l.shexp_up, l.shexp_down, h2, n);  // not scaled
  for (int64_t r = 0; r < n; ++r) {
    std::span<const float> z(h2.data() + r * d, size_t(d));
    RouteResult& chosen = routes_[size_t(position_ + r)][size_t(layer)];
    chosen = route(std::span<const float>(router_in.data() + r * d, size_t(d)), l.router, l.router_bias, c);
    std::vector<double> acc(y.begin() + r * d, y.begin() + (r + 1) * d);
    for (size_t k = 0; k < chosen.ids.size(); ++k) {
      const ExpertWeights& e = weights_.pools[size_t(l.pool)][size_t(chosen.ids[k])];
      const std::vector<float> expert_out = swiglu(e.gate, e.up, e.down, z, 1);
      for (int64_t j = 0; j < d; ++j) acc[size_t(j)] += double(chosen.weights[k]) * double(expert_out[size_t(j)]);
    }
    for (int64_t j = 0; j < d; ++j) y[size_t(r * d + j)] = float(acc[size_t(j)]);
  }
  return y;
}

}  // namespace megrez
