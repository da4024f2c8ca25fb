/* The C ABI from a C program: one greedy step. */
#include <stdio.h>

#include <gemma2/c_api.h>

int main(int argc, char** argv) {
  gemma2_model* model = NULL;
  gemma2_session* session = NULL;
  gemma2_sampler* sampler = NULL;
  const int32_t ids[] = {2, 10, 11};
  gemma2_sampling_params params = gemma2_sampling_params_default();
  int32_t token = -1;
  params.greedy = 1;
  if (argc < 2 || gemma2_model_load(argv[1], NULL, &model) != GEMMA2_OK ||
      gemma2_session_new(model, 0, &session) != GEMMA2_OK || gemma2_session_feed(session, ids, 3, NULL) != GEMMA2_OK ||
      gemma2_sampler_new(&params, &sampler) != GEMMA2_OK ||
      gemma2_session_sample(session, sampler, &token) != GEMMA2_OK) {
    fprintf(stderr, "error: %s\n", gemma2_last_error());
    return 1;
  }
  printf("C next token: %d\n", token);
  gemma2_sampler_free(sampler);
  gemma2_session_free(session);
  gemma2_model_free(model);
  return 0;
}
