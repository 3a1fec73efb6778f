// config.json parsing (loader/formats/config.cpp): every key, documented defaults with their log
// lines, wrong JSON types and absurd or unsupported values.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "loader/formats/hf_config.h"
#include "loader/synthetic/synthetic.h"
#include "test_formats_util.h"

using namespace megrez;
using formats_test::error_of;
using nlohmann::json;

namespace {

json base_json() { return json::parse(hf_config_json(synthetic_config())); }

ModelConfig parse(const json& j, std::ostream* log = nullptr, std::optional<int64_t> k_rows = std::nullopt) {
  return parse_hf_config(j.dump(), "config.json", k_rows, log);
}

std::string rejection(json j) {
  return error_of([&] { parse(j); });
}

}  // namespace

TEST_CASE("config.json: every key is read") {
  json j = base_json();
  j["rope_theta"] = 5e6;
  j["rms_norm_eps"] = 1e-5;
  j["norm_topk_prob"] = false;
  j["tie_word_embeddings"] = true;
  j["bos_token_id"] = 7;
  std::ostringstream log;
  const ModelConfig c = parse(j, &log);
  CHECK(log.str().empty());  // nothing defaulted
  CHECK(c.hidden_size == 64);
  CHECK(c.num_hidden_layers == 5);
  CHECK(c.num_attention_heads == 4);
  CHECK(c.num_key_value_heads == 2);
  CHECK(c.head_dim == 16);
  CHECK(c.intermediate_size == 96);
  CHECK(c.moe_intermediate_size == 32);
  CHECK(c.n_routed_experts == 8);
  CHECK(c.num_experts_per_tok == 2);
  CHECK(c.n_shared_experts == 1);
  CHECK(c.experts_shared_frequency == 2);
  CHECK(c.first_k_dense_replace == 1);
  CHECK(c.n_group == 2);
  CHECK(c.topk_group == 1);
  CHECK(c.vocab_size == 288);
  CHECK(c.max_position_embeddings == 128);
  CHECK(c.rope_theta == 5e6);
  CHECK(c.rms_norm_eps == 1e-5);
  CHECK(c.routed_scaling_factor == 1.5);
  CHECK(c.norm_topk_prob == false);
  CHECK(c.tie_word_embeddings == true);
  CHECK(c.bos_token_id == 7);
  CHECK(c.eos_token_id == synthetic_config().eos_token_id);
  formats_test::check_same_config(parse(base_json()), synthetic_config());
}

TEST_CASE("config.json: absent keys take the documented defaults, each logged once") {
  json j = base_json();
  for (const char* key : {"n_group", "topk_group", "norm_topk_prob", "routed_scaling_factor", "rms_norm_eps",
                          "first_k_dense_replace", "experts_shared_frequency", "head_dim", "num_key_value_heads"})
    j.erase(key);
  j["num_experts_per_tok"] = 2;
  std::ostringstream log;
  const ModelConfig c = parse(j, &log, /*k_proj_rows=*/32);
  CHECK(c.n_group == 1);
  CHECK(c.topk_group == 1);
  CHECK(c.norm_topk_prob == true);
  CHECK(c.routed_scaling_factor == 1.0);
  CHECK(c.rms_norm_eps == 1e-6);
  CHECK(c.first_k_dense_replace == 1);
  CHECK(c.experts_shared_frequency == 1);
  CHECK(c.head_dim == 16);            // 64 / 4
  CHECK(c.num_key_value_heads == 2);  // k_proj rows 32 / head_dim 16
  const std::string text = log.str();
  CHECK(text.find("config.json: n_group absent, using 1\n") != std::string::npos);
  CHECK(text.find("config.json: topk_group absent, using 1\n") != std::string::npos);
  CHECK(text.find("config.json: norm_topk_prob absent, using true\n") != std::string::npos);
  CHECK(text.find("config.json: routed_scaling_factor absent, using 1\n") != std::string::npos);
  CHECK(text.find("config.json: rms_norm_eps absent, using 1e-06\n") != std::string::npos);
  CHECK(text.find("config.json: first_k_dense_replace absent, using 1\n") != std::string::npos);
  CHECK(text.find("config.json: experts_shared_frequency absent, using 1\n") != std::string::npos);
  CHECK(text.find("config.json: head_dim absent, using 16") != std::string::npos);
  CHECK(text.find("config.json: num_key_value_heads absent, using 2") != std::string::npos);
  size_t lines = 0;
  for (char ch : text) lines += ch == '\n';
  CHECK(lines == 9);  // once each
}

TEST_CASE("config.json: null counts as absent") {
  json j = base_json();
  j["n_group"] = nullptr;
  j["topk_group"] = nullptr;
  j["num_experts_per_tok"] = 2;
  std::ostringstream log;
  const ModelConfig c = parse(j, &log);
  CHECK(c.n_group == 1);
  CHECK(log.str().find("n_group absent") != std::string::npos);
}

TEST_CASE("config.json: num_key_value_heads needs k_proj when absent") {
  json j = base_json();
  j.erase("num_key_value_heads");
  CHECK(rejection(j).find("num_key_value_heads is absent") != std::string::npos);
  CHECK(error_of([&] { parse(j, nullptr, 40); }).find("not a positive multiple of head_dim") != std::string::npos);
  CHECK(parse(j, nullptr, 16).num_key_value_heads == 1);
  CHECK(parse(j, nullptr, 64).num_key_value_heads == 4);
  CHECK(error_of([&] { parse(j, nullptr, 48); }).find("not a multiple of num_key_value_heads") != std::string::npos);
}

TEST_CASE("config.json: wrong JSON types are rejected with the key named") {
  struct Case {
    const char* key;
    json value;
    const char* expect;
  };
  const Case cases[] = {
      {"hidden_size", "64", "key hidden_size must be an integer, got string"},
      {"hidden_size", 64.5, "key hidden_size must be an integer, got number"},
      {"vocab_size", true, "key vocab_size must be an integer"},
      {"n_group", json::array({1}), "key n_group must be an integer"},
      {"norm_topk_prob", 1, "key norm_topk_prob must be true or false"},
      {"rope_theta", "1e4", "key rope_theta must be a number"},
      {"scoring_func", 1, "key scoring_func must be a string"},
      {"architectures", "MegrezMoeForCausalLM", "architectures must be a list of strings"},
      {"attention_bias", "no", "attention_bias must be true or false"},
      {"hidden_size", 18446744073709551615ull, "fits in 64 bits"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.key);
    json j = base_json();
    j[c.key] = c.value;
    const std::string msg = rejection(j);
    CHECK(msg.find(c.expect) != std::string::npos);
    CHECK(msg.rfind("config.json", 0) == 0);
  }
}

TEST_CASE("config.json: absurd and unsupported values are rejected") {
  struct Case {
    std::vector<std::pair<const char*, json>> changes;
    const char* expect;
  };
  const Case cases[] = {
      {{{"hidden_size", -64}}, "hidden_size = -64 is out of range"},
      {{{"hidden_size", int64_t(1) << 40}}, "hidden_size"},
      {{{"num_attention_heads", 0}}, "num_attention_heads = 0"},
      {{{"num_key_value_heads", 3}}, "not a multiple of num_key_value_heads = 3"},
      {{{"num_key_value_heads", 8}}, "num_key_value_heads = 8 is out of range"},
      {{{"num_experts_per_tok", 9}}, "num_experts_per_tok = 9 is out of range [1, 8]"},
      {{{"num_experts_per_tok", 0}}, "num_experts_per_tok = 0"},
      {{{"n_group", 3}}, "n_routed_experts = 8 is not a multiple of n_group = 3"},
      {{{"topk_group", 3}}, "topk_group = 3 is out of range [1, 2]"},
      {{{"n_group", 8}, {"topk_group", 2}}, "leaves 1 expert per group"},
      {{{"n_group", 4}, {"topk_group", 1}, {"num_experts_per_tok", 3}}, "num_experts_per_tok = 3 exceeds the 2"},
      {{{"first_k_dense_replace", 0}}, "first_k_dense_replace = 0"},
      {{{"first_k_dense_replace", 5}}, "first_k_dense_replace = 5"},
      {{{"experts_shared_frequency", 0}}, "experts_shared_frequency = 0"},
      {{{"moe_layer_freq", 2}}, "moe_layer_freq = 2 is not supported"},
      {{{"scoring_func", "softmax"}}, "scoring_func \"softmax\" is not supported"},
      {{{"topk_method", "greedy"}}, "topk_method \"greedy\" is not supported"},
      {{{"hidden_act", "gelu"}}, "hidden_act \"gelu\" is not supported"},
      {{{"rms_norm_eps", 0}}, "rms_norm_eps must be a positive finite number"},
      {{{"rms_norm_eps", -1e-6}}, "rms_norm_eps must be a positive finite number"},
      {{{"rope_theta", 0.0}}, "rope_theta must be a positive finite number"},
      {{{"routed_scaling_factor", -1.0}}, "routed_scaling_factor must be a positive finite number"},
      {{{"rope_scaling", {{"type", "linear"}, {"factor", 2.0}}}}, "rope_scaling"},
      {{{"attention_bias", true}}, "attention_bias = true is not supported"},
      {{{"architectures", {"LlamaForCausalLM"}}}, "does not name MegrezMoeForCausalLM"},
      {{{"eos_token_id", 288}}, "eos_token_id = 288 is out of range"},
      {{{"n_shared_experts", 0}}, "n_shared_experts = 0"},
      {{{"intermediate_size", 0}}, "intermediate_size = 0"},
      {{{"max_position_embeddings", -1}}, "max_position_embeddings = -1"},
      {{{"vocab_size", 0}}, "vocab_size = 0"},
      {{{"num_hidden_layers", 1}}, "num_hidden_layers = 1"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.expect);
    json j = base_json();
    for (const auto& [key, value] : c.changes) j[key] = value;
    const std::string msg = rejection(j);
    CHECK(msg.find(c.expect) != std::string::npos);
    CHECK(msg.rfind("config.json: ", 0) == 0);
  }
}

TEST_CASE("config.json: malformed documents") {
  CHECK(error_of([] {
          parse_hf_config("{\"hidden_size\": ", "cfg.json", {}, nullptr);
        }).find("cfg.json: not valid JSON") != std::string::npos);
  CHECK(error_of([] { parse_hf_config("[1, 2]", "cfg.json", {}, nullptr); }).find("JSON object") != std::string::npos);
  CHECK(error_of([] {
          parse_hf_config("{\"hidden_size\": 1, \"hidden_size\": 2}", "cfg.json", {}, nullptr);
        }).find("\"hidden_size\" appears twice") != std::string::npos);
  json j = base_json();
  j.erase("vocab_size");
  CHECK(rejection(j).find("required key vocab_size is missing") != std::string::npos);
  j = base_json();
  j.erase("head_dim");
  j["hidden_size"] = 66;
  CHECK(rejection(j).find("not divisible by num_attention_heads") != std::string::npos);
}

TEST_CASE("eos_token_id given as a list uses its first entry") {
  json j = base_json();
  j["eos_token_id"] = {5, 6};
  CHECK(parse(j).eos_token_id == 5);
}

TEST_CASE("pools: count, membership and owners") {
  ModelConfig c = synthetic_config();  // 5 layers, 1 dense, pools of 2
  CHECK(c.n_pools() == 2);
  CHECK(c.pool_of(1) == 0);
  CHECK(c.pool_of(2) == 0);
  CHECK(c.pool_of(3) == 1);
  CHECK(c.pool_of(4) == 1);
  CHECK(c.owner_of_pool(1) == 3);
  c.num_hidden_layers = 31;
  c.experts_shared_frequency = 3;
  CHECK(c.n_pools() == 10);  // Megrez2: layers 1..30 in pools of 3
  CHECK(c.pool_of(30) == 9);
  CHECK(c.owner_of_pool(9) == 28);
  c.num_hidden_layers = 6;  // 5 MoE layers in pools of 3: the last pool is partial
  CHECK(c.n_pools() == 2);
  c.first_k_dense_replace = 2;
  c.experts_shared_frequency = 1;
  CHECK(c.n_pools() == 4);
  CHECK(c.pool_of(2) == 0);
}
