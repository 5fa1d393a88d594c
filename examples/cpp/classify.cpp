// Nodule probability of CT crops with the exported TorchScript classifier, from C++ (LibTorch).
//
//   classify MODEL.ts CROPS.f32 [MANIFEST.json]
//
// MODEL.ts     the classifier exported by `python main.py export OUT --format torchscript`
//              (OUT/classifier.ts); the malignancy model (OUT/malignancy.ts) works the same way.
// CROPS.f32    raw little-endian float32 HU, N x 32 x 48 x 48 (index, row, col), N >= 1,
//              cut as the pipeline cuts them (engine.crops.gather_crops).
// MANIFEST.json  the export's manifest.json: the HU clipping is read from the model's
//              "interface" entry ("hu_clip"); without it the pipeline's [-1000, 1000] is used.
//
// Prints one p_nodule per crop, one per line (column 1 of the model's "probabilities" output).
// Exit status: 0 on success, 1 on bad input, 2 on bad usage.

#include <torch/script.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

constexpr int64_t kDepth = 32;
constexpr int64_t kRows = 48;
constexpr int64_t kCols = 48;
constexpr int64_t kCropValues = kDepth * kRows * kCols;

std::string read_file(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  if (!stream) {
    throw std::runtime_error(path + ": cannot open the file");
  }
  std::ostringstream buffer;
  buffer << stream.rdbuf();
  return buffer.str();
}

// The two numbers of `"hu_clip": [lo, hi]` in the manifest entry of `kind` (under "models").
std::pair<float, float> manifest_hu_clip(const std::string& manifest_path, const std::string& kind) {
  const std::string text = read_file(manifest_path);
  const size_t models = text.find("\"models\"");
  const size_t entry = models == std::string::npos ? models : text.find("\"" + kind + "\"", models);
  const size_t key = entry == std::string::npos ? entry : text.find("\"hu_clip\"", entry);
  const size_t open = key == std::string::npos ? key : text.find('[', key);
  if (open == std::string::npos) {
    throw std::runtime_error(manifest_path + ": no \"hu_clip\" for the " + kind + " model; is it an export's manifest.json?");
  }
  const char* start = text.c_str() + open + 1;
  char* end = nullptr;
  const double lo = std::strtod(start, &end);
  if (end == start) {
    throw std::runtime_error(manifest_path + ": \"hu_clip\" does not start with a number");
  }
  while (*end == ' ' || *end == ',' || *end == '\n' || *end == '\r' || *end == '\t') {
    ++end;
  }
  const char* second = end;
  const double hi = std::strtod(second, &end);
  if (end == second || !(lo < hi)) {
    throw std::runtime_error(manifest_path + ": \"hu_clip\" is not [low, high] with low < high");
  }
  return {static_cast<float>(lo), static_cast<float>(hi)};
}

bool host_is_little_endian() {
  const uint16_t one = 1;
  unsigned char first = 0;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

// The crops as a float32 tensor (N, 1, 32, 48, 48), clipped to [lo, hi].
torch::Tensor read_crops(const std::string& path, float lo, float hi) {
  std::string bytes = read_file(path);
  const size_t crop_bytes = static_cast<size_t>(kCropValues) * sizeof(float);
  if (bytes.empty() || bytes.size() % crop_bytes != 0) {
    throw std::runtime_error(path + ": " + std::to_string(bytes.size()) + " bytes is not a whole number of 32x48x48 " +
                             "float32 crops (" + std::to_string(crop_bytes) + " bytes each)");
  }
  if (!host_is_little_endian()) {
    for (size_t i = 0; i < bytes.size(); i += sizeof(float)) {
      std::swap(bytes[i], bytes[i + 3]);
      std::swap(bytes[i + 1], bytes[i + 2]);
    }
  }
  const int64_t count = static_cast<int64_t>(bytes.size() / crop_bytes);
  torch::Tensor crops = torch::empty({count, 1, kDepth, kRows, kCols}, torch::kFloat32);
  std::memcpy(crops.data_ptr<float>(), bytes.data(), bytes.size());
  if (!torch::isfinite(crops).all().item<bool>()) {
    throw std::runtime_error(path + ": the crops hold NaN or infinite values");
  }
  return crops.clamp_(lo, hi);
}

// Column 1 of the "probabilities" output (the second output of the traced classifier).
torch::Tensor positive_probability(const torch::IValue& output, int64_t count) {
  torch::Tensor probabilities;
  if (output.isTuple()) {
    const auto& elements = output.toTupleRef().elements();
    if (elements.size() < 2) {
      throw std::runtime_error("the model returned a tuple of " + std::to_string(elements.size()) +
                               " values; a classifier export returns (logits, probabilities)");
    }
    probabilities = elements[1].toTensor();
  } else {
    probabilities = output.toTensor();
  }
  if (probabilities.dim() != 2 || probabilities.size(0) != count || probabilities.size(1) != 2) {
    throw std::runtime_error("the model's probabilities have an unexpected shape; is MODEL.ts a classifier export?");
  }
  return probabilities.select(1, 1).contiguous();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) {
    std::cerr << "usage: " << argv[0] << " MODEL.ts CROPS.f32 [MANIFEST.json]\n"
              << "  prints p_nodule of each 32x48x48 little-endian float32 HU crop, one per line\n";
    return 2;
  }
  try {
    float lo = -1000.0F;
    float hi = 1000.0F;
    if (argc == 4) {
      std::tie(lo, hi) = manifest_hu_clip(argv[3], "classifier");
    }
    torch::Tensor crops = read_crops(argv[2], lo, hi);
    torch::jit::script::Module model;
    try {
      model = torch::jit::load(argv[1], torch::kCPU);
    } catch (const c10::Error& error) {
      throw std::runtime_error(std::string(argv[1]) + ": not a TorchScript file LibTorch can load: " + error.what_without_backtrace());
    }
    model.eval();
    torch::InferenceMode inference;
    const torch::Tensor p = positive_probability(model.forward({crops}), crops.size(0)).to(torch::kFloat64);
    const double* values = p.data_ptr<double>();
    for (int64_t i = 0; i < p.size(0); ++i) {
      std::printf("%.9g\n", values[i]);
    }
    std::cerr << p.size(0) << " crop(s), HU clipped to [" << lo << ", " << hi << "]\n";
    return 0;
  } catch (const std::exception& error) {
    std::cerr << "error: " << error.what() << "\n";
    return 1;
  }
}
