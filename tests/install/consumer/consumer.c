/* consumer-c MODEL_DIR: 12 greedy tokens after "In the beginning", through the C API. */
#include <megrez.h>
#include <stdio.h>
#include <string.h>

static int print_piece(const char* text, size_t length, void* user) {
  (void)user;
  fwrite(text, 1, length, stdout);
  return 0;
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  if (strcmp(megrez_version(), MEGREZ_VERSION_STRING) != 0) {
    fprintf(stderr, "header %s, library %s\n", MEGREZ_VERSION_STRING, megrez_version());
    return 1;
  }
  megrez_model* model = NULL;
  if (megrez_model_load("/no/such/model", NULL, &model) != MEGREZ_ERROR_MODEL) return 1;
  megrez_model_params params = megrez_model_params_default();
  params.context_length = 128;
  params.pipeline_cache = "off";
  if (megrez_model_load(argv[1], &params, &model) != MEGREZ_OK) {
    fprintf(stderr, "%s\n", megrez_last_error());
    return 1;
  }
  megrez_session* session = NULL;
  megrez_generate_params gp = megrez_generate_params_default();
  gp.max_tokens = 12;
  if (megrez_session_create(model, &session) != MEGREZ_OK ||
      megrez_session_generate(session, "In the beginning", &gp, print_piece, NULL) != MEGREZ_OK) {
    fprintf(stderr, "%s\n", megrez_last_error());
    return 1;
  }
  printf("\n");
  megrez_model_free(model);
  return 0;
}
