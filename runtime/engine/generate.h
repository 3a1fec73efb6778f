#pragma once
// Generation loops on an Engine, shared by every front end (CLI, GUI, Android): sampling or
// GPU-greedy token by token with stop ids, and a multi-turn chat that keeps earlier turns in
// the KV cache and feeds only each new turn.
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "loader/chat/chat.h"
#include "runtime/engine/engine.h"
#include "runtime/engine/sampler.h"

namespace megrez {

struct GenerateOptions {
  SamplerOptions sampler;
  uint32_t max_tokens = 64;
  std::vector<int32_t> stop_ids;  // generation ends on one of these (it is returned, not fed)
  // Called with the logits of every generated token that is fed back (for --dump-logits).
  // Setting it turns off GPU greedy, which never reads logits back.
  std::function<void(std::span<const float>)> on_logits;
  // Called with every generated token that is not a stop id, as soon as it is chosen.
  std::function<void(int32_t)> on_token;
};

// Generates after `logits` (the last row of what the engine was fed) until a stop id,
// max_tokens, or a full context. `history` (the tokens so far, for the repetition penalty)
// gains the generated tokens. Every generated token but the last has been fed to the engine.
std::vector<int32_t> generate(Engine& engine, std::vector<float> logits, const GenerateOptions& options,
                              std::vector<int32_t>& history);

// Ids that end a plain (non-chat) generation: the model's eos ids.
std::vector<int32_t> default_stop_ids(const Engine& engine);

class ChatSession {
 public:
  // Needs a tokenizer (megrez::Error otherwise); formats with its chat template.
  explicit ChatSession(Engine& engine);

  // Adds the user's turn, generates the assistant's reply (at most max_tokens), streams its
  // text through on_text in whole UTF-8 characters, and returns the reply text. When the
  // conversation no longer fits the context it starts over with this turn (restarted()).
  std::string reply(const std::string& user, const SamplerOptions& sampler, uint32_t max_tokens,
                    const std::function<void(std::string_view)>& on_text = {});

  const std::vector<ChatMessage>& messages() const { return messages_; }
  const std::vector<int32_t>& tokens() const { return history_; }  // what the KV cache holds, in order
  bool restarted() const { return restarted_; }
  void clear();  // a new conversation (the engine is reset too)

 private:
  Engine& engine_;
  ChatFormat format_;
  std::vector<ChatMessage> messages_;
  std::vector<int32_t> history_;  // == the engine's cache rows 0 .. position()-1
  bool restarted_ = false;
};

}  // namespace megrez
