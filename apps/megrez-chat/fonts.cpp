#include "apps/megrez-chat/fonts.h"

#include <cmath>
#include <filesystem>

namespace megrez::chat {

namespace {

// Debian's fonts, in order of preference (fonts-dejavu-core, fonts-wqy-microhei, fonts-noto-cjk).
const char* const kLatinFonts[] = {
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
};
const char* const kCjkFonts[] = {
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
};

std::string first_existing(const char* const* paths, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    std::error_code ec;
    if (std::filesystem::exists(paths[i], ec)) return paths[i];
  }
  return "";
}

// The next code point of UTF-8 `s` at `i` (advancing i); U+FFFD for a malformed byte.
uint32_t next_code_point(std::string_view s, size_t& i) {
  const auto c = static_cast<unsigned char>(s[i]);
  const size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (len == 0 || i + len > s.size()) {
    ++i;
    return 0xFFFD;
  }
  uint32_t cp = len == 1 ? c : c & (0x7F >> len);
  for (size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) {
      ++i;
      return 0xFFFD;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  i += len;
  return cp;
}

}  // namespace

void FontSet::build(float scale) {
  scale_ = scale > 0 ? scale : 1;
  for (ImWchar c : pending_) {
    extra_.insert(c);
    tried_.insert(c);
  }
  pending_.clear();

  ImGuiIO& io = ImGui::GetIO();
  io.Fonts->Clear();
  const float size = std::round(16.0f * scale_);
  ImFontGlyphRangesBuilder builder;
  builder.AddRanges(io.Fonts->GetGlyphRangesDefault());
  builder.AddRanges(io.Fonts->GetGlyphRangesChineseSimplifiedCommon());  // Latin-1, CJK punctuation, kana, 2,500 hanzi
  for (ImWchar c : extra_) builder.AddChar(c);
  ranges_.clear();
  builder.BuildRanges(&ranges_);

  latin_file_ = first_existing(kLatinFonts, std::size(kLatinFonts));
  cjk_file_ = first_existing(kCjkFonts, std::size(kCjkFonts));
  ImFontConfig config;
  config.OversampleH = 1;  // thousands of glyphs: one sample each keeps the atlas small
  config.OversampleV = 1;
  config.PixelSnapH = true;
  // The Latin font draws what it has (the first font wins in a merge), the CJK font the rest.
  static const ImWchar latin_ranges[] = {0x0020, 0x024F, 0x2000, 0x206F, 0x2190, 0x21FF, 0x2500, 0x25FF, 0};
  ImFont* font = nullptr;
  if (!latin_file_.empty()) font = io.Fonts->AddFontFromFileTTF(latin_file_.c_str(), size, &config, latin_ranges);
  if (!font) {
    latin_file_.clear();
    ImFontConfig builtin;
    builtin.SizePixels = std::round(13.0f * scale_);
    font = io.Fonts->AddFontDefault(&builtin);
  }
  if (!cjk_file_.empty()) {
    ImFontConfig merge = config;
    merge.MergeMode = true;
    if (!io.Fonts->AddFontFromFileTTF(cjk_file_.c_str(), size, &merge, ranges_.Data)) cjk_file_.clear();
  }
  io.Fonts->Build();
  io.FontDefault = font;
}

bool FontSet::notice(std::string_view text) {
  ImFont* font = ImGui::GetIO().FontDefault;
  if (!font) return false;
  bool added = false;
  for (size_t i = 0; i < text.size();) {
    const uint32_t cp = next_code_point(text, i);
    if (cp < 0x80 || cp > 0xFFFF) continue;  // ASCII is always there; ImWchar is 16-bit here
    const auto c = ImWchar(cp);
    if (tried_.count(c) || pending_.count(c) || font->FindGlyphNoFallback(c)) continue;
    pending_.insert(c);
    added = true;
  }
  return added;
}

}  // namespace megrez::chat
