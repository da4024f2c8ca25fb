/* The seeded sampler of the frame-loop scenarios, the same in the C++
 * test (gemma2::SamplingParams) and the C one (gemma2_sampling_params):
 * temperature, top-k and every penalty, so a sliced reply exercises all of
 * the sampler's state. The two structs name these fields alike. */
#ifndef GEMMA2_TESTS_SEEDED_SAMPLING_H
#define GEMMA2_TESTS_SEEDED_SAMPLING_H

#define GEMMA2_TEST_SEEDED_SAMPLING(p, seed_value) \
  do {                                             \
    (p).temperature = 0.9f;                        \
    (p).top_k = 40;                                \
    (p).repetition_penalty = 1.2f;                 \
    (p).presence_penalty = 0.3f;                   \
    (p).frequency_penalty = 0.2f;                  \
    (p).penalty_last_n = 32;                       \
    (p).seed = (seed_value);                       \
  } while (0)

#endif
