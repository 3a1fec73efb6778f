#include "apps/megrez-chat/export.h"

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

namespace megrez::chat {

namespace {

// The JSON of a stored field, or null when it is not JSON (the database is the user's file).
nlohmann::json parse_or_null(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  return j.is_discarded() ? nlohmann::json() : j;
}

}  // namespace

std::string conversation_markdown(const Conversation& c, const std::string& system_prompt) {
  std::string md = "# " + (c.title.empty() ? std::string("Conversation") : c.title) + "\n\n";
  if (!system_prompt.empty()) md += "**System:** " + system_prompt + "\n\n";
  for (const StoredMessage& m : c.messages) {
    md += m.role == "user" ? "## You\n\n" : "## Assistant\n\n";
    md += m.content + "\n\n";
  }
  return md;
}

std::string conversation_json(const Conversation& c, const std::string& system_prompt) {
  nlohmann::json messages = nlohmann::json::array();
  if (!system_prompt.empty()) messages.push_back({{"role", "system"}, {"content", system_prompt}});
  for (const StoredMessage& m : c.messages) {
    nlohmann::json j = {{"role", m.role}, {"content", m.content}};
    nlohmann::json stats = parse_or_null(m.stats);
    if (stats.is_object() && !stats.empty()) j["stats"] = stats;
    messages.push_back(j);
  }
  nlohmann::json out = {{"title", c.title}, {"settings", parse_or_null(c.settings)}, {"messages", messages}};
  // Invalid UTF-8 in a message (it came from the user or the model) is replaced, not thrown on.
  return out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string write_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".part";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return "cannot write " + tmp + ": " + std::strerror(errno);
    out.write(text.data(), std::streamsize(text.size()));
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      return "cannot write " + tmp + ": " + std::strerror(errno);
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    return "cannot write " + path + ": " + ec.message();
  }
  return "";
}

std::string file_stem(const std::string& title) {
  std::string stem;
  bool gap = false;
  for (size_t i = 0; i < title.size() && stem.size() < 60;) {
    const auto c = static_cast<unsigned char>(title[i]);
    // A whole UTF-8 character at a time: letters of any script are kept.
    const size_t len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    const bool keep = c >= 0xC0 ? i + len <= title.size() : (std::isalnum(c) || c == '-' || c == '_');
    if (keep) {
      if (gap && !stem.empty()) stem += '-';
      stem.append(title, i, len);
      gap = false;
    } else {
      gap = true;
    }
    i += keep ? len : 1;
  }
  return stem.empty() ? "conversation" : stem;
}

}  // namespace megrez::chat
