#include "runtime/engine/text_stream.h"

#include <algorithm>

namespace megrez {

namespace {

// Length of the character a lead byte starts; 0 for continuation or invalid bytes.
size_t sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 0;
}

}  // namespace

std::string Utf8Stream::push(std::string_view bytes) {
  pending_.append(bytes);
  // Only the last character can be incomplete: look for its lead byte among the last 3 bytes.
  size_t cut = pending_.size();
  const size_t lookback = std::min<size_t>(3, pending_.size());
  for (size_t back = 1; back <= lookback; ++back) {
    const size_t i = pending_.size() - back;
    const auto byte = static_cast<unsigned char>(pending_[i]);
    if ((byte & 0xC0) == 0x80) continue;  // continuation: keep looking for the lead
    const size_t need = sequence_length(byte);
    if (need > back) cut = i;  // the character starting at i still misses bytes
    break;
  }
  std::string ready = pending_.substr(0, cut);
  pending_.erase(0, cut);
  return ready;
}

std::string Utf8Stream::flush() {
  std::string rest;
  rest.swap(pending_);
  return rest;
}

StopSequences::StopSequences(std::vector<std::string> stops) {
  for (std::string& stop : stops) {
    if (!stop.empty()) stops_.push_back(std::move(stop));
  }
}

std::string StopSequences::push(std::string_view text) {
  if (matched_) return "";
  if (stops_.empty()) return std::string(text);
  held_.append(text);
  // held_ never contains a whole stop sequence before this push, and is shorter than the
  // longest one plus `text`: searching it all is linear in what was pushed.
  size_t first = std::string::npos;
  for (const std::string& stop : stops_) first = std::min(first, held_.find(stop));
  if (first != std::string::npos) {
    matched_ = true;
    std::string shown = held_.substr(0, first);
    held_.clear();
    return shown;
  }
  // Keep the longest tail that is a proper prefix of a stop sequence.
  size_t keep = 0;
  for (const std::string& stop : stops_) {
    for (size_t n = std::min(held_.size(), stop.size() - 1); n > keep; --n) {
      if (std::string_view(held_).substr(held_.size() - n) == std::string_view(stop).substr(0, n)) {
        keep = n;
        break;
      }
    }
  }
  std::string shown = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return shown;
}

std::string StopSequences::flush() {
  std::string rest;
  if (!matched_) rest.swap(held_);
  return rest;
}

}  // namespace megrez
