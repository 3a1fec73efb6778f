#include "runtime/vk/spirv_reflect.h"

#include <algorithm>
#include <map>

#include "loader/error.h"

namespace megrez {

namespace {

// Opcodes, decorations and storage classes from the SPIR-V specification.
enum : uint32_t {
  OpTypeInt = 21, OpTypeFloat = 22, OpTypeVector = 23, OpTypeArray = 28, OpTypeStruct = 30,
  OpTypePointer = 32, OpConstant = 43, OpVariable = 59, OpDecorate = 71, OpMemberDecorate = 72,
};
enum : uint32_t { DecorationArrayStride = 6, DecorationBinding = 33, DecorationDescriptorSet = 34, DecorationOffset = 35 };
enum : uint32_t { StorageUniformConstant = 0, StorageUniform = 2, StoragePushConstant = 9, StorageStorageBuffer = 12 };

struct Module {
  std::map<uint32_t, std::vector<uint32_t>> types;  // result id -> the defining instruction
  std::map<uint32_t, uint32_t> constants;           // id -> 32-bit value
  std::map<uint32_t, uint32_t> binding, set, array_stride;
  std::map<std::pair<uint32_t, uint32_t>, uint32_t> member_offset;
  std::vector<std::pair<uint32_t, uint32_t>> variables;  // (pointer type, id) with storage class below
  std::vector<uint32_t> variable_storage;
};

struct Reflector {
  const Module& m;
  const std::string& name;

  [[noreturn]] void fail(const std::string& what) const { throw Error("shader " + name + ": " + what); }

  const std::vector<uint32_t>& type(uint32_t id) const {
    auto it = m.types.find(id);
    if (it == m.types.end()) fail("SPIR-V refers to undefined type %" + std::to_string(id));
    return it->second;
  }

  // Bytes a value of type `id` occupies in a std430/push-constant block.
  uint64_t size_of(uint32_t id, int depth = 0) const {
    if (depth > 16) fail("SPIR-V types nest too deeply");
    const auto& t = type(id);
    switch (t[0] & 0xffff) {
      case OpTypeInt:
      case OpTypeFloat: return t.at(2) / 8;
      case OpTypeVector: return size_of(t.at(2), depth + 1) * t.at(3);
      case OpTypeArray: {
        auto len = m.constants.find(t.at(3));
        auto stride = m.array_stride.find(id);
        if (len == m.constants.end() || stride == m.array_stride.end()) fail("push-constant array without a constant length and stride");
        return uint64_t{len->second} * stride->second;
      }
      case OpTypeStruct: {
        uint64_t end = 0;
        for (uint32_t member = 0; member + 2 < t.size(); ++member) {
          auto offset = m.member_offset.find({id, member});
          if (offset == m.member_offset.end()) fail("push-constant struct member without an Offset");
          end = std::max(end, offset->second + size_of(t[member + 2], depth + 1));
        }
        return end;
      }
      default: fail("push constants may hold only scalars, vectors, arrays and structs");
    }
  }
};

Module parse(std::span<const uint32_t> words, const std::string& name) {
  if (words.size() < 5 || words[0] != 0x07230203u) throw Error("shader " + name + ": not a SPIR-V module");
  Module m;
  for (size_t at = 5; at < words.size();) {
    const uint32_t count = words[at] >> 16, op = words[at] & 0xffff;
    if (count == 0 || at + count > words.size()) throw Error("shader " + name + ": truncated SPIR-V instruction");
    std::vector<uint32_t> ins(words.begin() + at, words.begin() + at + count);
    if ((op == OpTypeInt || op == OpTypeFloat || op == OpTypeVector || op == OpTypeArray ||
         op == OpTypeStruct || op == OpTypePointer) && count >= 2) {
      m.types[ins[1]] = ins;
    } else if (op == OpConstant && count >= 4) {
      m.constants[ins[2]] = ins[3];
    } else if (op == OpVariable && count >= 4) {
      m.variables.push_back({ins[1], ins[2]});
      m.variable_storage.push_back(ins[3]);
    } else if (op == OpDecorate && count >= 4) {
      if (ins[2] == DecorationBinding) m.binding[ins[1]] = ins[3];
      if (ins[2] == DecorationDescriptorSet) m.set[ins[1]] = ins[3];
      if (ins[2] == DecorationArrayStride) m.array_stride[ins[1]] = ins[3];
    } else if (op == OpMemberDecorate && count >= 5 && ins[3] == DecorationOffset) {
      m.member_offset[{ins[1], ins[2]}] = ins[4];
    }
    at += count;
  }
  return m;
}

}  // namespace

ShaderReflection reflect_spirv(std::span<const uint32_t> words, const std::string& name) {
  const Module m = parse(words, name);
  Reflector r{m, name};
  ShaderReflection out;
  for (size_t i = 0; i < m.variables.size(); ++i) {
    const auto [pointer_type, id] = m.variables[i];
    const uint32_t storage = m.variable_storage[i];
    if (storage == StoragePushConstant) {
      const auto& pointer = r.type(pointer_type);
      out.push_size = static_cast<uint32_t>(r.size_of(pointer.at(3)));
    } else if (storage == StorageStorageBuffer || storage == StorageUniform) {
      // Uniform: a uniform buffer (glslang writes storage buffers as StorageBuffer for Vulkan 1.1+).
      auto set = m.set.find(id);
      auto binding = m.binding.find(id);
      if (set == m.set.end() || binding == m.binding.end()) r.fail("buffer without set/binding");
      if (set->second != 0) r.fail("uses descriptor set " + std::to_string(set->second) + "; the ABI allows set 0 only");
      if (binding->second >= 32) r.fail("binding " + std::to_string(binding->second) + " past 31");
      out.bindings.push_back(binding->second);
      if (storage == StorageUniform) out.uniform_bindings |= 1u << binding->second;
    } else if (storage == StorageUniformConstant) {
      r.fail("declares an image or sampler; the ABI allows storage and uniform buffers only");
    }
  }
  std::sort(out.bindings.begin(), out.bindings.end());
  return out;
}

}  // namespace megrez
