#pragma once
// A conversation as a file a person or a program can read: Markdown (a heading, the system
// prompt, then each turn under its role) or JSON (the settings and the messages, in the shape
// of an OpenAI chat request's "messages", with each reply's figures).
#include <string>

#include "apps/megrez-chat/chat_store.h"

namespace megrez::chat {

std::string conversation_markdown(const Conversation& conversation, const std::string& system_prompt);
std::string conversation_json(const Conversation& conversation, const std::string& system_prompt);

// Writes `text` to `path` through a temporary file and a rename, so a failed write never
// leaves half a file. Returns "" or the reason it failed.
std::string write_file_atomically(const std::string& path, const std::string& text);

// A file name from a title: letters, digits, '-' and '_' kept (any UTF-8 letter too), other
// runs become one '-'; "conversation" when nothing is left.
std::string file_stem(const std::string& title);

}  // namespace megrez::chat
