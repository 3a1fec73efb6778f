#pragma once
// The CPU reference forward pass of Megrez2: the oracle every GPU path is tested against.
// It follows the pseudocode of ../shared/docs/megrez2-model.md line by line, in plain C++:
// activations stored in fp32, dot products / norms / softmax / expert sums accumulated in
// fp64, weights dequantised row by row with quant.h so every DType works. Slow on purpose:
// it is written to be obviously right, not fast.
#include <cstdint>
#include <span>
#include <vector>

#include "loader/formats/config.h"
#include "loader/reference/reference_router.h"
#include "loader/weights.h"

namespace megrez {

struct ReferenceOptions {
  // TEST-ONLY switch. Routes layer i from its OWN post-attention-norm output instead of
  // layer i-1's: the classic (not pre-gated) wiring, which is WRONG for Megrez2. It exists
  // only so a test can prove that the pre-gating wiring changes the logits; never set it
  // anywhere else.
  bool route_from_current_layer = false;
  // Keys and values rounded to f16 as they enter the cache, as an engine with an f16 KV cache
  // stores them: compared with that engine, what is left is fp32 rounding, so a router's
  // near-tie is not flipped by the cache's rounding alone.
  bool kv_f16 = false;
};

class ReferenceForward {
 public:
  // Keeps a reference to `weights` (it must outlive this object) and a copy of `config`.
  // Throws megrez::Error when a tensor's shape does not match the config.
  ReferenceForward(const ModelConfig& config, const ModelWeights& weights, ReferenceOptions options = {});

  // Forget everything (KV cache, routing log) and run `ids` from position 0.
  // Returns the logits of every position, row-major [ids.size(), vocab_size].
  std::vector<float> forward(std::span<const int32_t> ids);

  // Continue the sequence with `ids` at positions position()..position()+n-1, attending to
  // everything before through the KV cache. Returns [ids.size(), vocab_size] logits.
  // Decoding one token at a time and prefilling all at once give bit-identical logits.
  // Bad ids throw before anything changes; after any other Error (NaN router scores from
  // broken weights) the state is undefined until reset().
  std::vector<float> append(std::span<const int32_t> ids);
  std::vector<float> append(int32_t id) { return append(std::span<const int32_t>(&id, 1)); }

  void reset();
  int64_t position() const { return position_; }

  // The experts layer `layer` used for the token at position `pos`: ids and final weights
  // (after renormalisation and routed_scaling_factor). Empty for dense layers.
  const RouteResult& routing(int64_t pos, int64_t layer) const;

 private:
  struct LayerCache {
    std::vector<float> k, v;  // [positions, Hkv*Dh] each; k already rotated
  };

  std::vector<float> attention(int64_t layer, const std::vector<float>& h, int64_t n);
  std::vector<float> moe(int64_t layer, const std::vector<float>& h2, const std::vector<float>& router_in, int64_t n);
  void check_shapes() const;

  ModelConfig config_;
  const ModelWeights& weights_;
  ReferenceOptions options_;
  int64_t position_ = 0;
  std::vector<LayerCache> cache_;               // [L]
  std::vector<std::vector<RouteResult>> routes_;  // [positions][L]
};

}  // namespace megrez
