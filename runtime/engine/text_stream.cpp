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

}  // namespace megrez
