#include "runtime/engine/device_weights.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>
#include <span>

#include "loader/error.h"
#include "runtime/ops/attention.h"
#include "runtime/vk/blocking_transfers.h"
#include "runtime/vk/context.h"

namespace megrez {

namespace {

uint64_t round_up(uint64_t value, uint64_t multiple) { return (value + multiple - 1) / multiple * multiple; }

uint32_t to_u32(int64_t value, const std::string& what) {
  if (value < 0 || value > int64_t(std::numeric_limits<uint32_t>::max())) {
    throw Error(what + ": dimension " + std::to_string(value) + " does not fit 32 bits");
  }
  return static_cast<uint32_t>(value);
}

// ---- Placing tensors: one code path that either only counts bytes or allocates + uploads ---

class Placer {
 public:
  // Counting mode: sizes only, nothing touches the device.
  explicit Placer(const DeviceCaps& caps) : caps_(caps) {}
  // Allocating mode: ranges from `arena`, bytes uploaded through ctx's transfers.
  Placer(Context& ctx, Arena& arena) : caps_(ctx.caps()), ctx_(&ctx), arena_(&arena) {}

  const DeviceCaps& caps() const { return caps_; }
  uint64_t total() const { return total_; }

  // A range of `bytes` for `what`, which must fit one binding.
  BufferRange place(uint64_t bytes, const std::string& what) {
    if (bytes > caps_.max_storage_range) {
      throw Error(what + ": " + format_bytes(bytes) + " do not fit one binding of this device (at most " +
                  format_bytes(caps_.max_storage_range) + ")");
    }
    total_ += round_up(bytes, std::max<uint64_t>(caps_.storage_offset_alignment, 4));
    if (!arena_) return BufferRange{VK_NULL_HANDLE, 0, bytes, nullptr};
    return arena_->allocate(bytes);
  }

  // Copies `bytes` to `dst` at `offset`; the caller pads to whole words.
  void write(const BufferRange& dst, uint64_t offset, std::span<const uint8_t> bytes) {
    if (!ctx_ || bytes.empty()) return;
    ctx_->blocking_transfers().upload(dst.slice(offset, bytes.size()), std::as_bytes(bytes));
  }
  bool counting() const { return arena_ == nullptr; }

 private:
  const DeviceCaps& caps_;
  Context* ctx_ = nullptr;
  Arena* arena_ = nullptr;
  uint64_t total_ = 0;
};

std::span<const uint8_t> word_bytes(const std::vector<uint32_t>& words) {
  return {reinterpret_cast<const uint8_t*>(words.data()), words.size() * 4};
}

// `bytes` zero-padded to a multiple of 4 (the shaders read whole words).
std::vector<uint8_t> padded(std::span<const uint8_t> bytes) {
  std::vector<uint8_t> out(bytes.begin(), bytes.end());
  out.resize(round_up(bytes.size(), 4), 0);
  return out;
}

void write_padded(Placer& placer, const BufferRange& dst, uint64_t offset, std::span<const uint8_t> bytes) {
  if (placer.counting()) return;
  if (bytes.size() % 4 == 0) {
    placer.write(dst, offset, bytes);
  } else {
    placer.write(dst, offset, padded(bytes));
  }
}

DeviceTensor place_tensor(Placer& placer, const TensorView& t) {
  if (t.empty()) throw Error("tensor " + t.name + " is missing");
  DeviceTensor d;
  d.dtype = t.dtype;
  d.rows = to_u32(t.rows(), t.name);
  d.cols = to_u32(t.cols(), t.name);
  d.range = placer.place(round_up(t.bytes.size(), 4), "tensor " + t.name);
  write_padded(placer, d.range, 0, t.bytes);
  return d;
}

// A [rows, cols] table cut into parts of whole rows, each a multiple of 4 bytes and within
// one binding.
DeviceSplitTensor place_split(Placer& placer, const TensorView& t) {
  if (t.empty()) throw Error("tensor " + t.name + " is missing");
  DeviceSplitTensor d;
  d.dtype = t.dtype;
  d.rows = to_u32(t.rows(), t.name);
  d.cols = to_u32(t.cols(), t.name);
  const uint64_t row = row_bytes(t.dtype, t.cols());
  const uint64_t max_part = placer.caps().max_storage_range & ~uint64_t{3};
  if (row == 0 || row > max_part) {
    throw Error("tensor " + t.name + ": one row of " + format_bytes(row) + " does not fit one binding");
  }
  const uint64_t rows_per_part = std::min<uint64_t>(max_part / row, d.rows);
  for (uint64_t first = 0; first < d.rows; first += rows_per_part) {
    const uint64_t n = std::min<uint64_t>(rows_per_part, d.rows - first);
    const std::span<const uint8_t> bytes = t.bytes.subspan(first * row, n * row);
    BufferRange part = placer.place(round_up(bytes.size(), 4), "tensor " + t.name);
    write_padded(placer, part, 0, bytes);
    d.parts.push_back(part);
    d.first_row.push_back(static_cast<uint32_t>(first));
  }
  return d;
}

// gate and up in one binding where they fit (up starts at the binding offset alignment, so
// each also slices out on its own), else in two.
DeviceMlp place_mlp(Placer& placer, const TensorView& gate, const TensorView& up, const TensorView& down) {
  if (gate.empty() || up.empty()) throw Error("tensor " + (gate.empty() ? gate.name : up.name) + " is missing");
  if (gate.dtype != up.dtype || gate.shape != up.shape) {
    throw Error("tensors " + gate.name + " and " + up.name + " must share format and shape (got " +
                dtype_name(gate.dtype) + " and " + dtype_name(up.dtype) + ")");
  }
  DeviceMlp m;
  m.down = place_tensor(placer, down);
  const uint64_t align = std::max<uint64_t>(placer.caps().storage_offset_alignment, 4);
  const uint64_t gate_bytes = round_up(gate.bytes.size(), 4);
  const uint64_t up_offset = round_up(gate_bytes, align);
  if (up_offset + gate_bytes > placer.caps().max_storage_range) {
    m.gate = place_tensor(placer, gate);
    m.up = place_tensor(placer, up);
    return m;
  }
  const BufferRange both = placer.place(up_offset + gate_bytes, "tensors " + gate.name + " + " + up.name);
  write_padded(placer, both, 0, gate.bytes);
  write_padded(placer, both, up_offset, up.bytes);
  for (DeviceTensor* t : {&m.gate, &m.up}) {
    t->dtype = gate.dtype;
    t->rows = to_u32(gate.rows(), gate.name);
    t->cols = to_u32(gate.cols(), gate.name);
  }
  if (!placer.counting()) {
    m.gate.range = both.slice(0, gate_bytes);
    m.up.range = both.slice(up_offset, gate_bytes);
  }
  m.gate_up = both;
  m.up_offset = uint32_t(up_offset);
  return m;
}

// wq, wk, wv as one matrix (rows back to back) where they share format and columns and fit
// one binding, else three.
void place_qkv(Placer& placer, const TensorView& wq, const TensorView& wk, const TensorView& wv, DeviceLayer& l) {
  const bool fusable = !wq.empty() && !wk.empty() && !wv.empty() && wq.dtype == wk.dtype && wq.dtype == wv.dtype &&
                       wq.cols() == wk.cols() && wq.cols() == wv.cols() &&
                       (wq.bytes.size() | wk.bytes.size() | wv.bytes.size()) % 4 == 0;  // whole words
  const uint64_t bytes = wq.bytes.size() + wk.bytes.size() + wv.bytes.size();
  if (!fusable || bytes > placer.caps().max_storage_range) {
    l.wq = place_tensor(placer, wq);
    l.wk = place_tensor(placer, wk);
    l.wv = place_tensor(placer, wv);
    return;
  }
  DeviceTensor fused;
  fused.dtype = wq.dtype;
  fused.rows = to_u32(wq.rows() + wk.rows() + wv.rows(), wq.name + " + " + wk.name + " + " + wv.name);
  fused.cols = to_u32(wq.cols(), wq.name);
  fused.range = placer.place(bytes, "tensors " + wq.name + " + " + wk.name + " + " + wv.name);
  uint64_t offset = 0;
  for (const auto& [t, d] : {std::pair{&wq, &l.wq}, std::pair{&wk, &l.wk}, std::pair{&wv, &l.wv}}) {
    d->dtype = t->dtype;
    d->rows = to_u32(t->rows(), t->name);
    d->cols = fused.cols;
    if (!placer.counting()) placer.write(fused.range, offset, t->bytes);
    offset += t->bytes.size();
  }
  l.wqkv = fused;
}

// resident false: only the layout is filled in (streaming keeps the experts in the file).
DeviceExpertPool place_pool(Placer& placer, const std::vector<ExpertWeights>& experts, size_t pool_index,
                            bool resident) {
  const std::string name = "routed experts of pool " + std::to_string(pool_index);
  if (experts.empty() || experts[0].gate.empty() || experts[0].down.empty()) throw Error(name + " are missing");
  const DType gate_up = experts[0].gate.dtype, down = experts[0].down.dtype;
  const uint32_t inter = to_u32(experts[0].gate.rows(), name), dim = to_u32(experts[0].gate.cols(), name);
  for (const ExpertWeights& e : experts) {
    for (const TensorView* t : {&e.gate, &e.up}) {
      if (t->dtype != gate_up || t->rows() != inter || t->cols() != dim) {
        throw Error(name + ": " + t->name + " differs in format or shape from " + experts[0].gate.name);
      }
    }
    if (e.down.dtype != down || e.down.rows() != dim || e.down.cols() != inter) {
      throw Error(name + ": " + e.down.name + " differs in format or shape from " + experts[0].down.name);
    }
  }
  DeviceExpertPool p;
  p.n_experts = to_u32(int64_t(experts.size()), name);
  p.slots.layout = expert_slot_layout(gate_up, down, dim, inter);
  const ExpertSlotLayout& layout = p.slots.layout;
  p.slots.slots_per_part = std::min(expert_slots_per_part(placer.caps(), layout), p.n_experts);
  if (!resident) return p;
  // Resident: expert e in slot e. Each part is assembled on the host and uploaded at once.
  for (uint32_t first = 0; first < p.n_experts; first += p.slots.slots_per_part) {
    const uint32_t n = std::min(p.slots.slots_per_part, p.n_experts - first);
    BufferRange part = placer.place(uint64_t{n} * layout.slot_bytes, name);
    if (!placer.counting()) {
      std::vector<uint8_t> bytes(uint64_t{n} * layout.slot_bytes, 0);
      for (uint32_t s = 0; s < n; ++s) {
        const ExpertWeights& e = experts[first + s];
        uint8_t* slot = bytes.data() + uint64_t{s} * layout.slot_bytes;
        std::memcpy(slot + layout.gate_offset, e.gate.bytes.data(), e.gate.bytes.size());
        std::memcpy(slot + layout.up_offset, e.up.bytes.data(), e.up.bytes.size());
        std::memcpy(slot + layout.down_offset, e.down.bytes.data(), e.down.bytes.size());
      }
      placer.write(part, 0, bytes);
    }
    p.slots.parts.push_back(part);
  }
  std::vector<uint32_t> identity(p.n_experts);
  for (uint32_t e = 0; e < p.n_experts; ++e) identity[e] = e;
  p.slot_table = placer.place(identity.size() * 4, name + " slot table");
  placer.write(p.slot_table, 0, word_bytes(identity));
  return p;
}

struct Placed {
  DeviceSplitTensor token_embd, output;
  DeviceTensor output_norm;
  std::vector<DeviceLayer> layers;
  std::vector<DeviceExpertPool> pools;
  BufferRange rope_table;
};

// Every weight of the model, in one order for counting and for uploading.
Placed place_model(Placer& placer, const ModelConfig& config, const ModelWeights& w, bool resident_experts) {
  Placed m;
  m.token_embd = place_split(placer, w.token_embd);
  m.output_norm = place_tensor(placer, w.output_norm);
  const bool tied = config.tie_word_embeddings || w.output.bytes.data() == w.token_embd.bytes.data();
  m.output = tied ? m.token_embd : place_split(placer, w.output);
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const LayerWeights& lw = w.layers[i];
    DeviceLayer l;
    l.attn_norm = place_tensor(placer, lw.attn_norm);
    place_qkv(placer, lw.wq, lw.wk, lw.wv, l);
    l.wo = place_tensor(placer, lw.wo);
    l.ffn_norm = place_tensor(placer, lw.ffn_norm);
    if (config.is_moe_layer(int64_t(i))) {
      l.router = place_tensor(placer, lw.router);
      l.router_bias = place_tensor(placer, lw.router_bias);
      l.mlp = place_mlp(placer, lw.shexp_gate, lw.shexp_up, lw.shexp_down);
      l.pool = lw.pool;
    } else {
      l.mlp = place_mlp(placer, lw.ffn_gate, lw.ffn_up, lw.ffn_down);
    }
    m.layers.push_back(std::move(l));
  }
  for (size_t p = 0; p < w.pools.size(); ++p) m.pools.push_back(place_pool(placer, w.pools[p], p, resident_experts));
  const std::vector<uint32_t> table =
      rope_frequency_table(config.rope_theta, to_u32(config.head_dim, "head_dim"));
  m.rope_table = placer.place(table.size() * 4, "RoPE frequency table");
  placer.write(m.rope_table, 0, word_bytes(table));
  return m;
}

}  // namespace

uint64_t DeviceWeights::bytes_needed(const DeviceCaps& caps, const ModelConfig& config, const ModelWeights& weights,
                                   bool resident_experts) {
  Placer counter(caps);
  place_model(counter, config, weights, resident_experts);
  return counter.total();
}

DeviceWeights::DeviceWeights(Context& ctx, const ModelConfig& config, const ModelWeights& weights, bool resident_experts)
    : arena_(ctx, "weights", MemoryUse::Device,
             std::max<uint64_t>(bytes_needed(ctx.caps(), config, weights, resident_experts), 4096)) {
  Placer placer(ctx, arena_);
  Placed m = place_model(placer, config, weights, resident_experts);
  token_embd = std::move(m.token_embd);
  output_norm = m.output_norm;
  output = std::move(m.output);
  layers = std::move(m.layers);
  pools = std::move(m.pools);
  rope_table = m.rope_table;
}

}  // namespace megrez
