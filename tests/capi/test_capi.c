/*
 * The C API end to end, compiled by the C compiler (C11 + POSIX threads):
 *   test-capi MODEL_DIR "MEGREZ_RUN_COMMAND"
 * Loads the model, compares greedy generation and a chat reply with megrez-run's output for
 * the same prompt, cancels from a callback and from another thread, checks stop sequences,
 * two sessions on one model, every kind of user error, and a garbage pipeline cache file.
 * MEGREZ_VALIDATION=1 turns the validation layer on (CTest fails on any message it prints).
 */
#define _POSIX_C_SOURCE 200809L
#include <megrez.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int failures = 0;
#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                          \
    }                                                                      \
  } while (0)
#define REQUIRE_OK(call)                                                                          \
  do {                                                                                            \
    megrez_status s_ = (call);                                                                    \
    if (s_ != MEGREZ_OK) {                                                                        \
      fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #call, megrez_status_name(s_), \
              megrez_last_error());                                                               \
      exit(1);                                                                                    \
    }                                                                                             \
  } while (0)

static const char* model_dir;
static const char* run_command;

/* ---- helpers ----------------------------------------------------------------------------- */

typedef struct {
  char text[65536];
  size_t length;
  int pieces;
  int cancel_after;            /* > 0: return non-zero at this piece */
  megrez_session* cancel_session; /* non-NULL: megrez_session_cancel at cancel_after instead */
  atomic_int seen;             /* pieces so far, for the cancelling thread */
} Collected;

static int collect(const char* text, size_t length, void* user) {
  Collected* c = (Collected*)user;
  CHECK(length > 0);
  if (c->length + length < sizeof c->text) {
    memcpy(c->text + c->length, text, length);
    c->length += length;
    c->text[c->length] = '\0';
  }
  ++c->pieces;
  atomic_store(&c->seen, c->pieces);
  if (c->cancel_after > 0 && c->pieces == c->cancel_after) {
    if (c->cancel_session) {
      megrez_session_cancel(c->cancel_session);
      return 0;
    }
    return 1;
  }
  return 0;
}

static void reset_collected(Collected* c) { memset(c, 0, sizeof *c); }

/* Runs `megrez-run ARGS` and returns its standard output (malloc'd). */
static char* run_cli(const char* args) {
  char command[4096];
  snprintf(command, sizeof command, "%s --model '%s' --ctx 256 --kv f32 %s 2>/dev/null", run_command, model_dir, args);
  FILE* pipe = popen(command, "r");
  if (!pipe) {
    perror("popen");
    exit(1);
  }
  size_t capacity = 1 << 16, length = 0;
  char* out = malloc(capacity);
  size_t n;
  while ((n = fread(out + length, 1, capacity - length - 1, pipe)) > 0) length += n;
  out[length] = '\0';
  int status = pclose(pipe);
  if (status != 0) {
    fprintf(stderr, "megrez-run failed (%d): %s\n", status, command);
    exit(1);
  }
  return out;
}

static int has_newline(const char* s) { return strchr(s, '\n') != NULL; }

/* ---- tests --------------------------------------------------------------------------------- */

static void test_errors_without_a_model(void) {
  CHECK(strcmp(megrez_version(), MEGREZ_VERSION_STRING) == 0);
  CHECK(strcmp(megrez_status_name(MEGREZ_ERROR_CONTEXT_FULL), "MEGREZ_ERROR_CONTEXT_FULL") == 0);
  CHECK(strcmp(megrez_finish_reason_name(MEGREZ_FINISH_CANCELLED), "cancelled") == 0);

  megrez_model* model = (megrez_model*)1;
  megrez_model_params params = megrez_model_params_default();
  CHECK(megrez_model_load("/nonexistent/model-dir", &params, &model) == MEGREZ_ERROR_MODEL);
  CHECK(model == NULL);
  CHECK(strstr(megrez_last_error(), "/nonexistent/model-dir") != NULL);
  CHECK(!has_newline(megrez_last_error()));
  CHECK(megrez_model_load(NULL, &params, &model) == MEGREZ_ERROR_INVALID_ARGUMENT);
  CHECK(strstr(megrez_last_error(), "path") != NULL);
  CHECK(megrez_model_load(model_dir, &params, NULL) == MEGREZ_ERROR_INVALID_ARGUMENT);
  params.stream = (megrez_stream_mode)42;
  CHECK(megrez_model_load(model_dir, &params, &model) == MEGREZ_ERROR_INVALID_ARGUMENT);
  params = megrez_model_params_default();
  params.expert_budget = "a lot";
  CHECK(megrez_model_load(model_dir, &params, &model) == MEGREZ_ERROR_INVALID_ARGUMENT);
  CHECK(strlen(megrez_last_error()) > 0);
  params = megrez_model_params_default();
  params.device = "no such device anywhere";
  CHECK(megrez_model_load(model_dir, &params, &model) == MEGREZ_ERROR_DEVICE);
  CHECK(strstr(megrez_last_error(), "no such device anywhere") != NULL);

  uint32_t devices = 0;
  REQUIRE_OK(megrez_device_count(&devices));
  CHECK(devices >= 1);
  char name[256];
  REQUIRE_OK(megrez_device_name(0, name, sizeof name));
  CHECK(strlen(name) > 0);
  CHECK(megrez_device_name(0, name, 2) == MEGREZ_ERROR_BUFFER_TOO_SMALL);
  CHECK(megrez_device_name(devices, name, sizeof name) == MEGREZ_ERROR_INVALID_ARGUMENT);

  /* NULL handles are errors, never crashes. */
  CHECK(megrez_session_create(NULL, NULL) == MEGREZ_ERROR_INVALID_ARGUMENT);
  CHECK(megrez_session_generate(NULL, "x", NULL, NULL, NULL) == MEGREZ_ERROR_INVALID_ARGUMENT);
  CHECK(megrez_session_chat(NULL, "x", NULL, NULL, NULL) == MEGREZ_ERROR_INVALID_ARGUMENT);
  CHECK(megrez_session_stats(NULL, NULL) == MEGREZ_ERROR_INVALID_ARGUMENT);
  megrez_session_cancel(NULL);
  megrez_session_destroy(NULL);
  megrez_model_free(NULL);
}

static float last_fraction = -1;
static int progress_calls = 0;
static void on_progress(float fraction, const char* stage, void* user) {
  (void)user;
  CHECK(fraction >= last_fraction);
  CHECK(stage && *stage);
  last_fraction = fraction;
  ++progress_calls;
}

static megrez_model* load(const char* pipeline_cache) {
  megrez_model_params params = megrez_model_params_default();
  params.context_length = 256;
  params.kv_f32 = 1;  /* runs everywhere, the arm64 lavapipe included (DeviceCaps::half_conversions) */
  params.validation = getenv("MEGREZ_VALIDATION") && strcmp(getenv("MEGREZ_VALIDATION"), "1") == 0;
  params.pipeline_cache = pipeline_cache;
  params.progress = on_progress;
  last_fraction = -1;
  progress_calls = 0;
  megrez_model* model = NULL;
  REQUIRE_OK(megrez_model_load(model_dir, &params, &model));
  CHECK(progress_calls >= 3);
  CHECK(last_fraction == 1.0f);
  CHECK(strlen(megrez_model_device_name(model)) > 0);
  return model;
}

static const char* kPrompt = "In the beginning";

static void test_tokens(megrez_model* model) {
  int32_t ids[64];
  size_t count = 0;
  REQUIRE_OK(megrez_tokenize(model, kPrompt, ids, 64, &count));
  CHECK(count > 1 && count < 16);
  size_t needed = 0;
  CHECK(megrez_tokenize(model, kPrompt, NULL, 0, &needed) == MEGREZ_ERROR_BUFFER_TOO_SMALL);
  CHECK(needed == count);
  char text[256];
  size_t length = 0;
  REQUIRE_OK(megrez_detokenize(model, ids, count, text, sizeof text, &length));
  CHECK(strcmp(text, kPrompt) == 0);
  CHECK(length == strlen(kPrompt));
  CHECK(megrez_detokenize(model, ids, count, text, 4, &length) == MEGREZ_ERROR_BUFFER_TOO_SMALL);
  int32_t bad = 1 << 30;
  CHECK(megrez_detokenize(model, &bad, 1, text, sizeof text, &length) == MEGREZ_ERROR_INVALID_ARGUMENT);
  CHECK(strstr(megrez_last_error(), "vocabulary") != NULL);
}

/* Greedy generation equals megrez-run's; returns the generated text (malloc'd). */
static char* test_generate_matches_cli(megrez_model* model, megrez_session* session) {
  megrez_generate_params gp = megrez_generate_params_default();
  gp.max_tokens = 24;
  static Collected c;
  reset_collected(&c);
  REQUIRE_OK(megrez_session_generate(session, kPrompt, &gp, collect, &c));
  char* cli = run_cli("--prompt 'In the beginning' -n 24");
  char expected[65536 + 256];
  snprintf(expected, sizeof expected, "%s%s\n", kPrompt, c.text);
  if (strcmp(cli, expected) != 0) fprintf(stderr, "megrez-run: [%s]\nC API:      [%s]\n", cli, expected);
  CHECK(strcmp(cli, expected) == 0);
  free(cli);
  CHECK(strcmp(megrez_session_last_text(session), c.text) == 0);
  megrez_stats stats;
  REQUIRE_OK(megrez_session_stats(session, &stats));
  CHECK(stats.completion_tokens >= 1 && stats.completion_tokens <= 24);
  CHECK(stats.finish_reason == MEGREZ_FINISH_LENGTH || stats.finish_reason == MEGREZ_FINISH_STOP);
  CHECK(stats.prompt_tokens > 1);
  CHECK(stats.context_length == 256);
  CHECK(stats.context_used > stats.prompt_tokens);
  CHECK(stats.time_to_first_token_ms > 0);
  CHECK(stats.decode_tokens_per_second > 0);
  CHECK(stats.device_memory_bytes > 0);
  CHECK(stats.load_seconds > 0);
  (void)model;

  /* The same prompt again: the cached prefix is reused, the text is the same. */
  Collected again;
  reset_collected(&again);
  REQUIRE_OK(megrez_session_generate(session, kPrompt, &gp, collect, &again));
  CHECK(strcmp(again.text, c.text) == 0);
  REQUIRE_OK(megrez_session_stats(session, &stats));
  CHECK(stats.prompt_tokens_fed == 1);
  return strdup(c.text);
}

static void test_chat_matches_cli(megrez_session* session) {
  const char* question = "Who was the father of Solomon?";
  megrez_generate_params gp = megrez_generate_params_default();
  gp.max_tokens = 20;
  Collected c;
  reset_collected(&c);
  REQUIRE_OK(megrez_session_chat(session, question, &gp, collect, &c));
  char* cli = run_cli("--chat --prompt 'Who was the father of Solomon?' -n 20 </dev/null");
  char expected[65536 + 256];
  snprintf(expected, sizeof expected, "%s\n", c.text);
  if (strcmp(cli, expected) != 0) fprintf(stderr, "megrez-run --chat: [%s]\nC API:             [%s]\n", cli, expected);
  CHECK(strcmp(cli, expected) == 0);
  free(cli);
  /* A second turn continues the conversation in the cache. */
  megrez_stats before, after;
  REQUIRE_OK(megrez_session_stats(session, &before));
  reset_collected(&c);
  REQUIRE_OK(megrez_session_chat(session, "And his mother?", &gp, collect, &c));
  REQUIRE_OK(megrez_session_stats(session, &after));
  CHECK(after.prompt_tokens > after.prompt_tokens_fed);  /* the first turn was not fed again */
  CHECK(after.context_used > before.context_used);
  REQUIRE_OK(megrez_session_reset(session));
  REQUIRE_OK(megrez_session_stats(session, &after));
  CHECK(after.context_used == 0);
}

static void test_stop_and_cancel(megrez_session* session, const char* full) {
  megrez_generate_params gp = megrez_generate_params_default();
  gp.max_tokens = 24;
  Collected c;

  /* A stop sequence from the middle of the known reply: the text ends right before it. */
  size_t n = strlen(full);
  if (n >= 12) {
    char stop[8];
    memcpy(stop, full + n / 2, 4);
    stop[4] = '\0';
    const char* stops[] = {"\x01never", stop};
    gp.stop = stops;
    gp.stop_count = 2;
    reset_collected(&c);
    REQUIRE_OK(megrez_session_generate(session, kPrompt, &gp, collect, &c));
    const char* first = strstr(full, stop);
    CHECK(first != NULL);
    CHECK(c.length == (size_t)(first - full));
    CHECK(strncmp(c.text, full, c.length) == 0);
    megrez_stats stats;
    REQUIRE_OK(megrez_session_stats(session, &stats));
    CHECK(stats.finish_reason == MEGREZ_FINISH_STOP);
    gp.stop = NULL;
    gp.stop_count = 0;
  }

  /* The callback stops it. */
  reset_collected(&c);
  c.cancel_after = 3;
  REQUIRE_OK(megrez_session_generate(session, kPrompt, &gp, collect, &c));
  CHECK(c.pieces == 3);
  CHECK(strncmp(c.text, full, c.length) == 0);
  megrez_stats stats;
  REQUIRE_OK(megrez_session_stats(session, &stats));
  CHECK(stats.finish_reason == MEGREZ_FINISH_CANCELLED);
  CHECK(strcmp(megrez_session_last_text(session), c.text) == 0);

  /* megrez_session_cancel from inside the callback. */
  reset_collected(&c);
  c.cancel_after = 2;
  c.cancel_session = session;
  REQUIRE_OK(megrez_session_generate(session, kPrompt, &gp, collect, &c));
  REQUIRE_OK(megrez_session_stats(session, &stats));
  CHECK(stats.finish_reason == MEGREZ_FINISH_CANCELLED);
  CHECK(c.pieces <= 3);

  /* Invalid parameters. */
  gp.top_p = 0;
  CHECK(megrez_session_generate(session, kPrompt, &gp, NULL, NULL) == MEGREZ_ERROR_INVALID_ARGUMENT);
  CHECK(strstr(megrez_last_error(), "top-p") != NULL);
  gp = megrez_generate_params_default();
  gp.stop_count = 1;
  CHECK(megrez_session_generate(session, kPrompt, &gp, NULL, NULL) == MEGREZ_ERROR_INVALID_ARGUMENT);
  const char* empty[] = {""};
  gp.stop = empty;
  CHECK(megrez_session_generate(session, kPrompt, &gp, NULL, NULL) == MEGREZ_ERROR_INVALID_ARGUMENT);
  CHECK(megrez_session_generate(session, NULL, NULL, NULL, NULL) == MEGREZ_ERROR_INVALID_ARGUMENT);

  /* A prompt longer than the context (256 tokens). */
  char* long_prompt = malloc(8192);
  long_prompt[0] = '\0';
  for (int i = 0; i < 300; ++i) strcat(long_prompt, "and the ");
  CHECK(megrez_session_generate(session, long_prompt, NULL, NULL, NULL) == MEGREZ_ERROR_CONTEXT_FULL);
  CHECK(strstr(megrez_last_error(), "context") != NULL);
  CHECK(megrez_session_chat(session, long_prompt, NULL, NULL, NULL) == MEGREZ_ERROR_CONTEXT_FULL);
  free(long_prompt);
}

typedef struct {
  megrez_session* session;
  Collected* collected;
  atomic_int done;  /* the call returned (the text ended before the thread cancelled it) */
} CancelJob;

static void* cancel_when_streaming(void* arg) {
  CancelJob* job = (CancelJob*)arg;
  while (atomic_load(&job->collected->seen) < 2) {
    if (atomic_load(&job->done)) return NULL;
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
  }
  megrez_session_cancel(job->session);
  return NULL;
}

static void test_cancel_from_another_thread(megrez_session* session) {
  megrez_generate_params gp = megrez_generate_params_default();
  gp.max_tokens = 200;
  gp.temperature = 1.0f;  /* keeps going rather than ending its text early */
  gp.seed = 7;
  static Collected c;
  reset_collected(&c);
  static CancelJob job;
  job.session = session;
  job.collected = &c;
  atomic_store(&job.done, 0);
  pthread_t thread;
  CHECK(pthread_create(&thread, NULL, cancel_when_streaming, &job) == 0);
  const megrez_status status = megrez_session_generate(session, kPrompt, &gp, collect, &c);
  atomic_store(&job.done, 1);
  pthread_join(thread, NULL);
  REQUIRE_OK(status);
  megrez_stats stats;
  REQUIRE_OK(megrez_session_stats(session, &stats));
  CHECK(stats.finish_reason == MEGREZ_FINISH_CANCELLED);
  CHECK(stats.completion_tokens < 200);
}

static void test_two_sessions(megrez_model* model, megrez_session* first, const char* full) {
  megrez_session* second = NULL;
  REQUIRE_OK(megrez_session_create(model, &second));
  megrez_generate_params gp = megrez_generate_params_default();
  gp.max_tokens = 24;
  Collected a, b;
  /* The first session holds a chat; the second generates the plain prompt from scratch and
   * must give the same text as the first did alone. */
  reset_collected(&a);
  REQUIRE_OK(megrez_session_chat(first, "Who is God?", &gp, collect, &a));
  reset_collected(&b);
  REQUIRE_OK(megrez_session_generate(second, kPrompt, &gp, collect, &b));
  CHECK(strcmp(b.text, full) == 0);
  megrez_stats s1, s2;
  REQUIRE_OK(megrez_session_stats(first, &s1));
  REQUIRE_OK(megrez_session_stats(second, &s2));
  CHECK(s1.context_used != s2.context_used);
  /* The chat goes on undisturbed: a second turn feeds only the new turn. */
  reset_collected(&a);
  REQUIRE_OK(megrez_session_chat(first, "And who is Moses?", &gp, collect, &a));
  REQUIRE_OK(megrez_session_stats(first, &s1));
  CHECK(s1.prompt_tokens > s1.prompt_tokens_fed);
  megrez_session_destroy(second);
  REQUIRE_OK(megrez_session_reset(first));
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: test-capi MODEL_DIR MEGREZ_RUN_COMMAND\n");
    return 2;
  }
  model_dir = argv[1];
  run_command = argv[2];

  test_errors_without_a_model();

  /* A garbage pipeline cache file: a warning, then the same results. */
  char cache[] = "/tmp/megrez-capi-cacheXXXXXX";
  int fd = mkstemp(cache);
  CHECK(fd >= 0);
  for (int i = 0; i < 512; ++i) CHECK(write(fd, "garbage!", 8) == 8);
  close(fd);

  megrez_model* model = load(cache);
  test_tokens(model);
  megrez_session* session = NULL;
  REQUIRE_OK(megrez_session_create(model, &session));
  char* full = test_generate_matches_cli(model, session);
  test_chat_matches_cli(session);
  test_stop_and_cancel(session, full);
  test_cancel_from_another_thread(session);
  test_two_sessions(model, session, full);
  megrez_model_free(model);  /* frees `session` too */

  /* The cache file the first model rewrote loads, and the text is the same. */
  model = load(cache);
  REQUIRE_OK(megrez_session_create(model, &session));
  Collected c;
  reset_collected(&c);
  megrez_generate_params gp = megrez_generate_params_default();
  gp.max_tokens = 24;
  REQUIRE_OK(megrez_session_generate(session, kPrompt, &gp, collect, &c));
  CHECK(strcmp(c.text, full) == 0);
  megrez_session_destroy(session);
  megrez_model_free(model);
  unlink(cache);
  free(full);

  if (failures) {
    fprintf(stderr, "test-capi: %d check(s) failed\n", failures);
    return 1;
  }
  printf("test-capi: all checks passed\n");
  return 0;
}
