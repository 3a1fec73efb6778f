/*
 * megrez.h: the C API of the Megrez2 Vulkan runtime (C99; C++ callers may use it too).
 *
 * For a JNI bridge, another language's FFI or any C program. Nothing crosses it but C types:
 * every function returns a megrez_status (or a plain value documented as never failing), no
 * exception or abort escapes into the caller, and after a failure megrez_last_error() holds
 * one line saying what went wrong.
 *
 *   megrez_model_params mp = megrez_model_params_default();
 *   mp.context_length = 1024;
 *   megrez_model* model;
 *   if (megrez_model_load("models/megrez2-tiny", &mp, &model) != MEGREZ_OK) {
 *     fprintf(stderr, "%s\n", megrez_last_error());
 *     return 1;
 *   }
 *   megrez_session* chat;
 *   megrez_session_create(model, &chat);
 *   megrez_generate_params gp = megrez_generate_params_default();
 *   megrez_session_chat(chat, "Who was the father of Solomon?", &gp, print_piece, NULL);
 *   megrez_session_destroy(chat);
 *   megrez_model_free(model);
 *
 * Threads. A model and its sessions may be used from any threads: calls that run the model
 * (generate, chat, tokenize, session create/destroy) are serialised per model, so two
 * sessions of one model take turns call by call. One session must not be used
 * by two threads at once, except megrez_session_cancel(), which any thread may call at any
 * time (also from inside a text callback). megrez_model_free() must not overlap any other call
 * on that model or its sessions, and frees the sessions still open. megrez_last_error() is
 * per thread.
 */
#ifndef MEGREZ_H
#define MEGREZ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define MEGREZ_API __declspec(dllexport)
#else
#define MEGREZ_API __attribute__((visibility("default")))
#endif

/* The version of these headers; megrez_version() is the library's. */
#define MEGREZ_VERSION_MAJOR 0
#define MEGREZ_VERSION_MINOR 2
#define MEGREZ_VERSION_PATCH 0
#define MEGREZ_VERSION_STRING "0.2.0"

typedef enum megrez_status {
  MEGREZ_OK = 0,
  MEGREZ_ERROR_INVALID_ARGUMENT = 1, /* a null pointer, an option out of range, an unknown id */
  MEGREZ_ERROR_MODEL = 2,            /* the model files: missing, unreadable, corrupt, unsupported */
  MEGREZ_ERROR_DEVICE = 3,           /* no usable Vulkan device, a device limitation or a GPU failure */
  MEGREZ_ERROR_OUT_OF_MEMORY = 4,    /* device or host memory */
  MEGREZ_ERROR_CONTEXT_FULL = 5,     /* the prompt does not fit the context */
  MEGREZ_ERROR_BUFFER_TOO_SMALL = 6, /* an output buffer: the size needed is returned */
  MEGREZ_ERROR_INTERNAL = 7          /* a bug: please report the message */
} megrez_status;

typedef enum megrez_finish_reason {
  MEGREZ_FINISH_STOP = 0,      /* end of turn, end of text, or a stop sequence */
  MEGREZ_FINISH_LENGTH = 1,    /* max_tokens */
  MEGREZ_FINISH_CONTEXT = 2,   /* the context is full */
  MEGREZ_FINISH_CANCELLED = 3  /* megrez_session_cancel() or a callback returned non-zero */
} megrez_finish_reason;

typedef enum megrez_stream_mode {
  MEGREZ_STREAM_AUTO = 0,     /* prefetch when the expert budget is below the routed experts */
  MEGREZ_STREAM_RESIDENT = 1, /* every expert in device memory */
  MEGREZ_STREAM_PREFETCH = 2, /* budgeted cache, uploads overlap the previous layer */
  MEGREZ_STREAM_ONDEMAND = 3  /* budgeted cache, uploads when the layer is reached */
} megrez_stream_mode;

typedef struct megrez_model megrez_model;
typedef struct megrez_session megrez_session;

/* Loading progress: fraction 0..1 and a stage name ("opening", "device", "weights",
 * "kv cache", "pipelines", "ready"), on the loading thread. */
typedef void (*megrez_progress_fn)(float fraction, const char* stage, void* user);

/* A piece of generated text (whole UTF-8 characters, not NUL-terminated). Return 0 to go on,
 * non-zero to stop (the reply ends with MEGREZ_FINISH_CANCELLED). */
typedef int (*megrez_text_fn)(const char* text, size_t length, void* user);

typedef struct megrez_model_params {
  const char* device;           /* index or name substring; NULL or "": the best device */
  const char* profile;          /* device profile ("adreno-7xx", a .json path); NULL: none */
  uint32_t context_length;      /* tokens per session; 0: min(model limit, 4096) */
  int kv_f32;                   /* 0: f16 KV cache (default), 1: f32 */
  const char* expert_budget;    /* device memory for routed experts: "25%", "512MB"; NULL: all */
  megrez_stream_mode stream;
  const char* pipeline_cache;   /* a file, a directory to keep it in (Android: the app's cache
                                   dir), "off", or NULL for the user cache folder */
  int validation;               /* 1: Vulkan validation layer (debugging); 0: MEGREZ_VALIDATION=1 decides */
  megrez_progress_fn progress;  /* may be NULL */
  void* progress_user;
} megrez_model_params;

typedef struct megrez_generate_params {
  uint32_t max_tokens;          /* default 256 */
  float temperature;            /* <= 0: greedy (default 0) */
  int32_t top_k;                /* <= 0: all (default) */
  float top_p;                  /* (0, 1], default 1 */
  float repeat_penalty;         /* > 0, default 1 (none) */
  uint64_t seed;                /* default 0 */
  const char* const* stop;      /* stop sequences (at most 16, 1-256 bytes each); may be NULL */
  size_t stop_count;
} megrez_generate_params;

/* Figures of a session: its last call, and the model's totals. */
typedef struct megrez_stats {
  /* the last generate/chat call of this session */
  uint32_t prompt_tokens;             /* tokens of the prompt (chat: the conversation so far) */
  uint32_t prompt_tokens_fed;         /* of which prefilled (the rest were already cached) */
  uint32_t completion_tokens;
  megrez_finish_reason finish_reason;
  double time_to_first_token_ms;
  double prefill_tokens_per_second;   /* of the tokens fed */
  double decode_tokens_per_second;
  uint32_t context_used, context_length;  /* this session's KV cache */
  /* the model, since load */
  double load_seconds;
  double pipeline_seconds;            /* of load_seconds, building pipelines (pipeline cache) */
  uint64_t device_memory_bytes;       /* weights + expert cache + KV caches + activations */
  uint64_t expert_lookups, expert_hits, expert_misses, expert_bytes_uploaded;
  double expert_hit_rate;             /* 0 when resident */
  double expert_stall_ms;             /* GPU time waiting for expert uploads */
} megrez_stats;

/* ---- Library (every function here: any thread, any time) --------------------------------- */

MEGREZ_API const char* megrez_version(void);         /* "0.2.0"; never fails */
MEGREZ_API const char* megrez_last_error(void);      /* the message of this thread's last failed call */
MEGREZ_API const char* megrez_status_name(megrez_status status);  /* "MEGREZ_ERROR_MODEL"... */
MEGREZ_API const char* megrez_finish_reason_name(megrez_finish_reason reason);  /* "stop"... */

/* Vulkan devices, in the order `device` indexes them. The name is copied into `name`
 * (NUL-terminated; BUFFER_TOO_SMALL if it does not fit). */
MEGREZ_API megrez_status megrez_device_count(uint32_t* count);
MEGREZ_API megrez_status megrez_device_name(uint32_t index, char* name, size_t capacity);

/* ---- Model ------------------------------------------------------------------------------ */
/* load: any thread. free: when no other call on the model or its sessions runs. The rest: any
 * thread while the model lives (calls that use the engine take turns). */

MEGREZ_API megrez_model_params megrez_model_params_default(void);
/* Opens a Hugging Face directory or a .gguf file and uploads it to the device. */
MEGREZ_API megrez_status megrez_model_load(const char* path, const megrez_model_params* params,
                                           megrez_model** model);
MEGREZ_API void megrez_model_free(megrez_model* model);  /* NULL is fine */
/* The device the model runs on (valid until megrez_model_free). */
MEGREZ_API const char* megrez_model_device_name(const megrez_model* model);

/* Text to token ids: *count receives the number of ids; with a too small `capacity`
 * (ids may be NULL then) the status is BUFFER_TOO_SMALL. Special-token text in `text`
 * stays plain text. */
MEGREZ_API megrez_status megrez_tokenize(megrez_model* model, const char* text, int32_t* ids, size_t capacity,
                                         size_t* count);
/* Ids to text, NUL-terminated; *length receives its length without the NUL (BUFFER_TOO_SMALL
 * when capacity < length + 1). */
MEGREZ_API megrez_status megrez_detokenize(megrez_model* model, const int32_t* ids, size_t count, char* text,
                                           size_t capacity, size_t* length);

/* ---- Sessions: each has its own KV cache and chat history ---------------------------------- */
/* create: any thread. destroy, generate, chat, set_system_prompt, reset, last_text, stats: one
 * thread at a time per session (different sessions of one model may be used from different
 * threads; their calls take turns on the model). cancel: any thread, any time. */

MEGREZ_API megrez_status megrez_session_create(megrez_model* model, megrez_session** session);
MEGREZ_API void megrez_session_destroy(megrez_session* session);  /* NULL is fine */

MEGREZ_API megrez_generate_params megrez_generate_params_default(void);

/* Continues `prompt` (raw text, no chat template) and streams the generated text to
 * `on_text` (may be NULL). The part of the prompt this session's cache already holds (the
 * previous prompt and reply) is not fed again. */
MEGREZ_API megrez_status megrez_session_generate(megrez_session* session, const char* prompt,
                                                 const megrez_generate_params* params, megrez_text_fn on_text,
                                                 void* user);
/* Adds a user turn to the session's conversation and streams the assistant's reply. Earlier
 * turns stay in the KV cache; a conversation longer than the context starts over. */
MEGREZ_API megrez_status megrez_session_chat(megrez_session* session, const char* user_message,
                                             const megrez_generate_params* params, megrez_text_fn on_text,
                                             void* user);
/* Sets the system prompt ("" or NULL: none) and starts a new conversation. */
MEGREZ_API megrez_status megrez_session_set_system_prompt(megrez_session* session, const char* text);
/* Forgets the conversation (the system prompt stays). */
MEGREZ_API megrez_status megrez_session_reset(megrez_session* session);
/* The whole text of the last reply (valid until the next call on this session). */
MEGREZ_API const char* megrez_session_last_text(const megrez_session* session);
/* Makes the session's running generate/chat call return soon with MEGREZ_FINISH_CANCELLED
 * (status MEGREZ_OK, the text so far kept); a call started later is not affected. Any thread. */
MEGREZ_API void megrez_session_cancel(megrez_session* session);
MEGREZ_API megrez_status megrez_session_stats(const megrez_session* session, megrez_stats* stats);

#ifdef __cplusplus
}
#endif

#endif /* MEGREZ_H */
