#pragma once
// Hugging Face config.json -> ModelConfig. Every key of the spec's hyper-parameter table is
// read; keys the spec gives a DeepSeek-V3 default for may be absent (or null), and each one
// defaulted is reported with one line on `log` ("config.json: n_group absent, using 1").
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>

#include "loader/formats/config.h"

namespace megrez {

// `source` names the file in messages. `k_proj_rows` is the first dimension of
// model.layers.0.self_attn.k_proj.weight: num_key_value_heads is derived from it when the
// key is absent (without it an absent key is an error). `log` may be null (silent).
// Throws megrez::Error for malformed JSON, wrong JSON types, unsupported choices
// (scoring_func != "sigmoid", moe_layer_freq != 1, ...) and absurd values (validate()).
ModelConfig parse_hf_config(std::string_view json_text, const std::string& source, std::optional<int64_t> k_proj_rows,
                            std::ostream* log);

}  // namespace megrez
