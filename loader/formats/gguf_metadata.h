#pragma once
// ModelConfig and TokenizerData <-> GGUF metadata. Key names follow llama.cpp where it has
// one (general.*, megrez-moe.* with llama.cpp's LLM_KV names, tokenizer.ggml.*); the few
// things llama.cpp has no key for use our own names, marked "(ours)":
//
//   general.architecture                     string  "megrez-moe"
//   general.name                             string
//   general.file_type                        u32     llama.cpp's LLAMA_FTYPE of the matrices
//   general.quantization_version             u32     2, quantized files only
//   megrez-moe.context_length                u32     max_position_embeddings
//   megrez-moe.embedding_length              u32     hidden_size
//   megrez-moe.block_count                   u32     num_hidden_layers
//   megrez-moe.feed_forward_length           u32     intermediate_size (dense layers)
//   megrez-moe.expert_feed_forward_length    u32     moe_intermediate_size
//   megrez-moe.attention.head_count          u32     num_attention_heads
//   megrez-moe.attention.head_count_kv       u32     num_key_value_heads
//   megrez-moe.attention.key_length          u32     head_dim
//   megrez-moe.attention.value_length        u32     head_dim
//   megrez-moe.rope.dimension_count          u32     head_dim (RoPE rotates the whole head)
//   megrez-moe.rope.freq_base                f32|f64 rope_theta
//   megrez-moe.attention.layer_norm_rms_epsilon f32|f64 rms_norm_eps
//   megrez-moe.expert_count                  u32     n_routed_experts
//   megrez-moe.expert_used_count             u32     num_experts_per_tok
//   megrez-moe.expert_shared_count           u32     n_shared_experts
//   megrez-moe.expert_group_count            u32     n_group
//   megrez-moe.expert_group_used_count       u32     topk_group
//   megrez-moe.expert_weights_norm           bool    norm_topk_prob
//   megrez-moe.expert_weights_scale          f32|f64 routed_scaling_factor
//   megrez-moe.expert_gating_func            u32     2 = sigmoid (llama.cpp's enum; 1 = softmax)
//   megrez-moe.leading_dense_block_count     u32     first_k_dense_replace
//   megrez-moe.vocab_size                    u32     vocab_size
//   megrez-moe.expert_shared_frequency       u32     experts_shared_frequency (ours)
//   megrez-moe.tie_word_embeddings           bool    (ours; when absent: tied iff no output.weight)
//   megrez-moe.pre_gate                      bool    (ours; when absent: true)
//   megrez-moe.bos_token_id, eos_token_id    u32     config.json's ids (ours; absent = none)
//
// Floats are written as f32 (llama.cpp's type) when that holds the value exactly, else as
// f64, so reading a file back always gives the identical ModelConfig; both are accepted.
// Integers are written as u32 and any integer type is accepted on reading.
//
// Tokenizer: tokenizer.ggml.model (string), .pre (string), .tokens (string[]), .scores
// (f32[]), .token_type (i32[]), .merges (string[]), .bos_token_id / .eos_token_id /
// .unknown_token_id / .padding_token_id (u32, absent = none), tokenizer.chat_template
// (string), and (ours) tokenizer.ggml.spm_model (u8[]): the serialized SentencePiece
// ModelProto, so an SPM tokenizer is rebuilt bit-exactly. Empty fields are not written.
#include <optional>
#include <string>

#include "loader/formats/config.h"
#include "loader/formats/gguf.h"
#include "loader/tokenizer/tokenizer.h"

namespace megrez {

inline constexpr const char* kGgufArchitecture = "megrez-moe";

void add_config_metadata(GgufWriter& w, const ModelConfig& cfg);
// Reads and validates the config; `g` is also consulted for the output tensor when the tie
// flag is absent. Throws megrez::Error naming `source` and the key.
ModelConfig config_from_gguf(const GgufContents& g, const std::string& source);

void add_tokenizer_metadata(GgufWriter& w, const TokenizerData& tok);
// nullopt when the file has no tokenizer.ggml.model key.
std::optional<TokenizerData> tokenizer_data_from_gguf(const GgufContents& g, const std::string& source);

}  // namespace megrez
