// JNI bridge: org.megrez.chat.MegrezNative over the C API (api/megrez.h). Handles travel to
// Java as longs; failures become org.megrez.chat.MegrezException with the library's one-line
// message. Text crosses as UTF-16 (NewString), not NewStringUTF: JNI's "modified UTF-8"
// cannot carry 4-byte characters (emoji, rare CJK) and invalid bytes would abort the VM.
#include <jni.h>

#include <string>

#include "api/megrez.h"
#include "loader/tokenizer/byte_level.h"  // megrez::utf8

namespace {

// UTF-8 (possibly invalid) -> UTF-16; each invalid byte becomes U+FFFD.
std::u16string utf16_of(const char* s, size_t n) {
  const std::string_view text(s, n);
  std::u16string out;
  out.reserve(n);
  for (size_t pos = 0; pos < text.size();) {
    char32_t cp = megrez::utf8::next_codepoint(text, pos).value_or(U'\uFFFD');
    if (cp >= 0x10000) {
      cp -= 0x10000;
      out.push_back(char16_t(0xD800 + (cp >> 10)));
      out.push_back(char16_t(0xDC00 + (cp & 0x3FF)));
    } else {
      out.push_back(char16_t(cp));
    }
  }
  return out;
}

// Java string (UTF-16) -> UTF-8; an unpaired surrogate becomes U+FFFD.
std::string utf8_of(JNIEnv* env, jstring text) {
  std::string out;
  if (!text) return out;
  const jsize n = env->GetStringLength(text);
  const jchar* chars = env->GetStringChars(text, nullptr);
  if (!chars) return out;
  for (jsize i = 0; i < n; ++i) {
    char32_t cp = chars[i];
    if (cp >= 0xD800 && cp <= 0xDBFF && i + 1 < n && chars[i + 1] >= 0xDC00 && chars[i + 1] <= 0xDFFF) {
      cp = 0x10000 + ((cp - 0xD800) << 10) + (chars[i + 1] - 0xDC00);
      ++i;
    } else if (cp >= 0xD800 && cp <= 0xDFFF) {
      cp = 0xFFFD;
    }
    megrez::utf8::append(out, cp);
  }
  env->ReleaseStringChars(text, chars);
  return out;
}

jstring java_string(JNIEnv* env, const char* s, size_t n) {
  const std::u16string text = utf16_of(s, n);
  return env->NewString(reinterpret_cast<const jchar*>(text.data()), jsize(text.size()));
}

// Throws MegrezException(status name + message) in Java; the caller returns right after.
void throw_error(JNIEnv* env, megrez_status status) {
  jclass type = env->FindClass("org/megrez/chat/MegrezException");
  if (!type) return;  // NoClassDefFoundError is pending
  const std::string message = std::string(megrez_status_name(status)) + ": " + megrez_last_error();
  env->ThrowNew(type, message.c_str());  // ASCII status name + the library's message (UTF-8 text)
}

jstring java_string(JNIEnv* env, const char* s) { return java_string(env, s, std::char_traits<char>::length(s)); }

template <class T>
T* handle(jlong value) {
  return reinterpret_cast<T*>(static_cast<intptr_t>(value));
}

// A handle the C API just created, for Java; 0 with MegrezException pending when it failed.
template <class T>
jlong java_handle(JNIEnv* env, megrez_status status, T* created) {
  if (status != MEGREZ_OK) {
    throw_error(env, status);
    return 0;
  }
  return static_cast<jlong>(reinterpret_cast<intptr_t>(created));
}

// Streams each piece to listener.onText(String); false (or a Java exception) stops generation.
struct Listener {
  JNIEnv* env;
  jobject target;
  jmethodID on_text;
};

int forward_text(const char* text, size_t length, void* user) {
  auto* l = static_cast<Listener*>(user);
  if (!l->target) return 0;
  jstring piece = java_string(l->env, text, length);
  const jboolean go_on = l->env->CallBooleanMethod(l->target, l->on_text, piece);
  l->env->DeleteLocalRef(piece);
  if (l->env->ExceptionCheck()) return 1;
  return go_on ? 0 : 1;
}

}  // namespace

extern "C" {

JNIEXPORT jlong JNICALL Java_org_megrez_chat_MegrezNative_loadModel(JNIEnv* env, jclass, jstring path,
                                                                     jstring cache_dir, jint context_length) {
  if (!path) {
    env->ThrowNew(env->FindClass("java/lang/NullPointerException"), "path");
    return 0;
  }
  const std::string model_path = utf8_of(env, path);
  const std::string cache = cache_dir ? utf8_of(env, cache_dir) + "/" : std::string();
  megrez_model_params params = megrez_model_params_default();
  params.context_length = context_length > 0 ? uint32_t(context_length) : 0;
  params.pipeline_cache = cache_dir ? cache.c_str() : nullptr;
  megrez_model* model = nullptr;
  const megrez_status status = megrez_model_load(model_path.c_str(), &params, &model);
  return java_handle(env, status, model);  // (not in one expression: arguments are unsequenced)
}

JNIEXPORT void JNICALL Java_org_megrez_chat_MegrezNative_freeModel(JNIEnv*, jclass, jlong model) {
  megrez_model_free(handle<megrez_model>(model));
}

JNIEXPORT jstring JNICALL Java_org_megrez_chat_MegrezNative_deviceName(JNIEnv* env, jclass, jlong model) {
  return java_string(env, megrez_model_device_name(handle<megrez_model>(model)));
}

JNIEXPORT jlong JNICALL Java_org_megrez_chat_MegrezNative_createSession(JNIEnv* env, jclass, jlong model) {
  megrez_session* session = nullptr;
  const megrez_status status = megrez_session_create(handle<megrez_model>(model), &session);
  return java_handle(env, status, session);
}

JNIEXPORT void JNICALL Java_org_megrez_chat_MegrezNative_destroySession(JNIEnv*, jclass, jlong session) {
  megrez_session_destroy(handle<megrez_session>(session));
}

JNIEXPORT jstring JNICALL Java_org_megrez_chat_MegrezNative_chat(JNIEnv* env, jclass, jlong session, jstring message,
                                                                 jfloat temperature, jint max_tokens,
                                                                 jobject listener) {
  if (!message) {
    env->ThrowNew(env->FindClass("java/lang/NullPointerException"), "message");
    return nullptr;
  }
  Listener l{env, listener, nullptr};
  if (listener) {
    jclass type = env->GetObjectClass(listener);
    l.on_text = env->GetMethodID(type, "onText", "(Ljava/lang/String;)Z");
    if (!l.on_text) return nullptr;  // NoSuchMethodError is pending
  }
  const std::string text = utf8_of(env, message);
  megrez_generate_params params = megrez_generate_params_default();
  params.temperature = temperature;
  params.max_tokens = max_tokens > 0 ? uint32_t(max_tokens) : params.max_tokens;
  megrez_session* s = handle<megrez_session>(session);
  const megrez_status status = megrez_session_chat(s, text.c_str(), &params, forward_text, &l);
  if (env->ExceptionCheck()) return nullptr;  // the listener threw: let it propagate
  if (status != MEGREZ_OK) {
    throw_error(env, status);
    return nullptr;
  }
  return java_string(env, megrez_session_last_text(s));
}

JNIEXPORT void JNICALL Java_org_megrez_chat_MegrezNative_cancel(JNIEnv*, jclass, jlong session) {
  megrez_session_cancel(handle<megrez_session>(session));
}

JNIEXPORT void JNICALL Java_org_megrez_chat_MegrezNative_reset(JNIEnv* env, jclass, jlong session) {
  const megrez_status status = megrez_session_reset(handle<megrez_session>(session));
  if (status != MEGREZ_OK) throw_error(env, status);
}

// [prefill tokens/s, decode tokens/s, time to first token ms, completion tokens, context used,
//  context length, finish reason, device memory MB]
JNIEXPORT jdoubleArray JNICALL Java_org_megrez_chat_MegrezNative_stats(JNIEnv* env, jclass, jlong session) {
  megrez_stats s;
  const megrez_status status = megrez_session_stats(handle<megrez_session>(session), &s);
  if (status != MEGREZ_OK) {
    throw_error(env, status);
    return nullptr;
  }
  const jdouble values[] = {s.prefill_tokens_per_second, s.decode_tokens_per_second, s.time_to_first_token_ms,
                            double(s.completion_tokens), double(s.context_used), double(s.context_length),
                            double(s.finish_reason), double(s.device_memory_bytes) / (1024.0 * 1024.0)};
  jdoubleArray out = env->NewDoubleArray(jsize(sizeof values / sizeof values[0]));
  if (out) env->SetDoubleArrayRegion(out, 0, jsize(sizeof values / sizeof values[0]), values);
  return out;
}

JNIEXPORT jstring JNICALL Java_org_megrez_chat_MegrezNative_version(JNIEnv* env, jclass) {
  return java_string(env, megrez_version());
}

}  // extern "C"
