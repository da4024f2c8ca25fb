// A game loop that lets an NPC "think" without ever blocking a frame: each
// frame does a bounded amount of model work (a slice of the prompt, or one
// generated token), then returns to rendering. Usage: game_loop [MODEL_DIR]
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <gemma2/gemma2.hpp>

using Model = gemma2::Gemma2Model<>;
using Clock = std::chrono::steady_clock;

// One NPC line being written, advanced a little per frame.
class NpcLine {
 public:
  NpcLine(const Model& model, const gemma2::Tokenizer& tok, const std::string& prompt, int max_tokens)
      : session_(gemma2::Session<Model, gemma2::SlidingWindowKVCache<>>::create(model, 512).value()),
        tok_(&tok),
        text_(tok),
        prompt_(tok.encode_prompt(prompt).value()),
        max_tokens_(max_tokens) {}

  // Does at most `budget` positions of work. Returns false when finished.
  bool tick(int budget) {
    if (done_) return false;
    if (fed_ < prompt_.size()) {  // prefill a slice of the prompt
      const size_t n = std::min(prompt_.size() - fed_, static_cast<size_t>(budget));
      logits_ = session_.feed(std::vector<int32_t>(prompt_.begin() + fed_, prompt_.begin() + fed_ + n)).value();
      fed_ += n;
      return true;
    }
    std::vector<float> row(logits_.data(), logits_.data() + logits_.cols());
    const int32_t next = sampler_(row, session_.tokens());
    shown_ += text_.push(next);
    if (next == tok_->eos_id() || ++generated_ == max_tokens_ || shown_.find('\n') != std::string::npos) {
      done_ = true;
      return false;
    }
    logits_ = session_.feed({next}).value();  // one position
    return true;
  }
  const std::string& text() const { return shown_; }

 private:
  gemma2::Session<Model, gemma2::SlidingWindowKVCache<>> session_;
  const gemma2::Tokenizer* tok_;
  gemma2::StreamDecoder text_;
  gemma2::Sampler sampler_;  // greedy
  std::vector<int32_t> prompt_;
  gemma2::Activations logits_;
  size_t fed_ = 0;
  int generated_ = 0, max_tokens_;
  bool done_ = false;
  std::string shown_;
};

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : GEMMA2_DEFAULT_MODEL_DIR;
  auto model = Model::load(dir);
  auto tok = gemma2::Tokenizer::from_model_dir(dir);
  if (!model || !tok) return std::fprintf(stderr, "%s%s\n", model.message().c_str(), tok.message().c_str()), 1;

  NpcLine npc(*model, *tok, "FIRST CITIZEN:\nWhat say you of the king?\n\nSECOND CITIZEN:\n", 40);
  constexpr int kPositionsPerFrame = 4;  // the work budget of one frame
  double worst_ms = 0;
  int frames = 0;
  for (bool thinking = true; thinking; ++frames) {
    const auto t0 = Clock::now();
    thinking = npc.tick(kPositionsPerFrame);  // bounded: never more than 4 positions
    worst_ms = std::max(worst_ms, std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    // ... render the frame, run physics, read input ...
  }
  std::printf("SECOND CITIZEN: %s\n", npc.text().c_str());
  std::printf("%d frames, slowest model slice %.2f ms\n", frames, worst_ms);
  return npc.text().empty() ? 1 : 0;
}
