// gemma2: header-only C++17 inference for Google's Gemma 2 models on the CPU.
// Include this umbrella header, or the individual public headers.
#pragma once

#include "gemma2/chat.hpp"
#include "gemma2/config.hpp"
#include "gemma2/constraint.hpp"
#include "gemma2/generate.hpp"
#include "gemma2/grammar.hpp"
#include "gemma2/io/checkpoint.hpp"
#include "gemma2/io/config_json.hpp"
#include "gemma2/io/safetensors.hpp"
#include "gemma2/json_schema.hpp"
#include "gemma2/kv_cache.hpp"
#include "gemma2/model.hpp"
#include "gemma2/random_model.hpp"
#include "gemma2/sampling.hpp"
#include "gemma2/scoring.hpp"
#include "gemma2/session.hpp"
#include "gemma2/status.hpp"
#include "gemma2/thread_pool.hpp"
#include "gemma2/tokenizer.hpp"
#include "gemma2/version.hpp"
#include "gemma2/weights.hpp"
