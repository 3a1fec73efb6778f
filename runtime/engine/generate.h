#pragma once
// Generation loops on an Engine, shared by every front end (CLI, GUI, Android): sampling or
// GPU-greedy token by token with stop ids, and a multi-turn chat that keeps earlier turns in
// the KV cache and feeds only each new turn.
#include <atomic>
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
  // Checked before each further decode: true ends generation.
  std::function<bool()> should_stop;
  // Called before each further decode, after should_stop. A server lets other sequences use
  // the engine here; it must leave this generation's sequence selected again on return.
  std::function<void()> before_decode;
};

// Generates after `logits` (the last row of what the engine was fed) until a stop id,
// max_tokens, or a full context. `history` (the tokens so far, for the repetition penalty)
// gains the generated tokens. Every generated token but the last has been fed to the engine.
std::vector<int32_t> generate(Engine& engine, std::vector<float> logits, const GenerateOptions& options,
                              std::vector<int32_t>& history);

// Ids that end a plain (non-chat) generation: the model's eos ids.
std::vector<int32_t> default_stop_ids(const Engine& engine);

// ---- Text in, text out (the C API, the GUI and the server) -----------------------------------

enum class FinishReason {
  Stop,       // a stop id (end of turn, eos) or a stop sequence
  Length,     // max_tokens reached
  Context,    // the context is full
  Cancelled,  // the cancel flag was set, or on_text returned false
};
const char* finish_reason_name(FinishReason reason);  // "stop", "length", "context", "cancelled"

// Limits on stop sequences, so matching stays linear in the generated text.
inline constexpr size_t kMaxStopSequences = 16;
inline constexpr size_t kMaxStopSequenceBytes = 256;

struct TextOptions {
  SamplerOptions sampler;
  uint32_t max_tokens = 256;
  // The text ends before the first of these (not included); the rest of the token that
  // completes one is not shown either. Non-empty, at most kMaxStopSequences of at most
  // kMaxStopSequenceBytes bytes (megrez::Error otherwise).
  std::vector<std::string> stop;
  const std::atomic<bool>* cancel = nullptr;
  // Streamed text in whole UTF-8 characters, never any part of a stop sequence; returning
  // false stops generation (FinishReason::Cancelled).
  std::function<bool(std::string_view)> on_text;
  // GenerateOptions::before_decode: between two generated tokens (interleaving sequences).
  std::function<void()> between_tokens;
};

struct TextResult {
  std::string text;                 // exactly what on_text received, concatenated
  FinishReason finish = FinishReason::Stop;
  uint32_t prompt_tokens = 0;       // tokens of the prompt (chat: the whole rendered conversation)
  uint32_t prompt_tokens_fed = 0;   // of which prefilled now (the rest were already cached)
  uint32_t completion_tokens = 0;   // generated tokens, a final stop id included
  double time_to_first_token = 0;   // seconds from the call to the first generated token
  double prefill_seconds = 0, decode_seconds = 0;
};

// Plain continuation of `prompt` on the engine's selected sequence. `cached` lists what its
// KV cache holds (updated to what it holds afterwards): the longest common prefix is kept and
// only the rest is prefilled. Stop ids: the model's eos.
TextResult complete_text(Engine& engine, std::vector<int32_t>& cached, std::span<const int32_t> prompt,
                         const TextOptions& options);
// The same with the caller's stop ids (a chat template's end of turn), and `close` fed after
// the reply (that end of turn), so a follow-up request that renders the conversation again
// finds it all in the cache. `cached` then holds the prompt, the shown reply and `close`.
TextResult complete_text(Engine& engine, std::vector<int32_t>& cached, std::span<const int32_t> prompt,
                         const TextOptions& options, const std::vector<int32_t>& stop_ids,
                         std::span<const int32_t> close);

class ChatSession {
 public:
  // Needs a tokenizer (megrez::Error otherwise); formats with its chat template.
  explicit ChatSession(Engine& engine);

  // Adds the user's turn, generates the assistant's reply (at most max_tokens), streams its
  // text through on_text in whole UTF-8 characters, and returns the reply text. When the
  // conversation no longer fits the context it starts over with this turn (restarted()).
  std::string reply(const std::string& user, const SamplerOptions& sampler, uint32_t max_tokens,
                    const std::function<void(std::string_view)>& on_text = {});
  // The same with stop sequences, cancellation and the figures. A reply cut short (stop
  // sequence, cancel) is kept as shown: the KV cache is rewound to hold exactly that text
  // and the end of the turn, so the next turn continues from what the user saw.
  TextResult reply(const std::string& user, const TextOptions& options);

  // The system prompt of the conversation ("" for none). Changing it starts a new one.
  void set_system_prompt(const std::string& text);
  const std::string& system_prompt() const { return system_; }

  const std::vector<ChatMessage>& messages() const { return messages_; }
  const std::vector<int32_t>& tokens() const { return history_; }  // what the KV cache holds, in order
  bool restarted() const { return restarted_; }
  void clear();  // a new conversation (the engine is reset too); the system prompt stays

 private:
  Engine& engine_;
  ChatFormat format_;
  std::vector<ChatMessage> messages_;
  std::vector<int32_t> history_;  // == the engine's cache rows 0 .. position()-1
  std::string system_;
  bool restarted_ = false;
};

}  // namespace megrez
