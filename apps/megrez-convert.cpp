// megrez-convert: a Hugging Face Megrez2 checkpoint -> one GGUF file.
//   megrez-convert HF_DIR OUT.gguf [--type f32|f16|bf16|q8_0|q4_0]   (default f16)
// Matrices are stored in the chosen type; router weights, norms and router biases stay f32;
// a matrix whose rows are not a multiple of 32 falls back to f16 when a quantized type is
// asked for. The tokenizer is embedded. Converting twice gives identical bytes.
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>

#include "loader/error.h"
#include "loader/formats/gguf_export.h"
#include "loader/formats/model.h"

namespace {

constexpr const char* kUsage =
    "usage: megrez-convert HF_DIR OUT.gguf [--type f32|f16|bf16|q8_0|q4_0]\n"
    "  Converts a Hugging Face Megrez2 checkpoint directory into a GGUF file (default type f16).\n";

struct Args {
  std::string input, output;
  megrez::DType type = megrez::DType::F16;
};

Args parse_args(int argc, char** argv) {
  Args a;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--type") {
      if (i + 1 >= argc) throw megrez::Error("--type needs a value (f32, f16, bf16, q8_0 or q4_0)");
      const std::string name = argv[++i];
      if (!megrez::dtype_from_name(name, a.type))
        throw megrez::Error("unknown --type " + name + " (use f32, f16, bf16, q8_0 or q4_0)");
    } else if (arg.rfind("--", 0) == 0) {
      throw megrez::Error("unknown option " + arg);
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 2) throw megrez::Error("expected HF_DIR and OUT.gguf");
  a.input = positional[0];
  a.output = positional[1];
  return a;
}

// A bar redrawn in place on a terminal; otherwise a plain line every tenth of the way.
void show_progress(bool tty, size_t index, size_t count, const std::string& tensor) {
  const size_t done = index + 1;
  if (tty) {
    constexpr int kWidth = 30;
    const int filled = int(done * kWidth / count);
    std::fprintf(stderr, "\r[%s%s] %zu/%zu %-40.40s", std::string(size_t(filled), '#').c_str(),
                 std::string(size_t(kWidth - filled), '.').c_str(), done, count, tensor.c_str());
    if (done == count) std::fputc('\n', stderr);
  } else if (done == count || done * 10 / count != index * 10 / count) {
    std::fprintf(stderr, "converting: %zu/%zu tensors (%s)\n", done, count, tensor.c_str());
  }
  std::fflush(stderr);
}

std::string human_bytes(uint64_t n) {
  char buf[32];
  if (n >= (uint64_t(1) << 30))
    std::snprintf(buf, sizeof buf, "%.2f GiB", double(n) / double(uint64_t(1) << 30));
  else
    std::snprintf(buf, sizeof buf, "%.2f MiB", double(n) / double(1 << 20));
  return buf;
}

int run(const Args& args) {
  const auto model = megrez::Model::open(args.input);
  megrez::GgufExportOptions options;
  options.matrix_type = args.type;
  options.name = std::filesystem::path(args.input).lexically_normal().filename().string();
  if (options.name.empty()) options.name = std::filesystem::path(args.input).parent_path().filename().string();
  const bool tty = isatty(STDERR_FILENO);
  options.progress = [tty](size_t i, size_t n, const std::string& t) { show_progress(tty, i, n, t); };
  const megrez::TokenizerData* tok = model->tokenizer() ? &model->tokenizer()->data() : nullptr;
  if (!tok) std::fprintf(stderr, "note: %s has no tokenizer; the GGUF will have none\n", args.input.c_str());

  const auto summary = megrez::export_gguf(model->config(), model->weights(), tok, args.output, options);
  for (const std::string& note : summary.notes) std::fprintf(stderr, "note: %s\n", note.c_str());
  std::fprintf(stderr, "wrote %s: %zu tensors, %llu weights, %s of tensor data (%s file), %.3f bits per weight (%s)\n",
               args.output.c_str(), summary.tensors, static_cast<unsigned long long>(summary.weights),
               human_bytes(summary.tensor_bytes).c_str(), human_bytes(summary.file_bytes).c_str(),
               summary.bits_per_weight(), megrez::dtype_name(args.type));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
  try {
    return run(parse_args(argc, argv));
  } catch (const megrez::Error& e) {
    std::fprintf(stderr, "megrez-convert: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "megrez-convert: unexpected failure: %s\n", e.what());
  }
  return 1;
}
